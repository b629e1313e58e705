import Foundation
import Logging
import NIOCore
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelWire

/// A rule the replication simulation breaks on purpose, to prove its checkers catch the loss.
/// Each is a switch in the real code: the replication core's `ReplicationFaults`, or the topic
/// config `unclean.leader.election.enable` that the real controller reads.
public enum ReplicationBrokenRule: String, Sendable, CaseIterable {
    /// `unclean.leader.election.enable=true`: a replica outside the ISR may lead (Kafka accepts the loss).
    case uncleanLeaderElection
    /// acks=all is answered as soon as the leader appended, without waiting for the high watermark.
    case ackBeforeHighWatermark
    /// The leader's high watermark follows its own log end, past what its followers hold.
    case highWatermarkPastFollowerEnd
    /// A follower rejoins the ISR on an earlier incarnation's fetches (no KIP-903 check, on the
    /// leader or on the controller).
    case isrExpansionWithoutBrokerEpochCheck
    /// Followers ignore the diverging epoch their leader reports (no truncation).
    case ignoreDivergingEpoch
}

/// Knobs of a replication run. Times are virtual milliseconds, scaled down from Kafka's defaults
/// so that sessions expire, followers lag out of the ISR and come back many times in a run.
public struct ReplicationSimulationOptions: Sendable {
    /// Partitions of the one topic (replication factor 3 on 3 brokers).
    public var partitions = 1
    /// Events with faults on; then faults stop and the cluster must converge.
    public var events = 4_000
    /// Packets lost, per thousand (each loss resets its connection).
    public var lossPerMille: UInt64 = 5
    public var maxDelayMs: Int64 = 20
    /// Chance per event (in tenths of a percent) that a fault is injected.
    public var faultPerMille: UInt64 = 15
    public var crashes = true
    /// Some crashes lose the page cache (what was not synced): Kafka's default of no fsync per append.
    public var powerLoss = true
    public var tornWrites = true
    public var networkPartitions = true
    /// `min.insync.replicas` of the topic.
    public var minInsyncReplicas = 2
    public var producers = 2
    public var consumers = 2
    /// Batches each producer still writes per partition once faults stop.
    public var batchesAfterHealing = 5
    /// Test-only broken rules (the simulation must catch them).
    public var broken: Set<ReplicationBrokenRule> = []
    public var trace = false
    /// Print trace lines as they happen.
    public var streamTrace = false
    /// `broker.session.timeout.ms`
    public var sessionTimeoutMs: Int64 = 2_000
    /// `broker.heartbeat.interval.ms`
    public var heartbeatIntervalMs: Int64 = 200
    /// `replica.lag.time.max.ms`
    public var replicaLagTimeMaxMs: Int64 = 1_500
    /// How long one forwarded request to the controller may go unanswered before the broker
    /// tries again (`controller.socket.timeout.ms`).
    public var controllerRequestTimeoutMs: Int64 = 3_000
    /// The same for the broker's own requests: heartbeats, registration, AlterPartition
    /// (`controller.quorum.request.timeout.ms`, scaled as the session timeout is).
    public var controllerQuorumRequestTimeoutMs: Int64 = 500
    /// `initial.broker.registration.timeout.ms`: a broker that cannot register in time stops
    /// (and the simulation starts it again later).
    public var registrationTimeoutMs: Int64 = 20_000
    /// Bytes of metadata records between snapshots (small, so snapshots happen in a run).
    public var metadataSnapshotBytes: Int64 = 16_384
    /// `segment.bytes` (small, so segments roll).
    public var segmentBytes = 4_096
    public init() {}
}

