import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelWire

/// Why a broker could not join the cluster, in one sentence for the operator.
public struct BrokerRegistrationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A broker's life with the controller: registration (a new incarnation each start), heartbeats
/// every `broker.heartbeat.interval.ms` carrying how far its metadata has caught up (the
/// controller unfences it once it has), and a controlled shutdown that waits until the controller
/// has moved its partition leadership away. Driven by timers on one event loop, so the simulator
/// runs it on its virtual clock.
public final class BrokerLifecycle: @unchecked Sendable {
    let brokerId: Int32
    let channel: any ControllerChannel
    let eventLoop: any EventLoop
    let logger: Logger
    let heartbeatIntervalMs: Int64
    /// The broker's applied metadata offset.
    let metadataOffset: @Sendable () -> Int64
    /// Called on `eventLoop` with each heartbeat answer from the active controller (whether it
    /// holds the broker fenced); the broker's isolation check counts from the last unfenced one.
    public var onControllerAnswer: (@Sendable (_ fenced: Bool) -> Void)?
    private let state = NIOLockedValueBox<(epoch: Int64, fenced: Bool, shuttingDown: Bool, stopped: Bool)>(
        (-1, true, false, false))
    private var heartbeatTask: RepeatedTask?

    /// How long a registration waits before it is sent again, while no controller accepts it.
    public static let registrationRetryMs: Int64 = 100

    public init(
        brokerId: Int32, channel: any ControllerChannel, heartbeatIntervalMs: Int64, eventLoop: any EventLoop,
        logger: Logger,
        metadataOffset: @escaping @Sendable () -> Int64
    ) {
        self.brokerId = brokerId
        self.channel = channel
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.eventLoop = eventLoop
        self.logger = logger
        self.metadataOffset = metadataOffset
    }

    public var brokerEpoch: Int64 { state.withLockedValue { $0.epoch } }
    public var isFenced: Bool { state.withLockedValue { $0.fenced } }

    /// Registers, trying again every `registrationRetryMs` until the active controller accepts or
    /// `timeoutMs` passes; the future gives the broker epoch.
    public func register(_ registration: BrokerRegistrationRequest, timeoutMs: Int64) -> EventLoopFuture<Int64> {
        let promise = eventLoop.makePromise(of: Int64.self)
        let deadline = eventLoop.now + .milliseconds(timeoutMs)
        attemptRegistration(registration, deadline: deadline, timeoutMs: timeoutMs, promise: promise)
        return promise.futureResult
    }

    private func attemptRegistration(
        _ registration: BrokerRegistrationRequest, deadline: NIODeadline, timeoutMs: Int64,
        promise: EventLoopPromise<Int64>
    ) {
        channel.send(registration, version: 3).hop(to: eventLoop).whenComplete { [self] result in
            if case .success(let answer) = result {
                if answer.errorCode == 0 {
                    state.withLockedValue { $0.epoch = answer.brokerEpoch }
                    logger.info("registered with the controller", metadata: ["brokerEpoch": "\(answer.brokerEpoch)"])
                    promise.succeed(answer.brokerEpoch)
                    return
                }
                let code = ErrorCode(answer.errorCode)
                if code != .notController && code != .duplicateBrokerRegistration {
                    promise.fail(
                        BrokerRegistrationError(
                            "the controller refused the broker's registration: \(code) (\(code.message))"))
                    return
                }
            }
            // No active controller yet, or the previous incarnation's session still lives.
            if state.withLockedValue({ $0.stopped }) {
                promise.fail(BrokerRegistrationError("the broker stopped before it registered"))
                return
            }
            if eventLoop.now > deadline {
                promise.fail(
                    BrokerRegistrationError(
                        "the broker could not register with the controller quorum within initial.broker.registration.timeout.ms (\(timeoutMs) ms); check controller.quorum.voters and that a majority of controllers is up"
                    ))
                return
            }
            eventLoop.scheduleTask(in: .milliseconds(Self.registrationRetryMs)) { [self] in
                attemptRegistration(registration, deadline: deadline, timeoutMs: timeoutMs, promise: promise)
            }
        }
    }

    /// Sends one heartbeat now; the answer is nil when no controller answered.
    @discardableResult
    public func heartbeat() -> EventLoopFuture<BrokerHeartbeatResponse?> {
        let (epoch, shuttingDown) = state.withLockedValue { ($0.epoch, $0.shuttingDown) }
        var request = BrokerHeartbeatRequest()
        request.brokerId = brokerId
        request.brokerEpoch = epoch
        request.currentMetadataOffset = metadataOffset()
        request.wantShutDown = shuttingDown
        return channel.send(request, version: 1).hop(to: eventLoop).map { [self] answer -> BrokerHeartbeatResponse? in
            guard answer.errorCode == 0 else { return nil }
            let wasFenced = state.withLockedValue { s -> Bool in
                let was = s.fenced
                s.fenced = answer.isFenced
                return was
            }
            if wasFenced != answer.isFenced {
                logger.info(
                    answer.isFenced
                        ? "the controller fenced this broker" : "the controller unfenced this broker (caught up)")
            }
            onControllerAnswer?(answer.isFenced)
            return answer
        }.recover { _ in nil }
    }

    /// Heartbeats every `heartbeatIntervalMs` until stopped.
    public func startHeartbeats() {
        heartbeatTask = eventLoop.scheduleRepeatedTask(
            initialDelay: .milliseconds(heartbeatIntervalMs),
            delay: .milliseconds(heartbeatIntervalMs)
        ) { [weak self] task in
            guard let self, !self.state.withLockedValue({ $0.stopped }) else {
                task.cancel()
                return
            }
            self.heartbeat()
        }
    }

    /// Completes with true once the controller unfences this broker, false after `timeoutMs`.
    public func waitUnfenced(timeoutMs: Int64) -> EventLoopFuture<Bool> {
        let promise = eventLoop.makePromise(of: Bool.self)
        let deadline = eventLoop.now + .milliseconds(timeoutMs)
        @Sendable func poll() {
            heartbeat().whenComplete { [self] result in
                if case .success(let answer?) = result, !answer.isFenced {
                    promise.succeed(true)
                } else if eventLoop.now >= deadline {
                    promise.succeed(false)
                } else {
                    eventLoop.scheduleTask(in: .milliseconds(50)) { poll() }
                }
            }
        }
        eventLoop.execute { poll() }
        return promise.futureResult
    }

    /// Controlled shutdown: heartbeats with `wantShutDown` until the controller says the broker
    /// leads nothing any more (`shouldShutDown`), then stops heartbeating.
    public func controlledShutdown(timeoutMs: Int64) -> EventLoopFuture<Void> {
        state.withLockedValue { $0.shuttingDown = true }
        let promise = eventLoop.makePromise(of: Void.self)
        let deadline = eventLoop.now + .milliseconds(timeoutMs)
        @Sendable func poll() {
            heartbeat().whenComplete { [self] result in
                if case .success(let answer?) = result, answer.shouldShutDown {
                    logger.info("controlled shutdown: leadership moved away")
                    stop()
                    promise.succeed(())
                } else if eventLoop.now >= deadline {
                    stop()
                    promise.succeed(())
                } else {
                    eventLoop.scheduleTask(in: .milliseconds(100)) { poll() }
                }
            }
        }
        eventLoop.execute { poll() }
        return promise.futureResult
    }

    /// Stops heartbeating.
    public func stop() {
        state.withLockedValue { $0.stopped = true }
        heartbeatTask?.cancel()
    }
}
