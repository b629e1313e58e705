// Interaction transcripts of the Raft core (Transcripts/*.txt), in the shape of etcd's raft
// `testdata`: a few RaftNode values with in-memory logs and an explicit mailbox; each command
// ticks a node, hands it its messages, runs its Ready (persist, append, send), or proposes, and
// prints what the core did. A behaviour change shows as a diff of the file (RUNNEL_REWRITE=1
// regenerates it).
//
// Commands (a node is a number; times are absolute virtual ms):
//   add-nodes voters=1,2,3 [observers=100] [seed=N]   new nodes with empty logs at t=0
//   advance ms=N                   the clock moves on
//   tick [node=N]                  ticks a node (or every node) at the current time
//   process-ready [node=N]         carries out a node's (or every node's) Ready, printing it
//   deliver [node=N] [drop=true]   hands queued messages to a node (or everyone), or drops them
//   persisted [node=N]             the node's log is durable up to its end
//   propose node=N value=V         the node proposes a record
//   stabilize                      process-ready, persisted and deliver until nothing moves
//   status [node=N]                role, epoch, leader, high watermark, log
//   crash node=N                   the node loses what it did not persist and stops
//   restart node=N                 the node starts again from its durable state
//   isolate node=N                 messages to and from the node are dropped when delivered
//   heal                           no node is isolated any more
import RunnelCore
import RunnelTestSupport
import Testing
@testable import RunnelRaft

final class RaftTranscript {
    typealias Node = RaftNode<Int>

    struct Entry: Equatable {
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
        init(id: NodeID) { self.id = id }

        var logView: RaftLogView {
            var epochs: [(Int32, Int64)] = []
            for (i, e) in log.enumerated() where epochs.last?.0 != e.epoch { epochs.append((e.epoch, Int64(i))) }
            return RaftLogView(startOffset: 0, startEpoch: -1, endOffset: Int64(log.count), epochStarts: epochs)
        }
    }

    var now: Int64 = 0
    var hosts: [NodeID: Host] = [:]
    var order: [NodeID] = []
    var voters: [NodeID] = []
    var seed: UInt64 = 1
    var isolated: Set<NodeID> = []
    /// Messages sent and not yet delivered, in order.
    var mailbox: [(from: NodeID, to: NodeID, message: RaftMessage<Int>)] = []

    func run(_ c: TranscriptCommand) -> [String] {
        var out: [String] = []
        func nodes(_ c: TranscriptCommand) -> [NodeID] {
            c.arguments["node"].map { _ in [NodeID(Int32(c.int("node")))] } ?? order
        }
        switch c.name {
        case "add-nodes":
            voters = c.ints("voters").map { NodeID(Int32($0)) }
            let observers = c.arguments["observers"].map { _ in c.ints("observers").map { NodeID(Int32($0)) } } ?? []
            seed = UInt64(c.optionalInt("seed") ?? 1)
            for id in voters + observers {
                let host = Host(id: id)
                hosts[id] = host
                order.append(id)
                start(host)
            }
            for id in order { out.append(status(hosts[id]!)) }
        case "advance":
            now += c.int("ms")
            out.append("t=\(now)")
        case "tick":
            for id in nodes(c) {
                guard var node = hosts[id]!.node else { continue }
                node.tick(nowMs: now)
                hosts[id]!.node = node
            }
        case "process-ready":
            for id in nodes(c) { out += processReady(hosts[id]!) }
        case "deliver":
            out += deliver(
                to: c.arguments["node"].map { _ in NodeID(Int32(c.int("node"))) }, drop: c.arguments["drop"] == "true")
        case "persisted":
            for id in nodes(c) { out += persisted(hosts[id]!) }
        case "propose":
            let host = hosts[NodeID(Int32(c.int("node")))]!
            guard var node = host.node else {
                out.append("\(host.id) is down")
                break
            }
            let result = node.propose(Int(c.int("value")), recordCount: 1)
            host.node = node
            out.append("propose: \(result)")
        case "stabilize":
            for _ in 0..<50 {
                var lines: [String] = []
                for id in order { lines += processReady(hosts[id]!) }
                for id in order { lines += persisted(hosts[id]!) }
                lines += deliver(to: nil, drop: false)
                if lines.isEmpty { break }
                out += lines
            }
        case "status":
            for id in nodes(c) { out.append(status(hosts[id]!)) }
        case "crash":
            let host = hosts[NodeID(Int32(c.int("node")))]!
            host.node = nil
            host.log = Array(host.log.prefix(host.durableCount))
            mailbox.removeAll { $0.to == host.id }
            out.append("\(host.id) crashed; log \(describeLog(host))")
        case "isolate":
            isolated.insert(NodeID(Int32(c.int("node"))))
        case "heal":
            isolated = []
        case "restart":
            let host = hosts[NodeID(Int32(c.int("node")))]!
            start(host)
            out.append(status(host))
        default:
            fatalError("transcript line \(c.line): unknown command \(c.name)")
        }
        return out
    }

    func start(_ host: Host) {
        host.node = Node(
            config: RaftConfig(nodeId: host.id, voters: voters), state: host.durableState, log: host.logView,
            nowMs: now,
            seed: seed &+ UInt64(host.id.rawValue))
        host.highWatermark = -1
    }

    func status(_ host: Host) -> String {
        guard let node = host.node else { return "\(host.id): down; log \(describeLog(host))" }
        return
            "\(host.id): \(node.role) epoch \(node.epoch) leader \(node.leaderId.map { "\($0)" } ?? "-") voted \(node.votedId.map { "\($0)" } ?? "-")"
            + " hw \(node.highWatermark) log \(describeLog(host))"
    }

