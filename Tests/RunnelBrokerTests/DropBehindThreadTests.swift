// The node's drop-behind thread: requests are carried out in order and every handle is closed;
// while the thread is stuck on a slow writeback, at most `maxQueued` requests wait (each holds a
// descriptor) and the rest are closed at once, skipped.
import Foundation
import NIOConcurrencyHelpers
import RunnelLog
import Testing
@testable import RunnelNode

/// A handle that records its drop and close; the first drop can be held until released.
final class HeldHandle: PageCacheHandle, @unchecked Sendable {
    static let log = NIOLockedValueBox<[String]>([])
    let name: String
    let hold: DispatchSemaphore?
    let started = DispatchSemaphore(value: 0)

    init(_ name: String, hold: DispatchSemaphore? = nil) {
        self.name = name
        self.hold = hold
    }

    func drop(from: Int64, to: Int64) {
        started.signal()
        hold?.wait()
        Self.log.withLockedValue { $0.append("drop \(name) \(from)-\(to)") }
    }

    func close() { Self.log.withLockedValue { $0.append("close \(name)") } }
}

@Suite("Drop-behind thread", .serialized)
struct DropBehindThreadTests {
    func waitFor(_ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
    }

    @Test("requests run in order and every handle is closed; past maxQueued waiting, requests are skipped")
    func boundedQueue() {
        HeldHandle.log.withLockedValue { $0 = [] }
        let thread = DropBehindThread()
        let release = DispatchSemaphore(value: 0)
        let first = HeldHandle("first", hold: release)
        thread.drop(first, from: 0, to: 1)
        // Once the thread is stuck in the first drop, fill the queue and then some.
        first.started.wait()
        let extra = 10
        for i in 0..<(DropBehindThread.maxQueued + extra) {
            thread.drop(HeldHandle("r\(i)"), from: Int64(i), to: Int64(i + 1))
        }
        let skipped = HeldHandle.log.withLockedValue { $0 }
        #expect(skipped.count == extra, "requests past the bound are closed at once")
        #expect(skipped.allSatisfy { $0.hasPrefix("close r") })
        release.signal()
        waitFor { HeldHandle.log.withLockedValue { $0.count } == 2 * (DropBehindThread.maxQueued + 1) + extra }
        let log = HeldHandle.log.withLockedValue { $0 }.dropFirst(extra)
        let drops = log.filter { $0.hasPrefix("drop") }
        #expect(drops.count == DropBehindThread.maxQueued + 1)
        #expect(drops.first == "drop first 0-1")
        #expect(drops.dropFirst().map { $0 } == (0..<DropBehindThread.maxQueued).map { "drop r\($0) \($0)-\($0 + 1)" })
        #expect(log.filter { $0.hasPrefix("close") }.count == DropBehindThread.maxQueued + 1)
    }
}
