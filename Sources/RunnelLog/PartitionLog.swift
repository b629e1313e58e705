import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelWire

/// What an append did.
public struct AppendInfo: Sendable, Equatable {
    public var firstOffset: Int64
    public var lastOffset: Int64
    /// The log-append time written into the batches, or -1 for CreateTime topics.
    public var logAppendTime: Int64
    public var recordCount: Int
    /// The batches were retries of batches already in the log; nothing was written.
    public var duplicate: Bool = false
}

/// An idempotent-producer batch refused by the partition's producer state.
public struct ProducerStateError: Error, Equatable, Sendable {
    public var code: ErrorCode
    public var reason: String
}

/// What a read returned: record batches as file regions (or bytes) and where they end.
public struct LogReadInfo: Sendable {
    public var records: Records
    /// Offset of the first batch returned (may be below the requested offset: whole batches are sent).
    public var firstBatchOffset: Int64
    /// The offset after the last batch returned.
    public var nextOffset: Int64
    public var byteCount: Int { records.byteCount }
}

/// Errors a log operation reports to a client.
public enum LogError: Error, Equatable, Sendable {
    /// The offset is below the log start offset or above the log end offset.
    case offsetOutOfRange(requested: Int64, logStart: Int64, logEnd: Int64)
    /// An appended batch is larger than a segment can hold.
    case batchTooLarge(Int)
    /// A follower append's offsets do not continue the log.
    case nonMonotonicOffsets(expected: Int64, got: Int64)
    /// A batch a follower fetched fails its CRC (Kafka's CorruptRecordException): nothing of the
    /// fetch is written, and the follower fetches it again.
    case corruptBatch(baseOffset: Int64)
    /// The log was closed or deleted (its partition went away while a request was using it).
    case closed
}

/// One partition's log: segments on a `Disk`, rolled by size, age and index fullness, retained by
/// time and size, flushed by message count and age, recovered after an unclean stop.
///
/// Thread-safe, with two locks. `lock` guards the state readers use (segments, offsets, indexes)
/// and is held only for bookkeeping and header reads, never for a bulk write. `appendLock`
/// serializes everything that changes the log (appends, truncations, rolls, retention, deletion):
/// an append takes it, stages under `lock`, writes its bytes into the page cache with only
/// `appendLock` held, then publishes under `lock`. So fetches (followers' and consumers') never
/// wait for an append's copy into the page cache, as Kafka's reads do not wait for its appends.
/// `flush` syncs outside both, so appends never wait for a disk sync. Order: appendLock, then lock.
public final class PartitionLog: @unchecked Sendable {
    public let topicPartition: TopicPartition
    public let directory: String
    let disk: any Disk
    let lock = NIOLock()
    let appendLock = NIOLock()

    // Guarded by lock.
    var segments: [LogSegment] = []
    var _config: LogConfig
    var _logStartOffset: Int64 = 0
    private var _recoveryPoint: Int64 = 0
    private var unflushedMessages: Int64 = 0
    private var lastFlushMs: Int64
    var closed = false
    /// Where the cleaner stopped last (`cleaner-offset-checkpoint`): offsets from here on are dirty.
    var _cleanerCheckpoint: Int64?
    /// Counts truncations: a cleaning whose key map may hold records a truncation removed
    /// swaps nothing in (Kafka aborts the cleaning of a log it truncates).
    var truncations: UInt64 = 0
    /// Tests: called with a segment's base offset just before the cleaner swaps it in.
    var cleanerWillSwap: ((Int64) -> Void)? = nil
    private(set) var producerState = ProducerStateTable()
    private var _transactionFaults = TransactionFaults()
    private var epochCache = LeaderEpochCache()
    /// A segment was created since the last flush: the directory must be synced too.
    private var segmentsCreatedSinceFlush = true
    /// Drop-behind of the page cache (nil: the kernel decides), and where its last request ended.
    var dropBehind: DropBehind?
    var dropCursor: (segment: LogSegment, position: Int64)?

    /// Test-only broken rules of the transaction checks (`TransactionFaults`); all off by default.
    public var transactionFaults: TransactionFaults {
        get { lock.withLock { _transactionFaults } }
        set { lock.withLock { _transactionFaults = newValue } }
    }

    /// Sets or clears drop-behind (`DropBehind`).
    public func setDropBehind(_ policy: DropBehind?) {
        lock.withLock { dropBehind = policy }
    }

    /// Hears of a disk error that failed an append, a roll or a truncation (the node stops on it,
    /// as Kafka does when its log dir fails); the error is thrown to the caller as well.
    private var diskFailureHandler: (@Sendable (DiskError) -> Void)?

    /// Sets what hears of disk errors that fail a change to the log.
    public func setDiskFailureHandler(_ handler: (@Sendable (DiskError) -> Void)?) {
        lock.withLock { diskFailureHandler = handler }
    }

    /// Runs a change to the log under `appendLock`, telling the disk failure handler of a disk
    /// error before throwing it.
    private func changingLog<T>(_ body: () throws -> T) throws -> T {
        do {
            return try appendLock.withLock(body)
        } catch let error as DiskError {
            lock.withLock { diskFailureHandler }?(error)
            throw error
        }
    }

    /// Opens the log in `directory`, creating it if needed. `recoveryPoint` is the offset below
    /// which data is known durable; with `cleanShutdown` false, every segment at or past it is
    /// re-validated and a torn tail truncated. `cleanerCheckpoint` is where the cleaner stopped.
    public init(
        topicPartition: TopicPartition,
        directory: String,
        config: LogConfig,
        disk: any Disk,
        nowMs: Int64,
        recoveryPoint: Int64 = 0,
        logStartOffset: Int64 = 0,
        cleanShutdown: Bool = true,
        cleanerCheckpoint: Int64? = nil
    ) throws {
        self.topicPartition = topicPartition
        self.directory = directory
        self.disk = disk
        self._config = config
        self.lastFlushMs = nowMs
        self._cleanerCheckpoint = cleanerCheckpoint
        // A directory made here holds nothing to load, check or clean up: creating many
        // partitions at once then costs no directory scans.
        let fresh = !disk.exists(directory)
        try disk.makeDirectory(directory)
        let firstRecovered =
            fresh
            ? nil : try loadSegmentsLocked(recoveryPoint: recoveryPoint, cleanShutdown: cleanShutdown, nowMs: nowMs)
        if segments.isEmpty {
            let base = max(logStartOffset, 0)
            segments.append(
                try LogSegment(
                    directory: directory, baseOffset: base, disk: disk, nowMs: nowMs, create: true, rebuild: false))
        }
        let end = segments.last!.nextOffset
        self._logStartOffset = min(max(logStartOffset, segments.first!.baseOffset), end)
        self._recoveryPoint = min(recoveryPoint, end)
        if !cleanShutdown { self._recoveryPoint = end }
        // A new log has no producer state to rebuild.
        if !fresh { try rebuildProducerStateLocked(rescanFrom: firstRecovered, cleanOpen: cleanShutdown) }
        try loadEpochCacheLocked()
    }

