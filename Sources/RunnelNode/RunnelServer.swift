import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RunnelBroker
import RunnelController
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelNetwork
import RunnelQuorum
import RunnelWire

/// One `runnel server` process: composes the roles of `process.roles` over real sockets, files and
/// clocks, runs background maintenance, and shuts down gracefully.
public final class RunnelServer: @unchecked Sendable {
    public let config: ServerConfig
    let logger: Logger
    let clock = SystemClock()
    let disk = PosixDisk()

    private var networkGroup: MultiThreadedEventLoopGroup?
    private var quorumGroup: MultiThreadedEventLoopGroup?
    private var pool: NIOThreadPool?
    private var servers: [KafkaServer] = []
    private var logManager: LogManager?
    private var metadataLog: MetadataLog?
    public private(set) var broker: Broker?
    private var quorum: LocalQuorum?
    private var maintenance: Thread?
    private let stopping = NIOLockedValueBox(false)

    public init(config: ServerConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Ports actually bound, by listener name (useful with port 0).
    public var boundPorts: [String: Int] {
        Dictionary(uniqueKeysWithValues: servers.map { ($0.listener, $0.port) })
    }

    public func start() async throws {
        let config = self.config
        guard config.isBroker && config.isController else {
            throw StorageError("process.roles=\(config.roles.map(\.rawValue).sorted().joined(separator: ",")) needs the Raft quorum, which this build does not have yet; use process.roles=broker,controller.")
        }
        guard config.voters.count == 1 else {
            throw StorageError("controller.quorum.voters lists \(config.voters.count) voters; this build runs a single voter only (the node itself).")
        }
        let clusterId = try StorageFormatter.check(config: config, disk: disk)
        let now = clock.wallMs()

        let networkGroup = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let quorumGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        self.networkGroup = networkGroup
        self.quorumGroup = quorumGroup
        self.pool = pool

        let logManager = try LogManager(logDirs: config.logDirs, defaultConfig: config.logDefaults, disk: disk, nowMs: now)
        self.logManager = logManager
        if !logManager.recoveredUncleanly.isEmpty {
            logger.warning("recovered after an unclean shutdown", metadata: ["dirs": "\(logManager.recoveredUncleanly)"])
        }
        let metadataDir = config.metadataLogDir + "/" + MetadataLog.topicPartition.description
        // A metadata dir outside log.dirs has no marker of its own: re-validate it whole.
        let metadataClean = config.logDirs.contains(config.metadataLogDir) && !logManager.recoveredUncleanly.contains(config.metadataLogDir)
        let metadataLog = try MetadataLog(directory: metadataDir, disk: disk, nowMs: now, cleanShutdown: metadataClean)
        self.metadataLog = metadataLog

        var settings = ControllerSettings()
        settings.defaultPartitions = config.numPartitions
        settings.defaultReplicationFactor = config.defaultReplicationFactor
        settings.deleteTopicEnable = config.deleteTopicEnable
        let resolver = ConfigResolver(staticBrokerConfig: config.properties.entries, brokerId: config.nodeId)
        let quorum = LocalQuorum(
            clusterId: clusterId, nodeId: config.nodeId, log: metadataLog,
            controller: QuorumController(settings: settings, resolver: resolver),
            eventLoop: quorumGroup.next(), pool: pool, clock: clock, logger: logger,
            seed: UInt64.random(in: 0...UInt64.max))
        self.quorum = quorum

        var brokerSettings = BrokerSettings(
            nodeId: config.nodeId, clusterId: clusterId,
            advertisedListeners: config.advertisedListeners.map { .init(name: $0.name, host: $0.host, port: $0.port) },
            interBrokerListener: config.interBrokerListenerName, staticConfig: config.properties.entries)
        brokerSettings.rack = config.rack
        brokerSettings.autoCreateTopics = config.autoCreateTopics
        brokerSettings.messageMaxBytes = config.messageMaxBytes
        let broker = Broker(settings: brokerSettings, logManager: logManager, controller: LocalControllerChannel(quorum: quorum), clock: clock, logger: logger)
        self.broker = broker

        let image = try await quorum.start().get()
        broker.publish(delta: .everything(image), image: image)
        broker.removeStrayLogs()
        quorum.subscribe { delta, image in broker.publish(delta: delta, image: image) }

        // Bind listeners before registering, so the advertised ports are known (port 0 in tests).
        for listener in config.brokerListeners {
            let server = try await KafkaServer.start(
                listener: listener.name, host: listener.host.isEmpty ? "0.0.0.0" : listener.host, port: listener.port,
                group: networkGroup, handler: broker, frameBytesMax: config.socketRequestMaxBytes,
                requestsQueuedMax: Limits.connectionRequestsQueuedMax, logger: logger)
            servers.append(server)
        }
        for listener in config.controllerListeners {
            let server = try await KafkaServer.start(
                listener: listener.name, host: listener.host.isEmpty ? "0.0.0.0" : listener.host, port: listener.port,
                group: networkGroup, handler: ControllerEndpoint(), frameBytesMax: config.socketRequestMaxBytes,
                requestsQueuedMax: Limits.connectionRequestsQueuedMax, logger: logger)
            servers.append(server)
        }

        // Register this broker with the (local) controller.
        var registration = BrokerRegistrationRequest()
        registration.brokerId = config.nodeId
        registration.clusterId = clusterId
        var generator = SystemRandomNumberGenerator()
        registration.incarnationId = KafkaUUID.random(using: &generator)
        registration.rack = config.rack
        registration.listeners = config.advertisedListeners.map { spec in
            let bound = servers.first { $0.listener == spec.name }?.port ?? spec.port
            return .init(name: spec.name, host: spec.host, port: UInt16(spec.port == 0 ? bound : spec.port), securityProtocol: 0)
        }
        registration.features = [.init(name: "metadata.version", minSupportedVersion: 1, maxSupportedVersion: 21)]
        let answer = try await LocalControllerChannel(quorum: quorum).send(registration, version: 3).get()
        guard answer.errorCode == 0 else {
            throw StorageError("broker registration failed: \(ErrorCode(answer.errorCode))")
        }

        startMaintenance()
        for server in servers {
            logger.info("listening", metadata: ["listener": "\(server.listener)", "address": "\(server.localAddress)"])
        }
    }

    /// Background work on its own thread: retention, flush policy, checkpoints.
    private func startMaintenance() {
        let config = self.config
        let thread = Thread { [self] in
            var lastRetention = clock.monotonicMs()
            var lastCheckpoint = clock.monotonicMs()
            var lastFlushCheck = clock.monotonicMs()
            let tickMs: Int64 = min(500, config.logRetentionCheckIntervalMs)
            while !stopping.withLockedValue({ $0 }) {
                Thread.sleep(forTimeInterval: Double(tickMs) / 1000)
                guard let logManager, !stopping.withLockedValue({ $0 }) else { break }
                let now = clock.monotonicMs()
                if now - lastRetention >= config.logRetentionCheckIntervalMs {
                    lastRetention = now
                    for (tp, error) in logManager.runRetention(nowMs: clock.wallMs()) {
                        logger.error("retention failed for \(tp): \(error)")
                    }
                }
                if config.logFlushSchedulerIntervalMs != Int64.max, now - lastFlushCheck >= config.logFlushSchedulerIntervalMs || config.logDefaults.flushMessages != Int64.max {
                    lastFlushCheck = now
                    for (tp, error) in logManager.runFlush(nowMs: clock.wallMs()) {
                        logger.error("flush failed for \(tp): \(error)")
                    }
                } else if config.logDefaults.flushMessages != Int64.max || config.logDefaults.flushMs != Int64.max {
                    for (tp, error) in logManager.runFlush(nowMs: clock.wallMs()) {
                        logger.error("flush failed for \(tp): \(error)")
                    }
                }
                if now - lastCheckpoint >= max(1000, config.logFlushOffsetCheckpointIntervalMs) {
                    lastCheckpoint = now
                    do { try logManager.checkpoint() } catch { logger.error("checkpoint failed: \(error)") }
                }
            }
        }
        thread.name = "runnel-maintenance"
        thread.start()
        maintenance = thread
    }

    /// Stops accepting, flushes every log, writes checkpoints and the clean-shutdown marker.
    public func shutdown() async {
        if stopping.withLockedValue({ let was = $0; $0 = true; return was }) { return }
        logger.info("shutting down")
        for server in servers { try? await server.close() }
        do {
            if let metadataLog { try metadataLog.log.close() }
            try logManager?.shutdown()
        } catch {
            logger.error("shutdown flush failed: \(error)")
        }
        try? await quorumGroup?.shutdownGracefully()
        try? await networkGroup?.shutdownGracefully()
        try? await pool?.shutdownGracefully()
        logger.info("stopped")
    }
}

/// The controller listener of a single-voter node: it answers ApiVersions (so tools can probe it)
/// and closes other requests until the Raft APIs are served there.
struct ControllerEndpoint: RequestHandler {
    func handle(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome {
        guard request.header.apiKey == .apiVersions else {
            return .close(reason: "\(request.header.apiKey.name) is not served on the controller listener")
        }
        var response = ApiVersionsResponse()
        response.apiKeys = [.init(apiKey: ApiKey.apiVersions.rawValue, minVersion: 0, maxVersion: 4)]
        let version = min(request.header.apiVersion, 4)
        if request.header.apiVersion > 4 {
            response.errorCode = ErrorCode.unsupportedVersion.rawValue
            return .respondNow(OutgoingResponse(response, version: 0, allocator: context.allocator))
        }
        return .respondNow(OutgoingResponse(response, version: version, allocator: context.allocator))
    }
}
