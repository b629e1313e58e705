import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire

// The controller's ACL and SCRAM commands (Kafka's AclControlManager and ScramControlManager):
// each reads the image and returns records and a response; replaying the records is what changes
// the ACLs and credentials, on every controller and broker alike.

extension QuorumController {
    /// The first `metadata.version` level whose records include SCRAM credentials (3.5-IV2).
    public static let scramMetadataVersion: Int16 = 11

    /// CreateAcls: one AccessControlEntryRecord per new binding, with a fresh id from `newId`.
    /// A binding Kafka refuses (an UNKNOWN or ANY type, operation or permission, a MATCH or ANY
    /// pattern, an empty name, a cluster name other than `kafka-cluster`, a principal that is not
    /// `Type:name`) gets INVALID_REQUEST; a binding that exists already, or twice in the request,
    /// succeeds without a second record, as Kafka's `existingAcls` set makes it.
    public func createAcls(_ request: CreateAclsRequest, newId: () -> KafkaUUID) -> ControllerResult<CreateAclsResponse>
    {
        var existing = Set(image.acls.values.map(AclBinding.init))
        var usedIds = Set<KafkaUUID>()
        var records: [MetadataRecord] = []
        var results: [CreateAclsResponse.AclCreationResult] = []
        for creation in request.creations {
            let binding = AclBinding(
                ResourceType(code: creation.resourceType), creation.resourceName,
                PatternType(code: creation.resourcePatternType),
                principal: creation.principal, host: creation.host, operation: AclOperation(code: creation.operation),
                permission: AclPermissionType(code: creation.permissionType))
            if let problem = binding.validationError {
                results.append(.init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: problem))
                continue
            }
            if existing.insert(binding).inserted {
                var id = newId()
                while id == .zero || image.acls[id] != nil || usedIds.contains(id) { id = newId() }
                usedIds.insert(id)
                records.append(.accessControlEntry(binding.record(id: id)))
            }
            results.append(.init(errorCode: 0, errorMessage: nil))
        }
        return ControllerResult(records: records, response: CreateAclsResponse(results: results))
    }

    /// DeleteAcls: every binding each filter matches is removed (one RemoveAccessControlEntryRecord
    /// per binding, however many filters match it) and listed in that filter's result. A filter
    /// with an UNKNOWN component gets INVALID_REQUEST, as Kafka's `validateFilter` gives it.
    public func deleteAcls(_ request: DeleteAclsRequest) -> ControllerResult<DeleteAclsResponse> {
        let bindings = image.aclBindings
        var removed = Set<KafkaUUID>()
        var records: [MetadataRecord] = []
        var results: [DeleteAclsResponse.DeleteAclsFilterResult] = []
        for entry in request.filters {
            let filter = AclBindingFilter(entry)
            if filter.patternFilter.isUnknown || filter.entryFilter.isUnknown {
                let message = filter.patternFilter.isUnknown ? "Unknown patternFilter." : "Unknown entryFilter."
                results.append(
                    .init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: message, matchingAcls: []))
                continue
            }
            var matching: [DeleteAclsResponse.DeleteAclsMatchingAcl] = []
            for (id, binding) in bindings where filter.matches(binding) {
                matching.append(
                    .init(
                        errorCode: 0, errorMessage: nil, resourceType: binding.pattern.resourceType.rawValue,
                        resourceName: binding.pattern.name,
                        patternType: binding.pattern.patternType.rawValue, principal: binding.entry.principal,
                        host: binding.entry.host,
                        operation: binding.entry.operation.rawValue,
                        permissionType: binding.entry.permissionType.rawValue))
                if removed.insert(id).inserted {
                    records.append(.removeAccessControlEntry(RemoveAccessControlEntryRecord(id: id)))
                }
            }
            results.append(.init(errorCode: 0, errorMessage: nil, matchingAcls: matching))
        }
        return ControllerResult(records: records, response: DeleteAclsResponse(filterResults: results))
    }

    /// AlterUserScramCredentials, as Kafka's ScramControlManager: a user named by more than one
    /// deletion or upsertion gets DUPLICATE_RESOURCE (and nothing of it changes); an empty name
    /// UNACCEPTABLE_CREDENTIAL; an unknown mechanism UNSUPPORTED_SASL_MECHANISM; deleting a
    /// credential that does not exist RESOURCE_NOT_FOUND; an upsertion with fewer iterations than
    /// the mechanism's minimum (4096) or more than 16384 UNACCEPTABLE_CREDENTIAL. An upsertion's
    /// salted password (the client ran PBKDF2) becomes a StoredKey and a ServerKey; the password
    /// itself is never sent and the salted password is not stored. Below `metadata.version`
    /// 3.5-IV2 every user gets UNSUPPORTED_VERSION. Results list deletions, then upsertions, then
    /// failures, each in request order.
    public func alterUserScramCredentials(
        _ request: AlterUserScramCredentialsRequest
    ) -> ControllerResult<AlterUserScramCredentialsResponse> {
        typealias Deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion
        typealias Upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion
        typealias Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult
        let supported = image.metadataVersion >= Self.scramMetadataVersion
        var deletions: [(key: ScramCredentialKey, deletion: Deletion)] = []
        var upsertions: [(key: ScramCredentialKey, upsertion: Upsertion)] = []
        var errors: [(user: String, code: ErrorCode, message: String)] = []
        func failed(_ user: String) -> Bool { errors.contains { $0.user.utf8.elementsEqual(user.utf8) } }
        func same(_ key: ScramCredentialKey, _ user: String) -> Bool { key.user.utf8.elementsEqual(user.utf8) }
        let duplicate = "A user credential cannot be altered twice in the same request"

        for deletion in request.deletions where !failed(deletion.name) {
            if let index = deletions.firstIndex(where: { same($0.key, deletion.name) }) {
                deletions.remove(at: index)
                errors.append((deletion.name, .duplicateResource, duplicate))
            } else if !supported {
                errors.append(
                    (deletion.name, .unsupportedVersion, "The current metadata.version does not support SCRAM"))
            } else if let problem = Self.validateScramUser(deletion.name, mechanism: deletion.mechanism) {
                errors.append((deletion.name, problem.0, problem.1))
            } else if image.scramCredential(user: deletion.name, mechanism: deletion.mechanism) == nil {
                errors.append(
                    (deletion.name, .resourceNotFound, "Attempt to delete a user credential that does not exist"))
            } else {
                deletions.append((ScramCredentialKey(user: deletion.name, mechanism: deletion.mechanism), deletion))
            }
        }
        for upsertion in request.upsertions where !failed(upsertion.name) {
            if let index = deletions.firstIndex(where: { same($0.key, upsertion.name) }) {
                deletions.remove(at: index)
                errors.append((upsertion.name, .duplicateResource, duplicate))
            } else if let index = upsertions.firstIndex(where: { same($0.key, upsertion.name) }) {
                upsertions.remove(at: index)
                errors.append((upsertion.name, .duplicateResource, duplicate))
            } else if !supported {
                errors.append(
                    (upsertion.name, .unsupportedVersion, "The current metadata.version does not support SCRAM"))
            } else if let problem = Self.validateScramUser(upsertion.name, mechanism: upsertion.mechanism) {
                errors.append((upsertion.name, problem.0, problem.1))
            } else if upsertion.iterations < ScramMechanism(code: upsertion.mechanism)!.minIterations {
                errors.append((upsertion.name, .unacceptableCredential, "Too few iterations"))
            } else if upsertion.iterations > ScramMechanism.maxIterations {
                errors.append((upsertion.name, .unacceptableCredential, "Too many iterations"))
            } else {
                upsertions.append((ScramCredentialKey(user: upsertion.name, mechanism: upsertion.mechanism), upsertion))
            }
        }

        var records: [MetadataRecord] = []
        var results: [Result] = []
        for (key, _) in deletions {
            records.append(
                .removeUserScramCredential(RemoveUserScramCredentialRecord(name: key.user, mechanism: key.mechanism)))
            results.append(Result(user: key.user, errorCode: 0, errorMessage: nil))
        }
        for (key, upsertion) in upsertions {
            let mechanism = ScramMechanism(code: key.mechanism)!
            let salt = Array(upsertion.salt.readableBytesView)
            let credential = ScramFormatter(mechanism).credential(
                saltedPassword: Array(upsertion.saltedPassword.readableBytesView), salt: salt,
                iterations: upsertion.iterations)
            let entry = ScramCredentialEntry(
                user: key.user, mechanism: key.mechanism, salt: credential.salt, storedKey: credential.storedKey,
                serverKey: credential.serverKey, iterations: credential.iterations)
            records.append(.userScramCredential(entry.record))
            results.append(Result(user: key.user, errorCode: 0, errorMessage: nil))
        }
        for error in errors {
            results.append(Result(user: error.user, errorCode: error.code.rawValue, errorMessage: error.message))
        }
        return ControllerResult(records: records, response: AlterUserScramCredentialsResponse(results: results))
    }

    /// Kafka's `validateScramUsernameAndMechanism`.
    static func validateScramUser(_ name: String, mechanism: Int8) -> (ErrorCode, String)? {
        if name.isEmpty { return (.unacceptableCredential, "Username must not be empty") }
        if ScramMechanism(code: mechanism) == nil { return (.unsupportedSaslMechanism, "Unknown SCRAM mechanism") }
        return nil
    }
}

