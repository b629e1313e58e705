import RunnelCore

/// What the core knows of its log: where it starts and ends, what is durable, and where each
/// epoch starts (Kafka's leader-epoch cache). Record contents live with the driver.
public struct RaftLogView: Sendable, Equatable {
    /// The first offset in the log (the latest snapshot's end offset, or 0).
    public private(set) var startOffset: Int64
    /// The epoch of the record just before `startOffset` (the snapshot's epoch), -1 if none.
    public private(set) var startEpoch: Int32
    public private(set) var endOffset: Int64
    /// The end of what the driver has made durable.
    public private(set) var persistedEndOffset: Int64
    /// `(epoch, first offset)` for every epoch present, ascending.
    public private(set) var epochStarts: [(epoch: Int32, startOffset: Int64)]

    public init(
        startOffset: Int64 = 0, startEpoch: Int32 = -1, endOffset: Int64 = 0, epochStarts: [(Int32, Int64)] = []
    ) {
        precondition(endOffset >= startOffset, "a log ends at or after its start")
        self.startOffset = startOffset
        self.startEpoch = startEpoch
        self.endOffset = endOffset
        self.persistedEndOffset = endOffset
        self.epochStarts = epochStarts.map { (epoch: $0.0, startOffset: $0.1) }
    }

    public static func == (lhs: RaftLogView, rhs: RaftLogView) -> Bool {
        lhs.startOffset == rhs.startOffset && lhs.startEpoch == rhs.startEpoch && lhs.endOffset == rhs.endOffset
            && lhs.persistedEndOffset == rhs.persistedEndOffset
            && lhs.epochStarts.map(\.epoch) == rhs.epochStarts.map(\.epoch)
            && lhs.epochStarts.map(\.startOffset) == rhs.epochStarts.map(\.startOffset)
    }

    /// The epoch of the last record (or of the snapshot when the log is empty past it).
    public var lastEpoch: Int32 { epochStarts.last?.epoch ?? startEpoch }

    /// The log end as (offset, epoch): what Raft compares to decide who is more up to date.
    public var endOffsetAndEpoch: OffsetAndEpoch { OffsetAndEpoch(offset: Offset(endOffset), epoch: Epoch(lastEpoch)) }

    /// The epoch of the record at `offset` (-1 when unknown).
    public func epoch(at offset: Int64) -> Int32 {
        if offset < startOffset { return -1 }
        var result = startEpoch
        for entry in epochStarts where entry.startOffset <= offset { result = entry.epoch }
        return result
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at or below `epoch` present in the log, and
    /// the offset where it ends (the start of the next epoch, or the log end). nil when `epoch` is
    /// older than everything held (the snapshot must be used).
    public func endOffset(forEpoch epoch: Int32) -> (epoch: Int32, endOffset: Int64)? {
        if let index = epochStarts.lastIndex(where: { $0.epoch <= epoch }) {
            let end = index + 1 < epochStarts.count ? epochStarts[index + 1].startOffset : endOffset
            return (epochStarts[index].epoch, end)
        }
        if startEpoch >= 0 && startEpoch <= epoch {
            return (startEpoch, epochStarts.first?.startOffset ?? endOffset)
        }
        return nil
    }

    /// Notes an append (before it is durable).
    public mutating func append(baseOffset: Int64, nextOffset: Int64, epoch: Int32) {
        precondition(baseOffset == endOffset, "appends continue the log: \(baseOffset) after end \(endOffset)")
        precondition(epoch >= lastEpoch, "epochs never go down in a log: \(epoch) after \(lastEpoch)")
        if epoch > lastEpoch || epochStarts.isEmpty && epoch != startEpoch {
            epochStarts.append((epoch: epoch, startOffset: baseOffset))
        }
        endOffset = nextOffset
    }

    /// Drops everything at and after `offset`.
    public mutating func truncate(to offset: Int64) {
        precondition(offset >= startOffset, "truncation never goes below the log start")
        guard offset < endOffset else { return }
        endOffset = offset
        persistedEndOffset = min(persistedEndOffset, offset)
        epochStarts.removeAll { $0.startOffset >= offset }
    }

    /// The driver made everything up to `offset` durable.
    public mutating func persisted(upTo offset: Int64) {
        persistedEndOffset = max(persistedEndOffset, min(offset, endOffset))
    }

    /// A snapshot covering `[0, id.endOffset)` replaced the log (a fetcher that was too far behind).
    public mutating func reset(to id: SnapshotId) {
        startOffset = id.endOffset
        startEpoch = id.epoch
        endOffset = id.endOffset
        persistedEndOffset = id.endOffset
        epochStarts = []
    }

    /// A local snapshot at `id` lets the log drop its prefix.
    public mutating func advanceStart(to id: SnapshotId) {
        guard id.endOffset > startOffset, id.endOffset <= endOffset else { return }
        startEpoch = epoch(at: id.endOffset - 1)
        startOffset = id.endOffset
        // Keep the epoch that covers the new start.
        while epochStarts.count > 1 && epochStarts[1].startOffset <= startOffset { epochStarts.removeFirst() }
        if let first = epochStarts.first, first.startOffset < startOffset {
            epochStarts[0].startOffset = startOffset
        }
    }
}
