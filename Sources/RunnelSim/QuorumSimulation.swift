import Foundation
import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelQuorum
import RunnelRaft
import RunnelWire

/// Why a simulation run failed: the seed and event that replay it, and the broken property.
public struct SimulationFailure: Error, CustomStringConvertible {
    public var seed: UInt64
    public var event: Int
    public var property: String
    /// Flags that select the simulation, for the replay command (empty: the quorum simulation).
    public var replayFlags: String = ""
    public var description: String {
        "seed \(seed) failed at event \(event): \(property) (replay: runnel-sim --seed \(seed)\(replayFlags.isEmpty ? "" : " " + replayFlags))"
    }
}

/// Knobs of a run.
public struct SimulationOptions: Sendable {
    public var voters = 3
    public var observers = 1
    /// Events with faults on; then faults stop and the cluster must converge.
    public var events = 4_000
    public var lossPercent: UInt64 = 3
    public var duplicatePercent: UInt64 = 2
    public var maxDelayMs: Int64 = 30
    public var crashes = true
    public var tornWrites = true
    public var partitions = true
    /// Test-only broken rules (the simulation must catch them).
    public var faults = RaftNode<MetadataPayload>.Faults()
    public var trace = false
    /// Print trace lines as they happen.
    public var streamTrace = false
    /// Bytes of records between snapshots (small, so snapshots and FetchSnapshot happen often).
    public var snapshotBytes: Int64 = 600
    public init() {}
}

/// Runs the real Raft core and driver (with the real `RunnelLog` over a simulated disk) for a few
/// voters and observers on a virtual clock and network, injecting crashes with torn writes,
/// partitions (one-way too, and "swizzle" clogging that cuts and heals links one at a time), loss,
/// delay, duplication and reordering. After every event it checks: at most one leader per epoch,
/// epochs monotonic per node (across restarts), high watermarks monotonic per incarnation,
/// committed records never lost or changed on any node, and convergence once faults heal.
public final class QuorumSimulation {
    public let seed: UInt64
    public let options: SimulationOptions
    var rng: SeededRandom
    public private(set) var now: Int64 = 1_000
    public private(set) var events = 0
    var queue = EventQueue()
    var hosts: [NodeID: SimHost] = [:]
    let voterIds: [NodeID]
    let observerIds: [NodeID]
    /// Directed links that drop everything.
    var cut: Set<[Int32]> = []
    var leaders: [Int32: NodeID] = [:]
    /// offset -> committed record value (nil for control records), the one truth.
    var committed: [Int64: ByteBuffer?] = [:]
    var highestEpochSeen: [NodeID: Int32] = [:]
    var nextProposal = 0
    /// offset -> the last record of a proposal acknowledged there, until that offset commits.
    var acknowledged: [Int64: ByteBuffer] = [:]
    var healing = false
    public private(set) var trace: [String] = []
    var failure: SimulationFailure?

    public init(seed: UInt64, options: SimulationOptions = SimulationOptions()) {
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        self.voterIds = (1...options.voters).map { NodeID(Int32($0)) }
        self.observerIds = (0..<options.observers).map { NodeID(Int32(100 + $0)) }
        for id in voterIds + observerIds {
            let host = SimHost(id: id, world: self)
            hosts[id] = host
        }
        for id in (voterIds + observerIds) { start(hosts[id]!) }
    }

