import RunnelCore

/// A replication throttle, as Kafka's ReplicationQuotaManager keeps one per side (leader, follower):
/// the bytes of throttled replicas' replication over sampled windows, against a bound in bytes per
/// second. The rate is measured as Kafka's sampled Rate does: the bytes of the last `windowCount`
/// windows over their elapsed time, counted as at least `windowCount - 1` full windows, so a
/// throttle starts with a burst of that many windows' worth and then holds to the bound.
public struct ReplicationQuota: Sendable, Equatable {
    /// One sample window: when it began and the bytes recorded in it.
    struct Sample: Sendable, Equatable {
        var startMs: Int64
        var bytes: Int64
    }

    /// The bound in bytes per second; nil for none (`leader.replication.throttled.rate` and
    /// `follower.replication.throttled.rate` default to Long.MAX_VALUE, which is none).
    public var bytesPerSecond: Int64?
    /// `replication.quota.window.size.seconds`, in ms.
    public let windowMs: Int64
    /// `replication.quota.window.num`.
    public let windowCount: Int
    private var samples: [Sample] = []

    public init(bytesPerSecond: Int64? = nil, windowMs: Int64 = 1_000, windowCount: Int = 11) {
        precondition(windowMs > 0 && windowCount > 0, "a quota has at least one window of positive length")
        self.bytesPerSecond = bytesPerSecond
        self.windowMs = windowMs
        self.windowCount = windowCount
    }

    /// Counts `bytes` replicated now.
    public mutating func record(_ bytes: Int64, nowMs: Int64) {
        precondition(bytes >= 0, "recorded bytes are not negative")
        purge(nowMs: nowMs)
        if let last = samples.last, nowMs < last.startMs + windowMs {
            samples[samples.count - 1].bytes += bytes
        } else {
            samples.append(Sample(startMs: nowMs, bytes: bytes))
        }
        precondition(samples.count <= windowCount + 1, "at most \(windowCount) windows are kept")
    }

    /// The measured rate, in bytes per second.
    public func rate(nowMs: Int64) -> Double {
        let live = samples.filter { $0.startMs > nowMs - Int64(windowCount) * windowMs }
        guard let oldest = live.first else { return 0 }
        let total = live.reduce(Int64(0)) { $0 + $1.bytes }
        let elapsedMs = max(nowMs - oldest.startMs, Int64(windowCount - 1) * windowMs, 1)
        return Double(total) * 1000 / Double(elapsedMs)
    }

    /// Whether throttled replicas must wait: the measured rate is above the bound.
    public func isExceeded(nowMs: Int64) -> Bool {
        guard let bound = bytesPerSecond else { return false }
        return rate(nowMs: nowMs) > Double(bound)
    }

    private mutating func purge(nowMs: Int64) {
        samples.removeAll { $0.startMs <= nowMs - Int64(windowCount) * windowMs }
    }
}

/// Which replicas a throttle covers, from a topic's `leader.replication.throttled.replicas` or
/// `follower.replication.throttled.replicas` ("*" or "partition:broker,..."), seen from one broker.
public enum ThrottledReplicas: Sendable, Equatable {
    case all
    case partitions(Set<Int32>)

    /// The partitions the list throttles on broker `brokerId`; nil when none.
    public static func parse(_ value: String?, brokerId: Int32) -> ThrottledReplicas? {
        guard let value else { return nil }
        let items = value.split(separator: ",").map { $0.trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
        if items.contains("*") { return .all }
        var partitions = Set<Int32>()
        for item in items {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let p = Int32(parts[0]), let b = Int32(parts[1]) else { continue }
            if b == brokerId { partitions.insert(p) }
        }
        return partitions.isEmpty ? nil : .partitions(partitions)
    }

    public func contains(_ partition: Int32) -> Bool {
        switch self {
        case .all: return true
        case .partitions(let set): return set.contains(partition)
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var s = self
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}
