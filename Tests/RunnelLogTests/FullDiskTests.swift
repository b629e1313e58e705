// A full file system under the log: a write that fails part-way leaves no bytes behind, so a
// failed append never shows up later (after a reopen) as records the producer was told were not
// written; a failed index write does not fail an append whose batches are already in the log,
// and the index files come back whole (or are re-scanned) on reopen.
import Foundation
import NIOCore
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelLog
import RunnelTestSupport

/// Real files, but writes to files whose names end with one of `full` write at most
/// `bytesBeforeFull` bytes and then fail with ENOSPC, as a file system that runs out of space
/// in the middle of a write does. Counts fsyncs.
final class FullDisk: InterceptingDisk, @unchecked Sendable {
    private let lock = NSLock()
    private var _full: Set<String> = []
    private var _bytesBeforeFull = 0
    private var _syncs = 0

    /// fsyncs of files and directories so far.
    var syncs: Int { lock.withLock { _syncs } }

    func fill(_ suffixes: Set<String>, bytesBeforeFull: Int = 0) {
        lock.withLock {
            _full = suffixes
            _bytesBeforeFull = bytesBeforeFull
        }
    }

    func free() { fill([]) }

    /// How many bytes a write to `path` may put down before failing; nil when it does not fail.
    func room(for path: String) -> Int? {
        lock.withLock { _full.contains { path.hasSuffix($0) } ? _bytesBeforeFull : nil }
    }

    override func write(_ buffer: ByteBuffer, at offset: Int64, to file: any DiskFile) throws {
        guard let room = room(for: file.path) else { return try file.write(buffer, at: offset) }
        if room > 0, let part = buffer.getSlice(at: buffer.readerIndex, length: min(room, buffer.readableBytes)) {
            try file.write(part, at: offset)
        }
        throw DiskError(operation: "write", path: file.path, errno: ENOSPC, message: "No space left on device")
    }

    override func sync(_ file: (any DiskFile)?, path: String) throws {
        lock.withLock { _syncs += 1 }
        try super.sync(file, path: path)
    }
}

/// The disk errors a log's failure handler heard of.
final class DiskFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [DiskError] = []
    func add(_ error: DiskError) { lock.withLock { errors.append(error) } }
    var errnos: [Int32] { lock.withLock { errors.map(\.errno) } }
}

@Suite("PartitionLog on a full disk")
struct FullDiskTests {
    let tp = TopicPartition("t", 0)

