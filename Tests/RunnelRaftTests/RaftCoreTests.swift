// The Raft core, one rule at a time (each test names the rule of KRaft / the Raft paper it pins),
// then the core simulation over a fixed seed set, and proof that the simulation catches a
// deliberately broken rule.
import RunnelCore
import Testing
@testable import RunnelRaft

typealias Node = RaftNode<Int>

func voters(_ n: Int) -> [NodeID] { (1...n).map { NodeID(Int32($0)) } }

/// Delivers every message among `nodes` until none are left (no loss), showing each to `watch`
/// (sender, message) before it is delivered.
func settle(
    _ nodes: inout [NodeID: Node], now: Int64, rounds: Int = 50, watch: (NodeID, Outgoing<Int>) -> Void = { _, _ in }
) {
    for _ in 0..<rounds {
        var messages: [(NodeID, Outgoing<Int>)] = []
        var appended = false
        for id in nodes.keys.sorted() {
            var n = nodes[id]!
            let r = n.ready()
            if let end = r.appends.last?.nextOffset {
                n.persisted(upTo: end, nowMs: now)
                appended = true
            }
            nodes[id] = n
            messages += r.messages.map { (id, $0) }
            // Persisting may produce more output (fetches); pick it up next round.
        }
        if messages.isEmpty && !appended { return }
        for (from, out) in messages {
            watch(from, out)
            guard var target = nodes[out.to] else { continue }
            var message = out.message
            if case .fetchResponse(var r) = message, r.readFrom >= 0, r.readFrom < r.readUpTo {
                // Records are carried by the test as unit batches in epoch order of the sender.
                let sender = nodes[from]!
                r.batches = (r.readFrom..<r.readUpTo).map {
                    RaftBatch(baseOffset: $0, recordCount: 1, epoch: sender.log.epoch(at: $0), payload: .data(Int($0)))
                }
                message = .fetchResponse(r)
            }
            target.step(message, from: from, nowMs: now)
            nodes[out.to] = target
        }
    }
}

func cluster(_ n: Int, seed: UInt64 = 1, configure: (inout RaftConfig) -> Void = { _ in }) -> [NodeID: Node] {
    var nodes: [NodeID: Node] = [:]
    for id in voters(n) {
        var config = RaftConfig(nodeId: id, voters: voters(n))
        configure(&config)
        nodes[id] = Node(
            config: config, state: .initial, log: RaftLogView(), nowMs: 0, seed: seed &+ UInt64(id.rawValue))
    }
    return nodes
}

func elect(_ nodes: inout [NodeID: Node], _ id: NodeID, now: inout Int64) {
    now += 5_000
    var n = nodes[id]!
    n.tick(nowMs: now)
    nodes[id] = n
    settle(&nodes, now: now)
}

@Suite("Raft rules")
struct RaftCoreTests {
    @Test("a lone voter elects itself and commits its leader-change record")
    func singleVoter() throws {
        var n = Node(config: RaftConfig(nodeId: 1, voters: [1]), state: .initial, log: RaftLogView(), nowMs: 0, seed: 1)
        #expect(n.role == .leader)
        #expect(n.epoch == 1)
        let r = n.ready()
        #expect(r.quorumState == QuorumStateRecord(epoch: 1, votedId: 1, leaderId: 1))
        #expect(r.appends.count == 1)
        if case .leaderChange = r.appends[0].payload {
        } else {
            Issue.record("first record of an epoch is a leader change")
        }
        n.persisted(upTo: 1, nowMs: 0)
        #expect(n.ready().highWatermark == 1)
        #expect(try n.propose(7, recordCount: 3).get() == 1...3)
        n.persisted(upTo: 4, nowMs: 1)
        #expect(n.ready().highWatermark == 4)
    }

