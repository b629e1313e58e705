import NIOCore
import RunnelCore
import RunnelGroups
import RunnelMetadata
import RunnelSecurity
import RunnelTransactions
import RunnelWire

extension Broker {
    // MARK: FindCoordinator

    func findCoordinator(_ request: FindCoordinatorRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let keys = version >= 4 ? request.coordinatorKeys : [request.key]
        // The image this broker's replicas and coordinators follow: a client sent here is not
        // told of a coordinator this broker has not taken up yet.
        let image = replicaImage
        let auth = authorization(context)
        var answers: [FindCoordinatorResponse.Coordinator] = []
        for key in keys {
            var out = FindCoordinatorResponse.Coordinator(
                key: key, nodeId: -1, host: "", port: -1, errorCode: 0, errorMessage: nil)
            func fail(_ code: ErrorCode, _ message: String) {
                out.errorCode = code.rawValue
                out.errorMessage = message
            }
            // Key type 0 is a group (its __consumer_offsets partition), 1 a transactional id (its
            // __transaction_state partition); the coordinator is that partition's leader. Kafka's
            // handleFindCoordinatorRequest asks for DESCRIBE on the group or transactional id.
            let transactional = request.keyType == 1
            let topicName = transactional ? TransactionLog.topicName : OffsetsTopic.name
            if request.keyType != 0 && !transactional {
                fail(.invalidRequest, "Unknown coordinator key type \(request.keyType).")
            } else if !transactional && !auth.allows(.describe, .group(key)) {
                fail(.groupAuthorizationFailed, "Not authorized to describe group \(key).")
            } else if transactional && !auth.allows(.describe, .transactionalId(key)) {
                fail(.transactionalIdAuthorizationFailed, "Not authorized to describe transactional id \(key).")
            } else if key.isEmpty {
                fail(.invalidRequest, transactional ? "The transactional id is empty." : "The group id is empty.")
            } else if let topic = image.topic(named: topicName), topic.partitionCount > 0 {
                let count = Int32(topic.partitionCount)
                let p =
                    transactional
                    ? TransactionLog.partition(for: key, partitions: count)
                    : OffsetsTopic.partition(for: key, partitions: count)
                let leader = topic.partitions[p]?.leader ?? -1
                // A leader that stepped aside here is no coordinator to send clients to.
                let asideHere = leader == settings.nodeId && steppedAside(TopicPartition(topicName, p))
                if leader >= 0, !asideHere,
                    let broker = liveBrokers(image, listener: context.listener).first(where: { $0.id == leader })
                {
                    out.nodeId = broker.id
                    out.host = broker.host
                    out.port = Int32(broker.port)
                } else {
                    fail(.coordinatorNotAvailable, "The coordinator's partition has no leader yet.")
                }
            } else if self.image.topic(named: topicName) != nil {
                fail(.coordinatorNotAvailable, "The coordinator's partitions are being opened.")
            } else if transactional {
                createTransactionStateTopic()
                fail(.coordinatorNotAvailable, "The transaction state topic is being created.")
            } else {
                createOffsetsTopic()
                fail(.coordinatorNotAvailable, "The offsets topic is being created.")
            }
            answers.append(out)
        }
        var response = FindCoordinatorResponse()
        if version >= 4 {
            response.coordinators = answers
        } else if let a = answers.first {
            response.errorCode = a.errorCode
            response.errorMessage = a.errorMessage
            response.nodeId = a.nodeId
            response.host = a.host
            response.port = a.port
        }
        return respond(response, version: version, context: context)
    }

    /// Asks the controller for `__consumer_offsets` (compacted; `offsets.topic.num.partitions`,
    /// `offsets.topic.replication.factor` capped at the brokers there are, so a small cluster
    /// still gets one).
    func createOffsetsTopic() {
        let config = settings.staticConfig
        let partitions = config["offsets.topic.num.partitions"].flatMap { Int32($0) } ?? 50
        let wanted = config["offsets.topic.replication.factor"].flatMap { Int16($0) } ?? 3
        let brokers = Int16(clamping: image.brokers.values.filter { !$0.fenced }.count)
        let rf = max(1, min(wanted, brokers))
        var request = CreateTopicsRequest()
        request.topics = [
            .init(
                name: OffsetsTopic.name, numPartitions: partitions, replicationFactor: rf,
                configs: [
                    .init(name: "cleanup.policy", value: "compact"), .init(name: "compression.type", value: "producer"),
                    .init(name: "segment.bytes", value: config["offsets.topic.segment.bytes"] ?? "104857600"),
                ])
        ]
        request.timeoutMs = 30_000
        createInternalTopic(request)
    }

