import RunnelCore
import RunnelWire

/// A partition's registration as the metadata log has it: the part replication needs.
public struct ReplicaAssignment: Sendable, Equatable, CustomStringConvertible {
    public var replicas: [NodeID]
    public var isr: [NodeID]
    /// nil while the partition has no leader.
    public var leader: NodeID?
    public var leaderEpoch: Epoch
    public var partitionEpoch: Epoch

    public init(replicas: [NodeID], isr: [NodeID], leader: NodeID?, leaderEpoch: Epoch, partitionEpoch: Epoch) {
        self.replicas = replicas
        self.isr = isr
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
    }

    public var description: String {
        "leader \(leader.map { "\($0)" } ?? "none") epoch \(leaderEpoch)/\(partitionEpoch) replicas \(replicas) isr \(isr)"
    }
}

/// Where the local log stands. The driver reports it after each change it makes to the log.
public struct LogPosition: Sendable, Equatable, CustomStringConvertible {
    public var startOffset: Offset
    public var endOffset: Offset
    /// The leader epoch of the last batch, or the epoch a leader began at the log end (unknown
    /// for a log that never held a batch).
    public var latestEpoch: Epoch

    public init(startOffset: Offset, endOffset: Offset, latestEpoch: Epoch) {
        self.startOffset = startOffset
        self.endOffset = endOffset
        self.latestEpoch = latestEpoch
    }

    public var description: String { "\(startOffset)..<\(endOffset) epoch \(latestEpoch)" }
}

/// Names one acks=all produce waiting on one partition; the driver allocates them, unique per broker.
public struct ProduceID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (lhs: ProduceID, rhs: ProduceID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "produce#\(rawValue)" }
}

/// An acks=all produce waiting for the high watermark (Kafka's DelayedProduce, one partition of it).
public struct PendingProduce: Sendable, Equatable {
    public var id: ProduceID
    /// The high watermark that covers the append: its last offset + 1.
    public var requiredOffset: Offset
    /// When it is answered REQUEST_TIMED_OUT if still waiting (monotonic ms).
    public var deadlineMs: Int64
    /// `min.insync.replicas` when it was appended: an ISR below it at completion answers
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    public var minInsyncReplicas: Int

    public init(id: ProduceID, requiredOffset: Offset, deadlineMs: Int64, minInsyncReplicas: Int) {
        self.id = id
        self.requiredOffset = requiredOffset
        self.deadlineMs = deadlineMs
        self.minInsyncReplicas = minInsyncReplicas
    }
}

/// What the driver must do after a step of the core, in order.
public enum ReplicationAction: Sendable, Equatable, CustomStringConvertible {
    /// Record in the log's epoch cache that `epoch` begins at the log end (a new leader's first act).
    case beginLeaderEpoch(Epoch)
    /// Pull from `leader` at `epoch`: a new leader, a new epoch, or a first assignment.
    case follow(leader: NodeID, epoch: Epoch)
    /// No leader: nothing to fetch from.
    case leaderless
    /// The high watermark moved: consumer fetches parked on the partition may answer (the last
    /// stable offset may have moved with it: read `lastStableOffset`).
    case highWatermarkMoved(Offset)
    /// The last stable offset moved on its own (a transaction ended): read_committed fetches
    /// parked on the partition may answer.
    case lastStableOffsetMoved(Offset)
    /// The leader's log end moved: follower fetches parked on the partition may answer.
    case logEndMoved(Offset)
    /// An acks=all produce is done: answer it with this error (`.none`: it is replicated).
    case completeProduce(ProduceID, ErrorCode)
    /// Ask the controller for this ISR (AlterPartition); it holds once committed.
    case proposeIsr(IsrProposal)
    /// The leader stepped aside (true) or took its clients back (false); see `checkIsolation`.
    case steppedAside(Bool)

    public var description: String {
        switch self {
        case .beginLeaderEpoch(let e): return "begin-leader-epoch \(e)"
        case .follow(let leader, let epoch): return "follow \(leader) epoch \(epoch)"
        case .leaderless: return "leaderless"
        case .highWatermarkMoved(let o): return "high-watermark \(o)"
        case .lastStableOffsetMoved(let o): return "last-stable-offset \(o)"
        case .logEndMoved(let o): return "log-end \(o)"
        case .completeProduce(let id, let code): return "complete \(id) \(code)"
        case .proposeIsr(let p): return "propose \(p)"
        case .steppedAside(let aside): return aside ? "step aside" : "take clients back"
        }
    }
}

