// The metadata log's in-memory tail, which the leader answers fetches from: it must give exactly
// what a read of the file would (whole batches from a batch's start, up to the end and the byte
// budget), and forget what a truncation removes, so a follower is never sent a batch the log no
// longer holds.
import NIOCore
import RunnelWire
import Testing

@testable import RunnelQuorum

@Suite("Metadata log tail")
struct RecentBatchesTests {
    /// One batch of `count` records from `base` in `epoch`, each value `size` bytes.
    func batch(_ base: Int64, _ count: Int, epoch: Int32 = 1, size: Int = 10) -> ByteBuffer {
        RecordBatches.build(
            records: (0..<count).map {
                Record(offset: base + Int64($0), timestamp: 0, key: nil, value: ByteBuffer(repeating: 7, count: size))
            }, partitionLeaderEpoch: epoch)
    }

    @Test("answers from a batch start, whole batches up to the end and the byte budget, nil otherwise")
    func reads() {
        var tail = RecentBatches()
        for (base, count) in [(0, 2), (2, 1), (3, 3), (6, 1)] as [(Int64, Int)] { tail.appended(batch(base, count)) }
        #expect(tail.read(from: 0, upTo: 7, maxBytes: 1 << 20)?.map(\.baseOffset) == [0, 2, 3, 6])
        #expect(tail.read(from: 3, upTo: 7, maxBytes: 1 << 20)?.map(\.baseOffset) == [3, 6])
        #expect(tail.read(from: 2, upTo: 6, maxBytes: 1 << 20)?.map(\.baseOffset) == [2, 3], "stops at the end asked")
        #expect(tail.read(from: 0, upTo: 7, maxBytes: 1)?.map(\.baseOffset) == [0], "at least one batch")
        #expect(tail.read(from: 4, upTo: 7, maxBytes: 1 << 20) == nil, "not a batch start: the file answers")
        #expect(tail.read(from: 7, upTo: 8, maxBytes: 1 << 20) == nil, "past the end")
        let held = tail.read(from: 3, upTo: 6, maxBytes: 1 << 20)!
        #expect(held.count == 1 && held[0].recordCount == 3 && held[0].payload == .data(.batch(batch(3, 3))))
    }

    @Test("a truncation drops the batches past it; the next append continues; a gap or the budget drops the oldest")
    func truncations() {
        var tail = RecentBatches(budgetBytes: 3 * batch(0, 1).readableBytes)
        for base in 0..<3 { tail.appended(batch(Int64(base), 1)) }
        tail.truncate(to: 1)
        #expect(tail.read(from: 1, upTo: 3, maxBytes: 1 << 20) == nil, "offsets 1 and 2 are gone")
        tail.appended(batch(1, 1, epoch: 2))
        #expect(tail.read(from: 0, upTo: 2, maxBytes: 1 << 20)?.map(\.epoch) == [1, 2])
        tail.appended(batch(2, 1, epoch: 2))
        tail.appended(batch(3, 1, epoch: 2))
        #expect(tail.read(from: 0, upTo: 4, maxBytes: 1 << 20) == nil, "over budget, the oldest went")
        #expect(tail.read(from: 1, upTo: 4, maxBytes: 1 << 20)?.map(\.baseOffset) == [1, 2, 3])
        tail.appended(batch(9, 1))
        #expect(tail.read(from: 1, upTo: 10, maxBytes: 1 << 20) == nil, "a gap clears what came before")
        #expect(tail.read(from: 9, upTo: 10, maxBytes: 1 << 20)?.count == 1)
    }
}
