import NIOCore
import RunnelCore
import RunnelWire

/// Membership of a classic consumer group: finds the coordinator, joins (answering
/// MEMBER_ID_REQUIRED by joining again with the id it got), runs the range assignor when it is
/// the leader, syncs, heartbeats in the background while Stable, commits offsets with its
/// generation and member id, and leaves. A rebalance the heartbeat reports (or a commit or
/// heartbeat saying the generation is over) sets `needsRejoin`; the owner calls `ensureActive()`
/// between fetches, which joins again.
public actor GroupMember {
    public let client: KafkaClient
    public let groupId: String
    public let topics: [String]
    public let sessionTimeoutMs: Int32
    public let rebalanceTimeoutMs: Int32
    public let heartbeatIntervalMs: Int64

    public private(set) var memberId = ""
    public private(set) var generationId: Int32 = -1
    /// Partitions assigned in the current generation, by topic.
    public private(set) var assignment: [String: [Int32]] = [:]
    public private(set) var isLeader = false
    /// Set when the current generation is over (or was never joined).
    public private(set) var needsRejoin = true
    var heartbeat: Task<Void, Never>?
    var lastHeartbeatOk = NIODeadline.now()

    public init(
        client: KafkaClient, groupId: String, topics: [String], sessionTimeoutMs: Int32 = 10_000,
        rebalanceTimeoutMs: Int32 = 30_000, heartbeatIntervalMs: Int64 = 3_000
    ) {
        self.client = client
        self.groupId = groupId
        self.topics = topics
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.heartbeatIntervalMs = heartbeatIntervalMs
    }

    /// Joins (again) when needed; true when a new generation and assignment came.
    public func ensureActive() async throws -> Bool {
        if !needsRejoin && NIODeadline.now() - lastHeartbeatOk > .milliseconds(Int64(sessionTimeoutMs)) {
            // No heartbeat got through for a whole session: the coordinator has dropped us.
            needsRejoin = true
        }
        guard needsRejoin else { return false }
        try await join()
        return true
    }

    func join() async throws {
        heartbeat?.cancel()
        heartbeat = nil
        let deadline = NIODeadline.now() + .milliseconds(Int64(rebalanceTimeoutMs) * 2 + client.requestTimeoutMs)
        var attempts = 0
        while true {
            attempts += 1
            guard NIODeadline.now() < deadline else {
                throw ClientError(
                    "could not join group \(groupId) within \(Int64(rebalanceTimeoutMs) * 2 + client.requestTimeoutMs) ms"
                )
            }
            if attempts > 1 { try await Task.sleep(nanoseconds: 100_000_000) }
            let subscription = ConsumerProtocol.encode(ConsumerProtocol.Subscription(version: 1, topics: topics))
            let (groupId, memberId, session, rebalance) = (
                self.groupId, self.memberId, sessionTimeoutMs, rebalanceTimeoutMs
            )
            let (joined, _) = try await client.sendToCoordinator(
                group: groupId, extraTimeoutMs: Int64(rebalance), errorOf: { ErrorCode($0.errorCode) }
            ) { _ in
                JoinGroupRequest(
                    groupId: groupId, sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance, memberId: memberId,
                    groupInstanceId: nil, protocolType: ConsumerProtocol.protocolType,
                    protocols: [.init(name: RangeAssignor.name, metadata: subscription)], reason: nil)
            }
            switch ErrorCode(joined.errorCode) {
            case .none: break
            case .memberIdRequired:
                self.memberId = joined.memberId
                continue
            case .unknownMemberId:
                self.memberId = ""
                continue
            case .rebalanceInProgress, .illegalGeneration, .notCoordinator, .coordinatorNotAvailable,
                .coordinatorLoadInProgress:
                continue
            case .inconsistentGroupProtocol:
                throw ClientError("group \(groupId) uses another protocol than the consumer range assignor")
            case .groupMaxSizeReached:
                throw ClientError("group \(groupId) is full (group.max.size)")
            case let code:
                throw ClientError("cannot join group \(groupId): \(code.name)")
            }
            self.memberId = joined.memberId
            generationId = joined.generationId
            isLeader = joined.leader == joined.memberId
            let assignments = isLeader ? try await assign(members: joined.members) : []
            let (generation, me, protocolName) = (
                generationId, self.memberId, joined.protocolName ?? RangeAssignor.name
            )
            let (synced, _) = try await client.sendToCoordinator(group: groupId, errorOf: { ErrorCode($0.errorCode) }) {
                _ in
                SyncGroupRequest(
                    groupId: groupId, generationId: generation, memberId: me, groupInstanceId: nil,
                    protocolType: ConsumerProtocol.protocolType, protocolName: protocolName, assignments: assignments)
            }
            switch ErrorCode(synced.errorCode) {
            case .none: break
            case .unknownMemberId:
                self.memberId = ""
                continue
            case .rebalanceInProgress, .illegalGeneration, .notCoordinator, .coordinatorNotAvailable,
                .coordinatorLoadInProgress:
                continue
            case let code:
                throw ClientError("cannot sync with group \(groupId): \(code.name)")
            }
            let decoded: ConsumerProtocol.Assignment
            do {
                decoded = try ConsumerProtocol.decodeAssignment(synced.assignment)
            } catch {
                throw ClientError("the assignment group \(groupId) handed out does not parse (\(error))")
            }
            var mine: [String: [Int32]] = [:]
            for tp in decoded.partitions where topics.contains(tp.topic) {
                mine[tp.topic, default: []] += tp.partitions
            }
            assignment = mine.mapValues { $0.sorted() }
            needsRejoin = false
            lastHeartbeatOk = NIODeadline.now()
            startHeartbeat()
            return
        }
    }

    /// The range assignment of every member's subscription (the leader's job).
    func assign(
        members: [JoinGroupResponse.JoinGroupResponseMember]
    ) async throws -> [SyncGroupRequest.SyncGroupRequestAssignment] {
        var list: [RangeAssignor.Member] = []
        for m in members {
            let topics = (try? ConsumerProtocol.decodeSubscription(m.metadata))?.topics ?? []
            list.append(RangeAssignor.Member(memberId: m.memberId, groupInstanceId: m.groupInstanceId, topics: topics))
        }
        var counts: [String: Int32] = [:]
        for topic in Set(list.flatMap(\.topics)) {
            if let t = try? await client.topic(topic, refresh: true) { counts[topic] = t.partitionCount }
        }
        let plan = RangeAssignor.assign(members: list, partitionCounts: counts)
        return list.map { m in
            .init(
                memberId: m.memberId,
                assignment: ConsumerProtocol.encode(
                    ConsumerProtocol.Assignment(version: 0, partitions: plan[m.memberId] ?? [])))
        }
    }

    func startHeartbeat() {
        let generation = generationId
        let interval = heartbeatIntervalMs
        heartbeat = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(interval) * 1_000_000)
                guard !Task.isCancelled, let self else { return }
                guard await self.beat(generation: generation) else { return }
            }
        }
    }

    /// One heartbeat; false when the generation is over (the loop stops).
    func beat(generation: Int32) async -> Bool {
        guard generation == generationId, !needsRejoin else { return false }
        let (groupId, memberId) = (self.groupId, self.memberId)
        let answer = try? await client.sendToCoordinator(group: groupId, errorOf: { ErrorCode($0.errorCode) }) { _ in
            HeartbeatRequest(groupId: groupId, generationId: generation, memberId: memberId, groupInstanceId: nil)
        }
        guard generation == generationId else { return false }
        guard let (response, _) = answer else { return true }  // try again next interval
        switch ErrorCode(response.errorCode) {
        case .none:
            lastHeartbeatOk = NIODeadline.now()
            return true
        case .unknownMemberId, .fencedInstanceId:
            self.memberId = ""
            needsRejoin = true
            return false
        case .rebalanceInProgress, .illegalGeneration:
            needsRejoin = true
            return false
        default:
            return true
        }
    }

    /// Commits `offsets` (the next offset to read, per partition) with this generation. Errors
    /// that end the generation set `needsRejoin`; the failed partitions are returned.
    @discardableResult
    public func commit(
        _ offsets: [String: [Int32: Int64]]
    ) async throws -> [(topic: String, partition: Int32, error: ErrorCode)] {
        guard !offsets.isEmpty, generationId >= 0 else { return [] }
        let failed = try await client.commitOffsets(
            group: groupId, generationId: generationId, memberId: memberId, offsets: offsets)
        for f in failed {
            switch f.error {
            case .unknownMemberId, .fencedInstanceId:
                memberId = ""
                needsRejoin = true
            case .rebalanceInProgress, .illegalGeneration:
                needsRejoin = true
            default: break
            }
        }
        return failed
    }

    /// LeaveGroup, so the others rebalance at once instead of after the session timeout.
    public func leave() async {
        heartbeat?.cancel()
        heartbeat = nil
        guard !memberId.isEmpty else { return }
        let (groupId, memberId) = (self.groupId, self.memberId)
        _ = try? await client.sendToCoordinator(group: groupId, errorOf: { ErrorCode($0.errorCode) }) { v in
            var r = LeaveGroupRequest()
            r.groupId = groupId
            if v >= 3 {
                r.members = [.init(memberId: memberId, groupInstanceId: nil, reason: "the consumer is closing")]
            } else {
                r.memberId = memberId
            }
            return r
        }
        self.memberId = ""
        generationId = -1
        assignment = [:]
        needsRejoin = true
    }
}
