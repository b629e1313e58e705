// Flush on roll: a log's rolled segments are synced (log and indexes) and the recovery point moves
// to the active segment's base offset, whatever the flush policy, as Kafka flushes a log up to a
// new segment when it rolls; the active segment waits for the policy. A segment removed while it
// syncs, or a truncation meanwhile, neither fails the sync nor moves the recovery point past what
// is on disk. New logs made in a batch (a broker opening a topic's replicas) are synced together.
import Foundation
import NIOCore
import RunnelCore
import Testing
@testable import RunnelLog
import RunnelTestSupport

/// Records which files are synced, and can hold one sync of a file whose name ends with a suffix
/// until the test lets it go on.
final class SyncRecordingDisk: InterceptingDisk, @unchecked Sendable {
    private let lock = NSLock()
    private var _synced: [String] = []
    private var _syncedPaths: [String] = []
    private var gateSuffix: String?
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)

    /// File names (not paths) synced so far; a directory is "<dir>".
    var synced: [String] { lock.withLock { _synced } }
    /// The paths synced so far, directories' included.
    var syncedPaths: [String] { lock.withLock { _syncedPaths } }
    func clear() {
        lock.withLock {
            _synced = []
            _syncedPaths = []
        }
    }

    /// Holds the next sync of a file whose name ends with `suffix`.
    func gate(_ suffix: String) { lock.withLock { gateSuffix = suffix } }

    override func sync(_ file: (any DiskFile)?, path: String) throws {
        let name = file == nil ? "<dir>" : (path as NSString).lastPathComponent
        let held = lock.withLock { () -> Bool in
            _synced.append(name)
            _syncedPaths.append(path)
            guard let suffix = gateSuffix, name.hasSuffix(suffix) else { return false }
            gateSuffix = nil
            return true
        }
        if held {
            entered.signal()
            release.wait()
        }
        try super.sync(file, path: path)
    }
}

@Suite("PartitionLog flush on roll")
struct RollFlushTests {
    let tp = TopicPartition("t", 0)

    /// A log with two rolled segments (offsets 0-2 and 3-5) and an active one from 6 holding 6-8.
    func rolledLog(
        _ config: LogConfig = LogConfig()
    ) throws -> (dir: String, disk: SyncRecordingDisk, log: PartitionLog) {
        let dir = tempDir()
        let disk = SyncRecordingDisk()
        let log = try PartitionLog(topicPartition: tp, directory: dir, config: config, disk: disk, nowMs: 0)
        for b in 0..<3 {
            let (payload, infos) = clientBatch(3, tag: "b\(b)-")
            _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
            if b < 2 { try log.roll(nowMs: 0) }
        }
        #expect(log.segmentCount == 3)
        disk.clear()
        return (dir, disk, log)
    }

    @Test(
        "rolled segments are synced, indexes too, and the recovery point moves to the active segment; the active one waits for the flush policy"
    )
    func rolledSegmentsSynced() throws {
        let (_, disk, log) = try rolledLog()
        #expect(log.recoveryPoint == 0)
        #expect(try log.flushIfDue(nowMs: 1))
        #expect(log.recoveryPoint == 6)
        let synced = Set(disk.synced)
        for base in ["00000000000000000000", "00000000000000000003"] {
            for ext in [".log", ".index", ".timeindex"] { #expect(synced.contains(base + ext), "\(base + ext) synced") }
        }
        #expect(synced.contains("<dir>"), "new segment files' directory entries synced")
        #expect(
            !synced.contains { $0.hasPrefix("00000000000000000006") }, "the active segment is left to the flush policy")

        disk.clear()
        #expect(try !log.flushIfDue(nowMs: 2), "nothing more is due")
        #expect(disk.synced.isEmpty)
        try log.close()
    }

    @Test(
        "index files hold a descriptor only while entries are added: opened by an append, closed once their segment is rolled and synced, and after a load"
    )
    func indexFilesOpenOnlyWhileWritten() throws {
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: SyncRecordingDisk(), nowMs: 0)
        func open(_ i: Int) -> (Bool, Bool) {
            log.lock.withLock { (log.segments[i].offsetIndexFile.isOpen, log.segments[i].timeIndexFile.isOpen) }
        }
        #expect(open(0) == (false, false), "a new segment has no index entry to write")
        for ext in [".index", ".timeindex"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/00000000000000000000" + ext), "Kafka's layout")
        }
        let (payload, infos) = clientBatch(3, tag: "a-")
        _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
        #expect(open(0) == (true, true), "the first batch's entries were written")
        try log.roll(nowMs: 0)
        #expect(open(1) == (false, false))
        #expect(try log.flushIfDue(nowMs: 1))
        #expect(open(0) == (false, false), "rolled and synced: closed")
        let (more, moreInfos) = clientBatch(2, tag: "b-")
        _ = try log.appendAsLeader(more, batches: moreInfos, leaderEpoch: 1, nowMs: 0)
        let indexes = log.lock.withLock {
            log.segments.map { $0.offsetIndex.map { [$0.relativeOffset, $0.position] } }
        }
        try log.close()

