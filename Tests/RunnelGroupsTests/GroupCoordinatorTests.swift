// The classic group coordinator, one transition at a time: each test drives the pure
// GroupCoordinator with JoinGroup/SyncGroup/Heartbeat/LeaveGroup and ticks of a virtual clock,
// and checks the answers and states Kafka's GroupCoordinator gives for the same steps
// (Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and back).
import NIOCore
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelGroups

/// Drives a coordinator: hands out tokens and ids, keeps the answers of parked requests.
struct Harness {
    var coordinator: GroupCoordinator
    var now: Int64 = 1_000
    var nextToken = 0
    var nextMember = 0
    var joins: [RequestToken: JoinGroupResponse] = [:]
    var syncs: [RequestToken: SyncGroupResponse] = [:]
    var persisted: [String] = []
    /// Groups whose assignment the driver was asked to store.
    var stored: [String] = []
    /// Report every store as done at once (a driver whose writes never fail).
    var autoStore = true

    init(initialDelayMs: Int64 = 0) {
        var settings = GroupSettings()
        settings.initialRebalanceDelayMs = initialDelayMs
        coordinator = GroupCoordinator(settings: settings)
    }

    mutating func absorb(_ effects: [GroupEffect]) {
        for effect in effects {
            switch effect {
            case .join(let t, let r): joins[t] = r
            case .sync(let t, let r): syncs[t] = r
            case .persist(let g): persisted.append(g)
            case .event: break
            case .storeAssignment(let g, let generation):
                stored.append(g)
                if autoStore {
                    absorb(coordinator.assignmentStored(groupId: g, generation: generation, error: nil, nowMs: now))
                }
            }
        }
    }

    static func subscription(_ topics: [String]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int16(0))
        b.writeInteger(Int32(topics.count))
        for t in topics {
            b.writeInteger(Int16(t.utf8.count))
            b.writeString(t)
        }
        b.writeInteger(Int32(-1))  // user data
        return b
    }

    /// Sends a JoinGroup; returns its token (the answer, once there is one, is in `joins`).
    @discardableResult
    mutating func join(
        _ group: String = "g", member: String = "", instance: String? = nil, session: Int32 = 10_000,
        rebalance: Int32 = 30_000, protocols: [String] = ["range"], topics: [String] = ["t"], version: Int16 = 5
    ) -> RequestToken {
        var r = JoinGroupRequest()
        r.groupId = group
        r.memberId = member
        r.groupInstanceId = instance
        r.sessionTimeoutMs = session
        r.rebalanceTimeoutMs = rebalance
        r.protocolType = "consumer"
        r.protocols = protocols.map { .init(name: $0, metadata: Self.subscription(topics)) }
        nextToken += 1
        nextMember += 1
        let token = nextToken
        absorb(
            coordinator.join(
                r, version: version, clientId: "c", clientHost: "/127.0.0.1", token: token,
                newMemberId: "m\(nextMember)", nowMs: now))
        return token
    }

    /// A dynamic member's full first join (MEMBER_ID_REQUIRED, then again with the id).
    mutating func joinNew(
        _ group: String = "g", protocols: [String] = ["range"], session: Int32 = 10_000, rebalance: Int32 = 30_000
    ) -> (member: String, token: RequestToken) {
        let first = join(group, session: session, rebalance: rebalance, protocols: protocols)
        let answer = joins[first]!
        precondition(ErrorCode(answer.errorCode) == .memberIdRequired)
        let token = join(group, member: answer.memberId, session: session, rebalance: rebalance, protocols: protocols)
        return (answer.memberId, token)
    }

    @discardableResult
    mutating func sync(
        _ group: String = "g", member: String, generation: Int32, instance: String? = nil,
        assignments: [String: String] = [:]
    ) -> RequestToken {
        var r = SyncGroupRequest()
        r.groupId = group
        r.memberId = member
        r.groupInstanceId = instance
        r.generationId = generation
        r.assignments = assignments.keys.sorted().map { id in
            var b = ByteBuffer()
            b.writeString(assignments[id]!)
            return .init(memberId: id, assignment: b)
        }
        nextToken += 1
        let token = nextToken
        absorb(coordinator.sync(r, version: 3, token: token, nowMs: now))
        return token
    }

    mutating func heartbeat(
        _ group: String = "g", member: String, generation: Int32, instance: String? = nil
    ) -> ErrorCode {
        var r = HeartbeatRequest()
        r.groupId = group
        r.memberId = member
        r.generationId = generation
        r.groupInstanceId = instance
        return coordinator.heartbeat(r, nowMs: now)
    }

    mutating func advance(_ ms: Int64) {
        now += ms
        absorb(coordinator.tick(nowMs: now))
    }

    func state(_ group: String = "g") -> GroupState? { coordinator.group(group)?.state }
    func generation(_ group: String = "g") -> Int32 { coordinator.group(group)?.generationId ?? -1 }
}

