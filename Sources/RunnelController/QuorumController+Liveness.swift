import RunnelCore
import RunnelMetadata
import RunnelWire

/// What the active controller knows of broker sessions: when each broker last heartbeated. Not
/// part of the metadata log (a new active controller starts every session afresh, as Kafka does).
public struct BrokerSessions: Sendable, Equatable {
    public private(set) var lastHeartbeatMs: [NodeID: Int64] = [:]
    public init() {}

    public mutating func touch(_ id: NodeID, nowMs: Int64) { lastHeartbeatMs[id] = nowMs }
    public mutating func remove(_ id: NodeID) { lastHeartbeatMs.removeValue(forKey: id) }

    /// Starts a session for every registered, unfenced broker (on becoming the active controller).
    public mutating func reset(image: MetadataImage, nowMs: Int64) {
        lastHeartbeatMs = [:]
        for (id, broker) in image.brokers where !broker.fenced { lastHeartbeatMs[id] = nowMs }
    }

    /// Unfenced brokers whose last heartbeat is older than the session timeout.
    public func expired(image: MetadataImage, nowMs: Int64, sessionTimeoutMs: Int64) -> [NodeID] {
        image.brokers.values.filter { !$0.fenced && nowMs - (lastHeartbeatMs[$0.id] ?? nowMs) > sessionTimeoutMs }.map(
            \.id
        ).sorted()
    }

    public func isAlive(_ id: NodeID, nowMs: Int64, sessionTimeoutMs: Int64) -> Bool {
        guard let last = lastHeartbeatMs[id] else { return false }
        return nowMs - last <= sessionTimeoutMs
    }
}

extension QuorumController {
    /// Brokers that can lead: registered, unfenced, not shutting down.
    func liveBrokerIds(_ image: MetadataImage) -> Set<Int32> {
        Set(image.brokers.values.filter { !$0.fenced && !$0.inControlledShutdown }.map(\.id.rawValue))
    }

    /// Partition changes after the live set changed: partitions whose leader is gone get the first
    /// live ISR member (in replica order), brokers gone leave the ISR (never emptying it), and
    /// leaderless partitions take a live ISR member back. With `unclean.leader.election.enable`
    /// a partition with no live ISR member takes any live replica, recorded as recovering.
    ///
    /// Only partitions that name a broker outside `live` (as a replica, ISR member or leader) or
    /// have no leader can change, so those are the ones looked at, through the image's partition
    /// indexes: fencing one broker of a million-partition cluster walks the topics' broker
    /// index and that broker's partitions, not every partition. Changes come in topic name order, then partition order.
    public func electionChanges(image: MetadataImage, live: Set<Int32>) -> [PartitionChangeRecord] {
        var candidates: [KafkaUUID: Set<Int32>] = [:]
        for (topicId, entry) in image.brokerIndexByTopic {
            for (broker, indexes) in entry where !live.contains(broker) {
                candidates[topicId, default: []].formUnion(indexes)
            }
        }
        for (topicId, indexes) in image.leaderlessPartitions { candidates[topicId, default: []].formUnion(indexes) }
        let topics = candidates.keys.compactMap { image.topic(id: $0) }.sorted { $0.name < $1.name }
        var changes: [PartitionChangeRecord] = []
        for topic in topics {
            let name = topic.name
            let unclean = resolver.topicValue("unclean.leader.election.enable", topic: name, image: image) == "true"
            for index in candidates[topic.id]!.sorted() {
                guard let p = topic.partitions[index] else { continue }
                if let change = Self.electionChange(
                    p, partitionId: index, topicId: topic.id, live: live, unclean: unclean)
                {
                    changes.append(change)
                }
            }
        }
        return changes
    }

    /// The change one partition needs for the live set `live` (see `electionChanges`), if any.
    public static func electionChange(
        _ p: PartitionRegistration, partitionId: Int32, topicId: KafkaUUID, live: Set<Int32>, unclean: Bool
    ) -> PartitionChangeRecord? {
        var isr = p.isr.filter { live.contains($0) }
        if isr.isEmpty {
            // Keep the last ISR member: it may hold data no one else has.
            isr = p.leader >= 0 ? [p.leader] : Array(p.isr.prefix(1))
        }
        var next = p
        next.isr = isr
        if p.leader < 0 || !live.contains(p.leader) {
            if let first = p.replicas.first(where: { isr.contains($0) && live.contains($0) }) {
                next.leader = first
            } else if unclean, let any = p.replicas.first(where: { live.contains($0) }) {
                (next.leader, next.isr, next.leaderRecoveryState) = (any, [any], 1)
            } else {
                next.leader = PartitionChange.noLeader
            }
        }
        return p.change(to: next, partitionId: partitionId, topicId: topicId)
    }

