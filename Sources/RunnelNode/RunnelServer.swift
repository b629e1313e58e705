import Foundation
import Logging
import Metrics
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
import RunnelRaft
import RunnelReplication
import RunnelSecurity
import RunnelSnapshotStore
import RunnelWire

/// One `runnel server` process: composes the roles of `process.roles` over real sockets, files and
/// clocks, runs background maintenance, and shuts down gracefully.
public final class RunnelServer: @unchecked Sendable {
    public let config: ServerConfig
    let logger: Logger
    let clock = SystemClock()
    /// How often a broker measures the lag of the groups it coordinates (one ListOffsets per
    /// partition leader each time), a little under Prometheus' default 15 s scrape interval.
    static let consumerLagIntervalMs: Int64 = 10_000
    let disk = PosixDisk()

    private var networkGroup: MultiThreadedEventLoopGroup?
    private var quorumGroup: MultiThreadedEventLoopGroup?
    private var pool: NIOThreadPool?
    /// Long CPU-bound work of the quorum (snapshot writes), on a thread of low priority.
    private var backgroundPool: NIOThreadPool?
    /// The broker's publish executor: one thread applying metadata changes to local replicas.
    private var publisher: NIOThreadPool?
    private var servers: [KafkaServer] = []
    /// Reloads TLS listeners' stores from this broker's dynamic configs (brokers only).
    private var tlsReloader: ListenerTLSReloader?
    /// The node's connection limits, counted over all its listeners.
    private lazy var connectionQuotas = ConnectionQuotas(limits: config.connectionLimits)
    private var logManager: LogManager?
    public private(set) var broker: Broker?
    private var quorum: MetadataQuorum<KafkaRaftRuntime>?
    private var runtime: KafkaRaftRuntime?
    private var lifecycle: BrokerLifecycle?
    private var brokerPeers: BrokerPeers?
    private var markerPeers: BrokerPeers?
    /// The broker's network way to the active controller (nil in-process or without a broker).
    private var remoteController: RemoteControllerChannel?
    /// The controller registration's way to the active controller (KIP-919), on a controller.
    private var registrationController: RemoteControllerChannel?
    private var maintenance: Thread?
    private var metricsServer: MetricsHTTPServer?
    private var gaugeTask: RepeatedTask?
    private var consumerLagTask: RepeatedTask?
    private var cleaner: Thread?
    private let stopping = NIOLockedValueBox(false)
    /// The SCRAM credentials the listeners check logins against (set once the quorum exists).
    private var scramCredentials: @Sendable () -> ScramServer.CredentialLookup = { { _, _ in nil } }

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
        let clusterId = try StorageFormatter.check(config: config, disk: disk)
        let now = clock.wallMs()

        let registry = NodeMetrics.registry()
        let networkGroup = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let quorumGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let backgroundPool = NIOThreadPool(numberOfThreads: 1)
        backgroundPool.start()
        self.networkGroup = networkGroup
        self.quorumGroup = quorumGroup
        self.pool = pool
        self.backgroundPool = backgroundPool

        var logManager: LogManager?
        var metadataClean = false
        if config.isBroker {
            // Opening thousands of logs (or recovering them after a crash) takes a while: say
            // how far it got every couple of seconds.
            let logger = self.logger
            let started = ContinuousClock.now
            var lastReport = started
            let dropBehind =
                config.dropCacheBehindBytes >= 0
                ? DropBehind(windowBytes: config.dropCacheBehindBytes, sink: DropBehindThread()) : nil
            let manager = try LogManager(
                logDirs: config.logDirs, defaultConfig: config.logDefaults, disk: disk, nowMs: now,
                dropBehind: dropBehind,
                onDiskFailure: { tp, error in StorageFailure.halt("writing \(tp) failed: \(error)", logger: logger) }
            ) { opened, total, recovering in
                let at = ContinuousClock.now
                guard at - lastReport >= .seconds(2) || (opened == total && at - started >= .seconds(2)) else { return }
                lastReport = at
                logger.info(
                    recovering ? "recovering logs" : "loading logs",
                    metadata: ["opened": "\(opened)", "of": "\(total)"])
            }
            if !manager.recoveredUncleanly.isEmpty {
                logger.warning(
                    "recovered after an unclean shutdown", metadata: ["dirs": "\(manager.recoveredUncleanly)"])
            }
            // A metadata dir outside log.dirs has no marker of its own: re-validate it whole.
            metadataClean =
                config.logDirs.contains(config.metadataLogDir)
                && !manager.recoveredUncleanly.contains(config.metadataLogDir)
            logManager = manager
            self.logManager = manager
        }