/// A follower's fetch as the leader receives it (Fetch v15 carries the broker epoch, KIP-903).
public struct FollowerFetch: Sendable, Equatable {
    public var replica: NodeID
    public var brokerEpoch: BrokerEpoch?
    public var fetchOffset: Offset
    /// The epoch of the follower's last batch (unknown: the leader does not check the histories).
    public var lastFetchedEpoch: Epoch
    /// How long the follower lets its fetch wait here for data (the Fetch's max_wait_ms).
    public var maxWaitMs: Int64

    public init(
        replica: NodeID, brokerEpoch: BrokerEpoch?, fetchOffset: Offset, lastFetchedEpoch: Epoch, maxWaitMs: Int64 = 0
    ) {
        self.replica = replica
        self.brokerEpoch = brokerEpoch
        self.fetchOffset = fetchOffset
        self.lastFetchedEpoch = lastFetchedEpoch
        self.maxWaitMs = maxWaitMs
    }
}

/// The leader's answer to a follower's fetch.
public enum FollowerFetchAnswer: Sendable, Equatable {
    case error(ErrorCode)
    /// The follower's log parts from this one after `endOffset` of `epoch`: it must truncate
    /// (KIP-320/595). An unknown epoch: nothing in common; the follower starts over at `endOffset`.
    case diverging(epoch: Epoch, endOffset: Offset)
    /// Read from the fetch offset up to `upTo` (the log end); report this high watermark.
    case read(upTo: Offset, highWatermark: Offset)
}

/// Where a follower's next fetch starts, and what it tells the leader.
public struct FetchPosition: Sendable, Equatable {
    public var leader: NodeID
    public var leaderEpoch: Epoch
    public var fetchOffset: Offset
    public var lastFetchedEpoch: Epoch
    public var logStartOffset: Offset
}

/// The leader's answer to one partition of a follower's fetch, as the follower reads it.
public struct LeaderAnswer: Sendable, Equatable {
    public var error: ErrorCode
    /// Set when the leader says the logs diverge.
    public var divergingEpoch: OffsetAndEpoch?
    public var highWatermark: Offset
    public var logStartOffset: Offset

    public init(error: ErrorCode, divergingEpoch: OffsetAndEpoch?, highWatermark: Offset, logStartOffset: Offset) {
        self.error = error
        self.divergingEpoch = divergingEpoch
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
    }
}

/// What a follower does with its leader's answer.
public enum FollowerStep: Sendable, Equatable {
    /// The replica changed role or epoch, or its log moved, since the fetch: drop the answer.
    case stale
    /// The leader refused the fetch; try again later.
    case failed(ErrorCode)
    /// Remove the log from this offset on.
    case truncate(to: Offset)
    /// Remove the whole log and start it empty at this offset.
    case restart(at: Offset)
    /// Append what came (if anything), then report the new log position with the leader's marks.
    case append
}

/// A committed ISR change as the controller answered it.
public struct IsrAnswer: Sendable, Equatable {
    public var isr: [NodeID]
    public var leaderEpoch: Epoch
    public var partitionEpoch: Epoch

    public init(isr: [NodeID], leaderEpoch: Epoch, partitionEpoch: Epoch) {
        self.isr = isr
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
    }
}

/// One replica of one partition as a value you step: the replication core the broker's driver
/// (`Partition`) carries out, and that the simulation runs unchanged.
///
/// As leader it holds the followers' positions, the ISR and the changes it proposes for it
/// (KIP-903 broker epochs included), the high watermark, and the acks=all produces waiting for
/// it; as follower it decides the truncation point when the leader reports a diverging epoch or
/// an offset out of range, and applies the leader's high watermark and log start. Inputs arrive
/// as values, time included; outputs are `ReplicationAction`s (and, for queries, answers) for
/// the driver. It does no I/O: the driver writes the log and reports the new position.
///
/// Invariants, checked after every step (in release builds too): the high watermark is within
/// the log; a leader's high watermark never moves back within its epoch; the ISR is a subset of
/// the replicas and holds the leader; a produce answered without error is covered by the high
/// watermark.
public struct PartitionReplica: Sendable {
    /// What this replica is doing now.
    public enum Role: Sendable, Equatable {
        /// Leads; `leaderState` holds the followers, the ISR and the high watermark.
        case leader
        case follower(leader: NodeID, epoch: Epoch)
        case leaderless
        /// The replica left this broker (topic deleted or reassigned).
        case removed
    }

