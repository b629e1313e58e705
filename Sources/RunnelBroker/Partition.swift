import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelWire

/// The driver of one replica hosted on this broker: it steps the replication core
/// (`PartitionReplica`) and carries out what it returns. It writes the log (appends as leader,
/// the leader's data as follower, the truncations the core decides), reports the log's new
/// position back to the core, and hands every other action (a high watermark that moved, a
/// produce to answer, an ISR change to propose) to the broker through `onActions`, outside its
/// locks. It makes no replication decision of its own.
///
/// Two locks: `appendLock` serializes what writes the log or changes the role (appends, a
/// follower's fetched data and truncations, metadata updates), and is held across the write;
/// `lock` guards the core and is never held across a write, so fetches, which take it, never
/// wait for a disk. Order: appendLock, then lock, then the log's own locks.
public final class Partition: @unchecked Sendable {
    public let topicPartition: TopicPartition
    public let topicId: KafkaUUID
    public let log: PartitionLog
    private let appendLock = NIOLock()
    private let lock = NIOLock()

    // Guarded by lock (with `minInsync` below); `registration` changes only with appendLock held too.
    private var replica: PartitionReplica
    private var registration: PartitionRegistration

    private var minInsync = 1
    /// The topic's `min.insync.replicas` as the metadata resolves it (topic, dynamic broker,
    /// static and default values), set by the broker on every metadata change that touches it.
    public var minInsyncReplicas: Int {
        get { lock.withLock { minInsync } }
        set { lock.withLock { minInsync = newValue } }
    }

    /// Carries out the core's actions the partition does not (called outside the locks, in order).
    let onActions: @Sendable (Partition, [ReplicationAction]) -> Void

    package init(
        topicPartition: TopicPartition, topicId: KafkaUUID, log: PartitionLog, registration: PartitionRegistration,
        localId: Int32, highWatermark: Int64, nowMs: Int64, faults: ReplicationFaults = ReplicationFaults(),
        onActions: @escaping @Sendable (Partition, [ReplicationAction]) -> Void
    ) {
        self.topicPartition = topicPartition
        self.topicId = topicId
        self.log = log
        self.registration = PartitionRegistration(
            replicas: [], isr: [], leader: -1, leaderEpoch: -1, partitionEpoch: -1)
        // The log's unstable transactions count from the start: the core's last stable offset
        // never moves back within a leader epoch, so one that began at the checkpointed high
        // watermark would stay past a transaction the log recovered open, or one whose marker
        // the high watermark had not passed (Kafka's rule: the log learns the checkpointed high
        // watermark before its first unstable offset is read).
        let position = Self.position(of: log)
        log.highWatermarkUpdated(min(max(highWatermark, position.startOffset.rawValue), position.endOffset.rawValue))
        self.replica = PartitionReplica(
            localId: NodeID(localId), log: position, checkpointedHighWatermark: Offset(highWatermark),
            firstUnstableOffset: log.firstUnstableOffset.map { Offset($0) }, faults: faults)
        self.onActions = onActions
        update(registration, nowMs: nowMs)
    }

    /// Where `log` stands, for the core.
    static func position(of log: PartitionLog) -> LogPosition {
        LogPosition(
            startOffset: Offset(log.logStartOffset), endOffset: Offset(log.logEndOffset),
            latestEpoch: Epoch(log.latestEpoch))
    }

    /// The registration as the metadata log gives it, in the core's terms.
    static func assignment(_ r: PartitionRegistration) -> ReplicaAssignment {
        ReplicaAssignment(
            replicas: r.replicas.map { NodeID($0) }, isr: r.isr.map { NodeID($0) },
            leader: r.leader >= 0 ? NodeID(r.leader) : nil,
            leaderEpoch: Epoch(r.leaderEpoch), partitionEpoch: Epoch(r.partitionEpoch))
    }

