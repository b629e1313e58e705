/// Drop-behind (`log.drop.cache.behind.bytes`, a Runnel setting; off by default): a partition
/// keeps only its newest `windowBytes` in the page cache, and asks for older written bytes to be
/// written back and dropped. Followers and tail consumers read within the window; a consumer
/// further behind reads from disk, as it would once the kernel evicted the pages anyway.
///
/// Why: on a VM whose memory the host takes back when the guest frees it (free page reporting,
/// ballooning) or in a container whose page cache counts against its memory limit, every new
/// page-cache page is expensive (a host fault; here about 20 us per 4 KiB, which caps the growth
/// of the page cache near 200 MB/s for the whole machine) while a page freed and reused at once
/// costs nothing. Dropping behind keeps the log's page cache a fixed size that is reused.
///
/// The log decides what to drop; a `DropBehindSink` (the node's background thread) does it, so
/// no append waits for a writeback.
public struct DropBehind: Sendable {
    /// Bytes behind the log end that stay cached.
    public var windowBytes: Int64
    /// Dropping is asked for in steps of this many bytes (a sixteenth of the window, 1-4 MiB).
    /// Small steps keep each writeback and drop short: dropping a range holds the file's page
    /// cache against the appends inserting pages into it, and 16 MiB steps showed as 20-100 ms
    /// stalls in bench replicated's paced run, where 4 MiB steps gave a p99 of 10-15 ms.
    public var stepBytes: Int64
    public var sink: any DropBehindSink

    public init(windowBytes: Int64, sink: any DropBehindSink) {
        self.windowBytes = max(0, windowBytes)
        self.stepBytes = min(max(self.windowBytes / 16, 1 << 20), 4 << 20)
        self.sink = sink
    }
}

/// Carries out drop requests, off the append path.
public protocol DropBehindSink: Sendable {
    /// Drops `from..<to` of the handle's file from the page cache (writing back what is dirty),
    /// then closes the handle.
    func drop(_ handle: any PageCacheHandle, from: Int64, to: Int64)
}

/// A file's pages, reachable after the file's own handle closes (its own descriptor).
public protocol PageCacheHandle: Sendable {
    /// Writes back the dirty pages in `from..<to` (waiting for them, without making anything
    /// durable: no device flush) and drops the range from the page cache.
    func drop(from: Int64, to: Int64)
    func close()
}

extension PartitionLog {
    /// After an append (lock held): when more than a window and a step lie behind the log end
    /// since the last request, asks the sink to drop all but the window. Each request reaches a
    /// step back into the previous one, for pages a reader brought back meanwhile.
    func dropBehindLocked() {
        guard let policy = dropBehind else { return }
        let window = policy.windowBytes, step = policy.stepBytes
        // Where the last request ended; restarts at the first segment after retention removed
        // the segment it was in, and moves back when a truncation cut below it.
        var index = dropCursor.flatMap { cursor in segments.lastIndex { $0 === cursor.segment } } ?? 0
        var position = dropCursor?.segment === segments[index] ? min(dropCursor!.position, segments[index].size) : 0
        let behind = segments[index...].reduce(Int64(0)) { $0 + $1.size } - position
        guard behind >= window + step else { return }
        var toDrop = behind - window
        while toDrop > 0 {
            let segment = segments[index]
            let isLast = index == segments.count - 1
            // The active segment always keeps the window (behind >= toDrop + window); an older
            // one is dropped to its end before the next is touched.
            let end = isLast ? position + toDrop : min(segment.size, position + toDrop)
            if end > position, let handle = segment.log.pageCacheHandle() {
                policy.sink.drop(handle, from: max(0, position - step), to: end)
            }
            toDrop -= end - position
            if !isLast && end == segment.size {
                index += 1
                position = 0
            } else {
                position = end
            }
        }
        dropCursor = (segments[index], position)
    }
}
