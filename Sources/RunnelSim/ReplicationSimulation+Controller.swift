import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelWire

/// The active controller of the replication simulation: one real `QuorumController` whose
/// records are committed by replaying them at once (the quorum that would commit them is
/// simulated by `QuorumSimulation`). It does what `MetadataQuorum` and the controller channel
/// do around the commands: broker sessions renewed by heartbeats and expired every 250 ms,
/// registrations, AlterPartition, and metadata fetches that long-poll for the next image.
final class SimController {
    unowned let world: ReplicationSimulation
    var controller: QuorumController
    var nextOffset: Int64 = 0
    var sessions = BrokerSessions()
    /// Brokers' metadata fetches waiting for a newer image.
    var waitingFetches: [(answered: Flag, reply: (MetadataImage?) -> Void)] = []
    static let clusterId = "sim-cluster"

    init(world: ReplicationSimulation) {
        self.world = world
        controller = QuorumController(resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: ReplicationSimulation.controllerId))
    }

    var image: MetadataImage { controller.image }

    func registration(_ partition: Int32) -> PartitionRegistration? {
        image.partition(world.topicPartition(partition))
    }

    func brokerEpoch(_ id: Int32) -> Int64 { image.brokers[NodeID(id)]?.epoch ?? -1 }

    func start() {
        scheduleSessionCheck()
    }

    /// Every 250 ms, fence brokers whose heartbeats stopped (MetadataQuorum.checkSessions).
    private func scheduleSessionCheck() {
        world.after(250) { [self] in
            let expired = sessions.expired(image: image, nowMs: world.now, sessionTimeoutMs: world.options.sessionTimeoutMs)
            if !expired.isEmpty {
                world.note("controller: sessions of \(expired.map(\.rawValue)) expired")
                commit(controller.fenceBrokers(expired).records)
            }
            scheduleSessionCheck()
        }
    }

    /// Commits records: replays them into the image (as every controller and broker does once
    /// the quorum's high watermark passes them), then answers waiting metadata fetches.
    func commit(_ records: [MetadataRecord]) {
        guard !records.isEmpty else { return }
        let withOffsets = records.enumerated().map { (record: $0.element, offset: nextOffset + Int64($0.offset)) }
        nextOffset += Int64(records.count)
        controller.replay(withOffsets, epoch: 1)
        for (record, offset) in withOffsets {
            if case .partitionChange(let r) = record {
                if r.leader != PartitionChange.noLeaderChange { world.stats.leaderChanges += 1 }
                if r.isr != nil { world.stats.isrChanges += 1 }
            }
            world.note("controller: @\(offset) \(describe(record))")
        }
        let waiting = waitingFetches
        waitingFetches = []
        for fetch in waiting where !fetch.answered.value {
            fetch.answered.value = true
            fetch.reply(image)
        }
        maybeCreateTopic()
    }

    func describe(_ record: MetadataRecord) -> String {
        switch record {
        case .registerBroker(let r): return "RegisterBroker \(r.brokerId) epoch \(r.brokerEpoch) fenced \(r.fenced)"
        case .brokerRegistrationChange(let r): return "BrokerRegistrationChange \(r.brokerId) fenced \(r.fenced)"
        case .partitionChange(let r):
            var parts = ["PartitionChange p\(r.partitionId)"]
            if r.leader != PartitionChange.noLeaderChange {
                parts.append("leader \(r.leader)")
            }
            if let isr = r.isr {
                parts.append("isr \(isr)")
            }
            if r.leaderRecoveryState >= 0 { parts.append("recovery \(r.leaderRecoveryState)") }
            if let p = registration(r.partitionId) { parts.append("-> leader \(p.leader) epoch \(p.leaderEpoch)/\(p.partitionEpoch) isr \(p.isr)") }
            return parts.joined(separator: " ")
        case .partition(let r): return "Partition p\(r.partitionId) replicas \(r.replicas) isr \(r.isr) leader \(r.leader)"
        case .topic(let r): return "Topic \(r.name)"
        case .config(let r): return "Config \(r.resourceName) \(r.name)=\(r.value ?? "-")"
        default: return "\(record)"
        }
    }

    /// Creates the topic once every broker is registered and unfenced (an admin's CreateTopics).
    func maybeCreateTopic() {
        guard !world.topicCreated else { return }
        let live = image.brokers.values.filter { !$0.fenced }.count
        guard live == world.brokerIds.count else { return }
        var request = CreateTopicsRequest()
        var topic = CreateTopicsRequest.CreatableTopic(name: ReplicationSimulation.topic, numPartitions: Int32(world.options.partitions), replicationFactor: 3)
        let unclean = world.options.broken.contains(.uncleanLeaderElection)
        topic.configs = [
            .init(name: "min.insync.replicas", value: "\(world.options.minInsyncReplicas)"),
            .init(name: "unclean.leader.election.enable", value: unclean ? "true" : "false"),
        ]
        request.topics = [topic]
        let result = controller.createTopics(request, version: 7) { KafkaUUID.random(using: &world.rng) }
        guard let answer = result.response.topics.first, answer.errorCode == 0 else {
            world.fail("the controller could not create the topic: \(result.response)")
            return
        }
        world.topicCreated = true
        commit(result.records)
    }

    // MARK: requests

    func register(_ request: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
        let result = controller.registerBroker(
            request, clusterId: Self.clusterId, nextOffset: nextOffset,
            hasLiveSession: { [self] id in sessions.isAlive(id, nowMs: world.now, sessionTimeoutMs: world.options.sessionTimeoutMs) })
        commit(result.records)
        return result.response
    }

    /// MetadataQuorum.heartbeat: renews the session of the registered incarnation, then runs the command.
    func heartbeat(_ request: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        if image.brokers[NodeID(request.brokerId)]?.epoch == request.brokerEpoch {
            sessions.touch(NodeID(request.brokerId), nowMs: world.now)
        }
        let result = controller.brokerHeartbeat(request)
        commit(result.records)
        return result.response
    }

    func alterPartition(_ request: AlterPartitionRequest, version: Int16) -> AlterPartitionResponse {
        let result = controller.alterPartition(request, version: version)
        commit(result.records)
        return result.response
    }

    /// Answers with the image once it is newer than `after` (the broker's applied offset), or
    /// after 500 ms with nothing (a long-polling metadata fetch).
    func metadataFetch(after offset: Int64, reply: @escaping (MetadataImage?) -> Void) {
        if image.provenance.lastOffset > offset {
            reply(image)
            return
        }
        let answered = Flag()
        waitingFetches.append((answered, reply))
        world.after(500) { [self] in
            guard !answered.value else { return }
            answered.value = true
            waitingFetches.removeAll { $0.answered.value }
            reply(nil)
        }
    }
}
