// What a read_committed consumer keeps of a fetched partition (FetchedRecords.withoutAborted), as
// Kafka's consumer filters it: batches of a producer whose transaction the fetch answer lists as
// aborted are emptied from that transaction's first offset until the producer's abort marker;
// committed transactions, other producers and non-transactional batches are kept; every batch
// stays, so the fetch position moves past the emptied ones.
import NIOCore
import RunnelWire
import Testing
@testable import RunnelClient

@Suite struct ReadCommittedTests {
    static func data(_ offset: Int64, _ value: String, producer: Int64 = -1, transactional: Bool = false) -> ByteBuffer
    {
        RecordBatches.build(
            records: [Record(offset: offset, timestamp: 1_000, value: ByteBuffer(string: value))],
            attributes: transactional ? 0x10 : 0, producerId: producer, producerEpoch: producer >= 0 ? 0 : -1,
            baseSequence: producer >= 0 ? 0 : -1)
    }

    static func marker(_ offset: Int64, producer: Int64, committed: Bool) -> ByteBuffer {
        let marker = EndTransactionMarker(committed: committed, coordinatorEpoch: 0)
        return RecordBatches.build(
            records: [Record(offset: offset, timestamp: 1_000, key: marker.key, value: marker.value)],
            attributes: EndTransactionMarker.batchAttributes, producerId: producer, producerEpoch: 0)
    }

    static func fetched(_ parts: [ByteBuffer]) -> ByteBuffer {
        var all = ByteBuffer()
        for var part in parts { all.writeBuffer(&part) }
        return all
    }

    static func values(_ batches: [DecodedBatch]) -> [String] {
        batches.flatMap(\.records).map { String(buffer: $0.value!) }
    }

    @Test func abortedTransactionsAreLeftOutUntilTheirMarker() {
        let buffer = Self.fetched([
            Self.data(0, "plain"),
            Self.data(1, "p7-aborted", producer: 7, transactional: true),
            Self.data(2, "p8-committed", producer: 8, transactional: true),
            Self.data(3, "p7-aborted-too", producer: 7, transactional: true),
            Self.marker(4, producer: 7, committed: false),
            Self.marker(5, producer: 8, committed: true),
            Self.data(6, "p7-next", producer: 7, transactional: true),
            Self.data(7, "idempotent", producer: 9),
        ])
        let (batches, failure) = FetchedRecords.decode(buffer)
        #expect(failure == nil && batches.count == 8)
        let kept = FetchedRecords.withoutAborted(batches, in: buffer, aborted: [(producerId: 7, firstOffset: 1)])
        #expect(Self.values(kept) == ["plain", "p8-committed", "p7-next", "idempotent"])
        #expect(kept.map(\.header.baseOffset) == Array(0...7), "every batch stays, so the position passes them")
        #expect(Self.values(FetchedRecords.withoutAborted(batches, in: buffer, aborted: [])) == Self.values(batches))
    }

    @Test func anAbortedTransactionCountsFromItsFirstOffsetOnly() {
        let buffer = Self.fetched([
            Self.data(10, "p7-before", producer: 7, transactional: true),
            Self.marker(11, producer: 7, committed: true),
            Self.data(12, "p7-aborted", producer: 7, transactional: true),
            Self.marker(13, producer: 7, committed: false),
        ])
        let (batches, _) = FetchedRecords.decode(buffer)
        let kept = FetchedRecords.withoutAborted(batches, in: buffer, aborted: [(producerId: 7, firstOffset: 12)])
        #expect(Self.values(kept) == ["p7-before"])
    }
}
