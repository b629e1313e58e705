// What the broker tests build partitions from: a temp dir, a record batch, a leader of three
// replicas, and a follower's fetch on it.
import Foundation
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelReplication
import RunnelTestSupport
import RunnelWire
@testable import RunnelBroker
@testable import RunnelLog

/// A fresh directory, removed when the tests exit.
func tempDirectory() -> String { scratchDirectory("partition") }

/// One uncompressed batch of `count` records valued "`tag`-i", and what validation found in it.
func recordBatch(_ count: Int, tag: String = "v") -> (ByteBuffer, [BatchInfo]) {
    let records = (0..<count).map { i in
        Record(offset: Int64(i), timestamp: 1_000 + Int64(i), key: nil, value: ByteBuffer(string: "\(tag)-\(i)"))
    }
    let payload = RecordBatches.build(records: records)
    return (payload, try! RecordBatches.validate(payload, maxBatchBytes: 1_000_000).get())
}

/// Partition `tp` on broker 1, which leads it at epoch 0 with replicas and ISR [1, 2, 3].
func threeReplicaLeader(_ tp: TopicPartition = TopicPartition("t", 0), disk: any Disk = PosixDisk()) throws -> Partition
{
    let log = try PartitionLog(
        topicPartition: tp, directory: tempDirectory(), config: LogConfig(), disk: disk, nowMs: 0)
    let registration = PartitionRegistration(
        replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 0, partitionEpoch: 0)
    return Partition(
        topicPartition: tp, topicId: KafkaUUID(high: 1, low: 2), log: log, registration: registration, localId: 1,
        highWatermark: 0, nowMs: 0, onActions: { _, _ in })
}

/// Replica `replica` (live, broker epoch 1) fetching `partition` from `offset` at epoch 0.
@discardableResult
func fetchAsFollower(_ partition: Partition, replica: Int32, from offset: Int64) -> Partition.FollowerFetchResult {
    let eligibility = IsrEligibility(isLive: { _ in true }, registeredEpoch: { _ in 1 })
    return partition.followerFetch(
        replica: replica, brokerEpoch: 1, fetchOffset: offset, lastFetchedEpoch: 0, maxWaitMs: 0, nowMs: 0,
        lagTimeMaxMs: 30_000, eligibility: eligibility)
}
