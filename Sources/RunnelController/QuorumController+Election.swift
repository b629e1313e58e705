import RunnelCore
import RunnelMetadata
import RunnelWire

extension QuorumController {
    /// ElectLeaders (kafka-leader-election): `electionType` 0 moves leadership to the preferred
    /// replica (the first in the assignment) when it is live and in the ISR; 1 (unclean) gives a
    /// leaderless partition any live replica. `topicPartitions` nil means every partition that
    /// needs an election.
    public func electLeaders(_ request: ElectLeadersRequest, version: Int16) -> ControllerResult<ElectLeadersResponse> {
        let live = liveBrokerIds(image)
        var wanted: [(String, [Int32])] = []
        if let asked = request.topicPartitions {
            wanted = asked.map { ($0.topic, $0.partitions) }
        } else {
            wanted = image.topicNames.compactMap { name in
                image.topic(named: name).map { (name, $0.partitions.keys.sorted()) }
            }
        }
        var records: [MetadataRecord] = []
        var response = ElectLeadersResponse()
        // Kafka's electLeaders: asked for every partition, the answer leaves out those whose
        // leader is already the one wanted (ELECTION_NOT_NEEDED), and topics left with none.
        let everyPartition = request.topicPartitions == nil
        for (name, partitions) in wanted {
            var result = ElectLeadersResponse.ReplicaElectionResult(topic: name)
            for index in partitions {
                var out = ElectLeadersResponse.PartitionResult(partitionId: index, errorCode: 0, errorMessage: nil)
                defer {
                    if !(everyPartition && out.errorCode == ErrorCode.electionNotNeeded.rawValue) {
                        result.partitionResult.append(out)
                    }
                }
                guard let topic = image.topic(named: name), let p = topic.partitions[index] else {
                    out.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    out.errorMessage = "The partition does not exist."
                    continue
                }
                switch Self.election(p, type: request.electionType, live: live) {
                case .failure(let refusal):
                    out.errorCode = refusal.code.rawValue
                    out.errorMessage = refusal.message
                case .success(let leader):
                    var change = PartitionChangeRecord(partitionId: index, topicId: topic.id)
                    change.leader = leader
                    if !p.isr.contains(leader) {
                        change.isr = [leader]
                        change.leaderRecoveryState = 1
                    }
                    records.append(.partitionChange(change))
                }
            }
            if !everyPartition || !result.partitionResult.isEmpty { response.replicaElectionResults.append(result) }
        }
        return ControllerResult(records: records, response: response)
    }

    /// Who leads after an election of `type` (0 preferred, 1 unclean), or why no one new does.
    static func election(_ p: PartitionRegistration, type: Int8, live: Set<Int32>) -> Result<Int32, PartitionRefusal> {
        if type == 0 {
            guard let preferred = p.replicas.first else {
                return .failure(PartitionRefusal(.preferredLeaderNotAvailable, "The partition has no replicas."))
            }
            if p.leader == preferred {
                return .failure(PartitionRefusal(.electionNotNeeded, "The preferred replica already leads."))
            }
            guard live.contains(preferred), p.isr.contains(preferred) else {
                return .failure(
                    PartitionRefusal(
                        .preferredLeaderNotAvailable, "The preferred replica \(preferred) is not live and in sync."))
            }
            return .success(preferred)
        }
        if p.leader >= 0 && live.contains(p.leader) {
            return .failure(PartitionRefusal(.electionNotNeeded, "The partition has a live leader."))
        }
        if let next = p.replicas.first(where: { p.isr.contains($0) && live.contains($0) })
            ?? p.replicas.first(where: { live.contains($0) })
        {
            return .success(next)
        }
        return .failure(PartitionRefusal(.eligibleLeadersNotAvailable, "No replica of the partition is live."))
    }

    /// Automatic leader balancing (`auto.leader.rebalance.enable`): for each broker whose share of
    /// partitions it should lead (as preferred replica) but does not exceeds
    /// `leader.imbalance.per.broker.percentage`, those partitions move back to it when it is live
    /// and in their ISR.
    public func preferredLeaderRebalance(imbalancePercentage: Int) -> ControllerResult<Int> {
        let live = liveBrokerIds(image)
        var preferredOf: [Int32: [(TopicImage, Int32, PartitionRegistration)]] = [:]
        for name in image.topicNames {
            guard let topic = image.topic(named: name) else { continue }
            for index in topic.partitions.keys.sorted() {
                let p = topic.partitions[index]!
                if let preferred = p.replicas.first { preferredOf[preferred, default: []].append((topic, index, p)) }
            }
        }
        var records: [MetadataRecord] = []
        for broker in preferredOf.keys.sorted() where live.contains(broker) {
            let owned = preferredOf[broker]!
            let notLed = owned.filter { $0.2.leader != broker }
            guard !notLed.isEmpty, notLed.count * 100 > owned.count * imbalancePercentage else { continue }
            for (topic, index, p) in notLed where p.isr.contains(broker) {
                var change = PartitionChangeRecord(partitionId: index, topicId: topic.id)
                change.leader = broker
                records.append(.partitionChange(change))
            }
        }
        return ControllerResult(records: records, response: records.count)
    }
}
