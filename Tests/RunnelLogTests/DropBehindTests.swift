// Drop-behind: a log with a window asks for everything but its newest `window` bytes to leave
// the page cache, in steps that overlap (a page still being written back at one request is
// dropped at the next), across segment rolls, and the pages do leave it.
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import Testing
@testable import RunnelLog

/// Records requests; with `execute`, carries them out at once.
final class RecordingSink: DropBehindSink, @unchecked Sendable {
    let execute: Bool
    private let lock = NIOLock()
    private var _requests: [(path: Int, from: Int64, to: Int64)] = []
    var requests: [(path: Int, from: Int64, to: Int64)] { lock.withLock { _requests } }

    init(execute: Bool = false) { self.execute = execute }

    func drop(_ handle: any PageCacheHandle, from: Int64, to: Int64) {
        let fd = Int((handle as? PosixPageCacheHandle)?.fd ?? -1)
        lock.withLock { _requests.append((fd, from, to)) }
        if execute { handle.drop(from: from, to: to) }
        handle.close()
    }
}

/// How many of the file's pages are in the page cache (mincore over a read-only mapping).
func residentPages(_ path: String) -> (resident: Int, total: Int) {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    let size = Int(st.st_size)
    guard size > 0, let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return (0, 0) }
    defer { munmap(map, size) }
    let pages = (size + 4095) / 4096
    var vec = [UInt8](repeating: 0, count: pages)
    _ = mincore(map, size, &vec)
    return (vec.filter { $0 & 1 == 1 }.count, pages)
}

@Suite("Drop-behind")
struct DropBehindTests {
    /// Appends `megabytes` of 100 KB leader batches.
    func fill(_ log: PartitionLog, megabytes: Int) throws {
        for _ in 0..<(megabytes * 10) {
            let (payload, infos) = clientBatch(100, valueBytes: 1000)
            _ = try log.appendAsLeader(payload, batches: infos, leaderEpoch: 1, nowMs: 0)
        }
    }

    @Test("requests cover the log up to a window behind its end, each reaching a step back, across rolls")
    func requests() throws {
        let sink = RecordingSink()
        var config = LogConfig()
        config.segmentBytes = 6_000_000
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: config, disk: PosixDisk(), nowMs: 0)
        let policy = DropBehind(windowBytes: 2 << 20, sink: sink)
        #expect(policy.stepBytes == 1 << 20)
        log.setDropBehind(policy)
        try fill(log, megabytes: 20)
        #expect(log.segmentCount >= 3)
        let requests = sink.requests
        #expect(requests.count >= 10)
        for r in requests { #expect(r.from < r.to) }
        // Every byte more than window + step behind the end was asked for at least once.
        let total = Int64(try log.readBytes(from: 0, maxBytes: 100_000_000).readableBytes)
        let covered = requests.reduce(Int64(0)) { $0 + ($1.to - $1.from) }
        #expect(covered >= total - policy.windowBytes - policy.stepBytes)
        // Nothing inside the window: the bytes asked for, plus the window, fit in the log (with
        // each request's overlap of at most a step counted twice).
        #expect(covered - Int64(requests.count) * policy.stepBytes <= total - policy.windowBytes)
        try log.close()
    }

    @Test("after a truncation below where the last request ended and a roll, requests go on in the new segment")
    func truncateThenRoll() throws {
        let sink = RecordingSink()
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: tempDir(), config: LogConfig(), disk: PosixDisk(),
            nowMs: 0)
        log.setDropBehind(DropBehind(windowBytes: 2 << 20, sink: sink))
        try fill(log, megabytes: 6)
        let before = sink.requests.count
        #expect(before > 0)
        // A follower's truncation cuts the segment below the last request's end, then it rolls.
        try log.truncate(to: 1_000)
        try log.roll(nowMs: 0)
        try fill(log, megabytes: 6)
        let later = sink.requests.dropFirst(before)
        #expect(later.count >= 2, "drop-behind stopped after the truncation")
        try log.close()
    }

    @Test("the pages behind the window leave the page cache; the window's stay")
    func pagesLeave() throws {
        let sink = RecordingSink(execute: true)
        let dir = tempDir()
        let log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        log.setDropBehind(DropBehind(windowBytes: 4 << 20, sink: sink))
        try fill(log, megabytes: 12)
        // Written back: the next request drops every clean page it covers.
        try log.flush(nowMs: 0)
        try fill(log, megabytes: 2)
        let (resident, total) = residentPages(dir + "/00000000000000000000.log")
        #expect(total > 3000)
        // About 4-6 MB (the window and a step) of ~14 MB stay.
        #expect(resident < total / 2, "\(resident) of \(total) pages still cached")
        #expect(resident > 512, "the window stays cached")
        try log.close()
    }
}