    public var state: PartitionRegistration { lock.withLock { registration } }
    public var isLeader: Bool { lock.withLock { replica.isLeader } }
    /// Leads and has not stepped aside (see `PartitionReplica.checkIsolation`).
    public var servesClients: Bool { lock.withLock { replica.servesClients } }
    public var steppedAside: Bool { lock.withLock { replica.steppedAside } }
    public var leaderEpoch: Int32 { lock.withLock { registration.leaderEpoch } }
    public var highWatermark: Int64 { lock.withLock { replica.highWatermark.rawValue } }
    /// Where `read_committed` reads stop: below the first open transaction (or one whose marker
    /// the high watermark has not passed), and never past the high watermark.
    public var lastStableOffset: Int64 { lock.withLock { replica.lastStableOffset.rawValue } }
    /// What a consumer's fetch may read up to, with the high watermark and last stable offset it
    /// is told: the high watermark, or with `readCommitted` the last stable offset (never past
    /// the high watermark), as Kafka's `FetchIsolation` bounds a read.
    package func consumerReadBounds(
        readCommitted: Bool
    ) -> (highWatermark: Int64, lastStableOffset: Int64, readLimit: Int64) {
        lock.withLock {
            let hw = replica.highWatermark.rawValue
            let lastStable = min(hw, replica.lastStableOffset.rawValue)
            let pastStable = replica.faults.fetchPastLastStableOffset
            return (hw, lastStable, readCommitted && !pastStable ? lastStable : hw)
        }
    }

