/// Producer ids from the blocks the controller allocates (AllocateProducerIds), as Kafka's
/// `RPCProducerIdManager` hands them out: the next block is asked for once 90% of the current one
/// is used, and while none is at hand an id cannot be given (the request is answered
/// COORDINATOR_LOAD_IN_PROGRESS and the client retries).
public struct ProducerIdPool: Sendable, Equatable {
    /// The share of a block used before the next one is fetched (Kafka: 90%).
    public static let prefetchPercent: Int64 = 90

    public private(set) var next: Int64 = 0
    public private(set) var end: Int64 = 0
    private var blockStart: Int64 = 0
    /// A block fetched ahead, used when the current one runs out.
    public private(set) var prefetched: (start: Int64, end: Int64)?
    /// A fetch is under way.
    public private(set) var fetching = false

    public init() {}

    public static func == (a: ProducerIdPool, b: ProducerIdPool) -> Bool {
        a.next == b.next && a.end == b.end && a.prefetched?.start == b.prefetched?.start
            && a.prefetched?.end == b.prefetched?.end
            && a.fetching == b.fetching
    }

    /// The next id, and whether a block should be fetched now.
    public mutating func take() -> (id: Int64?, fetch: Bool) {
        if next >= end, let block = prefetched {
            (blockStart, next, end) = (block.start, block.start, block.end)
            prefetched = nil
        }
        var id: Int64?
        if next < end {
            id = next
            next += 1
        }
        let used = end > blockStart ? (next - blockStart) * 100 / (end - blockStart) : 100
        let fetch = !fetching && prefetched == nil && (id == nil || used >= Self.prefetchPercent)
        if fetch { fetching = true }
        return (id, fetch)
    }

    /// A block arrived: `count` ids from `start`.
    public mutating func arrived(start: Int64, count: Int32) {
        precondition(
            start >= 0 && count > 0, "a producer id block starts at 0 or later and holds ids (\(start), \(count))")
        precondition(start >= end, "producer id blocks never go back (\(start) after \(end))")
        fetching = false
        if next >= end {
            (blockStart, next, end) = (start, start, start + Int64(count))
        } else {
            prefetched = (start, start + Int64(count))
        }
    }

    /// The fetch failed: the next `take` asks again.
    public mutating func fetchFailed() { fetching = false }
}