        // The metadata quorum: a voter on a controller, an observer on a broker-only node.
        var settings = ControllerSettings()
        settings.defaultPartitions = config.numPartitions
        settings.defaultReplicationFactor = config.defaultReplicationFactor
        settings.deleteTopicEnable = config.deleteTopicEnable
        settings.nodeId = config.nodeId
        settings.voterIds = config.voters.map(\.id)
        let resolver = ConfigResolver(staticBrokerConfig: config.properties.entries, brokerId: config.nodeId)
        let loop = quorumGroup.next()
        // Connections to the controllers speak their listener's protocol (controller.listener.names,
        // sasl.mechanism.controller.protocol); those to other brokers the inter-broker listener's.
        let controllerConnector: NIOPeerConnector
        let interBrokerConnector: NIOPeerConnector
        do {
            controllerConnector = NIOPeerConnector(
                group: networkGroup, security: try config.security.controller.clientSecurity())
            interBrokerConnector = NIOPeerConnector(
                group: networkGroup, security: try config.security.interBroker.clientSecurity())
        } catch {
            throw StorageError("\(error)")
        }
        let bootstrapRecords = try StorageFormatter.bootstrapRecords(config: config, disk: disk)
        // Raft requests unanswered for controller.quorum.request.timeout.ms drop their connection,
        // as Kafka's KRaft client does: after a network fault heals, a voter or observer reaches
        // the leader on a new connection at once, not at TCP's next backed-off retransmission.
        var raftConnector = controllerConnector
        raftConnector.requestTimeoutMs = config.quorumRequestTimeoutMs
        let runtime = KafkaRaftRuntime(
            eventLoop: loop, blocking: { loop, work in pool.runIfActive(eventLoop: loop, work) },
            background: { loop, work in
                backgroundPool.runIfActive(eventLoop: loop) {
                    BackgroundPriority.enter()
                    try work()
                }
            },
            clock: clock, clusterId: clusterId, voters: config.voters, selfId: config.nodeId,
            connector: raftConnector, logger: logger)
        var raft = RaftConfig(nodeId: NodeID(config.nodeId), voters: config.voters.map { NodeID($0.id) })
        raft.electionTimeoutMs = config.quorumElectionTimeoutMs
        raft.fetchTimeoutMs = config.quorumFetchTimeoutMs
        raft.electionBackoffMaxMs = config.quorumElectionBackoffMaxMs
        raft.requestTimeoutMs = config.quorumRequestTimeoutMs
        let disk = self.disk
        let directory = config.metadataLogDir
        let seed = UInt64.random(in: 0...UInt64.max)
        let clean = metadataClean
        let snapshots = try SQLiteSnapshotStorage(
            directory: directory + "/" + MetadataLog.topicPartition.description, clusterId: clusterId,
            voters: config.voters.map(\.id), logger: logger)
        let policy = config.snapshotPolicy
        let sessionTimeoutMs = config.brokerSessionTimeoutMs
        let rebalance = config.leaderRebalance
        let raftConfig = raft
        let controllerSettings = settings
        let quorum = try await loop.submit {
            let q = try MetadataQuorum(
                clusterId: clusterId, config: raftConfig, runtime: runtime, disk: disk, directory: directory,
                controller: QuorumController(settings: controllerSettings, resolver: resolver), seed: seed,
                cleanShutdown: clean,
                snapshots: snapshots)
            q.driver.snapshotPolicy = policy
            q.driver.onStorageFailure = { [logger = self.logger] in StorageFailure.halt($0, logger: logger) }
            q.sessionTimeoutMs = sessionTimeoutMs
            q.leaderRebalance = rebalance
            q.bootstrapRecords = bootstrapRecords
            return q
        }.get()
        self.quorum = quorum
        // The committed image as the listeners see it (SCRAM credentials) and the controller
        // listener's authorizer, both following the quorum. Before anything is committed, the
        // SCRAM credentials this node was formatted with stand in, so controllers can log in to
        // each other before they elect the first leader (which commits those same records).
        let nodeImage = NIOLockedValueBox<MetadataImage>(.empty)
        let quorumAuthorizer = QuorumAuthorizer(config.security.authorizer)
        try await loop.submit {
            quorum.subscribe { delta, image in
                nodeImage.withLockedValue { $0 = image }
                quorumAuthorizer.publish(delta, image: image)
            }
        }.get()
        let bootstrapCredentials = Self.bootstrapCredentials(bootstrapRecords)
        self.scramCredentials = {
            let image = nodeImage.withLockedValue { $0 }
            return image.provenance.lastOffset >= 0 ? image.scramCredentialLookup : bootstrapCredentials
        }
        self.runtime = runtime
        runtime.deliver = { message, from in quorum.driver.receive(message, from: from) }
        runtime.unreachable = { node in quorum.driver.unreachable(node) }
        runtime.currentEpoch = {
            (quorum.driver.node.epoch, quorum.driver.node.leaderId?.rawValue ?? -1, quorum.driver.node.highWatermark)
        }
        let logger = self.logger
        let leaderHint = NIOLockedValueBox<Int32>(-1)
        quorum.onSnapshotLoaded = { image, fetched in
            logger.info(
                fetched ? "fetched snapshot from the leader" : "loaded snapshot",
                metadata: [
                    "endOffset": "\(image.provenance.lastOffset + 1)", "records": "\(image.provenance.recordCount)",
                ])
        }
        quorum.onSessionsExpired = { brokers, committed, elapsedMs in
            let ids = brokers.map { "\($0)" }.joined(separator: ", ")
            if committed {
                logger.info("fenced brokers \(ids): committed \(elapsedMs) ms after their sessions were found lapsed")
            } else {
                logger.info(
                    "fencing brokers \(ids): no heartbeat within broker.session.timeout.ms (\(sessionTimeoutMs) ms)")
            }
        }
        quorum.onLeadershipChange = { role, epoch, leader in
            leaderHint.withLockedValue { $0 = leader?.rawValue ?? -1 }
            logger.info(
                "quorum",
                metadata: ["role": "\(role)", "epoch": "\(epoch)", "leader": "\(leader.map { "\($0)" } ?? "none")"])
        }

