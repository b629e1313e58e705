import NIOCore
import RunnelCodecs
import RunnelCore
import RunnelWire

/// Broker-level settings of the log cleaner (`log.cleaner.*`).
public struct LogCleanerSettings: Sendable, Equatable {
    /// `log.cleaner.enable`: whether compacted logs are cleaned at all.
    public var enabled = true
    /// `log.cleaner.backoff.ms`: pause between cleaning passes over the compacted logs.
    public var backoffMs: Int64 = 15_000
    /// `log.cleaner.dedupe.buffer.size`: memory budget of the key-to-offset map of one cleaning;
    /// a dirty section with more keys is cleaned over several passes, a segment at a time.
    public var dedupeBufferBytes = 134_217_728
    /// `log.cleaner.io.buffer.size`: bytes read (and buffered for writing) at a time.
    public var ioBufferBytes = 524_288

    public init() {}
}

/// What one cleaning of a log did, for the log line and tests.
public struct CleanerStats: Sendable, Equatable {
    /// Where the dirty section began (the previous cleaner checkpoint, or the log start).
    public var firstDirtyOffset: Int64 = 0
    /// Where this cleaning stopped: the new cleaner checkpoint.
    public var endOffset: Int64 = 0
    /// Segments in the cleaned range, and how many of them were rewritten.
    public var segmentsCleaned = 0
    public var segmentsRewritten = 0
    /// Bytes of the cleaned range before and after.
    public var bytesBefore: Int64 = 0
    public var bytesAfter: Int64 = 0
    /// Keys in the offset map of the dirty section.
    public var keysMapped = 0
    /// Records of cleanable batches looked at, and how many of them went (superseded, keyless,
    /// or tombstones past their delete horizon).
    public var recordsRead = 0
    public var recordsRemoved = 0
    /// Tombstones dropped because their delete horizon had passed.
    public var tombstonesRemoved = 0
    /// Records of aborted transactions dropped (counted in `recordsRemoved` too).
    public var abortedRecordsRemoved = 0
    /// Transaction markers dropped once their transaction left no data and their horizon passed.
    public var markersRemoved = 0
    /// Segments whose rewrite was thrown away because the log changed meanwhile (truncation,
    /// retention, deletion).
    public var swapsAbandoned = 0

    public init() {}
}

/// The decisions of Kafka's log cleaner, as pure functions over segment summaries and batch bytes;
/// `PartitionLog.clean` does the I/O.
///
/// A cleaning works on the segments below the first uncleanable offset: the smallest of the
/// active segment's base offset, the high watermark the caller passes, and the base of the first
/// dirty segment holding a record younger than `min.compaction.lag.ms`. It maps every key of the
/// dirty section (from the cleaner checkpoint on) to its latest offset, then rewrites each
/// cleanable segment keeping a record only if no later record has its key. Offsets never change:
/// rewritten batches keep their base offset, offset span, leader epoch, producer fields and
/// attributes. Batches that lose every record become empty batches (record count 0): runs of
/// them are merged into one "filler" per leader epoch, and an empty copy with the original
/// fields is kept for the last batch of each producer in the run and for the segment's last
/// batch, so a segment's offsets stay contiguous and its next offset unchanged (recovery treats
/// a jump inside a segment as corruption, and a segment ending short of the next as a lost tail).
///
/// Tombstones follow KIP-534: the first cleaning that keeps a tombstone marks its batch with the
/// delete-horizon flag (attributes bit 6) and stores now + `delete.retention.ms` in its base
/// timestamp, re-encoding the record timestamp deltas so record timestamps do not change; a later
/// cleaning past the horizon drops the tombstone.
///
/// A compressed batch is inflated, filtered the same way, and written back in its codec (Kafka's
/// filterTo keeps the batch's compression type, base and last offset).
///
/// Transactions follow Kafka's CleanedTransactionMetadata: the cleaned range lies below the last
/// stable offset, so every transaction in it has ended. Records of aborted transactions (the
/// segments' `.txnindex` entries) go and never enter the map; a committed transaction's records
/// are cleaned like any others. A transaction marker stays while data of its transaction remains
/// (or was seen in this pass); once none does, it gets a delete horizon as a tombstone does, and
/// goes at the first cleaning after it.
public enum LogCleaner {
    /// Kafka's file name for the cleaner positions of a log dir.
    public static let checkpointFile = "cleaner-offset-checkpoint"