    @Test("election timeout leads to pre-vote, then vote, then one leader (election safety)")
    func election() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        #expect(nodes[1]!.role == .leader)
        #expect(nodes[2]!.role == .follower && nodes[2]!.leaderId == 1)
        #expect(nodes[3]!.role == .follower && nodes[3]!.leaderId == 1)
        #expect(nodes.values.allSatisfy { $0.epoch == 1 })
    }

    @Test("a voter grants at most one vote per epoch, durable before it answers")
    func oneVotePerEpoch() {
        var voter = Node(
            config: RaftConfig(nodeId: 3, voters: voters(3)), state: .initial, log: RaftLogView(), nowMs: 0, seed: 3)
        _ = voter.ready()
        voter.step(
            .vote(VoteRequest(epoch: 1, candidateId: 1, lastOffsetEpoch: -1, lastOffset: 0, preVote: false)), from: 1,
            nowMs: 1)
        let first = voter.ready()
        #expect(
            first.quorumState == QuorumStateRecord(epoch: 1, votedId: 1, leaderId: -1),
            "the vote is in the Ready that answers it")
        guard case .voteResponse(let yes) = first.messages.first?.message else { Issue.record("no answer"); return }
        #expect(yes.granted)
        voter.step(
            .vote(VoteRequest(epoch: 1, candidateId: 2, lastOffsetEpoch: -1, lastOffset: 0, preVote: false)), from: 2,
            nowMs: 2)
        guard case .voteResponse(let no) = voter.ready().messages.first?.message else {
            Issue.record("no answer"); return
        }
        #expect(!no.granted)
    }

    @Test("a vote goes only to a log at least as up to date (epoch first, then offset)")
    func upToDate() {
        let log = RaftLogView(endOffset: 5, epochStarts: [(1, 0), (2, 3)])
        var voter = Node(
            config: RaftConfig(nodeId: 3, voters: voters(3)),
            state: QuorumStateRecord(epoch: 2, votedId: -1, leaderId: -1), log: log, nowMs: 0, seed: 3)
        _ = voter.ready()
        voter.step(
            .vote(VoteRequest(epoch: 3, candidateId: 1, lastOffsetEpoch: 1, lastOffset: 9, preVote: false)), from: 1,
            nowMs: 1)
        guard case .voteResponse(let older) = voter.ready().messages.last?.message else {
            Issue.record("no answer"); return
        }
        #expect(!older.granted, "older last epoch loses even with a longer log")
        voter.step(
            .vote(VoteRequest(epoch: 4, candidateId: 2, lastOffsetEpoch: 2, lastOffset: 5, preVote: false)), from: 2,
            nowMs: 2)
        guard case .voteResponse(let same) = voter.ready().messages.last?.message else {
            Issue.record("no answer"); return
        }
        #expect(same.granted)
    }

    @Test("pre-votes are refused while the voter hears from a leader")
    func preVoteWhileLeaderAlive() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        var follower = nodes[2]!
        follower.step(
            .vote(VoteRequest(epoch: 2, candidateId: 3, lastOffsetEpoch: 1, lastOffset: 100, preVote: true)), from: 3,
            nowMs: now + 10)
        guard case .voteResponse(let r) = follower.ready().messages.last?.message else {
            Issue.record("no answer"); return
        }
        #expect(!r.granted)
        #expect(follower.epoch == 1, "a pre-vote changes no epoch")
    }

    @Test("the high watermark needs a majority and a record of the current epoch")
    func commitRule() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        var leader = nodes[1]!
        _ = leader.propose(42, recordCount: 1)
        nodes[1] = leader
        #expect(nodes[1]!.highWatermark <= 1)
        settle(&nodes, now: now)
        #expect(nodes[1]!.highWatermark == 2)
        // The news went out within the pacing interval of the last round (the election's):
        // the followers learn it at the first tick past the interval.
        now += RaftConfig(nodeId: 1, voters: voters(3)).highWatermarkNoticeIntervalMs
        nodes[1]!.tick(nowMs: now)
        settle(&nodes, now: now)
        #expect(nodes[2]!.highWatermark == 2, "followers learn the high watermark from fetch responses")
    }

    @Test("a follower whose log diverges truncates to where the epochs agree")
    func divergence() {
        // Leader has epochs 1 (0..<3) and 3 (3..<5); the follower has 1 (0..<3) and 2 (3..<6).
        var leader = Node(
            config: RaftConfig(nodeId: 1, voters: [1]), state: QuorumStateRecord(epoch: 3, votedId: 1, leaderId: -1),
            log: RaftLogView(endOffset: 5, epochStarts: [(1, 0), (3, 3)]), nowMs: 0, seed: 1)
        _ = leader.ready()
        leader.step(
            .fetch(FetchRequest(epoch: leader.epoch, replicaId: 2, fetchOffset: 6, lastFetchedEpoch: 2, maxWaitMs: 0)),
            from: 2, nowMs: 1)
        guard case .fetchResponse(let r) = leader.ready().messages.last?.message else {
            Issue.record("no answer"); return
        }
        #expect(r.divergingEpoch == OffsetAndEpoch(offset: 3, epoch: 1))
        var follower = Node(
            config: RaftConfig(nodeId: 2, voters: [1, 2, 3]),
            state: QuorumStateRecord(epoch: leader.epoch, votedId: -1, leaderId: 1),
            log: RaftLogView(endOffset: 6, epochStarts: [(1, 0), (2, 3)]), nowMs: 0, seed: 2)
        _ = follower.ready()
        follower.step(.fetchResponse(r), from: 1, nowMs: 2)
        let ready = follower.ready()
        #expect(ready.truncateTo == 3)
        #expect(follower.log.endOffset == 3)
    }

    @Test("a leader not fetched from by a majority resigns (check quorum)")
    func checkQuorum() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        var leader = nodes[1]!
        _ = leader.ready()
        leader.tick(nowMs: now + 3_000)
        leader.tick(nowMs: now + 6_000)
        #expect(leader.role != .leader)
    }

    @Test("a graceful resignation sends EndQuorumEpoch and a successor is elected")
    func resignation() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        var leader = nodes[1]!
        leader.resign()
        nodes[1] = leader
        #expect(leader.role == .resigned)
        settle(&nodes, now: now)
        // Time passes in small steps, as it does: the preferred successor stands first.
        for _ in 0..<500 where !nodes.values.contains(where: { $0.role == .leader }) {
            now += 10
            for id in voters(3) { var n = nodes[id]!; n.tick(nowMs: now); nodes[id] = n }
            settle(&nodes, now: now)
        }
        let leaders = nodes.values.filter { $0.role == .leader }
        #expect(leaders.count == 1)
        #expect(leaders.first!.epoch == 2)
    }

    @Test("an observer fetches but never votes or stands")
    func observer() {
        var nodes = cluster(3)
        var now: Int64 = 0
        elect(&nodes, 1, now: &now)
        var obs = Node(
            config: RaftConfig(nodeId: 9, voters: voters(3)), state: .initial, log: RaftLogView(), nowMs: now, seed: 9)
        nodes[9] = obs
        now += 10
        obs = nodes[9]!
        obs.tick(nowMs: now)
        nodes[9] = obs
        settle(&nodes, now: now)
        #expect(nodes[9]!.leaderId == 1)
        #expect(nodes[9]!.log.endOffset == nodes[1]!.log.endOffset)
        var o = nodes[9]!
        o.step(
            .vote(VoteRequest(epoch: 5, candidateId: 2, lastOffsetEpoch: 9, lastOffset: 99, preVote: false)), from: 2,
            nowMs: now)
        guard case .voteResponse(let v) = o.ready().messages.last?.message else { Issue.record("no answer"); return }
        #expect(!v.granted)
        o.tick(nowMs: now + 100_000)
        #expect(o.role != .candidate && o.role != .leader)
    }
}

