// The segmented log on the real disk (in a temp dir): appends assign offsets and survive reopen,
// reads return whole batches within byte and offset bounds, segments roll by size and age,
// retention deletes whole segments and advances the log start offset, an unclean stop truncates
// a torn tail and rebuilds indexes, and timestamps find offsets.
import Foundation
import NIOCore
import RunnelCore
import RunnelWire
import RunnelCodecs
import Testing
@testable import RunnelLog
import RunnelTestSupport

func tempDir() -> String { scratchDirectory("log") }

/// A client-style batch of `count` records with values "v<i>" and timestamps from `timestamp`.
func clientBatch(
    _ count: Int, timestamp: Int64 = 1_000, valueBytes: Int = 10, tag: String = "v"
) -> (ByteBuffer, [BatchInfo]) {
    let records = (0..<count).map { i in
        Record(
            offset: Int64(i), timestamp: timestamp + Int64(i), key: ByteBuffer(string: "k\(i)"),
            value: ByteBuffer(
                string: tag + String(repeating: "x", count: max(0, valueBytes - tag.count - 4))
                    + String(format: "%04d", i)))
    }
    let batch = RecordBatches.build(records: records)
    let infos = try! RecordBatches.validate(batch, maxBatchBytes: 10_000_000).get()
    return (batch, infos)
}

func readAll(_ log: PartitionLog, from: Int64 = 0) throws -> [Record] {
    let bytes = try log.readBytes(from: max(from, log.logStartOffset), maxBytes: 100_000_000)
    return try RecordBatches.decode(bytes).flatMap(\.records)
}

@Suite("PartitionLog")
struct PartitionLogTests {
    let disk = PosixDisk()

