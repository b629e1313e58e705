import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelReplication
import RunnelWire

/// acks=all appends waiting for replication (Kafka's DelayedProduce purgatory). One operation
/// per append request (a Produce, or a coordinator's write to an internal topic) that has at
/// least one partition waiting; each waiting partition holds a `PendingProduce` in its
/// replication core under its own `ProduceID`. The cores decide when each completes (the high
/// watermark covers it, the replica stopped leading, or its deadline passed) and say so with
/// `.completeProduce` actions, which the broker routes here; the operation answers, on its own
/// event loop, once every partition has.
final class DelayedProducePurgatory: @unchecked Sendable {
    /// One waiting append request.
    final class Operation: @unchecked Sendable {
        let eventLoop: any EventLoop
        /// Each waiting partition, by the id its core knows it under.
        let waiting: [ProduceID: Partition]
        /// Runs once on `eventLoop` with each waiting append's answer (by id: a request may name
        /// a partition twice).
        let complete: @Sendable ([ProduceID: ErrorCode]) -> Void
        // Guarded by the purgatory's lock.
        var answers: [ProduceID: ErrorCode] = [:]
        var done = false
        var timeout: Scheduled<Void>?

        init(
            eventLoop: any EventLoop, waiting: [ProduceID: Partition],
            complete: @escaping @Sendable ([ProduceID: ErrorCode]) -> Void
        ) {
            self.eventLoop = eventLoop
            self.waiting = waiting
            self.complete = complete
        }
    }

    private let lock = NIOLock()
    private var nextId: UInt64 = 0
    private var operations: [ProduceID: Operation] = [:]

    /// A fresh id for one partition of one waiting append.
    func allocateId() -> ProduceID {
        lock.withLock {
            nextId += 1
            return ProduceID(nextId)
        }
    }

    /// Parks `operation`, then asks each of its partitions to wait for its append to be
    /// replicated (some may answer at once). Past `deadlineMs` (monotonic) the partitions still
    /// waiting are expired by their cores. Must be called on `operation.eventLoop`.
    func watch(_ operation: Operation, produces: [ProduceID: PendingProduce], deadlineMs: Int64, nowMs: Int64) {
        lock.withLock {
            for id in operation.waiting.keys { operations[id] = operation }
        }
        operation.timeout = operation.eventLoop.scheduleTask(in: .milliseconds(max(0, deadlineMs - nowMs))) { [self] in
            // The cores expire what is still waiting at the deadline (their answer comes back as
            // `.completeProduce` actions through `completed`).
            let remaining = lock.withLock {
                operation.waiting.filter { operation.answers[$0.key] == nil }.map(\.value)
            }
            for partition in remaining { partition.expireProduces(nowMs: deadlineMs) }
            // A partition whose core no longer knows the produce (it was removed meanwhile) is timed out here.
            finishIfStuck(operation)
        }
        for (id, produce) in produces.sorted(by: { $0.key < $1.key }) {
            operation.waiting[id]!.awaitReplication(produce)
        }
    }

    /// A core answered produce `id` with `code` (routed from its `.completeProduce` action).
    func completed(_ id: ProduceID, code: ErrorCode) {
        let ready: Operation? = lock.withLock {
            guard let operation = operations.removeValue(forKey: id), !operation.done, operation.waiting[id] != nil
            else { return nil }
            operation.answers[id] = code
            guard operation.answers.count == operation.waiting.count else { return nil }
            operation.done = true
            return operation
        }
        guard let ready else { return }
        finish(ready)
    }

    /// At the deadline, after the cores expired their produces: any partition still without an
    /// answer (its replica left the broker) times out.
    private func finishIfStuck(_ operation: Operation) {
        let stuck: Bool = lock.withLock {
            guard !operation.done else { return false }
            for id in operation.waiting.keys where operation.answers[id] == nil {
                operations.removeValue(forKey: id)
                operation.answers[id] = .requestTimedOut
            }
            operation.done = true
            return true
        }
        if stuck { finish(operation) }
    }

    private func finish(_ operation: Operation) {
        let answers = lock.withLock { operation.answers }
        if operation.eventLoop.inEventLoop {
            operation.timeout?.cancel()
            operation.complete(answers)
        } else {
            operation.eventLoop.execute {
                operation.timeout?.cancel()
                operation.complete(answers)
            }
        }
    }

    /// Appends waiting for replication (for tests and gauges).
    var waitingCount: Int { lock.withLock { Set(operations.values.map { ObjectIdentifier($0) }).count } }
}
