import NIOCore
import RunnelCore
import RunnelWire

/// The group coordinator's settings (Kafka's `group.*` broker keys).
public struct GroupSettings: Sendable {
    /// `group.min.session.timeout.ms`
    public var minSessionTimeoutMs: Int32 = 6000
    /// `group.max.session.timeout.ms`
    public var maxSessionTimeoutMs: Int32 = 1_800_000
    /// `group.initial.rebalance.delay.ms`
    public var initialRebalanceDelayMs: Int64 = 3000
    /// `group.max.size`
    public var maxSize: Int = Int(Int32.max)
    /// `offset.metadata.max.bytes`
    public var offsetMetadataMaxBytes: Int = 4096
    public init() {}
}

/// What the coordinator tells its driver to do.
public enum GroupEffect: Sendable, Equatable {
    /// Answer a parked JoinGroup.
    case join(RequestToken, JoinGroupResponse)
    /// Answer a parked SyncGroup.
    case sync(RequestToken, SyncGroupResponse)
    /// The group's membership changed in a way worth keeping: write its GroupMetadata record.
    case persist(groupId: String)
    /// Write the group's record with the leader's assignment of `generation`, then report the
    /// outcome with `assignmentStored`.
    case storeAssignment(groupId: String, generation: Int32)
    /// Something an operator wants in the log (Kafka's coordinator logs the same at INFO).
    case event(groupId: String, GroupEvent)

    public static func == (a: GroupEffect, b: GroupEffect) -> Bool {
        switch (a, b) {
        case let (.join(t1, r1), .join(t2, r2)):
            return t1 == t2 && r1.errorCode == r2.errorCode && r1.generationId == r2.generationId
                && r1.memberId == r2.memberId && r1.leader == r2.leader
                && r1.members.map(\.memberId) == r2.members.map(\.memberId)
        case let (.sync(t1, r1), .sync(t2, r2)):
            return t1 == t2 && r1.errorCode == r2.errorCode && r1.assignment == r2.assignment
        case let (.persist(g1), .persist(g2)): return g1 == g2
        case let (.storeAssignment(g1, n1), .storeAssignment(g2, n2)): return g1 == g2 && n1 == n2
        case let (.event(g1, e1), .event(g2, e2)): return g1 == g2 && e1 == e2
        default: return false
        }
    }
}

/// A group transition worth logging.
public enum GroupEvent: Sendable, Equatable, CustomStringConvertible {
    case preparingRebalance(fromState: GroupState, generation: Int32, reason: String)
    case stabilized(generation: Int32, members: Int)
    case emptied(generation: Int32)
    case memberRemoved(memberId: String, reason: String)
    case staticMemberReplaced(instanceId: String, oldMemberId: String, newMemberId: String)

    public var description: String {
        switch self {
        case let .preparingRebalance(state, generation, reason):
            return
                "preparing to rebalance in state \(state.rawValue) with old generation \(generation) (reason: \(reason))"
        case let .stabilized(generation, members):
            return "stabilized at generation \(generation) with \(members) members"
        case let .emptied(generation): return "is empty at generation \(generation)"
        case let .memberRemoved(id, reason): return "removed member \(id) (\(reason))"
        case let .staticMemberReplaced(instance, old, new):
            return "static member \(instance) replaced member id \(old) with \(new)"
        }
    }
}

/// Kafka's classic group coordinator as a value: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
/// session and rebalance timeouts, committed offsets, transactional offsets (TxnOffsetCommit)
/// held until their transaction ends. Time is a parameter; requests that must wait are parked
/// under a driver-chosen token and answered through `GroupEffect`s; nothing here does I/O.
/// Offsets change only once the driver reports them written (`offsetsCommitted`,
/// `transactionalOffsetsWritten`) and, for a transaction's, its marker (`completeTransaction`).
public struct GroupCoordinator: Sendable {
    public var settings: GroupSettings
    public private(set) var groups: [String: Group] = [:]
    /// Commits accepted and being written, per group and partition (see `commitStarted`).
    private var pendingCommits: [String: [TopicPartition: Int]] = [:]
    /// The groups holding pending transactional offsets of each producer (Kafka's
    /// openGroupsForProducer): a marker names only the producer and the partition it is on.
    private var openGroupsByProducer: [Int64: Set<String>] = [:]

    public init(settings: GroupSettings = GroupSettings()) { self.settings = settings }

    public func group(_ id: String) -> Group? { groups[id] }

    // MARK: JoinGroup