    /// Opens the segments found in the log's directory (removing leftovers of cut-short work),
    /// re-validating those at or past `recoveryPoint` after an unclean stop. Returns the first
    /// segment re-validated: the producer state is rebuilt from a snapshot at or below it, and
    /// the aborted-transaction indexes from it on.
    private func loadSegmentsLocked(recoveryPoint: Int64, cleanShutdown: Bool, nowMs: Int64) throws -> Int64? {
        var firstRecovered: Int64?
        var bases: [Int64] = []
        for name in try disk.list(directory) {
            if name.hasSuffix(".log"), let base = Int64(name.dropLast(4)) {
                bases.append(base)
            } else if name.hasSuffix(".cleaned") || name.hasSuffix(".swap") || name.hasSuffix(".deleted") {
                try disk.remove(directory + "/" + name)
            }
        }
        bases.sort()
        // Index files without a log are leftovers of a deletion that was cut short; a snapshot
        // temp file is one a crash interrupted.
        for name in try disk.list(directory) where name.hasSuffix(ProducerSnapshot.suffix + ".tmp") {
            try disk.remove(directory + "/" + name)
        }
        for name in try disk.list(directory)
        where name.hasSuffix(".index") || name.hasSuffix(".timeindex") || name.hasSuffix(".txnindex") {
            let stem = name.split(separator: ".").first.map(String.init) ?? ""
            if let base = Int64(stem), !bases.contains(base) { try disk.remove(directory + "/" + name) }
        }
        var truncatedTail = false
        for (i, base) in bases.enumerated() {
            if truncatedTail {
                // Everything after a corrupt point is gone: its offsets cannot follow.
                for suffix in [".log", ".index", ".timeindex", ".txnindex"]
                where disk.exists(directory + "/" + LogSegment.fileName(base, suffix)) {
                    try disk.remove(directory + "/" + LogSegment.fileName(base, suffix))
                }
                continue
            }
            let nextBase = i + 1 < bases.count ? bases[i + 1] : Int64.max
            let needsCheck = !cleanShutdown && nextBase > recoveryPoint
            // A checked segment continues the epochs of the checked one before it.
            let previousEpoch = segments.last.map(\.lastBatchEpoch) ?? -1
            let segment = try LogSegment(
                directory: directory, baseOffset: base, disk: disk, nowMs: nowMs, create: false, rebuild: needsCheck,
                previousEpoch: previousEpoch)
            if needsCheck && firstRecovered == nil { firstRecovered = base }
            segment.indexIntervalForRecovery = _config.indexIntervalBytes
            // A checked segment that ends short of the next one lost its tail, torn (bytes cut
            // off) or cleanly (the page cache held it): the later segments cannot follow it. The
            // cleaner keeps every segment's last offset (an empty batch if need be), so a gap
            // is never a compacted one.
            if needsCheck, i + 1 < bases.count, segment.nextOffset < nextBase {
                truncatedTail = true
            }
            segments.append(segment)
        }
        return firstRecovered
    }

    /// Loads `leader-epoch-checkpoint`, or rebuilds it from the batch headers when it is missing
    /// or does not match the log (after an unclean stop): an entry past the log end, or a last
    /// batch whose epoch the file does not give its offset (the process died between appending
    /// a new epoch's first batch and writing the file, so the file lacks that epoch and would
    /// stretch the previous one over it).
    private func loadEpochCacheLocked() throws {
        let end = segments.last!.nextOffset
        if let cache = LeaderEpochCache.read(directory: directory, disk: disk),
            cache.entries.allSatisfy({ $0.startOffset < max(end, 1) || end == 0 }),
            epochCache(cache, coversLastBatchOf: segments)
        {
            epochCache = cache
            epochCache.truncate(fromOffset: end)
            epochCache.advanceStart(to: _logStartOffset)
            return
        }
        epochCache = LeaderEpochCache()
        for segment in segments {
            var position: Int64 = 0
            while position < segment.size, let header = try segment.readHeader(at: position) {
                epochCache.assign(epoch: header.partitionLeaderEpoch, startOffset: header.baseOffset)
                position += Int64(header.totalBytes)
            }
        }
        try? epochCache.write(directory: directory, disk: disk)
    }

    /// Whether `cache` gives the log's last batch its own epoch (true for an empty log and for
    /// batches without an epoch).
    private func epochCache(_ cache: LeaderEpochCache, coversLastBatchOf segments: [LogSegment]) -> Bool {
        guard let last = segments.reversed().lazy.compactMap(\.lastHeaderAtOpen).first,
            last.partitionLeaderEpoch >= 0
        else { return true }
        let governing = cache.entries.last { $0.startOffset <= last.baseOffset }
        return governing?.epoch == last.partitionLeaderEpoch
    }

    /// Notes the epochs of appended batches; a new epoch is written to the checkpoint at once.
    private func noteEpochsLocked(_ headers: [RecordBatchHeader]) {
        var changed = false
        for header in headers
        where epochCache.assign(epoch: header.partitionLeaderEpoch, startOffset: header.baseOffset) {
            changed = true
        }
        if changed { try? epochCache.write(directory: directory, disk: disk) }
    }

    /// The largest epoch at or below `epoch` in this log and where it ends (OffsetForLeaderEpoch,
    /// and the diverging epoch a leader tells a follower).
    public func endOffset(forEpoch epoch: Int32) -> (epoch: Int32, endOffset: Int64) {
        lock.withLock { epochCache.endOffset(forEpoch: epoch, logEndOffset: segments.last!.nextOffset) }
    }

    /// A new leader epoch starts at the log end (this replica became leader): recorded now, so a
    /// follower asking about the previous epoch learns where it ended before any new batch.
    public func beginLeaderEpoch(_ epoch: Int32) {
        lock.withLock {
            if epochCache.assign(epoch: epoch, startOffset: segments.last!.nextOffset) {
                try? epochCache.write(directory: directory, disk: disk)
            }
        }
    }

    /// The epoch of the last batch (-1 when empty): what a follower sends as its last fetched epoch.
    public var latestEpoch: Int32 { lock.withLock { epochCache.latestEpoch } }

    /// Segments replayed on a clean open that finds no producer snapshot (an upgrade).
    static let producerStateSegmentsScannedWithoutSnapshot = 2

