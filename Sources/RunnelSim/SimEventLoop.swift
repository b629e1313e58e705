import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// The simulator's clock and run queue: virtual milliseconds and the tasks due at each, in the
/// order they were queued. Every event loop of a simulation runs on it, so the whole world
/// advances one task at a time, in an order the seed alone decides.
public final class SimScheduler: @unchecked Sendable {
    /// Virtual time in ms.
    public private(set) var nowMs: Int64
    private var queue = EventQueue()
    /// The loop whose task runs now (nil between tasks).
    fileprivate var current: SimEventLoop?
    /// Tasks run so far.
    public private(set) var eventsRun = 0

    public init(startMs: Int64 = 1_000) { self.nowMs = startMs }

    /// Queues `work` at virtual time `atMs`.
    func push(atMs: Int64, _ work: @escaping () -> Void) {
        queue.push(at: max(atMs, nowMs), work)
    }

    /// Runs the next task; false when none is left.
    @discardableResult
    public func runNext() -> Bool {
        guard let (time, work) = queue.pop() else { return false }
        nowMs = max(nowMs, time)
        eventsRun += 1
        work()
        return true
    }

    /// The time of the next task, if any.
    public var nextTimeMs: Int64? { queue.nextTime }
}

/// A NIO event loop on the simulator's virtual clock: `execute` and `scheduleTask` queue work on
/// the `SimScheduler`, and nothing runs until the simulation runs it. One per simulated process,
/// so the real drivers (the broker, its fetchers and purgatories, the Raft driver, the group
/// coordinator's host) run on it unchanged. A crashed process's loop is `kill`ed: none of its
/// queued work ever runs, and it accepts no more.
public final class SimEventLoop: EventLoop, @unchecked Sendable, CustomStringConvertible {
    let scheduler: SimScheduler
    public let name: String
    /// False once the process it stands for crashed.
    public private(set) var alive = true
    private var nextTaskId: UInt64 = 0
    /// Scheduled tasks not yet run or cancelled, so a cancellation can find them.
    private var cancelled: Set<UInt64> = []

    public init(scheduler: SimScheduler, name: String) {
        self.scheduler = scheduler
        self.name = name
    }

    public var description: String { "SimEventLoop(\(name))" }

    /// The process crashed: its queued work never runs (the graveyard keeps what it held alive in
    /// debug builds, where NIO checks that no promise is dropped unfulfilled).
    public func kill() {
        alive = false
    }

    /// Runs `work` on this loop after `ms` virtual ms (the simulation's own single-threaded code
    /// uses this instead of NIO's `@Sendable` API).
    func schedule(afterMs ms: Int64, _ work: @escaping () -> Void) {
        enqueue(atMs: scheduler.nowMs + max(0, ms), work)
    }

    // MARK: EventLoop

    public var inEventLoop: Bool { scheduler.current === self }

    public var now: NIODeadline { .uptimeNanoseconds(UInt64(max(0, scheduler.nowMs)) * 1_000_000) }

    public func execute(_ task: @escaping @Sendable () -> Void) {
        enqueue(atMs: scheduler.nowMs, task)
    }

    private func enqueue(atMs: Int64, _ task: @escaping () -> Void) {
        guard alive else {
            SimGraveyard.keep(task)
            return
        }
        scheduler.push(atMs: atMs) { [self] in
            guard alive else {
                SimGraveyard.keep(task)
                return
            }
            let previous = scheduler.current
            scheduler.current = self
            task()
            scheduler.current = previous
        }
    }

    @discardableResult
    public func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let delayNs = Int64(deadline.uptimeNanoseconds) - Int64(now.uptimeNanoseconds)
        return scheduleTask(in: .nanoseconds(max(0, delayNs)), task)
    }

    @discardableResult
    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        nextTaskId += 1
        let id = nextTaskId
        // Round up to whole virtual milliseconds: a timer never fires early.
        let delayMs = (max(0, delay.nanoseconds) + 999_999) / 1_000_000
        enqueue(atMs: scheduler.nowMs + delayMs) { [self] in
            guard cancelled.remove(id) == nil else { return }
            do {
                promise.assumeIsolated().succeed(try task())
            } catch {
                promise.fail(error)
            }
        }
        return Scheduled(promise: promise, cancellationTask: { [self] in cancelled.insert(id) })
    }

    public func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        alive = false
        queue.async { callback(nil) }
    }

    public func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on \(name)", file: file, line: line)
    }

    public func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on \(name)", file: file, line: line)
    }
}

/// What crashed processes held when they stopped. A crash drops a process's state without
/// running any of its code, as a kill -9 does; but NIO's debug builds stop the program when an
/// unfulfilled promise is freed, so in debug builds the dead state is kept for the life of the
/// process instead of being freed. Release builds (the soaks) keep nothing.
enum SimGraveyard {
    #if DEBUG
    nonisolated(unsafe) private static var kept: [Any] = []
    private static let lock = NIOLock()
    #endif

    static func keep(_ value: Any) {
        #if DEBUG
        lock.withLock { kept.append(value) }
        #endif
    }
}