    /// A JoinGroup. `newMemberId` is the id to hand a member joining without one.
    public mutating func join(
        _ r: JoinGroupRequest, version: Int16, clientId: String, clientHost: String, token: RequestToken,
        newMemberId: String, nowMs: Int64
    ) -> [GroupEffect] {
        func fail(_ code: ErrorCode, memberId: String = r.memberId) -> [GroupEffect] {
            [
                .join(
                    token,
                    JoinGroupResponse(
                        errorCode: code.rawValue, generationId: -1, protocolName: version >= 7 ? nil : "", leader: "",
                        memberId: memberId))
            ]
        }
        guard !r.groupId.isEmpty else { return fail(.invalidGroupId) }
        guard r.sessionTimeoutMs >= settings.minSessionTimeoutMs, r.sessionTimeoutMs <= settings.maxSessionTimeoutMs
        else {
            return fail(.invalidSessionTimeout)
        }
        let protocols = r.protocols.map { (name: $0.name, metadata: $0.metadata) }
        let rebalanceTimeout = version >= 1 ? r.rebalanceTimeoutMs : r.sessionTimeoutMs
        var group = groups[r.groupId] ?? Group(groupId: r.groupId)
        if groups[r.groupId] == nil && !r.memberId.isEmpty { return fail(.unknownMemberId) }
        guard group.state != .dead else { return fail(.coordinatorNotAvailable) }
        guard group.supports(protocolType: r.protocolType, protocols: protocols.map(\.name)) else {
            return fail(.inconsistentGroupProtocol)
        }
        defer { groups[r.groupId] = group }
        var effects: [GroupEffect] = []

        if r.memberId.isEmpty {
            if let instance = r.groupInstanceId, let old = group.member(instance: instance) {
                // A static member back with a new process: it takes over its old identity (the old
                // process is fenced) and the group rebalances.
                let i = group.index(of: old.memberId)!
                if let t = old.pendingJoin {
                    effects += [
                        .join(
                            t, JoinGroupResponse(errorCode: ErrorCode.fencedInstanceId.rawValue, memberId: old.memberId)
                        )
                    ]
                }
                if let t = old.pendingSync {
                    effects += [.sync(t, SyncGroupResponse(errorCode: ErrorCode.fencedInstanceId.rawValue))]
                }
                group.members[i].pendingJoin = nil
                group.members[i].pendingSync = nil
                return effects
                    + replaceStaticMember(
                        &group, memberIndex: i, newMemberId: newMemberId, r, version: version, protocols: protocols,
                        rebalanceTimeout: rebalanceTimeout, clientId: clientId, clientHost: clientHost, token: token,
                        nowMs: nowMs)
            }
            if group.members.count >= settings.maxSize { return fail(.groupMaxSizeReached) }
            if version >= 4 && r.groupInstanceId == nil {
                // KIP-394: the member must come back with the id it is given.
                group.pendingMemberIds.insert(newMemberId)
                return [
                    .join(
                        token,
                        JoinGroupResponse(
                            errorCode: ErrorCode.memberIdRequired.rawValue, generationId: -1,
                            protocolName: version >= 7 ? nil : "", leader: "", memberId: newMemberId))
                ]
            }
            return addOrUpdate(
                &group, memberIndex: nil, r, memberId: newMemberId, protocols: protocols,
                rebalanceTimeout: rebalanceTimeout,
                clientId: clientId, clientHost: clientHost, token: token, nowMs: nowMs)
        }
        if group.pendingMemberIds.contains(r.memberId) {
            group.pendingMemberIds.remove(r.memberId)
            if group.members.count >= settings.maxSize { return fail(.groupMaxSizeReached) }
            return addOrUpdate(
                &group, memberIndex: nil, r, memberId: r.memberId, protocols: protocols,
                rebalanceTimeout: rebalanceTimeout,
                clientId: clientId, clientHost: clientHost, token: token, nowMs: nowMs)
        }
        let i: Int
        switch group.validate(memberId: r.memberId, instanceId: r.groupInstanceId) {
        case .success(let index): i = index
        case .failure(let code): return fail(code)
        }
        return addOrUpdate(
            &group, memberIndex: i, r, protocols: protocols, rebalanceTimeout: rebalanceTimeout,
            clientId: clientId, clientHost: clientHost, token: token, nowMs: nowMs)
    }

    /// A static member's new process takes over the old one's place (KIP-345), as Kafka's
    /// updateStaticMemberAndRebalance does. In a Stable group whose protocol it still supports,
    /// it gets the current generation and, at its SyncGroup, its old assignment: the other members
    /// see no rebalance. Otherwise the group rebalances (in CompletingRebalance the leader's
    /// coming assignment names the old member id, so it must).
    private func replaceStaticMember(
        _ group: inout Group, memberIndex i: Int, newMemberId: String, _ r: JoinGroupRequest, version: Int16,
        protocols: [(name: String, metadata: ByteBuffer)], rebalanceTimeout: Int32,
        clientId: String, clientHost: String, token: RequestToken, nowMs: Int64
    ) -> [GroupEffect] {
        let oldMemberId = group.members[i].memberId
        let previousLeader = group.leaderId
        group.members[i].memberId = newMemberId
        if group.leaderId == oldMemberId { group.leaderId = newMemberId }
        let event = GroupEffect.event(
            groupId: group.groupId,
            .staticMemberReplaced(
                instanceId: r.groupInstanceId ?? "", oldMemberId: oldMemberId, newMemberId: newMemberId))
        guard group.state == .stable else {
            let reason =
                "static member \(r.groupInstanceId ?? "") rejoined with a new member id in state \(group.state.rawValue)"
            var effects = [event]
            if group.state == .completingRebalance { effects += prepareRebalance(&group, nowMs: nowMs, reason: reason) }
            return effects
                + addOrUpdate(
                    &group, memberIndex: i, r, protocols: protocols, rebalanceTimeout: rebalanceTimeout,
                    clientId: clientId, clientHost: clientHost, token: token, nowMs: nowMs)
        }
        let kept = group.members[i]
        group.members[i].protocols = protocols
        guard group.selectProtocol() == group.protocolName else {
            group.members[i] = kept
            return [event]
                + addOrUpdate(
                    &group, memberIndex: i, r, protocols: protocols, rebalanceTimeout: rebalanceTimeout,
                    clientId: clientId, clientHost: clientHost, token: token, nowMs: nowMs)
        }
        group.members[i].rebalanceTimeoutMs = rebalanceTimeout
        group.members[i].sessionTimeoutMs = r.sessionTimeoutMs
        group.members[i].clientId = clientId
        group.members[i].clientHost = clientHost
        group.members[i].sessionDeadlineMs = nowMs + Int64(r.sessionTimeoutMs)
        // KIP-814 (v9+): a returning leader is told it leads but must skip the assignment, and
        // gets the members to keep watching their subscriptions. Older versions name the
        // previous leader id, so the returning leader takes itself for a follower and computes
        // no assignment a Stable group would not pass on.
        let isLeader = group.leaderId == newMemberId
        var response = joinResponse(group, for: newMemberId, leaderView: isLeader && version >= 9)
        if version >= 9 {
            response.skipAssignment = isLeader
        } else {
            response.leader = previousLeader ?? ""
        }
        return [event, .persist(groupId: group.groupId), .join(token, response)]
    }