    func note(_ text: @autoclosure () -> String) {
        guard options.trace else { return }
        let line = "t=\(now) \(text())"
        // Streamed too, so a precondition that stops the process still leaves the story.
        if options.streamTrace { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
        trace.append(line)
    }

    func fail(_ property: String) {
        if failure == nil { failure = SimulationFailure(seed: seed, event: events, property: property) }
    }

    // MARK: lifecycle of nodes

    func start(_ host: SimHost) {
        host.incarnation += 1
        host.up = true
        host.highWatermark = -1
        host.appliedUpTo = 0
        let runtime = SimRuntime(host: host, incarnation: host.incarnation)
        do {
            var config = RaftConfig(nodeId: host.id, voters: voterIds)
            config.electionTimeoutMs = 1000
            config.fetchTimeoutMs = 2000
            let driver = try RaftDriver(
                config: config, runtime: runtime, disk: host.disk, directory: "/node\(host.id)", listener: host,
                seed: rng.next(), cleanShutdown: false, snapshots: host.snapshots)
            driver.faults = options.faults
            driver.snapshotPolicy.maxBytesBetweenSnapshots = options.snapshotBytes
            driver.snapshotPolicy.maxIntervalMs = 20_000
            host.image = .empty
            host.driver = driver
            note(
                "start \(host.id) epoch \(driver.node.epoch) log \(driver.log.log.logStartOffset)..<\(driver.log.endOffset) snapshot \(host.snapshots.latest().map { "\($0)" } ?? "-")"
            )
            try driver.start()
        } catch {
            fail("node \(host.id) could not start: \(error)")
        }
    }

    func crash(_ host: SimHost) {
        host.driver?.stop()
        host.driver = nil
        host.up = false
        host.disk.crash(rng: &rng, tornWrites: options.tornWrites)
        host.snapshots.crash()
        note("crash \(host.id)")
    }

    // MARK: network

    func send(_ message: RaftMessage<MetadataPayload>, from: NodeID, to: NodeID) {
        if cut.contains([from.rawValue, to.rawValue]) { return }
        if let target = hosts[to], !target.up {
            // A crashed node's port refuses connections: the sender hears about it soon.
            let senderIncarnation = hosts[from]?.incarnation
            queue.push(at: now + 1 + Int64(rng.next() % 5)) { [weak self] in
                guard let self, let sender = self.hosts[from], sender.up, sender.incarnation == senderIncarnation else {
                    return
                }
                sender.driver?.unreachable(to)
            }
            return
        }
        if !healing && rng.next() % 100 < options.lossPercent { return }
        let copies = !healing && rng.next() % 100 < options.duplicatePercent ? 2 : 1
        for _ in 0..<copies {
            let delay = 1 + Int64(rng.next() % UInt64(max(options.maxDelayMs, 1)))
            queue.push(at: now + delay) { [weak self] in
                guard let self, let target = self.hosts[to], target.up, let driver = target.driver else { return }
                if self.options.streamTrace {
                    switch message {
                    case .fetch(let r):
                        self.note(
                            "\(from)->\(to) Fetch off \(r.fetchOffset) lastEpoch \(r.lastFetchedEpoch) epoch \(r.epoch)"
                        )
                    case .fetchResponse(let r):
                        self.note(
                            "\(from)->\(to) FetchResponse err \(r.error) epoch \(r.epoch) leader \(r.leaderId) hw \(r.highWatermark) div \(r.divergingEpoch.map { "\($0)" } ?? "-") batches \(r.batches.map { "\($0.baseOffset)@\($0.epoch)" })"
                        )
                    default: self.note("\(from)->\(to) \(message.kind)")
                    }
                }
                driver.receive(message, from: from)
            }
        }
    }

    // MARK: checks

    func committed(on host: SimHost, entries: [MetadataLog.Entry], highWatermark: Int64) {
        note("\(host.id) hw \(highWatermark) (+\(entries.count))")
        if highWatermark < host.highWatermark {
            fail("high watermark went back on \(host.id): \(highWatermark) < \(host.highWatermark)")
        }
        host.highWatermark = highWatermark
        for entry in entries {
            if entry.offset != host.appliedUpTo {
                fail("node \(host.id) applied offset \(entry.offset) after \(host.appliedUpTo - 1)")
            }
            host.appliedUpTo = entry.offset + 1
            var delta = MetadataDelta(host.image)
            if let record = entry.record {
                delta.replay(record, offset: entry.offset, epoch: entry.epoch)
            } else {
                delta.advance(offset: entry.offset, epoch: entry.epoch)
            }
            host.image = delta.apply()
            let value: ByteBuffer? = entry.record.map { MetadataRecordFrame.encode($0) }
            if let known = committed[entry.offset] {
                if known != value { fail("committed offset \(entry.offset) differs on node \(host.id)") }
            } else {
                committed[entry.offset] = value
                if let acked = acknowledged.removeValue(forKey: entry.offset) {
                    checkAcknowledged(acked, committed: value, at: entry.offset)
                }
            }
        }
    }

    /// A leader acknowledged a proposal whose last record is `value` at `offset`: the record
    /// committed there must be it.
    func acknowledge(_ value: ByteBuffer, at offset: Int64) {
        if let known = committed[offset] {
            checkAcknowledged(value, committed: known, at: offset)
        } else {
            acknowledged[offset] = value
        }
    }

    private func checkAcknowledged(_ acked: ByteBuffer, committed value: ByteBuffer?, at offset: Int64) {
        if acked != value { fail("a proposal acknowledged at offset \(offset) is not the record committed there") }
    }

    /// The image every node must have at `endOffset`: the committed records replayed.
    func referenceImage(upTo endOffset: Int64) -> MetadataImage {
        var delta = MetadataDelta(.empty)
        for offset in 0..<endOffset {
            guard let entry = committed[offset] else { continue }
            if let value = entry {
                if let record = try? MetadataRecordFrame.decode(value).record {
                    delta.replay(record, offset: offset, epoch: 0)
                }
            }
        }
        return delta.apply()
    }

    func snapshotLoaded(on host: SimHost, image: MetadataImage) {
        let end = image.provenance.lastOffset + 1
        // Only records committed somewhere can be in a snapshot; it must match them exactly.
        if end > 0 && committed.count >= Int(end) {
            let reference = referenceImage(upTo: end)
            if reference.records() != image.records() {
                fail("snapshot ending at \(end) loaded on \(host.id) differs from the committed records")
            }
        }
        host.appliedUpTo = end
        host.highWatermark = max(host.highWatermark, end)
        note("\(host.id) loaded snapshot ending at \(end)")
    }

    func checkLeaders() {
        for host in hosts.values.sorted(by: { $0.id < $1.id }) where host.up {
            guard let node = host.driver?.node else { continue }
            if let violation = node.invariantViolation { fail("node \(host.id): \(violation)") }
            if node.log.startOffset > (host.snapshots.latest()?.endOffset ?? 0) {
                fail("node \(host.id) log starts at \(node.log.startOffset), past its newest snapshot")
            }
            let top = highestEpochSeen[host.id] ?? -1
            if node.epoch < top { fail("epoch went back on \(host.id): \(node.epoch) < \(top)") }
            highestEpochSeen[host.id] = max(top, node.epoch)
            if node.role == .leader {
                if let other = leaders[node.epoch], other != host.id {
                    fail("two leaders in epoch \(node.epoch): \(other) and \(host.id)")
                }
                leaders[node.epoch] = host.id
            }
        }
    }

    // MARK: the run

    /// One to three proposals of one or two records each, in one turn of the leader's executor
    /// (so the driver appends them as one batch).
    func propose() {
        guard
            let leader = hosts.values.sorted(by: { $0.id < $1.id }).first(where: {
                $0.up && $0.driver?.node.role == .leader
            })
        else { return }
        for _ in 0...(rng.next() % 3) {
            let values = (0...(rng.next() % 2)).map { _ in
                nextProposal += 1
                return MetadataRecordFrame.encode(
                    .config(
                        ConfigRecord(
                            resourceType: 4, resourceName: "", name: "sim.proposal", value: "\(nextProposal)")))
            }
            leader.driver!.propose(values) { [weak self] outcome in
                if case .success(let offset) = outcome { self?.acknowledge(values.last!, at: offset) }
            }
        }
    }

    func injectFault() {
        let all = (voterIds + observerIds).sorted()
        let host = hosts[all[Int(rng.next() % UInt64(all.count))]]!
        switch rng.next() % 10 {
        case 0, 1:
            if options.crashes {
                if host.up { crash(host) } else { start(host) }
            }
        case 2, 3:
            if options.partitions {
                // Cut one link (one way, or both).
                let other = all[Int(rng.next() % UInt64(all.count))]
                if other != host.id {
                    cut.insert([host.id.rawValue, other.rawValue])
                    if rng.next() % 2 == 0 { cut.insert([other.rawValue, host.id.rawValue]) }
                    note("cut \(host.id)->\(other)")
                }
            }
        case 4:
            if options.partitions {
                // Isolate a node completely.
                for other in all where other != host.id {
                    cut.insert([host.id.rawValue, other.rawValue])
                    cut.insert([other.rawValue, host.id.rawValue])
                }
                note("isolate \(host.id)")
            }
        case 5, 6:
            // Swizzle clogging: heal one cut link at a time.
            if let link = cut.sorted(by: { $0.lexicographicallyPrecedes($1) }).first { cut.remove(link) }
        default:
            if !host.up && options.crashes { start(host) }
        }
    }

    /// Runs the faulty phase then the healing phase. Throws on the first broken property.
    public func run() throws {
        while events < options.events {
            step(faults: true)
            if let failure { throw failure }
        }
        // Heal: everything up, no cuts, no loss; the cluster must converge.
        healing = true
        cut.removeAll()
        for host in hosts.values.sorted(by: { $0.id < $1.id }) where !host.up { start(host) }
        let deadline = now + 60_000
        var proposalsLeft = 20
        while now < deadline {
            if proposalsLeft > 0, rng.next() % 20 == 0,
                hosts.values.contains(where: { $0.driver?.isActiveLeader == true })
            {
                propose()
                proposalsLeft -= 1
            }
            step(faults: false)
            if let failure { throw failure }
            if proposalsLeft == 0 && converged() { return }
        }
        throw SimulationFailure(seed: seed, event: events, property: "no convergence 60 s after healing: \(summary())")
    }

    func step(faults: Bool) {
        events += 1
        let roll = rng.next() % 100
        if faults && roll < 3 {
            injectFault()
        } else if faults && roll < 12 {
            propose()
        }
        if let (time, work) = queue.pop() {
            now = max(now, time)
            work()
        }
        checkLeaders()
    }

    func converged() -> Bool {
        let all = hosts.values.sorted { $0.id < $1.id }
        guard all.allSatisfy({ $0.up && $0.driver != nil }),
            let leader = all.first(where: { $0.driver!.isActiveLeader })
        else { return false }
        let end = leader.driver!.log.endOffset
        return all.allSatisfy { h in
            h.driver!.log.endOffset == end && h.highWatermark == end && h.appliedUpTo == end
                && (h.id == leader.id || h.driver!.node.leaderId == leader.id)
        }
    }

    public func summary() -> String {
        hosts.values.sorted { $0.id < $1.id }.map { h in
            guard let d = h.driver else { return "\(h.id):down" }
            return
                "\(h.id):\(d.node.role)@\(d.node.epoch) log \(d.node.log.startOffset)..<\(d.log.endOffset) hw \(h.highWatermark) snap \(h.snapshots.latest().map { "\($0)" } ?? "-")"
        }.joined(separator: ", ")
    }

    public var committedCount: Int { committed.count }
}

/// One node's durable parts (disk) and its current incarnation.
final class SimHost: RaftListener {
    let id: NodeID
    unowned let world: QuorumSimulation
    let disk = SimDisk()
    let snapshots = MemorySnapshotStorage()
    var image = MetadataImage.empty
    var driver: RaftDriver<SimRuntime>?
    var incarnation = 0
    var up = false
    var highWatermark: Int64 = -1
    var appliedUpTo: Int64 = 0

