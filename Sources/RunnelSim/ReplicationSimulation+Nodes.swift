import Logging
import NIOCore
import RunnelBroker
import RunnelController
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelQuorum
import RunnelRaft
import RunnelReplication
import RunnelWire

/// The simulation's controller process: a voter of a one-voter quorum, composed as `RunnelServer`
/// composes a controller: the real `MetadataQuorum` (Raft driver, metadata log on a simulated
/// disk, `QuorumController`) on a `KafkaRaftRuntime`, serving the controller listener with the
/// real `QuorumEndpoint`. It does not crash (the quorum simulation covers that).
final class SimControllerNode: @unchecked Sendable {
    let id: Int32
    unowned let world: ReplicationSimulation
    let disk = SimDisk()
    let snapshots = MemorySnapshotStorage()
    var loop: SimEventLoop!
    var quorum: MetadataQuorum<KafkaRaftRuntime>!
    static let host = "controller0"
    static let port = 9093

    init(id: Int32, world: ReplicationSimulation) {
        self.id = id
        self.world = world
    }

    var voters: [VoterSpec] { [VoterSpec(id: id, host: Self.host, port: Self.port)] }

    /// The committed metadata: what every node agrees on.
    var image: MetadataImage { quorum.committedImage }

    func start() {
        loop = SimEventLoop(scheduler: world.scheduler, name: "controller-\(id)")
        let logger = world.logger("controller-\(id)")
        let runtime = KafkaRaftRuntime(
            eventLoop: loop, blocking: { loop, work in loop.submit(work) }, clock: world.clock,
            clusterId: ReplicationSimulation.clusterId, voters: voters, selfId: id,
            connector: world.network.connector(node: id, loop: loop), logger: logger)
        let resolver = ConfigResolver(staticBrokerConfig: [:], brokerId: id)
        var settings = ControllerSettings()
        settings.defaultReplicationFactor = 3
        // The broken rule takes the KIP-903 check out of both places that make it.
        settings.acceptsStaleBrokerEpochs = world.options.broken.contains(.isrExpansionWithoutBrokerEpochCheck)
        do {
            let quorum = try MetadataQuorum(
                clusterId: ReplicationSimulation.clusterId,
                config: RaftConfig(nodeId: NodeID(id), voters: [NodeID(id)]),
                runtime: runtime, disk: disk, directory: "/metadata",
                controller: QuorumController(settings: settings, resolver: resolver),
                seed: world.rng.next(), cleanShutdown: false, snapshots: snapshots)
            quorum.sessionTimeoutMs = world.options.sessionTimeoutMs
            // The controller's automatic leader balancing, far more often than Kafka's 300 s and
            // at any imbalance: every broker that comes back takes its preferred leaderships
            // back soon, the elections a restart brings in a real cluster.
            quorum.leaderRebalance = (intervalMs: 1_000, percentage: 0)
            quorum.driver.snapshotPolicy.maxBytesBetweenSnapshots = world.options.metadataSnapshotBytes
            runtime.deliver = { message, from in quorum.driver.receive(message, from: from) }
            runtime.unreachable = { node in quorum.driver.unreachable(node) }
            runtime.currentEpoch = {
                (
                    quorum.driver.node.epoch, quorum.driver.node.leaderId?.rawValue ?? -1,
                    quorum.driver.node.highWatermark
                )
            }
            quorum.subscribe { [world] delta, image in world.controllerCommitted(delta, image) }
            self.quorum = quorum
            let endpoint = QuorumEndpoint(
                quorum: quorum, runtime: runtime, clusterId: ReplicationSimulation.clusterId, voters: voters)
            world.network.listen(
                node: id, name: "CONTROLLER", host: Self.host, port: Self.port, handler: endpoint, loop: loop,
                accepting: true)
            try quorum.start()
        } catch {
            world.fail("the controller cannot start: \(error)")
        }
    }
}

/// One broker process of the simulation, composed as `RunnelServer` composes a broker: its
/// `LogManager` over a `SimDisk` (kept across crashes), a metadata-log observer (`MetadataQuorum`
/// on a `KafkaRaftRuntime`) publishing to the real `Broker`, the broker's `RemoteControllerChannel`,
/// `BrokerPeers` for its replica fetchers, and its `BrokerLifecycle` (register, heartbeat, serve
/// once unfenced). Clients and other brokers reach it through its listener, where the broker's
/// own request handler answers.
final class SimBrokerNode: @unchecked Sendable {
    let id: Int32
    unowned let world: ReplicationSimulation
    let disk = SimDisk()
    let snapshots = MemorySnapshotStorage()

    // The current incarnation (set by start).
    var incarnation: Int64 = 0
    var up = false
    /// Registered and unfenced once: the listener lets clients in, maintenance runs.
    var serving = false
    var loop: SimEventLoop?
    var broker: Broker?
    var quorum: MetadataQuorum<KafkaRaftRuntime>?
    var lifecycle: BrokerLifecycle?
    var controllerChannel: RemoteControllerChannel?
    var logManager: LogManager?

