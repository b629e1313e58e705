import Logging
import NIOCore
import RunnelBroker
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelMetadata
import RunnelWire

/// A rule the group simulation breaks on purpose, to prove its checkers catch it (a switch in the
/// real GroupHost: `GroupFaults`).
public enum GroupBrokenRule: String, Sendable, CaseIterable {
    /// SyncGroup answers before the leader's assignment is written (a failover can reuse the generation).
    case answerSyncBeforeStore
    /// OffsetCommit is acknowledged before its records are replicated.
    case ackCommitBeforeWrite
}

/// Knobs of a consumer-group run. Times are virtual milliseconds.
public struct GroupSimulationOptions: Sendable {
    /// Test-only broken rules (the simulation must catch them).
    public var broken: Set<GroupBrokenRule> = []
    /// Events with faults on; then faults stop and the group must settle.
    public var events = 3_000
    public var members = 4
    public var partitions = 6
    public var lossPercent: UInt64 = 3
    public var maxDelayMs: Int64 = 30
    /// Chance per event (in tenths of a percent) that a fault is injected.
    public var faultPerMille: UInt64 = 12
    public var sessionTimeoutMs: Int32 = 3_000
    public var rebalanceTimeoutMs: Int32 = 6_000
    public var heartbeatIntervalMs: Int64 = 300
    /// How long a write to `__consumer_offsets` takes to be replicated (acks=all).
    public var writeDelayMs: Int64 = 40
    /// How long a new coordinator spends loading the offsets partition.
    public var loadDelayMs: Int64 = 200
    /// A client gives up on a request after this long (and treats the coordinator as unknown).
    public var requestTimeoutMs: Int64 = 1_000
    public var trace = false
    public init() {}
}

/// One consumer group under the simulator: the real `GroupHost` (its request handlers, the
/// `GroupCoordinator` it runs, its parked JoinGroup/SyncGroup requests, the leader's assignment
/// stored before SyncGroup answers, offsets applied once written, its timers) on a
/// `SimEventLoop`, over a simulated `__consumer_offsets` partition (a real `PartitionLog` on a
/// simulated disk) whose writes take time to replicate and are lost when the coordinator fails
/// over, and members that behave like Kafka's classic consumer (MEMBER_ID_REQUIRED, range
/// assignment by the leader, heartbeats, commit before rejoining, OffsetFetch with
/// requireStable). Requests and answers go through the real codecs. Faults: member crashes (no
/// LeaveGroup), new members, clean leaves, coordinator failover (a new GroupHost loads what was
/// written), message loss and delay. After every event it checks that each partition has at most
/// one owner per generation, that a member's generations never go back, that acknowledged
/// commits per partition never go backwards, and that no acknowledged commit is lost by a
/// failover.
public final class GroupSimulation: @unchecked Sendable {
    public let seed: UInt64
    public let options: GroupSimulationOptions
    var rng: SeededRandom
    public internal(set) var events = 0
    public internal(set) var trace: [String] = []
    var failure: SimulationFailure?
    static let groupId = "sim-group"
    static let topic = "t"

    // The coordinator (a new GroupHost after each failover).
    var host: GroupHost!
    var hostLoop: SimEventLoop!
    let scheduler = SimScheduler()
    var coordinatorIncarnation = 0
    var loaded = false
    /// The replicated `__consumer_offsets-0`: what a new coordinator loads. Only replicated
    /// writes reach it.
    let offsetsDisk = SimDisk()
    var offsetsPartition: Partition!
    static let offsetsTopicId = KafkaUUID(high: 0x5157, low: 0x5157)
    /// When the last write in flight is replicated (writes complete in order).
    var lastWriteCompletesAt: Int64 = 0
    var settings = GroupSettings()

    var members: [SimGroupMember] = []
    var nextMemberNumber = 0
    var nextMemberIdSuffix = 0