    init(id: NodeID, world: QuorumSimulation) {
        self.id = id
        self.world = world
    }

    func committed(_ entries: [MetadataLog.Entry], highWatermark: Int64) {
        world.committed(on: self, entries: entries, highWatermark: highWatermark)
    }

    func leadershipChanged(role: RaftRole, epoch: Int32, leaderId: NodeID?) {
        world.note("\(id) is \(role) in epoch \(epoch), leader \(leaderId.map { "\($0)" } ?? "-")")
    }

    func snapshotLoaded(_ image: MetadataImage, fetched: Bool) {
        self.image = image
        world.snapshotLoaded(on: self, image: image)
    }

    func imageForSnapshot() -> MetadataImage? { image }
}

/// The runtime of one node incarnation: events die with the incarnation.
final class SimRuntime: RaftRuntime {
    unowned let host: SimHost
    let incarnation: Int

    init(host: SimHost, incarnation: Int) {
        self.host = host
        self.incarnation = incarnation
    }

    var alive: Bool { host.up && host.incarnation == incarnation }
    var nowMs: Int64 { host.world.now }
    var wallMs: Int64 { host.world.now }

    func schedule(afterMs delayMs: Int64, _ work: @escaping () -> Void) {
        host.world.queue.push(at: host.world.now + max(delayMs, 1)) { [self] in
            if alive { work() }
        }
    }