/// Runs a cluster of one controller and three brokers hosting one topic (replication factor 3,
/// `min.insync.replicas` 2) on a virtual clock, network and disk. Every process is the real
/// code composed as `RunnelServer` composes it: the controller's `MetadataQuorum` and
/// `QuorumEndpoint`; each broker's `Broker` (produce, fetch, the replica fetchers, ISR
/// proposals, the purgatories, the metadata publisher), its metadata-log observer, its
/// `BrokerLifecycle` and `RemoteControllerChannel`, all on `SimEventLoop`s, talking the Kafka
/// protocol over `SimNetwork`. Faults: broker crashes (process crashes that keep the page cache,
/// and power losses that drop what was not synced, with torn writes), network partitions (one
/// link one way or both, a broker isolated, a broker cut from the controller), packet loss
/// (connection resets) and random delays (messages reorder across connections). After every
/// event it checks that acknowledged records stay at their offsets in the leader, consumers
/// read only committed records that never change, the committed prefix is the same on every
/// in-sync replica, leaders' high watermarks never go back, one leader per epoch, no fenced
/// leader; after healing, that the cluster converges and every broker's image equals the
/// controller's.
public final class ReplicationSimulation: @unchecked Sendable {
    public let seed: UInt64
    public let options: ReplicationSimulationOptions
    var rng: SeededRandom
    let scheduler = SimScheduler()
    var network: SimNetwork!
    let clock: SimClock
    public var now: Int64 { scheduler.nowMs }
    public internal(set) var events = 0
    public internal(set) var trace: [String] = []
    var failure: SimulationFailure?
    var healing = false
    /// The rules broken in the brokers' replication cores.
    let faults: ReplicationFaults

    static let clusterId = "c2ltdWxhdGlvbi1jbHVzdA"
    static let controllerId: Int32 = 0
    static let topic = "sim"
    let brokerIds: [Int32] = [1, 2, 3]
    var controller: SimControllerNode!
    var brokers: [Int32: SimBrokerNode] = [:]
    var producers: [SimProducer] = []
    var consumers: [SimConsumer] = []
    var admin: SimAdmin!
    /// What the checkers know: committed batches, acknowledged and consumed ones, per partition.
    var ledgers: [Int32: PartitionLedger] = [:]
    /// How far each replica's log has been compared with the ledger.
    var verified: [ReplicaKey: Int64] = [:]
    /// Each replica's log end and high watermark at the last check (to count truncations, and
    /// to catch one below the high watermark).
    var logEnds: [ReplicaKey: (end: Int64, highWatermark: Int64)] = [:]
    /// Replicas seen stepped aside at the last check (for the summary's count).
    var steppedAside: Set<ReplicaKey> = []
    /// Replicas that lost their page cache while in the ISR and are still in it (see `injectFault`).
    var impaired: Set<ReplicaKey> = []
    var topicCreated = false
    /// Until when the producers write nothing new: a quiet spell, in which the high watermark
    /// stands still, as on a real idle partition.
    var quietUntilMs: Int64 = 0
    /// Counters for the summary.
    public internal(set) var stats = ReplicationStats()
    /// The committed image as the checkers last saw it, and its previous PartitionChange records.
    var lastControllerImage = MetadataImage.empty

    public init(seed: UInt64, options: ReplicationSimulationOptions = ReplicationSimulationOptions()) {
        precondition(options.partitions >= 1 && options.partitions <= 4, "1 to 4 partitions")
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        self.clock = SimClock(scheduler: scheduler)
        var faults = ReplicationFaults()
        for rule in options.broken where rule != .uncleanLeaderElection { _ = faults.breakRule(named: rule.rawValue) }
        self.faults = faults
        network = SimNetwork(scheduler: scheduler) { [unowned self] bound in bound == 0 ? 0 : rng.next() % bound }
        network.maxDelayMs = options.maxDelayMs
        network.lossPerMille = options.lossPerMille
        controller = SimControllerNode(id: Self.controllerId, world: self)
        for id in brokerIds { brokers[id] = SimBrokerNode(id: id, world: self) }
        for p in 0..<Int32(options.partitions) { ledgers[p] = PartitionLedger() }
        for i in 0..<options.producers {
            producers.append(SimProducer(id: Int32(101 + i), producerId: Int64(1000 + i), world: self))
        }
        for i in 0..<options.consumers {
            consumers.append(SimConsumer(id: Int32(201 + i), rewinds: i % 2 == 1, world: self))
        }
        admin = SimAdmin(id: 300, world: self)
        controller.start()
        for id in brokerIds { brokers[id]!.start() }
        admin.start()
        for p in producers { p.start() }
        for c in consumers { c.start() }
    }

