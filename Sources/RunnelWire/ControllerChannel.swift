import NIOCore

/// How a broker reaches the active controller: admin requests are forwarded there, and the
/// broker registers itself. Single-node mode answers in-process; a cluster sends them over the
/// network to the active controller.
public protocol ControllerChannel: Sendable {
    /// Sends a request the controller handles (CreateTopics, DeleteTopics, CreatePartitions,
    /// IncrementalAlterConfigs, AlterConfigs, BrokerRegistration, ...). The future completes once
    /// the controller's answer is known and, for writes, once this broker's metadata image has
    /// caught up with the records it committed.
    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response>
}

/// Answers to the requests a controller handles.
public enum ControllerRequests {
    /// The answer to a controller request when it could not run: `code` on every item.
    public static func failure<R: RequestMessage>(_ request: R, code: ErrorCode) -> R.Response? {
        let message = "The active controller is not available; retry."
        switch request {
        case let r as CreateTopicsRequest:
            return CreateTopicsResponse(
                topics: r.topics.map {
                    .init(name: $0.name, errorCode: code.rawValue, errorMessage: message, configs: nil)
                }) as? R.Response
        case let r as DeleteTopicsRequest:
            let byName = r.topicNames.map {
                DeleteTopicsResponse.DeletableTopicResult(name: $0, errorCode: code.rawValue, errorMessage: message)
            }
            let byState = r.topics.map {
                DeleteTopicsResponse.DeletableTopicResult(
                    name: $0.name, topicId: $0.topicId, errorCode: code.rawValue, errorMessage: message)
            }
            return DeleteTopicsResponse(responses: byName + byState) as? R.Response
        case let r as CreatePartitionsRequest:
            return CreatePartitionsResponse(
                results: r.topics.map { .init(name: $0.name, errorCode: code.rawValue, errorMessage: message) })
                as? R.Response
        case let r as IncrementalAlterConfigsRequest:
            return IncrementalAlterConfigsResponse(
                responses: r.resources.map {
                    .init(
                        errorCode: code.rawValue, errorMessage: message, resourceType: $0.resourceType,
                        resourceName: $0.resourceName)
                }) as? R.Response
        case let r as AlterConfigsRequest:
            return AlterConfigsResponse(
                responses: r.resources.map {
                    .init(
                        errorCode: code.rawValue, errorMessage: message, resourceType: $0.resourceType,
                        resourceName: $0.resourceName)
                }) as? R.Response
        case is DescribeQuorumRequest:
            return DescribeQuorumResponse(errorCode: code.rawValue, errorMessage: message) as? R.Response
        case is AllocateProducerIdsRequest:
            return AllocateProducerIdsResponse(errorCode: code.rawValue) as? R.Response
        case is BrokerRegistrationRequest:
            return BrokerRegistrationResponse(errorCode: code.rawValue) as? R.Response
        case is ControllerRegistrationRequest:
            return ControllerRegistrationResponse(errorCode: code.rawValue, errorMessage: message) as? R.Response
        case is BrokerHeartbeatRequest:
            return BrokerHeartbeatResponse(errorCode: code.rawValue) as? R.Response
        case is UnregisterBrokerRequest:
            return UnregisterBrokerResponse(errorCode: code.rawValue) as? R.Response
        case is AlterPartitionRequest:
            return AlterPartitionResponse(errorCode: code.rawValue) as? R.Response
        case let r as AlterPartitionReassignmentsRequest:
            return AlterPartitionReassignmentsResponse(
                errorCode: code.rawValue, errorMessage: message,
                responses: r.topics.map { t in
                    .init(
                        name: t.name,
                        partitions: t.partitions.map {
                            .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue, errorMessage: message)
                        })
                }) as? R.Response
        case is ListPartitionReassignmentsRequest:
            return ListPartitionReassignmentsResponse(errorCode: code.rawValue, errorMessage: message, topics: [])
                as? R.Response
        case let r as ElectLeadersRequest:
            return ElectLeadersResponse(
                errorCode: code.rawValue,
                replicaElectionResults: (r.topicPartitions ?? []).map { t in
                    .init(
                        topic: t.topic,
                        partitionResult: t.partitions.map {
                            .init(partitionId: $0, errorCode: code.rawValue, errorMessage: message)
                        })
                }) as? R.Response
        case let r as CreateAclsRequest:
            return CreateAclsResponse(
                results: r.creations.map { _ in .init(errorCode: code.rawValue, errorMessage: message) }) as? R.Response
        case let r as DeleteAclsRequest:
            return DeleteAclsResponse(
                filterResults: r.filters.map { _ in
                    .init(errorCode: code.rawValue, errorMessage: message, matchingAcls: [])
                }) as? R.Response
        case let r as UpdateFeaturesRequest:
            // Kafka answers a request-wide error on the top level and on every feature.
            return UpdateFeaturesResponse(
                throttleTimeMs: 0, errorCode: code.rawValue, errorMessage: message,
                results: r.featureUpdates.map {
                    .init(feature: $0.feature, errorCode: code.rawValue, errorMessage: message)
                })
                as? R.Response
        case let r as AlterUserScramCredentialsRequest:
            return AlterUserScramCredentialsResponse(
                results: (r.deletions.map(\.name) + r.upsertions.map(\.name)).map {
                    .init(user: $0, errorCode: code.rawValue, errorMessage: message)
                }) as? R.Response
        case is UnregisterBrokerRequest:
            return UnregisterBrokerResponse(throttleTimeMs: 0, errorCode: code.rawValue, errorMessage: message)
                as? R.Response
        case let r as AlterClientQuotasRequest:
            return AlterClientQuotasResponse(
                throttleTimeMs: 0,
                entries: r.entries.map { entry in
                    .init(
                        errorCode: code.rawValue, errorMessage: message,
                        entity: entry.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
                }) as? R.Response
        default:
            return nil
        }
    }
}