    static let port = 9092
    var host: String { "broker\(id)" }

    init(id: Int32, world: ReplicationSimulation) {
        self.id = id
        self.world = world
    }

    var image: MetadataImage { broker?.image ?? .empty }
    var replicaImage: MetadataImage { broker?.replicaImage ?? .empty }
    var brokerEpoch: Int64 { lifecycle?.brokerEpoch ?? -1 }
    func partition(_ tp: TopicPartition) -> Partition? { broker?.partition(tp) }

    /// The replica fetchers' settings: Kafka's defaults scaled to the simulation's clock.
    static var fetchSettings: ReplicaFetchSettings {
        var settings = ReplicaFetchSettings()
        settings.waitMaxMs = 200
        settings.backoffMs = 200
        settings.socketTimeoutMs = 2_000
        settings.partitionMaxBytes = 8_192
        return settings
    }

    // MARK: lifecycle

    func start() {
        incarnation += 1
        up = true
        serving = false
        let loop = SimEventLoop(scheduler: world.scheduler, name: "broker-\(id)#\(incarnation)")
        self.loop = loop
        let options = world.options
        let logger = world.logger("broker-\(id)")
        var staticConfig: [String: String] = [
            "log.segment.bytes": "\(options.segmentBytes)", "log.retention.ms": "-1",
            "log.retention.bytes": "-1",
        ]
        staticConfig["replica.lag.time.max.ms"] = "\(options.replicaLagTimeMaxMs)"
        var config = LogConfig()
        config.segmentBytes = options.segmentBytes
        config.retentionMs = -1
        config.retentionBytes = -1
        let logManager: LogManager
        do {
            logManager = try LogManager(
                logDirs: ["/data"], defaultConfig: config, disk: disk, nowMs: world.clock.wallMs(),
                onDiskFailure: { [world, id] tp, error in world.fail("broker \(id) failed to write \(tp): \(error)") })
        } catch {
            world.fail("broker \(id) cannot open its logs: \(error)")
            return
        }
        self.logManager = logManager
        let logs = logManager.allLogs.sorted { $0.topicPartition < $1.topicPartition }
            .map { "\($0.topicPartition) \($0.logStartOffset)..<\($0.logEndOffset) epoch \($0.latestEpoch)" }
        world.note(
            "start \(id) (incarnation \(incarnation)): \(logs.isEmpty ? "no logs" : logs.joined(separator: ", "))")

        let connector = world.network.connector(node: id, loop: loop)
        let voters = world.controller.voters
        let runtime = KafkaRaftRuntime(
            eventLoop: loop, blocking: { loop, work in loop.submit(work) }, clock: world.clock,
            clusterId: ReplicationSimulation.clusterId, voters: voters, selfId: id, connector: connector,
            logger: logger)
        var settings = BrokerSettings(
            nodeId: id, clusterId: ReplicationSimulation.clusterId,
            advertisedListeners: [.init(name: "PLAINTEXT", host: host, port: Self.port)],
            interBrokerListener: "PLAINTEXT",
            staticConfig: staticConfig)
        settings.replicaLagTimeMaxMs = options.replicaLagTimeMaxMs
        settings.brokerSessionTimeoutMs = options.sessionTimeoutMs
        settings.autoCreateTopics = false
        settings.replicationFaults = world.faults
        // Fixed per node, so the session ids replay without drawing from the world's generator.
        settings.fetchSessionIdSeed = 0x9E37_79B9_7F4A_7C15 &* UInt64(id)
        let quorum: MetadataQuorum<KafkaRaftRuntime>
        do {
            quorum = try MetadataQuorum(
                clusterId: ReplicationSimulation.clusterId,
                config: RaftConfig(nodeId: NodeID(id), voters: voters.map { NodeID($0.id) }),
                runtime: runtime, disk: disk, directory: "/data",
                controller: QuorumController(resolver: settings.resolver), seed: world.rng.next(), cleanShutdown: false,
                snapshots: snapshots)
        } catch {
            world.fail("broker \(id) cannot open its metadata log: \(error)")
            return
        }
        quorum.driver.snapshotPolicy.maxBytesBetweenSnapshots = options.metadataSnapshotBytes
        runtime.deliver = { message, from in quorum.driver.receive(message, from: from) }
        runtime.unreachable = { node in quorum.driver.unreachable(node) }
        runtime.currentEpoch = {
            (quorum.driver.node.epoch, quorum.driver.node.leaderId?.rawValue ?? -1, quorum.driver.node.highWatermark)
        }
        self.quorum = quorum
        let channel = RemoteControllerChannel(
            voters: voters, brokerId: id, connector: connector, eventLoop: loop, logger: logger,
            leaderHint: { quorum.driver.node.leaderId?.rawValue ?? -1 })
        channel.requestTimeoutMs = options.controllerRequestTimeoutMs
        channel.brokerRequestTimeoutMs = options.controllerQuorumRequestTimeoutMs
        channel.retryDeadlineMs = options.controllerRequestTimeoutMs * 2
        controllerChannel = channel
        // Replicas follow a published image in an event of their own, as on the server's
        // publisher thread, so the window where Metadata is ahead of them is simulated too.
        let broker = Broker(
            settings: settings, logManager: logManager, controller: channel, clock: world.clock, logger: logger,
            publishExecutor: { work in loop.execute(work) })
        self.broker = broker
        quorum.subscribe { delta, image in broker.publish(delta: delta, image: image) }
        let peers = BrokerPeers(
            eventLoop: loop, connector: connector, localId: id, listenerName: "PLAINTEXT", image: { broker.image })
        broker.startReplication(
            transport: peers, settings: Self.fetchSettings, blocking: { loop, work in loop.submit(work) })
        broker.startIsrChecks(on: loop)
        do {
            try quorum.start()
        } catch {
            world.fail("broker \(id) cannot start its metadata quorum: \(error)")
            return
        }
        world.network.listen(
            node: id, name: "PLAINTEXT", host: host, port: Self.port, handler: broker, loop: loop, accepting: false)

        let lifecycle = BrokerLifecycle(
            brokerId: id, channel: channel, heartbeatIntervalMs: options.heartbeatIntervalMs, eventLoop: loop,
            logger: logger, metadataOffset: { broker.appliedMetadataOffset })
        self.lifecycle = lifecycle
        lifecycle.onControllerAnswer = { fenced in broker.controllerAnswered(fenced: fenced) }
        var registration = BrokerRegistrationRequest()
        registration.brokerId = id
        registration.clusterId = ReplicationSimulation.clusterId
        registration.incarnationId = KafkaUUID(high: UInt64(id), low: UInt64(incarnation))
        registration.listeners = [.init(name: "PLAINTEXT", host: host, port: UInt16(Self.port), securityProtocol: 0)]
        registration.features = [
            .init(
                name: MetadataVersion.featureName, minSupportedVersion: MetadataVersion.supportedLevels.lowerBound,
                maxSupportedVersion: MetadataVersion.supportedLevels.upperBound)
        ]
        let alive = world.aliveCheck(id)
        // RunnelServer.start: register, let partitions follow the image, wait to be unfenced,
        // heartbeat, then let clients in and start the periodic work.
        lifecycle.register(registration, timeoutMs: options.registrationTimeoutMs).whenComplete { [self] result in
            guard alive() else { return }
            switch result {
            case .failure(let error):
                world.note("broker \(id) stops: \(error)")
                crash(powerLoss: false)
                world.restartLater(self)
            case .success(let epoch):
                world.note("\(id) registered with broker epoch \(epoch)")
                broker.registered(brokerEpoch: epoch)
                lifecycle.waitUnfenced(timeoutMs: options.registrationTimeoutMs).whenComplete { [self] _ in
                    guard alive() else { return }
                    lifecycle.startHeartbeats()
                    broker.removeStrayLogs()
                    becomeServing()
                }
            }
        }
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(300 + world.random(1_000)), delay: .milliseconds(300)) {
            [world, disk] _ in
            // The kernel writes dirty pages back now and then.
            disk.writeBack(rng: &world.rng, percent: 40)
        }
    }

    /// The listener lets clients in; the maintenance thread's checkpoints start.
    func becomeServing() {
        guard let loop, let logManager, let broker else { return }
        serving = true
        world.network.setAccepting(host: host, port: Self.port, true)
        world.note("\(id) serving")
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(1_000), delay: .milliseconds(1_000)) { [world, id] _ in
            do { try logManager.checkpointHighWatermarks(broker.highWatermarks) } catch {
                world.fail("broker \(id) high watermark checkpoint: \(error)")
            }
        }
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(3_000), delay: .milliseconds(3_000)) { [world, id] _ in
            do { try logManager.checkpoint() } catch { world.fail("broker \(id) checkpoint: \(error)") }
        }
    }

    /// The process stops at once (kill -9, or a power loss that also drops what the disk did not
    /// sync): no code of it runs again, nothing is flushed.
    func crash(powerLoss: Bool) {
        guard up else { return }
        up = false
        serving = false
        loop?.kill()
        world.network.processStopped(id)
        // Kept, not freed (see SimGraveyard).
        SimGraveyard.keep([
            loop as Any, broker as Any, quorum as Any, lifecycle as Any, controllerChannel as Any, logManager as Any,
        ])
        loop = nil
        broker = nil
        quorum = nil
        lifecycle = nil
        controllerChannel = nil
        logManager = nil
        if powerLoss {
            disk.crash(rng: &world.rng, tornWrites: world.options.tornWrites)
            snapshots.crash()
        }
    }
}
