import NIOCore
import RunnelCore
import RunnelWire

/// A cleaning found something that is not a valid batch where one should be.
public struct LogCleaningError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var position: Int64
    public var reason: String
    public var description: String { "cannot clean \(path) at position \(position): \(reason)" }
}

extension PartitionLog {
    /// A segment as the cleaner saw it when it planned, to tell at swap time whether it changed.
    struct CleanerSnapshot {
        let segment: LogSegment
        let generation: UInt64
        let summary: LogCleaner.SegmentSummary
        /// The log's truncation count when the cleaning planned.
        let truncations: UInt64
    }

    /// Cleans this log once if compaction is on and it is dirty enough (see `LogCleaner` for
    /// what a cleaning keeps). Offsets at or above `uncleanableFrom` (the partition's high
    /// watermark) are never touched, nor is the active segment.
    ///
    /// The log's lock is held only to plan and for each segment's final swap: the bulk reads
    /// and writes go through the cleaner's own file handles, so appends and reads go on. A
    /// rewritten segment is written to `<base>.log.cleaned` and synced, then renamed over
    /// `<base>.log`; readers holding a file region keep reading the old file. Returns nil when
    /// nothing was due.
    public func clean(
        uncleanableFrom: Int64, nowMs: Int64, settings: LogCleanerSettings = LogCleanerSettings()
    ) throws -> CleanerStats? {
        let planned: (LogConfig, [CleanerSnapshot], LogCleaner.Plan, [AbortedTransaction])? = lock.withLock {
            guard !closed, _config.compactEnabled else { return nil }
            // Nothing at or past the last stable offset: a transaction there may yet abort.
            let uncleanableFrom = min(uncleanableFrom, producerState.firstUnstableOffset ?? uncleanableFrom)
            let snapshots = segments.map {
                CleanerSnapshot(
                    segment: $0, generation: $0.generation,
                    summary: LogCleaner.SegmentSummary(
                        baseOffset: $0.baseOffset, nextOffset: $0.nextOffset, size: $0.size,
                        maxTimestamp: $0.maxTimestamp, firstBatchTimestamp: $0.rollingBaseTimestamp),
                    truncations: truncations)
            }
            let firstDirty = LogCleaner.firstDirtyOffset(
                checkpoint: _cleanerCheckpoint, logStartOffset: _logStartOffset,
                logEndOffset: segments.last!.nextOffset)
            guard
                let plan = LogCleaner.plan(
                    segments: snapshots.map(\.summary), firstDirtyOffset: firstDirty, uncleanableFrom: uncleanableFrom,
                    nowMs: nowMs, minCompactionLagMs: _config.minCompactionLagMs,
                    maxCompactionLagMs: _config.maxCompactionLagMs),
                plan.isDue(minCleanableDirtyRatio: _config.minCleanableDirtyRatio)
            else { return nil }
            // Every aborted transaction overlapping the cleanable range, whichever segment's
            // index holds its marker.
            let start = snapshots[0].summary.baseOffset
            let aborted = segments.flatMap(\.abortedTransactions).filter {
                $0.lastOffset >= start && $0.firstOffset < plan.firstUncleanableOffset
            }
            return (_config, Array(snapshots.prefix(plan.cleanableSegmentCount)), plan, aborted)
        }
        guard let planned else { return nil }
        let (config, cleanable, plan, aborted) = planned
        // A record may go only once the later record with its key is durable: sync first.
        if recoveryPoint < cleanable.last!.summary.nextOffset { try flush(nowMs: nowMs) }

        var stats = CleanerStats()
        stats.firstDirtyOffset = plan.firstDirtyOffset
        let ioBytes = max(settings.ioBufferBytes, RecordBatchHeader.size)

        // The map of the dirty section, a whole segment at a time while it fits the budget.
        var map = LogCleaner.OffsetMap()
        var mapTransactions = LogCleaner.TransactionTracker(aborted: aborted)
        var mapped = plan.firstDirtySegment
        for snapshot in cleanable[plan.firstDirtySegment...] {
            // Retention (compact,delete) or a truncation may have removed it meanwhile: stop there.
            guard isCurrent(snapshot) else { break }
            try forEachBatch(of: snapshot, ioBufferBytes: ioBytes) { batch, header, _ in
                _ = try map.add(
                    batch: batch, header: header, from: plan.firstDirtyOffset, transactions: &mapTransactions)
            }
            mapped += 1
            if map.estimatedBytes >= settings.dedupeBufferBytes { break }
        }
        guard mapped > plan.firstDirtySegment else { return nil }
        stats.keysMapped = map.count
        stats.endOffset = cleanable[mapped - 1].summary.nextOffset
        stats.segmentsCleaned = mapped

        // Rewrite every segment up to the end of the map, oldest first.
        var transactions = LogCleaner.TransactionTracker(aborted: aborted)
        for snapshot in cleanable.prefix(mapped) {
            stats.bytesBefore += snapshot.summary.size
            let after = try rewrite(
                snapshot, map: map, config: config, nowMs: nowMs, ioBufferBytes: ioBytes,
                transactions: &transactions, stats: &stats)
            stats.bytesAfter += after ?? snapshot.summary.size
        }
        // After a truncation meanwhile the map no longer described the log: the range stays dirty.
        lock.withLock {
            if truncations == cleanable[0].truncations {
                _cleanerCheckpoint = min(stats.endOffset, segments.last!.nextOffset)
            }
        }
        return stats
    }

