// The consumer protocol embedded in JoinGroup/SyncGroup (subscription and assignment layouts)
// and Kafka's range assignor, checked against hand-built bytes and RangeAssignorTest's cases.
import NIOCore
import Testing
@testable import RunnelClient

@Suite struct ConsumerProtocolTests {
    @Test func subscriptionV1Bytes() throws {
        let bytes = ConsumerProtocol.encode(ConsumerProtocol.Subscription(version: 1, topics: ["ab"]))
        // version 1, one topic "ab", null user data, no owned partitions.
        #expect(
            Array(bytes.readableBytesView) == [0, 1, 0, 0, 0, 1, 0, 2, 0x61, 0x62, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        #expect(
            try ConsumerProtocol.decodeSubscription(bytes) == ConsumerProtocol.Subscription(version: 1, topics: ["ab"]))
    }

    @Test func subscriptionOfANewerVersionDecodes() throws {
        // v3 as the Java client writes it: owned partitions, generation, rack.
        var b = ByteBuffer(bytes: [0, 3, 0, 0, 0, 1, 0, 1, 0x74, 0, 0, 0, 0])
        b.writeBytes([0, 0, 0, 1, 0, 1, 0x74, 0, 0, 0, 1, 0, 0, 0, 2])
        b.writeBytes([0, 0, 0, 7, 0xff, 0xff])
        let s = try ConsumerProtocol.decodeSubscription(b)
        #expect(s.topics == ["t"])
        #expect(s.userData == ByteBuffer())
        #expect(s.ownedPartitions == [.init(topic: "t", partitions: [2])])
    }

    @Test func assignmentRoundTripAndEmpty() throws {
        let a = ConsumerProtocol.Assignment(
            version: 0, partitions: [.init(topic: "t", partitions: [0, 2]), .init(topic: "u", partitions: [1])])
        let bytes = ConsumerProtocol.encode(a)
        #expect(Array(bytes.readableBytesView.prefix(8)) == [0, 0, 0, 0, 0, 2, 0, 1])
        #expect(try ConsumerProtocol.decodeAssignment(bytes) == a)
        #expect(try ConsumerProtocol.decodeAssignment(ByteBuffer()).partitions.isEmpty)
        #expect(throws: (any Error).self) {
            try ConsumerProtocol.decodeAssignment(ByteBuffer(bytes: [0, 0, 0, 0, 0, 1, 0]))
        }
    }

    @Test func rangeOneTopicTwoConsumers() {
        // RangeAssignorTest.testOneTopicTwoConsumers... with 3 partitions: c0 [0, 1], c1 [2].
        let plan = RangeAssignor.assign(
            members: [.init(memberId: "c1", topics: ["t"]), .init(memberId: "c0", topics: ["t"])],
            partitionCounts: ["t": 3])
        #expect(plan["c0"] == [.init(topic: "t", partitions: [0, 1])])
        #expect(plan["c1"] == [.init(topic: "t", partitions: [2])])
    }

    @Test func rangeTwoTopicsAndUnsubscribedMembers() {
        let members: [RangeAssignor.Member] = [
            .init(memberId: "a", topics: ["t1", "t2"]), .init(memberId: "b", topics: ["t1"]),
            .init(memberId: "c", topics: ["t2"]),
        ]
        let plan = RangeAssignor.assign(members: members, partitionCounts: ["t1": 3, "t2": 2])
        #expect(plan["a"] == [.init(topic: "t1", partitions: [0, 1]), .init(topic: "t2", partitions: [0])])
        #expect(plan["b"] == [.init(topic: "t1", partitions: [2])])
        #expect(plan["c"] == [.init(topic: "t2", partitions: [1])])
    }

    @Test func rangeMoreConsumersThanPartitionsAndUnknownTopics() {
        let plan = RangeAssignor.assign(
            members: ["m1", "m2", "m3"].map { .init(memberId: $0, topics: ["t", "missing"]) },
            partitionCounts: ["t": 2])
        #expect(plan["m1"] == [.init(topic: "t", partitions: [0])])
        #expect(plan["m2"] == [.init(topic: "t", partitions: [1])])
        #expect(plan["m3"] == [])
    }

    @Test func staticMembersSortFirst() {
        let plan = RangeAssignor.assign(
            members: [.init(memberId: "a", topics: ["t"]), .init(memberId: "z", groupInstanceId: "i1", topics: ["t"])],
            partitionCounts: ["t": 2])
        #expect(plan["z"] == [.init(topic: "t", partitions: [0])])
        #expect(plan["a"] == [.init(topic: "t", partitions: [1])])
    }
}