    public let localId: NodeID
    public private(set) var assignment: ReplicaAssignment
    public private(set) var role: Role = .leaderless
    /// Set exactly while the replica leads (kept apart from `role` so it mutates in place).
    public private(set) var leaderState: LeaderState?
    public private(set) var log: LogPosition
    public private(set) var highWatermark: Offset
    /// The last stable offset (KIP-98): read_committed fetches and ListOffsets stop here. A
    /// leader's is the lower of its high watermark and its log's first unstable offset (the
    /// first offset of an open transaction, or of one whose marker the high watermark has not
    /// passed); a follower's is its leader's, capped by its own high watermark. Never above the
    /// high watermark; never moving back within a leader epoch.
    public private(set) var lastStableOffset: Offset
    /// The log's first unstable offset as the driver last reported it (nil: everything stable).
    public private(set) var firstUnstableOffset: Offset?
    /// A follower's: the last stable offset its leader last reported (nil before any).
    private var leaderLastStableOffset: Offset?
    /// acks=all produces waiting for the high watermark, in the order they were appended.
    public private(set) var pendingProduces: [PendingProduce] = []
    /// This leader stepped aside: it has likely been replaced (see `checkIsolation`), so it takes
    /// no produce and serves no client until it hears from the controller or its followers again.
    public private(set) var steppedAside = false
    /// Test-only broken rules.
    public let faults: ReplicationFaults

    /// A replica opened with its log at `log` and the high watermark last checkpointed; no role
    /// until the first `assign`.
    /// `firstUnstableOffset` is the log's (nil: no transaction open or unreplicated).
    public init(
        localId: NodeID, log: LogPosition, checkpointedHighWatermark: Offset, firstUnstableOffset: Offset? = nil,
        faults: ReplicationFaults = ReplicationFaults()
    ) {
        self.localId = localId
        self.log = log
        self.assignment = ReplicaAssignment(
            replicas: [], isr: [], leader: nil, leaderEpoch: .unknown, partitionEpoch: .unknown)
        self.highWatermark = min(max(checkpointedHighWatermark, log.startOffset), log.endOffset)
        self.firstUnstableOffset = firstUnstableOffset
        self.lastStableOffset = min(highWatermark, firstUnstableOffset ?? highWatermark)
        self.faults = faults
        checkInvariants()
    }

    // MARK: queries

    public var isLeader: Bool { leaderState != nil }

    /// Leads and has not stepped aside: produces and client fetches are taken here.
    public var servesClients: Bool { leaderState != nil && !steppedAside }

    /// The ISR as this replica knows it: a leader's (committed, or confirmed by the controller),
    /// the metadata's otherwise.
    public var isr: [NodeID] { leaderState?.isr ?? assignment.isr }

    /// Whether this leader's high watermark is still below the offset where its epoch began
    /// (KIP-207): a new leader learns the committed point from its followers' first fetches, and
    /// until then its own high watermark can be older than offsets consumers have seen.
    public var highWatermarkLagsEpochStart: Bool {
        leaderState.map { $0.highWatermark < $0.epochStartOffset } ?? false
    }

    /// Checks the leader epoch a request carries (nil: not checked).
    public func checkLeaderEpoch(_ epoch: Epoch?) -> ErrorCode? {
        guard let epoch, epoch != .unknown else { return nil }
        if epoch < assignment.leaderEpoch { return .fencedLeaderEpoch }
        if epoch > assignment.leaderEpoch { return .unknownLeaderEpoch }
        return nil
    }

    /// Whether a fetch parked on this partition can answer now: when this replica stopped
    /// leading (the fetch must hear of it); for a follower's fetch (`replica` set), when the log
    /// holds data past its offset; for a consumer's, when the high watermark passed its offset.
    /// A follower is not woken by the high watermark alone, as in Kafka's DelayedFetch: it
    /// learns the new one with its next data (or when its wait ends).
    public func fetchReady(replica: NodeID?, fetchOffset: Offset, readCommitted: Bool = false) -> Bool {
        guard isLeader, replica != nil || !steppedAside else { return true }
        if replica != nil { return log.endOffset > fetchOffset }
        return (readCommitted ? lastStableOffset : highWatermark) > fetchOffset
    }

    /// The soonest deadline of a waiting produce.
    public var nextProduceDeadlineMs: Int64? { pendingProduces.map(\.deadlineMs).min() }