// MARK: answers from the image (brokers)

extension AclBinding {
    /// The binding an image's ACL entry holds.
    public init(_ entry: AclEntry) {
        self.init(
            pattern: ResourcePattern(
                ResourceType(code: entry.resourceType), entry.resourceName, PatternType(code: entry.patternType)),
            entry: AccessControlEntry(
                principal: entry.principal, host: entry.host, operation: AclOperation(code: entry.operation),
                permissionType: AclPermissionType(code: entry.permissionType)))
    }
}

extension MetadataImage {
    /// The image's ACL bindings with their record ids, in id order.
    public var aclBindings: [(id: KafkaUUID, binding: AclBinding)] {
        acls.keys.sorted().map { ($0, AclBinding(acls[$0]!)) }
    }

    /// DescribeAcls, answered by a broker from its image (Kafka's AclApis with the
    /// StandardAuthorizer's `acls(filter)`): the bindings the filter selects, grouped by resource
    /// pattern. A filter with an UNKNOWN component, or a version 0 request for a pattern type
    /// other than LITERAL (or ANY, which version 0 reads as LITERAL), gets INVALID_REQUEST.
    public func describeAcls(_ request: DescribeAclsRequest, version: Int16) -> DescribeAclsResponse {
        var filter = AclBindingFilter(request)
        if version == 0 && filter.patternFilter.patternType == .any { filter.patternFilter.patternType = .literal }
        if version == 0 && filter.patternFilter.patternType != .literal {
            return DescribeAclsResponse(
                errorCode: ErrorCode.invalidRequest.rawValue,
                errorMessage: "Version 0 only supports literal resource pattern types", resources: [])
        }
        if filter.isUnknown {
            return DescribeAclsResponse(
                errorCode: ErrorCode.invalidRequest.rawValue,
                errorMessage: "DescribeAclsRequest contains UNKNOWN elements", resources: [])
        }
        var order: [ResourcePattern] = []
        var entries: [ResourcePattern: [AccessControlEntry]] = [:]
        for (_, binding) in aclBindings where filter.matches(binding) {
            if entries[binding.pattern] == nil { order.append(binding.pattern) }
            entries[binding.pattern, default: []].append(binding.entry)
        }
        order.sort { a, b in
            if a.resourceType != b.resourceType { return a.resourceType.rawValue < b.resourceType.rawValue }
            if !a.name.utf8.elementsEqual(b.name.utf8) { return a.name.utf8.lexicographicallyPrecedes(b.name.utf8) }
            return a.patternType.rawValue < b.patternType.rawValue
        }
        let resources = order.map { pattern in
            DescribeAclsResponse.DescribeAclsResource(
                resourceType: pattern.resourceType.rawValue, resourceName: pattern.name,
                patternType: pattern.patternType.rawValue,
                acls: entries[pattern]!.map {
                    .init(
                        principal: $0.principal, host: $0.host, operation: $0.operation.rawValue,
                        permissionType: $0.permissionType.rawValue)
                })
        }
        return DescribeAclsResponse(errorCode: 0, errorMessage: nil, resources: resources)
    }

