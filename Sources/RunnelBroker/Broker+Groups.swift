import NIOCore
import RunnelCore
import RunnelGroups
import RunnelMetadata
import RunnelTransactions
import RunnelWire

extension Broker {
    // MARK: FindCoordinator

    func findCoordinator(_ request: FindCoordinatorRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let keys = version >= 4 ? request.coordinatorKeys : [request.key]
        let image = self.image
        var answers: [FindCoordinatorResponse.Coordinator] = []
        for key in keys {
            var out = FindCoordinatorResponse.Coordinator(key: key, nodeId: -1, host: "", port: -1, errorCode: 0, errorMessage: nil)
            func fail(_ code: ErrorCode, _ message: String) {
                out.errorCode = code.rawValue
                out.errorMessage = message
            }
            // Key type 0 is a group (its __consumer_offsets partition), 1 a transactional id (its
            // __transaction_state partition); the coordinator is that partition's leader.
            let transactional = request.keyType == 1
            let topicName = transactional ? TransactionLog.topicName : OffsetsTopic.name
            if request.keyType != 0 && !transactional {
                fail(.invalidRequest, "Unknown coordinator key type \(request.keyType).")
            } else if key.isEmpty {
                fail(.invalidRequest, transactional ? "The transactional id is empty." : "The group id is empty.")
            } else if let topic = image.topic(named: topicName), topic.partitionCount > 0 {
                let count = Int32(topic.partitionCount)
                let p = transactional ? TransactionLog.partition(for: key, partitions: count) : OffsetsTopic.partition(for: key, partitions: count)
                let leader = topic.partitions[p]?.leader ?? -1
                // A leader that stepped aside here is no coordinator to send clients to.
                let asideHere = leader == settings.nodeId && steppedAside(TopicPartition(topicName, p))
                if leader >= 0, !asideHere, let broker = liveBrokers(image, listener: context.listener).first(where: { $0.id == leader }) {
                    out.nodeId = broker.id
                    out.host = broker.host
                    out.port = Int32(broker.port)
                } else {
                    fail(.coordinatorNotAvailable, "The coordinator's partition has no leader yet.")
                }
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
        request.topics = [.init(name: OffsetsTopic.name, numPartitions: partitions, replicationFactor: rf, configs: [
            .init(name: "cleanup.policy", value: "compact"), .init(name: "compression.type", value: "producer"),
            .init(name: "segment.bytes", value: config["offsets.topic.segment.bytes"] ?? "104857600"),
        ])]
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
        request.topics = [.init(name: TransactionLog.topicName, numPartitions: partitions, replicationFactor: rf, configs: [
            .init(name: "cleanup.policy", value: "compact"), .init(name: "compression.type", value: "uncompressed"),
            .init(name: "min.insync.replicas", value: "\(minIsr)"), .init(name: "unclean.leader.election.enable", value: "false"),
            .init(name: "segment.bytes", value: config["transaction.state.log.segment.bytes"] ?? "104857600"),
        ])]
        request.timeoutMs = 30_000
        createInternalTopic(request)
    }
}