    // What the checkers know.
    /// Owner of each partition per generation, from the SyncGroup answers members got.
    var owners: [Int32: [Int32: String]] = [:]
    /// The last acknowledged commit per partition (in acknowledgement order).
    var acked: [Int32: Int64] = [:]
    /// The highest generation whose assignment reached a member.
    var deliveredGeneration: Int32 = 0
    public internal(set) var stats = GroupStats()

    public init(seed: UInt64, options: GroupSimulationOptions = GroupSimulationOptions()) {
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        settings.initialRebalanceDelayMs = 0
        settings.minSessionTimeoutMs = 100
        let tp = TopicPartition(OffsetsTopic.name, 0)
        do {
            let log = try PartitionLog(
                topicPartition: tp, directory: "/offsets", config: LogConfig(), disk: offsetsDisk,
                nowMs: SimClock.wallEpochMs)
            offsetsPartition = Partition(
                topicPartition: tp, topicId: Self.offsetsTopicId, log: log,
                registration: PartitionRegistration(
                    replicas: [1], isr: [1], leader: 1, leaderEpoch: 0, partitionEpoch: 0),
                localId: 1, highWatermark: 0, nowMs: 0, onActions: { _, _ in })
        } catch {
            fail("cannot open the offsets partition: \(error)")
        }
        startCoordinator(loadAfterMs: 0)
        for _ in 0..<options.members { addMember() }
    }

    public var now: Int64 { scheduler.nowMs }
    var clock: SimClock { SimClock(scheduler: scheduler) }

    /// A new coordinator: a real GroupHost on a loop of its own, which becomes the offsets
    /// partition's leader (and loads it) after `loadAfterMs`.
    func startCoordinator(loadAfterMs: Int64) {
        coordinatorIncarnation += 1
        loaded = false
        let incarnation = coordinatorIncarnation
        let loop = SimEventLoop(scheduler: scheduler, name: "coordinator#\(incarnation)")
        hostLoop = loop
        let logger = SimLogHandler.logger("coordinator", tracing: options.trace) { [unowned self] line in note(line) }
        let partition = offsetsPartition!
        let host = GroupHost(
            settings: settings, clock: clock, logger: logger, partitionCount: { 1 }, partition: { _ in partition },
            appendRecords: { [unowned self] entries, _, _, _, loop in write(entries, incarnation: incarnation, on: loop)
            })
        var faults = GroupFaults()
        faults.answerSyncBeforeStore = options.broken.contains(.answerSyncBeforeStore)
        faults.ackCommitBeforeWrite = options.broken.contains(.ackCommitBeforeWrite)
        host.faults = faults
        host.newMemberId = { [unowned self] prefix in
            nextMemberIdSuffix += 1
            return "\(prefix)-\(nextMemberIdSuffix)"
        }
        self.host = host
        loop.schedule(afterMs: loadAfterMs) { [unowned self] in
            guard incarnation == coordinatorIncarnation else { return }
            host.leadershipChanged(leading: [0], on: loop)
            // The load runs as a task of the loop: this one, queued after it, checks what it loaded.
            loop.schedule(afterMs: 0) { [unowned self] in
                guard incarnation == coordinatorIncarnation else { return }
                loaded = true
                checkLoaded(incarnation)
            }
        }
    }

    func note(_ text: @autoclosure () -> String) {
        guard options.trace else { return }
        trace.append("t=\(now) #\(events) \(text())")
    }

    func fail(_ property: String) {
        if failure == nil {
            note("FAILED: \(property)")
            failure = SimulationFailure(seed: seed, event: events, property: property, replayFlags: "--groups")
        }
    }

    func after(_ delayMs: Int64, _ work: @escaping () -> Void) { scheduler.push(atMs: now + max(delayMs, 0), work) }
    func random(_ bound: Int64) -> Int64 { bound <= 0 ? 0 : Int64(rng.next() % UInt64(bound)) }
    func every(_ interval: Int64, _ work: @escaping () -> Void) {
        func loop() {
            work()
            after(interval) { loop() }
        }
        after(interval) { loop() }
    }

    // MARK: run