    /// Asks the controller for `__transaction_state` (compacted;
    /// `transaction.state.log.num.partitions`, `transaction.state.log.replication.factor` capped
    /// at the brokers there are, and `transaction.state.log.min.isr` capped at that, so a small
    /// cluster still gets one its coordinator can write to).
    func createTransactionStateTopic() {
        let config = settings.staticConfig
        let partitions = config["transaction.state.log.num.partitions"].flatMap { Int32($0) } ?? 50
        let wanted = config["transaction.state.log.replication.factor"].flatMap { Int16($0) } ?? 3
        let brokers = Int16(clamping: image.brokers.values.filter { !$0.fenced }.count)
        let rf = max(1, min(wanted, brokers))
        let minIsr = max(1, min(config["transaction.state.log.min.isr"].flatMap { Int16($0) } ?? 2, rf))
        var request = CreateTopicsRequest()
        request.topics = [
            .init(
                name: TransactionLog.topicName, numPartitions: partitions, replicationFactor: rf,
                configs: [
                    .init(name: "cleanup.policy", value: "compact"),
                    .init(name: "compression.type", value: "uncompressed"),
                    .init(name: "min.insync.replicas", value: "\(minIsr)"),
                    .init(name: "unclean.leader.election.enable", value: "false"),
                    .init(name: "segment.bytes", value: config["transaction.state.log.segment.bytes"] ?? "104857600"),
                ])
        ]
        request.timeoutMs = 30_000
        createInternalTopic(request)
    }
}

extension Broker {
    // MARK: group requests, authorized (Kafka's handle*GroupRequest checks)

    /// What `context`'s principal may touch in a group request needing `operation` on the group.
    func groupAccess(_ context: RequestContext, _ operation: AclOperation) -> GroupAccess {
        let auth = authorization(context)
        guard auth.enabled else { return .all }
        return GroupAccess(
            group: { auth.allows(operation, .group($0)) }, topic: { auth.allows(.read, .topic($0)) },
            describeTopic: { auth.allows(.describe, .topic($0)) }, groupOperations: { auth.operationsField(.group($0)) }
        )
    }

    /// Membership requests need READ on the group.
    func handleGroupRequest(
        _ key: ApiKey, _ request: IncomingRequest, version: Int16, context: RequestContext
    ) throws -> RequestOutcome {
        let refused = ErrorCode.groupAuthorizationFailed.rawValue
        let read = groupAccess(context, .read)
        switch key {
        case .joinGroup:
            let r = try decode(JoinGroupRequest.self, request)
            guard read.group(r.groupId) else {
                return respond(
                    JoinGroupResponse(
                        errorCode: refused, generationId: -1, protocolName: version >= 7 ? nil : "", leader: "",
                        memberId: r.memberId),
                    version: version, context: context)
            }
            return groups.joinGroup(r, version: version, clientId: request.header.clientId ?? "", context: context)
        case .syncGroup:
            let r = try decode(SyncGroupRequest.self, request)
            guard read.group(r.groupId) else {
                return respond(SyncGroupResponse(errorCode: refused), version: version, context: context)
            }
            return groups.syncGroup(r, version: version, context: context)
        case .heartbeat:
            let r = try decode(HeartbeatRequest.self, request)
            guard read.group(r.groupId) else {
                return respond(HeartbeatResponse(errorCode: refused), version: version, context: context)
            }
            return groups.heartbeat(r, version: version, context: context)
        case .leaveGroup:
            let r = try decode(LeaveGroupRequest.self, request)
            guard read.group(r.groupId) else {
                var response = LeaveGroupResponse()
                response.errorCode = refused
                return respond(response, version: version, context: context)
            }
            return groups.leaveGroup(r, version: version, context: context)
        case .offsetCommit:
            // Kafka's handleOffsetCommitRequest: a partition the metadata does not know is
            // UNKNOWN_TOPIC_OR_PARTITION (after the topic's authorization).
            let r = try decode(OffsetCommitRequest.self, request)
            let image = self.image
            var unknown: [TopicPartition: ErrorCode] = [:]
            for t in r.topics {
                for p in t.partitions where image.partition(TopicPartition(t.name, p.partitionIndex)) == nil {
                    unknown[TopicPartition(t.name, p.partitionIndex)] = .unknownTopicOrPartition
                }
            }
            return groups.offsetCommit(r, version: version, context: context, access: read, refused: unknown)
        case .offsetFetch:
            return groups.offsetFetch(
                try decode(OffsetFetchRequest.self, request), version: version, context: context,
                access: groupAccess(context, .describe))
        case .offsetDelete:
            return groups.offsetDelete(
                try decode(OffsetDeleteRequest.self, request), version: version, context: context,
                access: groupAccess(context, .delete))
        case .listGroups:
            // DESCRIBE on the cluster lists every group; otherwise those the principal may describe.
            let auth = authorization(context)
            let access = auth.allows(.describe, .cluster) ? .all : groupAccess(context, .describe)
            return groups.listGroups(
                try decode(ListGroupsRequest.self, request), version: version, context: context, access: access)
        case .describeGroups:
            return groups.describeGroups(
                try decode(DescribeGroupsRequest.self, request), version: version, context: context,
                access: groupAccess(context, .describe))
        case .deleteGroups:
            return groups.deleteGroups(
                try decode(DeleteGroupsRequest.self, request), version: version, context: context,
                access: groupAccess(context, .delete))
        default:
            return .close(reason: "\(key.name) is not a group request")
        }
    }
}
