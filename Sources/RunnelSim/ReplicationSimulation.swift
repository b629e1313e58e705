import Foundation
import NIOCore
import RunnelBroker
import RunnelController
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelWire

/// A rule the replication simulation breaks on purpose, to prove its checkers catch the loss.
public enum ReplicationBrokenRule: String, Sendable, CaseIterable {
    /// `unclean.leader.election.enable=true`: a replica outside the ISR may lead (Kafka accepts the loss).
    case uncleanLeaderElection
    /// acks=all is answered as soon as the leader appended, without waiting for the high watermark.
    case ackBeforeHighWatermark
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
    public var lossPercent: UInt64 = 2
    public var duplicatePercent: UInt64 = 2
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
    /// How long a broker's request to the controller may go unanswered before it fails
    /// (the network channel's retry deadline; longer than a session, as in a real cluster).
    public var controllerRequestTimeoutMs: Int64 = 5_000
    /// `segment.bytes` (small, so segments roll).
    public var segmentBytes = 4_096
    public init() {}
}

/// Runs three brokers hosting one topic (replication factor 3, `min.insync.replicas` 2) on a
/// virtual clock, network and disk: the real `Partition`, `PartitionLog`, `LeaderState`,
/// `LogManager` and `QuorumController` code, driven the way `ReplicaFetchers`, `Broker+Fetch`,
/// `Broker+Produce`, `BrokerLifecycle` and `MetadataQuorum` drive them. Faults: broker crashes
/// (process crashes that keep the page cache, and power losses that drop what was not synced),
/// network partitions, message loss, duplication, delay and reordering. After every event it
/// checks that acknowledged records stay at their offsets in the leader, consumers read only
/// committed records that never change, the committed prefix is the same on every in-sync
/// replica, and the idempotent producers' batches are committed once each.
public final class ReplicationSimulation {
    public let seed: UInt64
    public let options: ReplicationSimulationOptions
    var rng: SeededRandom
    public internal(set) var now: Int64 = 1_000
    public internal(set) var events = 0
    var queue = EventQueue()
    public internal(set) var trace: [String] = []
    var failure: SimulationFailure?
    var healing = false

    static let controllerId: Int32 = 0
    static let topic = "sim"
    let brokerIds: [Int32] = [1, 2, 3]
    var brokers: [Int32: SimBroker] = [:]
    var controller: SimController!
    var producers: [SimProducer] = []
    var consumers: [SimConsumer] = []
    /// Directed links that drop everything.
    var cut: Set<[Int32]> = []
    /// What the checkers know: committed batches, acknowledged and consumed ones, per partition.
    var ledgers: [Int32: PartitionLedger] = [:]
    /// How far each replica's log has been compared with the ledger.
    var verified: [ReplicaKey: Int64] = [:]
    /// Replicas that lost their page cache while in the ISR and are still in it (see `injectFault`).
    var impaired: Set<ReplicaKey> = []
    var topicCreated = false
    /// Counters for the summary.
    public internal(set) var stats = ReplicationStats()

