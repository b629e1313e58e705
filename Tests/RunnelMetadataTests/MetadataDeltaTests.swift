// MetadataDelta changes partitions in place inside the topic tree (so a topic's partition table
// is copied once per delta, not once per record). These tests hold what that must not break:
// the base image and every image applied before stay as they were, and many records on one
// topic in one delta give the same image as one record per delta.
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

@Suite struct MetadataDeltaTests {
    static let topicId = KafkaUUID(high: 9, low: 9)

    static func partition(_ index: Int32, leader: Int32) -> MetadataRecord {
        .partition(
            PartitionRecord(
                partitionId: index, topicId: topicId, replicas: [1, 2, 3], isr: [1, 2, 3], leader: leader,
                leaderEpoch: 0, partitionEpoch: 0))
    }

    static func baseImage() -> MetadataImage {
        var delta = MetadataDelta(.empty)
        delta.replay(.topic(TopicRecord(name: "orders", topicId: topicId)), offset: 0, epoch: 1)
        for i in Int32(0)..<4 { delta.replay(partition(i, leader: 1), offset: 1 + Int64(i), epoch: 1) }
        return delta.apply()
    }

    @Test("partition records and changes in a delta leave the base image untouched")
    func baseUnchanged() {
        let base = Self.baseImage()
        let before = base.topic(id: Self.topicId)!
        var delta = MetadataDelta(base)
        delta.replay(Self.partition(4, leader: 2), offset: 10, epoch: 1)
        delta.replay(Self.partition(0, leader: -1), offset: 11, epoch: 1)
        delta.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 1, topicId: Self.topicId, isr: [1], leader: 3)),
            offset: 12, epoch: 1)
        let after = delta.apply()
        #expect(base.topic(id: Self.topicId) == before)
        #expect(delta.base.topic(id: Self.topicId) == before)
        #expect(base.offlinePartitionCount == 0)
        #expect(after.topic(id: Self.topicId)?.partitionCount == 5)
        #expect(after.topic(id: Self.topicId)?.partitions[0]?.leader == -1)
        #expect(after.topic(id: Self.topicId)?.partitions[1]?.leader == 3)
        #expect(after.topic(id: Self.topicId)?.partitions[1]?.leaderEpoch == 1)
        #expect(after.topic(id: Self.topicId)?.partitions[1]?.isr == [1])
        #expect(after.offlinePartitionCount == 1)
        #expect(delta.changedTopics == [Self.topicId])
    }

    @Test("an image read from a delta mid-replay keeps its value as the delta goes on")
    func imageReadMidReplay() {
        var delta = MetadataDelta(Self.baseImage())
        delta.replay(Self.partition(4, leader: 2), offset: 10, epoch: 1)
        let middle = delta.image
        delta.replay(Self.partition(5, leader: 2), offset: 11, epoch: 1)
        delta.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 4, topicId: Self.topicId, leader: 3)),
            offset: 12, epoch: 1)
        #expect(middle.topic(id: Self.topicId)?.partitionCount == 5)
        #expect(middle.topic(id: Self.topicId)?.partitions[4]?.leader == 2)
        #expect(delta.image.topic(id: Self.topicId)?.partitionCount == 6)
        #expect(delta.image.topic(id: Self.topicId)?.partitions[4]?.leader == 3)
    }

    @Test("many records on one topic in one delta give the image of one record per delta")
    func batchedEqualsOneByOne() {
        var records: [MetadataRecord] = [.topic(TopicRecord(name: "orders", topicId: Self.topicId))]
        for i in Int32(0)..<50 { records.append(Self.partition(i, leader: i % 3 == 0 ? -1 : 1 + i % 3)) }
        for i in Int32(0)..<50 where i % 7 == 0 {
            records.append(
                .partitionChange(PartitionChangeRecord(partitionId: i, topicId: Self.topicId, isr: [2], leader: 2)))
        }
        var batched = MetadataDelta(.empty)
        var oneByOne = MetadataImage.empty
        for (offset, record) in records.enumerated() {
            batched.replay(record, offset: Int64(offset), epoch: 1)
            var single = MetadataDelta(oneByOne)
            single.replay(record, offset: Int64(offset), epoch: 1)
            oneByOne = single.apply()
        }
        #expect(batched.apply() == oneByOne)
        #expect(oneByOne.offlinePartitionCount == 17 - 3, "17 without a leader, 3 of them (0, 21, 42) given one")
    }
}
