// Partition reassignment (KIP-455) on the controller: AlterPartitionReassignments writes the union
// of target and current replicas with the adding and removing sets; the move completes when the
// leader's AlterPartition puts every target replica in the ISR (at once when they already are);
// a removed leader hands over with a new leader epoch; null replicas cancel back to the original
// replicas. Each test replays the records, so what it checks is the image a broker would see.
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

/// A controller with brokers 1-4 and topic "t" whose partition 0 has `replicas` (leader the first).
private func reassignable(replicas: [Int32], brokers: [Int32] = [1, 2, 3, 4]) -> (QuorumController, KafkaUUID) {
    var c = controller(imageWithBrokers(brokers))
    var request = CreateTopicsRequest()
    request.topics = [
        .init(
            name: "t", numPartitions: -1, replicationFactor: -1,
            assignments: [.init(partitionIndex: 0, brokerIds: replicas)])
    ]
    let result = c.createTopics(request, version: 7, newId: { KafkaUUID(high: 5, low: 5) })
    c.replay(result.records.enumerated().map { ($0.element, 10 + Int64($0.offset)) }, epoch: 1)
    return (c, c.image.topic(named: "t")!.id)
}

/// Runs AlterPartitionReassignments for t-0 (nil replicas cancels), replays its records and
/// returns the partition's error code.
@discardableResult
private func reassign(
    _ c: inout QuorumController, _ replicas: [Int32]?, topic: String = "t", partition: Int32 = 0
)
    -> ErrorCode
{
    var request = AlterPartitionReassignmentsRequest()
    request.topics = [.init(name: topic, partitions: [.init(partitionIndex: partition, replicas: replicas)])]
    let result = c.alterPartitionReassignments(request)
    let base = c.image.provenance.lastOffset + 1
    c.replay(result.records.enumerated().map { ($0.element, base + Int64($0.offset)) }, epoch: 1)
    return ErrorCode(result.response.responses[0].partitions[0].errorCode)
}

/// The leader's AlterPartition with `isr`, replayed; returns the partition's answer.
@discardableResult
private func leaderProposes(
    _ c: inout QuorumController, _ id: KafkaUUID, isr: [Int32]
)
    -> AlterPartitionResponse.PartitionData?
{
    let leader = c.image.topic(id: id)!.partitions[0]!.leader
    let (result, answer) = alter(c, topicId: id, from: leader, isr: isr)
    let base = c.image.provenance.lastOffset + 1
    c.replay(result.records.enumerated().map { ($0.element, base + Int64($0.offset)) }, epoch: 1)
    return answer
}

private func listed(_ c: QuorumController) -> [ListPartitionReassignmentsResponse.OngoingPartitionReassignment] {
    c.listPartitionReassignments(ListPartitionReassignmentsRequest()).response.topics.flatMap(\.partitions)
}