    /// Producer snapshots kept (the newest ones): recovery needs one at or below the first
    /// segment past the recovery point, which trails the log end by a segment or two.
    static let producerSnapshotsRetained = 3

    /// The offsets of the snapshot files in the directory, ascending.
    private func snapshotOffsetsLocked() throws -> [Int64] {
        try disk.list(directory).compactMap(ProducerSnapshot.offset(ofFile:)).sorted()
    }

    private func removeSnapshotLocked(_ offset: Int64) {
        try? disk.remove(directory + "/" + ProducerSnapshot.fileName(offset))
    }

    /// Rebuilds the producer state (Kafka's `truncateAndReload` and log loading): snapshots past
    /// the log end go; the newest usable one at or below the end (and at or below `rescanFrom`,
    /// the first segment whose aborted-transaction index must be rebuilt) is loaded, and the
    /// batches after it are replayed, markers included. With no usable snapshot the whole log is
    /// replayed, except on a clean open (`cleanOpen`: a log written before snapshots existed, as
    /// Kafka treats an upgrade), which replays the last two segments as this log always did.
    /// Segments from `rescanFrom` on get their `.txnindex` rebuilt.
    private func rebuildProducerStateLocked(rescanFrom: Int64? = nil, cleanOpen: Bool = false) throws {
        let end = segments.last!.nextOffset
        let offsets = try snapshotOffsetsLocked()
        for offset in offsets where offset > end { removeSnapshotLocked(offset) }
        let limit = min(end, rescanFrom ?? end)
        var table = ProducerStateTable()
        var from = segments.first!.baseOffset
        var loaded = false
        for offset in offsets.reversed() where offset <= limit {
            do {
                table = ProducerStateTable(
                    snapshot: try ProducerSnapshot.read(offset: offset, directory: directory, disk: disk))
                from = max(offset, from)
                loaded = true
                break
            } catch {
                removeSnapshotLocked(offset)
            }
        }
        if !loaded && cleanOpen && rescanFrom == nil {
            from = segments.suffix(Self.producerStateSegmentsScannedWithoutSnapshot).first!.baseOffset
        }
        for segment in segments
        where segment.nextOffset > from || (rescanFrom.map { segment.baseOffset >= $0 } ?? false) {
            if let rescanFrom, segment.baseOffset >= rescanFrom { try segment.resetTransactionIndex() }
            var position = from > segment.baseOffset ? try segment.startPosition(ofBatchesFrom: from) : 0
            while position < segment.size, let header = try segment.readHeader(at: position) {
                var marker: EndTransactionMarker?
                if header.isControl && header.producerId >= 0 && header.recordCount > 0 {
                    marker = EndTransactionMarker.read(
                        batch: try segment.log.read(at: position, count: header.totalBytes), header: header)
                }
                if let completed = table.update(header, marker: marker), completed.isAborted {
                    try segment.appendAbortedTransaction(AbortedTransaction(completed))
                }
                position += Int64(header.totalBytes)
            }
        }
        producerState = table
    }

    /// Writes the producer state as of the log end (`offset`) to `<offset>.snapshot` and keeps
    /// the newest few. At a roll it is written without a sync (a torn one fails its CRC and an
    /// older one, or a scan, serves); at close, durably.
    private func takeProducerSnapshotLocked(at offset: Int64, durable: Bool) {
        do {
            try ProducerSnapshot.write(
                producerState.snapshotEntries, offset: offset, directory: directory, disk: disk, durable: durable)
            let offsets = try snapshotOffsetsLocked()
            for old in offsets.dropLast(Self.producerSnapshotsRetained) { removeSnapshotLocked(old) }
        } catch {
            // Only an optimization: the next open replays more of the log.
        }
    }

    // MARK: state

    public var logStartOffset: Int64 { lock.withLock { _logStartOffset } }
    public var logEndOffset: Int64 { lock.withLock { segments.last!.nextOffset } }
    public var recoveryPoint: Int64 { lock.withLock { _recoveryPoint } }
    public var config: LogConfig {
        get { lock.withLock { _config } }
        set { lock.withLock { _config = newValue } }
    }
    /// Total bytes over all segments.
    public var sizeInBytes: Int64 { lock.withLock { segments.reduce(0) { $0 + $1.size } } }
    public var segmentCount: Int { lock.withLock { segments.count } }
    /// Base offset of the active (newest) segment.
    public var activeSegmentBaseOffset: Int64 { lock.withLock { segments.last!.baseOffset } }
    /// Base offsets of the segments, oldest first.
    public var segmentBaseOffsets: [Int64] { lock.withLock { segments.map(\.baseOffset) } }
    /// The offset after each segment's last batch, oldest first.
    public var segmentNextOffsets: [Int64] { lock.withLock { segments.map(\.nextOffset) } }
    /// Where the cleaner stopped last; nil before its first cleaning.
    public var cleanerCheckpoint: Int64? { lock.withLock { _cleanerCheckpoint } }

    // MARK: append

    /// Appends validated batches (from `RecordBatches.validate`) of a client or, with `origin`
    /// `.coordinator`, of a coordinator (see `ProducerStateTable.check`): assigns offsets from the
    /// log end, stamps the leader epoch (and the append time on LogAppendTime logs), and writes them
    /// as they are. Batches are never decompressed.
    /// `verification`: what the leader learned from the transaction coordinator (KIP-890 part 1);
    /// a transactional batch that would open a transaction without a guard still in force is
    /// refused with INVALID_TXN_STATE.
    public func appendAsLeader(
        _ payload: ByteBuffer, batches: [BatchInfo], leaderEpoch: Int32, nowMs: Int64, origin: AppendOrigin = .client,
        verification: ProducerStateTable.Verification = .notRequired
    ) throws -> AppendInfo {
        try appendAsLeader(
            payload, batches: batches, leaderEpoch: leaderEpoch, nowMs: nowMs, origin: origin, marker: nil,
            verification: verification)
    }

    /// Starts a verification for a transactional append (see `ProducerStateTable.startVerification`).
    public func startTransactionVerification(
        producerId: Int64, epoch: Int16, nowMs: Int64
    ) -> ProducerStateTable.VerificationGuard? {
        lock.withLock { producerState.startVerification(producerId: producerId, epoch: epoch, nowMs: nowMs) }
    }