    public func run() throws {
        while events < options.events {
            step(faults: true)
            if let failure { throw failure }
        }
        note("healing: no more faults or loss")
        let deadline = now + 60_000
        while now < deadline {
            step(faults: false)
            if let failure { throw failure }
            if settled() { return }
        }
        throw SimulationFailure(
            seed: seed, event: events, property: "the group did not settle 60 s after healing: \(summary())",
            replayFlags: "--groups")
    }

    var healing: Bool { events >= options.events }

    func step(faults: Bool) {
        events += 1
        if faults && rng.next() % 1000 < options.faultPerMille { injectFault() }
        scheduler.runNext()
    }

    /// Every live member is Stable in the coordinator's current generation, together they own
    /// every partition, and the coordinator agrees.
    func settled() -> Bool {
        guard loaded, let group = host.read({ $0.group(Self.groupId) }), group.state == .stable else { return false }
        let live = members.filter(\.alive)
        guard !live.isEmpty, Set(group.members.map(\.memberId)) == Set(live.map(\.memberId)) else { return false }
        var owned: [Int32] = []
        for m in live {
            guard m.generation == group.generationId, m.stable else { return false }
            owned += m.assignment
        }
        return owned.sorted() == Array(0..<Int32(options.partitions))
    }

    public func summary() -> String {
        let group = host.read { $0.group(Self.groupId) }
        return
            "coordinator #\(coordinatorIncarnation) \(group.map { "\($0.state.rawValue) generation \($0.generationId) members \($0.members.count)" } ?? "no group"); "
            + members.filter(\.alive).map {
                "\($0.name): gen \($0.generation) \($0.stable ? "stable" : "joining") \($0.assignment)"
            }.joined(separator: ", ")
    }

    // MARK: faults

    func injectFault() {
        let roll = rng.next() % 100
        let live = members.filter(\.alive)
        switch roll {
        case 0..<25 where live.count > 1:
            let m = live[Int(rng.next() % UInt64(live.count))]
            m.crash()
            stats.memberCrashes += 1
        case 25..<45 where members.filter(\.alive).count < options.members + 2:
            addMember()
        case 45..<55 where live.count > 1:
            let m = live[Int(rng.next() % UInt64(live.count))]
            m.leave()
        case 55..<75:
            failover()
        default:
            break
        }
    }

    func addMember() {
        nextMemberNumber += 1
        let m = SimGroupMember(name: "c\(nextMemberNumber)", world: self)
        members.append(m)
        note("\(m.name) starts")
        m.start()
    }

    /// The coordinator's broker dies: writes in flight are lost, parked requests never answered;
    /// a new coordinator loads what was replicated.
    func failover() {
        stats.failovers += 1
        hostLoop.kill()
        SimGraveyard.keep([host as Any, hostLoop as Any])
        startCoordinator(loadAfterMs: options.loadDelayMs)
        note(
            "coordinator fails over to #\(coordinatorIncarnation) (\(offsetsPartition.log.logEndOffset) records written)"
        )
    }

    /// After a new coordinator loaded the offsets partition.
    func checkLoaded(_ incarnation: Int) {
        let group = host.read { $0.group(Self.groupId) }
        note(
            "coordinator #\(incarnation) loaded: \(group.map { "\($0.state.rawValue) generation \($0.generationId)" } ?? "no group")"
        )
        // A generation that handed out assignments is never forgotten (or handed out again).
        if let g = group?.generationId, g < deliveredGeneration {
            fail(
                "the new coordinator is at generation \(g), below generation \(deliveredGeneration) whose assignment members got"
            )
        }
        // Every acknowledged commit survives the failover (a later commit, written but not yet
        // answered when the coordinator failed, may stand in its place: offsets only move on).
        for (p, offset) in acked.sorted(by: { $0.key < $1.key }) {
            let stored = group?.offsets[TopicPartition(Self.topic, p)]?.offset
            if (stored ?? -1) < offset {
                fail(
                    "the acknowledged commit of partition \(p) at \(offset) was lost by the failover (the new coordinator has \(stored.map(String.init) ?? "none"))"
                )
            }
        }
    }

