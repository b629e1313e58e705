// The log cleaner (cleanup.policy=compact) on the real disk, in a temp dir: after a cleaning
// exactly the latest record per key remains in the cleaned range, every record keeps its offset,
// offsets strictly increase, batches keep their spans (empty batches where records went) so
// segment ends do not move, and the active segment and everything at or above the high watermark
// is untouched. Tombstones survive the first cleaning, which sets their batch's delete horizon
// (KIP-534) without changing record timestamps, and go once delete.retention.ms has passed.
// min.compaction.lag.ms holds young segments back, compressed and transactional batches stay
// whole, the last batch of an idempotent producer keeps its sequence fields. Crashes at every
// step of the swap leave a valid log with nothing lost, and reopening a cleaned log (clean and
// unclean) recovers every segment: the recovery gap rule holds against compaction. A follower
// whose end falls inside an empty batch the leader's cleaner merged keeps copying.
import Foundation
import NIOCore
import RunnelCore
import RunnelWire
import RunnelCodecs
import Testing
@testable import RunnelLog

/// One record to write: a nil value is a tombstone.
struct Entry {
    var key: String?
    var value: String?
}

/// A client batch of `entries` with timestamps from `timestamp`.
func keyedBatch(
    _ entries: [Entry], timestamp: Int64 = 1_000, attributes: Int16 = 0,
    producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1
) -> (ByteBuffer, [BatchInfo]) {
    let records = entries.enumerated().map { i, e in
        Record(
            offset: Int64(i), timestamp: timestamp + Int64(i), key: e.key.map { ByteBuffer(string: $0) },
            value: e.value.map { ByteBuffer(string: $0) })
    }
    let batch = RecordBatches.build(
        records: records, attributes: attributes, producerId: producerId, producerEpoch: producerEpoch,
        baseSequence: baseSequence)
    return (batch, try! RecordBatches.validate(batch, maxBatchBytes: 10_000_000).get())
}

/// What a test wrote: offset -> (key, value).
typealias Written = [Int64: Entry]

@discardableResult
func put(
    _ log: PartitionLog, _ entries: [Entry], into written: inout Written, timestamp: Int64 = 1_000, epoch: Int32 = 0,
    producerId: Int64 = -1, baseSequence: Int32 = -1
) throws -> AppendInfo {
    let (payload, infos) = keyedBatch(
        entries, timestamp: timestamp, producerId: producerId, producerEpoch: producerId >= 0 ? 0 : -1,
        baseSequence: baseSequence)
    let info = try log.appendAsLeader(payload, batches: infos, leaderEpoch: epoch, nowMs: timestamp)
    for (i, e) in entries.enumerated() { written[info.firstOffset + Int64(i)] = e }
    return info
}

/// Every batch of the log, with its bytes.
func allBatches(_ log: PartitionLog) throws -> [(header: RecordBatchHeader, bytes: ByteBuffer)] {
    let bytes = try log.readBytes(from: log.logStartOffset, maxBytes: 100_000_000)
    var out: [(RecordBatchHeader, ByteBuffer)] = []
    var index = bytes.readerIndex
    while let header = RecordBatchHeader(bytes, at: index), header.totalBytes <= bytes.writerIndex - index {
        out.append((header, bytes.getSlice(at: index, length: header.totalBytes)!))
        index += header.totalBytes
    }
    return out
}

func text(_ b: ByteBuffer?) -> String? { b.map { String(buffer: $0) } }

/// Checks what every cleaning must keep true: CRCs, contiguous offsets, records where they were written.
func checkInvariants(_ log: PartitionLog, _ written: Written, sourceLocation: SourceLocation = #_sourceLocation) throws
{
    var next = log.segmentBaseOffsets.first!
    var previousRecord: Int64 = -1
    for (header, bytes) in try allBatches(log) {
        let crc = RecordBatches.crc32c(
            bytes, at: bytes.readerIndex + RecordBatchHeader.crcStart,
            length: header.totalBytes - RecordBatchHeader.crcStart)
        #expect(crc == header.crc, "batch \(header.baseOffset) has a bad CRC", sourceLocation: sourceLocation)
        #expect(
            header.baseOffset == next, "batch \(header.baseOffset) does not continue \(next)",
            sourceLocation: sourceLocation)
        next = header.nextOffset
    }
    for record in try readAll(log) {
        #expect(record.offset > previousRecord, "offsets increase", sourceLocation: sourceLocation)
        previousRecord = record.offset
        let expected = written[record.offset]
        #expect(expected != nil, "record at \(record.offset) was never written", sourceLocation: sourceLocation)
        #expect(
            text(record.key) == expected?.key && text(record.value) == expected?.value,
            "record at \(record.offset) changed", sourceLocation: sourceLocation)
    }
}

func compactConfig(segmentBytes: Int = 700) -> LogConfig {
    var config = LogConfig()
    config.segmentBytes = segmentBytes
    config.compactEnabled = true
    config.deleteEnabled = false
    config.minCleanableDirtyRatio = 0
    config.indexIntervalBytes = 128
    return config
}

func fileBytes(_ path: String) -> Data { FileManager.default.contents(atPath: path) ?? Data() }

@Suite("Log cleaner")
struct LogCleanerTests {
    let disk = PosixDisk()

