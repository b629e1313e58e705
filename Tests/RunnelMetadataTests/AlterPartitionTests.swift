// AlterPartition is how a partition leader changes its ISR. The controller checks the sender and
// every epoch the way Kafka does, and an accepted change is a PartitionChangeRecord that bumps
// the partition epoch (not the leader epoch).
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

/// A controller with brokers 1-3 and topic "t" (one partition, replicas 1,2,3) whose leader is
/// 1; `fenced` brokers are fenced after the topic exists.
func replicatedController(fenced: [Int32] = []) -> (QuorumController, KafkaUUID) {
    var c = controller(imageWithBrokers([1, 2, 3]))
    var request = CreateTopicsRequest()
    request.topics = [
        .init(
            name: "t", numPartitions: -1, replicationFactor: -1,
            assignments: [.init(partitionIndex: 0, brokerIds: [1, 2, 3])])
    ]
    let result = c.createTopics(request, version: 7, newId: { KafkaUUID(high: 9, low: 9) })
    c.replay(result.records.enumerated().map { ($0.element, 10 + Int64($0.offset)) }, epoch: 1)
    for id in fenced {
        let fence = c.fenceBrokers([NodeID(id)])
        c.replay(fence.records.map { ($0, 20) }, epoch: 1)
    }
    return (c, c.image.topic(named: "t")!.id)
}

func alter(
    _ c: QuorumController, topicId: KafkaUUID, from broker: Int32 = 1, brokerEpoch: Int64? = nil,
    isr: [Int32], memberEpochs: [Int32: Int64] = [:], leaderEpoch: Int32? = nil, partitionEpoch: Int32? = nil
) -> (ControllerResult<AlterPartitionResponse>, AlterPartitionResponse.PartitionData?) {
    let p = c.image.topic(id: topicId)?.partitions[0]
    var data = AlterPartitionRequest.PartitionData()
    data.partitionIndex = 0
    data.leaderEpoch = leaderEpoch ?? p?.leaderEpoch ?? 0
    data.partitionEpoch = partitionEpoch ?? p?.partitionEpoch ?? 0
    data.newIsrWithEpochs = isr.map {
        .init(brokerId: $0, brokerEpoch: memberEpochs[$0] ?? c.image.brokers[NodeID($0)]?.epoch ?? -1)
    }
    var request = AlterPartitionRequest()
    request.brokerId = broker
    request.brokerEpoch = brokerEpoch ?? c.image.brokers[NodeID(broker)]!.epoch
    request.topics = [.init(topicId: topicId, partitions: [data])]
    let result = c.alterPartition(request, version: 3)
    return (result, result.response.topics.first?.partitions.first)
}

@Suite("AlterPartition")
struct AlterPartitionTests {
    @Test("an ISR shrink and expansion commit as partition changes that bump only the partition epoch")
    func shrinkAndExpand() {
        var (c, id) = replicatedController()
        let before = c.image.topic(id: id)!.partitions[0]!
        let (shrink, answer) = alter(c, topicId: id, isr: [1, 2])
        #expect(answer?.errorCode == 0)
        #expect(answer?.isr == [1, 2])
        #expect(answer?.partitionEpoch == before.partitionEpoch + 1)
        #expect(answer?.leaderEpoch == before.leaderEpoch)
        #expect(shrink.records.count == 1)
        // Nothing changes until replayed.
        #expect(c.image.topic(id: id)!.partitions[0]!.isr == [1, 2, 3])
        c.replay(shrink.records.map { ($0, 30) }, epoch: 1)
        let after = c.image.topic(id: id)!.partitions[0]!
        #expect(after.isr == [1, 2])
        #expect(after.leaderEpoch == before.leaderEpoch)
        let (expand, answer2) = alter(c, topicId: id, isr: [1, 2, 3])
        #expect(answer2?.errorCode == 0)
        c.replay(expand.records.map { ($0, 31) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.isr == [1, 2, 3])
    }

    @Test("KIP-903: a member named with a broker epoch its registration has left is ineligible; -1 skips the check")
    func memberBrokerEpochs() {
        var (c, id) = replicatedController()
        let (shrink, _) = alter(c, topicId: id, isr: [1, 2])
        c.replay(shrink.records.map { ($0, 30) }, epoch: 1)
        let current = c.image.brokers[NodeID(3)]!.epoch
        #expect(
            alter(c, topicId: id, isr: [1, 2, 3], memberEpochs: [3: current - 1]).1?.errorCode
                == ErrorCode.ineligibleReplica.rawValue)
        #expect(alter(c, topicId: id, isr: [1, 2, 3], memberEpochs: [3: current]).1?.errorCode == 0)
        #expect(alter(c, topicId: id, isr: [1, 2, 3], memberEpochs: [3: -1]).1?.errorCode == 0)
    }

    @Test("stale epochs, a non-leader sender and ineligible replicas are refused with Kafka's codes")
    func refusals() {
        let (c, id) = replicatedController(fenced: [3])
        // Fencing 3 already took it out of the ISR (partition epoch moved).
        let p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.isr == [1, 2])
        #expect(
            alter(c, topicId: id, isr: [1], partitionEpoch: p.partitionEpoch - 1).1?.errorCode
                == ErrorCode.invalidUpdateVersion.rawValue)
        #expect(
            alter(c, topicId: id, isr: [1], leaderEpoch: p.leaderEpoch - 1).1?.errorCode
                == ErrorCode.fencedLeaderEpoch.rawValue)
        #expect(alter(c, topicId: id, from: 2, isr: [2]).1?.errorCode == ErrorCode.notLeaderOrFollower.rawValue)
        #expect(alter(c, topicId: id, isr: [1, 2, 3]).1?.errorCode == ErrorCode.ineligibleReplica.rawValue)
        #expect(alter(c, topicId: id, isr: [2]).1?.errorCode == ErrorCode.invalidRequest.rawValue)
        let stale = alter(c, topicId: id, brokerEpoch: 999, isr: [1])
        #expect(stale.0.response.errorCode == ErrorCode.staleBrokerEpoch.rawValue)
        #expect(stale.0.records.isEmpty)
        #expect(
            alter(c, topicId: KafkaUUID(high: 1, low: 1), isr: [1]).0.response.topics[0].partitions[0].errorCode
                == ErrorCode.unknownTopicId.rawValue)
    }
}