    /// The facts about a segment a cleaning plan needs.
    public struct SegmentSummary: Sendable, Equatable {
        public var baseOffset: Int64
        public var nextOffset: Int64
        public var size: Int64
        public var maxTimestamp: Int64
        /// The largest timestamp of the segment's first batch (Kafka's first batch timestamp), if known.
        public var firstBatchTimestamp: Int64?

        public init(
            baseOffset: Int64, nextOffset: Int64, size: Int64, maxTimestamp: Int64, firstBatchTimestamp: Int64? = nil
        ) {
            self.baseOffset = baseOffset
            self.nextOffset = nextOffset
            self.size = size
            self.maxTimestamp = maxTimestamp
            self.firstBatchTimestamp = firstBatchTimestamp
        }
    }

    /// Which segments a cleaning may rewrite and how dirty they are.
    public struct Plan: Sendable, Equatable {
        public var firstDirtyOffset: Int64
        public var firstUncleanableOffset: Int64
        /// Segments `0 ..< cleanableSegmentCount` lie wholly below the first uncleanable offset.
        public var cleanableSegmentCount: Int
        /// Index of the first segment holding dirty offsets.
        public var firstDirtySegment: Int
        public var dirtyBytes: Int64
        public var cleanableBytes: Int64
        /// A dirty record is older than `max.compaction.lag.ms` (KIP-354's maxCompactionDelay > 0):
        /// the log is cleaned now, whatever its dirty ratio.
        public var pastMaxCompactionLag = false

        public var dirtyRatio: Double { cleanableBytes == 0 ? 0 : Double(dirtyBytes) / Double(cleanableBytes) }

        /// Whether the log is dirty enough for `min.cleanable.dirty.ratio`, or must be cleaned for
        /// `max.compaction.lag.ms`.
        public func isDue(minCleanableDirtyRatio: Double) -> Bool {
            dirtyBytes > 0 && (pastMaxCompactionLag || dirtyRatio >= minCleanableDirtyRatio)
        }
    }

    /// The first dirty offset from the checkpoint: the log start when there is none or it lies
    /// outside the log (truncated, or the log was deleted and made again), as Kafka resets it.
    public static func firstDirtyOffset(checkpoint: Int64?, logStartOffset: Int64, logEndOffset: Int64) -> Int64 {
        guard let checkpoint, checkpoint >= logStartOffset, checkpoint <= logEndOffset else { return logStartOffset }
        return checkpoint
    }