    @Test("appends get consecutive offsets and read back byte-equal after reopen")
    func appendAndReopen() throws {
        let dir = tempDir()
        var config = LogConfig()
        config.segmentBytes = 2_000
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: disk, nowMs: 0)
        var expected: [String] = []
        for b in 0..<50 {
            let (payload, infos) = clientBatch(3, timestamp: Int64(b * 10), tag: "b\(b)-")
            let info = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 7, nowMs: 0)
            #expect(info.firstOffset == Int64(b * 3))
            #expect(info.lastOffset == Int64(b * 3 + 2))
            for r in try RecordBatches.decode(payload)[0].records { expected.append(String(buffer: r.value!)) }
        }
        #expect(log.logEndOffset == 150)
        #expect(log.segmentCount > 3, "segment.bytes=2000 rolls")
        let records = try readAll(log)
        #expect(records.map(\.offset) == Array(0..<150))
        #expect(records.map { String(buffer: $0.value!) } == expected)
        let batches = try RecordBatches.decode(try log.readBytes(from: 0, maxBytes: 1_000_000))
        #expect(batches.allSatisfy { $0.header.partitionLeaderEpoch == 7 })
        try log.close()

        let reopened = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: disk, nowMs: 0,
            recoveryPoint: 150)
        #expect(reopened.logEndOffset == 150)
        #expect(try readAll(reopened).map(\.offset) == Array(0..<150))
        // Reads from the middle of a batch return that whole batch.
        let mid = try RecordBatches.decode(try reopened.readBytes(from: 31, maxBytes: 1))
        #expect(mid.count == 1 && mid[0].header.baseOffset == 30)
    }

    @Test("a request of several batches is written with new offsets and epoch; the request's bytes stay as they came")
    func severalBatchesStamped() throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: disk, nowMs: 0)
        let (firstBatch, firstInfos) = clientBatch(2)
        _ = try log.appendAsLeader(firstBatch, batches: firstInfos, leaderEpoch: 3, nowMs: 0)
        var payload = ByteBuffer()
        for b in 0..<3 {
            var (batch, _) = clientBatch(b + 1, tag: "r\(b)-")
            payload.writeBuffer(&batch)
        }
        let infos = try RecordBatches.validate(payload, maxBatchBytes: 10_000_000).get()
        let info = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 9, nowMs: 0)
        #expect(info.firstOffset == 2 && info.lastOffset == 7)
        #expect(try RecordBatches.decode(payload).map(\.header.baseOffset) == [0, 0, 0])
        #expect(try RecordBatches.decode(payload).map(\.header.partitionLeaderEpoch) == [-1, -1, -1])
        let written = try log.readBytes(from: 2, maxBytes: 1_000_000)
        let headers = try RecordBatches.validate(written, maxBatchBytes: 10_000_000).get().map(\.header)
        #expect(headers.map(\.baseOffset) == [2, 3, 5])
        #expect(headers.allSatisfy { $0.partitionLeaderEpoch == 9 })
        #expect(try readAll(log).map(\.offset) == Array(0..<8))
        #expect(
            try readAll(log, from: 2).map { String(buffer: $0.value!).prefix(3) } == [
                "r0-", "r1-", "r1-", "r2-", "r2-", "r2-",
            ])
    }

    @Test("a vectored write of more pieces than one pwritev takes, empty ones among them, lands in order")
    func vectoredWrite() throws {
        let file = try disk.open(tempDir() + "/pieces", create: true)
        defer { file.close() }
        var pieces: [ByteBuffer] = []
        var expected: [UInt8] = []
        for i in 0..<2_500 {
            let bytes = (0..<(i % 5)).map { UInt8(truncatingIfNeeded: i &+ $0) }
            pieces.append(ByteBuffer(bytes: bytes))
            expected += bytes
        }
        try file.write(bytes: [1, 2, 3], at: 0)
        try file.write(pieces, at: 3)
        #expect(try file.size() == Int64(3 + expected.count))
        #expect(Array(try file.read(at: 0, count: 3 + expected.count).readableBytesView) == [1, 2, 3] + expected)
    }

    @Test("reads honour maxBytes, the offset bound and at-least-one-batch")
    func readBounds() throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: disk, nowMs: 0)
        for _ in 0..<10 {
            let (p, i) = clientBatch(2, valueBytes: 100)
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        }
        let one = try log.read(from: 0, maxBytes: 1, maxOffset: .max, minOneBatch: true)
        #expect(one.nextOffset == 2)
        let none = try log.read(from: 0, maxBytes: 1, maxOffset: .max, minOneBatch: false)
        #expect(none.byteCount == 0)
        let bounded = try log.read(from: 0, maxBytes: 1_000_000, maxOffset: 6, minOneBatch: true)
        #expect(bounded.nextOffset == 6)
        for chunk in one.records.chunks + bounded.records.chunks {
            if case .region(let r) = chunk { try r.fileHandle.close() }
        }
        #expect(throws: LogError.self) { try log.read(from: 21, maxBytes: 10, maxOffset: .max, minOneBatch: true) }
        let atEnd = try log.read(from: 20, maxBytes: 10, maxOffset: .max, minOneBatch: true)
        #expect(atEnd.byteCount == 0)
    }

    @Test("an unclean stop truncates a torn tail and rebuilds the indexes")
    func tornTail() throws {
        let dir = tempDir()
        var config = LogConfig()
        config.indexIntervalBytes = 100
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: disk, nowMs: 0)
        for _ in 0..<20 {
            let (p, i) = clientBatch(5, valueBytes: 50)
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        }
        let segmentPath = dir + "/" + "00000000000000000000.log"
        let size = try FileManager.default.attributesOfItem(atPath: segmentPath)[.size] as! Int
        // Tear the last batch: cut it in half; and corrupt one byte inside the batch before it.
        let handle = FileHandle(forUpdatingAtPath: segmentPath)!
        try handle.truncate(atOffset: UInt64(size - 40))
        try handle.close()
        // Leave the index claiming more than is there.
        let reopened = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: disk, nowMs: 0,
            recoveryPoint: 0, cleanShutdown: false)
        #expect(reopened.logEndOffset == 95)
        #expect(try readAll(reopened).map(\.offset) == Array(0..<95))
        // Appending continues the offsets.
        let (p, i) = clientBatch(5)
        let info = try reopened.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        #expect(info.firstOffset == 95)

        // A flipped byte in the middle makes everything from that batch on go.
        try reopened.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: segmentPath))
        var corrupted = bytes
        corrupted[bytes.count / 2] ^= 0xFF
        try corrupted.write(to: URL(fileURLWithPath: segmentPath))
        let again = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: disk, nowMs: 0,
            recoveryPoint: 0, cleanShutdown: false)
        let survivors = try readAll(again).map(\.offset)
        #expect(survivors == Array(0..<again.logEndOffset))
        #expect(again.logEndOffset < 100 && again.logEndOffset > 0)
    }

    @Test("recovery drops a batch whose leader epoch (outside the CRC) was corrupted, and what follows it")
    func corruptedEpochOutsideCrc() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0)
        var starts: [Int] = []
        var position = 0
        for b in 0..<6 {
            let (p, i) = clientBatch(3, tag: "e\(b)-")
            starts.append(position)
            position += p.readableBytes
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: b < 3 ? 1 : 2, nowMs: 0)
        }
        try log.close()
        // Batch 2's epoch 1 becomes 255: its CRC still holds, but batch 3 (epoch 2) is
        // below it. The byte is at offset 15 of the batch (the epoch's last byte).
        let segmentPath = dir + "/" + "00000000000000000000.log"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segmentPath))
        bytes[starts[2] + 15] ^= 0xFE
        try bytes.write(to: URL(fileURLWithPath: segmentPath))
        let reopened = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0,
            recoveryPoint: 0, cleanShutdown: false)
        // Batch 2 (the spike) and batch 3 (the first one below it) cannot both be right: both go,
        // and every batch left carries a sane epoch.
        #expect(reopened.logEndOffset == 6)
        let batches = try RecordBatches.decode(try reopened.readBytes(from: 0, maxBytes: 1_000_000))
        #expect(batches.map(\.header.partitionLeaderEpoch) == [1, 1])
        #expect(reopened.latestEpoch == 1)
    }

    @Test("retention by time and size deletes whole segments and advances the start")
    func retention() throws {
        var config = LogConfig()
        config.segmentBytes = 1_000
        config.retentionMs = 10_000
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        for b in 0..<30 {
            let (p, i) = clientBatch(2, timestamp: Int64(b) * 1_000, valueBytes: 100)
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: Int64(b) * 1_000)
        }
        let before = log.segmentCount
        #expect(before > 5)
        let deleted = try log.enforceRetention(nowMs: 30_000)
        #expect(deleted > 0)
        #expect(log.logStartOffset > 0)
        #expect(log.segmentBaseOffsets.first == log.logStartOffset)
        #expect(throws: LogError.self) { try log.read(from: 0, maxBytes: 100, maxOffset: .max, minOneBatch: true) }
        // Everything expired: the active segment is rolled and deleted too; the end stays.
        _ = try log.enforceRetention(nowMs: 1_000_000)
        #expect(log.logStartOffset == 60)
        #expect(log.logEndOffset == 60)

        var sized = LogConfig()
        sized.segmentBytes = 1_000
        sized.retentionBytes = 2_500
        sized.retentionMs = -1
        let log2 = try PartitionLog(
            topicPartition: TopicPartition("t", 1), directory: tempDir(), config: sized, disk: disk, nowMs: 0)
        for _ in 0..<30 {
            let (p, i) = clientBatch(2, valueBytes: 100)
            _ = try log2.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        }
        _ = try log2.enforceRetention(nowMs: 0)
        #expect(log2.sizeInBytes <= 2_500 + 1_000)
        #expect(log2.logStartOffset > 0)
    }

    @Test("timestamps find the first record at or after them")
    func timestamps() throws {
        var config = LogConfig()
        config.segmentBytes = 800
        config.indexIntervalBytes = 200
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        for b in 0..<40 {
            let (p, i) = clientBatch(4, timestamp: 10_000 + Int64(b) * 10, valueBytes: 30)
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        }
        // Batch b holds timestamps 10000+10b ... +3 at offsets 4b ... 4b+3.
        #expect(try log.offset(forTimestamp: 10_000)?.offset == 0)
        #expect(try log.offset(forTimestamp: 10_102)?.offset == 42)
        #expect(try log.offset(forTimestamp: 10_105)?.offset == 44)
        #expect(try log.offset(forTimestamp: 99_999) == nil)
        let max = try log.maxTimestampAndOffset()
        #expect(max?.timestamp == 10_393 && max?.offset == 159 && max?.leaderEpoch == 0)
    }

    @Test(
        "the largest timestamp is found at its record inside a batch, compressed or not, with the batch's epoch",
        arguments: [nil] + Codec.allCases.map { Optional($0) })
    func maxTimestampInsideABatch(codec: Codec?) throws {
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: disk, nowMs: 0)
        func append(_ timestamps: [Int64], epoch: Int32) throws {
            let records = timestamps.enumerated().map {
                Record(offset: Int64($0), timestamp: $1, key: nil, value: ByteBuffer(string: "v\($1)"))
            }
            var payload = RecordBatches.build(records: records)
            if let codec { payload = try RecordBatches.compress(payload, with: codec) }
            let infos = try RecordBatches.validate(payload, maxBatchBytes: 1_000_000).get()
            _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: epoch, nowMs: 0)
        }
        try append([100, 500, 200], epoch: 3)  // offsets 0-2: 500 at offset 1
        try append([300, 900, 900, 400], epoch: 5)  // offsets 3-6: the first 900 is offset 4
        try append([800], epoch: 7)
        let max = try log.maxTimestampAndOffset()
        #expect(max?.offset == 4 && max?.timestamp == 900 && max?.leaderEpoch == 5)
        let hit = try log.offset(forTimestamp: 450)
        #expect(hit?.offset == 1 && hit?.timestamp == 500 && hit?.leaderEpoch == 3, "record-precise")
    }

    @Test("truncation drops the tail and appends continue from there")
    func truncation() throws {
        var config = LogConfig()
        config.segmentBytes = 600
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: config, disk: disk, nowMs: 0)
        for _ in 0..<20 {
            let (p, i) = clientBatch(3, valueBytes: 40)
            _ = try log.appendAsLeader(p, batches: i, leaderEpoch: 0, nowMs: 0)
        }
        try log.truncate(to: 31)
        #expect(log.logEndOffset == 30, "truncation lands on a batch boundary at or below the target")
        #expect(try readAll(log).map(\.offset) == Array(0..<30))
        let (p, i) = clientBatch(3)
        #expect(try log.appendAsLeader(p, batches: i, leaderEpoch: 1, nowMs: 0).firstOffset == 30)
    }

    @Test("checkpoints round-trip in Kafka's format")
    func checkpoints() throws {
        let path = tempDir() + "/recovery-point-offset-checkpoint"
        let offsets = [TopicPartition("a-b", 0): Int64(5), TopicPartition("c", 12): 99]
        try OffsetCheckpoint.write(offsets, to: path, disk: disk)
        #expect(try OffsetCheckpoint.read(path, disk: disk) == offsets)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("0\n2\n"))
    }
}

