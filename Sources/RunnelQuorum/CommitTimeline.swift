import Metrics

/// Stamps along the metadata commit path, for the timers that break one write's latency down
/// (`tools/bench metadata` prints them). On the leader: from the append of a proposal to the
/// fsync that covers it, and to the first fetch of another voter past it (its acknowledgement);
/// on a follower: from fetched records' arrival to their fsync, after which it fetches again and
/// so acknowledges them. Only timers read these stamps; nothing decides on them.
struct CommitTimeline {
    struct Proposal {
        var lastOffset: Int64
        var appendedNs: UInt64
    }

    /// This leader's proposals not yet committed, in offset order.
    private(set) var proposals: [Proposal] = []
    /// How many of `proposals`, from the first, are synced and acknowledged: both happen below an
    /// offset, so each is a prefix.
    private var syncedCount = 0
    private var acknowledgedCount = 0
    /// Records fetched by this follower and not yet synced: when they arrived, and the log end
    /// after them.
    private var fetched: (arrivedNs: UInt64, endOffset: Int64)?
    /// A bound on the stamps kept (a leader that cannot commit stops stamping, not growing).
    static let maxProposals = 100_000

    var awaitingAcknowledgement: Bool { acknowledgedCount < proposals.count }

    mutating func appended(lastOffset: Int64, nowNs: UInt64) {
        guard proposals.count < Self.maxProposals else { return }
        proposals.append(Proposal(lastOffset: lastOffset, appendedNs: nowNs))
    }

    /// The leader's log is durable below `endOffset`.
    mutating func synced(below endOffset: Int64, nowNs: UInt64) {
        while syncedCount < proposals.count, proposals[syncedCount].lastOffset < endOffset {
            QuorumMetrics.appendToFsync.recordNanoseconds(Int64(nowNs &- proposals[syncedCount].appendedNs))
            syncedCount += 1
        }
    }

    /// Another voter has fetched from `endOffset`: it holds everything below.
    mutating func acknowledged(below endOffset: Int64, nowNs: UInt64) {
        while acknowledgedCount < proposals.count, proposals[acknowledgedCount].lastOffset < endOffset {
            QuorumMetrics.appendToFollowerAck.recordNanoseconds(
                Int64(nowNs &- proposals[acknowledgedCount].appendedNs))
            acknowledgedCount += 1
        }
    }

    mutating func committed(below highWatermark: Int64) {
        let done = proposals.prefix { $0.lastOffset < highWatermark }.count
        guard done > 0 else { return }
        proposals.removeFirst(done)
        syncedCount = max(0, syncedCount - done)
        acknowledgedCount = max(0, acknowledgedCount - done)
    }

    /// A follower appended fetched records up to `endOffset`.
    mutating func fetched(upTo endOffset: Int64, nowNs: UInt64) {
        if fetched == nil { fetched = (nowNs, endOffset) }
    }

    /// A follower's log is durable below `endOffset`.
    mutating func followerSynced(below endOffset: Int64, nowNs: UInt64) {
        guard let f = fetched, f.endOffset <= endOffset else { return }
        QuorumMetrics.followerFetchToFsync.recordNanoseconds(Int64(nowNs &- f.arrivedNs))
        fetched = nil
    }

    mutating func reset() {
        proposals = []
        (syncedCount, acknowledgedCount) = (0, 0)
        fetched = nil
    }
}
