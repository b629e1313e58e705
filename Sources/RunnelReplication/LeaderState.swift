import RunnelCore

/// What the leader knows of one follower replica.
public struct FollowerProgress: Sendable, Equatable {
    /// The follower's log end offset: where its last fetch started (unknown until it fetched).
    public var logEndOffset: Offset = .unknown
    public var lastFetchMs: Int64?
    /// The last time the follower was known to have everything the leader had (nil: never).
    public var lastCaughtUpMs: Int64?
    /// The leader's log end offset at the follower's previous fetch, and when that fetch came
    /// (Kafka's rule: a fetch that reaches it means the follower was caught up as of then).
    var leaderEndAtLastFetch: Offset?
    var lastFetchAtMs: Int64?
    /// The broker epoch the follower sent with its last fetch (Fetch v15, KIP-903); nil unknown.
    public var brokerEpoch: BrokerEpoch?
    /// When the follower's next fetch is due: at once after a fetch answered at once, at the end
    /// of its wait after one that parks here, at once again when data comes for a parked one
    /// (nil: nothing expected of it, it is not in the ISR).
    public var nextFetchDueMs: Int64?

    public init(lastCaughtUpMs: Int64?, nextFetchDueMs: Int64? = nil) {
        self.lastCaughtUpMs = lastCaughtUpMs
        self.nextFetchDueMs = nextFetchDueMs
    }
}

/// An ISR change the leader asks the controller to make (AlterPartition).
public struct IsrProposal: Sendable, Equatable, CustomStringConvertible {
    public var isr: [NodeID]
    public var leaderEpoch: Epoch
    public var partitionEpoch: Epoch
    /// For each member of `isr`, in order, the broker epoch it last fetched with (nil for the
    /// leader itself, whose driver knows its own, and for a follower that did not say). The
    /// controller refuses a member whose registration has moved on (KIP-903): a broker that
    /// restarted, perhaps without its unflushed tail, does not rejoin on its old fetches.
    public var brokerEpochs: [BrokerEpoch?]

    public init(isr: [NodeID], leaderEpoch: Epoch, partitionEpoch: Epoch, brokerEpochs: [BrokerEpoch?]? = nil) {
        self.isr = isr
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.brokerEpochs = brokerEpochs ?? Array(repeating: nil, count: isr.count)
    }

    public var description: String { "isr \(isr) at leader epoch \(leaderEpoch), partition epoch \(partitionEpoch)" }
}

/// Which brokers may join an ISR, as the metadata image says: registered, unfenced and not in
/// controlled shutdown, and (KIP-903) fetching as the incarnation registered now. A pure view
/// the driver builds from its image.
public struct IsrEligibility: Sendable {
    /// Registered, unfenced, not in controlled shutdown.
    public var isLive: @Sendable (NodeID) -> Bool
    /// The broker epoch of the broker's registration now (nil unknown).
    public var registeredEpoch: @Sendable (NodeID) -> BrokerEpoch?

    public init(
        isLive: @escaping @Sendable (NodeID) -> Bool,
        registeredEpoch: @escaping @Sendable (NodeID) -> BrokerEpoch? = { _ in nil }
    ) {
        self.isLive = isLive
        self.registeredEpoch = registeredEpoch
    }

    /// Every broker may join, whatever its epoch (tests).
    public static let everyone = IsrEligibility(isLive: { _ in true })
}