    /// DescribeUserScramCredentials, answered by a broker from its image (Kafka's
    /// `ScramImage.describe`): every user with credentials when `users` is null or empty;
    /// otherwise each named user, RESOURCE_NOT_FOUND for one without credentials and
    /// DUPLICATE_RESOURCE for one named twice. Only mechanisms and iterations are told.
    public func describeUserScramCredentials(
        _ request: DescribeUserScramCredentialsRequest
    ) -> DescribeUserScramCredentialsResponse {
        typealias Result = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult
        var byUser: [[UInt8]: [ScramCredentialEntry]] = [:]
        var users: [String] = []
        for key in scramCredentials.keys.sorted() {
            let entry = scramCredentials[key]!
            if byUser[Array(key.user.utf8)] == nil { users.append(key.user) }
            byUser[Array(key.user.utf8), default: []].append(entry)
        }
        func infos(_ user: String) -> [DescribeUserScramCredentialsResponse.CredentialInfo] {
            (byUser[Array(user.utf8)] ?? []).map { .init(mechanism: $0.mechanism, iterations: $0.iterations) }
        }
        var results: [Result] = []
        if let requested = request.users, !requested.isEmpty {
            var counts: [[UInt8]: Int] = [:]
            for user in requested { counts[Array(user.name.utf8), default: 0] += 1 }
            var answered = Set<[UInt8]>()
            for user in requested {
                let bytes = Array(user.name.utf8)
                guard answered.insert(bytes).inserted else { continue }
                if counts[bytes]! > 1 {
                    results.append(
                        Result(
                            user: user.name, errorCode: ErrorCode.duplicateResource.rawValue,
                            errorMessage:
                                "Cannot describe SCRAM credentials for the same user twice in a single request: \(user.name)",
                            credentialInfos: []))
                } else if byUser[bytes] == nil {
                    results.append(
                        Result(
                            user: user.name, errorCode: ErrorCode.resourceNotFound.rawValue,
                            errorMessage: "Attempt to describe a user credential that does not exist: \(user.name)",
                            credentialInfos: []))
                } else {
                    results.append(
                        Result(user: user.name, errorCode: 0, errorMessage: nil, credentialInfos: infos(user.name)))
                }
            }
        } else {
            results = users.map { Result(user: $0, errorCode: 0, errorMessage: nil, credentialInfos: infos($0)) }
        }
        return DescribeUserScramCredentialsResponse(errorCode: 0, errorMessage: nil, results: results)
    }

