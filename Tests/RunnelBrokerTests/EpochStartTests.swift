// KIP-207: a new leader's high watermark can be older than offsets the previous leader
// committed (followers learn the high watermark with their next data). Until the followers'
// first fetches move it past the offset where the leader's epoch began, the partition says so,
// and ListOffsets answers consumers OFFSET_NOT_AVAILABLE instead of an end offset that went back.
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker
@testable import RunnelLog

@Suite("New leader's high watermark")
struct EpochStartTests {
    @Test("a new leader's high watermark lags its epoch start until the ISR has fetched past it")
    func lagsUntilFollowersFetch() throws {
        let partition = try threeReplicaLeader()
        #expect(!partition.highWatermarkLagsEpochStart, "an empty log starts its epoch at 0")
        let (payload, batches) = recordBatch(5)
        _ = try partition.appendAsLeader(
            payload, batches: batches, requiredAcks: 1, minInsyncReplicas: 1, nowMs: 0, monotonicMs: 0)
        #expect(partition.highWatermark == 0, "no follower has fetched")
        #expect(!partition.highWatermarkLagsEpochStart, "epoch 0 began at offset 0")

        // A new epoch (as after a failover and back): it begins at the log end, 5.
        partition.update(
            PartitionRegistration(replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 1, partitionEpoch: 1),
            nowMs: 0)
        #expect(partition.highWatermark == 0)
        #expect(partition.highWatermarkLagsEpochStart)

        for replica: Int32 in [2, 3] { fetchAsFollower(partition, replica: replica, from: 5) }
        #expect(partition.highWatermark == 5)
        #expect(!partition.highWatermarkLagsEpochStart, "the ISR holds everything up to the epoch start")
    }
}
