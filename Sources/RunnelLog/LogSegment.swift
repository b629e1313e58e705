import NIOCore
import RunnelCore
import RunnelWire

/// One segment: `<base offset, 20 digits>.log` with its sparse `.index` (relative offset int32,
/// position int32) and `.timeindex` (timestamp int64, relative offset int32), as Kafka lays them out.
/// The indexes live in memory and are appended to their files as they grow.
final class LogSegment {
    let baseOffset: Int64
    let log: any DiskFile
    let offsetIndexFile: SegmentIndexFile
    let timeIndexFile: SegmentIndexFile
    let directory: String
    let disk: any Disk

    /// Bytes in the `.log` file.
    private(set) var size: Int64
    /// The offset after the last record in this segment.
    private(set) var nextOffset: Int64
    private(set) var offsetIndex: [(relativeOffset: UInt32, position: UInt32)] = []
    private(set) var timeIndex: [(timestamp: Int64, relativeOffset: UInt32)] = []
    private var bytesSinceIndexEntry = 0
    /// Largest record timestamp seen, and the offset of the batch that holds it.
    private(set) var maxTimestamp: Int64 = -1
    private(set) var offsetOfMaxTimestamp: Int64 = -1
    /// Timestamp of the first batch (the base for `segment.ms`), or creation time.
    private(set) var rollingBaseTimestamp: Int64?
    let createdMs: Int64
    /// Changes whenever the segment's bytes do (append, truncate, recover): the cleaner, which
    /// reads a segment without the log's lock, swaps its rewrite in only if this did not move.
    private(set) var generation: UInt64 = 0
    /// Whether the index files lag the in-memory indexes, because a write to them failed (a full
    /// disk). The in-memory indexes serve every read; the files only spare a re-scan at start-up.
    /// Stale files are emptied (an empty index over a non-empty log is re-scanned when loaded) and
    /// rewritten whole when the segment rolls or closes.
    private(set) var indexFilesStale = false
    /// The header of the last batch found when the segment was opened (by the tail scan of
    /// `loadIndexes` or by `recover`); nil for an empty segment. The log checks its epoch file
    /// against it, without reading the tail again.
    private(set) var lastHeaderAtOpen: RecordBatchHeader?
    /// The aborted transactions whose abort marker is in this segment, in marker order: the
    /// `.txnindex` file (Kafka's layout, `AbortedTransaction`), created with its first entry.
    private(set) var abortedTransactions: [AbortedTransaction] = []
    private var txnIndexFile: (any DiskFile)?

    static let offsetIndexEntryBytes = 8
    static let timeIndexEntryBytes = 12

    static func fileName(_ baseOffset: Int64, _ suffix: String) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// Opens or creates the segment files. `rebuild` re-scans the log (validating every batch and
    /// truncating a torn or corrupt tail) instead of trusting the index files; `previousEpoch` is
    /// the leader epoch of the batch before this segment, when known, for that check.
    init(
        directory: String, baseOffset: Int64, disk: any Disk, nowMs: Int64, create: Bool, rebuild: Bool,
        previousEpoch: Int32 = -1
    ) throws {
        self.directory = directory
        self.baseOffset = baseOffset
        self.disk = disk
        self.createdMs = nowMs
        log = try disk.open(directory + "/" + Self.fileName(baseOffset, ".log"), create: create)
        offsetIndexFile = SegmentIndexFile(disk: disk, path: directory + "/" + Self.fileName(baseOffset, ".index"))
        timeIndexFile = SegmentIndexFile(disk: disk, path: directory + "/" + Self.fileName(baseOffset, ".timeindex"))
        size = try log.size()
        nextOffset = baseOffset
        try loadTransactionIndex()
        if try rebuild || !loadIndexes() {
            try recover(previousEpoch: previousEpoch)
        }
        // The indexes are in memory now: their files open again when an entry is added.
        releaseIndexFiles()
        try offsetIndexFile.create()
        try timeIndexFile.create()
    }