    func execute(_ work: @escaping () -> Void) {
        host.world.queue.push(at: host.world.now) { [self] in
            if alive { work() }
        }
    }

    func runBlocking(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void) {
        // An fsync takes 0.1 to 3 ms of virtual time; it happens when it completes.
        let delay = 1 + Int64(host.world.rng.next() % 3)
        host.world.queue.push(at: host.world.now + delay) { [self] in
            guard alive else { return }
            do {
                try work()
                then(nil)
            } catch {
                then(error)
            }
        }
    }

    func send(_ message: RaftMessage<MetadataPayload>, to: NodeID) {
        guard alive else { return }
        host.world.send(message, from: host.id, to: to)
    }

    func fetchSnapshotChunk(
        from node: NodeID, id: SnapshotId, position: Int64,
        completion: @escaping (Result<SnapshotChunk, any Error>) -> Void
    ) {
        guard alive else { return }
        let world = host.world
        let lost =
            world.cut.contains([host.id.rawValue, node.rawValue])
            || world.cut.contains([node.rawValue, host.id.rawValue])
            || (!world.healing && world.rng.next() % 100 < world.options.lossPercent)
        let delay = 1 + Int64(world.rng.next() % UInt64(max(world.options.maxDelayMs, 1)))
        world.queue.push(at: world.now + delay) { [self] in
            guard alive else { return }
            guard !lost, let source = world.hosts[node], source.up, let driver = source.driver else {
                completion(.failure(SimulatedLoss()))
                return
            }
            completion(driver.snapshotChunk(id, position: position, maxBytes: 700))
        }
    }
}

struct SimulatedLoss: Error {}

/// Events in time order; ties in insertion order (so a seed replays exactly).
struct EventQueue {
    private var heap: [(time: Int64, sequence: Int, work: () -> Void)] = []
    private var sequence = 0

    mutating func push(at time: Int64, _ work: @escaping () -> Void) {
        sequence += 1
        heap.append((time, sequence, work))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if less(i, parent) { heap.swapAt(i, parent); i = parent } else { break }
        }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].time != heap[b].time ? heap[a].time < heap[b].time : heap[a].sequence < heap[b].sequence
    }

    mutating func pop() -> (Int64, () -> Void)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = 2 * i + 2
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.work)
    }

    var isEmpty: Bool { heap.isEmpty }
    /// When the next piece of work is due.
    var nextTime: Int64? { heap.first?.time }
}
