import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelWire

/// A replica of one partition hosted on this broker: its log, its role as the metadata log
/// assigns it, and (as leader) the replication state of its followers; (as follower) the high
/// watermark its leader last reported.
public final class Partition: @unchecked Sendable {
    public let topicPartition: TopicPartition
    public let topicId: KafkaUUID
    public let log: PartitionLog
    private let localId: Int32
    /// Serializes what writes the log or changes the role (appends, a follower's fetched data
    /// and truncations, metadata updates): held across log writes so `lock`, which every fetch
    /// takes, never is. Order: appendLock, then lock, then the log's locks.
    private let appendLock = NIOLock()
    private let lock = NIOLock()

    // Guarded by lock. `registration`, `followerHighWatermark` and `removed` change only with
    // appendLock held too; `leader`'s follower positions and ISR also change under lock alone
    // (fetches, ISR checks and answers), so an append re-reads it before updating it.
    private var registration: PartitionRegistration
    /// Follower positions, ISR and high watermark while this replica leads.
    private var leader: LeaderState?
    /// The high watermark while following: the leader's, capped at the local log end.
    private var followerHighWatermark: Int64
    /// The replica was removed from this broker (topic deleted or reassigned): its log is gone.
    private var removed = false

    /// Called with the partition after its high watermark advances (outside the lock).
    let onHighWatermark: @Sendable (Partition) -> Void

    package init(topicPartition: TopicPartition, topicId: KafkaUUID, log: PartitionLog, registration: PartitionRegistration,
         localId: Int32, highWatermark: Int64, nowMs: Int64, onHighWatermark: @escaping @Sendable (Partition) -> Void) {
        self.topicPartition = topicPartition
        self.topicId = topicId
        self.log = log
        self.registration = PartitionRegistration(replicas: [], isr: [], leader: -1, leaderEpoch: -1, partitionEpoch: -1)
        self.localId = localId
        self.followerHighWatermark = min(max(highWatermark, log.logStartOffset), log.logEndOffset)
        self.onHighWatermark = onHighWatermark
        _ = update(registration, nowMs: nowMs)
    }

    public var state: PartitionRegistration { lock.withLock { registration } }
    public var isLeader: Bool { lock.withLock { leader != nil } }
    public var leaderEpoch: Int32 { lock.withLock { registration.leaderEpoch } }
    public var highWatermark: Int64 { lock.withLock { highWatermarkLocked } }
    private var highWatermarkLocked: Int64 { leader?.highWatermark ?? followerHighWatermark }
    /// The ISR as this leader knows it (committed, or confirmed by the controller); the image's otherwise.
    public var isr: [Int32] { lock.withLock { leader?.isr ?? registration.isr } }
    public var leaderState: LeaderState? { lock.withLock { leader } }
    /// Whether this leader's high watermark is still below the offset where its epoch began
    /// (KIP-207): a new leader learns the committed point from its followers' first fetches,
    /// and until then its own high watermark can be older than offsets consumers have seen.
    /// ListOffsets answers OFFSET_NOT_AVAILABLE meanwhile, so an end offset never goes back.
    public var highWatermarkLagsEpochStart: Bool {
        lock.withLock { leader.map { $0.highWatermark < $0.epochStartOffset } ?? false }
    }

    /// What a metadata update did to this replica's role.
    package enum Transition: Equatable {
        case none
        case becameLeader
        /// Follows `leader` at `epoch` (a new leader, a new epoch, or first assignment).
        case follow(leader: Int32, epoch: Int32)
        case leaderless
    }