    // MARK: the network between members and the coordinator

    /// Delivers a request to the coordinator after a network delay (or loses it).
    func send(from member: SimGroupMember, _ body: @escaping () -> Void) {
        guard healing || rng.next() % 100 >= options.lossPercent else {
            note("\(member.name): request lost")
            return
        }
        let loop = hostLoop!
        after(1 + random(options.maxDelayMs)) { loop.schedule(afterMs: 0, body) }
    }

    /// Delivers an answer to a member after a network delay (or loses it). `incarnation` is the
    /// member's when it sent the request: an answer to a request it gave up on is dropped (as a
    /// client matches answers by correlation id on a connection it may have closed).
    func reply(to member: SimGroupMember, incarnation: Int, _ body: @escaping () -> Void) {
        guard healing || rng.next() % 100 >= options.lossPercent else { return }
        after(1 + random(options.maxDelayMs)) { [weak member] in
            guard let member, member.alive, member.incarnation == incarnation else { return }
            body()
        }
    }

    /// Runs one of the coordinator's request handlers (on its loop) and hands the decoded answer
    /// to `answered` when the handler answers, through the real codecs.
    func request<Response: ResponseMessage>(
        _ outcome: RequestOutcome, as: Response.Type, version: Int16, answered: @escaping (Response) -> Void
    ) {
        func decode(_ response: OutgoingResponse) {
            var bytes = ByteBuffer()
            for part in response.parts {
                guard case .byteBuffer(var b) = part else { return fail("the coordinator answered with a file region") }
                bytes.writeBuffer(&b)
            }
            var reader = WireReader(bytes)
            do { answered(try Response(from: &reader, version: version)) } catch {
                fail("the coordinator's \(Response.self) does not decode: \(error)")
            }
        }
        switch outcome {
        case .respondNow(let response): decode(response)
        case .respond(let future):
            let box = UncheckedBox(decode)
            future.whenSuccess { box.value($0) }
        case .noResponse, .noResponseThrottled, .close: break
        }
    }

    var context: RequestContext {
        RequestContext(
            connectionId: 0, remoteAddress: nil, listener: "PLAINTEXT", eventLoop: hostLoop,
            allocator: ByteBufferAllocator())
    }

    /// The GroupHost's append path for this world: a write to the offsets partition is
    /// replicated after a while (in log order; one in ten waits for a slow follower), then
    /// appended to the replicated log; a coordinator that failed over meanwhile never hears back.
    func write(_ entries: [(TopicPartition, ByteBuffer?)], incarnation: Int, on loop: any EventLoop) -> AppendOutcome {
        let promise = loop.makePromise(of: [PartitionAppendResult].self)
        let delay =
            options.writeDelayMs / 2 + random(options.writeDelayMs)
            + (random(10) == 0 ? random(options.writeDelayMs * 20) : 0)
        let completes = max(now + delay, lastWriteCompletesAt)
        lastWriteCompletesAt = completes
        let box = UncheckedBox(promise)
        after(completes - now) { [self] in
            guard incarnation == coordinatorIncarnation else {
                SimGraveyard.keep(box)
                return
            }
            var results: [PartitionAppendResult] = []
            for (_, batch) in entries {
                guard let batch, case .success(let infos) = RecordBatches.validate(batch, maxBatchBytes: Int(Int32.max))
                else {
                    results.append(PartitionAppendResult(error: .corruptMessage))
                    continue
                }
                do {
                    let info = try offsetsPartition.log.appendAsLeader(
                        batch, batches: infos, leaderEpoch: 0, nowMs: clock.wallMs(), origin: .coordinator)
                    var result = PartitionAppendResult()
                    result.baseOffset = info.firstOffset
                    results.append(result)
                } catch {
                    fail("cannot write the offsets partition: \(error)")
                    results.append(PartitionAppendResult(error: .kafkaStorageError))
                }
            }
            hostLoop.schedule(afterMs: 0) { box.value.succeed(results) }
        }
        return .waiting(promise.futureResult)
    }

