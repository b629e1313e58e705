import NIOCore
import RunnelCore

/// Where each leader epoch starts in a partition's log (Kafka's `leader-epoch-checkpoint`): what a
/// follower and its new leader compare to find where their logs part (KIP-101/279), and what
/// OffsetForLeaderEpoch answers. Format: a version line (0), a count line, then
/// `epoch startOffset` per line; written atomically when an epoch starts or the log is truncated.
public struct LeaderEpochCache: Sendable, Equatable {
    public static let fileName = "leader-epoch-checkpoint"
    public private(set) var entries: [(epoch: Int32, startOffset: Int64)] = []

    public init() {}

    public static func == (lhs: LeaderEpochCache, rhs: LeaderEpochCache) -> Bool {
        lhs.entries.map(\.epoch) == rhs.entries.map(\.epoch)
            && lhs.entries.map(\.startOffset) == rhs.entries.map(\.startOffset)
    }

    public var latestEpoch: Int32 { entries.last?.epoch ?? -1 }

    /// Notes a batch of `epoch` at `offset`; returns whether a new epoch started (persist then).
    @discardableResult
    public mutating func assign(epoch: Int32, startOffset: Int64) -> Bool {
        guard epoch >= 0 else { return false }
        if let last = entries.last {
            if epoch <= last.epoch { return false }
            if startOffset < last.startOffset { return false }
        }
        entries.append((epoch, startOffset))
        return true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `epoch`, and where it ends (the next
    /// epoch's start, or `logEndOffset`). When every epoch held is above it (the records of older
    /// epochs are gone), `epoch` itself, ending where the first held epoch starts, as Kafka
    /// answers: a follower then keeps what it has below that offset instead of copying the log
    /// again, and a consumer validating its position (KIP-320) is not told its log was cut.
    /// (-1, -1) for an undefined epoch or an empty cache.
    public func endOffset(forEpoch epoch: Int32, logEndOffset: Int64) -> (epoch: Int32, endOffset: Int64) {
        guard epoch >= 0, let first = entries.first else { return (-1, -1) }
        guard let index = entries.lastIndex(where: { $0.epoch <= epoch }) else { return (epoch, first.startOffset) }
        if entries[index].epoch == epoch || index + 1 < entries.count {
            let end = index + 1 < entries.count ? entries[index + 1].startOffset : logEndOffset
            return (entries[index].epoch, end)
        }
        return (entries[index].epoch, logEndOffset)
    }

    /// Kafka's `epochForOffset`: the epoch whose range holds `offset` (the last one starting at or
    /// before it), or nil when the cache holds none.
    public func epoch(forOffset offset: Int64) -> Int32? {
        entries.last { $0.startOffset <= offset }?.epoch
    }

    /// Drops epochs starting at or after `offset` (log truncated to `offset`).
    public mutating func truncate(fromOffset offset: Int64) {
        entries.removeAll { $0.startOffset >= offset }
    }

    /// The log now starts at `offset`: the entry covering it moves up to it.
    public mutating func advanceStart(to offset: Int64) {
        while entries.count > 1 && entries[1].startOffset <= offset { entries.removeFirst() }
        if let first = entries.first, first.startOffset < offset { entries[0].startOffset = offset }
    }

    public mutating func clear() { entries = [] }

    /// Replaces the checkpoint file (temp file and rename). Not synced unless `durable`: the file
    /// is a cache of what the batch headers say, and loading rebuilds it from them when it does
    /// not match the log (an entry past the end, or a last batch of an epoch it lacks), so a
    /// leader change or a follower's new epoch costs no fsync (Kafka stopped syncing it on these
    /// paths too, KAFKA-15046). The log writes it durably when it closes.
    public func write(directory: String, disk: any Disk, durable: Bool = false) throws {
        var text = "0\n\(entries.count)\n"
        for e in entries { text += "\(e.epoch) \(e.startOffset)\n" }
        try OffsetCheckpoint.writeAtomically(text, to: directory + "/" + Self.fileName, disk: disk, durable: durable)
    }

    /// Reads the checkpoint; nil when missing or malformed (then the log is scanned instead).
    public static func read(directory: String, disk: any Disk) -> LeaderEpochCache? {
        guard let text = try? OffsetCheckpoint.readText(directory + "/" + fileName, disk: disk) else { return nil }
        var lines = text.split(separator: "\n").makeIterator()
        guard lines.next() == "0", let countLine = lines.next(), let count = Int(countLine) else { return nil }
        var cache = LeaderEpochCache()
        for _ in 0..<count {
            guard let line = lines.next() else { return nil }
            let parts = line.split(separator: " ")
            guard parts.count == 2, let e = Int32(parts[0]), let o = Int64(parts[1]) else { return nil }
            guard cache.assign(epoch: e, startOffset: o) else { return nil }
        }
        return cache
    }
}