@Suite("Partition reassignment (KIP-455)")
struct ReassignmentTests {
    @Test("a move to new brokers lists target first, adds and removes, and completes once the ISR holds the target")
    func move() {
        var (c, id) = reassignable(replicas: [1])
        #expect(reassign(&c, [2, 3, 4]) == .none)
        var p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.replicas == [2, 3, 4, 1])
        #expect(p.addingReplicas == [2, 3, 4])
        #expect(p.removingReplicas == [1])
        #expect(p.leader == 1)
        #expect(p.isr == [1])
        let list = listed(c)
        #expect(list.count == 1)
        #expect(list.first?.replicas == [2, 3, 4, 1])
        #expect(list.first?.addingReplicas == [2, 3, 4])
        #expect(list.first?.removingReplicas == [1])
        // Part of the target in sync: still moving.
        #expect(leaderProposes(&c, id, isr: [1, 2])?.errorCode == 0)
        p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.isReassigning)
        #expect(p.isr == [1, 2])
        // All of it: the move completes and the removed leader hands over to the first target replica.
        let epoch = p.leaderEpoch
        let answer = leaderProposes(&c, id, isr: [1, 2, 3, 4])
        #expect(answer?.errorCode == ErrorCode.newLeaderElected.rawValue)
        p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.replicas == [2, 3, 4])
        #expect(p.isr == [2, 3, 4])
        #expect(p.addingReplicas.isEmpty && p.removingReplicas.isEmpty)
        #expect(p.leader == 2)
        #expect(p.leaderEpoch == epoch + 1)
        #expect(listed(c).isEmpty)
    }

    @Test("the replication factor grows from 1 to 3 and the leader stays when it is kept")
    func growReplicationFactor() {
        var (c, id) = reassignable(replicas: [1])
        #expect(reassign(&c, [1, 2, 3]) == .none)
        var p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.replicas == [1, 2, 3])
        #expect(p.addingReplicas == [2, 3])
        #expect(p.removingReplicas.isEmpty)
        let epoch = p.leaderEpoch
        #expect(leaderProposes(&c, id, isr: [1, 2, 3])?.errorCode == 0)
        p = c.image.topic(id: id)!.partitions[0]!
        #expect(!p.isReassigning)
        #expect(p.replicas == [1, 2, 3] && p.isr == [1, 2, 3] && p.leader == 1)
        #expect(p.leaderEpoch == epoch)
    }

    @Test("shrinking 3 replicas to 1 in the ISR completes at once and bumps the leader epoch")
    func shrinkReplicationFactor() {
        var (c, id) = reassignable(replicas: [1, 2, 3])
        let epoch = c.image.topic(id: id)!.partitions[0]!.leaderEpoch
        #expect(reassign(&c, [3]) == .none)
        let p = c.image.topic(id: id)!.partitions[0]!
        #expect(!p.isReassigning)
        #expect(p.replicas == [3] && p.isr == [3])
        #expect(p.leader == 3)
        #expect(p.leaderEpoch == epoch + 1)
        // Dropping followers but keeping the leader still fences them with a new epoch.
        var (d, did) = reassignable(replicas: [1, 2, 3])
        #expect(reassign(&d, [1]) == .none)
        let q = d.image.topic(id: did)!.partitions[0]!
        #expect(q.replicas == [1] && q.leader == 1 && q.leaderEpoch == epoch + 1)
    }

    @Test("a cancel returns to the original replicas and ISR; without a move it is NO_REASSIGNMENT_IN_PROGRESS")
    func cancel() {
        var (c, id) = reassignable(replicas: [1])
        #expect(reassign(&c, nil) == .noReassignmentInProgress)
        #expect(reassign(&c, [2, 3]) == .none)
        #expect(leaderProposes(&c, id, isr: [1, 2])?.errorCode == 0)
        #expect(reassign(&c, nil) == .none)
        let p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.replicas == [1] && p.isr == [1] && p.leader == 1)
        #expect(!p.isReassigning)
        #expect(listed(c).isEmpty)
    }

    @Test("a new target replaces a move in progress")
    func redirect() {
        var (c, id) = reassignable(replicas: [1])
        #expect(reassign(&c, [2]) == .none)
        #expect(reassign(&c, [3]) == .none)
        let p = c.image.topic(id: id)!.partitions[0]!
        #expect(p.replicas == [3, 2, 1])
        #expect(p.addingReplicas == [3])
        #expect(p.removingReplicas == [2, 1])
        #expect(p.leader == 1)
    }

    @Test("bad targets: unknown partition, duplicate or unregistered brokers, empty list")
    func errors() {
        var (c, _) = reassignable(replicas: [1])
        #expect(reassign(&c, [2], topic: "nope") == .unknownTopicOrPartition)
        #expect(reassign(&c, [2], partition: 7) == .unknownTopicOrPartition)
        #expect(reassign(&c, [2, 2]) == .invalidReplicaAssignment)
        #expect(reassign(&c, [2, 9]) == .invalidReplicaAssignment)
        #expect(reassign(&c, []) == .invalidReplicaAssignment)
        #expect(listed(c).isEmpty)
        var request = AlterPartitionReassignmentsRequest()
        request.topics = [
            .init(
                name: "t",
                partitions: [.init(partitionIndex: 0, replicas: [2]), .init(partitionIndex: 0, replicas: [3])])
        ]
        let result = c.alterPartitionReassignments(request)
        #expect(result.response.responses[0].partitions[1].errorCode == ErrorCode.invalidRequest.rawValue)
    }

    @Test("the same assignment without a move in progress writes nothing")
    func noOp() {
        let (c, _) = reassignable(replicas: [1, 2])
        var request = AlterPartitionReassignmentsRequest()
        request.topics = [.init(name: "t", partitions: [.init(partitionIndex: 0, replicas: [1, 2])])]
        let result = c.alterPartitionReassignments(request)
        #expect(result.records.isEmpty)
        #expect(result.response.responses[0].partitions[0].errorCode == 0)
    }

    @Test("random moves, ISR changes and cancels keep the partition's invariants", arguments: 0..<20)
    func randomWalk(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var (c, id) = reassignable(replicas: [1, 2], brokers: [1, 2, 3, 4, 5])
        for _ in 0..<60 {
            let p = c.image.topic(id: id)!.partitions[0]!
            switch rng.next() % 3 {
            case 0:
                var target = [Int32](1...5).filter { _ in rng.next() % 2 == 0 }
                if target.isEmpty { target = [Int32(rng.next() % 5) + 1] }
                reassign(&c, target)
            case 1:
                // The leader adds one replica to (or drops one follower from) the ISR.
                guard p.leader >= 0 else { break }
                var isr = p.isr
                let r = p.replicas[Int(rng.next() % UInt64(p.replicas.count))]
                if isr.contains(r) { if r != p.leader { isr.removeAll { $0 == r } } } else { isr.append(r) }
                leaderProposes(&c, id, isr: isr)
            default:
                reassign(&c, nil)
            }
            let q = c.image.topic(id: id)!.partitions[0]!
            #expect(q.isr.allSatisfy { q.replicas.contains($0) })
            #expect(q.leader < 0 || q.isr.contains(q.leader))
            #expect(Set(q.addingReplicas).isDisjoint(with: q.removingReplicas))
            #expect(q.addingReplicas.allSatisfy { q.replicas.contains($0) })
            #expect(!q.isReassigning || !PartitionReassignment.target(of: q).allSatisfy { q.isr.contains($0) })
        }
    }
}
