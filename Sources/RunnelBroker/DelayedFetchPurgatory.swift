import NIOConcurrencyHelpers
import NIOCore
import RunnelCore

/// Long-polling fetches waiting for data (Kafka's DelayedFetch purgatory): each waits on some
/// partitions until `tryComplete` says it has enough, or its deadline passes. Completion always
/// runs on the fetch's own loop. Partitions wake it when their high watermark or log end moves.
final class DelayedFetchPurgatory: @unchecked Sendable {
    final class Waiter: @unchecked Sendable {
        let eventLoop: any EventLoop
        let partitions: [TopicPartition]
        /// Returns true when the fetch can answer now. Runs on `eventLoop`.
        let tryComplete: () -> Bool
        /// Answers with whatever is there. Runs on `eventLoop`, once.
        let complete: () -> Void
        var done = false  // confined to eventLoop
        var timeout: Scheduled<Void>?
        /// Set when parked: the order waiters are re-checked in (so a simulated run replays).
        fileprivate var id: UInt64 = 0

        init(
            eventLoop: any EventLoop, partitions: [TopicPartition], tryComplete: @escaping () -> Bool,
            complete: @escaping () -> Void
        ) {
            self.eventLoop = eventLoop
            self.partitions = partitions
            self.tryComplete = tryComplete
            self.complete = complete
        }

        func finish() {
            guard !done else { return }
            done = true
            timeout?.cancel()
            complete()
        }
    }

    private let lock = NIOLock()
    private var nextId: UInt64 = 0
    private var watchers: [TopicPartition: [UInt64: Waiter]] = [:]

    /// Parks a fetch. Must be called on `waiter.eventLoop`.
    func watch(_ waiter: Waiter, waitMs: Int64) {
        lock.withLock {
            nextId += 1
            waiter.id = nextId
            for tp in waiter.partitions { watchers[tp, default: [:]][waiter.id] = waiter }
        }
        waiter.timeout = waiter.eventLoop.scheduleTask(in: .milliseconds(waitMs)) { [self] in
            remove(waiter)
            waiter.finish()
        }
        // Data may have arrived between the first read and registration.
        if waiter.tryComplete() {
            remove(waiter)
            waiter.finish()
        }
    }

    private func remove(_ waiter: Waiter) {
        lock.withLock {
            for tp in waiter.partitions {
                watchers[tp]?.removeValue(forKey: waiter.id)
                if watchers[tp]?.isEmpty == true { watchers.removeValue(forKey: tp) }
            }
        }
    }

    /// Re-checks fetches waiting on `tp` (new data became visible): one task per event loop
    /// for all of its waiters, not one per waiter.
    func notify(_ tp: TopicPartition) {
        let waiting: [Waiter] = lock.withLock {
            guard let parked = watchers[tp] else { return [] }
            return parked.keys.sorted().map { parked[$0]! }
        }
        guard !waiting.isEmpty else { return }
        // One task per loop, the loops in the order their first waiter parked.
        var byLoop: [(loop: any EventLoop, waiters: [Waiter])] = []
        for waiter in waiting {
            if let i = byLoop.firstIndex(where: { $0.loop === waiter.eventLoop }) {
                byLoop[i].waiters.append(waiter)
            } else {
                byLoop.append((waiter.eventLoop, [waiter]))
            }
        }
        for (loop, waiters) in byLoop {
            loop.execute { [self] in
                for waiter in waiters where !waiter.done && waiter.tryComplete() {
                    remove(waiter)
                    waiter.finish()
                }
            }
        }
    }

    var waitingCount: Int { lock.withLock { Set(watchers.values.flatMap { $0.keys }).count } }
}