/// Voters 1-3 with 1 elected, and observer 9 caught up with them.
private func electedWithObserver(
    now: inout Int64, configure: (inout RaftConfig) -> Void = { _ in }
) -> [NodeID: Node] {
    var nodes = cluster(3, configure: configure)
    elect(&nodes, 1, now: &now)
    var config = RaftConfig(nodeId: 9, voters: voters(3))
    configure(&config)
    nodes[9] = Node(config: config, state: .initial, log: RaftLogView(), nowMs: now, seed: 9)
    now += 10
    nodes[9]!.tick(nowMs: now)
    settle(&nodes, now: now)
    return nodes
}

extension RaftCoreTests {
    @Test("an append wakes the voters' parked fetches; an observer's waits for the high watermark to cover it")
    func observerWokenByHighWatermark() throws {
        var now: Int64 = 0
        var nodes = electedWithObserver(now: &now)
        let before = nodes[1]!.log.endOffset
        #expect(nodes[9]!.log.endOffset == before && nodes[9]!.highWatermark == before)

        // Every fetch is parked at the leader; one record is appended.
        _ = try nodes[1]!.propose(7, recordCount: 1).get()
        var firstAnswered: [NodeID] = []
        var observerAnswers: [(readUpTo: Int64, highWatermark: Int64)] = []
        settle(&nodes, now: now) { _, out in
            guard case .fetchResponse(let r) = out.message else { return }
            if firstAnswered.count < 3 { firstAnswered.append(out.to) }
            if out.to == 9 { observerAnswers.append((r.readUpTo, r.highWatermark)) }
        }
        #expect(Array(firstAnswered.prefix(2)) == [2, 3], "the voters are answered first, at the append")
        // The observer gets the record once, with the high watermark that commits it.
        #expect(observerAnswers.first.map { $0.readUpTo == before + 1 && $0.highWatermark == before + 1 } == true)
        #expect(nodes[9]!.log.endOffset == before + 1 && nodes[9]!.highWatermark == before + 1)
    }