    func describeLog(_ host: Host) -> String {
        let entries = host.log.map { e -> String in
            switch e.payload {
            case .data(let v): return "\(v)@\(e.epoch)"
            case .leaderChange(let leader, _): return "L\(leader)@\(e.epoch)"
            }
        }
        return "[\(entries.joined(separator: " "))] durable \(host.durableCount)"
    }

    /// Carries out a Ready as the driver does: persist the quorum state before sending,
    /// truncate, append, send (a fetch answer gets the records the core pointed at).
    func processReady(_ host: Host) -> [String] {
        guard var node = host.node else { return [] }
        let ready = node.ready()
        host.node = node
        guard !ready.isEmpty else { return [] }
        var out = ["\(host.id) ready:"]
        if let state = ready.quorumState {
            host.durableState = state
            out.append("  state: epoch \(state.epoch) voted \(state.votedId) leader \(state.leaderId)")
        }
        if let offset = ready.truncateTo {
            host.log = Array(host.log.prefix(Int(offset)))
            host.durableCount = min(host.durableCount, Int(offset))
            out.append("  truncate to \(offset)")
        }
        for batch in ready.appends {
            precondition(batch.baseOffset == Int64(host.log.count), "appends are contiguous")
            for _ in 0..<batch.recordCount { host.log.append(Entry(epoch: batch.epoch, payload: batch.payload)) }
            out.append("  append \(batch.baseOffset)@\(batch.epoch) \(describe(batch.payload))")
        }
        if let hw = ready.highWatermark {
            host.highWatermark = hw
            out.append("  high watermark \(hw)")
        }
        for message in ready.messages {
            var m = message.message
            if case .fetchResponse(var r) = m, r.readFrom >= 0 {
                var offset = r.readFrom
                while offset < min(r.readUpTo, Int64(host.log.count)) {
                    let e = host.log[Int(offset)]
                    r.batches.append(RaftBatch(baseOffset: offset, recordCount: 1, epoch: e.epoch, payload: e.payload))
                    offset += 1
                }
                m = .fetchResponse(r)
            }
            mailbox.append((host.id, message.to, m))
            out.append("  send \(host.id)->\(message.to) \(describe(m))")
        }
        if let snapshot = ready.fetchSnapshot { out.append("  fetch snapshot \(snapshot.id) from \(snapshot.leader)") }
        return out
    }

    func persisted(_ host: Host) -> [String] {
        guard var node = host.node, host.durableCount < host.log.count else { return [] }
        host.durableCount = host.log.count
        node.persisted(upTo: Int64(host.log.count), nowMs: now)
        host.node = node
        return ["\(host.id) persisted up to \(host.log.count)"]
    }

    func deliver(to target: NodeID?, drop: Bool) -> [String] {
        var out: [String] = []
        var kept: [(from: NodeID, to: NodeID, message: RaftMessage<Int>)] = []
        let pending = mailbox
        mailbox = []
        for m in pending {
            guard target == nil || m.to == target else {
                kept.append(m)
                continue
            }
            if drop || isolated.contains(m.from) || isolated.contains(m.to) {
                out.append("dropped \(m.from)->\(m.to) \(describe(m.message))")
                continue
            }
            guard let host = hosts[m.to], var node = host.node else { continue }
            node.step(m.message, from: m.from, nowMs: now)
            host.node = node
            out.append("\(m.from)->\(m.to) \(describe(m.message))")
        }
        mailbox = kept + mailbox
        return out
    }

    func describe(_ payload: RaftPayload<Int>) -> String {
        switch payload {
        case .data(let v): return "data \(v)"
        case .leaderChange(let leader, let voters): return "leader-change \(leader) voters \(voters.map(\.rawValue))"
        }
    }

    func describe(_ m: RaftMessage<Int>) -> String {
        switch m {
        case .vote(let r):
            return "\(m.kind) epoch \(r.epoch) candidate \(r.candidateId) last \(r.lastOffset)@\(r.lastOffsetEpoch)"
        case .voteResponse(let r):
            return
                "\(m.kind) epoch \(r.epoch) granted \(r.granted)\(r.error == .none ? "" : " \(r.error)") leader \(r.leaderId)"
        case .beginQuorumEpoch(let r):
            return "BeginQuorumEpoch epoch \(r.epoch) leader \(r.leaderId)"
        case .endQuorumEpoch(let r):
            return
                "EndQuorumEpoch epoch \(r.epoch) leader \(r.leaderId) successors \(r.preferredSuccessors.map(\.rawValue))"
        case .beginQuorumEpochResponse(let r), .endQuorumEpochResponse(let r):
            return "\(m.kind) epoch \(r.epoch) leader \(r.leaderId)\(r.error == .none ? "" : " \(r.error)")"
        case .fetch(let r):
            return "Fetch epoch \(r.epoch) offset \(r.fetchOffset) last epoch \(r.lastFetchedEpoch)"
        case .fetchResponse(let r):
            var parts = ["FetchResponse epoch \(r.epoch) leader \(r.leaderId) hw \(r.highWatermark)"]
            if r.error != .none { parts.append("\(r.error)") }
            if let d = r.divergingEpoch { parts.append("diverging \(d.offset)@\(d.epoch)") }
            if let s = r.snapshotId { parts.append("snapshot \(s)") }
            if !r.batches.isEmpty {
                parts.append("records \(r.batches.map { "\($0.baseOffset)@\($0.epoch)" }.joined(separator: ","))")
            }
            return parts.joined(separator: " ")
        }
    }
}

@Suite("Raft transcripts")
struct RaftTranscriptTests {
    @Test("each transcript under Transcripts/ holds", arguments: transcriptFiles(beside: #filePath))
    func transcript(_ path: String) throws {
        let harness = RaftTranscript()
        let mismatches = try runTranscript(path) { harness.run($0) }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n\n"))")
    }
}
