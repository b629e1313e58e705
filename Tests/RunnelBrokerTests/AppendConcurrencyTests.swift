// Fetches do not wait for appends: while an append is inside its write into the page cache,
// a log read, the log end, and a follower's fetch bookkeeping on the leader's partition all
// answer at once, and see only what was published before it. (Before the split into an append
// lock and a state lock, each of them waited out the write: on a machine whose fresh pages are
// slow to write, the followers' fetches queued behind every produce.)
import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker
@testable import RunnelLog
import RunnelTestSupport

/// The real disk, except that while armed, the next write to a `.log` file stops at a gate
/// until the test opens it.
final class GatedDisk: InterceptingDisk, @unchecked Sendable {
    private let armed = NIOLockedValueBox(false)
    /// Signalled when a write reaches the gate.
    let entered = DispatchSemaphore(value: 0)
    /// Signalled by the test to let that write through.
    let release = DispatchSemaphore(value: 0)

    func arm() { armed.withLockedValue { $0 = true } }

    /// Takes the gate if it is armed (once per arming).
    private func take() -> Bool {
        armed.withLockedValue { value in
            defer { value = false }
            return value
        }
    }

    override func write(_ buffer: ByteBuffer, at offset: Int64, to file: any DiskFile) throws {
        if file.path.hasSuffix(".log"), take() {
            entered.signal()
            release.wait()
        }
        try file.write(buffer, at: offset)
    }
}

/// Runs `body` on a thread of its own (not a dispatch queue's, whose pool may wait before adding
/// a thread while another is blocked at the gate).
func onThread(_ body: @escaping @Sendable () -> Void) {
    Thread { body() }.start()
}

/// Runs `body` on another thread; its result, or nil when it took longer than `seconds`.
func finishes<T: Sendable>(within seconds: Double, _ body: @escaping @Sendable () throws -> T) -> T? {
    let done = DispatchSemaphore(value: 0)
    let result = NIOLockedValueBox<T?>(nil)
    onThread {
        let value = try? body()
        result.withLockedValue { $0 = value }
        done.signal()
    }
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return result.withLockedValue { $0 }
}

@Suite("Appends and fetches")
struct AppendConcurrencyTests {
    @Test("a log read and the log end answer while an append is writing, and show only what was published")
    func logReadDuringAppend() throws {
        let disk = GatedDisk()
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDirectory(), config: LogConfig(), disk: disk,
            nowMs: 0)
        let (first, firstInfos) = recordBatch(3, tag: "a")
        _ = try log.appendAsLeader(first, batches: firstInfos, leaderEpoch: 0, nowMs: 0)

        disk.arm()
        let (second, secondInfos) = recordBatch(2, tag: "b")
        let appended = DispatchSemaphore(value: 0)
        onThread {
            _ = try? log.appendAsLeader(second, batches: secondInfos, leaderEpoch: 0, nowMs: 0)
            appended.signal()
        }
        #expect(disk.entered.wait(timeout: .now() + 10) == .success, "the append reaches its write")
        let seen = finishes(within: 3) { () -> (Int64, Int) in
            let bytes = try log.readBytes(from: 0, maxBytes: 1_000_000)
            return (log.logEndOffset, try RecordBatches.decode(bytes).flatMap(\.records).count)
        }
        disk.release.signal()
        #expect(appended.wait(timeout: .now() + 10) == .success)
        #expect(seen?.0 == 3, "the log end did not wait for the write, and does not count its records yet")
        #expect(seen?.1 == 3, "the read did not wait, and returned only the published batch")
        #expect(log.logEndOffset == 5)
        #expect(try RecordBatches.decode(try log.readBytes(from: 0, maxBytes: 1_000_000)).flatMap(\.records).count == 5)
    }

    @Test("a follower's fetch on the leader answers while a produce is writing")
    func followerFetchDuringProduce() throws {
        let disk = GatedDisk()
        let partition = try threeReplicaLeader(disk: disk)
        let (first, firstInfos) = recordBatch(3, tag: "a")
        _ = try partition.appendAsLeader(
            first, batches: firstInfos, requiredAcks: -1, minInsyncReplicas: 2, nowMs: 0, monotonicMs: 0)

        disk.arm()
        let (second, secondInfos) = recordBatch(2, tag: "b")
        let appended = DispatchSemaphore(value: 0)
        onThread {
            _ = try? partition.appendAsLeader(
                second, batches: secondInfos, requiredAcks: -1, minInsyncReplicas: 2, nowMs: 0, monotonicMs: 0)
            appended.signal()
        }
        #expect(disk.entered.wait(timeout: .now() + 10) == .success, "the produce reaches its write")
        let answer = finishes(within: 3) { () -> [Int64] in
            guard case .read(let hw, let logEnd) = fetchAsFollower(partition, replica: 2, from: 3) else { return [] }
            return [hw, logEnd, partition.highWatermark, Int64(partition.state.leader)]
        }
        disk.release.signal()
        #expect(appended.wait(timeout: .now() + 10) == .success)
        // Replica 3 has not fetched, so the high watermark stays at 0; the log end is the one
        // published before the produce.
        #expect(
            answer == [0, 3, 0, 1], "the fetch did not wait for the produce's write, and saw the log end before it")
        #expect(partition.log.logEndOffset == 5)
    }
}
