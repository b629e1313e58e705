import RunnelCore

/// What the leader knows of one follower replica.
public struct FollowerState: Sendable, Equatable {
    /// The follower's log end offset (its last fetch offset).
    public var logEndOffset: Int64 = -1
    public var lastFetchMs: Int64 = -1
    /// The last time the follower was known to have everything the leader had.
    public var lastCaughtUpMs: Int64
    /// The leader's log end offset at the follower's previous fetch (Kafka's rule: a fetch that
    /// reaches it means the follower was caught up as of that previous fetch).
    var leaderEndAtLastFetch: Int64 = -1
    var lastFetchAt: Int64 = -1
    /// The broker epoch the follower sent with its last fetch (Fetch v15, KIP-903); -1 unknown.
    public var brokerEpoch: Int64 = -1

    public init(lastCaughtUpMs: Int64) { self.lastCaughtUpMs = lastCaughtUpMs }
}

/// An ISR change the leader wants the controller to make (AlterPartition).
public struct IsrProposal: Sendable, Equatable {
    public var isr: [Int32]
    public var leaderEpoch: Int32
    public var partitionEpoch: Int32
    /// For each member of `isr`, in order, the broker epoch it last fetched with (-1 for the
    /// leader itself, whose driver knows its own, and for a follower that did not say). The
    /// controller refuses a member whose registration has moved on (KIP-903): a broker that
    /// restarted, perhaps without its unflushed tail, does not rejoin on its old fetches.
    public var brokerEpochs: [Int64]

    public init(isr: [Int32], leaderEpoch: Int32, partitionEpoch: Int32, brokerEpochs: [Int64]? = nil) {
        self.isr = isr
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.brokerEpochs = brokerEpochs ?? Array(repeating: -1, count: isr.count)
    }
}

/// A partition leader's replication state, pure: follower positions, the ISR (as committed in the
/// metadata log, plus a change in flight), the high watermark. Kafka's rules:
/// - HW = the smallest log end offset over the ISR; while an expansion is in flight the replica
///   being added counts too (the "maximal ISR"), so the HW never passes what a member lacks.
/// - The HW only moves forward.
/// - A follower that has not caught up for `replica.lag.time.max.ms` is proposed out; one that
///   has reached the HW (and this leader's epoch) is proposed back in.
/// - Every ISR change goes to the controller and takes effect only once committed.
public struct LeaderState: Sendable, Equatable {
    public let localId: Int32
    public private(set) var replicas: [Int32]
    public private(set) var isr: [Int32]
    public private(set) var leaderEpoch: Int32
    public private(set) var partitionEpoch: Int32
    public private(set) var highWatermark: Int64
    /// The offset where this leader's epoch starts: a replica rejoins the ISR only past it.
    public let epochStartOffset: Int64
    public private(set) var followers: [Int32: FollowerState]
    /// An AlterPartition in flight.
    public private(set) var pending: IsrProposal?

    public init(localId: Int32, replicas: [Int32], isr: [Int32], leaderEpoch: Int32, partitionEpoch: Int32,
                highWatermark: Int64, leaderEndOffset: Int64, nowMs: Int64) {
        self.localId = localId
        self.replicas = replicas
        self.isr = isr
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.highWatermark = min(highWatermark, leaderEndOffset)
        self.epochStartOffset = leaderEndOffset
        var followers: [Int32: FollowerState] = [:]
        for r in replicas where r != localId {
            // A member of the ISR gets a full lag period before it can be removed.
            followers[r] = FollowerState(lastCaughtUpMs: isr.contains(r) ? nowMs : -1)
        }
        self.followers = followers
    }

    /// The ISR the high watermark respects: the committed ISR plus replicas being added.
    public var maximalIsr: [Int32] {
        guard let pending else { return isr }
        return isr + pending.isr.filter { !isr.contains($0) }
    }

    /// Recomputes the high watermark; true when it moved.
    mutating func advanceHighWatermark(leaderEndOffset: Int64) -> Bool {
        var candidate = leaderEndOffset
        for r in maximalIsr where r != localId {
            candidate = min(candidate, followers[r]?.logEndOffset ?? -1)
        }
        guard candidate > highWatermark else { return false }
        highWatermark = candidate
        return true
    }

    /// The leader appended; with an ISR of one, that alone moves the high watermark.
    public mutating func leaderAppended(leaderEndOffset: Int64) -> Bool {
        advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }

