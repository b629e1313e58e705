import NIOConcurrencyHelpers
import NIOCore
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire

/// The authorizer a broker serves with, kept in step with the metadata image: nil when
/// `authorizer.class.name` is unset (every action is allowed, as Kafka allows them without an
/// authorizer), else Kafka's StandardAuthorizer over the image's ACL bindings.
final class BrokerAuthorizer: @unchecked Sendable {
    private let box: NIOLockedValueBox<StandardAuthorizer?>

    init(_ configured: StandardAuthorizer?) {
        box = NIOLockedValueBox(configured)
    }

    /// The authorizer now in force (a value: checks run without the lock).
    var current: StandardAuthorizer? { box.withLockedValue { $0 } }

    /// Applies the ACL changes of a published delta.
    func publish(_ delta: MetadataDelta, image: MetadataImage) {
        box.withLockedValue { authorizer in
            guard authorizer != nil, !delta.changedAcls.isEmpty || authorizer!.aclCount != image.acls.count else {
                return
            }
            authorizer!.follow(delta, image: image)
        }
    }
}

/// One request's authorization: the principal and host it came from, and the authorizer in
/// force when it arrived. Checks are Kafka's (`AuthHelper.authorize`); without an authorizer
/// everything is allowed.
struct RequestAuthorization {
    let principal: KafkaPrincipal
    let host: String
    let authorizer: StandardAuthorizer?

    init(_ context: RequestContext, _ authorizer: StandardAuthorizer?) {
        principal = KafkaPrincipal(type: context.principalType, name: context.principalName)
        host = context.clientHost
        self.authorizer = authorizer
    }

    var enabled: Bool { authorizer != nil }

    func allows(_ operation: AclOperation, _ resource: Resource) -> Bool {
        authorizer?.authorize(principal, host: host, operation: operation, resource: resource) ?? true
    }

    /// The topics of `names` that `operation` is allowed on (each name checked once).
    func allowedTopics<S: Sequence<String>>(_ operation: AclOperation, _ names: S) -> Set<String> {
        var out = Set<String>()
        var seen = Set<String>()
        for name in names where seen.insert(name).inserted {
            if allows(operation, .topic(name)) { out.insert(name) }
        }
        return out
    }

    /// Kafka's `authorizeByResourceType`: allowed on at least one resource of `type`.
    func allowsSome(_ operation: AclOperation, _ type: ResourceType) -> Bool {
        authorizer?.authorizeByResourceType(principal, host: host, operation: operation, type: type) ?? true
    }

    /// The `*AuthorizedOperations` bit field of `resource`: every operation of its type when no
    /// authorizer is configured.
    func operationsField(_ resource: Resource) -> Int32 {
        guard let authorizer else { return AclOperation.bitField(AclOperation.supported(by: resource.type)) }
        return AclOperation.bitField(authorizer.authorizedOperations(principal, host: host, resource: resource))
    }
}

extension Broker {
    func authorization(_ context: RequestContext) -> RequestAuthorization {
        RequestAuthorization(context, authorizer.current)
    }

    // MARK: ACLs and SCRAM credentials (Kafka's AclApis and the SCRAM admin APIs)

    /// DescribeAcls, from this broker's image: DESCRIBE on the cluster; SECURITY_DISABLED
    /// without an authorizer.
    func describeAcls(_ request: DescribeAclsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        guard auth.enabled else {
            return respond(
                DescribeAclsResponse(
                    errorCode: ErrorCode.securityDisabled.rawValue, errorMessage: "No Authorizer is configured.",
                    resources: []),
                version: version, context: context)
        }
        guard auth.allows(.describe, .cluster) else {
            return respond(
                DescribeAclsResponse(
                    errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, resources: []),
                version: version, context: context)
        }
        return respond(image.describeAcls(request, version: version), version: version, context: context)
    }

    /// Why CreateAcls or DeleteAcls is refused as a whole: no authorizer (SECURITY_DISABLED), or
    /// no ALTER on the cluster; nil when it may go to the controller.
    private func aclChangeRefusal(_ context: RequestContext) -> (ErrorCode, String?)? {
        let auth = authorization(context)
        if !auth.enabled { return (.securityDisabled, "No Authorizer is configured.") }
        return auth.allows(.alter, .cluster) ? nil : (.clusterAuthorizationFailed, nil)
    }

