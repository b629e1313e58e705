import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire

// The admin requests a broker forwards to the active controller, checked first as Kafka's
// ControllerApis checks them for the client that sent them: the items the client may not touch
// are answered here with the authorization error, the rest go to the controller, and the two
// answers are merged.

extension Broker {
    /// Forwards `allowed` (nil: nothing to forward) and completes the answer with `complete`,
    /// which adds the refused items.
    func forwardAllowed<R: RequestMessage>(
        _ allowed: R?, version: Int16, context: RequestContext,
        complete: @escaping @Sendable (R.Response?) -> R.Response
    ) -> RequestOutcome {
        guard let allowed else { return respond(complete(nil), version: version, context: context) }
        let allocator = context.allocator
        return .respond(
            forwarded(allowed, version: version, context: context).map {
                OutgoingResponse(complete($0), version: version, allocator: allocator)
            })
    }

    /// CreateTopics: CREATE on the cluster or on the topic.
    func createTopics(_ request: CreateTopicsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        guard auth.enabled else { return forward(request, version: version, context: context) }
        let onCluster = auth.allows(.create, .cluster)
        var allowed = request
        allowed.topics = request.topics.filter { onCluster || auth.allows(.create, .topic($0.name)) }
        let refused = request.topics.filter { t in !allowed.topics.contains { $0.name == t.name } }.map(\.name)
        return forwardAllowed(allowed.topics.isEmpty ? nil : allowed, version: version, context: context) { response in
            var out = response ?? CreateTopicsResponse()
            out.topics += refused.map {
                .init(name: $0, errorCode: ErrorCode.topicAuthorizationFailed.rawValue, errorMessage: nil, configs: nil)
            }
            return out
        }
    }

    /// DeleteTopics: DELETE on each topic (by name, or by the name its id has in the image).
    func deleteTopics(_ request: DeleteTopicsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        guard auth.enabled else { return forward(request, version: version, context: context) }
        let image = self.image
        var allowed = request
        allowed.topicNames = request.topicNames.filter { auth.allows(.delete, .topic($0)) }
        var refused: [DeleteTopicsResponse.DeletableTopicResult] = request.topicNames.filter {
            !auth.allows(.delete, .topic($0))
        }.map {
            .init(name: $0, errorCode: ErrorCode.topicAuthorizationFailed.rawValue, errorMessage: nil)
        }
        allowed.topics = []
        for state in request.topics {
            let name = state.name ?? image.topic(id: state.topicId)?.name
            if let name, !auth.allows(.delete, .topic(name)) {
                refused.append(
                    .init(
                        name: state.name, topicId: state.topicId,
                        errorCode: ErrorCode.topicAuthorizationFailed.rawValue, errorMessage: nil))
            } else {
                allowed.topics.append(state)
            }
        }
        let refusedResults = refused
        let nothing = allowed.topics.isEmpty && allowed.topicNames.isEmpty
        return forwardAllowed(nothing ? nil : allowed, version: version, context: context) { response in
            var out = response ?? DeleteTopicsResponse()
            out.responses += refusedResults
            return out
        }
    }

    /// CreatePartitions: ALTER on each topic.
    func createPartitions(_ request: CreatePartitionsRequest, version: Int16, context: RequestContext) -> RequestOutcome
    {
        let auth = authorization(context)
        guard auth.enabled else { return forward(request, version: version, context: context) }
        var allowed = request
        allowed.topics = request.topics.filter { auth.allows(.alter, .topic($0.name)) }
        let refused = request.topics.filter { !auth.allows(.alter, .topic($0.name)) }.map(\.name)
        return forwardAllowed(allowed.topics.isEmpty ? nil : allowed, version: version, context: context) { response in
            var out = response ?? CreatePartitionsResponse()
            out.results += refused.map {
                .init(name: $0, errorCode: ErrorCode.topicAuthorizationFailed.rawValue, errorMessage: nil)
            }
            return out
        }
    }

    /// The error for a config resource the principal may not `operation` (ALTER_CONFIGS or
    /// DESCRIBE_CONFIGS), or nil when it may: topics by name, brokers and broker loggers on the
    /// cluster, groups by name (Kafka's ConfigHelper / ControllerApis).
    static func configRefusal(
        _ auth: RequestAuthorization, _ operation: AclOperation, resourceType: Int8, name: String
    ) -> ErrorCode? {
        switch resourceType {
        case 2: return auth.allows(operation, .topic(name)) ? nil : .topicAuthorizationFailed
        case 4, 8: return auth.allows(operation, .cluster) ? nil : .clusterAuthorizationFailed
        case 32: return auth.allows(operation, .group(name)) ? nil : .groupAuthorizationFailed
        default: return nil
        }
    }