    /// A member learnt its assignment for a generation: no partition may have two owners in one.
    func recordOwners(_ member: SimGroupMember, generation: Int32, _ response: SyncGroupResponse) {
        deliveredGeneration = max(deliveredGeneration, generation)
        let memberId = member.memberId
        for p in SimGroupMember.decodeAssignment(response.assignment) {
            if let other = owners[generation]?[p], other != memberId {
                fail("partition \(p) has two owners in generation \(generation): \(other) and \(memberId)")
            }
            owners[generation, default: [:]][p] = memberId
        }
    }

    /// An OffsetCommit was acknowledged: per partition, commits never go backwards.
    func commitAcknowledged(_ offsets: [Int32: Int64], by member: SimGroupMember) {
        stats.commits += 1
        note(
            "\(member.name) commit acknowledged (generation \(member.generation)): \(offsets.sorted(by: { $0.key < $1.key }).map { "p\($0.key)@\($0.value)" }.joined(separator: " "))"
        )
        for (p, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            if let previous = acked[p], offset < previous {
                fail(
                    "the committed offset of partition \(p) went back from \(previous) to \(offset) (\(member.name), generation \(member.generation))"
                )
            }
            acked[p] = offset
        }
    }
}

/// Counters for the summary.
public struct GroupStats: Sendable {
    public var memberCrashes = 0
    public var failovers = 0
    public var rebalances = 0
    public var commits = 0
    public init() {}
}

/// A member behaving like Kafka's classic (eager) consumer.
final class SimGroupMember: @unchecked Sendable {
    let name: String
    unowned let world: GroupSimulation
    var alive = true
    /// Bumped whenever the member gives up on what it asked (a new join, a crash): answers to
    /// older requests are dropped.
    var incarnation = 0
    var memberId = ""
    var generation: Int32 = -1
    /// The generation of the last assignment it received (never goes back).
    var assignedGeneration: Int32 = -1
    var stable = false
    var joining = false
    var assignment: [Int32] = []
    /// Where this member has read each owned partition to.
    var positions: [Int32: Int64] = [:]

    init(name: String, world: GroupSimulation) {
        self.name = name
        self.world = world
    }

    var options: GroupSimulationOptions { world.options }

    func start() {
        join()
        func loop() {
            guard alive else { return }
            heartbeat()
            consume()
            world.after(options.heartbeatIntervalMs) { loop() }
        }
        world.after(options.heartbeatIntervalMs) { loop() }
    }

    func crash() {
        alive = false
        incarnation += 1
        world.note("\(name) crashes (no LeaveGroup)")
    }

    func leave() {
        world.note("\(name) leaves")
        var r = LeaveGroupRequest()
        r.groupId = GroupSimulation.groupId
        r.memberId = memberId
        let request = r
        world.send(from: self) { [world] in
            _ = world.host.leaveGroup(request, version: 1, context: world.context)
        }
        alive = false
        incarnation += 1
    }

    /// Gives up on answers in flight and starts over with a JoinGroup, committing what it read
    /// first (as the consumer does when its partitions are revoked).
    func rejoin(resetMemberId: Bool) {
        if stable && !assignment.isEmpty { commit() }
        if resetMemberId { memberId = "" }
        stable = false
        assignment = []
        positions = [:]
        join()
    }

    /// Gives up on a JoinGroup or SyncGroup that got no answer in time.
    func watch(_ asked: Int, timeoutMs: Int64, what: String) {
        world.after(timeoutMs) { [self] in
            guard alive, incarnation == asked, joining else { return }
            world.note("\(name): \(what) timed out")
            join()
        }
    }