    // MARK: metadata

    /// Applies a registration from the metadata log: the replica leads, follows or waits for a
    /// leader. `log` is where the local log stands now.
    public mutating func assign(_ next: ReplicaAssignment, log: LogPosition, nowMs: Int64) -> [ReplicationAction] {
        guard role != .removed else { return [] }
        let before = mark
        var actions: [ReplicationAction] = []
        let previous = assignment
        assignment = next
        self.log = log
        let newEpoch = next.leaderEpoch != previous.leaderEpoch || next.leader != previous.leader
        if steppedAside, newEpoch || next.leader != localId {
            // A new leader epoch (here or elsewhere) ends a step aside.
            steppedAside = false
            if next.leader == localId { actions.append(.steppedAside(false)) }
        }
        if next.leader == localId {
            if newEpoch || !isLeader {
                highWatermark = min(max(highWatermark, log.startOffset), log.endOffset)
                // A new leader stamps its epoch at its log end before any append of it.
                self.log.latestEpoch = next.leaderEpoch
                actions.append(.beginLeaderEpoch(next.leaderEpoch))
                var state = LeaderState(
                    localId: localId, replicas: next.replicas, isr: next.isr, leaderEpoch: next.leaderEpoch,
                    partitionEpoch: next.partitionEpoch, highWatermark: highWatermark,
                    leaderEndOffset: log.endOffset, nowMs: nowMs, faults: faults)
                if state.leaderAppended(leaderEndOffset: log.endOffset, nowMs: nowMs) {
                    actions.append(.highWatermarkMoved(state.highWatermark))
                }
                highWatermark = state.highWatermark
                leaderState = state
                role = .leader
            } else if let current = leaderState, next.partitionEpoch > current.partitionEpoch {
                let moved = leaderState!.update(
                    replicas: next.replicas, isr: next.isr, partitionEpoch: next.partitionEpoch,
                    leaderEndOffset: log.endOffset, nowMs: nowMs)
                actions += leaderHighWatermarkChanged(moved)
            }
        } else {
            highWatermark = min(max(highWatermark, log.startOffset), log.endOffset)
            if isLeader {
                // Stepped down: what was waiting for this leader's high watermark never gets it
                // here. The records are in the log and may well survive on the new leader, so the
                // answer is REQUEST_TIMED_OUT, which clients take as "possibly written" (librdkafka
                // keeps an idempotent batch's sequence for its retry), not NOT_LEADER_OR_FOLLOWER,
                // which they take as "not written" and may send again under new sequences.
                actions += failPendingProduces(.requestTimedOut)
            }
            if newEpoch || previous.replicas.isEmpty || isLeader {
                leaderState = nil
                if let leader = next.leader {
                    role = .follower(leader: leader, epoch: next.leaderEpoch)
                    actions.append(.follow(leader: leader, epoch: next.leaderEpoch))
                } else {
                    role = .leaderless
                    actions.append(.leaderless)
                }
            }
        }
        updateLastStableOffset()
        checkInvariants(after: before)
        return actions
    }

    /// The replica leaves this broker: nothing waits on it any more.
    public mutating func remove() -> [ReplicationAction] {
        let actions = failPendingProduces(.notLeaderOrFollower)
        leaderState = nil
        steppedAside = false
        role = .removed
        return actions
    }

    // MARK: leader: appends and acks=all

    /// Whether this replica may append a produce now, and at which leader epoch: only a leader,
    /// and for acks=all (`requiredAcks` -1) only with an ISR of at least `minInsyncReplicas`.
    public func appendAllowed(requiredAcks: Int16, minInsyncReplicas: Int) -> Result<Epoch, ErrorCode> {
        guard let state = leaderState, !steppedAside else { return .failure(.notLeaderOrFollower) }
        if requiredAcks == -1 && state.isr.count < minInsyncReplicas { return .failure(.notEnoughReplicas) }
        return .success(state.leaderEpoch)
    }

    /// The leader appended: its log ends at `endOffset`. With an ISR of one that alone moves the
    /// high watermark.
    public mutating func leaderAppended(endOffset: Offset, nowMs: Int64) -> [ReplicationAction] {
        guard let state = leaderState else { return [] }
        let before = mark
        precondition(
            endOffset >= log.endOffset, "a leader's log end never goes back (\(log.endOffset) -> \(endOffset))")
        log.endOffset = endOffset
        log.latestEpoch = state.leaderEpoch
        let moved = leaderState!.leaderAppended(leaderEndOffset: endOffset, nowMs: nowMs)
        var actions: [ReplicationAction] = [.logEndMoved(endOffset)]
        actions += leaderHighWatermarkChanged(moved)
        checkInvariants(after: before)
        return actions
    }