    func note(_ text: @autoclosure () -> String) {
        guard options.trace else { return }
        let line = "t=\(now) #\(events) \(text())"
        // Streamed too, so a precondition that stops the process still leaves the story.
        if options.streamTrace { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
        trace.append(line)
    }

    /// A logger for a process, writing into the trace while tracing.
    func logger(_ label: String) -> Logger {
        SimLogHandler.logger(label, tracing: options.trace) { [unowned self] line in note(line) }
    }

    func fail(_ property: String) {
        if failure == nil {
            note("FAILED: \(property)")
            failure = SimulationFailure(seed: seed, event: events, property: property, replayFlags: replayFlags)
        }
    }

    var replayFlags: String {
        (["--replication"] + (options.partitions > 1 ? ["--partitions \(options.partitions)"] : [])
            + options.broken.map(\.rawValue).sorted().map { "--broken \($0)" }).joined(separator: " ")
    }

    var partitionIds: [Int32] { (0..<Int32(options.partitions)).map { $0 } }
    func topicPartition(_ p: Int32) -> TopicPartition { TopicPartition(Self.topic, p) }

    func random(_ bound: Int64) -> Int64 { bound <= 0 ? 0 : Int64(rng.next() % UInt64(bound)) }

    /// A check that the node's current incarnation is still running (brokers restart; the
    /// controller and clients do not).
    func aliveCheck(_ node: Int32) -> @Sendable () -> Bool {
        guard let broker = brokers[node] else { return { true } }
        let incarnation = broker.incarnation
        return { [weak broker] in broker.map { $0.up && $0.incarnation == incarnation } ?? false }
    }

    /// The controller committed records: counts them for the summary and notes them.
    func controllerCommitted(_ delta: MetadataDelta, _ image: MetadataImage) {
        for p in partitionIds {
            let before = lastControllerImage.partition(topicPartition(p)), after = image.partition(topicPartition(p))
            guard let after, before != after else { continue }
            if let before {
                if before.leader != after.leader || before.leaderEpoch != after.leaderEpoch { stats.leaderChanges += 1 }
                if before.isr != after.isr { stats.isrChanges += 1 }
            }
            note(
                "controller: p\(p) leader \(after.leader) epoch \(after.leaderEpoch)/\(after.partitionEpoch) isr \(after.isr)"
            )
        }
        for id in brokerIds {
            let before = lastControllerImage.brokers[NodeID(id)], after = image.brokers[NodeID(id)]
            if before?.fenced != after?.fenced || before?.epoch != after?.epoch {
                note(
                    "controller: broker \(id) epoch \(after?.epoch ?? -1) \(after?.fenced == true ? "fenced" : "unfenced")"
                )
            }
        }
        lastControllerImage = image
    }

    /// The committed metadata.
    var controllerImage: MetadataImage { controller.image }
    func registration(_ p: Int32) -> PartitionRegistration? { controllerImage.partition(topicPartition(p)) }
    func brokerEpoch(_ id: Int32) -> Int64 { controllerImage.brokers[NodeID(id)]?.epoch ?? -1 }

    // MARK: faults

    /// Kafka without fsync keeps acknowledged records as long as not every in-sync copy loses its
    /// page cache at once (the gap KIP-966 closes). So a power loss strikes only a healthy cluster
    /// (every broker up, no partition, no earlier power loss still in an ISR), and only a broker
    /// that is not the last member of an ISR; while the replicas it held stay in their ISRs (until
    /// its session expires) the only faults are restarts and heals. Process crashes keep the page
    /// cache and are free.
    func powerLossAllowed(_ broker: SimBrokerNode) -> Bool {
        // Every broker must be serving and unfenced: a restarted one that has not re-registered
        // yet would be fenced (and leave the ISRs) after this loss, leaving only impaired members.
        let image = controllerImage
        guard options.powerLoss, impaired.isEmpty, network.cut.isEmpty,
            brokers.values.allSatisfy({ b in
                b.up && b.serving && image.brokers[NodeID(b.id)].map { !$0.fenced && $0.epoch == b.brokerEpoch } == true
            })
        else { return false }
        for p in partitionIds {
            guard let reg = registration(p) else { return false }
            if reg.isr.contains(broker.id) && !reg.isr.contains(where: { $0 != broker.id }) { return false }
        }
        return true
    }

    var clientIds: [Int32] { producers.map(\.id) + consumers.map(\.id) + [admin.id] }

    func injectFault() {
        let roll = rng.next() % 100
        let id = brokerIds[Int(rng.next() % UInt64(brokerIds.count))]
        let broker = brokers[id]!
        let calm = !impaired.isEmpty
        switch roll {
        case 0..<30 where options.crashes && !calm:
            guard broker.up else { return }
            let powerLoss = powerLossAllowed(broker) && rng.next() % 2 == 0
            crash(broker, powerLoss: powerLoss)
            restartLater(broker)
        case 30..<50 where options.networkPartitions && !calm:
            // Cut one link between two of controller and brokers (one way, or both).
            let nodes = [Self.controllerId] + brokerIds
            let a = nodes[Int(rng.next() % UInt64(nodes.count))]
            let b = nodes[Int(rng.next() % UInt64(nodes.count))]
            guard a != b else { return }
            network.cut.insert([a, b])
            let both = rng.next() % 2 == 0
            if both { network.cut.insert([b, a]) }
            note("cut \(a)\(both ? "<->" : "->")\(b)")
        case 50..<58 where options.networkPartitions && !calm:
            // Isolate a broker from everyone, clients included.
            for other in [Self.controllerId] + brokerIds + clientIds where other != id {
                network.cut.insert([id, other])
                network.cut.insert([other, id])
            }
            note("isolate \(id)")
        case 58..<64 where options.networkPartitions && !calm:
            // Cut a broker from the controller only: it keeps leading for clients and followers.
            network.cut.insert([id, Self.controllerId])
            network.cut.insert([Self.controllerId, id])
            note("cut \(id)<->controller")
        case 64..<70 where options.networkPartitions:
            // A slow (congested) link between two brokers, one way: its messages take seconds,
            // so one can arrive after its sender crashed and restarted.
            let other = brokerIds[Int(rng.next() % UInt64(brokerIds.count))]
            guard other != id else { return }
            let extra = 500 + random(8_000)
            network.slow[[id, other]] = extra
            note("slow \(id)->\(other) by \(extra) ms")
        case 70..<90:
            // Heal one cut or slow link at a time.
            if let link = network.cut.sorted(by: { $0.lexicographicallyPrecedes($1) }).first {
                network.cut.remove(link)
                note("heal \(link[0])->\(link[1])")
            } else if let link = network.slow.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).first {
                network.slow.removeValue(forKey: link)
                note("heal slow \(link[0])->\(link[1])")
            }
        default:
            if !network.cut.isEmpty || !network.slow.isEmpty {
                network.cut.removeAll()
                network.slow.removeAll()
                note("heal all")
            }
        }
    }

