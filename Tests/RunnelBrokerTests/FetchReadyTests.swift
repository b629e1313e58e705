// When a parked fetch on a leader may answer (the replication core's rule, which the broker's
// purgatory asks through Partition.fetchReady): a consumer once the high watermark passes its offset, a
// follower only once there is data past its offset. A follower is not woken by a move of the
// high watermark alone, as in Kafka's DelayedFetch; it learns it with its next data.
import NIOCore
import NIOEmbedded
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker
@testable import RunnelLog

@Suite("Parked fetches")
struct FetchReadyTests {
    @Test(
        "a follower's parked fetch waits for data, not for the high watermark; a consumer's waits for the high watermark"
    )
    func followerWaitsForData() throws {
        let tp = TopicPartition("t", 0)
        let partition = try threeReplicaLeader(tp)
        func follow(_ replica: Int32, from offset: Int64) { fetchAsFollower(partition, replica: replica, from: offset) }
        func ready(_ replicaId: Int32, at offset: Int64) -> Bool {
            partition.fetchReady(replica: replicaId, fetchOffset: offset)
        }

        let (first, firstInfos) = recordBatch(3)
        _ = try partition.appendAsLeader(
            first, batches: firstInfos, requiredAcks: -1, minInsyncReplicas: 2, nowMs: 0, monotonicMs: 0)
        follow(2, from: 3)
        #expect(partition.highWatermark == 0, "replica 3 has not fetched yet")
        #expect(!ready(2, at: 3), "replica 2 holds everything: nothing to answer")
        #expect(!ready(-1, at: 0), "a consumer sees nothing below the high watermark yet")

        follow(3, from: 3)
        #expect(partition.highWatermark == 3)
        #expect(ready(-1, at: 0), "the high watermark moved past the consumer's offset")
        #expect(!ready(2, at: 3), "the high watermark alone does not wake a follower")

        let (second, secondInfos) = recordBatch(2)
        _ = try partition.appendAsLeader(
            second, batches: secondInfos, requiredAcks: -1, minInsyncReplicas: 2, nowMs: 0, monotonicMs: 0)
        #expect(ready(2, at: 3), "new data wakes the follower")
        #expect(!ready(-1, at: 3), "the consumer waits until the new data is committed")
    }
}

@Suite("Fetch purgatory")
struct DelayedFetchPurgatoryTests {
    final class Flag: @unchecked Sendable { var ready = false; var completions = 0 }

    @Test("notify answers the waiters that can answer, each once; the rest wait for more data or their deadline")
    func notifyCompletesReadyWaiters() {
        let loop = EmbeddedEventLoop()
        let purgatory = DelayedFetchPurgatory()
        let tp = TopicPartition("t", 0)
        let flags = (0..<3).map { _ in Flag() }
        for flag in flags {
            let waiter = DelayedFetchPurgatory.Waiter(
                eventLoop: loop, partitions: [tp], tryComplete: { flag.ready },
                complete: { flag.completions += 1 })
            purgatory.watch(waiter, waitMs: 500)
        }
        #expect(purgatory.waitingCount == 3)
        flags[0].ready = true
        flags[2].ready = true
        purgatory.notify(tp)
        loop.run()
        #expect(flags.map(\.completions) == [1, 0, 1])
        #expect(purgatory.waitingCount == 1)
        purgatory.notify(tp)
        purgatory.notify(TopicPartition("other", 0))
        loop.run()
        #expect(flags.map(\.completions) == [1, 0, 1], "a finished waiter is not answered twice")
        loop.advanceTime(by: .milliseconds(500))
        #expect(flags.map(\.completions) == [1, 1, 1], "the last one answers at its deadline")
        #expect(purgatory.waitingCount == 0)
    }
}
