import NIOCore
import RunnelCore
import RunnelGroups
import RunnelMetadata
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
            if request.keyType == 1 {
                fail(.coordinatorNotAvailable, "Transactions are not supported by this broker yet.")
            } else if key.isEmpty {
                fail(.invalidRequest, "The group id is empty.")
            } else if let topic = image.topic(named: OffsetsTopic.name), topic.partitionCount > 0 {
                let p = OffsetsTopic.partition(for: key, partitions: Int32(topic.partitionCount))
                let leader = topic.partitions[p]?.leader ?? -1
                // A leader that stepped aside here is no coordinator to send clients to.
                let asideHere = leader == settings.nodeId && steppedAside(TopicPartition(OffsetsTopic.name, p))
                if leader >= 0, !asideHere, let broker = liveBrokers(image, listener: context.listener).first(where: { $0.id == leader }) {
                    out.nodeId = broker.id
                    out.host = broker.host
                    out.port = Int32(broker.port)
                } else {
                    fail(.coordinatorNotAvailable, "The coordinator's partition has no leader yet.")
                }
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
}