    /// BrokerHeartbeat: unfences a registered broker once its metadata has caught up to its own
    /// registration, fences it on request, and runs a controlled shutdown (leadership moves
    /// away, then `shouldShutDown`).
    public func brokerHeartbeat(_ request: BrokerHeartbeatRequest) -> ControllerResult<BrokerHeartbeatResponse> {
        let id = NodeID(request.brokerId)
        guard let broker = image.brokers[id] else {
            return ControllerResult(
                records: [], response: BrokerHeartbeatResponse(errorCode: ErrorCode.brokerIdNotRegistered.rawValue))
        }
        guard broker.epoch == request.brokerEpoch else {
            return ControllerResult(
                records: [], response: BrokerHeartbeatResponse(errorCode: ErrorCode.staleBrokerEpoch.rawValue))
        }
        let caughtUp = request.currentMetadataOffset >= broker.epoch
        var records: [MetadataRecord] = []
        var fenced = broker.fenced
        var shuttingDown = broker.inControlledShutdown
        if request.wantShutDown && !shuttingDown {
            records.append(
                .brokerRegistrationChange(
                    BrokerRegistrationChangeRecord(
                        brokerId: id.rawValue, brokerEpoch: broker.epoch, fenced: 0, inControlledShutdown: 1)))
            shuttingDown = true
        } else if request.wantFence && !fenced {
            records.append(
                .brokerRegistrationChange(
                    BrokerRegistrationChangeRecord(
                        brokerId: id.rawValue, brokerEpoch: broker.epoch, fenced: 1, inControlledShutdown: 0)))
            fenced = true
        } else if fenced && caughtUp && !request.wantFence && !request.wantShutDown {
            records.append(
                .brokerRegistrationChange(
                    BrokerRegistrationChangeRecord(
                        brokerId: id.rawValue, brokerEpoch: broker.epoch, fenced: -1, inControlledShutdown: 0)))
            fenced = false
        }
        // Leadership follows the new live set.
        var after = image
        if !records.isEmpty {
            var delta = MetadataDelta(image)
            for r in records { delta.replay(r, offset: image.provenance.lastOffset, epoch: image.provenance.lastEpoch) }
            after = delta.apply()
            let changes = electionChanges(image: after, live: liveBrokerIds(after))
            records += changes.map { .partitionChange($0) }
            var delta2 = MetadataDelta(after)
            for c in changes {
                delta2.replay(
                    .partitionChange(c), offset: after.provenance.lastOffset, epoch: after.provenance.lastEpoch)
            }
            after = delta2.apply()
        }
        // Asked only of a broker shutting down, and of its own partitions only.
        let response = BrokerHeartbeatResponse(
            errorCode: 0, isCaughtUp: caughtUp, isFenced: fenced,
            shouldShutDown: shuttingDown && !after.leadsAnyPartition(id.rawValue))
        return ControllerResult(records: records, response: response)
    }

    /// Fences brokers whose session expired and elects new leaders for their partitions.
    public func fenceBrokers(_ ids: [NodeID]) -> ControllerResult<Int> {
        var records: [MetadataRecord] = []
        for id in ids {
            guard let broker = image.brokers[id], !broker.fenced else { continue }
            records.append(
                .brokerRegistrationChange(
                    BrokerRegistrationChangeRecord(
                        brokerId: id.rawValue, brokerEpoch: broker.epoch, fenced: 1, inControlledShutdown: 0)))
        }
        guard !records.isEmpty else { return ControllerResult(records: [], response: 0) }
        var delta = MetadataDelta(image)
        for r in records { delta.replay(r, offset: image.provenance.lastOffset, epoch: image.provenance.lastEpoch) }
        let after = delta.apply()
        records += electionChanges(image: after, live: liveBrokerIds(after)).map { .partitionChange($0) }
        return ControllerResult(records: records, response: ids.count)
    }

    /// UnregisterBroker: the registration is removed (the broker left for good).
    public func unregisterBroker(_ request: UnregisterBrokerRequest) -> ControllerResult<UnregisterBrokerResponse> {
        guard let broker = image.brokers[NodeID(request.brokerId)] else {
            return ControllerResult(
                records: [], response: UnregisterBrokerResponse(errorCode: ErrorCode.brokerIdNotRegistered.rawValue))
        }
        var records: [MetadataRecord] = [
            .unregisterBroker(UnregisterBrokerRecord(brokerId: request.brokerId, brokerEpoch: broker.epoch))
        ]
        var delta = MetadataDelta(image)
        delta.replay(records[0], offset: image.provenance.lastOffset, epoch: image.provenance.lastEpoch)
        let after = delta.apply()
        records += electionChanges(image: after, live: liveBrokerIds(after)).map { .partitionChange($0) }
        return ControllerResult(records: records, response: UnregisterBrokerResponse(errorCode: 0))
    }
}