    /// Starts `broker` again after a while, unless it is up by then.
    func restartLater(_ broker: SimBrokerNode) {
        let down = 50 + random(4_000)
        controller.loop.schedule(afterMs: down) { [weak broker] in
            guard let broker, !broker.up else { return }
            broker.start()
        }
    }

    func crash(_ broker: SimBrokerNode, powerLoss: Bool) {
        if powerLoss {
            stats.powerLosses += 1
            // Its replicas in an ISR are impaired until the controller takes it out of the ISR
            // (its session expires or it registers again).
            for p in partitionIds {
                if let reg = registration(p), reg.replicas.contains(broker.id) {
                    impaired.insert(ReplicaKey(broker: broker.id, partition: p, incarnation: brokerEpoch(broker.id)))
                }
            }
        } else {
            stats.processCrashes += 1
        }
        broker.crash(powerLoss: powerLoss)
        note("crash \(broker.id)\(powerLoss ? " (power loss: unsynced writes lost)" : " (process: page cache kept)")")
    }

    /// Drops impaired marks once the controller took the broker's old incarnation out of the ISR.
    func updateImpaired() {
        guard !impaired.isEmpty else { return }
        for key in impaired.sorted() {
            guard let reg = registration(key.partition) else { continue }
            let registration = controllerImage.brokers[NodeID(key.broker)]
            let oldIncarnationGone = registration.map { $0.fenced || $0.epoch != key.incarnation } ?? true
            if oldIncarnationGone && !reg.isr.contains(key.broker) { impaired.remove(key) }
        }
        for p in partitionIds {
            guard let reg = registration(p), !reg.isr.isEmpty else { continue }
            if reg.isr.allSatisfy({ m in impaired.contains { $0.broker == m && $0.partition == p } }) {
                fail("outside the fault model: every ISR member of partition \(p) (\(reg.isr)) lost its page cache")
            }
        }
    }

    // MARK: the run

    /// Runs the faulty phase then the healing phase. Throws on the first broken property.
    public func run() throws {
        while events < options.events {
            step(faults: true)
            if let failure { throw failure }
        }
        heal()
        let deadline = now + 60_000
        while now < deadline {
            step(faults: false)
            if let failure { throw failure }
            if converged() {
                finalCheck()
                if let failure { throw failure }
                return
            }
        }
        throw SimulationFailure(
            seed: seed, event: events, property: "no convergence 60 s after healing: \(summary())",
            replayFlags: replayFlags)
    }