    /// An acks=all produce appended at this leader waits for the high watermark to reach
    /// `produce.requiredOffset`; answered at once when it already has.
    public mutating func awaitReplication(_ produce: PendingProduce) -> [ReplicationAction] {
        guard servesClients else { return [.completeProduce(produce.id, .notLeaderOrFollower)] }
        if faults.ackBeforeHighWatermark { return [.completeProduce(produce.id, .none)] }
        if let code = completion(of: produce) { return [.completeProduce(produce.id, code)] }
        pendingProduces.append(produce)
        return []
    }

    /// Produces whose deadline passed are answered REQUEST_TIMED_OUT.
    public mutating func expireProduces(nowMs: Int64) -> [ReplicationAction] {
        let expired = pendingProduces.filter { $0.deadlineMs <= nowMs }
        guard !expired.isEmpty else { return [] }
        pendingProduces.removeAll { $0.deadlineMs <= nowMs }
        return expired.map { .completeProduce($0.id, .requestTimedOut) }
    }

    /// A produce the driver gave up on (its request was answered another way): forget it.
    public mutating func forgetProduce(_ id: ProduceID) {
        pendingProduces.removeAll { $0.id == id }
    }

    /// Kafka's DelayedProduce check for one partition: nil while waiting; the answer once the
    /// high watermark covers the append (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
    /// `min.insync.replicas` meanwhile).
    func completion(of produce: PendingProduce) -> ErrorCode? {
        guard let state = leaderState else { return .notLeaderOrFollower }
        guard state.highWatermark >= produce.requiredOffset else { return nil }
        return state.isr.count < produce.minInsyncReplicas ? .notEnoughReplicasAfterAppend : ErrorCode.none
    }

    /// After the leader's high watermark may have moved: the actions that follow from it.
    private mutating func leaderHighWatermarkChanged(_ moved: Bool) -> [ReplicationAction] {
        guard let state = leaderState else { return [] }
        highWatermark = state.highWatermark
        updateLastStableOffset()
        guard moved else { return [] }
        var actions: [ReplicationAction] = [.highWatermarkMoved(state.highWatermark)]
        var waiting: [PendingProduce] = []
        for produce in pendingProduces {
            if let code = completion(of: produce) {
                precondition(
                    code != .none || state.highWatermark >= produce.requiredOffset,
                    "a produce is answered only once the high watermark covers it")
                actions.append(.completeProduce(produce.id, code))
            } else {
                waiting.append(produce)
            }
        }
        pendingProduces = waiting
        return actions
    }

    private mutating func failPendingProduces(_ code: ErrorCode) -> [ReplicationAction] {
        let actions = pendingProduces.map { ReplicationAction.completeProduce($0.id, code) }
        pendingProduces = []
        return actions
    }

    // MARK: leader: follower fetches and the ISR