    /// Plans a cleaning of `segments` (oldest first, the last one active); nil when no segment
    /// lies wholly below the first uncleanable offset or nothing there is dirty.
    public static func plan(
        segments: [SegmentSummary], firstDirtyOffset: Int64, uncleanableFrom: Int64, nowMs: Int64,
        minCompactionLagMs: Int64, maxCompactionLagMs: Int64 = .max
    ) -> Plan? {
        guard segments.count > 1 else { return nil }
        let inactive = segments.dropLast()
        var uncleanable = min(segments.last!.baseOffset, uncleanableFrom)
        if minCompactionLagMs > 0 {
            // The first dirty segment holding a record younger than the lag, and all after it.
            let cutoff = nowMs &- minCompactionLagMs
            if let young = inactive.first(where: { $0.nextOffset > firstDirtyOffset && $0.maxTimestamp > cutoff }) {
                uncleanable = min(uncleanable, young.baseOffset)
            }
        }
        var count = 0
        while count < inactive.count && inactive[count].nextOffset <= uncleanable { count += 1 }
        guard count > 0 else { return nil }
        let cleanable = inactive.prefix(count)
        guard let firstDirty = cleanable.firstIndex(where: { $0.nextOffset > firstDirtyOffset }) else { return nil }
        let dirtyBytes = cleanable[firstDirty...].reduce(Int64(0)) { $0 + $1.size }
        let cleanableBytes = cleanable.reduce(Int64(0)) { $0 + $1.size }
        var plan = Plan(
            firstDirtyOffset: firstDirtyOffset, firstUncleanableOffset: uncleanable, cleanableSegmentCount: count,
            firstDirtySegment: firstDirty, dirtyBytes: dirtyBytes, cleanableBytes: cleanableBytes)
        // Kafka's maxCompactionDelay: the earliest first-batch timestamp of the dirty inactive
        // segments, against now - max.compaction.lag.ms.
        if maxCompactionLagMs < .max {
            let earliest = inactive.filter { $0.nextOffset > firstDirtyOffset }.compactMap(\.firstBatchTimestamp)
                .filter { $0 > 0 }.min()
            if let earliest, earliest < nowMs &- max(maxCompactionLagMs, 0) { plan.pastMaxCompactionLag = true }
        }
        return plan
    }

    /// Kafka's CleanedTransactionMetadata over one pass through the cleaned range, batch by batch
    /// in log order: which transactional batches belong to an aborted transaction, and whether a
    /// transaction's marker has outlived its data.
    struct TransactionTracker {
        /// The aborted transactions overlapping the range, by first offset; `next` not reached yet.
        private let aborted: [AbortedTransaction]
        private var next = 0
        /// Aborted transactions under way at this point of the pass: producer -> last offset of
        /// one of its batches seen in this pass (nil: none seen).
        private var ongoingAborted: [Int64: Int64?] = [:]
        /// Producers with a committed transaction under way of which this pass saw data.
        private var ongoingCommitted: Set<Int64> = []

        init(aborted: [AbortedTransaction]) { self.aborted = aborted.sorted { $0.firstOffset < $1.firstOffset } }

        private mutating func reach(_ offset: Int64) {
            while next < aborted.count, aborted[next].firstOffset <= offset {
                ongoingAborted[aborted[next].producerId] = .some(nil)
                next += 1
            }
        }

        /// For a data batch: whether its records belong to an aborted transaction. For a marker:
        /// whether its transaction left no data behind in this pass, so the marker may go (once
        /// its delete horizon passed).
        mutating func canDiscard(_ batch: ByteBuffer, header: RecordBatchHeader) -> Bool {
            reach(header.lastOffset)
            if header.isControl {
                guard let marker = EndTransactionMarker.read(batch: batch, header: header) else {
                    return header.recordCount == 0  // already emptied; another control type stays
                }
                if marker.committed { return ongoingCommitted.remove(header.producerId) == nil }
                // Kept while the pass saw the transaction's data: that goes only in this pass.
                if case .some(.some) = ongoingAborted.removeValue(forKey: header.producerId) { return false }
                return true
            }
            guard header.isTransactional else { return false }
            if ongoingAborted[header.producerId] != nil {
                ongoingAborted[header.producerId] = .some(header.lastOffset)
                return true
            }
            ongoingCommitted.insert(header.producerId)
            return false
        }
    }

    /// The records of a cleanable batch as the cleaner looks at them: where each lies when the
    /// batch is uncompressed (kept byte for byte), or decoded from its inflated payload.
    enum CleanerRecords {
        case inPlace([RecordView])
        case decoded([Record])

        init(_ batch: ByteBuffer, header: RecordBatchHeader) throws {
            if header.compression == CompressionCodec.none {
                self = .inPlace(try RecordBatches.recordViews(batch, batchAt: batch.readerIndex, header: header))
            } else {
                self = .decoded(try RecordBatches.records(batch, batchAt: batch.readerIndex, header: header))
            }
        }