    /// CreateAcls, forwarded to the active controller: ALTER on the cluster.
    func createAcls(_ request: CreateAclsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        if let (code, message) = aclChangeRefusal(context) {
            return respond(
                CreateAclsResponse(
                    results: request.creations.map { _ in .init(errorCode: code.rawValue, errorMessage: message) }),
                version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// DeleteAcls, forwarded to the active controller: ALTER on the cluster.
    func deleteAcls(_ request: DeleteAclsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        if let (code, message) = aclChangeRefusal(context) {
            return respond(
                DeleteAclsResponse(
                    filterResults: request.filters.map { _ in
                        .init(errorCode: code.rawValue, errorMessage: message, matchingAcls: [])
                    }),
                version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// DescribeUserScramCredentials, from this broker's image: DESCRIBE on the cluster.
    func describeUserScramCredentials(
        _ request: DescribeUserScramCredentialsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        guard authorization(context).allows(.describe, .cluster) else {
            return respond(
                DescribeUserScramCredentialsResponse(
                    errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil, results: []),
                version: version, context: context)
        }
        return respond(image.describeUserScramCredentials(request), version: version, context: context)
    }

    /// AlterUserScramCredentials, forwarded to the active controller: ALTER on the cluster.
    func alterUserScramCredentials(
        _ request: AlterUserScramCredentialsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        guard authorization(context).allows(.alter, .cluster) else {
            let users = request.deletions.map(\.name) + request.upsertions.map(\.name)
            return respond(
                AlterUserScramCredentialsResponse(
                    results: users.map {
                        .init(user: $0, errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil)
                    }), version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// DescribeClientQuotas, from this broker's image: DESCRIBE_CONFIGS on the cluster.
    func describeClientQuotas(
        _ request: DescribeClientQuotasRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        guard authorization(context).allows(.describeConfigs, .cluster) else {
            return respond(
                DescribeClientQuotasResponse(
                    throttleTimeMs: 0, errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil,
                    entries: nil),
                version: version, context: context)
        }
        return respond(image.describeClientQuotas(request), version: version, context: context)
    }

    /// AlterClientQuotas, forwarded to the active controller: ALTER_CONFIGS on the cluster.
    func alterClientQuotas(
        _ request: AlterClientQuotasRequest, version: Int16, context: RequestContext
    )
        -> RequestOutcome
    {
        guard authorization(context).allows(.alterConfigs, .cluster) else {
            return respond(
                ControllerRequests.failure(request, code: .clusterAuthorizationFailed)!, version: version,
                context: context)
        }
        return forward(request, version: version, context: context)
    }
}

extension Broker {
    /// What the image must show before a successful ACL or SCRAM answer is relayed, read from
    /// the request and its answer (the answers do not name what they changed).
    static func visibility<R: RequestMessage>(
        of request: R
    ) -> (@Sendable (R.Response) -> (@Sendable (MetadataImage) -> Bool)?)? {
        switch request {
        case let r as CreateAclsRequest:
            return { response in
                guard let response = response as? CreateAclsResponse else { return nil }
                let created: [AclBinding] = zip(r.creations, response.results).filter { $0.1.errorCode == 0 }.map {
                    creation, _ in
                    AclBinding(
                        ResourceType(code: creation.resourceType), creation.resourceName,
                        PatternType(code: creation.resourcePatternType),
                        principal: creation.principal, host: creation.host,
                        operation: AclOperation(code: creation.operation),
                        permission: AclPermissionType(code: creation.permissionType))
                }
                if created.isEmpty { return nil }
                return { image in
                    let held = Set(image.acls.values.map(AclBinding.init))
                    return created.allSatisfy { held.contains($0) }
                }
            }
        case is DeleteAclsRequest:
            return { response in
                guard let response = response as? DeleteAclsResponse else { return nil }
                let deleted: [AclBinding] = response.filterResults.filter { $0.errorCode == 0 }.flatMap(\.matchingAcls)
                    .map {
                        AclBinding(
                            ResourceType(code: $0.resourceType), $0.resourceName, PatternType(code: $0.patternType),
                            principal: $0.principal,
                            host: $0.host, operation: AclOperation(code: $0.operation),
                            permission: AclPermissionType(code: $0.permissionType))
                    }
                if deleted.isEmpty { return nil }
                return { image in
                    let held = Set(image.acls.values.map(AclBinding.init))
                    return deleted.allSatisfy { !held.contains($0) }
                }
            }
        case let r as AlterUserScramCredentialsRequest:
            return { response in
                guard let response = response as? AlterUserScramCredentialsResponse else { return nil }
                let succeeded = Set(response.results.filter { $0.errorCode == 0 }.map(\.user))
                let upserted = r.upsertions.filter { succeeded.contains($0.name) }.map {
                    ($0.name, $0.mechanism, Array($0.salt.readableBytesView))
                }
                let deleted = r.deletions.filter { succeeded.contains($0.name) }.map { ($0.name, $0.mechanism) }
                if upserted.isEmpty && deleted.isEmpty { return nil }
                return { image in
                    upserted.allSatisfy { image.scramCredential(user: $0.0, mechanism: $0.1)?.salt == $0.2 }
                        && deleted.allSatisfy { image.scramCredential(user: $0.0, mechanism: $0.1) == nil }
                }
            }
        case let r as UpdateFeaturesRequest:
            return { response in
                guard !r.validateOnly, let response = response as? UpdateFeaturesResponse, response.errorCode == 0
                else { return nil }
                let succeeded = Set(response.results.filter { $0.errorCode == 0 }.map(\.feature))
                let levels = r.featureUpdates.filter { succeeded.contains($0.feature) }.map {
                    ($0.feature, $0.maxVersionLevel)
                }
                if levels.isEmpty { return nil }
                return { image in levels.allSatisfy { (image.features[$0.0] ?? 0) == max($0.1, 0) } }
            }
        case let r as AlterClientQuotasRequest:
            return { response in
                guard let response = response as? AlterClientQuotasResponse, !r.validateOnly else { return nil }
                // What each accepted entry leaves: its keys set to their values, or removed.
                var expected: [(ClientQuotaEntity, String, Double?)] = []
                for (entry, result) in zip(r.entries, response.entries) where result.errorCode == 0 {
                    var parts: [String: String?] = [:]
                    for part in entry.entity { parts[part.entityType] = .some(part.entityName) }
                    guard !parts.isEmpty else { continue }
                    let entity = ClientQuotaEntity(parts)
                    for op in entry.ops { expected.append((entity, op.key, op.remove ? nil : op.value)) }
                }
                if expected.isEmpty { return nil }
                let settled = expected
                return { image in settled.allSatisfy { image.clientQuotas(of: $0.0)[$0.1] == $0.2 } }
            }
        default:
            return nil
        }
    }
}