    /// A follower fetched. `epochEnd` is this log's answer to the follower's last fetched epoch
    /// (the largest epoch at or below it, and where it ends; nil when the follower sent none):
    /// the histories are compared first, then the follower's position is recorded, which may
    /// move the high watermark and propose an ISR expansion.
    public mutating func followerFetched(
        _ fetch: FollowerFetch, epochEnd: OffsetAndEpoch?, nowMs: Int64, lagTimeMaxMs: Int64,
        eligibility: IsrEligibility
    ) -> (FollowerFetchAnswer, [ReplicationAction]) {
        guard leaderState != nil else { return (.error(.notLeaderOrFollower), []) }
        guard assignment.replicas.contains(fetch.replica) else { return (.error(.notLeaderOrFollower), []) }
        // KIP-903: a fetch from an earlier incarnation of the broker (delayed on the network past
        // its restart) says nothing of what the broker holds now; it is refused, as Kafka's
        // leader refuses a stale fetch state update.
        if !faults.isrExpansionWithoutBrokerEpochCheck, let fetched = fetch.brokerEpoch,
            let current = eligibility.registeredEpoch(fetch.replica), fetched < current
        {
            return (.error(.notLeaderOrFollower), [])
        }
        if fetch.lastFetchedEpoch != .unknown, let epochEnd {
            if epochEnd.epoch == .unknown {
                // Nothing in common: the follower starts over from this log's start.
                return (.diverging(epoch: .unknown, endOffset: log.startOffset), [])
            }
            if epochEnd.epoch < fetch.lastFetchedEpoch || epochEnd.offset < fetch.fetchOffset {
                return (.diverging(epoch: epochEnd.epoch, endOffset: epochEnd.offset), [])
            }
        }
        guard fetch.fetchOffset >= log.startOffset, fetch.fetchOffset <= log.endOffset else {
            return (.error(.offsetOutOfRange), [])
        }
        let before = mark
        let moved = leaderState!.followerFetched(
            fetch.replica, fetchOffset: fetch.fetchOffset, leaderEndOffset: log.endOffset,
            nowMs: nowMs, brokerEpoch: fetch.brokerEpoch, maxWaitMs: fetch.maxWaitMs)
        var actions: [ReplicationAction] = []
        if !leaderState!.isr.contains(fetch.replica),
            let change = leaderState!.isrChange(
                nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, leaderEndOffset: log.endOffset,
                eligibility: eligibility)
        {
            leaderState!.proposed(change)
            actions.append(.proposeIsr(change))
        }
        actions = leaderHighWatermarkChanged(moved) + actions
        checkInvariants(after: before)
        return (.read(upTo: log.endOffset, highWatermark: highWatermark), actions)
    }

    /// The periodic ISR check: a change to propose (shrink or expand), marked in flight.
    public mutating func checkIsr(nowMs: Int64, lagTimeMaxMs: Int64, eligibility: IsrEligibility) -> [ReplicationAction]
    {
        guard
            let change = leaderState?.isrChange(
                nowMs: nowMs, lagTimeMaxMs: lagTimeMaxMs, leaderEndOffset: log.endOffset,
                eligibility: eligibility)
        else { return [] }
        leaderState!.proposed(change)
        return [.proposeIsr(change)]
    }

    /// The controller answered an AlterPartition (nil: refused, or no answer): on success the new
    /// ISR holds now (it is committed); otherwise the proposal is dropped and the next check
    /// proposes again.
    public mutating func isrAnswered(_ proposal: IsrProposal, answer: IsrAnswer?, nowMs: Int64) -> [ReplicationAction] {
        guard let state = leaderState, state.pending == proposal else { return [] }
        let before = mark
        guard let answer, answer.leaderEpoch == state.leaderEpoch, answer.partitionEpoch > state.partitionEpoch else {
            leaderState!.proposalFailed()
            return []
        }
        let moved = leaderState!.update(
            replicas: state.replicas, isr: answer.isr, partitionEpoch: answer.partitionEpoch,
            leaderEndOffset: log.endOffset, nowMs: nowMs)
        let actions = leaderHighWatermarkChanged(moved)
        checkInvariants(after: before)
        return actions
    }

    /// Where DeleteRecords may move the log start: `requested`, or the high watermark for nil
    /// (Kafka's -1); only on a leader, and never past the high watermark.
    // MARK: leader: isolation

    /// How late a follower's fetch may be before the leader counts it as stopped: a round trip
    /// and the follower's own work between two fetches.
    public static let followerFetchGraceMs: Int64 = 500