    public init(seed: UInt64, options: ReplicationSimulationOptions = ReplicationSimulationOptions()) {
        precondition(options.partitions >= 1 && options.partitions <= 4, "1 to 4 partitions")
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        controller = SimController(world: self)
        for id in brokerIds { brokers[id] = SimBroker(id: id, world: self) }
        for p in 0..<Int32(options.partitions) { ledgers[p] = PartitionLedger() }
        for i in 0..<options.producers {
            producers.append(SimProducer(id: Int32(101 + i), producerId: Int64(1000 + i), world: self))
        }
        for i in 0..<options.consumers {
            consumers.append(SimConsumer(id: Int32(201 + i), rewinds: i % 2 == 1, world: self))
        }
        controller.start()
        for id in brokerIds { brokers[id]!.start() }
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

    func fail(_ property: String) {
        if failure == nil {
            note("FAILED: \(property)")
            failure = SimulationFailure(seed: seed, event: events, property: property, replayFlags: "--replication")
        }
    }

    var partitionIds: [Int32] { (0..<Int32(options.partitions)).map { $0 } }
    func topicPartition(_ p: Int32) -> TopicPartition { TopicPartition(Self.topic, p) }

    /// Runs `work` after `delayMs` of virtual time.
    func after(_ delayMs: Int64, _ work: @escaping () -> Void) {
        queue.push(at: now + max(delayMs, 0), work)
    }

    func random(_ bound: Int64) -> Int64 { bound <= 0 ? 0 : Int64(rng.next() % UInt64(bound)) }

    // MARK: network

    /// Whether `node` accepts connections: the controller always (its quorum is simulated
    /// elsewhere); a broker once it registered and was unfenced (Kafka opens its listeners then).
    func listening(_ node: Int32) -> Bool {
        if node == Self.controllerId { return true }
        if let broker = brokers[node] { return broker.up && broker.serving }
        return true
    }

    /// Carries one message from `from` to `to`. It is lost on a cut link or at random, sometimes
    /// duplicated, and delayed by a random time (so messages reorder). When `to` is a listener
    /// that is not listening, `refused` runs back at the sender (a refused connection).
    func transmit(from: Int32, to: Int32, toListener: Bool, label: @autoclosure () -> String,
                  deliver: @escaping () -> Void, refused: (() -> Void)? = nil) {
        if cut.contains([from, to]) {
            if options.streamTrace { note("\(from)->\(to) \(label()) cut") }
            return
        }
        if !healing && rng.next() % 100 < options.lossPercent {
            if options.streamTrace { note("\(from)->\(to) \(label()) lost") }
            return
        }
        let copies = !healing && rng.next() % 100 < options.duplicatePercent ? 2 : 1
        let text = options.streamTrace ? label() : ""
        for _ in 0..<copies {
            let delay = 1 + random(max(options.maxDelayMs, 1))
            after(delay) { [self] in
                if toListener && !listening(to) {
                    if let refused { after(1 + random(3), refused) }
                    return
                }
                if options.streamTrace { note("\(from)->\(to) \(text)") }
                deliver()
            }
        }
    }

    /// A request and its answer: `handle` runs at `to` and answers through its argument (at once
    /// or later); `completion` runs once at the sender, with the answer, or nil when the request
    /// timed out or the connection was refused. Nothing runs for a sender that is no longer alive.
    func exchange<Answer>(from: Int32, to: Int32, label: String, timeoutMs: Int64, senderAlive: @escaping () -> Bool,
                          handle: @escaping (_ reply: @escaping (Answer) -> Void) -> Void,
                          completion: @escaping (Answer?) -> Void) {
        let done = Flag()
        let finish: (Answer?) -> Void = { answer in
            guard !done.value, senderAlive() else { return }
            done.value = true
            completion(answer)
        }
        after(timeoutMs) { finish(nil) }
        transmit(from: from, to: to, toListener: to != Self.controllerId && brokers[to] != nil, label: label, deliver: { [self] in
            let receiverAlive = aliveCheck(to)
            handle { answer in
                guard receiverAlive() else { return }
                self.transmit(from: to, to: from, toListener: false, label: "re: \(label)", deliver: { finish(answer) })
            }
        }, refused: { finish(nil) })
    }

    /// A check that the node's current incarnation is still running (brokers restart; the
    /// controller and clients do not).
    func aliveCheck(_ node: Int32) -> () -> Bool {
        guard let broker = brokers[node] else { return { true } }
        let incarnation = broker.incarnation
        return { [weak broker] in broker.map { $0.up && $0.incarnation == incarnation } ?? false }
    }

    /// Encodes and decodes a message at `version`, as the wire would.
    func wire<M: ApiMessage>(_ message: M, version: Int16) -> M? {
        do {
            return try M.decode(message.encoded(version: version), version: version)
        } catch {
            fail("\(M.self) v\(version) does not survive its codec: \(error)")
            return nil
        }
    }

    // MARK: faults

    /// Kafka without fsync keeps acknowledged records as long as not every in-sync copy loses its
    /// page cache at once (the gap KIP-966 closes). So a power loss strikes only a healthy cluster
    /// (every broker up, no partition, no earlier power loss still in an ISR), and only a broker
    /// that is not the last member of an ISR; while the replicas it held stay in their ISRs (until
    /// its session expires) the only faults are restarts and heals. Process crashes keep the page
    /// cache and are free.
    func powerLossAllowed(_ broker: SimBroker) -> Bool {
        // Every broker must be serving and unfenced: a restarted one that has not re-registered
        // yet would be fenced (and leave the ISRs) after this loss, leaving only impaired members.
        let image = controller.controller.image
        guard options.powerLoss, impaired.isEmpty, cut.isEmpty,
              brokers.values.allSatisfy({ b in b.up && b.serving && image.brokers[NodeID(b.id)].map { !$0.fenced && $0.epoch == b.brokerEpoch } == true })
        else { return false }
        for p in partitionIds {
            guard let reg = controller.registration(p) else { return false }
            if reg.isr.contains(broker.id) && !reg.isr.contains(where: { $0 != broker.id }) { return false }
        }
        return true
    }

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
            let down = 50 + random(4_000)
            after(down) { [self, weak broker] in
                guard let broker, !broker.up else { return }
                broker.start()
            }
        case 30..<50 where options.networkPartitions && !calm:
            // Cut one link between two of controller and brokers (one way, or both).
            let nodes = [Self.controllerId] + brokerIds
            let a = nodes[Int(rng.next() % UInt64(nodes.count))]
            let b = nodes[Int(rng.next() % UInt64(nodes.count))]
            guard a != b else { return }
            cut.insert([a, b])
            let both = rng.next() % 2 == 0
            if both { cut.insert([b, a]) }
            note("cut \(a)\(both ? "<->" : "->")\(b)")
        case 50..<58 where options.networkPartitions && !calm:
            // Isolate a broker from everyone, clients included.
            for other in [Self.controllerId] + brokerIds + producers.map(\.id) + consumers.map(\.id) where other != id {
                cut.insert([id, other])
                cut.insert([other, id])
            }
            note("isolate \(id)")
        case 58..<64 where options.networkPartitions && !calm:
            // Cut a broker from the controller only: it keeps leading for clients and followers.
            cut.insert([id, Self.controllerId])
            cut.insert([Self.controllerId, id])
            note("cut \(id)<->controller")
        case 64..<90:
            // Heal one cut link at a time.
            if let link = cut.sorted(by: { $0.lexicographicallyPrecedes($1) }).first {
                cut.remove(link)
                note("heal \(link[0])->\(link[1])")
            }
        default:
            if !cut.isEmpty {
                cut.removeAll()
                note("heal all")
            }
        }
    }

    func crash(_ broker: SimBroker, powerLoss: Bool) {
        if powerLoss {
            stats.powerLosses += 1
            // Its replicas in an ISR are impaired until the controller takes it out of the ISR
            // (its session expires or it registers again).
            for p in partitionIds {
                if let reg = controller.registration(p), reg.replicas.contains(broker.id) {
                    impaired.insert(ReplicaKey(broker: broker.id, partition: p, incarnation: controller.brokerEpoch(broker.id)))
                }
            }
        } else {
            stats.processCrashes += 1
        }
        broker.stop()
        if powerLoss { broker.disk.crash(rng: &rng, tornWrites: options.tornWrites) }
        note("crash \(broker.id)\(powerLoss ? " (power loss: unsynced writes lost)" : " (process: page cache kept)")")
    }

    /// Drops impaired marks once the controller took the broker's old incarnation out of the ISR.
    func updateImpaired() {
        guard !impaired.isEmpty else { return }
        for key in impaired.sorted() {
            guard let reg = controller.registration(key.partition) else { continue }
            let registration = controller.controller.image.brokers[NodeID(key.broker)]
            let oldIncarnationGone = registration.map { $0.fenced || $0.epoch != key.incarnation } ?? true
            if oldIncarnationGone && !reg.isr.contains(key.broker) { impaired.remove(key) }
        }
        for p in partitionIds {
            guard let reg = controller.registration(p), !reg.isr.isEmpty else { continue }
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
        throw SimulationFailure(seed: seed, event: events, property: "no convergence 60 s after healing: \(summary())", replayFlags: "--replication")
    }

    func heal() {
        healing = true
        cut.removeAll()
        note("healing: no more faults, loss or duplication")
        for id in brokerIds where !brokers[id]!.up { brokers[id]!.start() }
        for p in producers { p.finishAfter(options.batchesAfterHealing) }
    }

    func step(faults: Bool) {
        events += 1
        if faults && topicCreated && rng.next() % 1000 < options.faultPerMille {
            injectFault()
        }
        if let (time, work) = queue.pop() {
            now = max(now, time)
            work()
        }
        for id in brokerIds { brokers[id]!.completeWaiters() }
        updateImpaired()
        check()
    }

    public func summary() -> String {
        let parts = brokerIds.map { id -> String in
            let b = brokers[id]!
            guard b.up else { return "\(id):down" }
            let logs = partitionIds.map { p -> String in
                guard let part = b.partitions[topicPartition(p)] else { return "p\(p):-" }
                return "p\(p):\(part.isLeader ? "L" : "F")@\(part.leaderEpoch) leo \(part.log.logEndOffset) hw \(part.highWatermark)"
            }
            return "\(id)\(b.serving ? "" : "(not serving)"): " + logs.joined(separator: " ")
        }
        let regs = partitionIds.map { p in
            controller.registration(p).map { "p\(p) leader \($0.leader) epoch \($0.leaderEpoch) isr \($0.isr)" } ?? "p\(p) -"
        }
        let committed = partitionIds.map { "p\($0) committed \(ledgers[$0]!.end) acked \(ledgers[$0]!.acked.count)" }
        return (parts + regs + committed).joined(separator: "; ")
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

/// A mutable flag shared by closures.
final class Flag {
    var value = false
}