        let reopened = try PartitionLog(
            topicPartition: tp, directory: dir, config: LogConfig(), disk: SyncRecordingDisk(), nowMs: 0)
        #expect(
            reopened.lock.withLock {
                reopened.segments.map { $0.offsetIndex.map { [$0.relativeOffset, $0.position] } }
            }
                == indexes, "the indexes load from their files")
        #expect(
            reopened.lock.withLock {
                reopened.segments.allSatisfy { !$0.offsetIndexFile.isOpen && !$0.timeIndexFile.isOpen }
            })
        try reopened.close()
    }

    @Test("with flush.messages reached, the whole log is synced, the active segment too")
    func policySyncsActive() throws {
        var config = LogConfig()
        config.flushMessages = 5
        let (_, disk, log) = try rolledLog(config)
        #expect(try log.flushIfDue(nowMs: 1))
        #expect(log.recoveryPoint == 9)
        #expect(disk.synced.contains("00000000000000000006.log"))
        try log.close()
    }

    @Test("a log deleted while its rolled segment syncs: no error, nothing left behind")
    func deletedWhileSyncing() throws {
        let (dir, disk, log) = try rolledLog()
        disk.gate("00000000000000000000.log")
        let outcome = NSLock()
        nonisolated(unsafe) var result: Result<Bool, any Error>?
        let done = DispatchSemaphore(value: 0)
        Thread {
            let r = Result { try log.flushIfDue(nowMs: 1) }
            outcome.withLock { result = r }
            done.signal()
        }.start()
        disk.entered.wait()
        try log.delete()
        disk.release.signal()
        done.wait()
        let r = outcome.withLock { result }
        #expect(throws: Never.self) { try r!.get() }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    @Test("a truncation while rolled segments sync keeps the recovery point at or below the new log end")
    func truncatedWhileSyncing() throws {
        let (_, disk, log) = try rolledLog()
        disk.gate("00000000000000000000.log")
        let done = DispatchSemaphore(value: 0)
        Thread {
            _ = try? log.flushIfDue(nowMs: 1)
            done.signal()
        }.start()
        disk.entered.wait()
        try log.truncate(to: 1)
        disk.release.signal()
        done.wait()
        #expect(log.logEndOffset == 1)
        #expect(log.recoveryPoint <= 1, "the recovery point \(log.recoveryPoint) is past the log end")
        try log.close()
    }

    @Test(
        "new logs made in a batch are durable once syncNewLogs runs or newLogsPerSync wait: each partition.metadata and directory, and their log dir once"
    )
    func newLogsSyncedTogether() throws {
        let root = tempDir()
        let disk = SyncRecordingDisk()
        let manager = try LogManager(logDirs: [root], defaultConfig: LogConfig(), disk: disk, nowMs: 0)
        let id = KafkaUUID(high: 7, low: 7)
        disk.clear()
        for p in Int32(0)..<3 {
            _ = try manager.getOrCreate(
                TopicPartition("t", p), topicId: id, config: LogConfig(), nowMs: 0, deferSync: true)
        }
        #expect(disk.syncedPaths.isEmpty, "nothing synced while the batch is made")
        try manager.syncNewLogs()
        let partitions = (0..<3).map { root + "/t-\($0)" }
        #expect(
            Set(disk.syncedPaths) == Set(partitions + partitions.map { $0 + "/partition.metadata" } + [root]),
            "\(disk.syncedPaths)")
        #expect(disk.syncedPaths.filter { $0 == root }.count == 1, "the log dir is synced once for the batch")
        disk.clear()
        try manager.syncNewLogs()
        #expect(disk.syncedPaths.isEmpty, "nothing left to sync")
        _ = try manager.getOrCreate(TopicPartition("t", 3), topicId: id, config: LogConfig(), nowMs: 0)
        #expect(
            Set(disk.syncedPaths) == [root + "/t-3", root + "/t-3/partition.metadata", root],
            "without deferSync, durable on return")
        #expect(manager.topicId(of: TopicPartition("t", 1)) == id)
        // A log deleted before its sync is passed over, not a disk failure.
        _ = try manager.getOrCreate(TopicPartition("t", 4), topicId: id, config: LogConfig(), nowMs: 0, deferSync: true)
        try manager.delete(TopicPartition("t", 4))
        disk.clear()
        try manager.syncNewLogs()
        #expect(disk.syncedPaths == [root], "\(disk.syncedPaths)")
        disk.clear()
        let many = LogManager.newLogsPerSync
        for p in 0..<many {
            _ = try manager.getOrCreate(
                TopicPartition("u", Int32(p)), topicId: id, config: LogConfig(), nowMs: 0, deferSync: true)
            #expect(disk.syncedPaths.isEmpty == (p < many - 1), "synced once \(many) wait, not before")
        }
        #expect(disk.syncedPaths.filter { $0.hasSuffix("/partition.metadata") }.count == many)
    }
}