    func heal() {
        healing = true
        network.cut.removeAll()
        network.slow.removeAll()
        network.lossPerMille = 0
        note("healing: no more faults or loss")
        for id in brokerIds where !brokers[id]!.up { brokers[id]!.start() }
        for p in producers { p.finishAfter(options.batchesAfterHealing) }
    }

    func step(faults: Bool) {
        events += 1
        if faults && topicCreated && rng.next() % 1000 < options.faultPerMille {
            injectFault()
        }
        if faults && topicCreated && now >= quietUntilMs && rng.next() % 2_000 == 0 {
            quietUntilMs = now + 1_000 + random(6_000)
            note("quiet until \(quietUntilMs)")
        }
        guard scheduler.runNext() else {
            fail("nothing left to run")
            return
        }
        updateImpaired()
        check()
    }

    /// The state of every broker and partition, for failure messages.
    public func summary() -> String {
        let parts = brokerIds.map { id -> String in
            let b = brokers[id]!
            guard b.up else { return "\(id):down" }
            let logs = partitionIds.map { p -> String in
                guard let part = b.partition(topicPartition(p)) else { return "p\(p):-" }
                return
                    "p\(p):\(part.isLeader ? (part.servesClients ? "L" : "L(aside)") : "F")@\(part.leaderEpoch) leo \(part.log.logEndOffset) hw \(part.highWatermark)"
            }
            return "\(id)\(b.serving ? "" : "(not serving)") image@\(b.image.provenance.lastOffset): "
                + logs.joined(separator: " ")
        }
        let regs = partitionIds.map { p in
            registration(p).map { "p\(p) leader \($0.leader) epoch \($0.leaderEpoch) isr \($0.isr)" } ?? "p\(p) -"
        }
        let committed = partitionIds.map { "p\($0) committed \(ledgers[$0]!.end) acked \(ledgers[$0]!.acked.count)" }
        let clients =
            producers.filter { !$0.done }.map {
                "producer \($0.producerId) waits on \($0.outstanding.keys.sorted()) in flight \($0.inFlight.sorted()) remaining \($0.remaining ?? [:])"
            }
            + consumers.map { c in
                "consumer \(c.id) at \(partitionIds.map { c.positions[$0] ?? 0 }) in flight \(c.inFlight.sorted()) leaders \(c.leaders.keys.sorted().map { "p\($0)->\(c.leaders[$0]!)" }) retry \(c.retryAt.keys.sorted().map { c.retryAt[$0]! })"
            }
        return (parts + regs + committed + clients + ["controller image@\(controllerImage.provenance.lastOffset)"])
            .joined(separator: "; ")
    }

    /// What a run's end looks like, to compare two runs of one seed.
    public var fingerprint: String {
        "events \(events) now \(now) " + summary()
    }
}

/// What a run did, for the soak's figures.
public struct ReplicationStats: Sendable {
    public var processCrashes = 0
    public var powerLosses = 0
    public var ackedBatches = 0
    public var committedBatches = 0
    public var consumedBatches = 0
    public var truncations = 0
    public var leaderChanges = 0
    public var isrChanges = 0
    /// Leaders that stepped aside, cut off from the controller and an in-sync follower.
    public var stepAsides = 0
    public var producerErrors: [String: Int] = [:]
    public init() {}

    /// Adds another run's counters to these.
    public mutating func add(_ other: ReplicationStats) {
        processCrashes += other.processCrashes
        powerLosses += other.powerLosses
        ackedBatches += other.ackedBatches
        committedBatches += other.committedBatches
        consumedBatches += other.consumedBatches
        truncations += other.truncations
        leaderChanges += other.leaderChanges
        isrChanges += other.isrChanges
        stepAsides += other.stepAsides
        producerErrors.merge(other.producerErrors, uniquingKeysWith: +)
    }
}

/// One replica incarnation or one broker's replica, as a sortable key.
struct ReplicaKey: Hashable, Comparable {
    var broker: Int32
    var partition: Int32
    /// The broker epoch (impaired marks) or the process incarnation (verification cursors).
    var incarnation: Int64

    static func < (a: ReplicaKey, b: ReplicaKey) -> Bool {
        (a.broker, a.partition, a.incarnation) < (b.broker, b.partition, b.incarnation)
    }
}