    func join() {
        joining = true
        stable = false
        incarnation += 1
        let asked = incarnation
        var r = JoinGroupRequest()
        r.groupId = GroupSimulation.groupId
        r.memberId = memberId
        r.sessionTimeoutMs = options.sessionTimeoutMs
        r.rebalanceTimeoutMs = options.rebalanceTimeoutMs
        r.protocolType = "consumer"
        var metadata = ByteBuffer()
        metadata.writeInteger(Int16(0))
        metadata.writeInteger(Int32(1))
        metadata.writeInteger(Int16(GroupSimulation.topic.utf8.count))
        metadata.writeString(GroupSimulation.topic)
        metadata.writeInteger(Int32(-1))
        r.protocols = [.init(name: "range", metadata: metadata)]
        let request = r
        world.send(from: self) { [self] in
            let outcome = world.host.joinGroup(request, version: 5, clientId: name, context: world.context)
            world.request(outcome, as: JoinGroupResponse.self, version: 5) { [self] response in
                world.reply(to: self, incarnation: asked) { [self] in joined(response) }
            }
        }
        watch(asked, timeoutMs: Int64(options.rebalanceTimeoutMs) + options.requestTimeoutMs, what: "JoinGroup")
    }

    func retryLater() {
        let asked = incarnation
        world.after(100) { [self] in
            if alive && incarnation == asked { join() }
        }
    }

    func joined(_ r: JoinGroupResponse) {
        switch ErrorCode(r.errorCode) {
        case .memberIdRequired:
            memberId = r.memberId
            join()
            return
        case .none:
            break
        case .unknownMemberId, .fencedInstanceId:
            rejoin(resetMemberId: true)
            return
        default:
            retryLater()
            return
        }
        memberId = r.memberId
        generation = r.generationId
        world.stats.rebalances += 1
        var assignments: [SyncGroupRequest.SyncGroupRequestAssignment] = []
        if r.leader == memberId {
            // The range assignor over the members' ids in order.
            let ids = r.members.map(\.memberId).sorted()
            let n = Int32(options.partitions), count = Int32(max(ids.count, 1))
            var start: Int32 = 0
            for (i, id) in ids.enumerated() {
                let take = n / count + (Int32(i) < n % count ? 1 : 0)
                assignments.append(
                    .init(memberId: id, assignment: Self.encodeAssignment(Array(start..<(start + take)))))
                start += take
            }
        }
        var s = SyncGroupRequest()
        s.groupId = GroupSimulation.groupId
        s.memberId = memberId
        s.generationId = generation
        s.assignments = assignments
        let request = s
        let asked = incarnation
        let joinedGeneration = generation
        world.send(from: self) { [self] in
            let outcome = world.host.syncGroup(request, version: 3, context: world.context)
            world.request(outcome, as: SyncGroupResponse.self, version: 3) { [self] response in
                // The assignment left the coordinator: whether or not the answer arrives, no one
                // else may own these partitions in this generation.
                if response.errorCode == 0 { world.recordOwners(self, generation: joinedGeneration, response) }
                world.reply(to: self, incarnation: asked) { [self] in synced(response) }
            }
        }
        watch(asked, timeoutMs: options.requestTimeoutMs * 2, what: "SyncGroup")
    }

    func synced(_ r: SyncGroupResponse) {
        switch ErrorCode(r.errorCode) {
        case .none:
            if generation < assignedGeneration {
                world.fail(
                    "\(name) was assigned partitions in generation \(generation) after generation \(assignedGeneration)"
                )
            }
            assignedGeneration = generation
            joining = false
            assignment = Self.decodeAssignment(r.assignment)
            stable = true
            world.note("\(name) generation \(generation) owns \(assignment)")
            fetchOffsets()
        case .unknownMemberId:
            rejoin(resetMemberId: true)
        default:
            rejoin(resetMemberId: false)
        }
    }