    /// A segment over files already written and synced (the cleaner's output, renamed into
    /// place): the indexes come from `index`, built while the bytes were written.
    init(
        directory: String, baseOffset: Int64, disk: any Disk, createdMs: Int64, log: any DiskFile,
        offsetIndexFile: SegmentIndexFile, timeIndexFile: SegmentIndexFile, index: SegmentIndexBuilder
    ) {
        precondition(
            index.baseOffset == baseOffset, "the index was built for segment \(index.baseOffset), not \(baseOffset)")
        self.directory = directory
        self.baseOffset = baseOffset
        self.disk = disk
        self.createdMs = createdMs
        self.log = log
        self.offsetIndexFile = offsetIndexFile
        self.timeIndexFile = timeIndexFile
        self.size = index.size
        self.nextOffset = index.nextOffset
        indexIntervalForRecovery = index.indexIntervalBytes
        adopt(index)
        // The cleaner keeps every offset: the aborted transactions of the segment still hold.
        try? loadTransactionIndex()
    }

    var isEmpty: Bool { size == 0 }

    // MARK: indexes

    /// Loads the index files; false when they do not look right (then the caller re-scans).
    private func loadIndexes() throws -> Bool {
        let indexBytes = try offsetIndexFile.size()
        let timeBytes = try timeIndexFile.size()
        guard indexBytes % Int64(Self.offsetIndexEntryBytes) == 0, timeBytes % Int64(Self.timeIndexEntryBytes) == 0
        else { return false }
        // The first batch of a segment always gets an entry: none means the file was emptied
        // after a failed write (or lost), not that the log is empty.
        guard indexBytes > 0 || size == 0 else { return false }
        var index = try offsetIndexFile.read(at: 0, count: Int(indexBytes))
        var previous: (UInt32, UInt32)? = nil
        while let rel = index.readInteger(as: UInt32.self), let pos = index.readInteger(as: UInt32.self) {
            if let p = previous, rel <= p.0 || pos <= p.1 { return false }
            if Int64(pos) >= size { return false }
            offsetIndex.append((rel, pos))
            previous = (rel, pos)
        }
        var time = try timeIndexFile.read(at: 0, count: Int(timeBytes))
        while let ts = time.readInteger(as: Int64.self), let rel = time.readInteger(as: UInt32.self) {
            timeIndex.append((ts, rel))
        }
        // Find the end: scan batches from the last indexed position.
        var position = Int64(offsetIndex.last?.position ?? 0)
        nextOffset = baseOffset
        while position < size {
            guard let header = try readHeader(at: position), Self.plausible(header) else { return false }
            let end = position + Int64(header.totalBytes)
            guard end <= size, header.baseOffset >= baseOffset, header.baseOffset >= nextOffset else { return false }
            nextOffset = header.nextOffset
            noteTimestamp(header)
            lastHeaderAtOpen = header
            position = end
        }
        if let last = timeIndex.last, last.timestamp > maxTimestamp {
            maxTimestamp = last.timestamp
            offsetOfMaxTimestamp = baseOffset + Int64(last.relativeOffset)
        }
        if size > 0, rollingBaseTimestamp == nil, let first = try readHeader(at: 0) {
            rollingBaseTimestamp = first.maxTimestamp
        }
        return true
    }

    private func noteTimestamp(_ header: RecordBatchHeader) {
        if header.maxTimestamp > maxTimestamp {
            maxTimestamp = header.maxTimestamp
            offsetOfMaxTimestamp = header.lastOffset
        }
    }