    /// Adds a member (memberIndex nil) or updates a known one from its JoinGroup, parks the join
    /// and moves the group on.
    private func addOrUpdate(
        _ group: inout Group, memberIndex: Int?, _ r: JoinGroupRequest, memberId: String? = nil,
        protocols: [(name: String, metadata: ByteBuffer)], rebalanceTimeout: Int32,
        clientId: String, clientHost: String, token: RequestToken, nowMs: Int64
    ) -> [GroupEffect] {
        var effects: [GroupEffect] = []
        let index: Int
        if let memberIndex {
            index = memberIndex
            let m = group.members[index]
            if let t = m.pendingJoin, t != token {
                // A newer join from the same member replaces the one parked.
                effects.append(
                    .join(t, JoinGroupResponse(errorCode: ErrorCode.unknownMemberId.rawValue, memberId: m.memberId)))
            }
            let unchanged = m.sameProtocols(protocols)
            let isLeader = group.leaderId == m.memberId
            // A member rejoining with the same protocols while the group completes its rebalance,
            // or a follower doing so in a stable group, gets the current generation back without
            // a rebalance (a stable group's leader rejoining means it wants one).
            if unchanged && (group.state == .completingRebalance || (group.state == .stable && !isLeader)) {
                group.members[index].sessionDeadlineMs = nowMs + Int64(m.sessionTimeoutMs)
                group.members[index].pendingJoin = nil
                return effects + [.join(token, joinResponse(group, for: m.memberId, leaderView: isLeader))]
            }
            group.members[index].protocols = protocols
            group.members[index].rebalanceTimeoutMs = rebalanceTimeout
            group.members[index].sessionTimeoutMs = r.sessionTimeoutMs
            group.members[index].clientId = clientId
            group.members[index].clientHost = clientHost
        } else {
            let member = GroupMember(
                memberId: memberId!, groupInstanceId: r.groupInstanceId, clientId: clientId, clientHost: clientHost,
                rebalanceTimeoutMs: rebalanceTimeout, sessionTimeoutMs: r.sessionTimeoutMs,
                protocolType: r.protocolType,
                protocols: protocols, sessionDeadlineMs: nowMs + Int64(r.sessionTimeoutMs), isNew: true)
            group.members.append(member)
            index = group.members.count - 1
            if group.protocolType == nil { group.protocolType = r.protocolType }
        }
        group.members[index].pendingJoin = token
        group.members[index].sessionDeadlineMs = nowMs + Int64(group.members[index].sessionTimeoutMs)
        switch group.state {
        case .empty, .stable, .completingRebalance:
            let reason =
                memberIndex == nil
                ? "member \(group.members[index].memberId) joined"
                : "member \(group.members[index].memberId) rejoined\(group.leaderId == group.members[index].memberId ? " as leader" : " with new protocols")"
            effects += prepareRebalance(&group, nowMs: nowMs, reason: reason)
        case .preparingRebalance:
            if let delay = group.initialDelayUntilMs {
                // Each member joining during the initial delay extends it, up to the rebalance timeout.
                group.initialDelayUntilMs = min(
                    max(delay, nowMs + settings.initialRebalanceDelayMs), group.joinDeadlineMs ?? delay)
            }
        case .dead:
            break
        }
        return effects + maybeCompleteJoin(&group, nowMs: nowMs)
    }

    /// Starts a rebalance: members must rejoin within the largest rebalance timeout; parked
    /// SyncGroups learn the generation is over.
    private func prepareRebalance(_ group: inout Group, nowMs: Int64, reason: String) -> [GroupEffect] {
        var effects: [GroupEffect] = [
            .event(
                groupId: group.groupId,
                .preparingRebalance(fromState: group.state, generation: group.generationId, reason: reason))
        ]
        for i in group.members.indices {
            if let t = group.members[i].pendingSync {
                effects.append(.sync(t, SyncGroupResponse(errorCode: ErrorCode.rebalanceInProgress.rawValue)))
                group.members[i].pendingSync = nil
            }
        }
        let wasEmpty = group.state == .empty
        group.state = .preparingRebalance
        group.stateTimestampMs = nowMs
        let timeout = Int64(group.members.map(\.rebalanceTimeoutMs).max() ?? 0)
        group.joinDeadlineMs = nowMs + max(timeout, 0)
        group.initialDelayUntilMs =
            wasEmpty && settings.initialRebalanceDelayMs > 0
            ? min(nowMs + settings.initialRebalanceDelayMs, group.joinDeadlineMs!) : nil
        return effects
    }