func text(_ b: ByteBuffer) -> String { String(buffer: b) }

@Suite("Group coordinator")
struct GroupCoordinatorTests {
    @Test("a new dynamic member is given an id first (KIP-394), then joins, leads, syncs: Stable")
    func firstMember() {
        var h = Harness()
        let first = h.join()
        #expect(ErrorCode(h.joins[first]!.errorCode) == .memberIdRequired)
        #expect(h.state() == .empty)
        let id = h.joins[first]!.memberId
        let token = h.join(member: id)
        let answer = h.joins[token]!
        #expect(answer.errorCode == 0)
        #expect(answer.generationId == 1)
        #expect(answer.leader == id && answer.memberId == id)
        #expect(answer.protocolName == "range")
        #expect(answer.members.map(\.memberId) == [id])
        #expect(h.state() == .completingRebalance)
        let s = h.sync(member: id, generation: 1, assignments: [id: "all"])
        #expect(h.syncs[s]!.errorCode == 0 && text(h.syncs[s]!.assignment) == "all")
        #expect(h.state() == .stable)
        #expect(h.stored == ["g"])
    }

    @Test("SyncGroup answers only once the assignment is stored; a failed store rebalances")
    func assignmentStore() {
        var h = Harness()
        h.autoStore = false
        let a = h.joinNew()
        let b = h.joinNew()
        _ = h.join(member: a.member)
        let generation = h.generation()
        let fs = h.sync(member: b.member, generation: generation)
        let ls = h.sync(member: a.member, generation: generation, assignments: [a.member: "p0", b.member: "p1"])
        #expect(h.syncs[ls] == nil && h.syncs[fs] == nil, "nobody hears of the assignment before it is written")
        #expect(h.state() == .completingRebalance)
        h.absorb(
            h.coordinator.assignmentStored(groupId: "g", generation: generation, error: .notCoordinator, nowMs: h.now))
        #expect(
            ErrorCode(h.syncs[ls]!.errorCode) == .notCoordinator && ErrorCode(h.syncs[fs]!.errorCode) == .notCoordinator
        )
        #expect(h.state() == .preparingRebalance)
        // Both rejoin; this time the store succeeds.
        _ = h.join(member: a.member)
        _ = h.join(member: b.member)
        let next = h.generation()
        #expect(next == generation + 1)
        let fs2 = h.sync(member: b.member, generation: next)
        let ls2 = h.sync(member: a.member, generation: next, assignments: [a.member: "p1", b.member: "p0"])
        // A report for the old generation changes nothing.
        #expect(h.coordinator.assignmentStored(groupId: "g", generation: generation, error: nil, nowMs: h.now).isEmpty)
        h.absorb(h.coordinator.assignmentStored(groupId: "g", generation: next, error: nil, nowMs: h.now))
        #expect(text(h.syncs[ls2]!.assignment) == "p1" && text(h.syncs[fs2]!.assignment) == "p0")
        #expect(h.state() == .stable)
    }

    @Test("group.initial.rebalance.delay.ms holds the first join phase open for more members")
    func initialDelay() {
        var h = Harness(initialDelayMs: 3_000)
        let a = h.joinNew()
        #expect(h.joins[a.token] == nil && h.state() == .preparingRebalance)
        h.advance(1_000)
        let b = h.joinNew()
        h.advance(2_100)
        #expect(h.joins[a.token] == nil, "each join during the delay extends it")
        h.advance(1_000)
        #expect(h.joins[a.token]?.generationId == 1 && h.joins[b.token]?.generationId == 1)
        #expect(h.joins[a.token]!.members.count == 2, "the leader sees both members")
        #expect(h.joins[b.token]!.members.isEmpty, "followers see no member list")
    }

    @Test("a member joining a Stable group starts a rebalance; the others learn it from heartbeats and rejoin")
    func joinTriggersRebalance() {
        var h = Harness()
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [a.member: "p0,p1"])
        let b = h.joinNew()
        #expect(h.state() == .preparingRebalance)
        #expect(h.joins[b.token] == nil, "parked until every known member rejoins")
        #expect(h.heartbeat(member: a.member, generation: 1) == .rebalanceInProgress)
        let rejoin = h.join(member: a.member)
        #expect(h.joins[rejoin]!.generationId == 2 && h.joins[b.token]!.generationId == 2)
        #expect(h.joins[rejoin]!.leader == a.member, "the leader stays the leader")
        #expect(h.state() == .completingRebalance)
        // The follower's SyncGroup waits for the leader's assignment.
        let fs = h.sync(member: b.member, generation: 2)
        #expect(h.syncs[fs] == nil)
        let ls = h.sync(member: a.member, generation: 2, assignments: [a.member: "p0", b.member: "p1"])
        #expect(text(h.syncs[fs]!.assignment) == "p1" && text(h.syncs[ls]!.assignment) == "p0")
        #expect(h.state() == .stable)
        #expect(h.heartbeat(member: b.member, generation: 2) == .none)
    }

    @Test("a member that stops heartbeating is expelled after session.timeout.ms")
    func sessionExpiry() {
        var h = Harness()
        let a = h.joinNew(session: 6_000)
        h.sync(member: a.member, generation: 1, assignments: [a.member: "x"])
        let b = h.joinNew(session: 6_000)
        h.join(member: a.member, session: 6_000)
        h.sync(member: b.member, generation: 2)
        h.sync(member: a.member, generation: 2, assignments: [a.member: "p0", b.member: "p1"])
        for _ in 0..<2 {
            h.advance(2_000)
            #expect(h.heartbeat(member: a.member, generation: 2) == .none)
        }
        h.advance(2_100)
        #expect(h.state() == .preparingRebalance, "b missed its session")
        #expect(h.heartbeat(member: a.member, generation: 2) == .rebalanceInProgress)
        #expect(h.coordinator.group("g")!.member(b.member) == nil)
        #expect(h.heartbeat(member: b.member, generation: 2) == .unknownMemberId)
        let again = h.join(member: a.member, session: 6_000)
        #expect(h.joins[again]!.generationId == 3 && h.joins[again]!.members.map(\.memberId) == [a.member])
    }

    @Test("a member that does not rejoin within the rebalance timeout is dropped from the new generation")
    func rebalanceTimeout() {
        var h = Harness()
        let a = h.joinNew(rebalance: 5_000)
        h.sync(member: a.member, generation: 1, assignments: [:])
        let b = h.joinNew(rebalance: 5_000)
        #expect(h.joins[b.token] == nil)
        // a keeps heartbeating (its poll loop is stuck) but never rejoins.
        h.advance(3_000)
        #expect(h.heartbeat(member: a.member, generation: 1) == .rebalanceInProgress)
        h.advance(2_100)
        #expect(h.joins[b.token]?.generationId == 2)
        #expect(h.joins[b.token]?.leader == b.member, "the new leader is a member that rejoined")
        #expect(h.coordinator.group("g")!.members.map(\.memberId) == [b.member])
        #expect(h.heartbeat(member: a.member, generation: 1) == .unknownMemberId)
    }

    @Test("LeaveGroup rebalances the rest; the last member leaving empties the group")
    func leave() {
        var h = Harness()
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [:])
        let b = h.joinNew()
        h.join(member: a.member)
        h.sync(member: a.member, generation: 2, assignments: [:])
        #expect(h.state() == .stable)
        let (errors, effects) = h.coordinator.leave(groupId: "g", members: [(b.member, nil)], nowMs: h.now)
        h.absorb(effects)
        #expect(errors == [.none])
        #expect(h.state() == .preparingRebalance)
        let rejoin = h.join(member: a.member)
        #expect(h.joins[rejoin]!.generationId == 3)
        h.sync(member: a.member, generation: 3, assignments: [:])
        let (e2, fx2) = h.coordinator.leave(groupId: "g", members: [(a.member, nil)], nowMs: h.now)
        h.absorb(fx2)
        #expect(e2 == [.none])
        #expect(h.state() == .empty && h.generation() == 4)
        let (e3, _) = h.coordinator.leave(groupId: "g", members: [("nobody", nil)], nowMs: h.now)
        #expect(e3 == [.unknownMemberId])
    }

    @Test("errors as Kafka returns them")
    func errors() {
        var h = Harness()
        // A session timeout outside group.min/max.session.timeout.ms.
        let bad = h.join(session: 1_000)
        #expect(ErrorCode(h.joins[bad]!.errorCode) == .invalidSessionTimeout)
        let a = h.joinNew(protocols: ["range"])
        // A member offering no protocol the group uses.
        let other = h.join(member: "", protocols: ["roundrobin"], version: 3)
        #expect(ErrorCode(h.joins[other]!.errorCode) == .inconsistentGroupProtocol)
        // An unknown member id.
        let unknown = h.join(member: "ghost")
        #expect(ErrorCode(h.joins[unknown]!.errorCode) == .unknownMemberId)
        #expect(h.heartbeat(member: "ghost", generation: 1) == .unknownMemberId)
        #expect(h.heartbeat(member: a.member, generation: 7) == .illegalGeneration)
        let wrongGen = h.sync(member: a.member, generation: 9)
        #expect(ErrorCode(h.syncs[wrongGen]!.errorCode) == .illegalGeneration)
        // A SyncGroup during the join phase.
        h.sync(member: a.member, generation: 1, assignments: [:])
        _ = h.joinNew()
        let during = h.sync(member: a.member, generation: 1)
        #expect(ErrorCode(h.syncs[during]!.errorCode) == .rebalanceInProgress)
        // JoinGroup with a member id for a group that does not exist.
        let nogroup = h.join("other", member: "m-x")
        #expect(ErrorCode(h.joins[nogroup]!.errorCode) == .unknownMemberId)
        let empty = h.join("")
        #expect(ErrorCode(h.joins[empty]!.errorCode) == .invalidGroupId)
    }

    @Test("the protocol is chosen by vote among those every member supports")
    func protocolVote() {
        var h = Harness()
        let a = h.joinNew(protocols: ["cooperative-sticky", "range"])
        h.sync(member: a.member, generation: 1, assignments: [:])
        #expect(h.coordinator.group("g")!.protocolName == "cooperative-sticky")
        let b = h.joinNew(protocols: ["range", "roundrobin"])
        let rejoin = h.join(member: a.member, protocols: ["cooperative-sticky", "range"])
        #expect(h.joins[rejoin]!.protocolName == "range", "the only protocol both support")
        #expect(h.joins[b.token]!.protocolName == "range")
    }

    @Test("a static member restarting takes over its identity; the old member id is fenced")
    func staticMembership() {
        var h = Harness()
        let first = h.join(instance: "i-1")
        let old = h.joins[first]!
        #expect(old.errorCode == 0 && old.generationId == 1, "static members need no MEMBER_ID_REQUIRED round")
        h.sync(member: old.memberId, generation: 1, assignments: [old.memberId: "p0"])
        let again = h.join(instance: "i-1")
        let fresh = h.joins[again]!
        #expect(fresh.errorCode == 0 && fresh.memberId != old.memberId)
        #expect(fresh.generationId == 1 && h.state() == .stable, "a Stable group does not rebalance")
        #expect(fresh.leader == old.memberId, "before v9 the returning leader is named by its old id: no assignment")
        #expect(fresh.members.isEmpty)
        #expect(h.heartbeat(member: old.memberId, generation: 1, instance: "i-1") == .fencedInstanceId)
        let s = h.sync(member: fresh.memberId, generation: 1)
        #expect(text(h.syncs[s]!.assignment) == "p0", "the new process gets the old assignment back")
        #expect(h.coordinator.group("g")!.members.count == 1)
        #expect(h.coordinator.group("g")!.leaderId == fresh.memberId)
        #expect(h.persisted.last == "g", "the new member id is written to the group's record")
    }

    @Test("KIP-345: a static follower restarting in a Stable group gets its assignment back; the others see nothing")
    func staticFollowerRestart() {
        var h = Harness()
        let a = h.join(instance: "a")
        let b = h.join(instance: "b")
        let leader = h.joins[a]?.memberId ?? ""
        _ = b
        // a joined first and completed generation 1 alone; b's join started generation 2.
        let rejoin = h.join(member: leader, instance: "a")
        let gen = h.generation()
        #expect(gen == 2 && h.state() == .completingRebalance)
        let bId = h.joins[b]!.memberId
        h.sync(member: bId, generation: gen, instance: "b")
        h.sync(member: leader, generation: gen, instance: "a", assignments: [leader: "p0", bId: "p1"])
        _ = rejoin
        #expect(h.state() == .stable)
        // b's process dies without LeaveGroup and comes back with no member id.
        let back = h.join(instance: "b")
        let answer = h.joins[back]!
        #expect(answer.errorCode == 0 && answer.generationId == gen && answer.memberId != bId)
        #expect(answer.leader == leader && answer.members.isEmpty)
        #expect(h.state() == .stable && h.generation() == gen)
        #expect(h.heartbeat(member: leader, generation: gen, instance: "a") == .none, "the leader sees no rebalance")
        let s = h.sync(member: answer.memberId, generation: gen, instance: "b")
        #expect(text(h.syncs[s]!.assignment) == "p1")
        #expect(h.heartbeat(member: bId, generation: gen, instance: "b") == .fencedInstanceId)
    }

    @Test("KIP-814: from v9 a returning static leader is told it leads and to skip the assignment")
    func staticLeaderSkipsAssignment() {
        var h = Harness()
        let first = h.join(instance: "i-1", version: 9)
        let old = h.joins[first]!
        h.sync(member: old.memberId, generation: 1, instance: "i-1", assignments: [old.memberId: "p0"])
        let again = h.join(instance: "i-1", version: 9)
        let fresh = h.joins[again]!
        #expect(fresh.generationId == 1 && fresh.leader == fresh.memberId && fresh.skipAssignment)
        #expect(fresh.members.map(\.memberId) == [fresh.memberId], "the leader keeps the members' metadata")
        #expect(h.state() == .stable)
    }

    @Test("a static member returning with protocols that change the group's choice, or mid-rebalance, rebalances")
    func staticRestartThatRebalances() {
        var h = Harness()
        let first = h.join(instance: "i-1", protocols: ["range", "roundrobin"])
        let old = h.joins[first]!
        h.sync(member: old.memberId, generation: 1, instance: "i-1", assignments: [old.memberId: "p0"])
        let again = h.join(instance: "i-1", protocols: ["roundrobin"])
        #expect(h.joins[again]?.generationId == 2 && h.joins[again]?.protocolName == "roundrobin")
        #expect(h.state() == .completingRebalance)
        // A follower restarting before the leader's SyncGroup: that assignment would name its old id.
        let leader = h.joins[again]!.memberId
        h.sync(member: leader, generation: 2, instance: "i-1", assignments: [leader: "p0"])
        let b = h.join(instance: "i-2", protocols: ["roundrobin"])
        _ = h.join(member: leader, instance: "i-1", protocols: ["roundrobin"])
        #expect(h.state() == .completingRebalance && h.generation() == 3)
        let pending = h.sync(member: h.joins[b]!.memberId, generation: 3, instance: "i-2")
        let restarted = h.join(instance: "i-2", protocols: ["roundrobin"])
        #expect(h.syncs[pending]?.errorCode == ErrorCode.fencedInstanceId.rawValue)
        #expect(h.state() == .preparingRebalance && h.joins[restarted] == nil)
        let leaderBack = h.join(member: leader, instance: "i-1", protocols: ["roundrobin"])
        #expect(h.joins[restarted]?.generationId == 4 && h.joins[leaderBack]?.members.count == 2)
    }

    @Test("a member resubscribing several times while a rebalance is under way ends with its last subscription")
    func rapidResubscription() {
        var h = Harness()
        let a = h.joinNew()
        let b = h.joinNew()
        h.join(member: a.member)
        h.sync(member: b.member, generation: 2)
        h.sync(member: a.member, generation: 2, assignments: [a.member: "p0", b.member: "p1"])
        #expect(h.state() == .stable)
        // b changes its subscription three times in quick succession.
        let t1 = h.join(member: b.member, topics: ["x"])
        #expect(h.state() == .preparingRebalance)
        let t2 = h.join(member: b.member, topics: ["y"])
        let t3 = h.join(member: b.member, topics: ["z"])
        #expect(h.joins[t1] != nil && h.joins[t2] != nil, "each replaced join gets an answer")
        let ra = h.join(member: a.member)
        #expect(h.generation() == 3, "one rebalance")
        #expect(h.joins[t3]?.generationId == 3 && h.joins[ra]?.generationId == 3)
        let seen = h.joins[ra]!.members.first { $0.memberId == b.member }!
        #expect(ConsumerProtocol.topics(seen.metadata) == ["z"], "the leader assigns for b's last subscription")
        // Once more while the group completes the rebalance: Kafka starts another.
        h.sync(member: b.member, generation: 3)
        let t4 = h.join(member: b.member, topics: ["w"])
        #expect(h.state() == .preparingRebalance && h.joins[t4] == nil)
        let ra2 = h.join(member: a.member)
        let last = h.joins[ra2]!.members.first { $0.memberId == b.member }!
        #expect(h.generation() == 4 && ConsumerProtocol.topics(last.metadata) == ["w"])
    }

    @Test("offset commits: from members of the current generation, or from outside an empty group")
    func commits() {
        var h = Harness()
        #expect(h.coordinator.checkCommit(groupId: "solo", generationId: -1, memberId: "", instanceId: nil) == nil)
        let a = h.joinNew()
        #expect(
            h.coordinator.checkCommit(groupId: "g", generationId: 1, memberId: a.member, instanceId: nil)
                == .rebalanceInProgress)
        h.sync(member: a.member, generation: 1, assignments: [:])
        #expect(h.coordinator.checkCommit(groupId: "g", generationId: 1, memberId: a.member, instanceId: nil) == nil)
        #expect(
            h.coordinator.checkCommit(groupId: "g", generationId: 0, memberId: a.member, instanceId: nil)
                == .illegalGeneration)
        #expect(
            h.coordinator.checkCommit(groupId: "g", generationId: 1, memberId: "ghost", instanceId: nil)
                == .unknownMemberId)
        #expect(
            h.coordinator.checkCommit(groupId: "g", generationId: -1, memberId: "", instanceId: nil)
                == .illegalGeneration)
        let tp = TopicPartition("t", 0)
        h.coordinator.offsetsCommitted(
            groupId: "g", memberId: a.member,
            [(tp, CommittedOffset(offset: 42, leaderEpoch: 3, metadata: "m", commitTimestampMs: 5))],
            appendedBatchOffset: 0, nowMs: h.now)
        #expect(h.coordinator.group("g")!.offsets[tp]?.offset == 42)
        #expect(h.coordinator.deleteGroup("g") == .nonEmptyGroup)
        _ = h.coordinator.leave(groupId: "g", members: [(a.member, nil)], nowMs: h.now)
        #expect(h.coordinator.deleteGroup("g") == .none)
        #expect(h.coordinator.deleteGroup("g") == .groupIdNotFound)
    }

    @Test(
        "offsets expire after offsets.retention.minutes: an Empty group's from when it emptied, a Stable group's only for topics it no longer subscribes to"
    )
    func offsetExpiry() {
        var h = Harness()
        let retention: Int64 = 60_000
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [:])
        let subscribed = TopicPartition("t", 0), dropped = TopicPartition("old", 0)
        for (i, tp) in [subscribed, dropped].enumerated() {
            h.coordinator.offsetsCommitted(
                groupId: "g", memberId: a.member,
                [(tp, CommittedOffset(offset: 5, leaderEpoch: -1, metadata: "", commitTimestampMs: h.now))],
                appendedBatchOffset: Int64(i), nowMs: h.now)
        }
        // Standalone commits (assign(), no group protocol) expire by their commit time.
        h.coordinator.offsetsCommitted(
            groupId: "solo", memberId: "",
            [(subscribed, CommittedOffset(offset: 1, leaderEpoch: -1, metadata: "", commitTimestampMs: h.now))],
            appendedBatchOffset: 2, nowMs: h.now)
        #expect(h.coordinator.expireOffsets(nowMs: h.now + retention - 1, retentionMs: retention).isEmpty)
        let first = h.coordinator.expireOffsets(nowMs: h.now + retention, retentionMs: retention)
        #expect(first.map(\.groupId) == ["g", "solo"])
        #expect(
            first[0].offsets == [dropped] && !first[0].groupRemoved,
            "the subscribed topic's offset stays while the group is Stable")
        #expect(first[1].offsets == [subscribed] && first[1].groupRemoved)
        #expect(h.coordinator.group("solo") == nil)
        // Once the group is empty, its remaining offsets go `retention` after it emptied.
        h.advance(retention)
        _ = h.heartbeat(member: a.member, generation: 1)
        h.absorb(h.coordinator.leave(groupId: "g", members: [(a.member, nil)], nowMs: h.now).effects)
        #expect(h.state() == .empty)
        #expect(h.coordinator.expireOffsets(nowMs: h.now + retention - 1, retentionMs: retention).isEmpty)
        let second = h.coordinator.expireOffsets(nowMs: h.now + retention, retentionMs: retention)
        #expect(second.count == 1 && second[0].offsets == [subscribed] && second[0].groupRemoved)
        #expect(h.coordinator.group("g") == nil)
    }

    @Test("a new coordinator restores groups and offsets from __consumer_offsets records")
    func restore() {
        var h = Harness()
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [a.member: "p0"])
        let record = h.coordinator.metadataRecord("g")!
        let bytes = OffsetsTopic.encode(record)
        let decoded = OffsetsTopic.decodeGroup(bytes)!
        #expect(decoded == record)
        let offset = CommittedOffset(offset: 7, leaderEpoch: 1, metadata: "", commitTimestampMs: 9)
        #expect(OffsetsTopic.decodeOffset(OffsetsTopic.encode(offset)) == offset)
        #expect(
            OffsetsTopic.decodeKey(OffsetsTopic.encode(.offset(group: "g", TopicPartition("t", 3))))
                == .offset(group: "g", TopicPartition("t", 3)))

        var next = GroupCoordinator()
        next.restoreOffset(groupId: "g", TopicPartition("t", 0), offset, appendedBatchOffset: 0)
        next.restore(decoded, groupId: "g", nowMs: 50_000)
        let g = next.group("g")!
        #expect(g.state == .stable && g.generationId == 1 && g.leaderId == a.member)
        #expect(g.offsets[TopicPartition("t", 0)] == offset)
        var r = HeartbeatRequest()
        r.groupId = "g"
        r.memberId = a.member
        r.generationId = 1
        #expect(next.heartbeat(r, nowMs: 50_001) == .none, "the member carries on with the new coordinator")
        // A tombstone for the group and its offsets removes it.
        next.restoreOffset(groupId: "g", TopicPartition("t", 0), nil, appendedBatchOffset: 1)
        next.restore(nil, groupId: "g", nowMs: 50_002)
        #expect(next.group("g") == nil || next.group("g")!.members.isEmpty)
    }

    @Test("moving away parks no request: waiting joins and syncs get NOT_COORDINATOR")
    func unload() {
        var h = Harness()
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [:])
        let b = h.joinNew()
        h.absorb(h.coordinator.unload { $0 == "g" })
        #expect(ErrorCode(h.joins[b.token]!.errorCode) == .notCoordinator)
        #expect(h.coordinator.group("g") == nil)
    }

    @Test("the coordinator partition is Java's String.hashCode, made non-negative, mod the partition count")
    func coordinatorPartition() {
        // "g".hashCode() in Java is 103; "test-group".hashCode() is 627,841,412.
        #expect(OffsetsTopic.partition(for: "g", partitions: 50) == 3)
        #expect(OffsetsTopic.partition(for: "test-group", partitions: 50) == 12)
        // A negative hash: Kafka's Utils.abs masks the sign bit.
        let name = "polygenelubricants"  // hashCode() == Int32.min in Java
        #expect(OffsetsTopic.partition(for: name, partitions: 50) == 0)
    }
}
