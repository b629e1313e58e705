import RunnelCore
import RunnelMetadata
import RunnelWire

extension QuorumController {
    /// AlterPartition: a partition leader asks for a new ISR. Kafka's checks, in its order: the
    /// sender's broker epoch (STALE_BROKER_EPOCH), the partition (UNKNOWN_TOPIC_OR_PARTITION /
    /// UNKNOWN_TOPIC_ID), the sender leads it (NOT_LEADER_OR_FOLLOWER), the leader epoch
    /// (FENCED_LEADER_EPOCH), the partition epoch (INVALID_UPDATE_VERSION), then the new ISR: only
    /// replicas, the leader among them, none fenced or shutting down (INELIGIBLE_REPLICA). A
    /// change becomes a PartitionChangeRecord; the answer carries the state after it.
    public func alterPartition(
        _ request: AlterPartitionRequest, version: Int16
    ) -> ControllerResult<AlterPartitionResponse> {
        var response = AlterPartitionResponse()
        guard let broker = image.brokers[NodeID(request.brokerId)],
            request.brokerEpoch == -1 || broker.epoch == request.brokerEpoch
        else {
            response.errorCode = ErrorCode.staleBrokerEpoch.rawValue
            return ControllerResult(records: [], response: response)
        }
        let live = liveBrokerIds(image)
        var records: [MetadataRecord] = []
        for topicData in request.topics {
            let topic = version >= 2 ? image.topic(id: topicData.topicId) : image.topic(named: topicData.topicName)
            var out = AlterPartitionResponse.TopicData(
                topicName: version >= 2 ? "" : topicData.topicName, topicId: version >= 2 ? topicData.topicId : .zero)
            for p in topicData.partitions {
                var result = AlterPartitionResponse.PartitionData(partitionIndex: p.partitionIndex)
                func fail(_ code: ErrorCode) { result.errorCode = code.rawValue }
                defer { out.partitions.append(result) }
                guard let topic else {
                    fail(version >= 2 ? .unknownTopicId : .unknownTopicOrPartition)
                    continue
                }
                guard let current = topic.partitions[p.partitionIndex] else {
                    fail(.unknownTopicOrPartition)
                    continue
                }
                guard current.leader == request.brokerId else {
                    fail(.notLeaderOrFollower)
                    continue
                }
                guard p.leaderEpoch == current.leaderEpoch else {
                    fail(.fencedLeaderEpoch)
                    continue
                }
                guard p.partitionEpoch == current.partitionEpoch else {
                    fail(.invalidUpdateVersion)
                    continue
                }
                let newIsr = version >= 3 ? p.newIsrWithEpochs.map(\.brokerId) : p.newIsr
                if version >= 3, !settings.acceptsStaleBrokerEpochs,
                    p.newIsrWithEpochs.contains(where: { s in
                        s.brokerEpoch != -1
                            && image.brokers[NodeID(s.brokerId)].map { $0.epoch != s.brokerEpoch } ?? true
                    })
                {
                    fail(.ineligibleReplica)
                    continue
                }
                let valid =
                    !newIsr.isEmpty && newIsr.contains(request.brokerId) && Set(newIsr).count == newIsr.count
                    && newIsr.allSatisfy { current.replicas.contains($0) }
                guard valid else {
                    fail(.invalidRequest)
                    continue
                }
                // Joining members must be live (a member already in the ISR may stay while fenced
                // only until the controller removes it).
                guard newIsr.allSatisfy({ current.isr.contains($0) || live.contains($0) }) else {
                    fail(version >= 1 ? .ineligibleReplica : .invalidRequest)
                    continue
                }
                var next = current
                // A leader elected uncleanly reports itself recovered (0) with its first change.
                let recovered = current.leaderRecoveryState == 1 && p.leaderRecoveryState == 0
                if current.isReassigning {
                    // KIP-455: an ISR that now holds every target replica completes the move.
                    let built = Self.partitionChange(
                        current, replicas: current.replicas, isr: newIsr, adding: current.addingReplicas,
                        removing: current.removingReplicas, live: live)
                    if recovered || built != nil {
                        var change = built ?? PartitionChangeRecord(partitionId: -1, topicId: .zero)
                        change.partitionId = p.partitionIndex
                        change.topicId = topic.id
                        if recovered { change.leaderRecoveryState = 0 }
                        records.append(.partitionChange(change))
                        next = current.merging(change)
                    }
                } else if newIsr != current.isr || recovered {
                    var change = PartitionChangeRecord(partitionId: p.partitionIndex, topicId: topic.id)
                    if newIsr != current.isr { change.isr = newIsr }
                    if recovered { change.leaderRecoveryState = 0 }
                    records.append(.partitionChange(change))
                    next = current.merging(change)
                }
                if next.leader != current.leader {
                    // The move completed and took the leadership off this broker.
                    fail(.newLeaderElected)
                    continue
                }
                result.leaderId = next.leader
                result.leaderEpoch = next.leaderEpoch
                result.isr = next.isr
                result.partitionEpoch = next.partitionEpoch
                result.leaderRecoveryState = next.leaderRecoveryState
            }
            response.topics.append(out)
        }
        return ControllerResult(records: records, response: response)
    }
}