/// A partition leader's replication state: follower positions, the ISR (as committed in the
/// metadata log, plus a change in flight), the high watermark. Kafka's rules:
/// - HW = the smallest log end offset over the ISR; while an expansion is in flight the replica
///   being added counts too (the "maximal ISR"), so the HW never passes what a member lacks.
/// - The HW only moves forward.
/// - A follower that has not caught up for `replica.lag.time.max.ms` is proposed out; one that
///   has reached the HW (and this leader's epoch) is proposed back in.
/// - Every ISR change goes to the controller and takes effect only once committed.
public struct LeaderState: Sendable, Equatable {
    public let localId: NodeID
    public private(set) var replicas: [NodeID]
    public private(set) var isr: [NodeID]
    public let leaderEpoch: Epoch
    public private(set) var partitionEpoch: Epoch
    public private(set) var highWatermark: Offset
    /// The offset where this leader's epoch starts: a replica rejoins the ISR only past it.
    public let epochStartOffset: Offset
    public private(set) var followers: [NodeID: FollowerProgress]
    /// An AlterPartition in flight.
    public private(set) var pending: IsrProposal?
    /// Test-only broken rules (see `ReplicationFaults`).
    var faults: ReplicationFaults

    public init(
        localId: NodeID, replicas: [NodeID], isr: [NodeID], leaderEpoch: Epoch, partitionEpoch: Epoch,
        highWatermark: Offset, leaderEndOffset: Offset, nowMs: Int64, faults: ReplicationFaults = ReplicationFaults()
    ) {
        self.localId = localId
        self.replicas = replicas
        self.isr = isr
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.highWatermark = min(highWatermark, leaderEndOffset)
        self.epochStartOffset = leaderEndOffset
        self.faults = faults
        var followers: [NodeID: FollowerProgress] = [:]
        for r in replicas where r != localId {
            // A member of the ISR gets a full lag period before it can be removed, and is expected
            // to fetch from the new leader at once.
            followers[r] = FollowerProgress(
                lastCaughtUpMs: isr.contains(r) ? nowMs : nil, nextFetchDueMs: isr.contains(r) ? nowMs : nil)
        }
        self.followers = followers
    }

    /// The ISR the high watermark respects: the committed ISR plus replicas being added.
    public var maximalIsr: [NodeID] {
        guard let pending else { return isr }
        return isr + pending.isr.filter { !isr.contains($0) }
    }

    /// Recomputes the high watermark; true when it moved.
    mutating func advanceHighWatermark(leaderEndOffset: Offset) -> Bool {
        var candidate = leaderEndOffset
        if !faults.highWatermarkPastFollowerEnd {
            for r in maximalIsr where r != localId {
                candidate = min(candidate, followers[r]?.logEndOffset ?? .unknown)
            }
        }
        guard candidate > highWatermark else { return false }
        highWatermark = candidate
        return true
    }

    /// The leader appended; with an ISR of one, that alone moves the high watermark. A follower
    /// whose fetch waits here for data gets it now, so its next fetch is due now.
    public mutating func leaderAppended(leaderEndOffset: Offset, nowMs: Int64) -> Bool {
        for (r, f) in followers {
            guard let due = f.nextFetchDueMs, due > nowMs, f.logEndOffset < leaderEndOffset else { continue }
            followers[r]!.nextFetchDueMs = nowMs
        }
        return advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }

    /// A follower fetched from `fetchOffset` (so its log ends there), as broker epoch
    /// `brokerEpoch` (nil when its Fetch did not say), willing to wait `maxWaitMs` for data.
    /// Returns whether the high watermark moved.
    public mutating func followerFetched(
        _ replica: NodeID, fetchOffset: Offset, leaderEndOffset: Offset, nowMs: Int64,
        brokerEpoch: BrokerEpoch? = nil, maxWaitMs: Int64 = 0
    ) -> Bool {
        guard var f = followers[replica] else { return false }
        if f.brokerEpoch != nil && brokerEpoch != f.brokerEpoch {
            // Another incarnation of the broker: its previous fetch says nothing of this one.
            f.leaderEndAtLastFetch = nil
            f.lastFetchAtMs = nil
        }
        f.brokerEpoch = brokerEpoch
        if fetchOffset >= leaderEndOffset {
            f.lastCaughtUpMs = max(f.lastCaughtUpMs ?? nowMs, nowMs)
        } else if let previousEnd = f.leaderEndAtLastFetch, let previousAt = f.lastFetchAtMs, fetchOffset >= previousEnd
        {
            f.lastCaughtUpMs = max(f.lastCaughtUpMs ?? previousAt, previousAt)
        }
        f.logEndOffset = fetchOffset
        f.lastFetchMs = nowMs
        // Answered at once when there is data for it; otherwise it waits here (at most its wait).
        f.nextFetchDueMs = fetchOffset < leaderEndOffset ? nowMs : nowMs + max(0, maxWaitMs)
        f.leaderEndAtLastFetch = leaderEndOffset
        f.lastFetchAtMs = nowMs
        followers[replica] = f
        return advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }

    /// The ISR change to propose now, if any (none while one is in flight).
    public func isrChange(
        nowMs: Int64, lagTimeMaxMs: Int64, leaderEndOffset: Offset, eligibility: IsrEligibility
    ) -> IsrProposal? {
        guard pending == nil else { return nil }
        var next = isr
        // Shrink: members that have not caught up within the lag time (one holding everything
        // the leader has is in sync however long ago it last fetched: there was nothing to fetch).
        for r in isr where r != localId {
            let f = followers[r]
            let lagging = f?.lastCaughtUpMs.map { nowMs - $0 > lagTimeMaxMs } ?? true
            if lagging && (f?.logEndOffset ?? .unknown) < leaderEndOffset { next.removeAll { $0 == r } }
        }
        // Expand: replicas that reached the high watermark and this epoch's start.
        for r in replicas where !isr.contains(r) && r != localId && eligibility.isLive(r) {
            guard let f = followers[r], f.logEndOffset >= highWatermark, f.logEndOffset >= epochStartOffset else {
                continue
            }
            if !faults.isrExpansionWithoutBrokerEpochCheck, let fetched = f.brokerEpoch,
                let current = eligibility.registeredEpoch(r),
                fetched != current
            {
                continue
            }
            next.append(r)
        }
        if !next.contains(localId) { next.insert(localId, at: 0) }
        guard Set(next) != Set(isr) else { return nil }
        // Keep replica order, as Kafka does.
        let ordered = replicas.filter { next.contains($0) } + next.filter { !replicas.contains($0) }
        return IsrProposal(
            isr: ordered, leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch,
            brokerEpochs: ordered.map { $0 == localId ? nil : followers[$0]?.brokerEpoch })
    }

    /// The ISR members (other than this leader) whose fetch is more than `graceMs` overdue: the
    /// high watermark cannot pass them, and only the controller can take them out of the ISR.
    public func overdueFollowers(nowMs: Int64, graceMs: Int64) -> [NodeID] {
        isr.filter { r in
            guard r != localId else { return false }
            guard let due = followers[r]?.nextFetchDueMs else { return true }
            return nowMs - due > graceMs
        }
    }

    public mutating func proposed(_ proposal: IsrProposal) { pending = proposal }

    /// The AlterPartition failed (refused or lost): forget it; the next check proposes again.
    public mutating func proposalFailed() { pending = nil }

    /// The metadata log committed a new registration for this partition (same leader epoch).
    public mutating func update(
        replicas: [NodeID], isr: [NodeID], partitionEpoch: Epoch, leaderEndOffset: Offset, nowMs: Int64
    ) -> Bool {
        self.replicas = replicas
        for r in replicas where r != localId && followers[r] == nil {
            followers[r] = FollowerProgress(lastCaughtUpMs: nil)
        }
        for r in followers.keys where !replicas.contains(r) { followers.removeValue(forKey: r) }
        // Replicas joining the ISR start a lag period now.
        for r in isr where !self.isr.contains(r) {
            guard var f = followers[r] else { continue }
            f.lastCaughtUpMs = max(f.lastCaughtUpMs ?? nowMs, nowMs)
            f.nextFetchDueMs = max(f.nextFetchDueMs ?? nowMs, nowMs)
            followers[r] = f
        }
        self.isr = isr
        self.partitionEpoch = partitionEpoch
        if let p = pending, p.partitionEpoch < partitionEpoch { pending = nil }
        return advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }
}