    @Test(
        "only the latest value per key remains in the cleaned range; offsets, spans, segment ends and the active segment stay"
    )
    func latestValuePerKey() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(), disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<6 {
            for k in 0..<8 { try put(log, [Entry(key: "k\(k)", value: "v\(round)-\(k)")], into: &written) }
            // Some multi-record batches, with keys repeated inside one batch.
            try put(
                log,
                [
                    Entry(key: "k1", value: "m\(round)a"), Entry(key: "k2", value: "m\(round)b"),
                    Entry(key: "k1", value: "m\(round)c"),
                ],
                into: &written)
        }
        #expect(log.segmentCount > 4)
        let bases = log.segmentBaseOffsets
        let ends = log.segmentNextOffsets
        let activePath = dir + "/" + LogSegment.fileName(bases.last!, ".log")
        let activeBefore = fileBytes(activePath)
        let sizeBefore = log.sizeInBytes

        let stats = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 10_000))
        #expect(stats.endOffset == bases.last!, "everything below the active segment is cleaned")
        #expect(stats.segmentsRewritten > 0 && stats.recordsRemoved > 0)
        #expect(log.sizeInBytes < sizeBefore)
        #expect(stats.bytesAfter < stats.bytesBefore)
        #expect(log.segmentBaseOffsets == bases && log.segmentNextOffsets == ends, "segments keep their offsets")
        #expect(fileBytes(activePath) == activeBefore, "the active segment is untouched")
        #expect(log.cleanerCheckpoint == stats.endOffset)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.hasSuffix(".cleaned") })
        try checkInvariants(log, written)

        // In the cleaned range: exactly the latest record of each key written there.
        let cleanedEnd = stats.endOffset
        var latest: [String: Int64] = [:]
        for (offset, e) in written where offset < cleanedEnd { latest[e.key!] = max(latest[e.key!] ?? -1, offset) }
        let remaining = try readAll(log).filter { $0.offset < cleanedEnd }
        #expect(remaining.map(\.offset) == latest.values.sorted())
        // Above it, everything is still there.
        let above = try readAll(log).filter { $0.offset >= cleanedEnd }.map(\.offset)
        #expect(above == written.keys.filter { $0 >= cleanedEnd }.sorted())

        // Reads from any offset, even one of a removed record, return batches from there.
        for offset in stride(from: Int64(0), to: cleanedEnd, by: 3) {
            let info = try log.read(from: offset, maxBytes: 1, maxOffset: .max, minOneBatch: true)
            #expect(info.nextOffset > offset)
            for chunk in info.records.chunks { if case .region(let r) = chunk { try r.fileHandle.close() } }
        }

        // A second cleaning with nothing new to do is not due.
        #expect(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 10_000) == nil)
    }

    @Test("removed batches merge into empty batches per leader epoch; a segment's last batch keeps its own span")
    func emptyBatches() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        var written = Written()
        for i in 0..<10 { try put(log, [Entry(key: "a", value: "a\(i)")], into: &written, epoch: i < 5 ? 1 : 2) }
        try put(log, [Entry(key: "b", value: "b0")], into: &written, epoch: 2)
        try put(log, [Entry(key: "a", value: "last")], into: &written, epoch: 2)  // 11: supersedes 0 ... 9
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "z", value: "active")], into: &written, epoch: 2)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        let batches = try allBatches(log).map(\.header)
        // [0-4 filler, epoch 1] [5-9 filler, epoch 2] [10 b0] [11 last] | [12 active]
        #expect(batches.map(\.baseOffset) == [0, 5, 10, 11, 12])
        #expect(batches.map(\.lastOffset) == [4, 9, 10, 11, 12])
        #expect(batches.map(\.recordCount) == [0, 0, 1, 1, 1])
        #expect(batches.map(\.partitionLeaderEpoch) == [1, 2, 2, 2, 2])
        try checkInvariants(log, written)
        // The leader-epoch cache rebuilt from the headers alone matches.
        try log.close()
        try disk.remove(dir + "/" + LeaderEpochCache.fileName)
        let reopened = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        #expect(reopened.endOffset(forEpoch: 1) == (1, 5))

        // The segment's last batch, when removed, stays as an empty batch with its own offsets.
        let dir2 = tempDir()
        let log2 = try PartitionLog(
            topicPartition: TopicPartition("c", 1), directory: dir2, config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        var written2 = Written()
        for i in 0..<4 { try put(log2, [Entry(key: "a", value: "a\(i)")], into: &written2) }
        try log2.roll(nowMs: 0)
        try put(log2, [Entry(key: "a", value: "new")], into: &written2)
        try log2.roll(nowMs: 0)
        _ = try #require(try log2.clean(uncleanableFrom: log2.logEndOffset, nowMs: 0))
        let headers = try allBatches(log2).map(\.header)
        #expect(headers.map(\.baseOffset) == [0, 3, 4])
        #expect(headers.map(\.lastOffset) == [2, 3, 4])
        #expect(headers.map(\.recordCount) == [0, 0, 1])
        #expect(log2.segmentNextOffsets == [4, 5, 5])
        try checkInvariants(log2, written2)
    }

    @Test("offsets by timestamp skip the empty batches the cleaner left")
    func timestampsOverEmptyBatches() throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        var written = Written()
        for i in 0..<10 { try put(log, [Entry(key: "a", value: "a\(i)")], into: &written, timestamp: 100 + Int64(i)) }
        try put(log, [Entry(key: "a", value: "last")], into: &written, timestamp: 50)
        try put(log, [Entry(key: "b", value: "b")], into: &written, timestamp: 200)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "z", value: "active")], into: &written, timestamp: 300)
        #expect(try log.offset(forTimestamp: 105)?.offset == 5)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        #expect(try allBatches(log).first?.header.lastOffset == 9)
        // The empty batch 0 ... 9 keeps max timestamp 109 but holds no record: the answer is b.
        #expect(try log.offset(forTimestamp: 105)?.offset == 11)
        #expect(try log.offset(forTimestamp: 250)?.offset == 12)
        #expect(try log.offset(forTimestamp: 301) == nil)
    }

    @Test("tombstones survive the first cleaning with a delete horizon and go once delete.retention.ms has passed")
    func tombstones() throws {
        var config = compactConfig()
        config.deleteRetentionMs = 1_000
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<4 {
            for k in 0..<6 {
                try put(log, [Entry(key: "k\(k)", value: "v\(round)")], into: &written, timestamp: 5_000 + Int64(round))
            }
        }
        // Delete k0 and k1 (k1 in a batch that also holds a value).
        try put(log, [Entry(key: "k0", value: nil)], into: &written, timestamp: 6_000)
        try put(
            log, [Entry(key: "k1", value: nil), Entry(key: "k5", value: "after")], into: &written, timestamp: 6_100)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written)

        let t0: Int64 = 100_000
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: t0))
        try checkInvariants(log, written)
        var records = try readAll(log)
        #expect(
            records.filter { $0.value == nil }.map { text($0.key)! } == ["k0", "k1"],
            "tombstones kept by the first cleaning")
        #expect(
            !records.contains { ["k0", "k1"].contains(text($0.key)!) && $0.value != nil }, "their old values are gone")
        let tombstoneBatches = try allBatches(log).filter {
            $0.header.recordCount > 0 && $0.header.deleteHorizonMs != nil
        }
        #expect(tombstoneBatches.count == 2)
        #expect(tombstoneBatches.allSatisfy { $0.header.deleteHorizonMs == t0 + 1_000 })
        // Record timestamps did not change although the base timestamp now holds the horizon.
        let k1 = try #require(records.first { text($0.key) == "k1" })
        #expect(k1.timestamp == 6_100)
        #expect(try #require(records.first { text($0.key) == "k5" && text($0.value) == "after" }).timestamp == 6_101)

        // More data makes the log dirty again; before the horizon the tombstones stay.
        func addDirt(_ tag: String) throws {
            try put(log, [Entry(key: "k2", value: tag)], into: &written, timestamp: 7_000)
            try log.roll(nowMs: 0)
            try put(log, [Entry(key: "x", value: tag)], into: &written)
        }
        try addDirt("d1")
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: t0 + 999))
        records = try readAll(log)
        #expect(records.filter { $0.value == nil }.count == 2)
        #expect(
            try allBatches(log).filter { $0.header.deleteHorizonMs != nil }.allSatisfy {
                $0.header.deleteHorizonMs == t0 + 1_000
            },
            "the horizon is set once, by the first cleaning that kept the tombstone")

        try addDirt("d2")
        let stats = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: t0 + 1_000))
        #expect(stats.tombstonesRemoved == 2)
        records = try readAll(log)
        #expect(!records.contains { $0.value == nil }, "tombstones gone after delete.retention.ms")
        #expect(!records.contains { ["k0", "k1"].contains(text($0.key) ?? "") }, "deleted keys are gone")
        #expect(records.contains { text($0.key) == "k5" && text($0.value) == "after" })
        try checkInvariants(log, written)
    }

    @Test("records at or above uncleanableFrom (the high watermark) are untouched, and the map stops below it")
    func highWatermark() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(), disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<8 {
            for k in 0..<5 { try put(log, [Entry(key: "k\(k)", value: "v\(round)")], into: &written) }
        }
        let bases = log.segmentBaseOffsets
        #expect(bases.count >= 5)
        // A high watermark inside the third segment: only the first two are cleanable.
        let hw = bases[2] + 1
        let untouched = bases[2...].map { fileBytes(dir + "/" + LogSegment.fileName($0, ".log")) }
        let stats = try #require(try log.clean(uncleanableFrom: hw, nowMs: 0))
        #expect(stats.endOffset == bases[2])
        #expect(bases[2...].map { fileBytes(dir + "/" + LogSegment.fileName($0, ".log")) } == untouched)
        let records = try readAll(log)
        #expect(
            records.filter { $0.offset >= bases[2] }.map(\.offset) == written.keys.filter { $0 >= bases[2] }.sorted())
        // Below: the latest per key of the range below the end of the map, and nothing superseded only above it.
        var latest: [String: Int64] = [:]
        for (offset, e) in written where offset < bases[2] { latest[e.key!] = max(latest[e.key!] ?? -1, offset) }
        #expect(records.filter { $0.offset < bases[2] }.map(\.offset) == latest.values.sorted())
        try checkInvariants(log, written)
        // Nothing is cleanable below a high watermark inside the first segment.
        let fresh = try PartitionLog(
            topicPartition: TopicPartition("c", 1), directory: tempDir(), config: compactConfig(), disk: disk, nowMs: 0)
        var w2 = Written()
        for i in 0..<30 { try put(fresh, [Entry(key: "k", value: "\(i)")], into: &w2) }
        #expect(try fresh.clean(uncleanableFrom: 1, nowMs: 0) == nil)
    }

    @Test(
        "max.compaction.lag.ms (KIP-354): a dirty record older than it gets the log cleaned below the dirty ratio, and the active segment rolls at that age"
    )
    func maxCompactionLag() throws {
        var config = compactConfig(segmentBytes: 100_000)
        config.minCleanableDirtyRatio = 0.9
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        for k in 0..<50 { try put(log, [Entry(key: "k\(k)", value: "v0")], into: &written, timestamp: 1_000) }
        try log.roll(nowMs: 0)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 2_000), "all dirty: ratio 1")
        // A little dirt at t=3000: far below the ratio.
        try put(log, [Entry(key: "k0", value: "v1")], into: &written, timestamp: 3_000)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written, timestamp: 3_000)
        #expect(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 10_000) == nil, "no lag bound: waits")
        config.maxCompactionLagMs = 5_000
        log.config = config
        #expect(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 7_000) == nil, "4 s old: within the lag")
        let stats = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 9_000), "6 s old: cleaned")
        #expect(stats.recordsRemoved == 1, "k0=v0 superseded")
        // The active segment (first batch at t=3000) rolls once older than the lag, not segment.ms.
        let segments = log.segmentCount
        try put(log, [Entry(key: "y", value: "late")], into: &written, timestamp: 9_000)
        #expect(log.segmentCount == segments + 1)
    }

    @Test("min.compaction.lag.ms keeps segments with young records out of the cleaning")
    func compactionLag() throws {
        var config = compactConfig()
        config.minCompactionLagMs = 10_000
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        // Old records at t=1000, then young ones at t=50000.
        for round in 0..<4 {
            for k in 0..<5 {
                try put(log, [Entry(key: "k\(k)", value: "old\(round)")], into: &written, timestamp: 1_000)
            }
        }
        try log.roll(nowMs: 0)
        let youngBase = log.logEndOffset
        for round in 0..<4 {
            for k in 0..<5 {
                try put(log, [Entry(key: "k\(k)", value: "young\(round)")], into: &written, timestamp: 50_000)
            }
        }
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written, timestamp: 50_000)

        // At t=55000 the young records are 5 s old: below the lag, their segments are not cleaned.
        let stats = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 55_000))
        #expect(stats.endOffset == youngBase)
        let records = try readAll(log)
        #expect(
            records.filter { $0.offset >= youngBase }.map(\.offset) == written.keys.filter { $0 >= youngBase }.sorted())
        // The old range kept the latest old value of each key (the young ones were not in the map).
        #expect(records.filter { $0.offset < youngBase }.map { text($0.value)! } == Array(repeating: "old3", count: 5))
        try checkInvariants(log, written)
        // Once they are old enough, they are cleaned too.
        let later = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 61_000))
        #expect(later.endOffset > youngBase)
        #expect(
            try readAll(log).filter { text($0.key)!.hasPrefix("k") }.map { text($0.value)! }
                == Array(repeating: "young3", count: 5))
        try checkInvariants(log, written)
    }

    @Test("min.cleanable.dirty.ratio: a log is cleaned only once dirty enough")
    func dirtyRatio() throws {
        var config = compactConfig()
        config.minCleanableDirtyRatio = 0.5
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        for i in 0..<60 { try put(log, [Entry(key: "k\(i % 10)", value: "v\(i)")], into: &written) }
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0), "all dirty at first")
        let cleanBytes = log.sizeInBytes
        // A little new data is far below half of what is cleanable.
        try put(log, [Entry(key: "k1", value: "new")], into: &written)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active2")], into: &written)
        #expect(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0) == nil)
        // Enough new data tips it over.
        for i in 0..<60 { try put(log, [Entry(key: "k\(i % 10)", value: "w\(i)")], into: &written) }
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active3")], into: &written)
        #expect(log.sizeInBytes > 2 * cleanBytes)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        try checkInvariants(log, written)

        // The pure plan: the ratio is dirty bytes over the cleanable bytes.
        let segments = [
            LogCleaner.SegmentSummary(baseOffset: 0, nextOffset: 10, size: 300, maxTimestamp: 5),
            LogCleaner.SegmentSummary(baseOffset: 10, nextOffset: 20, size: 100, maxTimestamp: 5),
            LogCleaner.SegmentSummary(baseOffset: 20, nextOffset: 25, size: 50, maxTimestamp: 5),
        ]
        let plan = try #require(
            LogCleaner.plan(
                segments: segments, firstDirtyOffset: 10, uncleanableFrom: 100, nowMs: 0, minCompactionLagMs: 0))
        #expect(
            plan.cleanableSegmentCount == 2 && plan.firstDirtySegment == 1 && plan.dirtyBytes == 100
                && plan.cleanableBytes == 400)
        #expect(plan.isDue(minCleanableDirtyRatio: 0.25) && !plan.isDue(minCleanableDirtyRatio: 0.26))
        #expect(
            LogCleaner.plan(
                segments: segments, firstDirtyOffset: 20, uncleanableFrom: 100, nowMs: 0, minCompactionLagMs: 0) == nil)
        #expect(LogCleaner.firstDirtyOffset(checkpoint: 30, logStartOffset: 0, logEndOffset: 25) == 0)
        #expect(LogCleaner.firstDirtyOffset(checkpoint: 10, logStartOffset: 12, logEndOffset: 25) == 12)
    }

    @Test(
        "an aborted transaction's records go and never supersede; a committed one's are cleaned like others; markers go once their data did, after their horizon"
    )
    func transactionalBatches() throws {
        var config = compactConfig(segmentBytes: 100_000)
        config.deleteRetentionMs = 5
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        func txn(_ producer: Int64, _ entries: [Entry]) throws {
            let (payload, infos) = keyedBatch(
                entries, attributes: 0x10, producerId: producer, producerEpoch: 0, baseSequence: 0)
            _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 0, nowMs: 0)
        }
        func end(_ producer: Int64, commit: Bool) throws -> Int64 {
            try log.appendTransactionMarker(
                producerId: producer, producerEpoch: 0, EndTransactionMarker(committed: commit, coordinatorEpoch: 0),
                transactionVersion: 0, leaderEpoch: 0, nowMs: 0
            ).firstOffset
        }
        try put(log, [Entry(key: "a", value: "a0"), Entry(key: "b", value: "b0")], into: &written)
        try txn(7, [Entry(key: "a", value: "aborted"), Entry(key: "c", value: "aborted")])
        let abortMarker = try end(7, commit: false)
        try txn(8, [Entry(key: "b", value: "committed")])
        let commitMarker = try end(8, commit: true)
        // An open transaction: the cleaning stops below its first offset.
        try log.roll(nowMs: 0)
        try txn(9, [Entry(key: "a", value: "open")])
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written)
        func pairs() throws -> [String] {
            try allBatches(log).filter { !$0.header.isControl }.flatMap {
                try RecordBatches.records($0.bytes, batchAt: 0, header: $0.header)
            }.map { "\(text($0.key)!)=\(text($0.value) ?? "null")" }
        }
        func markers() throws -> [Int64] { try allBatches(log).filter(\.header.isControl).map(\.header.baseOffset) }

        // Replicated: the high watermark passed the markers (a marker's transaction counts as
        // unstable until it has).
        log.highWatermarkUpdated(log.logEndOffset)
        let first = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 10))
        #expect(first.abortedRecordsRemoved == 2)
        #expect(first.endOffset <= commitMarker + 1, "nothing from the open transaction on is cleaned")
        // a0 stays (the aborted "a" never supersedes it), b0 went (the committed b did).
        #expect(try pairs() == ["a=a0", "b=committed", "a=open", "x=active"])
        // The abort marker's data was removed in this pass: it stays for now; the commit marker's
        // data remains: it stays too.
        #expect(try markers() == [abortMarker, commitMarker])

        // The open transaction commits; a second cleaning sees no data of the aborted one: its
        // marker gets a delete horizon (now + delete.retention.ms).
        _ = try end(9, commit: true)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x2", value: "active")], into: &written)
        log.highWatermarkUpdated(log.logEndOffset)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 20))
        let abortBatch = try #require(try allBatches(log).first { $0.header.baseOffset == abortMarker })
        #expect(abortBatch.header.deleteHorizonMs == 25)
        #expect(EndTransactionMarker.read(batch: abortBatch.bytes, header: abortBatch.header)?.committed == false)
        // Past the horizon, the next cleaning drops it; the commit marker stays with its data.
        try put(log, [Entry(key: "y", value: "dirt")], into: &written)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x3", value: "active")], into: &written)
        let third = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 30))
        #expect(third.markersRemoved == 1)
        #expect(try !markers().contains(abortMarker) && markers().contains(commitMarker))
        // Once committed and cleaned, the last transaction's "a" supersedes a0.
        #expect(try pairs() == ["b=committed", "a=open", "x=active", "x2=active", "y=dirt", "x3=active"])
    }

    @Test(
        "a compressed batch is inflated, filtered and written back in its codec; its keys count",
        arguments: Codec.allCases)
    func compressedBatches(codec: Codec) throws {
        var config = compactConfig(segmentBytes: 100_000)
        config.deleteRetentionMs = 0
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        var written = Written()
        try put(log, [Entry(key: "a", value: "a0"), Entry(key: "c", value: "c0")], into: &written)
        let (plainBatch, _) = keyedBatch(
            [Entry(key: "a", value: "a1"), Entry(key: "b", value: "b1"), Entry(key: "c", value: nil)])
        let packed = try RecordBatches.compress(plainBatch, with: codec)
        let infos = try RecordBatches.validate(packed, maxBatchBytes: 1_000_000).get()
        let packedInfo = try log.appendAsLeader(packed, batches: infos, leaderEpoch: 0, nowMs: 0)
        try put(log, [Entry(key: "b", value: "b2")], into: &written)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 10))
        // a0 and c0 are superseded by the compressed batch's a1 and c's tombstone; its b1 by b2.
        let batch = try #require(try allBatches(log).first { $0.header.baseOffset == packedInfo.firstOffset })
        #expect(batch.header.compression?.codec == codec, "written back in its codec")
        #expect(batch.header.lastOffset == packedInfo.lastOffset, "offsets kept")
        #expect(batch.header.recordCount == 2 && batch.header.deleteHorizonMs == 10)
        #expect(
            try readAll(log).map { "\(text($0.key)!)=\(text($0.value) ?? "null")" } == [
                "a=a1", "c=null", "b=b2", "x=active",
            ])
        // Past the horizon, with new dirt, the tombstone goes: nothing opaque precedes it.
        try put(log, [Entry(key: "y", value: "dirt")], into: &written)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x2", value: "active2")], into: &written)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 20))
        #expect(
            try readAll(log).map { "\(text($0.key)!)=\(text($0.value) ?? "null")" } == [
                "a=a1", "b=b2", "x=active", "y=dirt", "x2=active2",
            ])
    }

    @Test("the last batch of an idempotent producer keeps its sequence fields when its records go")
    func producerBatches() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        var written = Written()
        for i in 0..<5 {
            try put(log, [Entry(key: "a", value: "p\(i)")], into: &written, producerId: 7, baseSequence: Int32(i))
        }
        try put(log, [Entry(key: "a", value: "plain")], into: &written)
        try put(log, [Entry(key: "z", value: "end")], into: &written)
        try log.roll(nowMs: 0)
        try put(log, [Entry(key: "x", value: "active")], into: &written)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        let headers = try allBatches(log).map(\.header)
        // [0-3 filler] [4 empty, producer 7 seq 4] [5 plain] [6 end] | [7]
        #expect(headers.map(\.baseOffset) == [0, 4, 5, 6, 7])
        #expect(headers[0].producerId == -1 && headers[0].recordCount == 0)
        #expect(headers[1].producerId == 7 && headers[1].baseSequence == 4 && headers[1].recordCount == 0)
        try checkInvariants(log, written)
        // After a reopen the producer's next sequence is still expected.
        try log.close()
        let reopened = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: dir, config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        let (retry, retryInfos) = keyedBatch(
            [Entry(key: "a", value: "p4")], producerId: 7, producerEpoch: 0, baseSequence: 4)
        #expect(try reopened.appendAsLeader(retry, batches: retryInfos, leaderEpoch: 0, nowMs: 0).duplicate)
        let (gap, gapInfos) = keyedBatch(
            [Entry(key: "a", value: "p9")], producerId: 7, producerEpoch: 0, baseSequence: 9)
        #expect(throws: ProducerStateError.self) {
            try reopened.appendAsLeader(gap, batches: gapInfos, leaderEpoch: 0, nowMs: 0)
        }
    }

    @Test("reopening a cleaned log, after a clean or an unclean shutdown, recovers every segment")
    func reopen() throws {
        for clean in [true, false] {
            let dir = tempDir()
            var config = compactConfig()
            config.deleteRetentionMs = 0
            let log = try PartitionLog(
                topicPartition: TopicPartition("c", 0), directory: dir, config: config, disk: disk, nowMs: 0)
            var written = Written()
            for round in 0..<6 {
                for k in 0..<6 { try put(log, [Entry(key: "k\(k)", value: "v\(round)")], into: &written) }
                try put(log, [Entry(key: "t\(round)", value: nil)], into: &written)
            }
            _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
            _ = try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 1)
            let bases = log.segmentBaseOffsets
            let ends = log.segmentNextOffsets
            let records = try readAll(log)
            let end = log.logEndOffset
            if clean { try log.close() }
            // An unclean stop: recovery point 0, every segment re-validated.
            let reopened = try PartitionLog(
                topicPartition: TopicPartition("c", 0), directory: dir, config: config, disk: disk, nowMs: 0,
                recoveryPoint: clean ? end : 0, cleanShutdown: clean)
            #expect(reopened.segmentBaseOffsets == bases, "no segment dropped (clean: \(clean))")
            #expect(reopened.segmentNextOffsets == ends)
            #expect(reopened.logEndOffset == end)
            #expect(try readAll(reopened) == records)
            try checkInvariants(reopened, written)
        }
    }

    @Test("a crash at any step of the swap leaves a valid log with nothing lost")
    func crashDuringSwap() throws {
        let fm = FileManager.default
        let source = tempDir()
        let config = compactConfig()
        var log: PartitionLog? = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: source, config: config, disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<5 {
            for k in 0..<6 { try put(log!, [Entry(key: "k\(k)", value: "v\(round)")], into: &written) }
        }
        let end = log!.logEndOffset
        let before = try readAll(log!)
        try log!.close()
        let before_ = tempDir()
        try fm.removeItem(atPath: before_)
        try fm.copyItem(atPath: source, toPath: before_)  // the state before cleaning
        log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: source, config: config, disk: disk, nowMs: 0,
            recoveryPoint: end)
        _ = try #require(try log!.clean(uncleanableFrom: end, nowMs: 0))
        let after = try readAll(log!)
        try log!.close()
        let base = LogSegment.fileName(0, "")
        #expect(
            fileBytes(source + "/\(base).log") != fileBytes(before_ + "/\(base).log"), "the first segment was rewritten"
        )
        #expect(after.count < before.count)

        // Each state a crash can leave, with the records the log must then hold.
        struct State {
            var name: String
            var make: (String) throws -> Void
            var expected: [Record]
        }
        let states: [State] = [
            State(
                name: "rewrite written, nothing swapped",
                make: { dir in
                    try fm.copyItem(atPath: source + "/\(base).log", toPath: dir + "/\(base).log.cleaned")
                    try fm.copyItem(atPath: source + "/\(base).index", toPath: dir + "/\(base).index.cleaned")
                    try fm.copyItem(atPath: source + "/\(base).timeindex", toPath: dir + "/\(base).timeindex.cleaned")
                }, expected: before),
            State(
                name: "old index files removed",
                make: { dir in
                    try fm.copyItem(atPath: source + "/\(base).log", toPath: dir + "/\(base).log.cleaned")
                    try fm.removeItem(atPath: dir + "/\(base).index")
                    try fm.removeItem(atPath: dir + "/\(base).timeindex")
                }, expected: before),
            State(
                name: "log renamed over, new indexes not yet in place",
                make: { dir in
                    try fm.removeItem(atPath: dir + "/\(base).log")
                    try fm.copyItem(atPath: source + "/\(base).log", toPath: dir + "/\(base).log")
                    try fm.removeItem(atPath: dir + "/\(base).index")
                    try fm.removeItem(atPath: dir + "/\(base).timeindex")
                    try fm.copyItem(atPath: source + "/\(base).index", toPath: dir + "/\(base).index.cleaned")
                }, expected: []),  // checked segment by segment below
            State(
                name: "a leftover garbage .cleaned file",
                make: { dir in
                    try Data(repeating: 0xAB, count: 1000).write(to: URL(fileURLWithPath: dir + "/\(base).log.cleaned"))
                }, expected: before),
        ]
        for state in states {
            for clean in [true, false] {
                let dir = tempDir()
                try fm.removeItem(atPath: dir)
                try fm.copyItem(atPath: before_, toPath: dir)
                try state.make(dir)
                let reopened = try PartitionLog(
                    topicPartition: TopicPartition("c", 0), directory: dir, config: config, disk: disk, nowMs: 0,
                    recoveryPoint: clean ? end : 0, cleanShutdown: clean)
                #expect(reopened.logEndOffset == end, "\(state.name), clean \(clean)")
                let records = try readAll(reopened)
                if state.name.hasPrefix("log renamed") {
                    // The segment's first file is the cleaned one; later segments are as before.
                    let firstEnd = reopened.segmentNextOffsets[0]
                    #expect(
                        records.filter { $0.offset < firstEnd } == after.filter { $0.offset < firstEnd },
                        "\(state.name), clean \(clean)")
                    #expect(
                        records.filter { $0.offset >= firstEnd } == before.filter { $0.offset >= firstEnd },
                        "\(state.name), clean \(clean)")
                } else {
                    #expect(records == state.expected, "\(state.name), clean \(clean)")
                }
                #expect(
                    try fm.contentsOfDirectory(atPath: dir).allSatisfy { !$0.hasSuffix(".cleaned") },
                    "leftovers removed")
                try checkInvariants(reopened, written)
                // And it cleans again from there.
                _ = try reopened.clean(uncleanableFrom: end, nowMs: 0)
                try checkInvariants(reopened, written)
            }
        }
    }

    @Test("a truncation during a cleaning (a follower meeting a new leader) makes it swap nothing in")
    func truncationDuringCleaning() throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: compactConfig(), disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<6 {
            for k in 0..<6 { try put(log, [Entry(key: "k\(k)", value: "v\(round)")], into: &written) }
        }
        let bases = log.segmentBaseOffsets
        #expect(bases.count >= 4)
        let before = try readAll(log)
        // Just before the first swap, the log is cut back to its second segment: the records
        // that superseded the first segment's are gone, so that segment must stay as it was.
        log.cleanerWillSwap = { [log] _ in
            try? log.truncate(to: bases[1])
            log.cleanerWillSwap = nil
        }
        let stats = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        #expect(stats.segmentsRewritten == 0 && stats.swapsAbandoned > 0)
        #expect(try readAll(log) == before.filter { $0.offset < bases[1] })
        try checkInvariants(log, written)
    }

    @Test("a reader holding a file region of a segment keeps reading it while the cleaner replaces it")
    func readersDuringSwap() throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: compactConfig(), disk: disk, nowMs: 0)
        var written = Written()
        for round in 0..<5 {
            for k in 0..<6 { try put(log, [Entry(key: "k\(k)", value: "v\(round)")], into: &written) }
        }
        let info = try log.read(from: 0, maxBytes: 100_000, maxOffset: .max, minOneBatch: true)
        defer {
            for chunk in info.records.chunks { if case .region(let r) = chunk { try? r.fileHandle.close() } }
        }
        guard case .region(let region) = try #require(info.records.chunks.first) else {
            Issue.record("PosixDisk reads return file regions")
            return
        }
        let expected = try RecordBatches.decode(try log.readBytes(from: 0, maxBytes: region.readableBytes)).flatMap(
            \.records)
        _ = try #require(try log.clean(uncleanableFrom: log.logEndOffset, nowMs: 0))
        // The region's descriptor still reads the old file, whole.
        let bytes = try region.fileHandle.withUnsafeFileDescriptor { fd -> ByteBuffer in
            var buffer = ByteBufferAllocator().buffer(capacity: region.readableBytes)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: region.readableBytes) { raw in
                pread(fd, raw.baseAddress!, region.readableBytes, off_t(region.readerIndex))
            }
            return buffer
        }
        #expect(try RecordBatches.decode(bytes).flatMap(\.records) == expected)
        // Appends go on after the swap.
        try put(log, [Entry(key: "k0", value: "later")], into: &written)
        try checkInvariants(log, written)
    }

    @Test("a follower whose end falls inside an empty batch the leader's cleaner merged keeps copying, and recovers")
    func followerInsideFiller() throws {
        let leader = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: tempDir(), config: compactConfig(segmentBytes: 100_000),
            disk: disk, nowMs: 0)
        var written = Written()
        for i in 0..<10 { try put(leader, [Entry(key: "a", value: "a\(i)")], into: &written) }
        try put(leader, [Entry(key: "a", value: "last")], into: &written)
        try leader.roll(nowMs: 0)
        try put(leader, [Entry(key: "b", value: "active")], into: &written)
        // The follower copied offsets 0 ... 4 before the leader cleaned.
        let followerDir = tempDir()
        let follower = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: followerDir,
            config: compactConfig(segmentBytes: 100_000), disk: disk, nowMs: 0)
        _ = try follower.appendAsFollower(try leader.readBytes(from: 0, maxBytes: 100_000, maxOffset: 5), nowMs: 0)
        #expect(follower.logEndOffset == 5)
        _ = try #require(try leader.clean(uncleanableFrom: leader.logEndOffset, nowMs: 0))
        #expect(try allBatches(leader).first?.header.lastOffset == 9, "offsets 0 ... 9 merged into one empty batch")
        // The leader answers a fetch at 5 with that batch (base 0).
        let fetched = try leader.readBytes(from: 5, maxBytes: 100_000)
        #expect(RecordBatchHeader(fetched, at: fetched.readerIndex)?.baseOffset == 0)
        let info = try #require(try follower.appendAsFollower(fetched, nowMs: 0))
        #expect(info.firstOffset == 5)
        #expect(follower.logEndOffset == leader.logEndOffset)
        #expect(try readAll(follower).map(\.offset) == [0, 1, 2, 3, 4, 10, 11])
        try checkInvariants(follower, written)
        // An unclean restart keeps everything: the follower's offsets are contiguous.
        let reopened = try PartitionLog(
            topicPartition: TopicPartition("c", 0), directory: followerDir,
            config: compactConfig(segmentBytes: 100_000), disk: disk,
            nowMs: 0, recoveryPoint: 0, cleanShutdown: false)
        #expect(reopened.logEndOffset == leader.logEndOffset)
    }

    @Test("the log manager cleans compacted logs below their high watermark and keeps cleaner-offset-checkpoint")
    func logManager() throws {
        let root = tempDir()
        let manager = try LogManager(logDirs: [root], defaultConfig: LogConfig(), disk: disk, nowMs: 0)
        let compacted = try manager.getOrCreate(
            TopicPartition("c", 0), topicId: KafkaUUID(high: 1, low: 1), config: compactConfig(), nowMs: 0)
        let plain = try manager.getOrCreate(
            TopicPartition("p", 0), topicId: KafkaUUID(high: 2, low: 2), config: LogConfig(), nowMs: 0)
        var written = Written()
        var unused = Written()
        for round in 0..<5 {
            for k in 0..<6 {
                try put(compacted, [Entry(key: "k\(k)", value: "v\(round)")], into: &written)
                try put(plain, [Entry(key: "k\(k)", value: "v\(round)")], into: &unused)
            }
        }
        let hws = [compacted.topicPartition: compacted.logEndOffset, plain.topicPartition: plain.logEndOffset]
        let pass = manager.runCleaner(nowMs: 0, highWatermarks: hws, settings: LogCleanerSettings())
        #expect(pass.failures.isEmpty && pass.checkpointFailure == nil)
        #expect(pass.cleaned.map { $0.0 } == [compacted.topicPartition])
        let checkpoint = try OffsetCheckpoint.read(root + "/" + LogCleaner.checkpointFile, disk: disk)
        #expect(checkpoint == [compacted.topicPartition: compacted.segmentBaseOffsets.last!])
        #expect(try readAll(plain).count == 30)
        // Without a high watermark (not hosted) a log is left alone.
        try put(compacted, [Entry(key: "k0", value: "more")], into: &written)
        #expect(manager.runCleaner(nowMs: 0, highWatermarks: [:], settings: LogCleanerSettings()).cleaned.isEmpty)
        try manager.shutdown()
        // The position survives a restart.
        let again = try LogManager(logDirs: [root], defaultConfig: LogConfig(), disk: disk, nowMs: 0)
        #expect(again.log(TopicPartition("c", 0))?.cleanerCheckpoint == checkpoint[compacted.topicPartition])
        // Deleting the log drops its entry.
        try again.delete(TopicPartition("c", 0))
        #expect(try OffsetCheckpoint.read(root + "/" + LogCleaner.checkpointFile, disk: disk).isEmpty)
    }

    @Test("a rewritten record keeps its timestamp under a new base timestamp")
    func recordRewrite() throws {
        let (batch, _) = keyedBatch([Entry(key: "k", value: nil), Entry(key: "v", value: "x")], timestamp: 1_234_567)
        let header = RecordBatchHeader(batch, at: 0)!
        let views = try RecordBatches.recordViews(batch, batchAt: 0, header: header)
        #expect(views.map(\.hasKey) == [true, true] && views.map(\.valueIsNull) == [true, false])
        var out = header
        out.attributes |= RecordBatchHeader.deleteHorizonFlag
        out.baseTimestamp = 9_999_999_999
        var records = ByteBuffer()
        for v in views {
            RecordBatches.writeRecord(
                v, from: batch, timestampDelta: header.baseTimestamp + v.timestampDelta - out.baseTimestamp,
                to: &records)
        }
        let rebuilt = RecordBatches.assemble(out, records: records, recordCount: 2)
        let decoded = try #require(try RecordBatches.decode(rebuilt).first)
        #expect(decoded.header.deleteHorizonMs == 9_999_999_999)
        #expect(decoded.records.map(\.timestamp) == [1_234_567, 1_234_568])
        #expect(decoded.records.map { text($0.key)! } == ["k", "v"])
        #expect(
            RecordBatches.crc32c(
                rebuilt, at: RecordBatchHeader.crcStart, length: rebuilt.readableBytes - RecordBatchHeader.crcStart)
                == decoded.header.crc)
    }
}

#if canImport(Glibc)
import Glibc
#endif