        /// (key bytes or nil, offset, is a tombstone) of each record, in order.
        func keys(in batch: ByteBuffer, header: RecordBatchHeader) -> [(key: [UInt8]?, offset: Int64, tombstone: Bool)]
        {
            switch self {
            case .inPlace(let views):
                return views.map {
                    (
                        $0.hasKey ? batch.getBytes(at: $0.keyIndex, length: $0.keyLength)! : nil,
                        header.baseOffset + Int64($0.offsetDelta), $0.valueIsNull
                    )
                }
            case .decoded(let records):
                return records.map { ($0.key.map { Array($0.readableBytesView) }, $0.offset, $0.value == nil) }
            }
        }
    }

    // MARK: the offset map

    /// Latest offset of every key of the dirty section, with a memory estimate to bound it.
    public struct OffsetMap: Sendable {
        /// Bookkeeping per entry beyond the key's bytes (array header, dictionary slot, offset).
        static let entryOverheadBytes = 64

        private(set) var offsets: [[UInt8]: Int64] = [:]
        /// Estimated memory held.
        private(set) var estimatedBytes = 0

        public init() {}

        public var count: Int { offsets.count }

        /// Notes `offset` for `key` (offsets arrive in increasing order: the last one wins).
        mutating func put(_ key: [UInt8], _ offset: Int64) {
            if offsets.updateValue(offset, forKey: key) == nil {
                estimatedBytes += key.count + Self.entryOverheadBytes
            }
        }

        /// The latest offset of `key` in the dirty section, if it appears there.
        public subscript(key: [UInt8]) -> Int64? { offsets[key] }

        /// Adds the keys of the batch at the reader index of `batch` (uncleanable batches add nothing).
        mutating func add(
            batch: ByteBuffer, header: RecordBatchHeader, from firstOffset: Int64,
            transactions: inout TransactionTracker
        ) throws -> Int {
            let aborted = transactions.canDiscard(batch, header: header)
            guard !aborted, !header.isControl, header.recordCount > 0 else { return 0 }
            var added = 0
            for record in try CleanerRecords(batch, header: header).keys(in: batch, header: header) {
                guard let key = record.key, record.offset >= firstOffset else { continue }
                put(key, record.offset)
                added += 1
            }
            return added
        }
    }

    // MARK: batches

    /// What the cleaner does with one batch.
    enum BatchOutcome: Equatable {
        /// Keep the batch as it is.
        case keep
        /// Replace it with these bytes (same offsets, fewer records or a delete horizon set).
        case rewrite(ByteBuffer)
        /// Every record goes; the segment writer keeps the offsets with an empty batch.
        case remove
    }