    /// Ends the join phase once every member has rejoined (and the initial delay passed), or at
    /// the deadline without those that did not.
    private func maybeCompleteJoin(_ group: inout Group, nowMs: Int64) -> [GroupEffect] {
        guard group.state == .preparingRebalance else { return [] }
        let allJoined = group.members.allSatisfy { $0.pendingJoin != nil } && group.pendingMemberIds.isEmpty
        let delayOver = (group.initialDelayUntilMs ?? .min) <= nowMs
        let deadlinePassed = (group.joinDeadlineMs ?? .max) <= nowMs
        guard (allJoined && delayOver) || deadlinePassed else { return [] }
        // Members that did not rejoin in time leave the group.
        var removed: [GroupEffect] = group.members.filter { $0.pendingJoin == nil }.map {
            .event(
                groupId: group.groupId,
                .memberRemoved(memberId: $0.memberId, reason: "did not rejoin within the rebalance timeout"))
        }
        group.members.removeAll { $0.pendingJoin == nil }
        group.pendingMemberIds = []
        group.joinDeadlineMs = nil
        group.initialDelayUntilMs = nil
        group.generationId += 1
        group.stateTimestampMs = nowMs
        if group.members.isEmpty {
            group.state = .empty
            group.protocolName = nil
            group.leaderId = nil
            return removed + [
                .persist(groupId: group.groupId),
                .event(groupId: group.groupId, .emptied(generation: group.generationId)),
            ]
        }
        group.protocolName = group.selectProtocol()
        if group.leaderId.map({ group.member($0) == nil }) ?? true { group.leaderId = group.members[0].memberId }
        group.state = .completingRebalance
        removed.append(
            .event(groupId: group.groupId, .stabilized(generation: group.generationId, members: group.members.count)))
        var effects = removed
        for i in group.members.indices {
            group.members[i].isNew = false
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
            if let t = group.members[i].pendingJoin {
                let id = group.members[i].memberId
                effects.append(.join(t, joinResponse(group, for: id, leaderView: id == group.leaderId)))
                group.members[i].pendingJoin = nil
            }
        }
        return effects
    }

    private func joinResponse(_ group: Group, for memberId: String, leaderView: Bool) -> JoinGroupResponse {
        var response = JoinGroupResponse()
        response.generationId = group.generationId
        response.protocolType = group.protocolType
        response.protocolName = group.protocolName
        response.leader = group.leaderId ?? ""
        response.memberId = memberId
        if leaderView, let name = group.protocolName {
            response.members = group.members.map {
                .init(
                    memberId: $0.memberId, groupInstanceId: $0.groupInstanceId,
                    metadata: $0.metadata(for: name) ?? ByteBuffer())
            }
        }
        return response
    }

    // MARK: SyncGroup

    public mutating func sync(_ r: SyncGroupRequest, version: Int16, token: RequestToken, nowMs: Int64) -> [GroupEffect]
    {
        func fail(_ code: ErrorCode) -> [GroupEffect] { [.sync(token, SyncGroupResponse(errorCode: code.rawValue))] }
        guard var group = groups[r.groupId] else { return fail(.unknownMemberId) }
        let i: Int
        switch group.validate(memberId: r.memberId, instanceId: r.groupInstanceId) {
        case .success(let index): i = index
        case .failure(let code): return fail(code)
        }
        guard r.generationId == group.generationId else { return fail(.illegalGeneration) }
        if let type = r.protocolType, type != group.protocolType { return fail(.inconsistentGroupProtocol) }
        if let name = r.protocolName, name != group.protocolName { return fail(.inconsistentGroupProtocol) }
        defer { groups[r.groupId] = group }
        switch group.state {
        case .empty, .dead:
            return fail(.unknownMemberId)
        case .preparingRebalance:
            return fail(.rebalanceInProgress)
        case .stable:
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
            return [.sync(token, syncResponse(group, i))]
        case .completingRebalance:
            var effects: [GroupEffect] = []
            if let t = group.members[i].pendingSync, t != token {
                effects.append(.sync(t, SyncGroupResponse(errorCode: ErrorCode.unknownMemberId.rawValue)))
            }
            group.members[i].pendingSync = token
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
            guard r.memberId == group.leaderId else { return effects }
            // The leader's assignment completes the rebalance for everyone (members it left out
            // get an empty one), once it is stored: the driver writes the group's record and
            // reports back (`assignmentStored`). Answering first would let a coordinator that
            // fails before the write hand the same generation out twice.
            let given = Dictionary(r.assignments.map { ($0.memberId, $0.assignment) }, uniquingKeysWith: { a, _ in a })
            for j in group.members.indices {
                group.members[j].assignment = given[group.members[j].memberId] ?? ByteBuffer()
            }
            return effects + [.storeAssignment(groupId: group.groupId, generation: group.generationId)]
        }
    }

    /// The driver wrote (or failed to write) the group's record for `generation`, asked for by
    /// `.storeAssignment`. On success the group is Stable and every waiting SyncGroup gets its
    /// assignment; on failure they get `error` and the group rebalances (Kafka's
    /// resetAndPropagateAssignmentError). Nothing happens if the group moved on meanwhile.
    public mutating func assignmentStored(
        groupId: String, generation: Int32, error: ErrorCode?, nowMs: Int64
    ) -> [GroupEffect] {
        guard var group = groups[groupId], group.state == .completingRebalance, group.generationId == generation else {
            return []
        }
        defer { groups[groupId] = group }
        var effects: [GroupEffect] = []
        if let error, error != .none {
            for j in group.members.indices {
                group.members[j].assignment = ByteBuffer()
                if let t = group.members[j].pendingSync {
                    effects.append(.sync(t, SyncGroupResponse(errorCode: error.rawValue)))
                    group.members[j].pendingSync = nil
                }
            }
            effects += prepareRebalance(
                &group, nowMs: nowMs, reason: "storing the assignment of generation \(generation) failed: \(error)")
            return effects + maybeCompleteJoin(&group, nowMs: nowMs)
        }
        group.state = .stable
        group.stateTimestampMs = nowMs
        for j in group.members.indices {
            if let t = group.members[j].pendingSync {
                effects.append(.sync(t, syncResponse(group, j)))
                group.members[j].pendingSync = nil
            }
        }
        return effects
    }