        // The broker, fed by the quorum's committed metadata.
        var broker: Broker?
        var channel: (any ControllerChannel)?
        if config.isBroker, let logManager {
            var brokerSettings = BrokerSettings(
                nodeId: config.nodeId, clusterId: clusterId,
                advertisedListeners: config.advertisedListeners.map {
                    .init(name: $0.name, host: $0.host, port: $0.port)
                },
                interBrokerListener: config.interBrokerListenerName, staticConfig: config.properties.entries)
            brokerSettings.rack = config.rack
            brokerSettings.autoCreateTopics = config.autoCreateTopics
            brokerSettings.messageMaxBytes = config.messageMaxBytes
            brokerSettings.fetchMaxBytes = config.fetchMaxBytes
            brokerSettings.clientQuotaWindows = ClientQuotaManager.Settings(
                windowNum: config.quotaWindowNum, windowSizeSeconds: config.quotaWindowSizeSeconds)
            brokerSettings.replicaLagTimeMaxMs = config.replicaLagTimeMaxMs
            brokerSettings.maxIncrementalFetchSessionCacheSlots = config.maxIncrementalFetchSessionCacheSlots
            brokerSettings.brokerSessionTimeoutMs = config.brokerSessionTimeoutMs
            // Validated as a boolean with the other keys (ConfigDefinitions).
            brokerSettings.transactionPartitionVerification =
                config.properties.entries["transaction.partition.verification.enable"]?.lowercased() != "false"
            brokerSettings.replicationFaults = try Self.brokenRules(logger: logger)
            brokerSettings.authorizer = config.security.authorizer
            let reloader = ListenerTLSReloader(config: config, logger: logger)
            tlsReloader = reloader
            brokerSettings.dynamicTLSProblem = { reloader.problem(with: $0) }
            // A lone combined node talks to its own controller in-process; otherwise the broker
            // finds the active controller over the network.
            let inProcess = config.isController && config.voters.count == 1
            let controllerChannel: any ControllerChannel =
                inProcess
                ? QuorumControllerChannel(quorum: quorum, eventLoop: loop)
                : RemoteControllerChannel(
                    voters: config.voters, brokerId: config.nodeId, connector: controllerConnector,
                    eventLoop: networkGroup.next(),
                    logger: logger, leaderHint: { leaderHint.withLockedValue { $0 } })
            channel = controllerChannel
            remoteController = controllerChannel as? RemoteControllerChannel
            remoteController?.brokerRequestTimeoutMs = config.quorumRequestTimeoutMs
            remoteController?.requestTimeoutMs = config.controllerSocketTimeoutMs
            let publisher = NIOThreadPool(numberOfThreads: 1)
            publisher.start()
            self.publisher = publisher
            let b = Broker(
                settings: brokerSettings, logManager: logManager, controller: controllerChannel, clock: clock,
                logger: logger,
                publishExecutor: { work in
                    publisher.submit { state in if state == .active { work() } }
                })
            broker = b
            self.broker = b
            try await loop.submit {
                quorum.subscribe { delta, image in
                    b.publish(delta: delta, image: image)
                    reloader.published(delta, image: image)
                }
            }.get()
            let peers = BrokerPeers(
                eventLoop: networkGroup.next(), connector: interBrokerConnector, localId: config.nodeId,
                listenerName: config.interBrokerListenerName, image: { b.image })
            brokerPeers = peers
            b.startReplication(
                transport: peers, settings: config.replicaFetch,
                blocking: { loop, work in pool.runIfActive(eventLoop: loop, work) })
            b.startIsrChecks(on: peers.eventLoop)
            b.startGroups(on: peers.eventLoop)
            let markerPeers = BrokerPeers(
                eventLoop: networkGroup.next(), connector: interBrokerConnector, localId: config.nodeId,
                listenerName: config.interBrokerListenerName, clientId: "txn-marker-sender-\(config.nodeId)",
                image: { b.image })
            self.markerPeers = markerPeers
            b.startTransactionMarkers(peers: markerPeers)
            // The lag of the groups this broker coordinates, for the consumer-lag gauges.
            consumerLagTask = markerPeers.eventLoop.scheduleRepeatedAsyncTask(
                initialDelay: .seconds(5), delay: .milliseconds(Self.consumerLagIntervalMs)
            ) { _ in
                b.measureConsumerLag(peers: markerPeers, timeoutMs: Self.consumerLagIntervalMs).map {
                    ConsumerLagGauges.publish($0)
                }
            }
        }
        try await loop.submit { try quorum.start() }.get()