    /// Whether the segment is still in the log with the bytes it had when the cleaning planned.
    private func isCurrent(_ snapshot: CleanerSnapshot) -> Bool {
        lock.withLock { isCurrentLocked(snapshot) }
    }

    private func isCurrentLocked(_ snapshot: CleanerSnapshot) -> Bool {
        !closed && truncations == snapshot.truncations && snapshot.segment.generation == snapshot.generation
            && segments.dropLast().contains { $0 === snapshot.segment }
    }

    /// Calls `body` with every batch of the segment as it was planned (its size then), read
    /// through a handle of the cleaner's own. Every batch is checked for size and CRC.
    private func forEachBatch(
        of snapshot: CleanerSnapshot, ioBufferBytes: Int,
        _ body: (ByteBuffer, RecordBatchHeader, Int64) throws -> Void
    ) throws {
        let path = directory + "/" + LogSegment.fileName(snapshot.summary.baseOffset, ".log")
        let file = try disk.open(path, create: false)
        defer { file.close() }
        let size = snapshot.summary.size
        var position: Int64 = 0
        func check(_ header: RecordBatchHeader, at: Int64) throws {
            guard header.magic == 2,
                header.batchLength >= Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead),
                at + Int64(header.totalBytes) <= size
            else { throw LogCleaningError(path: path, position: at, reason: "no valid batch header") }
        }
        func checkCRC(_ batch: ByteBuffer, _ header: RecordBatchHeader, at: Int64) throws {
            let crc = RecordBatches.crc32c(
                batch, at: batch.readerIndex + RecordBatchHeader.crcStart,
                length: header.totalBytes - RecordBatchHeader.crcStart)
            guard crc == header.crc else { throw LogCleaningError(path: path, position: at, reason: "CRC mismatch") }
        }
        while position < size {
            let chunk = try file.read(at: position, count: Int(min(Int64(ioBufferBytes), size - position)))
            var consumed = 0
            while let header = RecordBatchHeader(chunk, at: chunk.readerIndex + consumed) {
                try check(header, at: position + Int64(consumed))
                guard consumed + header.totalBytes <= chunk.readableBytes else { break }
                let batch = chunk.getSlice(at: chunk.readerIndex + consumed, length: header.totalBytes)!
                try checkCRC(batch, header, at: position + Int64(consumed))
                try body(batch, header, position + Int64(consumed))
                consumed += header.totalBytes
            }
            if consumed == 0 {
                // One batch larger than the buffer: read it whole.
                guard let header = RecordBatchHeader(chunk, at: chunk.readerIndex) else {
                    throw LogCleaningError(path: path, position: position, reason: "file shorter than planned")
                }
                try check(header, at: position)
                let batch = try file.read(at: position, count: header.totalBytes)
                guard batch.readableBytes == header.totalBytes else {
                    throw LogCleaningError(path: path, position: position, reason: "file shorter than planned")
                }
                try checkCRC(batch, header, at: position)
                try body(batch, header, position)
                consumed = header.totalBytes
            }
            position += Int64(consumed)
        }
    }

    /// Rewrites one segment into `<base>.log.cleaned` and swaps it in. Returns the new size, or
    /// nil when nothing changed or the log changed meanwhile (then the rewrite is thrown away).
    private func rewrite(
        _ snapshot: CleanerSnapshot, map: LogCleaner.OffsetMap, config: LogConfig, nowMs: Int64, ioBufferBytes: Int,
        transactions: inout LogCleaner.TransactionTracker, stats: inout CleanerStats
    ) throws -> Int64? {
        let base = snapshot.summary.baseOffset
        func path(_ suffix: String) -> String { directory + "/" + LogSegment.fileName(base, suffix) }
        guard isCurrent(snapshot) else {
            stats.swapsAbandoned += 1
            return nil
        }
        var writer = LogCleaner.SegmentWriter(baseOffset: base, indexIntervalBytes: config.indexIntervalBytes)
        var pending = ByteBufferAllocator().buffer(capacity: ioBufferBytes)
        // While the output equals the input, nothing is written: `skipped` bytes of output were
        // dropped, which are the input's first bytes, copied into the file only if a change comes.
        var skipped: Int64 = 0
        var cleaned: (any DiskFile)? = nil
        var written: Int64 = 0
        var done = false
        defer {
            if !done {
                cleaned?.close()
                if cleaned != nil { try? disk.remove(path(".log.cleaned")) }
            }
        }
        func open() throws -> any DiskFile {
            if let cleaned { return cleaned }
            let file = try disk.open(path(".log.cleaned"), create: true)
            try file.truncate(to: 0)
            cleaned = file
            let source = try disk.open(path(".log"), create: false)
            defer { source.close() }
            while written < skipped {
                let bytes = try source.read(at: written, count: Int(min(Int64(ioBufferBytes), skipped - written)))
                guard bytes.readableBytes > 0 else {
                    throw LogCleaningError(path: path(".log"), position: written, reason: "file shorter than planned")
                }
                try file.write(bytes, at: written)
                written += Int64(bytes.readableBytes)
            }
            return file
        }
        func drain(force: Bool) throws {
            guard force || pending.readableBytes >= ioBufferBytes else { return }
            if writer.identical {
                skipped += Int64(pending.readableBytes)
            } else {
                let file = try open()
                try file.write(pending, at: written)
                written += Int64(pending.readableBytes)
            }
            pending.clear()
        }

        try forEachBatch(of: snapshot, ioBufferBytes: ioBufferBytes) { batch, header, _ in
            let outcome = try LogCleaner.filter(
                batch: batch, header: header, map: map, nowMs: nowMs, deleteRetentionMs: config.deleteRetentionMs,
                transactions: &transactions, stats: &stats)
            for var bytes in writer.add(outcome, original: batch, header: header) { pending.writeBuffer(&bytes) }
            try drain(force: false)
        }
        for var bytes in writer.finish() { pending.writeBuffer(&bytes) }
        if writer.identical {
            done = true
            return nil
        }
        try drain(force: true)
        let log = try open()
        precondition(
            written == writer.index.size,
            "cleaned segment \(base): wrote \(written) bytes, indexed \(writer.index.size)")
        try log.sync()
        let (offsetBytes, timeBytes) = LogSegment.indexBytes(writer.index.offsetIndex, writer.index.timeIndex)
        let offsetIndex = try disk.open(path(".index.cleaned"), create: true)
        let timeIndex = try disk.open(path(".timeindex.cleaned"), create: true)
        var installed = false
        defer {
            if !installed {
                offsetIndex.close()
                timeIndex.close()
                try? disk.remove(path(".index.cleaned"))
                try? disk.remove(path(".timeindex.cleaned"))
            }
        }
        for (file, bytes) in [(offsetIndex, offsetBytes), (timeIndex, timeBytes)] {
            try file.truncate(to: 0)
            try file.write(bytes, at: 0)
            try file.sync()
        }

        cleanerWillSwap?(base)
        // The swap, under the lock. Every crash point leaves a log file with either an index
        // built for it or none (recovery then walks the batch headers): the old index files go
        // first, then the log is renamed over, then the new index files are renamed in.
        let swapped: Bool = try lock.withLock {
            guard isCurrentLocked(snapshot), let i = segments.firstIndex(where: { $0 === snapshot.segment }) else {
                return false
            }
            for suffix in [".index", ".timeindex"] where disk.exists(path(suffix)) { try disk.remove(path(suffix)) }
            try disk.syncDirectory(directory)
            try disk.rename(path(".log.cleaned"), to: path(".log"))
            done = true
            let replacement = LogSegment(
                directory: directory, baseOffset: base, disk: disk, createdMs: snapshot.segment.createdMs,
                log: log, offsetIndexFile: SegmentIndexFile(disk: disk, path: path(".index"), open: offsetIndex),
                timeIndexFile: SegmentIndexFile(disk: disk, path: path(".timeindex"), open: timeIndex),
                index: writer.index)
            segments[i] = replacement
            installed = true
            // Reads in flight hold their own descriptors (file regions): closing is safe.
            snapshot.segment.close()
            try disk.rename(path(".index.cleaned"), to: path(".index"))
            try disk.rename(path(".timeindex.cleaned"), to: path(".timeindex"))
            try disk.syncDirectory(directory)
            replacement.releaseIndexFiles()
            return true
        }
        guard swapped else {
            stats.swapsAbandoned += 1
            return nil
        }
        stats.segmentsRewritten += 1
        return written
    }
}
