import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelWire

/// A replica of one partition hosted on this broker: its log, and its leadership and high
/// watermark as the metadata log assigns them.
public final class Partition: @unchecked Sendable {
    public let topicPartition: TopicPartition
    public let topicId: KafkaUUID
    public let log: PartitionLog
    private let localId: Int32
    private let lock = NIOLock()

    // Guarded by lock.
    private var registration: PartitionRegistration
    private var _highWatermark: Int64
    /// Log end offsets of followers, as their fetches report them.
    private var followerEndOffsets: [Int32: Int64] = [:]

    /// Called with the partition after its high watermark advances (outside the lock).
    let onHighWatermark: @Sendable (Partition) -> Void

    init(topicPartition: TopicPartition, topicId: KafkaUUID, log: PartitionLog, registration: PartitionRegistration,
         localId: Int32, highWatermark: Int64, onHighWatermark: @escaping @Sendable (Partition) -> Void) {
        self.topicPartition = topicPartition
        self.topicId = topicId
        self.log = log
        self.registration = registration
        self.localId = localId
        self._highWatermark = min(highWatermark, log.logEndOffset)
        self.onHighWatermark = onHighWatermark
        _ = lock.withLock { maybeAdvanceHighWatermarkLocked() }
    }

    public var state: PartitionRegistration { lock.withLock { registration } }
    public var isLeader: Bool { lock.withLock { registration.leader == localId } }
    public var leaderEpoch: Int32 { lock.withLock { registration.leaderEpoch } }
    public var highWatermark: Int64 { lock.withLock { _highWatermark } }

    /// Applies a new registration from the metadata log.
    func update(_ next: PartitionRegistration) {
        let advanced = lock.withLock {
            let becameLeader = next.leader == localId && (registration.leader != localId || next.leaderEpoch != registration.leaderEpoch)
            registration = next
            if becameLeader { followerEndOffsets = [:] }
            return maybeAdvanceHighWatermarkLocked()
        }
        if advanced { onHighWatermark(self) }
    }

    /// HW = the smallest log end offset over the ISR (the leader's own included); only forward.
    private func maybeAdvanceHighWatermarkLocked() -> Bool {
        guard registration.leader == localId else { return false }
        var candidate = log.logEndOffset
        for replica in registration.isr where replica != localId {
            candidate = min(candidate, followerEndOffsets[replica] ?? _highWatermark)
        }
        if candidate > _highWatermark {
            _highWatermark = candidate
            return true
        }
        return false
    }

    /// Checks the leader epoch a client sent (-1: not checked).
    func checkLeaderEpoch(_ epoch: Int32) -> ErrorCode? {
        guard epoch >= 0 else { return nil }
        let current = leaderEpoch
        if epoch < current { return .fencedLeaderEpoch }
        if epoch > current { return .unknownLeaderEpoch }
        return nil
    }

    /// Appends client batches as leader and advances the high watermark if the ISR allows.
    func appendAsLeader(_ payload: ByteBuffer, batches: [BatchInfo], requiredAcks: Int16, minInsyncReplicas: Int, nowMs: Int64) throws -> Result<AppendInfo, ErrorCode> {
        let (result, advanced): (Result<AppendInfo, ErrorCode>, Bool) = try lock.withLock {
            guard registration.leader == localId else { return (.failure(.notLeaderOrFollower), false) }
            if requiredAcks == -1 && registration.isr.count < minInsyncReplicas {
                return (.failure(.notEnoughReplicas), false)
            }
            let info = try log.appendAsLeader(payload, batches: batches, leaderEpoch: registration.leaderEpoch, nowMs: nowMs)
            return (.success(info), maybeAdvanceHighWatermarkLocked())
        }
        if advanced { onHighWatermark(self) }
        return result
    }

    /// Advances the log start offset (DeleteRecords); -1 means the high watermark.
    func deleteRecords(before offset: Int64) throws -> Result<Int64, ErrorCode> {
        try lock.withLock {
            guard registration.leader == localId else { return .failure(.notLeaderOrFollower) }
            let target = offset == -1 ? _highWatermark : offset
            guard target >= 0, target <= _highWatermark else { return .failure(.offsetOutOfRange) }
            return .success(try log.advanceLogStartOffset(to: target))
        }
    }
}