        // The controller listener first, so peers can reach us while brokers start.
        if config.isController {
            let endpoint = QuorumEndpoint(
                quorum: quorum, runtime: runtime, clusterId: clusterId, voters: config.voters,
                authorizer: quorumAuthorizer)
            // On the quorum's own loop: every request there (Raft, broker heartbeats, forwarded
            // admin writes) is handled on that loop, so its connections' reads and writes run
            // there too rather than costing two thread wake-ups per request.
            for listener in config.controllerListeners {
                servers.append(try await listen(listener, handler: endpoint, group: loop, accepting: true))
            }
            // Register this controller with the active one (KIP-919), over the controller
            // listener (in-process for a lone combined node).
            let registrationChannel: any ControllerChannel =
                config.voters.count == 1
                ? QuorumControllerChannel(quorum: quorum, eventLoop: loop, unfenceOnRegistration: false)
                : RemoteControllerChannel(
                    voters: config.voters, brokerId: config.nodeId, connector: controllerConnector,
                    eventLoop: networkGroup.next(), logger: logger, leaderHint: { leaderHint.withLockedValue { $0 } })
            registrationController = registrationChannel as? RemoteControllerChannel
            registrationController?.brokerRequestTimeoutMs = config.quorumRequestTimeoutMs
            var generator = SystemRandomNumberGenerator()
            let listeners: [ControllerRegistrationRequest.Listener] = config.controllerListeners.map { spec in
                let bound = servers.first { $0.listener == spec.name }?.port ?? spec.port
                let securityProtocol =
                    SecurityProtocol(rawValue: config.securityProtocols[spec.name] ?? "PLAINTEXT") ?? .plaintext
                return .init(
                    name: spec.name, host: spec.host, port: UInt16(clamping: spec.port == 0 ? bound : spec.port),
                    securityProtocol: securityProtocol.code)
            }
            let registrar = ControllerRegistrar(
                nodeId: config.nodeId, incarnationId: KafkaUUID.random(using: &generator), listeners: listeners,
                channel: registrationChannel, eventLoop: loop, logger: logger)
            try await loop.submit { quorum.subscribe { _, image in registrar.published(image) } }.get()
        }
        if let broker, let channel {
            // The client ports are bound before registering (a port in use stops the node before
            // it joins the cluster, and port 0 has its number to advertise), but clients are let in
            // only once the broker is registered and unfenced (as Kafka opens its data plane then),
            // so their first Metadata answer lists it.
            try await bindBrokerListeners(broker, networkGroup: networkGroup)
            let lifecycle = BrokerLifecycle(
                brokerId: config.nodeId, channel: channel, heartbeatIntervalMs: config.brokerHeartbeatIntervalMs,
                eventLoop: networkGroup.next(), logger: logger, metadataOffset: { broker.appliedMetadataOffset })
            self.lifecycle = lifecycle
            lifecycle.onControllerAnswer = { fenced in broker.controllerAnswered(fenced: fenced) }
            do {
                _ = try await lifecycle.register(
                    registrationRequest(clusterId: clusterId), timeoutMs: config.initialBrokerRegistrationTimeoutMs
                ).get()
            } catch let error as BrokerRegistrationError {
                throw StorageError(error.description)
            }
            // On the quorum's loop, where every publish is taken.
            let brokerEpoch = lifecycle.brokerEpoch
            try await loop.submit { broker.registered(brokerEpoch: brokerEpoch) }.get()
            if try await lifecycle.waitUnfenced(timeoutMs: config.initialBrokerRegistrationTimeoutMs).get() {
                try await broker.awaitReplicasUnfenced(
                    brokerEpoch: brokerEpoch, on: loop, timeoutMs: config.initialBrokerRegistrationTimeoutMs
                ).get()
            } else {
                logger.warning("the broker is still fenced; serving anyway (its partitions stay led elsewhere)")
            }
            lifecycle.startHeartbeats()
            broker.removeStrayLogs()
            for server in servers where config.brokerListeners.contains(where: { $0.name == server.listener }) {
                try await server.startAccepting()
            }
            startMaintenance()
        }
        if let port = config.metricsPort {
            let server = try await MetricsHTTPServer.start(
                host: config.metricsHost, port: port, group: networkGroup, registry: registry)
            metricsServer = server
            logger.info("serving metrics", metadata: ["address": "http://\(config.metricsHost):\(server.port)/metrics"])
        }
        // The quorum's gauges, read on its own loop.
        gaugeTask = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            QuorumGauges.refresh(quorum)
        }
        for server in servers {
            logger.info("listening", metadata: ["listener": "\(server.listener)", "address": "\(server.localAddress)"])
        }
    }

    /// The SCRAM credentials among the bootstrap records.
    static func bootstrapCredentials(_ records: [MetadataRecord]) -> ScramServer.CredentialLookup {
        var delta = MetadataDelta(.empty)
        for record in records {
            if case .userScramCredential = record { delta.replay(record, offset: 0, epoch: 0) }
        }
        return delta.apply().scramCredentialLookup
    }

    /// Replication rules broken on purpose, for fault-testing harnesses only (`tools/chaos`
    /// checks that its checker catches them): `RUNNEL_TEST_BROKEN_RULES=rule,...`. Unset in any
    /// real run; when set, the node says so loudly.
    static func brokenRules(logger: Logger) throws -> ReplicationFaults {
        var faults = ReplicationFaults()
        guard let text = ProcessInfo.processInfo.environment["RUNNEL_TEST_BROKEN_RULES"], !text.isEmpty else {
            return faults
        }
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard faults.breakRule(named: name) else {
                throw ConfigError(
                    "RUNNEL_TEST_BROKEN_RULES",
                    "\(name) is not a rule; the rules are \(ReplicationFaults.ruleNames.joined(separator: ", ")).")
            }
        }
        logger.critical(
            "TESTING ONLY: RUNNEL_TEST_BROKEN_RULES=\(text) breaks replication rules on purpose; acknowledged records can be lost"
        )
        return faults
    }

    private func registrationRequest(clusterId: String) -> BrokerRegistrationRequest {
        var registration = BrokerRegistrationRequest()
        registration.brokerId = config.nodeId
        registration.clusterId = clusterId
        var generator = SystemRandomNumberGenerator()
        registration.incarnationId = KafkaUUID.random(using: &generator)
        registration.rack = config.rack
        registration.listeners = config.advertisedListeners.map { spec in
            let bound = servers.first { $0.listener == spec.name }?.port ?? spec.port
            let securityProtocol =
                SecurityProtocol(rawValue: config.securityProtocols[spec.name] ?? "PLAINTEXT") ?? .plaintext
            return .init(
                name: spec.name, host: spec.host, port: UInt16(spec.port == 0 ? bound : spec.port),
                securityProtocol: securityProtocol.code)
        }
        registration.features = SupportedFeatures.local.keys.sorted().map {
            .init(
                name: $0, minSupportedVersion: SupportedFeatures.local[$0]!.lowerBound,
                maxSupportedVersion: SupportedFeatures.local[$0]!.upperBound)
        }
        return registration
    }

    private func bindBrokerListeners(_ broker: Broker, networkGroup: any EventLoopGroup) async throws {
        for listener in config.brokerListeners {
            let server = try await listen(listener, handler: broker, group: networkGroup, accepting: false)
            servers.append(server)
            if let tls = server.security.tls { tlsReloader?.register(listener.name, tls) }
        }
    }

    /// Binds one listener; a port that cannot be bound is one sentence naming the listener.
    private func listen(
        _ listener: ListenerSpec, handler: any RequestHandler, group: any EventLoopGroup, accepting: Bool
    ) async throws -> KafkaServer {
        let host = listener.host.isEmpty ? "0.0.0.0" : listener.host
        let security: ListenerSecurity
        do {
            security = try config.security.listenerSecurity(listener.name, scramCredentials: scramCredentials)
        } catch {
            throw StorageError("listener \(listener.name): \(error)")
        }
        do {
            return try await KafkaServer.start(
                listener: listener.name, host: host, port: listener.port, group: group, handler: handler,
                frameBytesMax: config.socketRequestMaxBytes, requestsQueuedMax: Limits.connectionRequestsQueuedMax,
                accepting: accepting, security: security, quotas: connectionQuotas,
                socketOptions: config.listenerSocketOptions, logger: logger)
        } catch let error as IOError {
            throw ConnectionError(
                "listener \(listener.name) cannot bind \(host):\(listener.port): \(String(cString: strerror(error.errnoCode)))"
            )
        }
    }

    /// Background work on its own thread: retention, flush policy, checkpoints.
    private func startMaintenance() {
        let config = self.config
        let thread = Thread { [self] in
            var lastRetention = clock.monotonicMs()
            var lastCheckpoint = clock.monotonicMs()
            var lastHighWatermarks = clock.monotonicMs()
            var lastProducerExpiry = clock.monotonicMs()
            // Kafka checks every 10 minutes (producer.id.expiration.check.interval.ms); a shorter
            // expiration is checked as often as it is long.
            let producerExpiryCheckMs = min(600_000, config.producerIdExpirationMs)
            let tickMs: Int64 = max(10, min(500, config.logRetentionCheckIntervalMs))
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
                if now - lastProducerExpiry >= producerExpiryCheckMs {
                    lastProducerExpiry = now
                    logManager.removeExpiredProducers(
                        nowMs: clock.wallMs(), expirationMs: config.producerIdExpirationMs)
                }
                LogFlusher.run(logManager, nowMs: clock.wallMs(), logger: logger)
                if let broker { BrokerGauges.refresh(broker) }
                if let broker, now - lastHighWatermarks >= config.highWatermarkCheckpointIntervalMs {
                    lastHighWatermarks = now
                    do { try logManager.checkpointHighWatermarks(broker.highWatermarks) } catch {
                        logger.error("high watermark checkpoint failed: \(error)")
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
        if config.logCleaner.enabled { startCleaner() }
    }

    /// The log cleaner, on a thread of its own so a long cleaning never delays the ISR checks,
    /// flushes and checkpoints of the maintenance loop: every `log.cleaner.backoff.ms` it cleans
    /// the compacted logs that are dirty enough, each below its partition's high watermark
    /// (leaders and followers alike clean their own replica, as in Kafka).
    private func startCleaner() {
        let settings = config.logCleaner
        let thread = Thread { [self] in
            let stopped = { self.stopping.withLockedValue { $0 } }
            while !stopped() {
                Thread.sleep(forTimeInterval: Double(max(10, settings.backoffMs)) / 1000)
                guard let logManager, let broker, !stopped() else { break }
                let started = clock.monotonicMs()
                let pass = logManager.runCleaner(
                    nowMs: clock.wallMs(), highWatermarks: broker.highWatermarks, settings: settings,
                    shouldStop: stopped)
                for (tp, stats) in pass.cleaned {
                    logger.info(
                        "cleaned log \(tp): \(stats.bytesBefore) bytes before, \(stats.bytesAfter) after",
                        metadata: [
                            "segments": "\(stats.segmentsRewritten)/\(stats.segmentsCleaned)",
                            "offsets": "\(stats.firstDirtyOffset)..<\(stats.endOffset)", "keys": "\(stats.keysMapped)",
                            "recordsRemoved": "\(stats.recordsRemoved)",
                            "tombstonesRemoved": "\(stats.tombstonesRemoved)",
                            "ms": "\(clock.monotonicMs() - started)",
                        ])
                }
                for (tp, error) in pass.failures {
                    logger.error("cleaning \(tp) failed: \(error)")
                }
                if let error = pass.checkpointFailure {
                    logger.error("writing \(LogCleaner.checkpointFile) failed: \(error)")
                }
            }
        }
        thread.name = "runnel-log-cleaner"
        thread.start()
        cleaner = thread
    }

    /// Stops accepting, flushes every log, writes checkpoints and the clean-shutdown marker.
    public func shutdown() async {
        if stopping.withLockedValue({
            let was = $0; $0 = true; return was
        }) {
            return
        }
        logger.info("shutting down")
        if let lifecycle {
            // Controlled shutdown: leadership moves away before the process goes.
            try? await lifecycle.controlledShutdown(timeoutMs: config.controlledShutdownTimeoutMs).get()
        }
        if let quorum, let runtime {
            // Hand leadership over before going (EndQuorumEpoch), then stop the driver.
            try? await runtime.eventLoop.submit { quorum.driver.resign() }.get()
            try? await Task.sleep(nanoseconds: 100_000_000)
            try? await runtime.eventLoop.submit { quorum.driver.stop() }.get()
            runtime.closePeers()
        }
        // No change is published any more: let the one being applied finish before logs close.
        try? await publisher?.shutdownGracefully()
        gaugeTask?.cancel()
        consumerLagTask?.cancel()
        await metricsServer?.close()
        remoteController?.shutdown()
        registrationController?.shutdown()
        broker?.stopReplication()
        brokerPeers?.close()
        markerPeers?.close()
        for server in servers { try? await server.close() }
        do {
            if let broker { try logManager?.checkpointHighWatermarks(broker.highWatermarks) }
            if let quorum, let runtime {
                try await runtime.eventLoop.submit { try quorum.driver.log.log.close() }.get()
            }
            try logManager?.shutdown()
        } catch {
            logger.error("shutdown flush failed: \(error)")
        }
        // Blocking work finishes first (a snapshot being written, say): its completion runs on
        // the quorum's loop, which must still be there.
        try? await backgroundPool?.shutdownGracefully()
        try? await pool?.shutdownGracefully()
        try? await quorumGroup?.shutdownGracefully()
        try? await networkGroup?.shutdownGracefully()
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

/// Gauges of a broker's partitions, refreshed by the maintenance loop.
enum BrokerGauges {
    /// The replicas with a `runnel_log_size_bytes` series, so the series of a replica that left
    /// this broker is removed rather than kept at its last value.
    private static let sizedReplicas = NIOLockedValueBox<Set<TopicPartition>>([])

    /// Kafka's `kafka.log:type=Log,name=Size`: the bytes of a replica's segment files.
    static func logSizeGauge(_ tp: TopicPartition) -> Gauge {
        Gauge(label: "runnel_log_size_bytes", dimensions: [("topic", tp.topic), ("partition", "\(tp.partition)")])
    }

    static func refresh(_ broker: Broker) {
        var leaders = 0, underReplicated = 0, underMinIsr = 0, hosted = 0
        let image = broker.image
        var sized = Set<TopicPartition>()
        for partition in broker.hostedPartitions {
            hosted += 1
            sized.insert(partition.topicPartition)
            logSizeGauge(partition.topicPartition).record(partition.log.sizeInBytes)
            guard let leader = partition.leaderState else { continue }
            leaders += 1
            let state = partition.state
            if leader.isr.count < state.replicas.count { underReplicated += 1 }
            let minIsr =
                image.configs(of: .init(.topic, partition.topicPartition.topic))["min.insync.replicas"].flatMap {
                    Int($0)
                }
                ?? broker.settings.staticConfig["min.insync.replicas"].flatMap { Int($0) } ?? 1
            if leader.isr.count < minIsr { underMinIsr += 1 }
        }
        NodeMetrics.hostedPartitions.record(hosted)
        NodeMetrics.leaderPartitions.record(leaders)
        NodeMetrics.underReplicatedPartitions.record(underReplicated)
        NodeMetrics.underMinIsrPartitions.record(underMinIsr)
        let gone = sizedReplicas.withLockedValue { previous in
            defer { previous = sized }
            return previous.subtracting(sized)
        }
        for tp in gone { logSizeGauge(tp).destroy() }
    }
}

/// Gauges of the metadata quorum, read on the quorum's loop.
enum QuorumGauges {
    static func refresh(_ quorum: MetadataQuorum<KafkaRaftRuntime>) {
        NodeMetrics.metadataOffset.record(quorum.committedImage.provenance.lastOffset)
    }
}