    /// Applies a registration from the metadata log.
    @discardableResult
    package func update(_ next: PartitionRegistration, nowMs: Int64) -> Transition {
        let (transition, advanced): (Transition, Bool) = appendLock.withLock { lock.withLock {
            let previous = registration
            registration = next
            let newEpoch = next.leaderEpoch != previous.leaderEpoch || next.leader != previous.leader
            if next.leader == localId {
                if newEpoch || leader == nil {
                    log.beginLeaderEpoch(next.leaderEpoch)
                    var state = LeaderState(
                        localId: localId, replicas: next.replicas, isr: next.isr, leaderEpoch: next.leaderEpoch,
                        partitionEpoch: next.partitionEpoch, highWatermark: highWatermarkLocked, leaderEndOffset: log.logEndOffset, nowMs: nowMs)
                    let moved = state.leaderAppended(leaderEndOffset: log.logEndOffset)
                    leader = state
                    return (.becameLeader, moved)
                }
                guard var state = leader, next.partitionEpoch > state.partitionEpoch else { return (.none, false) }
                let moved = state.update(replicas: next.replicas, isr: next.isr, partitionEpoch: next.partitionEpoch,
                                         leaderEndOffset: log.logEndOffset, nowMs: nowMs)
                leader = state
                return (.none, moved)
            }
            if let state = leader {
                followerHighWatermark = min(state.highWatermark, log.logEndOffset)
                leader = nil
            }
            guard newEpoch || previous.replicas.isEmpty else { return (.none, false) }
            return (next.leader >= 0 ? .follow(leader: next.leader, epoch: next.leaderEpoch) : .leaderless, false)
        } }
        if advanced { onHighWatermark(self) }
        return transition
    }

    /// Checks the leader epoch a request carries (-1: not checked).
    package func checkLeaderEpoch(_ epoch: Int32) -> ErrorCode? {
        guard epoch >= 0 else { return nil }
        let current = leaderEpoch
        if epoch < current { return .fencedLeaderEpoch }
        if epoch > current { return .unknownLeaderEpoch }
        return nil
    }

    // MARK: leader

    /// Appends client batches as leader; with an ISR of one the high watermark moves at once.
    /// acks=all is refused when the ISR is below `minInsyncReplicas`.
    package func appendAsLeader(_ payload: ByteBuffer, batches: [BatchInfo], requiredAcks: Int16, minInsyncReplicas: Int, nowMs: Int64) throws -> Result<AppendInfo, ErrorCode> {
        let (result, advanced): (Result<AppendInfo, ErrorCode>, Bool) = try appendLock.withLock {
            // The role cannot change while appendLock is held: the checks hold for the write.
            let check: Result<Int32, ErrorCode> = lock.withLock {
                guard let state = leader else { return .failure(.notLeaderOrFollower) }
                if requiredAcks == -1 && state.isr.count < minInsyncReplicas { return .failure(.notEnoughReplicas) }
                return .success(registration.leaderEpoch)
            }
            let epoch: Int32
            switch check {
            case .failure(let code): return (.failure(code), false)
            case .success(let current): epoch = current
            }
            let info = try log.appendAsLeader(payload, batches: batches, leaderEpoch: epoch, nowMs: nowMs)
            let moved: Bool = lock.withLock {
                guard var state = leader else { return false }
                let moved = state.leaderAppended(leaderEndOffset: log.logEndOffset)
                leader = state
                return moved
            }
            return (.success(info), moved)
        }
        // Followers parked on this partition wake for the new data (and acks=all waits when the
        // high watermark moved).
        if advanced || (try? result.get()) != nil { onHighWatermark(self) }
        return result
    }

    /// Where an acks=all produce stands: nil while waiting for the high watermark to pass
    /// `requiredOffset`; otherwise its answer (Kafka's DelayedProduce check).
    package func acksAllStatus(requiredOffset: Int64, minInsyncReplicas: Int) -> ErrorCode? {
        lock.withLock {
            guard let state = leader else { return .notLeaderOrFollower }
            guard state.highWatermark >= requiredOffset else { return nil }
            return state.isr.count < minInsyncReplicas ? .notEnoughReplicasAfterAppend : ErrorCode.none
        }
    }

    /// What a leader answers a follower's fetch.
    package enum FollowerFetch {
        case error(ErrorCode)
        /// The follower's log parts from this one: it must truncate (KIP-320/595).
        case diverging(epoch: Int32, endOffset: Int64)
        /// Read from the fetch offset up to the log end; report this high watermark.
        case read(highWatermark: Int64, logEndOffset: Int64)
    }