    private func syncResponse(_ group: Group, _ i: Int) -> SyncGroupResponse {
        SyncGroupResponse(
            errorCode: 0, protocolType: group.protocolType, protocolName: group.protocolName,
            assignment: group.members[i].assignment)
    }

    // MARK: Heartbeat and LeaveGroup

    public mutating func heartbeat(_ r: HeartbeatRequest, nowMs: Int64) -> ErrorCode {
        guard var group = groups[r.groupId] else { return .unknownMemberId }
        let i: Int
        switch group.validate(memberId: r.memberId, instanceId: r.groupInstanceId) {
        case .success(let index): i = index
        case .failure(let code): return code
        }
        switch group.state {
        case .empty, .dead:
            return .unknownMemberId
        case .completingRebalance, .stable:
            guard r.generationId == group.generationId else { return .illegalGeneration }
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
            groups[r.groupId] = group
            return .none
        case .preparingRebalance:
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
            groups[r.groupId] = group
            return r.generationId == group.generationId ? .rebalanceInProgress : .illegalGeneration
        }
    }

    /// LeaveGroup of one member (v0-2) or several (v3+, by member id or instance id).
    public mutating func leave(
        groupId: String, members: [(memberId: String, instanceId: String?)], nowMs: Int64
    ) -> (errors: [ErrorCode], effects: [GroupEffect]) {
        guard var group = groups[groupId] else { return (members.map { _ in .unknownMemberId }, []) }
        var errors: [ErrorCode] = []
        var effects: [GroupEffect] = []
        for leaving in members {
            var index: Int?
            if let instance = leaving.instanceId {
                index = group.members.firstIndex { $0.groupInstanceId == instance }
                if let i = index, !leaving.memberId.isEmpty, group.members[i].memberId != leaving.memberId {
                    errors.append(.fencedInstanceId)
                    continue
                }
            } else {
                index = group.index(of: leaving.memberId)
                if index == nil, group.pendingMemberIds.remove(leaving.memberId) != nil {
                    errors.append(.none)
                    continue
                }
            }
            guard let i = index else {
                errors.append(.unknownMemberId)
                continue
            }
            effects += removeMember(&group, at: i, nowMs: nowMs, reason: "left the group")
            errors.append(.none)
        }
        groups[groupId] = group
        return (errors, effects)
    }

    /// Removes a member; the rest rebalance.
    private func removeMember(_ group: inout Group, at i: Int, nowMs: Int64, reason: String) -> [GroupEffect] {
        let m = group.members.remove(at: i)
        var effects: [GroupEffect] = [
            .event(groupId: group.groupId, .memberRemoved(memberId: m.memberId, reason: reason))
        ]
        if let t = m.pendingJoin {
            effects.append(
                .join(t, JoinGroupResponse(errorCode: ErrorCode.unknownMemberId.rawValue, memberId: m.memberId)))
        }
        if let t = m.pendingSync {
            effects.append(.sync(t, SyncGroupResponse(errorCode: ErrorCode.unknownMemberId.rawValue)))
        }
        if group.leaderId == m.memberId { group.leaderId = group.members.first?.memberId }
        switch group.state {
        case .stable, .completingRebalance:
            effects += prepareRebalance(&group, nowMs: nowMs, reason: "member \(m.memberId) \(reason)")
            effects += maybeCompleteJoin(&group, nowMs: nowMs)
        case .preparingRebalance:
            effects += maybeCompleteJoin(&group, nowMs: nowMs)
        case .empty, .dead:
            break
        }
        return effects
    }

    // MARK: time

    /// Expires sessions, ends join phases whose deadline or initial delay passed.
    public mutating func tick(nowMs: Int64) -> [GroupEffect] {
        var effects: [GroupEffect] = []
        for id in groups.keys.sorted() {
            var group = groups[id]!
            // Members parked in a join keep their session until the join phase ends.
            while let i = group.members.firstIndex(where: { $0.pendingJoin == nil && $0.sessionDeadlineMs <= nowMs }) {
                effects += removeMember(&group, at: i, nowMs: nowMs, reason: "session timed out")
            }
            effects += maybeCompleteJoin(&group, nowMs: nowMs)
            groups[id] = group
        }
        return effects
    }

    /// The earliest time `tick` has something to do (nil: nothing pending).
    public var nextDeadlineMs: Int64? {
        var next: Int64?
        for group in groups.values {
            for m in group.members where m.pendingJoin == nil {
                next = min(next ?? m.sessionDeadlineMs, m.sessionDeadlineMs)
            }
            if let d = group.joinDeadlineMs { next = min(next ?? d, d) }
            if let d = group.initialDelayUntilMs { next = min(next ?? d, d) }
        }
        return next
    }

    // MARK: offsets