    /// A config change's resources as Kafka's handlers screen them before forwarding: answered
    /// here are those the principal may not alter (their ALTER_CONFIGS refusal, see
    /// `configRefusal`) and changes to this broker's own configs that its TLS listeners cannot
    /// load (INVALID_REQUEST and why, see `BrokerSettings.dynamicTLSProblem`); the rest go to the
    /// controller, in request order. `resulting`: a broker resource's dynamic configs after its
    /// change.
    func screenConfigChanges<R>(
        _ resources: [R], _ auth: RequestAuthorization, type: (R) -> Int8, name: (R) -> String,
        resulting: (R) -> [String: String]
    ) -> (forward: [R], answered: [(type: Int8, name: String, code: ErrorCode, message: String?)]) {
        var forward: [R] = []
        var answered: [(type: Int8, name: String, code: ErrorCode, message: String?)] = []
        for resource in resources {
            let (resourceType, resourceName) = (type(resource), name(resource))
            if let code = Self.configRefusal(auth, .alterConfigs, resourceType: resourceType, name: resourceName) {
                answered.append((resourceType, resourceName, code, nil))
            } else if resourceType == ConfigResourceType.broker.rawValue, resourceName == String(settings.nodeId),
                let check = settings.dynamicTLSProblem, let problem = check(resulting(resource))
            {
                answered.append((resourceType, resourceName, .invalidRequest, problem))
            } else {
                forward.append(resource)
            }
        }
        return (forward, answered)
    }

    /// IncrementalAlterConfigs: ALTER_CONFIGS on each resource; a change to this broker's TLS
    /// stores must load first.
    func incrementalAlterConfigs(
        _ request: IncrementalAlterConfigsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        let image = self.image
        let (resources, answered) = screenConfigChanges(
            request.resources, authorization(context), type: \.resourceType, name: \.resourceName
        ) { resource in
            var configs = image.configs(of: ConfigResource(.broker, resource.resourceName))
            for config in resource.configs {
                switch config.configOperation {
                case 0: configs[config.name] = config.value
                case 1: configs.removeValue(forKey: config.name)
                default: break
                }
            }
            return configs
        }
        if answered.isEmpty { return forward(request, version: version, context: context) }
        var allowed = request
        allowed.resources = resources
        return forwardAllowed(allowed.resources.isEmpty ? nil : allowed, version: version, context: context) {
            var out = $0 ?? IncrementalAlterConfigsResponse()
            out.responses += answered.map {
                .init(
                    errorCode: $0.code.rawValue, errorMessage: $0.message, resourceType: $0.type, resourceName: $0.name)
            }
            return out
        }
    }

    /// AlterConfigs: ALTER_CONFIGS on each resource; its configs replace the resource's whole
    /// set, and a change to this broker's TLS stores must load first.
    func alterConfigs(_ request: AlterConfigsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let (resources, answered) = screenConfigChanges(
            request.resources, authorization(context), type: \.resourceType, name: \.resourceName
        ) { resource in
            Dictionary(resource.configs.compactMap { c in c.value.map { (c.name, $0) } }) { _, last in last }
        }
        if answered.isEmpty { return forward(request, version: version, context: context) }
        var allowed = request
        allowed.resources = resources
        return forwardAllowed(allowed.resources.isEmpty ? nil : allowed, version: version, context: context) {
            var out = $0 ?? AlterConfigsResponse()
            out.responses += answered.map {
                .init(
                    errorCode: $0.code.rawValue, errorMessage: $0.message, resourceType: $0.type, resourceName: $0.name)
            }
            return out
        }
    }

    /// ElectLeaders: ALTER on the cluster, or CLUSTER_AUTHORIZATION_FAILED for the whole request.
    func electLeaders(_ request: ElectLeadersRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        guard authorization(context).allows(.alter, .cluster) else {
            let code = ErrorCode.clusterAuthorizationFailed.rawValue
            return respond(
                ElectLeadersResponse(
                    errorCode: code,
                    replicaElectionResults: (request.topicPartitions ?? []).map { t in
                        .init(
                            topic: t.topic,
                            partitionResult: t.partitions.map {
                                .init(partitionId: $0, errorCode: code, errorMessage: nil)
                            })
                    }), version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// AlterPartitionReassignments (KIP-455): ALTER on the cluster, or CLUSTER_AUTHORIZATION_FAILED
    /// for the whole request; the active controller answers.
    func alterPartitionReassignments(
        _ request: AlterPartitionReassignmentsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        guard authorization(context).allows(.alter, .cluster) else {
            let refused = ControllerRequests.failure(request, code: .clusterAuthorizationFailed)!
            return respond(refused, version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// ListPartitionReassignments (KIP-455): DESCRIBE on the cluster; the active controller answers.
    func listPartitionReassignments(
        _ request: ListPartitionReassignmentsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        guard authorization(context).allows(.describe, .cluster) else {
            let refused = ControllerRequests.failure(request, code: .clusterAuthorizationFailed)!
            return respond(refused, version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }
}
