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
        let tp = TopicPartition("t", 0)
        let log = try PartitionLog(topicPartition: tp, directory: tempDirectory(), config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        let first = PartitionRegistration(replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 0, partitionEpoch: 0)
        let partition = Partition(topicPartition: tp, topicId: KafkaUUID(high: 1, low: 2), log: log, registration: first, localId: 1,
                                  highWatermark: 0, nowMs: 0, onHighWatermark: { _ in })
        #expect(!partition.highWatermarkLagsEpochStart, "an empty log starts its epoch at 0")
        let rs = (0..<5).map { i in Record(offset: Int64(i), timestamp: 1_000, key: nil, value: ByteBuffer(string: "v\(i)")) }
        let payload = RecordBatches.build(records: rs)
        _ = try partition.appendAsLeader(payload, batches: try RecordBatches.validate(payload, maxBatchBytes: 1_000_000).get(),
                                         requiredAcks: 1, minInsyncReplicas: 1, nowMs: 0)
        #expect(partition.highWatermark == 0, "no follower has fetched")
        #expect(!partition.highWatermarkLagsEpochStart, "epoch 0 began at offset 0")

        // A new epoch (as after a failover and back): it begins at the log end, 5.
        partition.update(PartitionRegistration(replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 1, partitionEpoch: 1), nowMs: 0)
        #expect(partition.highWatermark == 0)
        #expect(partition.highWatermarkLagsEpochStart)

        let eligibility = IsrEligibility(isLive: { _ in true }, registeredEpoch: { _ in 1 })
        for replica: Int32 in [2, 3] {
            _ = partition.followerFetch(replica: replica, brokerEpoch: 1, fetchOffset: 5, lastFetchedEpoch: 0, nowMs: 0,
                                        lagTimeMaxMs: 30_000, eligibility: eligibility)
        }
        #expect(partition.highWatermark == 5)
        #expect(!partition.highWatermarkLagsEpochStart, "the ISR holds everything up to the epoch start")
    }
}