    /// Decides about the batch at the reader index of `batch`; `transactions` follows the pass.
    static func filter(
        batch: ByteBuffer, header: RecordBatchHeader, map: OffsetMap, nowMs: Int64, deleteRetentionMs: Int64,
        transactions: inout TransactionTracker, stats: inout CleanerStats
    ) throws -> BatchOutcome {
        let discard = transactions.canDiscard(batch, header: header)
        if header.isControl {
            guard discard, header.recordCount > 0 else { return .keep }
            guard let horizon = header.deleteHorizonMs else {
                // A marker whose transaction left nothing: it waits out delete.retention.ms, as
                // a tombstone does, so a consumer in the middle of the log still sees it.
                let records = try CleanerRecords(batch, header: header)
                return try rebuild(
                    batch, header: header, records: records, retained: Array(0..<Int(header.recordCount)),
                    setHorizon: true, nowMs: nowMs, deleteRetentionMs: deleteRetentionMs)
            }
            guard nowMs >= horizon else { return .keep }
            stats.markersRemoved += 1
            return .remove
        }
        // Empty batches (fillers, producer markers) join the run of removed batches around
        // them, so fillers from several cleanings merge; the writer keeps what must stay.
        guard header.recordCount > 0 else { return .remove }
        if discard {
            stats.recordsRead += Int(header.recordCount)
            stats.recordsRemoved += Int(header.recordCount)
            stats.abortedRecordsRemoved += Int(header.recordCount)
            return .remove
        }
        let records = try CleanerRecords(batch, header: header)
        let keys = records.keys(in: batch, header: header)
        stats.recordsRead += keys.count
        var retained: [Int] = []
        retained.reserveCapacity(keys.count)
        var keptTombstone = false
        for (i, record) in keys.enumerated() {
            guard let key = record.key else { continue }  // a compacted log has no use for keyless records (Kafka drops them too)
            if let latest = map[key], latest > record.offset { continue }
            if record.tombstone {
                if let horizon = header.deleteHorizonMs, nowMs >= horizon {
                    stats.tombstonesRemoved += 1
                    continue
                }
                keptTombstone = true
            }
            retained.append(i)
        }
        stats.recordsRemoved += keys.count - retained.count
        let setHorizon = keptTombstone && header.deleteHorizonMs == nil
        if retained.count == keys.count && !setHorizon { return .keep }
        if retained.isEmpty { return .remove }
        return try rebuild(
            batch, header: header, records: records, retained: retained, setHorizon: setHorizon, nowMs: nowMs,
            deleteRetentionMs: deleteRetentionMs)
    }

    /// The batch with only the records at `retained`, same offsets, fields and codec; with
    /// `setHorizon`, marked with the delete horizon now + `deleteRetentionMs` in its base
    /// timestamp (KIP-534), record timestamps unchanged.
    private static func rebuild(
        _ batch: ByteBuffer, header: RecordBatchHeader, records: CleanerRecords, retained: [Int], setHorizon: Bool,
        nowMs: Int64, deleteRetentionMs: Int64
    ) throws -> BatchOutcome {
        var out = header
        if setHorizon {
            out.attributes |= RecordBatchHeader.deleteHorizonFlag
            let (horizon, overflow) = nowMs.addingReportingOverflow(max(0, deleteRetentionMs))
            out.baseTimestamp = overflow ? Int64.max : horizon
        }
        switch records {
        case .inPlace(let views):
            let kept = retained.map { views[$0] }
            if !header.isLogAppendTime {
                out.maxTimestamp = kept.map { header.baseTimestamp &+ $0.timestampDelta }.max()!
            }
            var bytes = ByteBufferAllocator().buffer(capacity: kept.reduce(0) { $0 + $1.end - $1.start + 10 })
            for record in kept {
                if out.baseTimestamp == header.baseTimestamp {
                    var slice = batch.getSlice(at: record.start, length: record.end - record.start)!
                    bytes.writeBuffer(&slice)
                } else {
                    // Record timestamps are base + delta: a new base (the horizon) needs new deltas.
                    let timestamp = header.baseTimestamp &+ record.timestampDelta
                    RecordBatches.writeRecord(
                        record, from: batch, timestampDelta: timestamp &- out.baseTimestamp, to: &bytes)
                }
            }
            return .rewrite(RecordBatches.assemble(out, records: bytes, recordCount: Int32(kept.count)))
        case .decoded(let all):
            let kept = retained.map { all[$0] }
            if !header.isLogAppendTime { out.maxTimestamp = kept.map(\.timestamp).max()! }
            let plain = RecordBatches.encodeRecords(
                kept, baseOffset: header.baseOffset, baseTimestamp: out.baseTimestamp)
            // Back in the batch's own codec, at its default level.
            let packed = try Codecs.compress(header.compression!.codec!, plain)
            return .rewrite(RecordBatches.assemble(out, records: packed, recordCount: Int32(kept.count)))
        }
    }

    // MARK: segments