    /// Whether an OffsetCommit may proceed for the group (nil) or the error for every partition.
    /// A commit from outside the group (generation -1, no member id) is allowed while the group
    /// has no members (a consumer with assign()).
    public func checkCommit(groupId: String, generationId: Int32, memberId: String, instanceId: String?) -> ErrorCode? {
        guard !groupId.isEmpty else { return .invalidGroupId }
        guard let group = groups[groupId] else {
            return generationId < 0 ? nil : .illegalGeneration
        }
        if generationId < 0 && memberId.isEmpty {
            return group.members.isEmpty ? nil : .illegalGeneration
        }
        switch group.state {
        case .dead: return .coordinatorNotAvailable
        case .empty: return .unknownMemberId
        default: break
        }
        if case .failure(let code) = group.validate(memberId: memberId, instanceId: instanceId) { return code }
        guard generationId == group.generationId else { return .illegalGeneration }
        if group.state == .completingRebalance { return .rebalanceInProgress }
        return nil
    }

    /// A commit passed `checkCommit` and its records are being written: until they are (or fail),
    /// OffsetFetch with `requireStable` answers UNSTABLE_OFFSET_COMMIT for these partitions, so a
    /// new owner does not start from an offset about to be replaced (KIP-447).
    public mutating func commitStarted(groupId: String, _ partitions: [TopicPartition]) {
        for tp in partitions { pendingCommits[groupId, default: [:]][tp, default: 0] += 1 }
    }

    /// A commit's write failed: nothing changes but the pending marks.
    public mutating func commitFailed(groupId: String, _ partitions: [TopicPartition]) {
        endPending(groupId, partitions)
    }

    /// Whether `tp` has an offset of `groupId` not settled yet: a commit being written, or a
    /// transactional offset whose transaction has not ended (Kafka's
    /// hasPendingOffsetCommitsForTopicPartition). OffsetFetch with `requireStable` answers
    /// UNSTABLE_OFFSET_COMMIT for it.
    public func hasPendingCommit(groupId: String, _ tp: TopicPartition) -> Bool {
        (pendingCommits[groupId]?[tp] ?? 0) > 0 || (groups[groupId]?.hasPendingTransactionalOffset(tp) ?? false)
    }

    private mutating func endPending(_ groupId: String, _ partitions: [TopicPartition]) {
        guard var pending = pendingCommits[groupId] else { return }
        for tp in partitions {
            if let n = pending[tp] { pending[tp] = n > 1 ? n - 1 : nil }
        }
        pendingCommits[groupId] = pending.isEmpty ? nil : pending
    }

    /// Offsets the driver wrote to the log in the batch at `appendedBatchOffset`: they hold now,
    /// unless a transaction's offset of the same partition written later was committed meanwhile
    /// (a commit also renews the committing member's session).
    public mutating func offsetsCommitted(
        groupId: String, memberId: String, _ offsets: [(TopicPartition, CommittedOffset)], appendedBatchOffset: Int64,
        nowMs: Int64
    ) {
        endPending(groupId, offsets.map(\.0))
        var group = groups[groupId] ?? Group(groupId: groupId)
        for (tp, o) in offsets { group.materialize(tp, o, appendedBatchOffset: appendedBatchOffset) }
        if let i = group.index(of: memberId) {
            group.members[i].sessionDeadlineMs = nowMs + Int64(group.members[i].sessionTimeoutMs)
        }
        groups[groupId] = group
    }

    /// Offsets removed (OffsetDelete, or tombstones replayed).
    public mutating func offsetsDeleted(groupId: String, _ partitions: [TopicPartition]) {
        guard var group = groups[groupId] else { return }
        for tp in partitions { group.removeOffset(tp) }
        groups[groupId] = group
        dropIfGone(groupId)
    }

    /// DeleteGroups: only an empty group goes (its offsets with it), and not while a transaction
    /// holds offsets of it: they would come back with the transaction's commit marker.
    public mutating func deleteGroup(_ groupId: String) -> ErrorCode {
        guard let group = groups[groupId], group.state != .dead else { return .groupIdNotFound }
        guard group.state == .empty, group.pendingTransactionalOffsets.isEmpty else { return .nonEmptyGroup }
        groups.removeValue(forKey: groupId)
        return .none
    }

    /// Forgets a group left with nothing: no members, offsets or open transactions, never rebalanced.
    private mutating func dropIfGone(_ groupId: String) {
        if let g = groups[groupId], g.state == .empty, g.members.isEmpty, g.offsets.isEmpty,
            g.pendingTransactionalOffsets.isEmpty, g.generationId == 0
        {
            groups.removeValue(forKey: groupId)
        }
    }

    /// Offsets past `offsets.retention.minutes` (Kafka's removeExpiredOffsets, KIP-211): for an
    /// Empty group, every offset once the group has been empty that long; for a Stable consumer
    /// group, offsets of topics no member subscribes to, by commit time; for a group that only
    /// commits (no protocol, e.g. assign()), by commit time. They are dropped here; the driver
    /// writes their tombstones. An Empty group left with no offsets is removed too, unless a
    /// transaction holds offsets of it (Kafka's GroupMetadata.hasOffsets counts those).
    public mutating func expireOffsets(
        nowMs: Int64, retentionMs: Int64
    ) -> [(groupId: String, offsets: [TopicPartition], groupRemoved: Bool)] {
        var out: [(groupId: String, offsets: [TopicPartition], groupRemoved: Bool)] = []
        for id in groups.keys.sorted() {
            var group = groups[id]!
            var expired: [TopicPartition] = []
            switch (group.protocolType, group.state) {
            case (.some, .empty):
                let since = group.stateTimestampMs
                expired = group.offsets.filter {
                    (since >= 0 ? since : $0.value.commitTimestampMs) + retentionMs <= nowMs
                }.map(\.key)
            case ("consumer", .stable):
                guard let subscribed = group.subscribedTopics else { break }
                expired = group.offsets.filter {
                    !subscribed.contains($0.key.topic) && $0.value.commitTimestampMs + retentionMs <= nowMs
                }.map(\.key)
            case (.none, _):
                expired = group.offsets.filter { $0.value.commitTimestampMs + retentionMs <= nowMs }.map(\.key)
            default:
                break
            }
            expired.sort()
            for tp in expired { group.removeOffset(tp) }
            let gone =
                group.state == .empty && group.members.isEmpty && group.offsets.isEmpty
                && group.pendingTransactionalOffsets.isEmpty && (!expired.isEmpty || group.protocolType != nil)
            if gone {
                groups.removeValue(forKey: id)
            } else {
                groups[id] = group
            }
            if !expired.isEmpty || gone { out.append((id, expired, gone)) }
        }
        return out
    }

