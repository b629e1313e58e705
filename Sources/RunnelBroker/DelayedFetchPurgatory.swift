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

        init(eventLoop: any EventLoop, partitions: [TopicPartition], tryComplete: @escaping () -> Bool, complete: @escaping () -> Void) {
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
    private var watchers: [TopicPartition: [ObjectIdentifier: Waiter]] = [:]

    /// Parks a fetch. Must be called on `waiter.eventLoop`.
    func watch(_ waiter: Waiter, waitMs: Int64) {
        lock.withLock {
            for tp in waiter.partitions { watchers[tp, default: [:]][ObjectIdentifier(waiter)] = waiter }
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
                watchers[tp]?.removeValue(forKey: ObjectIdentifier(waiter))
                if watchers[tp]?.isEmpty == true { watchers.removeValue(forKey: tp) }
            }
        }
    }

    /// Re-checks fetches waiting on `tp` (new data became visible): one task per event loop
    /// for all of its waiters, not one per waiter.
    func notify(_ tp: TopicPartition) {
        let waiting: [Waiter] = lock.withLock { watchers[tp].map { Array($0.values) } ?? [] }
        guard !waiting.isEmpty else { return }
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, waiters: [Waiter])] = [:]
        for waiter in waiting {
            byLoop[ObjectIdentifier(waiter.eventLoop), default: (waiter.eventLoop, [])].waiters.append(waiter)
        }
        for (loop, waiters) in byLoop.values {
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