    /// A follower fetched from `fetchOffset` having last fetched `lastFetchedEpoch`: checks its
    /// epoch history against this log, records its position (which may move the high watermark),
    /// and returns an ISR expansion to propose when it has caught up.
    package func followerFetch(replica: Int32, brokerEpoch: Int64, fetchOffset: Int64, lastFetchedEpoch: Int32, nowMs: Int64,
                       lagTimeMaxMs: Int64, eligibility: IsrEligibility) -> (FollowerFetch, IsrProposal?) {
        let (answer, advanced, proposal): (FollowerFetch, Bool, IsrProposal?) = lock.withLock {
            guard var state = leader else { return (.error(.notLeaderOrFollower), false, nil) }
            guard registration.replicas.contains(replica) else { return (.error(.notLeaderOrFollower), false, nil) }
            let end = log.logEndOffset
            if lastFetchedEpoch >= 0 {
                let (epoch, epochEnd) = log.endOffset(forEpoch: lastFetchedEpoch)
                if epoch < 0 {
                    // Nothing in common: the follower starts over from this log's start.
                    return (.diverging(epoch: -1, endOffset: log.logStartOffset), false, nil)
                }
                if epoch < lastFetchedEpoch || epochEnd < fetchOffset {
                    return (.diverging(epoch: epoch, endOffset: epochEnd), false, nil)
                }
            }
            guard fetchOffset >= log.logStartOffset, fetchOffset <= end else { return (.error(.offsetOutOfRange), false, nil) }
            let moved = state.followerFetched(replica, fetchOffset: fetchOffset, leaderEndOffset: end, nowMs: nowMs, brokerEpoch: brokerEpoch)
            var proposal: IsrProposal?
            if !state.isr.contains(replica), let change = state.isrChange(
                nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, leaderEndOffset: end,
                isLive: eligibility.isLive, registeredEpoch: eligibility.registeredEpoch) {
                state.proposed(change)
                proposal = change
            }
            leader = state
            return (.read(highWatermark: state.highWatermark, logEndOffset: end), moved, proposal)
        }
        if advanced { onHighWatermark(self) }
        return (answer, proposal)
    }

    /// The periodic ISR check: an ISR change to propose (shrink or expand), marked in flight.
    package func isrCheck(nowMs: Int64, lagTimeMaxMs: Int64, eligibility: IsrEligibility) -> IsrProposal? {
        lock.withLock {
            guard var state = leader,
                  let change = state.isrChange(nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, leaderEndOffset: log.logEndOffset,
                                               isLive: eligibility.isLive, registeredEpoch: eligibility.registeredEpoch)
            else { return nil }
            state.proposed(change)
            leader = state
            return change
        }
    }

    /// The controller answered an AlterPartition: on success the new ISR holds now (it is
    /// committed); otherwise the proposal is dropped and the next check tries again.
    package func isrProposalAnswered(_ proposal: IsrProposal, result: AlterPartitionResponse.PartitionData?, nowMs: Int64) {
        let advanced: Bool = lock.withLock {
            guard var state = leader, state.pending == proposal else { return false }
            guard let result, result.errorCode == 0, result.leaderEpoch == state.leaderEpoch, result.partitionEpoch > state.partitionEpoch else {
                state.proposalFailed()
                leader = state
                return false
            }
            let moved = state.update(replicas: state.replicas, isr: result.isr, partitionEpoch: result.partitionEpoch,
                                     leaderEndOffset: log.logEndOffset, nowMs: nowMs)
            leader = state
            return moved
        }
        if advanced { onHighWatermark(self) }
    }

    /// Marks the replica gone before its log is deleted: fetches in flight for it are dropped.
    func markRemoved() {
        appendLock.withLock {
            lock.withLock {
                removed = true
                leader = nil
            }
        }
    }

    // MARK: follower

    /// Where a follower's next fetch starts, and what it tells the leader.
    package struct FetchPosition {
        package var leader: Int32
        package var leaderEpoch: Int32
        package var fetchOffset: Int64
        package var lastFetchedEpoch: Int32
        package var logStartOffset: Int64
    }

    /// The next fetch of this follower (nil when it leads or has no leader).
    package var fetchPosition: FetchPosition? {
        lock.withLock {
            guard !removed, leader == nil, registration.leader >= 0, registration.leader != localId else { return nil }
            return FetchPosition(leader: registration.leader, leaderEpoch: registration.leaderEpoch, fetchOffset: log.logEndOffset,
                                 lastFetchedEpoch: log.latestEpoch, logStartOffset: log.logStartOffset)
        }
    }