@Suite("Leader elections")
struct ElectionTests {
    func elect(_ c: QuorumController, type: Int8, partitions: [Int32]? = [0]) -> ControllerResult<ElectLeadersResponse>
    {
        var request = ElectLeadersRequest()
        request.electionType = type
        request.topicPartitions = partitions.map { [.init(topic: "t", partitions: $0)] }
        return c.electLeaders(request, version: 2)
    }

    @Test("preferred election moves leadership back to the first replica only when it is live and in sync")
    func preferred() {
        var (c, id) = replicatedController()
        #expect(
            elect(c, type: 0).response.replicaElectionResults[0].partitionResult[0].errorCode
                == ErrorCode.electionNotNeeded.rawValue)
        // Asked for every partition, Kafka leaves out those already led by the preferred replica.
        #expect(elect(c, type: 0, partitions: nil).response.replicaElectionResults.isEmpty)
        // Broker 1 (preferred) is fenced: leadership moves to 2; the preferred is not available.
        let fence = c.fenceBrokers([NodeID(1)])
        c.replay(fence.records.map { ($0, 40) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leader == 2)
        #expect(
            elect(c, type: 0).response.replicaElectionResults[0].partitionResult[0].errorCode
                == ErrorCode.preferredLeaderNotAvailable.rawValue)
        // Back, unfenced and in the ISR again: the election moves it back and bumps the leader epoch.
        var unfence = BrokerRegistrationChangeRecord(brokerId: 1, brokerEpoch: c.image.brokers[NodeID(1)]!.epoch)
        unfence.fenced = -1
        c.replay([(.brokerRegistrationChange(unfence), 41)], epoch: 1)
        let (grow, _) = alter(c, topicId: id, from: 2, isr: [1, 2, 3])
        c.replay(grow.records.map { ($0, 42) }, epoch: 1)
        let epoch = c.image.topic(id: id)!.partitions[0]!.leaderEpoch
        let all = elect(c, type: 0, partitions: nil).response.replicaElectionResults
        #expect(all.map(\.topic) == ["t"] && all[0].partitionResult.map(\.partitionId) == [0])
        let result = elect(c, type: 0)
        #expect(result.response.replicaElectionResults[0].partitionResult[0].errorCode == 0)
        c.replay(result.records.map { ($0, 43) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leader == 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leaderEpoch == epoch + 1)
        #expect(
            elect(c, type: 0, partitions: [7]).response.replicaElectionResults[0].partitionResult[0].errorCode
                == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test("automatic rebalancing returns partitions to their preferred leaders past the imbalance threshold")
    func rebalance() {
        var (c, id) = replicatedController()
        let fence = c.fenceBrokers([NodeID(1)])
        c.replay(fence.records.map { ($0, 40) }, epoch: 1)
        #expect(c.preferredLeaderRebalance(imbalancePercentage: 10).records.isEmpty)  // 1 is not live
        var unfence = BrokerRegistrationChangeRecord(brokerId: 1, brokerEpoch: c.image.brokers[NodeID(1)]!.epoch)
        unfence.fenced = -1
        c.replay([(.brokerRegistrationChange(unfence), 41)], epoch: 1)
        #expect(c.preferredLeaderRebalance(imbalancePercentage: 10).records.isEmpty)  // 1 not in the ISR yet
        let (grow, _) = alter(c, topicId: id, from: 2, isr: [1, 2, 3])
        c.replay(grow.records.map { ($0, 42) }, epoch: 1)
        let moves = c.preferredLeaderRebalance(imbalancePercentage: 10)
        #expect(moves.response == 1)
        c.replay(moves.records.map { ($0, 43) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leader == 1)
    }

    @Test("unclean election gives a leaderless partition a live replica outside the ISR, marked recovering")
    func unclean() {
        var (c, id) = replicatedController()
        #expect(
            elect(c, type: 1).response.replicaElectionResults[0].partitionResult[0].errorCode
                == ErrorCode.electionNotNeeded.rawValue)
        // Shrink the ISR to the leader, then lose the leader: the partition stays leaderless.
        let (shrink, _) = alter(c, topicId: id, isr: [1])
        c.replay(shrink.records.map { ($0, 40) }, epoch: 1)
        let fence = c.fenceBrokers([NodeID(1)])
        c.replay(fence.records.map { ($0, 41) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leader == -1)
        let result = elect(c, type: 1)
        #expect(result.response.replicaElectionResults[0].partitionResult[0].errorCode == 0)
        c.replay(result.records.map { ($0, 42) }, epoch: 1)
        let p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.leader == 2 && p.isr == [2] && p.leaderRecoveryState == 1)
        // The new leader's first ISR change reports it recovered.
        let (grow, answer) = alter(c, topicId: id, from: 2, isr: [2, 3])
        #expect(answer?.errorCode == 0 && answer?.leaderRecoveryState == 0)
        c.replay(grow.records.map { ($0, 43) }, epoch: 1)
        #expect(c.image.topic(id: id)!.partitions[0]!.leaderRecoveryState == 0)
    }
}