    /// The ISR as this leader knows it (committed, or confirmed by the controller); the image's otherwise.
    public var isr: [Int32] { lock.withLock { replica.isr.map(\.rawValue) } }
    public var leaderState: LeaderState? { lock.withLock { replica.leaderState } }
    /// A copy of the core, for tests, gauges and the simulation's checks.
    public var core: PartitionReplica { lock.withLock { replica } }
    /// KIP-207: this leader's high watermark is still below the offset where its epoch began
    /// (ListOffsets answers OFFSET_NOT_AVAILABLE meanwhile, so an end offset never goes back).
    public var highWatermarkLagsEpochStart: Bool { lock.withLock { replica.highWatermarkLagsEpochStart } }

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
        let actions: [ReplicationAction] = appendLock.withLock {
            lock.withLock {
                registration = next
                let actions = replica.assign(Self.assignment(next), log: Self.position(of: log), nowMs: nowMs)
                for case .beginLeaderEpoch(let epoch) in actions { log.beginLeaderEpoch(epoch.rawValue) }
                return actions + stabilityChanged()
            }
        }
        var transition = Transition.none
        for action in actions {
            switch action {
            case .beginLeaderEpoch: transition = .becameLeader
            case .follow(let leader, let epoch): transition = .follow(leader: leader.rawValue, epoch: epoch.rawValue)
            case .leaderless: transition = .leaderless
            default: break
            }
        }
        onActions(self, actions)
        return transition
    }

    /// Checks the leader epoch a request carries (-1: not checked).
    package func checkLeaderEpoch(_ epoch: Int32) -> ErrorCode? {
        lock.withLock { replica.checkLeaderEpoch(epoch >= 0 ? Epoch(epoch) : nil) }
    }

    /// Whether a fetch parked on this partition can answer now (see `PartitionReplica.fetchReady`).
    package func fetchReady(replica replicaId: Int32, fetchOffset: Int64, readCommitted: Bool = false) -> Bool {
        lock.withLock {
            replica.fetchReady(
                replica: replicaId >= 0 ? NodeID(replicaId) : nil, fetchOffset: Offset(fetchOffset),
                readCommitted: readCommitted)
        }
    }

    /// Tells the core where the log's transactions stand after a write or a move of the high
    /// watermark (with `lock` held): the log learns the high watermark (a completed transaction
    /// whose marker it passed is stable), and the core its first unstable offset, which the last
    /// stable offset follows.
    private func stabilityChanged() -> [ReplicationAction] {
        log.highWatermarkUpdated(replica.highWatermark.rawValue)
        return replica.firstUnstableOffsetChanged(log.firstUnstableOffset.map { Offset($0) })
    }

    // MARK: leader

    /// Appends client batches as leader (`nowMs` stamps LogAppendTime, `monotonicMs` is the
    /// core's clock); with an ISR of one the high watermark moves at once. acks=all is refused
    /// when the ISR is below `minInsyncReplicas`.
    package func appendAsLeader(
        _ payload: ByteBuffer, batches: [BatchInfo], requiredAcks: Int16, minInsyncReplicas: Int,
        nowMs: Int64, monotonicMs: Int64, origin: AppendOrigin = .client,
        verification: ProducerStateTable.Verification = .notRequired
    ) throws -> Result<AppendInfo, ErrorCode> {
        let (result, actions): (Result<AppendInfo, ErrorCode>, [ReplicationAction]) = try appendLock.withLock {
            // The role cannot change while appendLock is held: the check holds for the write.
            let allowed = lock.withLock {
                replica.appendAllowed(requiredAcks: requiredAcks, minInsyncReplicas: minInsyncReplicas)
            }
            let epoch: Epoch
            switch allowed {
            case .failure(let code): return (.failure(code), [])
            case .success(let current): epoch = current
            }
            let info = try log.appendAsLeader(
                payload, batches: batches, leaderEpoch: epoch.rawValue, nowMs: nowMs, origin: origin,
                verification: verification)
            let end = Offset(log.logEndOffset)
            return (
                .success(info),
                lock.withLock {
                    // A transaction the append opened counts before the high watermark moves past it.
                    stabilityChanged() + replica.leaderAppended(endOffset: end, nowMs: monotonicMs) + stabilityChanged()
                }
            )
        }
        onActions(self, actions)
        return result
    }

    /// Appends a transaction marker as leader (WriteTxnMarkers): the log checks it against the
    /// producer's state (`PartitionLog.appendTransactionMarker`) and throws `ProducerStateError`
    /// when it refuses it. A marker is written whatever `min.insync.replicas` says, as Kafka's
    /// coordinator-origin appends are; the caller waits for the high watermark to pass it.
    package func appendTransactionMarker(
        producerId: Int64, producerEpoch: Int16, _ marker: EndTransactionMarker, transactionVersion: Int16,
        nowMs: Int64, monotonicMs: Int64
    ) throws -> Result<AppendInfo, ErrorCode> {
        let (result, actions): (Result<AppendInfo, ErrorCode>, [ReplicationAction]) = try appendLock.withLock {
            let allowed = lock.withLock { replica.appendAllowed(requiredAcks: 1, minInsyncReplicas: 1) }
            let epoch: Epoch
            switch allowed {
            case .failure(let code): return (.failure(code), [])
            case .success(let current): epoch = current
            }
            let info = try log.appendTransactionMarker(
                producerId: producerId, producerEpoch: producerEpoch, marker, transactionVersion: transactionVersion,
                leaderEpoch: epoch.rawValue, nowMs: nowMs)
            let end = Offset(log.logEndOffset)
            return (
                .success(info),
                lock.withLock {
                    // A transaction the append opened counts before the high watermark moves past it.
                    stabilityChanged() + replica.leaderAppended(endOffset: end, nowMs: monotonicMs) + stabilityChanged()
                }
            )
        }
        onActions(self, actions)
        return result
    }

    /// An acks=all produce appended here waits for the high watermark (its completion comes as a
    /// `.completeProduce` action, perhaps at once).
    package func awaitReplication(_ produce: PendingProduce) {
        let actions = lock.withLock { replica.awaitReplication(produce) }
        onActions(self, actions)
    }

    /// Produces waiting here whose deadline passed by `nowMs` are answered REQUEST_TIMED_OUT.
    package func expireProduces(nowMs: Int64) {
        let actions = lock.withLock { replica.expireProduces(nowMs: nowMs) }
        onActions(self, actions)
    }

    /// What a leader answers a follower's fetch.
    package enum FollowerFetchResult {
        case error(ErrorCode)
        /// The follower's log parts from this one: it must truncate (KIP-320/595).
        case diverging(epoch: Int32, endOffset: Int64)
        /// Read from the fetch offset up to the log end; report this high watermark.
        case read(highWatermark: Int64, logEndOffset: Int64)
    }

    /// A follower fetched from `fetchOffset` having last fetched `lastFetchedEpoch`: the core
    /// compares its epoch history with this log's, records its position (which may move the high
    /// watermark) and may propose an ISR expansion.
    package func followerFetch(
        replica replicaId: Int32, brokerEpoch: Int64, fetchOffset: Int64, lastFetchedEpoch: Int32, maxWaitMs: Int64,
        nowMs: Int64, lagTimeMaxMs: Int64, eligibility: IsrEligibility
    ) -> FollowerFetchResult {
        let fetch = FollowerFetch(
            replica: NodeID(replicaId), brokerEpoch: BrokerEpoch.known(brokerEpoch),
            fetchOffset: Offset(fetchOffset),
            lastFetchedEpoch: lastFetchedEpoch >= 0 ? Epoch(lastFetchedEpoch) : .unknown,
            maxWaitMs: maxWaitMs)
        let (answer, actions): (FollowerFetchAnswer, [ReplicationAction]) = lock.withLock {
            replica.logStartMoved(to: Offset(log.logStartOffset))
            var epochEnd: OffsetAndEpoch?
            if lastFetchedEpoch >= 0 {
                let (epoch, end) = log.endOffset(forEpoch: lastFetchedEpoch)
                epochEnd = OffsetAndEpoch(offset: Offset(end), epoch: epoch >= 0 ? Epoch(epoch) : .unknown)
            }
            let (answer, actions) = replica.followerFetched(
                fetch, epochEnd: epochEnd, nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, eligibility: eligibility)
            return (answer, actions + stabilityChanged())
        }
        onActions(self, actions)
        switch answer {
        case .error(let code): return .error(code)
        case .diverging(let epoch, let end): return .diverging(epoch: epoch.rawValue, endOffset: end.rawValue)
        case .read(let upTo, let hw): return .read(highWatermark: hw.rawValue, logEndOffset: upTo.rawValue)
        }
    }

    /// The periodic ISR check: a change to propose (shrink or expand) goes out as an action.
    package func checkIsr(nowMs: Int64, lagTimeMaxMs: Int64, eligibility: IsrEligibility) {
        let actions = lock.withLock {
            replica.checkIsr(nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, eligibility: eligibility) + stabilityChanged()
        }
        onActions(self, actions)
    }

    /// The isolation check (see `PartitionReplica.checkIsolation`): the leader steps aside or
    /// takes its clients back.
    package func checkIsolation(nowMs: Int64, controllerSilentMs: Int64, sessionTimeoutMs: Int64) {
        let actions = lock.withLock {
            replica.checkIsolation(
                nowMs: nowMs, controllerSilentMs: controllerSilentMs, sessionTimeoutMs: sessionTimeoutMs)
        }
        onActions(self, actions)
    }

    /// The controller answered an AlterPartition (nil: refused or no answer).
    package func isrProposalAnswered(
        _ proposal: IsrProposal, result: AlterPartitionResponse.PartitionData?, nowMs: Int64
    ) {
        let answer = result.flatMap { r in
            r.errorCode == 0
                ? IsrAnswer(
                    isr: r.isr.map { NodeID($0) }, leaderEpoch: Epoch(r.leaderEpoch),
                    partitionEpoch: Epoch(r.partitionEpoch)) : nil
        }
        let actions = lock.withLock {
            replica.isrAnswered(proposal, answer: answer, nowMs: nowMs) + stabilityChanged()
        }
        onActions(self, actions)
    }

    /// Marks the replica gone before its log is deleted: fetches in flight for it are dropped,
    /// produces waiting on it answered.
    func markRemoved() {
        let actions = appendLock.withLock { lock.withLock { replica.remove() } }
        onActions(self, actions)
    }

    /// Advances the log start offset (DeleteRecords); -1 means the high watermark.
    func deleteRecords(before offset: Int64) throws -> Result<Int64, ErrorCode> {
        try appendLock.withLock {
            let target = lock.withLock { replica.deleteRecordsTarget(offset == -1 ? nil : Offset(offset)) }
            switch target {
            case .failure(let code): return .failure(code)
            case .success(let offset):
                let start = try log.advanceLogStartOffset(to: offset.rawValue)
                lock.withLock { replica.logStartMoved(to: Offset(start)) }
                return .success(start)
            }
        }
    }

    // MARK: follower

    /// The next fetch of this follower (nil when it leads, has no leader, or was removed).
    package var fetchPosition: FetchPosition? { lock.withLock { replica.fetchPosition } }

    /// What applying a fetch answer did.
    package enum FollowerApply: Equatable {
        case appended, idle, stale
        /// The log was cut back (or started over); where its end and high watermark stood before.
        case truncated(fromEndOffset: Int64, highWatermark: Int64)
        case failed(ErrorCode)
    }

    /// Applies the leader's answer to a fetch made at `position`: the core decides (truncate,
    /// start over, append, or drop a stale answer); this writes the log and reports back.
    package func applyFetched(
        _ data: FetchResponse.PartitionData, position: FetchPosition, nowMs: Int64
    ) throws -> FollowerApply {
        let diverging = data.divergingEpoch
        let answer = LeaderAnswer(
            error: ErrorCode(data.errorCode),
            divergingEpoch: diverging.epoch >= 0 || diverging.endOffset >= 0
                ? OffsetAndEpoch(
                    offset: Offset(diverging.endOffset), epoch: diverging.epoch >= 0 ? Epoch(diverging.epoch) : .unknown
                ) : nil,
            highWatermark: Offset(data.highWatermark), logStartOffset: Offset(data.logStartOffset))
        // appendLock keeps the role and the log end still; `lock` is taken only to step the core,
        // so fetches and metadata reads never wait for the write.
        let (outcome, actions): (FollowerApply, [ReplicationAction]) = try appendLock.withLock {
            let step: FollowerStep = lock.withLock {
                replica.logStartMoved(to: Offset(log.logStartOffset))
                let localEnd = answer.divergingEpoch.flatMap { d -> OffsetAndEpoch? in
                    guard d.epoch != .unknown else { return nil }
                    let (epoch, end) = log.endOffset(forEpoch: d.epoch.rawValue)
                    return OffsetAndEpoch(offset: Offset(end), epoch: epoch >= 0 ? Epoch(epoch) : .unknown)
                }
                return replica.followerStep(at: position, answer: answer, localEpochEnd: localEnd)
            }
            switch step {
            case .stale:
                return (.stale, [])
            case .failed(let code):
                return (.failed(code), [])
            case .truncate, .restart:
                let before = FollowerApply.truncated(fromEndOffset: log.logEndOffset, highWatermark: highWatermark)
                if case .truncate(let offset) = step {
                    try log.truncate(to: offset.rawValue)
                } else if case .restart(let offset) = step {
                    try log.truncateFullyAndStart(at: offset.rawValue, nowMs: nowMs)
                }
                return (
                    before,
                    lock.withLock {
                        replica.followerLogChanged(Self.position(of: log), leaderHighWatermark: nil)
                            + stabilityChanged()
                    }
                )
            case .append:
                var appended = false
                if let bytes = data.records?.bytes, bytes.readableBytes > 0 {
                    appended = try log.appendAsFollower(bytes, nowMs: nowMs) != nil
                }
                if let start = lock.withLock({ replica.logStartToAdopt(leaderLogStart: answer.logStartOffset) }) {
                    let moved = try log.advanceLogStartOffset(to: start.rawValue)
                    lock.withLock { replica.logStartMoved(to: Offset(moved)) }
                }
                let leaderLastStable = data.lastStableOffset >= 0 ? Offset(data.lastStableOffset) : nil
                let actions = lock.withLock {
                    replica.followerLogChanged(
                        Self.position(of: log), leaderHighWatermark: answer.highWatermark,
                        leaderLastStableOffset: leaderLastStable) + stabilityChanged()
                }
                return (appended ? .appended : .idle, actions)
            }
        }
        onActions(self, actions)
        return outcome
    }
}