    /// Appends a transaction marker for a producer (WriteTxnMarkers) at the log end, after
    /// `ProducerStateTable.checkMarker`'s rules: a refused marker throws `ProducerStateError`
    /// (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED); a TV2 marker repeated after it
    /// took effect writes nothing and answers as a duplicate. `transactionVersion` is the
    /// marker's (WriteTxnMarkers v2, KIP-1228; 0 for older requests).
    public func appendTransactionMarker(
        producerId: Int64, producerEpoch: Int16, _ marker: EndTransactionMarker, transactionVersion: Int16,
        leaderEpoch: Int32, nowMs: Int64
    ) throws -> AppendInfo {
        let batch = marker.batch(producerId: producerId, producerEpoch: producerEpoch, timestamp: nowMs)
        let infos = try RecordBatches.validate(batch, maxBatchBytes: Int.max, allowControl: true).get()
        return try appendAsLeader(
            batch, batches: infos, leaderEpoch: leaderEpoch, nowMs: nowMs, origin: .coordinator,
            marker: (producerId, producerEpoch, marker, transactionVersion), verification: .notRequired)
    }

    private func appendAsLeader(
        _ payload: ByteBuffer, batches: [BatchInfo], leaderEpoch: Int32, nowMs: Int64, origin: AppendOrigin,
        marker: (producerId: Int64, epoch: Int16, marker: EndTransactionMarker, version: Int16)?,
        verification: ProducerStateTable.Verification
    ) throws -> AppendInfo {
        try changingLog {
            let staged: StagedAppend = try lock.withLock {
                if closed { throw LogError.closed }
                if let marker, !_transactionFaults.skipMarkerEpochCheck {
                    switch producerState.checkMarker(
                        producerId: marker.producerId, producerEpoch: marker.epoch, marker.marker,
                        transactionVersion: marker.version)
                    {
                    case .append: break
                    case .alreadyWritten:
                        let end = segments.last!.nextOffset
                        return StagedAppend(
                            segment: nil, bytes: payload, headers: [],
                            info: AppendInfo(
                                firstOffset: end, lastOffset: end - 1, logAppendTime: -1, recordCount: 0,
                                duplicate: true))
                    case .reject(let code, let reason): throw ProducerStateError(code: code, reason: reason)
                    }
                }
                // Idempotent producers: answer retries with their first offsets, refuse gaps.
                var duplicates: [ProducerStateTable.BatchMetadata] = []
                for batch in batches {
                    switch producerState.check(batch.header, origin: origin, verification: verification) {
                    case .append: break
                    case .duplicate(let meta): duplicates.append(meta)
                    case .reject(let code, let reason): throw ProducerStateError(code: code, reason: reason)
                    }
                }
                if !duplicates.isEmpty {
                    guard duplicates.count == batches.count else {
                        throw ProducerStateError(
                            code: .duplicateSequenceNumber, reason: "A request mixes new batches with retried ones.")
                    }
                    let info = AppendInfo(
                        firstOffset: duplicates[0].firstOffset, lastOffset: duplicates.last!.lastOffset,
                        logAppendTime: -1,
                        recordCount: 0, duplicate: true)
                    return StagedAppend(segment: nil, bytes: payload, headers: [], info: info)
                }
                var buffer = payload
                var next = segments.last!.nextOffset
                let first = next
                var headers: [RecordBatchHeader] = []
                headers.reserveCapacity(batches.count)
                var records = 0
                let appendTime = _config.logAppendTime ? nowMs : -1
                // Without LogAppendTime the new offsets and epoch go out as pieces of one vectored
                // write, so the request's bytes are never copied; LogAppendTime rewrites the CRC'd
                // header (and the CRC) in place.
                var pieces: [ByteBuffer] = []
                var stamps = ByteBuffer()
                if !_config.logAppendTime {
                    pieces.reserveCapacity(2 * batches.count)
                    stamps.reserveCapacity(RecordBatchHeader.Offsets.magic * batches.count)
                }
                for batch in batches {
                    if _config.logAppendTime {
                        RecordBatches.setBaseOffset(&buffer, batchAt: batch.position, next)
                        RecordBatches.setPartitionLeaderEpoch(&buffer, batchAt: batch.position, leaderEpoch)
                        RecordBatches.setLogAppendTime(&buffer, batchAt: batch.position, nowMs)
                    } else {
                        let (prefix, rest) = RecordBatches.stampedPieces(
                            payload, batchAt: batch.position, totalBytes: batch.header.totalBytes, baseOffset: next,
                            partitionLeaderEpoch: leaderEpoch, stamps: &stamps)
                        pieces.append(prefix)
                        pieces.append(rest)
                    }
                    var header = batch.header
                    header.baseOffset = next
                    header.partitionLeaderEpoch = leaderEpoch
                    if _config.logAppendTime { header.maxTimestamp = nowMs }
                    headers.append(header)
                    records += Int(header.recordCount)
                    next = header.nextOffset
                }
                // The batches must be contiguous in the payload.
                let start = batches.first!.position
                let last = batches.last!
                let length = last.position + last.header.totalBytes - start
                let slice = buffer.getSlice(at: start, length: length)!
                let info = AppendInfo(
                    firstOffset: first, lastOffset: next - 1, logAppendTime: appendTime, recordCount: records)
                return try stageLocked(
                    slice, pieces: pieces.isEmpty ? nil : pieces, headers: headers, nowMs: nowMs, info: info)
            }
            return try write(staged)
        }
    }

    /// Appends batches that already carry offsets (a follower copying its leader, or the metadata
    /// log). Offsets must continue the log.
    public func appendAsFollower(_ payload: ByteBuffer, nowMs: Int64) throws -> AppendInfo? {
        try changingLog {
            // Only appendLock's holders move the log end: the checks below need no other lock.
            let (isClosed, logEnd) = lock.withLock { (closed, segments.last!.nextOffset) }
            if isClosed { throw LogError.closed }
            var headers: [RecordBatchHeader] = []
            var index = payload.readerIndex
            var start = payload.readerIndex
            var expected = logEnd
            let first = expected
            var records = 0
            var filler: ByteBuffer? = nil
            while let header = RecordBatchHeader(payload, at: index), header.totalBytes <= payload.writerIndex - index {
                if header.baseOffset < expected, headers.isEmpty, header.recordCount == 0, !header.isControl,
                    header.lastOffset >= expected
                {
                    // The leader's cleaner merged removed batches into one empty batch that
                    // begins below our end (we hold the start of what it covers): the rest of its
                    // span becomes an empty batch of our own, so our offsets stay contiguous.
                    let own = RecordBatches.emptyBatch(
                        baseOffset: expected, lastOffset: header.lastOffset,
                        partitionLeaderEpoch: header.partitionLeaderEpoch,
                        attributes: header.attributes & 0x08, maxTimestamp: header.maxTimestamp)
                    headers.append(RecordBatchHeader(own, at: own.readerIndex)!)
                    filler = own
                    expected = header.nextOffset
                    index += header.totalBytes
                    start = index
                    continue
                }
                guard header.baseOffset >= expected else {
                    throw LogError.nonMonotonicOffsets(expected: expected, got: header.baseOffset)
                }
                let crc = RecordBatches.crc32c(
                    payload, at: index + RecordBatchHeader.crcStart,
                    length: header.totalBytes - RecordBatchHeader.crcStart)
                guard crc == header.crc else { throw LogError.corruptBatch(baseOffset: header.baseOffset) }
                headers.append(header)
                records += Int(header.recordCount)
                expected = header.nextOffset
                index += header.totalBytes
            }
            guard !headers.isEmpty else { return nil }
            var slice = payload.getSlice(at: start, length: index - start)!
            if var own = filler {
                own.writeBuffer(&slice)
                slice = own
            }
            let info = AppendInfo(
                firstOffset: max(first, headers[0].baseOffset), lastOffset: expected - 1, logAppendTime: -1,
                recordCount: records)
            let staged = try lock.withLock { try stageLocked(slice, headers: headers, nowMs: nowMs, info: info) }
            return try write(staged)
        }
    }

