// A deterministic simulation of the Raft core alone: several RaftNode values with in-memory logs
// that lose unsynced appends on crash, a network that delays, drops, duplicates and partitions,
// and a virtual clock. After every event it checks Raft's safety properties. The same seed always
// replays the same run. (RunnelSim drives the real driver and disk; this one isolates the core.)
import RunnelCore
@testable import RunnelRaft

struct SimFailure: Error, CustomStringConvertible {
    var seed: UInt64
    var step: Int
    var message: String
    var description: String { "seed \(seed), event \(step): \(message)" }
}

final class CoreSimulation {
    typealias Node = RaftNode<Int>

    struct Entry: Equatable {
        var offset: Int64
        var epoch: Int32
        var payload: RaftPayload<Int>
    }

    final class Host {
        let id: NodeID
        var node: Node?
        var durableState = QuorumStateRecord.initial
        var log: [Entry] = []
        var durableCount = 0
        var highWatermark: Int64 = -1
        var syncInFlight: (target: Int64, truncatedTo: Int64)?
        var up = true

        init(id: NodeID) { self.id = id }

        var logView: RaftLogView {
            var epochs: [(Int32, Int64)] = []
            for e in log where epochs.last?.0 != e.epoch { epochs.append((e.epoch, e.offset)) }
            return RaftLogView(startOffset: 0, startEpoch: -1, endOffset: Int64(log.count), epochStarts: epochs)
        }
    }

    struct InFlight {
        var deliverAt: Int64
        var sequence: Int
        var from: NodeID
        var to: NodeID
        var message: RaftMessage<Int>
    }

    let seed: UInt64
    var rng: SeededRandom
    var now: Int64 = 0
    var hosts: [NodeID: Host] = [:]
    let voters: [NodeID]
    let observers: [NodeID]
    var network: [InFlight] = []
    var sequence = 0
    var step = 0
    /// Links cut: (from, to).
    var cut: Set<[Int32]> = []
    var leaders: [Int32: NodeID] = [:]
    var committed: [Int64: Entry] = [:]
    var nextPayload = 1
    var lossPercent: UInt64 = 5
    var faults = RaftNode<Int>.Faults()
    var trace: [String] = []
    let traceEnabled: Bool

    init(seed: UInt64, voters: Int = 3, observers: Int = 0, faults: RaftNode<Int>.Faults = .init(), trace: Bool = false)
    {
        self.seed = seed
        self.rng = SeededRandom(seed: seed)
        self.voters = (1...voters).map { NodeID(Int32($0)) }
        self.observers = (0..<observers).map { NodeID(Int32(100 + $0)) }
        self.faults = faults
        self.traceEnabled = trace
        for id in self.voters + self.observers {
            let host = Host(id: id)
            hosts[id] = host
            start(host)
        }
    }

    func start(_ host: Host) {
        var node = Node(
            config: RaftConfig(nodeId: host.id, voters: voters), state: host.durableState, log: host.logView,
            nowMs: now, seed: rng.next())
        node.faults = faults
        host.node = node
        host.up = true
        host.highWatermark = -1
        host.syncInFlight = nil
        note("start \(host.id) state \(host.durableState) log \(host.log.map { "\($0.offset)@\($0.epoch)" })")
        process(host)
    }

    func crash(_ host: Host) {
        host.up = false
        host.node = nil
        // Unsynced appends are lost, possibly only in part (a torn tail).
        let keep = host.durableCount + Int(rng.next() % UInt64(host.log.count - host.durableCount + 1)) * 0
        host.log = Array(host.log.prefix(keep))
        host.durableCount = host.log.count
        host.syncInFlight = nil
        network.removeAll { $0.to == host.id }
        note("crash \(host.id)")
    }

    func note(_ s: String) {
        if traceEnabled { trace.append("t=\(now) \(s)") }
    }

