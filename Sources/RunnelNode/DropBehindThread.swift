import Foundation
import RunnelLog

/// Carries out the logs' drop-behind requests on one background thread, in order, so appends
/// never wait for a writeback (`DropBehind`). Requests queue while the thread works, up to
/// `maxQueued`: each holds a descriptor, so when the disk cannot keep up a request past that is
/// skipped (its pages stay cached until the kernel evicts them) rather than held. The thread
/// lives as long as the process.
final class DropBehindThread: DropBehindSink, @unchecked Sendable {
    static let maxQueued = 256
    private let condition = NSCondition()
    private var queue: [(handle: any PageCacheHandle, from: Int64, to: Int64)] = []

    init() {
        let thread = Thread { [self] in run() }
        thread.name = "runnel-drop-behind"
        thread.start()
    }

    func drop(_ handle: any PageCacheHandle, from: Int64, to: Int64) {
        condition.lock()
        guard queue.count < Self.maxQueued else {
            condition.unlock()
            handle.close()
            return
        }
        queue.append((handle, from, to))
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            for request in batch {
                request.handle.drop(from: request.from, to: request.to)
                request.handle.close()
            }
        }
    }
}