    /// An append between its two steps: the segment it goes to (nil for a retried idempotent
    /// batch, which writes nothing), its bytes and headers, and the answer once it is in.
    /// `pieces`, when set, is what goes to the file (the bytes with new offsets and epochs).
    private struct StagedAppend {
        var segment: LogSegment?
        var bytes: ByteBuffer
        var pieces: [ByteBuffer]? = nil
        var headers: [RecordBatchHeader]
        var info: AppendInfo
    }

    /// Picks the segment an append goes to, rolling first when the active one is full or old.
    private func stageLocked(
        _ bytes: ByteBuffer, pieces: [ByteBuffer]? = nil, headers: [RecordBatchHeader], nowMs: Int64,
        info: AppendInfo
    ) throws -> StagedAppend {
        let incoming = bytes.readableBytes
        if incoming > Int(Int32.max) { throw LogError.batchTooLarge(incoming) }
        try maybeRoll(incomingBytes: incoming, firstBatch: headers[0], nowMs: nowMs)
        return StagedAppend(segment: segments.last!, bytes: bytes, pieces: pieces, headers: headers, info: info)
    }

    /// Writes a staged append into the page cache (appendLock held, `lock` not), then publishes
    /// it under `lock`: offsets, indexes, producer state and epochs move together. An abort
    /// marker's entry goes to the segment's `.txnindex` before the batch is published; if that
    /// write fails the append fails whole.
    private func write(_ staged: StagedAppend) throws -> AppendInfo {
        guard let segment = staged.segment else { return staged.info }
        try segment.writeAppend(staged.pieces ?? [staged.bytes])
        var markers: [Int: EndTransactionMarker] = [:]
        if staged.headers.contains(where: \.isControl) {
            var position = staged.bytes.readerIndex
            for (i, header) in staged.headers.enumerated() {
                if header.isControl, header.producerId >= 0,
                    let batch = staged.bytes.getSlice(at: position, length: header.totalBytes)
                {
                    markers[i] = EndTransactionMarker.read(batch: batch, header: header)
                }
                position += header.totalBytes
            }
        }
        try lock.withLock {
            if markers.isEmpty {
                for header in staged.headers { producerState.update(header) }
            } else {
                var state = producerState
                do {
                    for (i, header) in staged.headers.enumerated() {
                        if let completed = state.update(header, marker: markers[i]), completed.isAborted {
                            try segment.appendAbortedTransaction(AbortedTransaction(completed))
                        }
                    }
                } catch {
                    try? segment.truncateTransactionIndex(to: staged.info.firstOffset)
                    try? segment.log.truncate(to: segment.size)
                    throw error
                }
                producerState = state
            }
            segment.commitAppend(staged.headers, indexIntervalBytes: _config.indexIntervalBytes)
            noteEpochsLocked(staged.headers)
            unflushedMessages += Int64(staged.info.recordCount)
            dropBehindLocked()
        }
        return staged.info
    }

    private func maybeRoll(incomingBytes: Int, firstBatch: RecordBatchHeader, nowMs: Int64) throws {
        let active = segments.last!
        guard !active.isEmpty else { return }
        let full = active.size + Int64(incomingBytes) > Int64(_config.segmentBytes)
        let indexFull = active.offsetIndexBytes + LogSegment.offsetIndexEntryBytes > _config.segmentIndexBytes
        let base = active.rollingBaseTimestamp ?? active.createdMs
        let rollMs = _config.rollMs
        let old =
            rollMs > 0 && firstBatch.maxTimestamp - base > rollMs && nowMs - active.createdMs > rollMs
        // Relative offsets and positions are 32-bit in the index.
        let offsetOverflow = firstBatch.nextOffset - active.baseOffset > Int64(Int32.max)
        if full || indexFull || old || offsetOverflow {
            try rollLocked(nextBase: max(active.nextOffset, firstBatch.baseOffset), nowMs: nowMs)
        }
    }

    private func rollLocked(nextBase: Int64, nowMs: Int64) throws {
        // The producer state as of the end of the segment that stops being active.
        takeProducerSnapshotLocked(at: nextBase, durable: false)
        let segment = try LogSegment(
            directory: directory, baseOffset: nextBase, disk: disk, nowMs: nowMs, create: true, rebuild: false)
        // The segment that stops being active gets index files that match it, if a full disk
        // made them stale and there is room again.
        segments.last?.restoreIndexFiles()
        segment.indexIntervalForRecovery = _config.indexIntervalBytes
        segments.append(segment)
        segmentsCreatedSinceFlush = true
    }

    /// Rolls a new segment now if the active one has data (used by time-based retention).
    public func roll(nowMs: Int64) throws {
        try changingLog {
            try lock.withLock {
                let active = segments.last!
                if !active.isEmpty { try rollLocked(nextBase: active.nextOffset, nowMs: nowMs) }
            }
        }
    }

    // MARK: transactions

    /// The first offset that is not stable (an open transaction's first offset, or a completed
    /// one's whose marker the high watermark has not passed), never below the log start; nil
    /// when every offset is stable. The LSO is the lower of this and the high watermark.
    public var firstUnstableOffset: Int64? {
        lock.withLock { producerState.firstUnstableOffset.map { max($0, _logStartOffset) } }
    }

    /// The last stable offset for a high watermark: read_committed fetches stop there.
    public func lastStableOffset(highWatermark: Int64) -> Int64 {
        lock.withLock {
            min(highWatermark, producerState.firstUnstableOffset.map { max($0, _logStartOffset) } ?? highWatermark)
        }
    }