    // MARK: transactional offsets (TxnOffsetCommit)

    /// Whether a TxnOffsetCommit may proceed for the group (nil) or the error for every partition:
    /// Kafka's validateOffsetCommit for a transactional commit. A group this coordinator does not
    /// know counts as an Empty one (Kafka creates it). A commit naming a generation, member or
    /// instance (v3+) must come from a current member of that generation unless it is generation
    /// -1 on an Empty group; one naming none (v0-2) is taken whatever the group's state, as the
    /// producer does not have to be a member. Unlike OffsetCommit, a group completing its
    /// rebalance does not answer REBALANCE_IN_PROGRESS.
    public func checkTransactionalCommit(
        groupId: String, generationId: Int32, memberId: String, instanceId: String?
    ) -> ErrorCode? {
        guard !groupId.isEmpty else { return .invalidGroupId }
        let group = groups[groupId] ?? Group(groupId: groupId)
        if group.state == .dead { return .coordinatorNotAvailable }
        if generationId < 0 && group.state == .empty { return nil }
        guard generationId >= 0 || !memberId.isEmpty || instanceId != nil else { return nil }
        if case .failure(let code) = group.validate(memberId: memberId, instanceId: instanceId) { return code }
        return generationId == group.generationId ? nil : .illegalGeneration
    }

    /// A TxnOffsetCommit's records were written in the batch at `appendedBatchOffset` (the driver
    /// calls `commitStarted` before writing and `commitFailed` if the write fails, as for a plain
    /// commit): they are pending in the producer's transaction, unseen by OffsetFetch, until its
    /// marker. An unknown group is created Empty to hold them. Of two writes of a partition in one
    /// transaction, the later in the log stays, whichever finished first.
    public mutating func transactionalOffsetsWritten(
        groupId: String, producerId: Int64, _ offsets: [(TopicPartition, CommittedOffset)], appendedBatchOffset: Int64
    ) {
        precondition(producerId >= 0, "a transactional commit has a producer id")
        endPending(groupId, offsets.map(\.0))
        guard !offsets.isEmpty else { return }
        var group = groups[groupId] ?? Group(groupId: groupId)
        var pending = group.pendingTransactionalOffsets[producerId] ?? [:]
        for (tp, o) in offsets where (pending[tp]?.appendedBatchOffset ?? -1) < appendedBatchOffset {
            pending[tp] = PendingTransactionalOffset(offset: o, appendedBatchOffset: appendedBatchOffset)
        }
        group.pendingTransactionalOffsets[producerId] = pending
        groups[groupId] = group
        openGroupsByProducer[producerId, default: []].insert(groupId)
    }

    /// A marker ended `producerId`'s transaction on the `__consumer_offsets` partition whose groups
    /// `onPartition` selects (Kafka's handleTxnCompletion): with a commit, each of its pending
    /// offsets becomes its group's committed offset unless the one in place was written later in
    /// the log (Kafka's completePendingTxnOffsetCommit); with an abort they are dropped. A group
    /// left with nothing is forgotten. Returns the groups whose pending offsets ended, in order.
    @discardableResult
    public mutating func completeTransaction(
        producerId: Int64, committed: Bool, onPartition: (String) -> Bool
    ) -> [String] {
        guard let open = openGroupsByProducer[producerId] else { return [] }
        var ended: [String] = []
        for id in open.sorted() where onPartition(id) {
            openGroupsByProducer[producerId]?.remove(id)
            guard var group = groups[id],
                let pending = group.pendingTransactionalOffsets.removeValue(forKey: producerId)
            else { continue }
            if committed {
                for (tp, p) in pending { group.materialize(tp, p.offset, appendedBatchOffset: p.appendedBatchOffset) }
            }
            groups[id] = group
            ended.append(id)
            dropIfGone(id)
        }
        if openGroupsByProducer[producerId]?.isEmpty ?? false { openGroupsByProducer.removeValue(forKey: producerId) }
        return ended
    }

    /// The producers with pending transactional offsets in `groupId`, in order.
    public func openTransactions(groupId: String) -> [Int64] {
        (groups[groupId]?.pendingTransactionalOffsets.keys).map { $0.sorted() } ?? []
    }

    // MARK: loading and unloading