    /// Carries out a node's Ready: persist state, truncate, append, send, start a sync.
    func process(_ host: Host) {
        guard host.up, var node = host.node else { return }
        let ready = node.ready()
        host.node = node
        if traceEnabled && !ready.isEmpty {
            note(
                "n\(host.id) \(node.role)@\(node.epoch) leader \(node.leaderId.map { "\($0)" } ?? "-") log \(host.log.count) dur \(host.durableCount) hw \(host.highWatermark)"
                    + (ready.truncateTo.map { " TRUNC \($0)" } ?? "")
                    + (ready.appends.isEmpty ? "" : " APPEND \(ready.appends.map { "\($0.baseOffset)@\($0.epoch)" })")
                    + (ready.highWatermark.map { " HW \($0)" } ?? "") + (ready.quorumState.map { " STATE \($0)" } ?? "")
                    + (ready.messages.isEmpty ? "" : " SEND \(ready.messages.map { "\($0.message.kind)->\($0.to)" })"))
        }
        if let state = ready.quorumState { host.durableState = state }
        if let truncate = ready.truncateTo {
            host.log.removeLast(host.log.count - Int(truncate))
            host.durableCount = min(host.durableCount, Int(truncate))
            if var sync = host.syncInFlight {
                sync.truncatedTo = min(sync.truncatedTo, truncate)
                host.syncInFlight = sync
            }
        }
        for batch in ready.appends {
            precondition(batch.baseOffset == Int64(host.log.count))
            for i in 0..<batch.recordCount {
                host.log.append(Entry(offset: batch.baseOffset + Int64(i), epoch: batch.epoch, payload: batch.payload))
            }
        }
        for out in ready.messages {
            var message = out.message
            if case .fetchResponse(var r) = message, r.readFrom >= 0 {
                // The driver reads the records the core pointed at, at most a few batches.
                var batches: [RaftBatch<Int>] = []
                var offset = r.readFrom
                while offset < min(r.readUpTo, Int64(host.log.count)) && batches.count < 8 {
                    let e = host.log[Int(offset)]
                    batches.append(RaftBatch(baseOffset: offset, recordCount: 1, epoch: e.epoch, payload: e.payload))
                    offset += 1
                }
                r.batches = batches
                message = .fetchResponse(r)
            }
            sendMessage(from: host.id, to: out.to, message)
        }
        if let hw = ready.highWatermark {
            precondition(hw >= host.highWatermark, "high watermark went back on \(host.id)")
            host.highWatermark = hw
        }
        if let snapshot = ready.fetchSnapshot {
            _ = snapshot
        }
        if host.log.count > host.durableCount && host.syncInFlight == nil {
            host.syncInFlight = (Int64(host.log.count), Int64(host.log.count))
        }
    }

    func sendMessage(from: NodeID, to: NodeID, _ message: RaftMessage<Int>) {
        if cut.contains([from.rawValue, to.rawValue]) { return }
        if rng.next() % 100 < lossPercent { return }
        sequence += 1
        let delay = Int64(1 + rng.next() % 20)
        network.append(InFlight(deliverAt: now + delay, sequence: sequence, from: from, to: to, message: message))
        if rng.next() % 100 < 2 {
            sequence += 1
            network.append(
                InFlight(
                    deliverAt: now + delay + Int64(rng.next() % 30), sequence: sequence, from: from, to: to,
                    message: message))
        }
    }

    // MARK: running

    func propose(_ host: Host) {
        guard host.up, var node = host.node, node.role == .leader else { return }
        let id = nextPayload
        nextPayload += 1
        _ = node.propose(id, recordCount: 1)
        host.node = node
        process(host)
    }

    /// One event: deliver a message, finish a sync, tick, propose, or inject a fault.
    func runEvent(faultsOn: Bool, proposing: Bool = true) throws {
        step += 1
        let choice = rng.next() % 100
        if faultsOn && choice < 2 {
            // Crash or restart someone.
            let all = Array(hosts.values).sorted { $0.id < $1.id }
            let host = all[Int(rng.next() % UInt64(all.count))]
            if host.up { crash(host) } else { start(host) }
        } else if faultsOn && choice < 4 {
            // Partition or heal.
            if rng.next() % 2 == 0 || cut.isEmpty {
                let ids = (voters + observers).map(\.rawValue)
                let a = ids[Int(rng.next() % UInt64(ids.count))]
                let b = ids[Int(rng.next() % UInt64(ids.count))]
                if a != b {
                    cut.insert([a, b])
                    if rng.next() % 2 == 0 { cut.insert([b, a]) }  // else one-way
                }
            } else {
                cut.removeAll()
            }
        } else if choice < 10 {
            if proposing,
                let leader = hosts.values.sorted(by: { $0.id < $1.id }).first(where: {
                    $0.up && $0.node?.role == .leader
                })
            {
                propose(leader)
            }
        } else if choice < 25 {
            // A sync finishes.
            let syncing = hosts.values.filter { $0.up && $0.syncInFlight != nil }.sorted { $0.id < $1.id }
            if let host = syncing.first(where: { _ in rng.next() % 2 == 0 }) ?? syncing.first {
                let sync = host.syncInFlight!
                host.syncInFlight = nil
                let upTo = min(sync.target, sync.truncatedTo, Int64(host.log.count))
                host.durableCount = max(host.durableCount, Int(upTo))
                host.node!.persisted(upTo: upTo, nowMs: now)
                process(host)
            }
        } else if !network.isEmpty && choice < 75 {
            // Deliver the earliest message (with reordering among close ones).
            network.sort { $0.deliverAt != $1.deliverAt ? $0.deliverAt < $1.deliverAt : $0.sequence < $1.sequence }
            let pick = min(network.count - 1, Int(rng.next() % 3))
            let m = network.remove(at: pick)
            now = max(now, m.deliverAt)
            if let host = hosts[m.to], host.up, var node = host.node {
                node.step(m.message, from: m.from, nowMs: now)
                host.node = node
                process(host)
            }
        } else {
            now += Int64(1 + rng.next() % 50)
            for host in hosts.values.sorted(by: { $0.id < $1.id }) where host.up {
                host.node!.tick(nowMs: now)
                process(host)
            }
        }
        try checkInvariants()
    }