    /// The high watermark moved: transactions whose marker it passed become stable.
    public func highWatermarkUpdated(_ highWatermark: Int64) {
        lock.withLock { producerState.highWatermarkUpdated(highWatermark) }
    }

    /// The aborted transactions overlapping `fetchOffset ..< upperBoundOffset` (a read_committed
    /// fetch returns them so the consumer drops their records), from the `.txnindex` of the
    /// segment holding `fetchOffset` and the ones after it, until an entry's LSO reaches the
    /// upper bound (Kafka's `collectAbortedTransactions`).
    public func collectAbortedTransactions(fetchOffset: Int64, upperBoundOffset: Int64) -> [AbortedTransaction] {
        lock.withLock {
            var found: [AbortedTransaction] = []
            var index = segmentIndex(containing: fetchOffset)
            while index < segments.count {
                let (entries, complete) = segments[index].collectAbortedTransactions(
                    fetchOffset: fetchOffset, upperBoundOffset: upperBoundOffset)
                found += entries
                if complete { break }
                index += 1
            }
            return found
        }
    }

    /// Forgets producers idle longer than `producer.id.expiration.ms` (those with an open
    /// transaction stay), as Kafka's periodic `removeExpiredProducers` does.
    public func removeExpiredProducers(nowMs: Int64, expirationMs: Int64) {
        lock.withLock { producerState.removeExpired(nowMs: nowMs, expirationMs: expirationMs) }
    }

    /// The producer state as it stands (DescribeProducers, tests).
    public var producerStateTable: ProducerStateTable { lock.withLock { producerState } }

    /// The offsets of the producer snapshot files, ascending.
    public var producerSnapshotOffsets: [Int64] { (try? lock.withLock { try snapshotOffsetsLocked() }) ?? [] }

    // MARK: read

    /// Reads whole batches from `offset`: at most `maxBytes` (but at least one batch when
    /// `minOneBatch`), and only batches below `maxOffset` (the high watermark for consumers).
    /// Returns file regions when the disk supports them.
    public func read(from offset: Int64, maxBytes: Int, maxOffset: Int64, minOneBatch: Bool) throws -> LogReadInfo {
        try lock.withLock {
            let end = segments.last!.nextOffset
            guard offset >= _logStartOffset, offset <= end else {
                throw LogError.offsetOutOfRange(requested: offset, logStart: _logStartOffset, logEnd: end)
            }
            var chunks: [Records.Chunk] = []
            var remaining = maxBytes
            var firstBatchOffset: Int64 = -1
            var next = offset
            guard offset < min(end, maxOffset) else {
                return LogReadInfo(records: .empty, firstBatchOffset: offset, nextOffset: offset)
            }
            var index = segmentIndex(containing: offset)
            while index < segments.count && next < maxOffset {
                let segment = segments[index]
                guard let (start, firstHeader) = try segment.position(of: next) else {
                    index += 1
                    continue
                }
                if firstBatchOffset < 0 { firstBatchOffset = firstHeader.baseOffset }
                // Walk batch headers to find where to stop: bytes budget and the offset bound.
                var position = start
                var header = firstHeader
                var took = false
                while true {
                    if header.baseOffset >= maxOffset { break }
                    let size = header.totalBytes
                    let mustTakeOne = minOneBatch && chunks.isEmpty && !took
                    if size > remaining && !mustTakeOne { break }
                    remaining -= size
                    position += Int64(size)
                    next = header.nextOffset
                    took = true
                    if remaining <= 0 || position >= segment.size { break }
                    guard let h = try segment.readHeader(at: position) else { break }
                    header = h
                }
                if position > start {
                    let count = Int(position - start)
                    if let region = try segment.log.region(at: start, count: count) {
                        chunks.append(.region(region))
                    } else {
                        chunks.append(.bytes(try segment.log.read(at: start, count: count)))
                    }
                }
                if remaining <= 0 || position < segment.size { break }
                index += 1
            }
            return LogReadInfo(
                records: Records(chunks: chunks), firstBatchOffset: firstBatchOffset < 0 ? offset : firstBatchOffset,
                nextOffset: next)
        }
    }

    /// Bytes of the batches from the one holding `offset` up to (not including) the batch holding
    /// `endOffset`: how much a fetch could return, without opening regions.
    public func availableBytes(from offset: Int64, upTo endOffset: Int64) throws -> Int64 {
        try lock.withLock {
            guard offset < endOffset, offset >= _logStartOffset else { return 0 }
            var total: Int64 = 0
            var index = segmentIndex(containing: offset)
            while index < segments.count {
                let segment = segments[index]
                if segment.baseOffset >= endOffset { break }
                let start = segment.baseOffset >= offset ? 0 : try segment.startPosition(ofBatchesFrom: offset)
                let end =
                    endOffset >= segment.nextOffset ? segment.size : try segment.startPosition(ofBatchesFrom: endOffset)
                total += max(0, end - start)
                index += 1
            }
            return total
        }
    }