    /// Applies the leader's answer to a fetch made at `position`. Nothing happens when the
    /// partition changed role or epoch since. Returns true when it should be fetched again at
    /// once (it moved), false when it had nothing.
    package func applyFetched(_ data: FetchResponse.PartitionData, position: FetchPosition, nowMs: Int64) throws -> FollowerApply {
        // appendLock keeps the role and the log end still; `lock` is taken only to read and set
        // the follower's high watermark, so fetches and metadata reads never wait for the write.
        let (outcome, advanced): (FollowerApply, Bool) = try appendLock.withLock {
            let current = lock.withLock {
                !removed && leader == nil && registration.leader == position.leader && registration.leaderEpoch == position.leaderEpoch
            }
            guard current, log.logEndOffset == position.fetchOffset else { return (.stale, false) }
            let code = ErrorCode(data.errorCode)
            switch code {
            case .none:
                break
            case .offsetOutOfRange:
                // The leader no longer has our fetch offset: behind its log start, start over
                // there; past its end (it lost an unclean tail), fall back to its high watermark.
                if data.logStartOffset > position.fetchOffset {
                    try log.truncateFullyAndStart(at: data.logStartOffset, nowMs: nowMs)
                    setFollowerHighWatermark { _ in data.logStartOffset }
                } else {
                    let target = max(min(data.highWatermark, position.fetchOffset), log.logStartOffset)
                    try log.truncate(to: target)
                    capFollowerHighWatermark()
                }
                return (.truncated, false)
            default:
                return (.failed(code), false)
            }
            let diverging = data.divergingEpoch
            if diverging.epoch >= 0 || diverging.endOffset >= 0 {
                guard diverging.epoch >= 0 else {
                    // No epoch in common: copy the leader's log from its start.
                    try log.truncateFullyAndStart(at: diverging.endOffset, nowMs: nowMs)
                    let end = log.logEndOffset
                    setFollowerHighWatermark { _ in end }
                    return (.truncated, false)
                }
                // Truncate to where the histories agree: the leader's end of that epoch, or ours
                // if shorter; when we do not hold that epoch, the end of our largest epoch below
                // it (the next fetch compares again from there).
                let (localEpoch, localEnd) = log.endOffset(forEpoch: diverging.epoch)
                var target = localEpoch == diverging.epoch ? min(localEnd, diverging.endOffset) : localEnd
                if localEpoch < 0 { target = log.logStartOffset }
                target = max(min(target, position.fetchOffset), log.logStartOffset)
                try log.truncate(to: target)
                capFollowerHighWatermark()
                return (.truncated, false)
            }
            var appended = false
            if let bytes = data.records?.bytes, bytes.readableBytes > 0 {
                appended = try log.appendAsFollower(bytes, nowMs: nowMs) != nil
            }
            if data.logStartOffset > log.logStartOffset, data.logStartOffset <= log.logEndOffset {
                _ = try log.advanceLogStartOffset(to: data.logStartOffset)
            }
            let hw = min(data.highWatermark, log.logEndOffset)
            var moved = false
            setFollowerHighWatermark { old in
                moved = hw > old
                return max(old, hw)
            }
            return (appended ? .appended : .idle, moved)
        }
        if advanced { onHighWatermark(self) }
        return outcome
    }

    private func setFollowerHighWatermark(_ next: (Int64) -> Int64) {
        lock.withLock { followerHighWatermark = next(followerHighWatermark) }
    }

    /// After a truncation: the high watermark never stands above the log end.
    private func capFollowerHighWatermark() {
        let end = log.logEndOffset
        setFollowerHighWatermark { min($0, end) }
    }

    package enum FollowerApply: Equatable {
        case appended, idle, truncated, stale
        case failed(ErrorCode)
    }

    /// Advances the log start offset (DeleteRecords); -1 means the high watermark.
    func deleteRecords(before offset: Int64) throws -> Result<Int64, ErrorCode> {
        try appendLock.withLock {
            let hw: Int64? = lock.withLock { leader == nil ? nil : highWatermarkLocked }
            guard let hw else { return .failure(.notLeaderOrFollower) }
            let target = offset == -1 ? hw : offset
            guard target >= 0, target <= hw else { return .failure(.offsetOutOfRange) }
            return .success(try log.advanceLogStartOffset(to: target))
        }
    }
}
