import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelBroker
import RunnelCore
import RunnelWire

/// A broker's life with the controller: registration (a new incarnation each start), heartbeats
/// every `broker.heartbeat.interval.ms` carrying how far its metadata has caught up (the
/// controller unfences it once it has), and a controlled shutdown that waits until the controller
/// has moved its partition leadership away.
final class BrokerLifecycle: @unchecked Sendable {
    let brokerId: Int32
    let clusterId: String
    let channel: any ControllerChannel
    let logger: Logger
    let heartbeatIntervalMs: Int64
    /// The broker's applied metadata offset.
    let metadataOffset: @Sendable () -> Int64
    private let state = NIOLockedValueBox<(epoch: Int64, fenced: Bool, shuttingDown: Bool, stopped: Bool)>((-1, true, false, false))
    private var task: Task<Void, Never>?

    init(brokerId: Int32, clusterId: String, channel: any ControllerChannel, heartbeatIntervalMs: Int64, logger: Logger,
         metadataOffset: @escaping @Sendable () -> Int64) {
        self.brokerId = brokerId
        self.clusterId = clusterId
        self.channel = channel
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.logger = logger
        self.metadataOffset = metadataOffset
    }

    var brokerEpoch: Int64 { state.withLockedValue { $0.epoch } }
    var isFenced: Bool { state.withLockedValue { $0.fenced } }

    /// Registers, retrying until the active controller accepts or `timeoutMs` passes.
    func register(_ registration: BrokerRegistrationRequest, timeoutMs: Int64) async throws {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while true {
            do {
                let answer = try await channel.send(registration, version: 3).get()
                if answer.errorCode == 0 {
                    state.withLockedValue { $0.epoch = answer.brokerEpoch }
                    logger.info("registered with the controller", metadata: ["brokerEpoch": "\(answer.brokerEpoch)"])
                    return
                }
                if answer.errorCode != ErrorCode.notController.rawValue && answer.errorCode != ErrorCode.duplicateBrokerRegistration.rawValue {
                    throw StorageError("the controller refused the broker's registration: \(ErrorCode(answer.errorCode)) (\(ErrorCode(answer.errorCode).message))")
                }
            } catch let error as StorageError {
                throw error
            } catch {
                // No active controller yet: keep trying.
            }
            if ContinuousClock.now > deadline {
                throw StorageError("the broker could not register with the controller quorum within initial.broker.registration.timeout.ms (\(timeoutMs) ms); check controller.quorum.voters and that a majority of controllers is up")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// Sends one heartbeat now; returns the answer (nil when no controller answered).
    @discardableResult
    func heartbeat() async -> BrokerHeartbeatResponse? {
        let (epoch, shuttingDown) = state.withLockedValue { ($0.epoch, $0.shuttingDown) }
        var request = BrokerHeartbeatRequest()
        request.brokerId = brokerId
        request.brokerEpoch = epoch
        request.currentMetadataOffset = metadataOffset()
        request.wantShutDown = shuttingDown
        guard let answer = try? await channel.send(request, version: 1).get(), answer.errorCode == 0 else { return nil }
        let wasFenced = state.withLockedValue { s -> Bool in
            let was = s.fenced
            s.fenced = answer.isFenced
            return was
        }
        if wasFenced != answer.isFenced {
            logger.info(answer.isFenced ? "the controller fenced this broker" : "the controller unfenced this broker (caught up)")
        }
        return answer
    }

    /// Heartbeats in the background until stopped.
    func startHeartbeats() {
        let interval = UInt64(heartbeatIntervalMs) * 1_000_000
        task = Task { [self] in
            while !state.withLockedValue({ $0.stopped }) {
                await heartbeat()
                try? await Task.sleep(nanoseconds: interval)
            }
        }
    }

    /// Waits until the controller unfences this broker (or the timeout passes).
    func waitUnfenced(timeoutMs: Int64) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < deadline {
            if let answer = await heartbeat(), !answer.isFenced { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return false
    }

    /// Controlled shutdown: heartbeats with `wantShutDown` until the controller says the broker
    /// leads nothing any more (`shouldShutDown`), then stops heartbeating.
    func controlledShutdown(timeoutMs: Int64) async {
        state.withLockedValue { $0.shuttingDown = true }
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < deadline {
            if let answer = await heartbeat(), answer.shouldShutDown {
                logger.info("controlled shutdown: leadership moved away")
                break
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        stop()
    }

    func stop() {
        state.withLockedValue { $0.stopped = true }
        task?.cancel()
    }
}