    /// Runnel's rule for a leader cut off from the controller (Kafka has none: its isolated
    /// leader takes writes it can never complete for as long as the cut lasts). The leader steps
    /// aside while both hold:
    /// - the controller has not answered this broker's heartbeat (leaving it unfenced) for longer
    ///   than `broker.session.timeout.ms` (`contact`): a controller that is up has fenced this
    ///   broker by now and moved its leaderships to other ISR members where it could;
    /// - an ISR member's fetch is overdue by more than `graceMs`: the high watermark cannot pass
    ///   it, and only the controller could take it out of the ISR, so no acks=all produce
    ///   completes here anyway (and it has likely gone to the new leader).
    /// Stepped aside it refuses produces and client fetches with NOT_LEADER_OR_FOLLOWER, answers
    /// the acks=all produces waiting on it REQUEST_TIMED_OUT (possibly written; clients look for the new leader at
    /// once instead of waiting for their request timeout), and still answers its followers. It
    /// takes its clients back once no ISR member is overdue: its followers fetch again, or the
    /// ISR, changed through the controller and applied here, no longer names the silent ones.
    /// The controller answering again is not enough: while this broker was cut off the
    /// controller may have moved the leadership, and until this broker's image shows it, it
    /// would serve clients as a leader of an ended epoch (a consumer whose committed offset came
    /// from the new leader's longer log would be told OFFSET_OUT_OF_RANGE here and reset). A
    /// new leader epoch, here or elsewhere, also ends the step aside (`assign`). The rule only
    /// withholds a leader's actions, so it cannot break a safety property; what it costs is
    /// availability when every controller is down and an ISR follower stops too (the partition
    /// then refuses writes and reads until the controllers are back and shrink the ISR, where
    /// Kafka keeps acks=1 writes and reads).
    public mutating func checkIsolation(
        nowMs: Int64, controllerSilentMs: Int64, sessionTimeoutMs: Int64,
        graceMs: Int64 = followerFetchGraceMs
    ) -> [ReplicationAction] {
        guard let state = leaderState else { return [] }
        let overdue = !state.overdueFollowers(nowMs: nowMs, graceMs: graceMs).isEmpty
        let isolated = overdue && (steppedAside || controllerSilentMs > sessionTimeoutMs)
        guard isolated != steppedAside else { return [] }
        steppedAside = isolated
        var actions: [ReplicationAction] = [.steppedAside(isolated)]
        if isolated { actions += failPendingProduces(.requestTimedOut) }  // possibly written, as on stepping down
        checkInvariants()
        return actions
    }

    public func deleteRecordsTarget(_ requested: Offset?) -> Result<Offset, ErrorCode> {
        guard isLeader else { return .failure(.notLeaderOrFollower) }
        let target = requested ?? highWatermark
        guard target >= 0, target <= highWatermark else { return .failure(.offsetOutOfRange) }
        return .success(target)
    }

    /// The log's start moved without a truncation (retention, DeleteRecords, the leader's log
    /// start adopted by a follower).
    public mutating func logStartMoved(to start: Offset) {
        let before = mark
        log.startOffset = max(log.startOffset, min(start, log.endOffset))
        // A leader's high watermark is its followers' to move; a follower's never stands below its log.
        if !isLeader { highWatermark = max(highWatermark, log.startOffset) }
        updateLastStableOffset()
        checkInvariants(after: before)
    }

    // MARK: follower

    /// The next fetch of this follower (nil when it leads, has no leader, or was removed).
    public var fetchPosition: FetchPosition? {
        guard case .follower(let leader, let epoch) = role else { return nil }
        return FetchPosition(
            leader: leader, leaderEpoch: epoch, fetchOffset: log.endOffset, lastFetchedEpoch: log.latestEpoch,
            logStartOffset: log.startOffset)
    }

    /// What to do with the leader's answer to a fetch made at `position`. When the logs
    /// diverge, `localEpochEnd` is this log's answer for the leader's diverging epoch (the
    /// largest local epoch at or below it, and where it ends).
    public func followerStep(
        at position: FetchPosition, answer: LeaderAnswer, localEpochEnd: OffsetAndEpoch?
    ) -> FollowerStep {
        guard let current = fetchPosition, current.leader == position.leader,
            current.leaderEpoch == position.leaderEpoch,
            current.fetchOffset == position.fetchOffset
        else { return .stale }
        switch answer.error {
        case .none:
            break
        case .offsetOutOfRange:
            // The leader no longer has our fetch offset: behind its log start, start over there;
            // past its end (it lost an unclean tail), fall back to its high watermark.
            if answer.logStartOffset > position.fetchOffset { return .restart(at: answer.logStartOffset) }
            return .truncate(to: max(min(answer.highWatermark, position.fetchOffset), log.startOffset))
        default:
            return .failed(answer.error)
        }
        guard let diverging = answer.divergingEpoch, !faults.ignoreDivergingEpoch else { return .append }
        guard diverging.epoch != .unknown else {
            // No epoch in common: copy the leader's log from its start.
            return .restart(at: diverging.offset)
        }
        // Truncate to where the histories agree: the leader's end of that epoch, or ours if
        // shorter; when we do not hold that epoch, the end of our largest epoch below it (the
        // next fetch compares again from there). Never below our log start.
        var target: Offset
        if let local = localEpochEnd, local.epoch != .unknown {
            target = local.epoch == diverging.epoch ? min(local.offset, diverging.offset) : local.offset
        } else {
            target = log.startOffset
        }
        target = max(min(target, position.fetchOffset), log.startOffset)
        return .truncate(to: target)
    }