    /// Writes one segment's cleaned batches in order: merges runs of removed batches into empty
    /// batches that keep every offset, builds the indexes, and knows whether anything changed.
    struct SegmentWriter {
        private(set) var index: SegmentIndexBuilder
        /// Whether the output so far equals the input so far, byte for byte.
        private(set) var identical = true
        /// Removed batches waiting to be merged, with the bytes of the empty ones (to tell
        /// whether the merge rewrites them identically).
        private var run: [(header: RecordBatchHeader, emptyBytes: ByteBuffer?)] = []

        init(baseOffset: Int64, indexIntervalBytes: Int) {
            index = SegmentIndexBuilder(baseOffset: baseOffset, indexIntervalBytes: indexIntervalBytes)
        }

        /// Takes the next input batch and its outcome; returns the bytes to write, in order.
        mutating func add(_ outcome: BatchOutcome, original: ByteBuffer, header: RecordBatchHeader) -> [ByteBuffer] {
            switch outcome {
            case .keep:
                var out = flushRun(lastIsSegmentEnd: false)
                index.add(header)
                out.append(original)
                return out
            case .rewrite(let bytes):
                var out = flushRun(lastIsSegmentEnd: false)
                identical = false
                index.add(RecordBatchHeader(bytes, at: bytes.readerIndex)!)
                out.append(bytes)
                return out
            case .remove:
                run.append((header, header.recordCount == 0 ? original : nil))
                return []
            }
        }

        /// The bytes still pending at the end of the segment.
        mutating func finish() -> [ByteBuffer] { flushRun(lastIsSegmentEnd: true) }

        private mutating func flushRun(lastIsSegmentEnd: Bool) -> [ByteBuffer] {
            guard !run.isEmpty else { return [] }
            defer { run = [] }
            var out: [ByteBuffer] = []
            var filler: (first: RecordBatchHeader, last: RecordBatchHeader, maxTimestamp: Int64)? = nil
            func emitFiller() {
                guard let f = filler else { return }
                out.append(
                    RecordBatches.emptyBatch(
                        baseOffset: f.first.baseOffset, lastOffset: f.last.lastOffset,
                        partitionLeaderEpoch: f.first.partitionLeaderEpoch,
                        attributes: f.first.attributes & 0x08, maxTimestamp: f.maxTimestamp))
                filler = nil
            }
            for (i, entry) in run.enumerated() {
                let h = entry.header
                // Keep producer state rebuildable: the last batch of each producer in the run
                // stays as an empty copy with its sequence fields; so does the segment's last batch.
                let lastOfProducer =
                    h.producerId >= 0 && !run[(i + 1)...].contains { $0.header.producerId == h.producerId }
                let segmentEnd = lastIsSegmentEnd && i == run.count - 1
                if lastOfProducer || segmentEnd {
                    emitFiller()
                    out.append(
                        RecordBatches.emptyBatch(
                            baseOffset: h.baseOffset, lastOffset: h.lastOffset,
                            partitionLeaderEpoch: h.partitionLeaderEpoch,
                            attributes: h.attributes & 0x08, maxTimestamp: h.maxTimestamp,
                            producerId: h.producerId, producerEpoch: h.producerEpoch, baseSequence: h.baseSequence))
                } else if var f = filler, f.first.partitionLeaderEpoch == h.partitionLeaderEpoch,
                    h.lastOffset - f.first.baseOffset <= Int64(Int32.max)
                {
                    f.last = h
                    f.maxTimestamp = max(f.maxTimestamp, h.maxTimestamp)
                    filler = f
                } else {
                    emitFiller()
                    filler = (h, h, h.maxTimestamp)
                }
            }
            emitFiller()
            // Empty batches merged into exactly what they were: nothing changed.
            if identical {
                let originals = run.compactMap(\.emptyBytes)
                identical = originals.count == run.count && originals == out
            }
            for bytes in out { index.add(RecordBatchHeader(bytes, at: bytes.readerIndex)!) }
            return out
        }
    }
}