    /// Re-scans the whole segment: validates every batch (size, magic, CRC, offsets increasing,
    /// leader epochs never decreasing), truncates at the first bad one, and rebuilds both indexes.
    /// Returns bytes truncated.
    @discardableResult
    func recover(previousEpoch: Int32 = -1) throws -> Int64 {
        generation &+= 1
        var builder = SegmentIndexBuilder(baseOffset: baseOffset, indexIntervalBytes: indexIntervalForRecovery)
        var position: Int64 = 0
        let fileSize = try log.size()
        var kept: [(position: Int64, header: RecordBatchHeader)] = []
        var next = baseOffset
        var epoch = previousEpoch
        while position < fileSize {
            // The base offset, length and leader epoch lie outside the CRC: check them for sense.
            // Offsets continue the segment exactly (the cleaner keeps every offset span, with
            // empty batches where it dropped records) and stay within the index's 32-bit reach.
            guard let header = try readHeader(at: position),
                Self.plausible(header),
                position + Int64(header.totalBytes) <= fileSize,
                allowOffsetGaps ? header.baseOffset >= next : header.baseOffset == next,
                header.lastOffset - baseOffset <= Int64(Int32.max)
            else { break }
            let bytes = try log.read(at: position, count: header.totalBytes)
            let crc = RecordBatches.crc32c(
                bytes, at: bytes.readerIndex + RecordBatchHeader.crcStart,
                length: header.totalBytes - RecordBatchHeader.crcStart)
            guard crc == header.crc else { break }
            if header.partitionLeaderEpoch < epoch {
                // Epochs never go down along a log, so one of this header and the one before
                // lost a byte of its epoch (outside the CRC): both go, and the leader's copy
                // comes back by fetching.
                if let previous = kept.popLast() { position = previous.position }
                break
            }
            epoch = header.partitionLeaderEpoch
            next = header.nextOffset
            kept.append((position, header))
            position += Int64(header.totalBytes)
        }
        for batch in kept { builder.add(batch.header) }
        lastBatchEpoch = kept.last?.header.partitionLeaderEpoch ?? previousEpoch
        lastHeaderAtOpen = kept.last?.header
        let truncated = fileSize - position
        if truncated > 0 { try log.truncate(to: position) }
        adopt(builder)
        rewriteIndexFiles()
        return truncated
    }

    /// Takes over the end, timestamps and indexes a builder computed for this segment's bytes.
    private func adopt(_ builder: SegmentIndexBuilder) {
        offsetIndex = builder.offsetIndex
        timeIndex = builder.timeIndex
        bytesSinceIndexEntry = builder.bytesSinceIndexEntry
        maxTimestamp = builder.maxTimestamp
        offsetOfMaxTimestamp = builder.offsetOfMaxTimestamp
        rollingBaseTimestamp = builder.rollingBaseTimestamp
        nextOffset = builder.nextOffset
        size = builder.size
    }

    /// The interval used when indexes are rebuilt; set by the owning log.
    var indexIntervalForRecovery = 4096
    /// Whether offsets may jump between batches (compacted logs); otherwise a jump is corruption.
    var allowOffsetGaps = false
    /// After `recover`: the leader epoch of the last batch kept (or the one before the segment).
    private(set) var lastBatchEpoch: Int32 = -1

    /// The index files' bytes for the given entries, in Kafka's layout.
    static func indexBytes(
        _ offsetIndex: [(relativeOffset: UInt32, position: UInt32)],
        _ timeIndex: [(timestamp: Int64, relativeOffset: UInt32)]
    ) -> (offsets: ByteBuffer, times: ByteBuffer) {
        var index = ByteBufferAllocator().buffer(capacity: offsetIndex.count * Self.offsetIndexEntryBytes)
        for e in offsetIndex {
            index.writeInteger(e.relativeOffset)
            index.writeInteger(e.position)
        }
        var time = ByteBufferAllocator().buffer(capacity: timeIndex.count * Self.timeIndexEntryBytes)
        for e in timeIndex {
            time.writeInteger(e.timestamp)
            time.writeInteger(e.relativeOffset)
        }
        return (index, time)
    }