    /// The SCRAM credential lookup a broker's `ScramServer` asks (from this image).
    public var scramCredentialLookup: ScramServer.CredentialLookup {
        let credentials = scramCredentials
        return { user, mechanism in
            credentials[ScramCredentialKey(user: user, mechanism: mechanism.rawValue)].map {
                ScramCredential(
                    salt: $0.salt, storedKey: $0.storedKey, serverKey: $0.serverKey, iterations: $0.iterations)
            }
        }
    }
}

extension StandardAuthorizer {
    /// An authorizer holding the image's ACL bindings.
    public init(image: MetadataImage, superUsers: Set<KafkaPrincipal> = [], allowEveryoneIfNoAclFound: Bool = false) {
        self.init(
            superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound,
            acls: image.acls.map { ($0.key, AclBinding($0.value)) })
    }

    /// Applies a metadata delta's ACL changes: bindings the new image holds are added (or
    /// replaced), the others removed. What a broker's metadata publisher calls.
    public mutating func apply(_ delta: MetadataDelta) {
        // Only when ACLs changed: the delta's image brings its partition indexes up to date.
        guard !delta.changedAcls.isEmpty else { return }
        let image = delta.image
        for id in delta.changedAcls {
            if let entry = image.acls[id] { add(id: id, binding: AclBinding(entry)) } else { remove(id: id) }
        }
    }

    /// Follows a published change: applies its ACL changes, and starts over from `image` when
    /// the two no longer agree on how many bindings there are (a snapshot replaced the state,
    /// and its delta names only what the snapshot holds, not what it dropped).
    public mutating func follow(_ delta: MetadataDelta, image: MetadataImage) {
        apply(delta)
        if aclCount != image.acls.count {
            self = StandardAuthorizer(
                image: image, superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound)
        }
    }
}
