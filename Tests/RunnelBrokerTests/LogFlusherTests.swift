// The node's sync step: a failed fsync of a partition log stops the process with exit code 1 and
// no clean shutdown (Linux may drop the dirty pages after reporting the error once, so carrying on
// could move the recovery point past data that never reached the disk); syncs that succeed let it
// go on and move the recovery point.
import Foundation
import Logging
import NIOCore
import RunnelCore
import RunnelTestSupport
import Testing
@testable import RunnelLog
@testable import RunnelNode

/// A real disk on which every fsync of a partition's log file fails with EIO once `failing`
/// exists as a file beside the logs (a marker, since an exit test's body shares no memory with
/// the test).
final class EIODisk: InterceptingDisk, @unchecked Sendable {
    let failing: String

    init(failing: String) { self.failing = failing }

    override func sync(_ file: (any DiskFile)?, path: String) throws {
        if path.hasSuffix(".log"), FileManager.default.fileExists(atPath: failing) {
            throw DiskError(operation: "fsync", path: path, errno: EIO, message: "Input/output error")
        }
        try super.sync(file, path: path)
    }
}

/// A log manager on `EIODisk` with partition t-0 rolled once (offsets 0-2 in the first segment).
func rolledManager(_ dir: String) throws -> (LogManager, PartitionLog) {
    let manager = try LogManager(
        logDirs: [dir + "/data"], defaultConfig: LogConfig(), disk: EIODisk(failing: dir + "/fail"), nowMs: 0)
    let log = try manager.getOrCreate(
        TopicPartition("t", 0), topicId: KafkaUUID(high: 1, low: 1), config: LogConfig(), nowMs: 0)
    let (payload, infos) = recordBatch(3)
    _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 0, nowMs: 0)
    try log.roll(nowMs: 0)
    return (manager, log)
}

@Suite("The node's log flusher")
struct LogFlusherTests {
    @Test("syncs a rolled segment and moves the recovery point past it")
    func syncsRolled() throws {
        let (manager, log) = try rolledManager(scratchDirectory("flusher"))
        #expect(log.recoveryPoint == 0)
        LogFlusher.run(manager, nowMs: 1, logger: Logger(label: "test"))
        #expect(log.recoveryPoint == 3)
    }

    @Test("a failed fsync stops the process with exit code 1")
    func failedSyncHalts() async throws {
        // The child process exits without cleaning up, so its directory is named after this
        // process (its parent), which removes it.
        let dir = NSTemporaryDirectory() + "runnel-flusher-eio-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await #expect(processExitsWith: .exitCode(1)) {
            let dir = NSTemporaryDirectory() + "runnel-flusher-eio-\(getppid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let (manager, _) = try rolledManager(dir)
            guard FileManager.default.createFile(atPath: dir + "/fail", contents: Data()) else { return }
            LogFlusher.run(manager, nowMs: 1, logger: Logger(label: "test"))
        }
    }
}