    /// Whether a header read from the log looks like a v2 batch header: the fields that lie
    /// outside the CRC (length, leader epoch) and the magic byte. Checked before trusting where
    /// the next batch starts.
    static func plausible(_ header: RecordBatchHeader) -> Bool {
        header.magic == 2
            && header.batchLength >= Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead)
            && header.lastOffsetDelta >= 0
            && header.partitionLeaderEpoch >= -1
    }

    /// Writes both index files whole from the in-memory indexes (best effort, see
    /// `indexFilesStale`).
    private func rewriteIndexFiles() {
        indexFilesStale = false
        let (index, time) = Self.indexBytes(offsetIndex, timeIndex)
        writeIndexFiles {
            try offsetIndexFile.truncate(to: 0)
            try offsetIndexFile.write(index, at: 0)
            try timeIndexFile.truncate(to: 0)
            try timeIndexFile.write(time, at: 0)
        }
    }

    /// Runs a write to the index files unless they are stale; when it fails they become stale
    /// and are emptied (truncating needs no free space), so a later load re-scans the log rather
    /// than trusting a torn file.
    private func writeIndexFiles(_ write: () throws -> Void) {
        guard !indexFilesStale else { return }
        do {
            try write()
        } catch {
            indexFilesStale = true
            try? offsetIndexFile.truncate(to: 0)
            try? timeIndexFile.truncate(to: 0)
        }
    }

    /// Rewrites stale index files (when the segment rolls or closes; the caller holds the log's
    /// locks).
    func restoreIndexFiles() {
        if indexFilesStale { rewriteIndexFiles() }
    }

    func readHeader(at position: Int64) throws -> RecordBatchHeader? {
        let bytes = try log.read(at: position, count: RecordBatchHeader.size)
        return RecordBatchHeader(bytes, at: bytes.readerIndex)
    }

    // MARK: append

    /// Appends batches whose offsets are already assigned. `batches` holds whole batches.
    func append(_ batches: ByteBuffer, headers: [RecordBatchHeader], indexIntervalBytes: Int) throws {
        try writeAppend(batches)
        commitAppend(headers, indexIntervalBytes: indexIntervalBytes)
    }

    /// The first half of an append: writes the batches past the end without publishing them.
    /// Readers go by `size` and `nextOffset`, which only `commitAppend` moves, so they never see
    /// these bytes before the index and offsets describe them. The caller serializes this with
    /// every other change to the segment; it needs no lock against readers.
    /// A write that fails (a full disk) may leave part of the bytes behind: they are cut off
    /// again, so the file never holds more than the published batches.
    func writeAppend(_ batches: ByteBuffer) throws {
        try writeAppend([batches])
    }

    /// `writeAppend` for batches given as pieces written one after another (`pwritev`).
    func writeAppend(_ pieces: [ByteBuffer]) throws {
        do {
            try log.write(pieces, at: size)
        } catch {
            try? log.truncate(to: size)
            throw error
        }
    }

    /// The second half: publishes the batches `writeAppend` wrote (offsets, size, index entries).
    /// It cannot fail: once the batches are in the log file they are appended, and a failed index
    /// write only makes the index files stale.
    func commitAppend(_ headers: [RecordBatchHeader], indexIntervalBytes: Int) {
        precondition(!headers.isEmpty, "append needs at least one batch")
        generation &+= 1
        var position = size
        var newIndex: [(UInt32, UInt32)] = []
        var newTime: [(Int64, UInt32)] = []
        for header in headers {
            if rollingBaseTimestamp == nil { rollingBaseTimestamp = header.maxTimestamp }
            let previousMax = maxTimestamp
            noteTimestamp(header)
            if bytesSinceIndexEntry >= indexIntervalBytes || offsetIndex.isEmpty && newIndex.isEmpty {
                newIndex.append((UInt32(header.lastOffset - baseOffset), UInt32(position)))
                if maxTimestamp > (timeIndex.last?.timestamp ?? -1) && maxTimestamp > (newTime.last?.0 ?? -1) {
                    newTime.append((maxTimestamp, UInt32(offsetOfMaxTimestamp - baseOffset)))
                }
                bytesSinceIndexEntry = 0
            } else if previousMax < 0 {
                // keep the first timestamp indexed even inside an index interval
                newTime.append((maxTimestamp, UInt32(offsetOfMaxTimestamp - baseOffset)))
            }
            bytesSinceIndexEntry += header.totalBytes
            position += Int64(header.totalBytes)
            nextOffset = header.nextOffset
        }
        size = position
        if !newIndex.isEmpty {
            var buffer = ByteBufferAllocator().buffer(capacity: newIndex.count * Self.offsetIndexEntryBytes)
            for e in newIndex {
                buffer.writeInteger(e.0)
                buffer.writeInteger(e.1)
            }
            let at = Int64(offsetIndex.count * Self.offsetIndexEntryBytes)
            writeIndexFiles { try offsetIndexFile.write(buffer, at: at) }
            offsetIndex.append(contentsOf: newIndex.map { (relativeOffset: $0.0, position: $0.1) })
        }
        if !newTime.isEmpty {
            var buffer = ByteBufferAllocator().buffer(capacity: newTime.count * Self.timeIndexEntryBytes)
            for e in newTime {
                buffer.writeInteger(e.0)
                buffer.writeInteger(e.1)
            }
            let at = Int64(timeIndex.count * Self.timeIndexEntryBytes)
            writeIndexFiles { try timeIndexFile.write(buffer, at: at) }
            timeIndex.append(contentsOf: newTime.map { (timestamp: $0.0, relativeOffset: $0.1) })
        }
    }

    var offsetIndexBytes: Int { offsetIndex.count * Self.offsetIndexEntryBytes }

    // MARK: aborted transactions

    private var txnIndexPath: String { directory + "/" + Self.fileName(baseOffset, ".txnindex") }

    /// Reads `.txnindex` if there is one; a partial entry at its end (a torn write) is dropped.
    private func loadTransactionIndex() throws {
        guard disk.exists(txnIndexPath) else { return }
        let file = try disk.open(txnIndexPath, create: false)
        txnIndexFile = file
        var bytes = try file.read(at: 0, count: Int(try file.size()))
        abortedTransactions = []
        while let entry = AbortedTransaction.read(from: &bytes) {
            if let last = abortedTransactions.last, entry.lastOffset <= last.lastOffset { break }
            abortedTransactions.append(entry)
        }
        let valid = Int64(abortedTransactions.count * AbortedTransaction.entryBytes)
        if try file.size() != valid { try file.truncate(to: valid) }
    }

    /// Notes an aborted transaction whose marker this segment holds. An entry the index already
    /// has (a rescan after an unclean stop meeting the marker again) is not added twice.
    func appendAbortedTransaction(_ entry: AbortedTransaction) throws {
        precondition(
            entry.lastOffset >= baseOffset, "the abort marker at \(entry.lastOffset) is not in segment \(baseOffset)")
        if let last = abortedTransactions.last, entry.lastOffset <= last.lastOffset { return }
        let file = try txnIndexFile ?? disk.open(txnIndexPath, create: true)
        txnIndexFile = file
        var bytes = ByteBufferAllocator().buffer(capacity: AbortedTransaction.entryBytes)
        entry.write(to: &bytes)
        try file.write(bytes, at: Int64(abortedTransactions.count * AbortedTransaction.entryBytes))
        abortedTransactions.append(entry)
    }

    /// Empties the index (its segment is being re-scanned).
    func resetTransactionIndex() throws {
        abortedTransactions = []
        try txnIndexFile?.truncate(to: 0)
    }

    /// Drops the entries whose marker is at or after `offset`.
    func truncateTransactionIndex(to offset: Int64) throws {
        guard let keep = abortedTransactions.firstIndex(where: { $0.lastOffset >= offset }) else { return }
        abortedTransactions.removeSubrange(keep...)
        try txnIndexFile?.truncate(to: Int64(keep * AbortedTransaction.entryBytes))
    }

    /// Kafka's `TransactionIndex.collectAbortedTxns`: the aborted transactions overlapping
    /// `fetchOffset ..< upperBoundOffset`, and whether the search is complete (an entry's LSO
    /// reached the upper bound, so no later segment holds one that overlaps).
    func collectAbortedTransactions(
        fetchOffset: Int64, upperBoundOffset: Int64
    ) -> (found: [AbortedTransaction], complete: Bool) {
        var found: [AbortedTransaction] = []
        for entry in abortedTransactions {
            if entry.lastOffset >= fetchOffset && entry.firstOffset < upperBoundOffset { found.append(entry) }
            if entry.lastStableOffset >= upperBoundOffset { return (found, true) }
        }
        return (found, false)
    }

    // MARK: lookup

    /// Position of the batch holding `offset`, or of the first batch after it; nil past the end.
    func position(of offset: Int64) throws -> (position: Int64, header: RecordBatchHeader)? {
        guard offset < nextOffset else { return nil }
        var position: Int64 = 0
        if offset > baseOffset {
            let relative = offset - baseOffset
            // Largest entry whose batch ends before `offset`: entries name a batch's last offset.
            var low = 0
            var high = offsetIndex.count - 1
            var found = -1
            while low <= high {
                let mid = (low + high) / 2
                if Int64(offsetIndex[mid].relativeOffset) < relative {
                    found = mid
                    low = mid + 1
                } else {
                    high = mid - 1
                }
            }
            if found >= 0 { position = Int64(offsetIndex[found].position) }
        }
        while position < size {
            guard let header = try readHeader(at: position) else { return nil }
            if header.lastOffset >= offset { return (position, header) }
            position += Int64(header.totalBytes)
        }
        return nil
    }

    /// The position where batches at or after `offset` begin (the end when none).
    func startPosition(ofBatchesFrom offset: Int64) throws -> Int64 {
        try position(of: offset)?.position ?? size
    }

    /// The first batch whose max timestamp is at least `timestamp`.
    func firstBatch(withTimestampAtLeast timestamp: Int64) throws -> (position: Int64, header: RecordBatchHeader)? {
        guard maxTimestamp >= timestamp else { return nil }
        // Start from the last time-index entry below the target.
        var startOffset = baseOffset
        var low = 0
        var high = timeIndex.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if timeIndex[mid].timestamp < timestamp {
                startOffset = baseOffset + Int64(timeIndex[mid].relativeOffset)
                low = mid + 1
            } else {
                high = mid - 1
            }
        }
        guard var found = try position(of: startOffset) else { return nil }
        var position = found.position
        while position < size {
            guard let header = try readHeader(at: position) else { return nil }
            if header.maxTimestamp >= timestamp {
                found = (position, header)
                return found
            }
            position += Int64(header.totalBytes)
        }
        return nil
    }

    // MARK: truncate and delete

    /// Drops every batch at or after `offset`. Returns bytes removed.
    func truncate(to offset: Int64) throws -> Int64 {
        guard offset < nextOffset else { return 0 }
        generation &+= 1
        try truncateTransactionIndex(to: offset)
        let position = try startPosition(ofBatchesFrom: offset)
        let removed = size - position
        try log.truncate(to: position)
        size = position
        offsetIndex.removeAll { Int64($0.position) >= position }
        timeIndex.removeAll { baseOffset + Int64($0.relativeOffset) >= offset }
        rewriteIndexFiles()
        // Recompute the end and max timestamp from what is left.
        nextOffset = baseOffset
        maxTimestamp = -1
        offsetOfMaxTimestamp = -1
        var scan = Int64(offsetIndex.last?.position ?? 0)
        if let last = timeIndex.last {
            maxTimestamp = last.timestamp
            offsetOfMaxTimestamp = baseOffset + Int64(last.relativeOffset)
        }
        while scan < size, let header = try readHeader(at: scan) {
            nextOffset = header.nextOffset
            noteTimestamp(header)
            scan += Int64(header.totalBytes)
        }
        if size == 0 { rollingBaseTimestamp = nil }
        bytesSinceIndexEntry = 0
        return removed
    }

    /// Makes the segment durable. The indexes are optional: recovery rebuilds them from the log
    /// when they do not match it, so the hot path syncs only the log file.
    func sync(indexes: Bool = true) throws {
        try log.sync()
        if indexes {
            try offsetIndexFile.sync()
            try timeIndexFile.sync()
            try txnIndexFile?.sync()
        }
    }

    func close() {
        log.close()
        offsetIndexFile.close()
        timeIndexFile.close()
        txnIndexFile?.close()
    }

    /// Closes the index files' descriptors (synced first if written since their last sync): a
    /// segment no longer written, or one just loaded, needs them only when an entry is added.
    func releaseIndexFiles() {
        offsetIndexFile.release()
        timeIndexFile.release()
    }

    /// Closes and removes the segment's files (an index file never written may not exist).
    func delete() throws {
        close()
        try disk.remove(directory + "/" + Self.fileName(baseOffset, ".log"))
        for path in [offsetIndexFile.path, timeIndexFile.path, txnIndexPath] where disk.exists(path) {
            try disk.remove(path)
        }
    }
}