    /// OffsetFetch with requireStable: a partition whose commit is being written is asked again.
    func fetchOffsets() {
        let owned = assignment
        let asked = incarnation
        var r = OffsetFetchRequest()
        r.groupId = GroupSimulation.groupId
        r.topics = [.init(name: GroupSimulation.topic, partitionIndexes: owned)]
        r.requireStable = true
        let request = r
        world.send(from: self) { [self] in
            let outcome = world.host.offsetFetch(request, version: 7, context: world.context)
            world.request(outcome, as: OffsetFetchResponse.self, version: 7) { [self] response in
                var answer: [Int32: Int64?] = [:]
                guard response.errorCode == 0 else { return }
                for p in response.topics.first?.partitions ?? [] {
                    if p.errorCode == ErrorCode.unstableOffsetCommit.rawValue {
                        answer[p.partitionIndex] = .some(nil)
                    } else if p.errorCode == 0 {
                        answer[p.partitionIndex] = .some(max(p.committedOffset, 0))
                    }
                }
                world.note(
                    "\(name) fetched offsets \(answer.sorted(by: { $0.key < $1.key }).map { "p\($0.key)@\($0.value.map(String.init) ?? "unstable")" }.joined(separator: " "))"
                )
                world.reply(to: self, incarnation: asked) { [self] in
                    guard stable else { return }
                    var unstable = false
                    for p in owned {
                        if let o = answer[p] ?? nil { positions[p] = o } else { unstable = true }
                    }
                    if unstable { world.after(50) { [self] in if incarnation == asked && stable { fetchOffsets() } } }
                }
            }
        }
        // A lost answer: ask again while the positions are unknown.
        world.after(options.requestTimeoutMs) { [self] in
            if alive && incarnation == asked && stable && positions.count < owned.count { fetchOffsets() }
        }
    }

    func heartbeat() {
        guard !joining, generation >= 0 else { return }
        var r = HeartbeatRequest()
        r.groupId = GroupSimulation.groupId
        r.memberId = memberId
        r.generationId = generation
        let request = r
        let asked = incarnation
        world.send(from: self) { [self] in
            let outcome = world.host.heartbeat(request, version: 3, context: world.context)
            world.request(outcome, as: HeartbeatResponse.self, version: 3) { [self] response in
                world.reply(to: self, incarnation: asked) { [self] in
                    guard !joining else { return }
                    switch ErrorCode(response.errorCode) {
                    case .none: break
                    case .rebalanceInProgress, .illegalGeneration: rejoin(resetMemberId: false)
                    case .unknownMemberId: rejoin(resetMemberId: true)
                    default: break
                    }
                }
            }
        }
    }

    /// Reads a little from every owned partition whose position it knows; commits sometimes.
    func consume() {
        guard stable else { return }
        for p in assignment where positions[p] != nil { positions[p]! += world.random(4) }
        if world.random(3) == 0 { commit() }
    }

    func commit() {
        let offsets = positions
        guard !offsets.isEmpty else { return }
        var r = OffsetCommitRequest()
        r.groupId = GroupSimulation.groupId
        r.generationIdOrMemberEpoch = generation
        r.memberId = memberId
        r.topics = [
            .init(
                name: GroupSimulation.topic,
                partitions: offsets.keys.sorted().map {
                    .init(
                        partitionIndex: $0, committedOffset: offsets[$0]!, committedLeaderEpoch: -1,
                        commitTimestamp: -1, committedMetadata: "")
                })
        ]
        let request = r
        let gen = generation
        world.send(from: self) { [self] in
            let outcome = world.host.offsetCommit(request, version: 6, context: world.context)
            world.request(outcome, as: OffsetCommitResponse.self, version: 6) { [self] response in
                // Acknowledged as the broker answers (whether or not the answer arrives).
                guard let partitions = response.topics.first?.partitions, !partitions.isEmpty,
                    partitions.allSatisfy({ $0.errorCode == 0 })
                else { return }
                world.note("\(name) commit answered (generation \(gen))")
                world.commitAcknowledged(offsets, by: self)
            }
        }
    }

    static func encodeAssignment(_ partitions: [Int32]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int32(partitions.count))
        for p in partitions { b.writeInteger(p) }
        return b
    }

    static func decodeAssignment(_ buffer: ByteBuffer) -> [Int32] {
        var b = buffer
        guard let n = b.readInteger(as: Int32.self), n >= 0, n < 10_000 else { return [] }
        return (0..<n).compactMap { _ in b.readInteger(as: Int32.self) }
    }
}