    func checkInvariants() throws {
        for host in hosts.values.sorted(by: { $0.id < $1.id }) where host.up {
            let node = host.node!
            if let violation = node.invariantViolation {
                throw SimFailure(seed: seed, step: step, message: "node \(host.id): \(violation)")
            }
            // One leader per epoch.
            if node.role == .leader {
                if let other = leaders[node.epoch], other != host.id {
                    throw SimFailure(
                        seed: seed, step: step, message: "two leaders in epoch \(node.epoch): \(other) and \(host.id)")
                }
                if leaders[node.epoch] == nil {
                    leaders[node.epoch] = host.id
                    // Leader completeness: it holds every committed entry.
                    for (offset, entry) in committed {
                        guard offset < Int64(host.log.count), host.log[Int(offset)] == entry else {
                            throw SimFailure(
                                seed: seed, step: step,
                                message: "leader \(host.id) of epoch \(node.epoch) lacks committed offset \(offset)")
                        }
                    }
                }
            }
            // Committed entries never change; the high watermark never exceeds the log.
            let hw = host.highWatermark
            if hw > Int64(host.log.count) && node.role != .leader {
                throw SimFailure(
                    seed: seed, step: step,
                    message: "node \(host.id) high watermark \(hw) beyond its log \(host.log.count)")
            }
            for offset in 0..<max(0, min(hw, Int64(host.log.count))) {
                let entry = host.log[Int(offset)]
                if let known = committed[offset] {
                    if known != entry {
                        throw SimFailure(
                            seed: seed, step: step,
                            message: "committed offset \(offset) changed on node \(host.id): \(known) vs \(entry)")
                    }
                } else {
                    committed[offset] = entry
                }
            }
        }
        // A committed entry must be durable on a majority of voters.
        if let maxCommitted = committed.keys.max() {
            let holders = voters.filter { id in
                let h = hosts[id]!
                return Int64(h.durableCount) > maxCommitted && h.log[Int(maxCommitted)] == committed[maxCommitted]
            }.count
            if holders < voters.count / 2 + 1 {
                throw SimFailure(
                    seed: seed, step: step,
                    message: "committed offset \(maxCommitted) is durable on only \(holders) voters")
            }
        }
    }

    /// Runs `events` events with faults, then heals everything and checks that all nodes converge
    /// on one leader and one log.
    func run(events: Int) throws {
        for _ in 0..<events { try runEvent(faultsOn: true) }
        cut.removeAll()
        lossPercent = 0
        for host in hosts.values.sorted(by: { $0.id < $1.id }) where !host.up { start(host) }
        for i in 0..<20_000 {
            try runEvent(faultsOn: false, proposing: i < 2_000)
            if converged() { return }
        }
        throw SimFailure(
            seed: seed, step: step,
            message:
                "no convergence after healing: roles \(hosts.values.sorted { $0.id < $1.id }.map { "\($0.id):\($0.node!.role)@\($0.node!.epoch) log \($0.log.count) hw \($0.highWatermark)" })"
        )
    }

    func converged() -> Bool {
        let all = hosts.values.sorted { $0.id < $1.id }
        guard let leader = all.first(where: { $0.node!.role == .leader }) else { return false }
        let end = leader.log.count
        return all.allSatisfy { h in
            h.log.count == end && h.log == leader.log && h.highWatermark == Int64(end)
                && (h.id == leader.id || h.node!.leaderId == leader.id)
        }
    }
}