    /// Takes over the groups of a `__consumer_offsets` partition from its batches in log order
    /// (Kafka's doLoadGroupsAndOffsets): the latest plain offset record per key wins; a
    /// transactional batch's offsets wait for their producer's marker, a commit marker makes them
    /// committed offsets (unless a plain commit of the partition was written after them), an abort
    /// marker drops them, and those of transactions still open at the end stay pending; then each
    /// group's latest metadata record.
    public mutating func load(_ batches: [OffsetsBatch], nowMs: Int64) {
        var latestGroups: [String: GroupMetadataValue?] = [:]
        /// Open transactions' offsets: producer id, group, partition.
        var open: [Int64: [String: [TopicPartition: PendingTransactionalOffset]]] = [:]
        for batch in batches {
            switch batch {
            case .records(let records, let baseOffset, let producerId):
                for record in records {
                    switch record {
                    case .offset(let group, let tp, let value):
                        if let producerId {
                            open[producerId, default: [:]][group, default: [:]][tp] = value.map {
                                PendingTransactionalOffset(offset: $0, appendedBatchOffset: baseOffset)
                            }
                        } else {
                            restoreOffset(groupId: group, tp, value, appendedBatchOffset: baseOffset)
                        }
                    case .group(let group, let value): latestGroups[group] = value
                    }
                }
            case .marker(let producerId, let committed):
                guard let ended = open.removeValue(forKey: producerId), committed else { continue }
                for (id, offsets) in ended.sorted(by: { $0.key < $1.key }) where !offsets.isEmpty {
                    var group = groups[id] ?? Group(groupId: id)
                    for (tp, p) in offsets {
                        group.materialize(tp, p.offset, appendedBatchOffset: p.appendedBatchOffset)
                    }
                    groups[id] = group
                }
            }
        }
        for (producerId, byGroup) in open {
            for (id, offsets) in byGroup where !offsets.isEmpty {
                var group = groups[id] ?? Group(groupId: id)
                group.pendingTransactionalOffsets[producerId, default: [:]].merge(offsets) { _, loaded in loaded }
                groups[id] = group
                openGroupsByProducer[producerId, default: []].insert(id)
            }
        }
        for (group, value) in latestGroups.sorted(by: { $0.key < $1.key }) {
            restore(value, groupId: group, nowMs: nowMs)
        }
    }

    /// Restores a group from its GroupMetadata record (a coordinator taking over): its members
    /// come back with fresh sessions; a group that was rebalancing restarts from stable members.
    public mutating func restore(_ record: GroupMetadataValue?, groupId: String, nowMs: Int64) {
        guard let record else {
            // Tombstone: the group was deleted or emptied for good.
            if var g = groups[groupId] {
                g.members = []
                g.state = .empty
                groups[groupId] = g
                dropIfGone(groupId)
            }
            return
        }
        var group = groups[groupId] ?? Group(groupId: groupId)
        group.generationId = record.generation
        group.protocolType = record.protocolType.isEmpty ? nil : record.protocolType
        group.protocolName = record.protocolName
        group.leaderId = record.leader
        group.members = record.members.map { m in
            GroupMember(
                memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                clientHost: m.clientHost,
                rebalanceTimeoutMs: m.rebalanceTimeoutMs, sessionTimeoutMs: m.sessionTimeoutMs,
                protocolType: record.protocolType,
                protocols: record.protocolName.map { [($0, m.subscription)] } ?? [], assignment: m.assignment,
                sessionDeadlineMs: nowMs + Int64(m.sessionTimeoutMs))
        }
        group.state = group.members.isEmpty ? .empty : .stable
        group.stateTimestampMs = record.currentStateTimestampMs
        groups[groupId] = group
    }

    /// Replays a plain offset record of the batch at `appendedBatchOffset` (nil value: tombstone).
    /// Records come in log order, so each replaces what an earlier one left.
    public mutating func restoreOffset(
        groupId: String, _ tp: TopicPartition, _ value: CommittedOffset?, appendedBatchOffset: Int64
    ) {
        var group = groups[groupId] ?? Group(groupId: groupId)
        group.removeOffset(tp)
        if let value { group.materialize(tp, value, appendedBatchOffset: appendedBatchOffset) }
        groups[groupId] = group
        if value == nil { dropIfGone(groupId) }
    }

    /// This coordinator no longer owns these groups: parked requests learn NOT_COORDINATOR.
    public mutating func unload(where owned: (String) -> Bool) -> [GroupEffect] {
        var effects: [GroupEffect] = []
        for id in groups.keys.sorted() where owned(id) {
            for m in groups[id]!.members {
                if let t = m.pendingJoin {
                    effects.append(
                        .join(t, JoinGroupResponse(errorCode: ErrorCode.notCoordinator.rawValue, memberId: m.memberId)))
                }
                if let t = m.pendingSync {
                    effects.append(.sync(t, SyncGroupResponse(errorCode: ErrorCode.notCoordinator.rawValue)))
                }
            }
            groups.removeValue(forKey: id)
            pendingCommits.removeValue(forKey: id)
            for producerId in Array(openGroupsByProducer.keys) {
                openGroupsByProducer[producerId]!.remove(id)
                if openGroupsByProducer[producerId]!.isEmpty { openGroupsByProducer.removeValue(forKey: producerId) }
            }
        }
        return effects
    }

    /// The GroupMetadata record of a group as it stands.
    public func metadataRecord(_ groupId: String) -> GroupMetadataValue? {
        guard let g = groups[groupId] else { return nil }
        return GroupMetadataValue(
            protocolType: g.protocolType ?? "", generation: g.generationId, protocolName: g.protocolName,
            leader: g.leaderId,
            currentStateTimestampMs: g.stateTimestampMs,
            members: g.members.map { m in
                GroupMetadataValue.Member(
                    memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                    clientHost: m.clientHost,
                    rebalanceTimeoutMs: m.rebalanceTimeoutMs, sessionTimeoutMs: m.sessionTimeoutMs,
                    subscription: g.protocolName.flatMap { m.metadata(for: $0) } ?? ByteBuffer(),
                    assignment: m.assignment)
            })
    }
}