    /// Two leader batches of 3 records, as a follower fetch brings them.
    func twoBatches(from log: PartitionLog, tag: String) throws -> (bytes: ByteBuffer, firstBatchBytes: Int) {
        let source = try PartitionLog(
            topicPartition: tp, directory: tempDir(), config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        defer { try? source.delete() }
        // The source continues at this log's end, so the batches fit it.
        if log.logEndOffset > 0 { try source.truncateFullyAndStart(at: log.logEndOffset, nowMs: 0) }
        for b in 0..<2 {
            let (payload, infos) = clientBatch(3, tag: "\(tag)\(b)-")
            _ = try source.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
        }
        let bytes = try source.readBytes(from: source.logStartOffset, maxBytes: 1 << 20)
        return (bytes, RecordBatchHeader(bytes, at: bytes.readerIndex)!.totalBytes)
    }

    /// A new log in a scratch directory, on a disk with room.
    func freshLog(_ config: LogConfig = LogConfig()) throws -> (dir: String, disk: FullDisk, log: PartitionLog) {
        let dir = tempDir()
        let disk = FullDisk()
        return (dir, disk, try PartitionLog(topicPartition: tp, directory: dir, config: config, disk: disk, nowMs: 0))
    }

    @Test("an append the disk fills up in the middle of fails whole: no batch of it appears, then or after a reopen")
    func failedAppendLeavesNothing() throws {
        let (dir, disk, log) = try freshLog()
        let (first, _) = try twoBatches(from: log, tag: "a")
        _ = try log.appendAsFollower(first, nowMs: 0)
        #expect(log.logEndOffset == 6)

        // The disk takes the first batch of the next fetch and a few bytes of the second.
        let (next, firstBatchBytes) = try twoBatches(from: log, tag: "b")
        let reported = DiskFailures()
        log.setDiskFailureHandler { reported.add($0) }
        disk.fill([".log"], bytesBeforeFull: firstBatchBytes + 20)
        #expect(throws: DiskError.self) { try log.appendAsFollower(next, nowMs: 0) }
        #expect(reported.errnos == [ENOSPC], "the failed write reaches the disk failure handler (the node stops on it)")
        #expect(log.logEndOffset == 6)
        #expect(try readAll(log).count == 6)

        // Still full: a clean close and reopen shows the same six records, not the batch that
        // was written before the disk filled.
        try log.close()
        let reopened = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: disk, nowMs: 0, recoveryPoint: 6)
        #expect(reopened.logEndOffset == 6)
        #expect(try readAll(reopened).map(\.offset) == Array(0..<6))

        // Space again: the same fetch goes in at the same offsets.
        disk.free()
        _ = try reopened.appendAsFollower(next, nowMs: 0)
        #expect(reopened.logEndOffset == 12)
        try reopened.close()
        let again = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: disk, nowMs: 0, cleanShutdown: false)
        let records = try readAll(again)
        #expect(records.map(\.offset) == Array(0..<12))
        #expect(
            records.suffix(6).map { String(buffer: $0.value!).prefix(3) } == ["b0-", "b0-", "b0-", "b1-", "b1-", "b1-"])
        try again.close()
    }

    @Test("an index write the disk cannot take does not fail the append; lookups and a reopen still find every offset")
    func failedIndexWriteKeepsAppend() throws {
        var config = LogConfig()
        config.indexIntervalBytes = 1  // an index entry for every batch
        let (dir, disk, log) = try freshLog(config)
        for b in 0..<5 {
            let (payload, infos) = clientBatch(4, tag: "a\(b)-")
            _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
        }
        // The index files fill up; the log file has room.
        let reported = DiskFailures()
        log.setDiskFailureHandler { reported.add($0) }
        disk.fill([".index", ".timeindex"], bytesBeforeFull: 4)
        for b in 0..<5 {
            let (payload, infos) = clientBatch(4, tag: "b\(b)-")
            let info = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
            #expect(info.firstOffset == Int64(20 + b * 4))
        }
        #expect(log.logEndOffset == 40)
        #expect(reported.errnos.isEmpty, "a best-effort index write is not a failed change to the log")
        for offset: Int64 in [0, 13, 22, 37, 39] {
            let batch = try RecordBatches.decode(try log.readBytes(from: offset, maxBytes: 1))[0]
            #expect(batch.header.baseOffset <= offset && offset <= batch.header.lastOffset)
        }

        // Closed while still full: the emptied index files make the reopen re-scan the log.
        try log.close()
        let reopened = try PartitionLog(
            topicPartition: tp, directory: dir, config: config, disk: disk, nowMs: 0, recoveryPoint: 40)
        #expect(reopened.logEndOffset == 40)
        #expect(try readAll(reopened).map(\.offset) == Array(0..<40))
        #expect(try reopened.offset(forTimestamp: 1_002)?.offset == 2)

        let indexPath = dir + "/00000000000000000000.index"
        func indexBytes() throws -> Int { try FileManager.default.attributesOfItem(atPath: indexPath)[.size] as! Int }
        #expect(try indexBytes() == 0, "the rebuilt index could not be written either")

        // Space again: close writes whole index files, and the next open uses them.
        disk.free()
        try reopened.close()
        #expect(try indexBytes() > 0 && indexBytes() % 8 == 0)
        let again = try PartitionLog(
            topicPartition: tp, directory: dir, config: config, disk: disk, nowMs: 0, recoveryPoint: 40)
        for offset: Int64 in [0, 13, 22, 37, 39] {
            let batch = try RecordBatches.decode(try again.readBytes(from: offset, maxBytes: 1))[0]
            #expect(batch.header.baseOffset <= offset && offset <= batch.header.lastOffset)
        }
        try again.close()
    }

    @Test(
        "a new leader epoch, as leader or as follower, costs no fsync; the epoch file is made durable on close and read back"
    )
    func epochCheckpointWithoutSync() throws {
        let (dir, disk, log) = try freshLog()
        let (b1, i1) = clientBatch(3)
        _ = try log.appendAsLeader(b1, batches: i1, leaderEpoch: 1, nowMs: 0)
        let before = disk.syncs
        log.beginLeaderEpoch(2)
        let (b2, i2) = clientBatch(3)
        _ = try log.appendAsLeader(b2, batches: i2, leaderEpoch: 2, nowMs: 0)
        // A batch of a later epoch fetched from a new leader.
        let source = try PartitionLog(
            topicPartition: tp, directory: tempDir(), config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        try source.truncateFullyAndStart(at: 6, nowMs: 0)
        let (b3, i3) = clientBatch(3)
        _ = try source.appendAsLeader(b3, batches: i3, leaderEpoch: 3, nowMs: 0)
        _ = try log.appendAsFollower(try source.readBytes(from: 6, maxBytes: 1 << 20), nowMs: 0)
        #expect(disk.syncs == before, "no fsync for a new epoch")
        #expect(log.endOffset(forEpoch: 2) == (2, 6))
        try log.close()
        #expect(disk.syncs > before)
        let reopened = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: disk, nowMs: 0, recoveryPoint: 9)
        #expect(reopened.endOffset(forEpoch: 1) == (1, 3))
        #expect(reopened.endOffset(forEpoch: 2) == (2, 6))
        #expect(reopened.latestEpoch == 3)
        try reopened.close()
        try source.delete()
    }
}