    /// The follower's log changed: it truncated (`leaderHighWatermark` nil; the high watermark
    /// never stands above the log end) or appended the leader's data (the high watermark follows
    /// the leader's, capped at the log end).
    public mutating func followerLogChanged(
        _ log: LogPosition, leaderHighWatermark: Offset?,
        leaderLastStableOffset: Offset? = nil
    ) -> [ReplicationAction] {
        guard !isLeader else { return [] }
        let before = mark
        self.log = log
        let previous = highWatermark
        if let leaderHighWatermark {
            highWatermark = max(highWatermark, min(leaderHighWatermark, log.endOffset))
        }
        highWatermark = min(max(highWatermark, log.startOffset), log.endOffset)
        if let leaderLastStableOffset { self.leaderLastStableOffset = leaderLastStableOffset }
        updateLastStableOffset()
        checkInvariants(after: before)
        return highWatermark > previous ? [.highWatermarkMoved(highWatermark)] : []
    }

    /// The log start a follower adopts from its leader's answer: the leader's, when it is past
    /// ours and within our log.
    public func logStartToAdopt(leaderLogStart: Offset) -> Offset? {
        leaderLogStart > log.startOffset && leaderLogStart <= log.endOffset ? leaderLogStart : nil
    }

    // MARK: the last stable offset

    /// The driver's report of the log's first unstable offset (after an append, a marker, or the
    /// log hearing of a new high watermark). A leader's last stable offset follows it.
    public mutating func firstUnstableOffsetChanged(_ offset: Offset?) -> [ReplicationAction] {
        let before = mark
        firstUnstableOffset = offset
        let moved = updateLastStableOffset()
        checkInvariants(after: before)
        return moved ? [.lastStableOffsetMoved(lastStableOffset)] : []
    }

    /// Recomputes the last stable offset after the high watermark or the first unstable offset
    /// changed; true when it moved. It never passes the high watermark, and only goes back when
    /// the high watermark does (a follower's truncation, or a new leader's lower mark).
    @discardableResult
    private mutating func updateLastStableOffset() -> Bool {
        let previous = lastStableOffset
        let candidate: Offset
        if isLeader {
            candidate = min(highWatermark, firstUnstableOffset ?? highWatermark)
        } else {
            candidate = min(highWatermark, leaderLastStableOffset ?? highWatermark)
        }
        lastStableOffset = min(max(lastStableOffset, candidate), highWatermark)
        return lastStableOffset != previous
    }

    // MARK: invariants

    /// What the invariants compare a step against: the leader epoch (nil unless leading) and the
    /// high watermark before it. (Not a copy of `self`, which would make the step copy the
    /// followers' table.)
    private var mark: (leaderEpoch: Epoch?, highWatermark: Offset, lastStableOffset: Offset) {
        (leaderState?.leaderEpoch, highWatermark, lastStableOffset)
    }

    private func checkInvariants(
        after before: (leaderEpoch: Epoch?, highWatermark: Offset, lastStableOffset: Offset)? = nil
    ) {
        precondition(log.startOffset <= log.endOffset, "log start \(log.startOffset) past log end \(log.endOffset)")
        precondition(
            highWatermark <= log.endOffset, "high watermark \(highWatermark) past the log end \(log.endOffset)")
        precondition(
            lastStableOffset <= highWatermark,
            "last stable offset \(lastStableOffset) past the high watermark \(highWatermark)")
        if let before, let epoch = before.leaderEpoch, epoch == leaderState?.leaderEpoch {
            precondition(
                lastStableOffset >= before.lastStableOffset,
                "the last stable offset never moves back within a leader epoch (\(before.lastStableOffset) -> \(lastStableOffset))"
            )
        }
        precondition(!steppedAside || leaderState != nil, "only a leader steps aside")
        guard let state = leaderState else { return }
        precondition(highWatermark == state.highWatermark, "one high watermark")
        precondition(
            state.isr.allSatisfy { state.replicas.contains($0) }, "ISR \(state.isr) within replicas \(state.replicas)")
        precondition(state.isr.contains(localId), "the leader \(localId) is in its ISR \(state.isr)")
        if let before, before.leaderEpoch == state.leaderEpoch {
            precondition(
                state.highWatermark >= before.highWatermark,
                "the high watermark never moves back within a leader epoch (\(before.highWatermark) -> \(state.highWatermark))"
            )
        }
    }
}