/// The end, timestamps and sparse indexes of a segment, built batch by batch in file order: by
/// recovery re-scanning a segment, and by the cleaner while it writes one.
struct SegmentIndexBuilder {
    let baseOffset: Int64
    let indexIntervalBytes: Int
    private(set) var offsetIndex: [(relativeOffset: UInt32, position: UInt32)] = []
    private(set) var timeIndex: [(timestamp: Int64, relativeOffset: UInt32)] = []
    private(set) var bytesSinceIndexEntry = 0
    private(set) var maxTimestamp: Int64 = -1
    private(set) var offsetOfMaxTimestamp: Int64 = -1
    private(set) var rollingBaseTimestamp: Int64?
    private(set) var nextOffset: Int64
    /// Bytes of the batches added so far: where the next one starts.
    private(set) var size: Int64 = 0
    private var lastIndexedTimestamp: Int64 = -1

    init(baseOffset: Int64, indexIntervalBytes: Int) {
        self.baseOffset = baseOffset
        self.indexIntervalBytes = indexIntervalBytes
        self.nextOffset = baseOffset
    }

    /// Notes the batch that starts at `size`.
    mutating func add(_ header: RecordBatchHeader) {
        precondition(
            header.lastOffset - baseOffset <= Int64(Int32.max) && header.baseOffset >= baseOffset,
            "batch \(header.baseOffset)...\(header.lastOffset) is outside the reach of segment \(baseOffset)")
        if rollingBaseTimestamp == nil { rollingBaseTimestamp = header.maxTimestamp }
        if size == 0 || bytesSinceIndexEntry >= indexIntervalBytes {
            offsetIndex.append((UInt32(header.lastOffset - baseOffset), UInt32(size)))
            bytesSinceIndexEntry = 0
        }
        if header.maxTimestamp > maxTimestamp {
            maxTimestamp = header.maxTimestamp
            offsetOfMaxTimestamp = header.lastOffset
        }
        if maxTimestamp > lastIndexedTimestamp {
            timeIndex.append((maxTimestamp, UInt32(offsetOfMaxTimestamp - baseOffset)))
            lastIndexedTimestamp = maxTimestamp
        }
        bytesSinceIndexEntry += header.totalBytes
        nextOffset = header.nextOffset
        size += Int64(header.totalBytes)
    }
}