    /// A follower fetched from `fetchOffset` (so its log ends there), as broker epoch
    /// `brokerEpoch` (-1 when its Fetch did not say). Returns whether the high watermark moved.
    public mutating func followerFetched(_ replica: Int32, fetchOffset: Int64, leaderEndOffset: Int64, nowMs: Int64,
                                         brokerEpoch: Int64 = -1) -> Bool {
        guard var f = followers[replica] else { return false }
        if f.brokerEpoch >= 0 && brokerEpoch != f.brokerEpoch {
            // Another incarnation of the broker: its previous fetch says nothing of this one.
            f.leaderEndAtLastFetch = -1
            f.lastFetchAt = -1
        }
        f.brokerEpoch = brokerEpoch
        if fetchOffset >= leaderEndOffset {
            f.lastCaughtUpMs = max(f.lastCaughtUpMs, nowMs)
        } else if f.leaderEndAtLastFetch >= 0 && fetchOffset >= f.leaderEndAtLastFetch {
            f.lastCaughtUpMs = max(f.lastCaughtUpMs, f.lastFetchAt)
        }
        f.logEndOffset = fetchOffset
        f.lastFetchMs = nowMs
        f.leaderEndAtLastFetch = leaderEndOffset
        f.lastFetchAt = nowMs
        followers[replica] = f
        return advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }

    /// The ISR change to propose now, if any (none while one is in flight). `isLive` tells the
    /// brokers that may join (registered and unfenced); `registeredEpoch` the broker epoch of a
    /// broker's current registration (-1 unknown): a follower whose fetches came from another
    /// incarnation may not join (KIP-903).
    public func isrChange(nowMs: Int64, lagTimeMaxMs: Int64, leaderEndOffset: Int64, isLive: (Int32) -> Bool,
                          registeredEpoch: (Int32) -> Int64 = { _ in -1 }) -> IsrProposal? {
        guard pending == nil else { return nil }
        var next = isr
        // Shrink: members that have not caught up within the lag time (one holding everything
        // the leader has is in sync however long ago it last fetched: there was nothing to fetch).
        for r in isr where r != localId {
            let f = followers[r]
            let caughtUp = f?.lastCaughtUpMs ?? -1
            if nowMs - caughtUp > lagTimeMaxMs && (f?.logEndOffset ?? -1) < leaderEndOffset { next.removeAll { $0 == r } }
        }
        // Expand: replicas that reached the high watermark and this epoch's start.
        for r in replicas where !isr.contains(r) && r != localId && isLive(r) {
            guard let f = followers[r], f.logEndOffset >= highWatermark, f.logEndOffset >= epochStartOffset else { continue }
            let current = registeredEpoch(r)
            if f.brokerEpoch >= 0 && current >= 0 && f.brokerEpoch != current { continue }
            next.append(r)
        }
        if !next.contains(localId) { next.insert(localId, at: 0) }
        guard Set(next) != Set(isr) else { return nil }
        // Keep replica order, as Kafka does.
        let ordered = replicas.filter { next.contains($0) } + next.filter { !replicas.contains($0) }
        return IsrProposal(isr: ordered, leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch,
                           brokerEpochs: ordered.map { $0 == localId ? -1 : followers[$0]?.brokerEpoch ?? -1 })
    }

    public mutating func proposed(_ proposal: IsrProposal) { pending = proposal }

    /// The AlterPartition failed (rejected or lost): forget it; the next check proposes again.
    public mutating func proposalFailed() { pending = nil }

    /// The metadata log committed a new registration for this partition (same leader epoch).
    public mutating func update(replicas: [Int32], isr: [Int32], partitionEpoch: Int32, leaderEndOffset: Int64, nowMs: Int64) -> Bool {
        self.replicas = replicas
        for r in replicas where r != localId && followers[r] == nil {
            followers[r] = FollowerState(lastCaughtUpMs: -1)
        }
        for r in followers.keys where !replicas.contains(r) { followers.removeValue(forKey: r) }
        // Replicas joining the ISR start a lag period now.
        for r in isr where !self.isr.contains(r) {
            guard var f = followers[r] else { continue }
            f.lastCaughtUpMs = max(f.lastCaughtUpMs, nowMs)
            followers[r] = f
        }
        self.isr = isr
        self.partitionEpoch = partitionEpoch
        if let p = pending, p.partitionEpoch < partitionEpoch { pending = nil }
        return advanceHighWatermark(leaderEndOffset: leaderEndOffset)
    }
}