    @Test(
        "news of the high watermark alone is paced: one round per interval, however many commits",
        arguments: [Int64(5), 0])
    func highWatermarkNewsPaced(intervalMs: Int64) throws {
        var now: Int64 = 0
        var nodes = electedWithObserver(now: &now) { $0.highWatermarkNoticeIntervalMs = intervalMs }
        // 20 records, one at a time, each committed before the next, all within 1 ms.
        var newsOnly = 0
        for value in 0..<20 {
            _ = try nodes[1]!.propose(value, recordCount: 1).get()
            settle(&nodes, now: now) { from, out in
                guard from == 1, case .fetchResponse(let r) = out.message, r.readFrom >= r.readUpTo else { return }
                newsOnly += 1
            }
        }
        let end = nodes[1]!.log.endOffset
        #expect(nodes[1]!.highWatermark == end)
        if intervalMs > 0 {
            // The voters heard each high watermark with the next records; the observer acts on
            // committed records only and waits for a round, as does the last high watermark.
            // One round at most (the first commit's: the election's round is older than the
            // interval), to the two voters; the observer's answer carries records.
            #expect(newsOnly <= 2, "no round within the interval of the last one")
            #expect(nodes[9]!.highWatermark < end && nodes[2]!.highWatermark < end)
            now += intervalMs
            nodes[1]!.tick(nowMs: now)
            settle(&nodes, now: now)
        } else {
            #expect(newsOnly >= 20, "unpaced, every commit sends its news")
        }
        for id in nodes.keys {
            #expect(nodes[id]!.highWatermark == end && nodes[id]!.log.endOffset == end, "node \(id)")
        }
    }

    @Test("an observer fetches again before its appends are synced; a voter only once they are")
    func observerFetchesBeforeItsSync() throws {
        var now: Int64 = 0
        var nodes = electedWithObserver(now: &now)
        let before = nodes[1]!.log.endOffset
        #expect(nodes[9]!.log.endOffset == before && nodes[2]!.log.endOffset == before)

        // One record; voter 2 and observer 9 append it but never get to sync it.
        _ = try nodes[1]!.propose(7, recordCount: 1).get()
        var lastFetch: [NodeID: Int64] = [:]
        for _ in 0..<20 {
            var messages: [(NodeID, Outgoing<Int>)] = []
            var synced = false
            for id in nodes.keys.sorted() {
                var n = nodes[id]!
                let r = n.ready()
                if let end = r.appends.last?.nextOffset, id != 2, id != 9 {
                    n.persisted(upTo: end, nowMs: now)
                    synced = true
                }
                nodes[id] = n
                messages += r.messages.map { (id, $0) }
            }
            if messages.isEmpty && !synced { break }
            for (from, out) in messages {
                var message = out.message
                if case .fetch(let f) = message { lastFetch[from] = f.fetchOffset }
                if case .fetchResponse(var r) = message, r.readFrom >= 0, r.readFrom < r.readUpTo {
                    let sender = nodes[from]!
                    r.batches = (r.readFrom..<r.readUpTo).map {
                        RaftBatch(
                            baseOffset: $0, recordCount: 1, epoch: sender.log.epoch(at: $0), payload: .data(Int($0)))
                    }
                    message = .fetchResponse(r)
                }
                nodes[out.to]?.step(message, from: from, nowMs: now)
            }
        }
        for id: NodeID in [2, 9] {
            #expect(nodes[id]!.log.endOffset == before + 1 && nodes[id]!.log.persistedEndOffset == before)
        }
        #expect(lastFetch[9] == before + 1, "the observer fetches past what it has not synced")
        #expect(lastFetch[2] == nil, "the voter waits for its sync before it fetches (and acknowledges) again")
        #expect(nodes[1]!.highWatermark == before + 1, "voter 3 synced and acknowledged: a majority")
    }
}

@Suite("Raft core simulation")
struct RaftCoreSimulationTests {
    @Test(
        "fixed seeds: safety under crashes, partitions, loss, duplication, reordering; convergence after heal",
        arguments: 0..<40)
    func seeds(seed: Int) throws {
        let sim = CoreSimulation(seed: UInt64(seed), voters: seed % 2 == 0 ? 3 : 5, observers: seed % 3 == 0 ? 1 : 0)
        try sim.run(events: 3_000)
    }

    @Test("a seed replays exactly")
    func replay() throws {
        let a = CoreSimulation(seed: 77, trace: true)
        let b = CoreSimulation(seed: 77, trace: true)
        try a.run(events: 1_000)
        try b.run(events: 1_000)
        #expect(a.step == b.step && a.now == b.now && a.committed == b.committed && a.trace == b.trace)
    }

    @Test("granting votes to shorter logs is caught by the simulation")
    func brokenVoteRule() {
        var faults = RaftNode<Int>.Faults()
        faults.grantVotesToShorterLogs = true
        var caught = 0
        for seed in 0..<60 {
            let sim = CoreSimulation(seed: UInt64(seed), voters: 3, faults: faults)
            do { try sim.run(events: 3_000) } catch { caught += 1 }
        }
        #expect(caught > 0, "the broken rule must break an invariant on some seed")
    }

    @Test("committing without a majority is caught by the simulation")
    func brokenCommitRule() {
        var faults = RaftNode<Int>.Faults()
        faults.commitWithoutMajority = true
        var caught = 0
        for seed in 0..<30 {
            let sim = CoreSimulation(seed: UInt64(seed), voters: 3, faults: faults)
            do { try sim.run(events: 2_000) } catch { caught += 1 }
        }
        #expect(caught > 0)
    }
}