    /// Reads batches into memory (tests, the metadata log, tools).
    public func readBytes(from offset: Int64, maxBytes: Int, maxOffset: Int64 = Int64.max) throws -> ByteBuffer {
        let info = try read(from: offset, maxBytes: maxBytes, maxOffset: maxOffset, minOneBatch: true)
        var out = ByteBuffer()
        for chunk in info.records.chunks {
            switch chunk {
            case .bytes(var b): out.writeBuffer(&b)
            case .region(let region):
                defer { try? region.fileHandle.close() }
                // Copy through the descriptor (tests and tools only).
                let bytes = try region.fileHandle.withUnsafeFileDescriptor { fd -> ByteBuffer in
                    var buffer = ByteBufferAllocator().buffer(capacity: region.readableBytes)
                    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: region.readableBytes) { raw in
                        var done = 0
                        while done < region.readableBytes {
                            let n = pread(
                                fd, raw.baseAddress! + done, region.readableBytes - done,
                                off_t(region.readerIndex + done))
                            if n <= 0 { break }
                            done += n
                        }
                        return done
                    }
                    return buffer
                }
                var copy = bytes
                out.writeBuffer(&copy)
            }
        }
        return out
    }

    private func segmentIndex(containing offset: Int64) -> Int {
        var low = 0
        var high = segments.count - 1
        var found = 0
        while low <= high {
            let mid = (low + high) / 2
            if segments[mid].baseOffset <= offset {
                found = mid
                low = mid + 1
            } else {
                high = mid - 1
            }
        }
        return found
    }

    // MARK: offsets by time

    /// The earliest record with a timestamp at least `timestamp`: its offset, its timestamp and
    /// the leader epoch its offset falls in (Kafka's fetchOffsetByTimestamp); nil when every
    /// record is older. Precise to the record, compressed batches included (they are inflated).
    public func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64, leaderEpoch: Int32?)?
    {
        try lock.withLock {
            for segment in segments where segment.maxTimestamp >= timestamp {
                guard var (position, header) = try segment.firstBatch(withTimestampAtLeast: timestamp) else { continue }
                while true {
                    if header.maxTimestamp >= timestamp && header.lastOffset >= _logStartOffset {
                        let bytes = try segment.log.read(at: position, count: header.totalBytes)
                        for record in try RecordBatches.records(bytes, batchAt: bytes.readerIndex, header: header) {
                            // LogAppendTime: every record has the batch's time.
                            let time = header.isLogAppendTime ? header.maxTimestamp : record.timestamp
                            if time >= timestamp && record.offset >= _logStartOffset {
                                return (record.offset, time, epochCache.epoch(forOffset: record.offset))
                            }
                        }
                        // No record of its own qualifies (an empty batch the cleaner left, which
                        // keeps the max timestamp of what it replaced): look further.
                    }
                    position += Int64(header.totalBytes)
                    guard position < segment.size, let next = try segment.readHeader(at: position) else { break }
                    header = next
                }
            }
            return nil
        }
    }

    /// The record with the largest timestamp (ListOffsets -3, KIP-734): its offset and timestamp
    /// and its batch's leader epoch, found as Kafka does since KAFKA-16310: the segment with the
    /// largest timestamp names its batch, and the batch's first record with that timestamp is
    /// the one (a compressed batch is inflated to find it). Nil for an empty log.
    public func maxTimestampAndOffset() throws -> (offset: Int64, timestamp: Int64, leaderEpoch: Int32?)? {
        try lock.withLock {
            var best: LogSegment?
            for segment in segments where segment.maxTimestamp >= 0 {
                if best == nil || segment.maxTimestamp > best!.maxTimestamp { best = segment }
            }
            guard let segment = best, let (position, header) = try segment.position(of: segment.offsetOfMaxTimestamp)
            else { return nil }
            let epoch = header.partitionLeaderEpoch >= 0 ? header.partitionLeaderEpoch : nil
            guard header.maxTimestamp == segment.maxTimestamp, !header.isLogAppendTime else {
                return (max(header.baseOffset, _logStartOffset), segment.maxTimestamp, epoch)
            }
            let bytes = try segment.log.read(at: position, count: header.totalBytes)
            let records = try RecordBatches.records(bytes, batchAt: bytes.readerIndex, header: header)
            let offset = records.first { $0.timestamp == header.maxTimestamp }?.offset ?? header.lastOffset
            return (offset, header.maxTimestamp, epoch)
        }
    }

    /// The leader epoch whose range holds `offset` (Kafka's epochForOffset), if the log knows one.
    public func leaderEpoch(forOffset offset: Int64) -> Int32? {
        lock.withLock { epochCache.epoch(forOffset: offset) }
    }

    // MARK: retention and deletion

    /// Advances the log start offset (DeleteRecords). Segments wholly below it go at the next
    /// retention pass. Returns the new log start offset.
    public func advanceLogStartOffset(to offset: Int64) throws -> Int64 {
        try appendLock.withLock {
            try lock.withLock {
                let end = segments.last!.nextOffset
                guard offset <= end else {
                    throw LogError.offsetOutOfRange(requested: offset, logStart: _logStartOffset, logEnd: end)
                }
                if offset > _logStartOffset { _logStartOffset = offset }
                try deleteSegmentsBelowStartLocked()
                return _logStartOffset
            }
        }
    }

    private func deleteSegmentsBelowStartLocked() throws {
        var deleted = false
        while segments.count > 1, segments[1].baseOffset <= _logStartOffset {
            try segments.removeFirst().delete()
            deleted = true
        }
        if deleted { try removeSnapshotsBelowFirstSegmentLocked() }
        epochCache.advanceStart(to: _logStartOffset)
    }

    /// A producer snapshot goes with the segment it was taken at (Kafka's
    /// `deleteProducerSnapshots` for deleted segments): none is left below the first segment.
    private func removeSnapshotsBelowFirstSegmentLocked() throws {
        let first = segments.first!.baseOffset
        for offset in try snapshotOffsetsLocked() where offset < first { removeSnapshotLocked(offset) }
    }

    /// Applies `retention.ms` and `retention.bytes`: deletes whole segments (never the only one;
    /// the active segment is rolled first when it has expired) and advances the log start offset.
    /// Returns how many segments were deleted.
    @discardableResult
    public func enforceRetention(nowMs: Int64) throws -> Int {
        try appendLock.withLock {
            try lock.withLock {
                guard _config.deleteEnabled else { return 0 }
                var deleted = 0
                if _config.retentionMs >= 0 {
                    // Expire the active segment too: roll it so it can be deleted like the others.
                    if let active = segments.last, !active.isEmpty, active.maxTimestamp >= 0,
                        nowMs - active.maxTimestamp > _config.retentionMs
                    {
                        try rollLocked(nextBase: active.nextOffset, nowMs: nowMs)
                    }
                    while segments.count > 1, let first = segments.first,
                        !first.isEmpty || first.nextOffset <= segments[1].baseOffset,
                        first.maxTimestamp < 0 ? first.isEmpty : nowMs - first.maxTimestamp > _config.retentionMs
                    {
                        try deleteOldestLocked()
                        deleted += 1
                    }
                }
                if _config.retentionBytes >= 0 {
                    var total = segments.reduce(0) { $0 + $1.size }
                    while segments.count > 1, total - segments[0].size >= _config.retentionBytes {
                        total -= segments[0].size
                        try deleteOldestLocked()
                        deleted += 1
                    }
                }
                return deleted
            }
        }
    }

    private func deleteOldestLocked() throws {
        let segment = segments.removeFirst()
        try segment.delete()
        try removeSnapshotsBelowFirstSegmentLocked()
        _logStartOffset = max(_logStartOffset, segments.first!.baseOffset)
        if _recoveryPoint < _logStartOffset { _recoveryPoint = _logStartOffset }
    }

    /// Drops every record at or after `offset` (follower truncation; never below the start).
    public func truncate(to offset: Int64) throws {
        try changingLog {
            try lock.withLock {
                if closed { throw LogError.closed }
                let target = max(offset, _logStartOffset)
                if target >= segments.last!.nextOffset {
                    // Nothing to cut from the log, but the epoch cache may hold an entry at its end
                    // with no batch behind it (this replica became leader and appended nothing
                    // before another was elected): dropped, or a follower would keep sending that
                    // epoch and meet the same divergence forever (Kafka's truncateTo does the same).
                    let before = epochCache.entries.count
                    epochCache.truncate(fromOffset: segments.last!.nextOffset)
                    if epochCache.entries.count != before { try? epochCache.write(directory: directory, disk: disk) }
                    return
                }
                truncations &+= 1
                var removedSegments = false
                while segments.count > 1, segments.last!.baseOffset >= target {
                    try segments.removeLast().delete()
                    removedSegments = true
                }
                let removedBytes = try segments.last!.truncate(to: target)
                if segments.count == 1 && segments[0].isEmpty && segments[0].baseOffset != target
                    && target >= _logStartOffset
                {
                    try segments.removeLast().delete()
                    segments.append(
                        try LogSegment(
                            directory: directory, baseOffset: target, disk: disk, nowMs: lastFlushMs, create: true,
                            rebuild: false))
                    removedSegments = true
                }
                // The truncation is made durable before anything that follows it is (the epoch
                // checkpoint below, the leader's records fetched next): otherwise a power loss could
                // bring the dropped tail back under a newer epoch's entry. Truncations are rare.
                if removedBytes > 0 || removedSegments {
                    try segments.last!.sync(indexes: false)
                    try disk.syncDirectory(directory)
                }
                _recoveryPoint = min(_recoveryPoint, segments.last!.nextOffset)
                if let checkpoint = _cleanerCheckpoint, checkpoint > segments.last!.nextOffset {
                    _cleanerCheckpoint = segments.last!.nextOffset
                }
                try rebuildProducerStateLocked()
                epochCache.truncate(fromOffset: segments.last!.nextOffset)
                try? epochCache.write(directory: directory, disk: disk)
            }
        }
    }

    /// Empties the log and starts it at `offset` (a follower whose leader's log starts later).
    public func truncateFullyAndStart(at offset: Int64, nowMs: Int64) throws {
        try changingLog {
            try lock.withLock {
                if closed { throw LogError.closed }
                truncations &+= 1
                for segment in segments { try segment.delete() }
                segments = [
                    try LogSegment(
                        directory: directory, baseOffset: offset, disk: disk, nowMs: nowMs, create: true, rebuild: false
                    )
                ]
                _logStartOffset = offset
                _recoveryPoint = offset
                _cleanerCheckpoint = nil
                try disk.syncDirectory(directory)
                epochCache.clear()
                producerState = ProducerStateTable()
                for offset in try snapshotOffsetsLocked() { removeSnapshotLocked(offset) }
                try? epochCache.write(directory: directory, disk: disk)
            }
        }
    }

    // MARK: flush

    /// Whether the flush policy (`flush.messages`, `flush.ms`) asks for a sync now.
    private func policyFlushDueLocked(nowMs: Int64) -> Bool {
        guard segments.last!.nextOffset > _recoveryPoint else { return false }
        return unflushedMessages >= _config.flushMessages
            || (_config.flushMs != Int64.max && nowMs - lastFlushMs >= _config.flushMs)
    }

    /// Makes everything appended so far durable and advances the recovery point. The sync runs
    /// outside the lock, so appends continue meanwhile.
    public func flush(nowMs: Int64) throws {
        try sync(includingActive: true, nowMs: nowMs)
    }

    /// Runs the sync that is due, if any: the whole log when the flush policy asks for it, else
    /// the rolled segments past the recovery point. Kafka flushes a log up to a new segment's base
    /// offset when it rolls, whatever the flush policy: the recovery point then trails the log end
    /// by at most the active segment, which is all that recovery re-reads after a crash, and
    /// every rolled segment is on disk. Returns whether it synced.
    @discardableResult
    public func flushIfDue(nowMs: Int64) throws -> Bool {
        let whole: Bool? = lock.withLock {
            if closed { return nil }
            if policyFlushDueLocked(nowMs: nowMs) { return true }
            return _recoveryPoint < segments.last!.baseOffset ? false : nil
        }
        guard let whole else { return false }
        try sync(includingActive: whole, nowMs: nowMs)
        return true
    }

    /// Syncs the segments past the recovery point (the active one only if `includingActive`, and
    /// then always) and moves the recovery point to what they hold. A segment that retention, a
    /// truncation, the cleaner or a deletion removed while it synced is skipped (its error is not
    /// a lost write), and a truncation meanwhile keeps the recovery point where it put it.
    private func sync(includingActive: Bool, nowMs: Int64) throws {
        let (toSync, active, end, syncDirectory, generation): ([LogSegment], LogSegment, Int64, Bool, UInt64) =
            lock.withLock {
                let active = segments.last!
                let end = includingActive ? active.nextOffset : active.baseOffset
                let pending = segments.filter { $0 === active ? includingActive : $0.nextOffset > _recoveryPoint }
                if includingActive {
                    unflushedMessages = 0
                    lastFlushMs = nowMs
                }
                let created = segmentsCreatedSinceFlush
                segmentsCreatedSinceFlush = false
                return (pending, active, end, created, truncations)
            }
        // Rolled segments are final: sync their indexes too, and close them (they open again
        // only if a truncation rewrites them). The active one syncs its log only.
        for segment in toSync {
            do {
                try segment.sync(indexes: segment !== active)
                if segment !== active { segment.releaseIndexFiles() }
            } catch  where lock.withLock({ closed || !segments.contains { $0 === segment } }) {
                continue
            }
        }
        if syncDirectory {
            do {
                try disk.syncDirectory(directory)
            } catch  where lock.withLock({ closed }) {}  // deleted meanwhile, directory and all
        }
        lock.withLock {
            if end > _recoveryPoint, truncations == generation { _recoveryPoint = end }
        }
    }

    /// Syncs (indexes included) and closes every file.
    public func close() throws {
        try appendLock.withLock {
            let active = lock.withLock {
                if !closed { takeProducerSnapshotLocked(at: segments.last!.nextOffset, durable: true) }
                for segment in segments { segment.restoreIndexFiles() }
                try? epochCache.write(directory: directory, disk: disk, durable: true)
                return segments.last!
            }
            try flush(nowMs: lastFlushMs)
            try active.sync(indexes: true)
            lock.withLock {
                closed = true
                for segment in segments { segment.close() }
            }
        }
    }

    /// Closes and removes the partition directory.
    public func delete() throws {
        try appendLock.withLock {
            try lock.withLock {
                closed = true
                // The segments stay listed (closed) so a request still holding the log gets an
                // error rather than a crash.
                for segment in segments { segment.close() }
                try disk.removeTree(directory)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