@Suite("Leader epochs")
struct LeaderEpochTests {
    /// A log in `dir` with offsets 0-2 in epoch 1 and 3-4 in epoch 4, one batch each.
    func twoEpochLog(_ dir: String, disk: PosixDisk) throws -> PartitionLog {
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0)
        for epoch: Int32 in [1, 1, 1, 4, 4] {
            log.beginLeaderEpoch(epoch)
            let (b, i) = clientBatch(1)
            _ = try log.appendAsLeader(b, batches: i, leaderEpoch: epoch, nowMs: 0)
        }
        return log
    }

    @Test("the epoch cache answers where each epoch ends, truncates, and survives a reopen or its own loss")
    func epochCache() throws {
        let dir = tempDir()
        let disk = PosixDisk()
        var log: PartitionLog? = try twoEpochLog(dir, disk: disk)
        #expect(log!.latestEpoch == 4)
        #expect(log!.endOffset(forEpoch: 1) == (1, 3))
        #expect(log!.endOffset(forEpoch: 2) == (1, 3))  // largest epoch at or below 2 is 1
        #expect(log!.endOffset(forEpoch: 4) == (4, 5))
        // Below every epoch held: that epoch, ending where the first held one starts (Kafka's
        // answer); an undefined epoch stays undefined.
        #expect(log!.endOffset(forEpoch: 0) == (0, 0))
        #expect(log!.endOffset(forEpoch: -1) == (-1, -1))
        try log!.close()
        log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0)
        #expect(log!.endOffset(forEpoch: 1) == (1, 3))
        #expect(log!.latestEpoch == 4)
        // Truncating into epoch 1 drops epoch 4.
        try log!.truncate(to: 2)
        #expect(log!.latestEpoch == 1)
        #expect(log!.endOffset(forEpoch: 4) == (1, 2))
        try log!.close()
        // Without the checkpoint file the epochs are rebuilt from the batch headers.
        try disk.remove(dir + "/" + LeaderEpochCache.fileName)
        log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0)
        #expect(log!.endOffset(forEpoch: 1) == (1, 2))
        #expect(disk.exists(dir + "/" + LeaderEpochCache.fileName))
    }

    @Test("asked about an epoch whose records are gone, a log answers that epoch ending where it starts now")
    func epochBelowLogStart() throws {
        let dir = tempDir()
        let disk = PosixDisk()
        var log: PartitionLog? = try twoEpochLog(dir, disk: disk)
        // DeleteRecords (or retention) moves the start past epoch 1. Kafka's LeaderEpochFileCache
        // then answers epoch 1 with the start of the first epoch it holds, not "unknown" (which a
        // KIP-320 consumer takes for a cut log and resets its position over).
        #expect(try log!.advanceLogStartOffset(to: 4) == 4)
        #expect(log!.endOffset(forEpoch: 1) == (1, 4))
        #expect(log!.endOffset(forEpoch: 3) == (3, 4))
        #expect(log!.endOffset(forEpoch: 4) == (4, 5))
        try log!.close()
        log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: disk, nowMs: 0)
        #expect(log!.endOffset(forEpoch: 1) == (1, 4))
        #expect(log!.endOffset(forEpoch: -1) == (-1, -1))
        try log!.close()
    }

    @Test(
        "a leader-epoch-checkpoint that lacks the epoch of the last batch (written before it, then a crash) is rebuilt from the log"
    )
    func staleEpochCheckpoint() throws {
        let dir = tempDir()
        let tp = TopicPartition("t", 0)
        let log = try PartitionLog(topicPartition: tp, directory: dir, config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        for _ in 0..<2 {
            let (b, i) = clientBatch(3)
            _ = try log.appendAsLeader(b, batches: i, leaderEpoch: 1, nowMs: 0)
        }
        let (b, i) = clientBatch(3)
        _ = try log.appendAsLeader(b, batches: i, leaderEpoch: 2, nowMs: 0)
        #expect(log.endOffset(forEpoch: 1) == (1, 6))
        try log.close()
        // The file as it was before epoch 2's first batch: only epoch 1.
        var stale = LeaderEpochCache()
        _ = stale.assign(epoch: 1, startOffset: 0)
        try stale.write(directory: dir, disk: PosixDisk())
        let reopened = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: PosixDisk(), nowMs: 0, recoveryPoint: 9)
        #expect(reopened.latestEpoch == 2)
        #expect(
            reopened.endOffset(forEpoch: 1) == (1, 6), "epoch 1 ends where epoch 2's batch starts, not at the log end")
        try reopened.close()
    }

    @Test("a follower copy keeps its leader's epochs")
    func followerEpochs() throws {
        let leaderLog = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: PosixDisk(),
            nowMs: 0)
        let (b1, i1) = clientBatch(2)
        _ = try leaderLog.appendAsLeader(b1, batches: i1, leaderEpoch: 2, nowMs: 0)
        let (b2, i2) = clientBatch(2)
        _ = try leaderLog.appendAsLeader(b2, batches: i2, leaderEpoch: 3, nowMs: 0)
        let bytes = try leaderLog.readBytes(from: 0, maxBytes: 1 << 20)
        let follower = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: PosixDisk(),
            nowMs: 0)
        _ = try follower.appendAsFollower(bytes, nowMs: 0)
        #expect(follower.logEndOffset == 4)
        #expect(follower.endOffset(forEpoch: 2) == (2, 2))
        #expect(follower.endOffset(forEpoch: 3) == (3, 4))
    }

    @Test("a follower refuses a fetched batch whose CRC fails, and writes none of that fetch")
    func followerChecksCrc() throws {
        let leaderLog = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: PosixDisk(),
            nowMs: 0)
        for _ in 0..<2 {
            let (b, i) = clientBatch(3)
            _ = try leaderLog.appendAsLeader(b, batches: i, leaderEpoch: 1, nowMs: 0)
        }
        var bytes = try leaderLog.readBytes(from: 0, maxBytes: 1 << 20)
        let follower = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: PosixDisk(),
            nowMs: 0)
        // Flip a byte in the last record of the second batch.
        let last = bytes.writerIndex - 1
        bytes.setInteger(bytes.getInteger(at: last, as: UInt8.self)! ^ 0xFF, at: last)
        #expect(throws: LogError.corruptBatch(baseOffset: 3)) { try follower.appendAsFollower(bytes, nowMs: 0) }
        #expect(follower.logEndOffset == 0)
        // The intact copy goes in whole.
        _ = try follower.appendAsFollower(try leaderLog.readBytes(from: 0, maxBytes: 1 << 20), nowMs: 0)
        #expect(follower.logEndOffset == 6)
    }
}
