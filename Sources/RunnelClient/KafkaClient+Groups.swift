import NIOCore
import RunnelCore
import RunnelWire

/// A group as ListGroups reports it.
public struct ListedGroup: Sendable, Equatable {
    public var groupId: String
    public var protocolType: String
    public var state: String
    /// The broker that answered (the group's coordinator).
    public var coordinatorId: Int32
}

/// A group member as DescribeGroups reports it, with its consumer-protocol assignment decoded.
public struct GroupMemberDescription: Sendable, Equatable {
    public var memberId: String
    public var groupInstanceId: String?
    public var clientId: String
    public var clientHost: String
    /// Decoded when the group's protocol type is "consumer"; empty otherwise or before Stable.
    public var assignment: [ConsumerProtocol.TopicPartitions]
}

/// A group as DescribeGroups reports it.
public struct GroupDescription: Sendable, Equatable {
    public var groupId: String
    public var state: String
    public var protocolType: String
    public var protocolName: String
    public var members: [GroupMemberDescription]
    public var coordinator: BrokerInfo
}

extension KafkaClient {
    nonisolated static func isCoordinatorMoving(_ code: ErrorCode) -> Bool {
        code == .notCoordinator || code == .coordinatorNotAvailable || code == .coordinatorLoadInProgress
    }

    /// The group's coordinator (FindCoordinator), cached until a request says it moved. Waits
    /// while the coordinator is not available yet (the offsets topic is being created).
    public func coordinator(for groupId: String) async throws -> BrokerInfo {
        try await coordinator(of: CoordinatorKey(type: .group, key: groupId))
    }

    /// The coordinator of a group or a transactional id (FindCoordinator with its key type),
    /// cached until a request says it moved. Waits while it is not available yet (its internal
    /// topic is being created or loaded).
    func coordinator(of key: CoordinatorKey) async throws -> BrokerInfo {
        if let c = coordinators[key] { return c }
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        var last = ErrorCode.none
        var lastMessage: String?
        while true {
            let (response, version, _) = try await sendAny { v in
                var r = FindCoordinatorRequest()
                r.keyType = key.type.rawValue
                if v >= 4 { r.coordinatorKeys = [key.key] } else { r.key = key.key }
                return r
            }
            var code = ErrorCode(response.errorCode)
            var found = BrokerInfo(id: response.nodeId, host: response.host, port: response.port, rack: nil)
            lastMessage = response.errorMessage
            if version >= 4 {
                guard let c = response.coordinators.first(where: { $0.key == key.key }) else {
                    throw ClientError("the broker's FindCoordinator answer left out \(key)")
                }
                code = ErrorCode(c.errorCode)
                found = BrokerInfo(id: c.nodeId, host: c.host, port: c.port, rack: nil)
                lastMessage = c.errorMessage
            }
            if code == .none {
                coordinators[key] = found
                return found
            }
            guard Self.isCoordinatorMoving(code) else {
                throw ClientError("cannot find the coordinator of \(key): \(Self.reason(code, lastMessage))")
            }
            last = code
            guard NIODeadline.now() < deadline else {
                throw ClientError("\(key) has no coordinator available (\(last.name)) after \(requestTimeoutMs) ms")
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    /// Sends a request to the group's coordinator; when the answer (`errorOf`) or the
    /// connection says the coordinator moved, finds it again and retries, within the request timeout.
    public func sendToCoordinator<R: RequestMessage>(
        group groupId: String, lane: Lane = .group, extraTimeoutMs: Int64 = 0,
        errorOf: @Sendable (R.Response) -> ErrorCode, _ build: @Sendable (Int16) -> R
    ) async throws -> (response: R.Response, version: Int16) {
        try await sendToCoordinator(
            of: CoordinatorKey(type: .group, key: groupId), lane: lane, extraTimeoutMs: extraTimeoutMs,
            errorOf: errorOf, build)
    }

    /// Sends a request to the coordinator of `key`, finding it again and retrying (within the
    /// request timeout) while the answer (`errorOf`) or the connection says it moved.
    func sendToCoordinator<R: RequestMessage>(
        of key: CoordinatorKey, lane: Lane = .group, extraTimeoutMs: Int64 = 0,
        errorOf: @Sendable (R.Response) -> ErrorCode, _ build: @Sendable (Int16) -> R
    ) async throws -> (response: R.Response, version: Int16) {
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs + extraTimeoutMs)
        while true {
            let coordinator = try await coordinator(of: key)
            do {
                let answer = try await send(to: coordinator.address, lane: lane, extraTimeoutMs: extraTimeoutMs, build)
                let code = errorOf(answer.response)
                guard Self.isCoordinatorMoving(code), NIODeadline.now() < deadline else { return answer }
            } catch let error as ClientError {
                guard NIODeadline.now() < deadline else { throw error }
            }
            coordinators[key] = nil
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    // MARK: administration

    /// ListGroups on every broker (each lists the groups it coordinates).
    public func listGroups() async throws -> [ListedGroup] {
        try await refreshMetadata(topics: [])
        var out: [ListedGroup] = []
        for broker in metadata.brokers.values.sorted(by: { $0.id < $1.id }) {
            let response: ListGroupsResponse
            do {
                response = try await send(to: broker.address) { _ in ListGroupsRequest() }.response
            } catch let error as ClientError {
                throw ClientError("cannot list the groups of broker \(broker.id): \(error)")
            }
            guard response.errorCode == 0 else {
                throw ClientError("broker \(broker.id) answered ListGroups with \(ErrorCode(response.errorCode).name)")
            }
            out += response.groups.map {
                ListedGroup(
                    groupId: $0.groupId, protocolType: $0.protocolType,
                    state: $0.groupState.isEmpty ? "Unknown" : $0.groupState, coordinatorId: broker.id)
            }
        }
        return out.sorted { $0.groupId < $1.groupId }
    }

    /// DescribeGroups at the coordinator. A group the coordinator does not know comes back Dead.
    public func describeGroup(_ groupId: String) async throws -> GroupDescription {
        let (response, _) = try await sendToCoordinator(
            group: groupId, lane: .general,
            errorOf: { ErrorCode($0.groups.first?.errorCode ?? 0) }
        ) { _ in
            DescribeGroupsRequest(groups: [groupId])
        }
        guard let g = response.groups.first(where: { $0.groupId == groupId }) else {
            throw ClientError("the coordinator's answer left out group \(groupId)")
        }
        let code = ErrorCode(g.errorCode)
        guard code == .none else { throw ClientError("cannot describe group \(groupId): \(code.name)") }
        let members = g.members.map { m in
            GroupMemberDescription(
                memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                clientHost: m.clientHost,
                assignment: g.protocolType == ConsumerProtocol.protocolType
                    ? ((try? ConsumerProtocol.decodeAssignment(m.memberAssignment))?.partitions ?? []) : [])
        }
        return GroupDescription(
            groupId: groupId, state: g.groupState, protocolType: g.protocolType, protocolName: g.protocolData,
            members: members.sorted { $0.memberId < $1.memberId },
            coordinator: coordinators[CoordinatorKey(type: .group, key: groupId)]!)
    }

    /// The group's committed offsets: of `partitions` by topic, or of everything it has (nil).
    /// Partitions without a committed offset are left out.
    public func committedOffsets(
        group groupId: String, partitions: [String: [Int32]]?, requireStable: Bool = true
    ) async throws -> [String: [Int32: Int64]] {
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        while true {
            let (response, version) = try await sendToCoordinator(
                group: groupId,
                errorOf: { r in
                    ErrorCode(r.groups.first?.errorCode ?? r.errorCode)
                }
            ) { v in
                var r = OffsetFetchRequest()
                let names = partitions.map { $0.keys.sorted() }
                if v >= 8 {
                    r.groups = [
                        .init(
                            groupId: groupId, memberId: nil, memberEpoch: -1,
                            topics: names.map { $0.map { .init(name: $0, partitionIndexes: partitions![$0]!) } })
                    ]
                } else {
                    r.groupId = groupId
                    r.topics = names.map { $0.map { .init(name: $0, partitionIndexes: partitions![$0]!) } }
                }
                r.requireStable = requireStable
                return r
            }
            var entries: [(String, Int32, Int64, Int16)] = []
            var code: ErrorCode
            if version >= 8 {
                let g = response.groups.first
                code = ErrorCode(g?.errorCode ?? 0)
                for t in g?.topics ?? [] {
                    for p in t.partitions { entries.append((t.name, p.partitionIndex, p.committedOffset, p.errorCode)) }
                }
            } else {
                code = ErrorCode(response.errorCode)
                for t in response.topics {
                    for p in t.partitions { entries.append((t.name, p.partitionIndex, p.committedOffset, p.errorCode)) }
                }
            }
            if code == .none, let e = entries.first(where: { $0.3 != 0 }) { code = ErrorCode(e.3) }
            switch code {
            case .none:
                var out: [String: [Int32: Int64]] = [:]
                for (t, p, o, _) in entries where o >= 0 { out[t, default: [:]][p] = o }
                return out
            case .unstableOffsetCommit where NIODeadline.now() < deadline:
                try await Task.sleep(nanoseconds: 100_000_000)
            case .groupIdNotFound:
                return [:]
            default:
                throw ClientError("cannot fetch the committed offsets of group \(groupId): \(code.name)")
            }
        }
    }

    /// OffsetCommit; `generationId` -1 with an empty member id commits from outside the group
    /// (the coordinator accepts that only while the group has no members). Returns the
    /// partitions that failed with their error.
    public func commitOffsets(
        group groupId: String, generationId: Int32 = -1, memberId: String = "",
        offsets: [String: [Int32: Int64]]
    ) async throws -> [(topic: String, partition: Int32, error: ErrorCode)] {
        let (response, _) = try await sendToCoordinator(
            group: groupId,
            errorOf: { r in
                ErrorCode(r.topics.first?.partitions.first?.errorCode ?? 0)
            }
        ) { _ in
            OffsetCommitRequest(
                groupId: groupId, generationIdOrMemberEpoch: generationId, memberId: memberId, groupInstanceId: nil,
                retentionTimeMs: -1,
                topics: offsets.keys.sorted().map { t in
                    .init(
                        name: t,
                        partitions: offsets[t]!.keys.sorted().map { p in
                            .init(
                                partitionIndex: p, committedOffset: offsets[t]![p]!, committedLeaderEpoch: -1,
                                commitTimestamp: -1, committedMetadata: "")
                        })
                })
        }
        var failed: [(topic: String, partition: Int32, error: ErrorCode)] = []
        for t in response.topics {
            for p in t.partitions where p.errorCode != 0 {
                failed.append((t.name, p.partitionIndex, ErrorCode(p.errorCode)))
            }
        }
        return failed
    }

    /// DeleteGroups at the coordinator.
    public func deleteGroup(_ groupId: String) async throws {
        let (response, _) = try await sendToCoordinator(
            group: groupId, lane: .general, errorOf: { ErrorCode($0.results.first?.errorCode ?? 0) }
        ) { _ in
            DeleteGroupsRequest(groupsNames: [groupId])
        }
        let code = ErrorCode(response.results.first { $0.groupId == groupId }?.errorCode ?? 0)
        switch code {
        case .none: return
        case .groupIdNotFound: throw ClientError("group \(groupId) does not exist")
        case .nonEmptyGroup:
            throw ClientError("group \(groupId) still has members; stop its consumers before deleting it")
        default: throw ClientError("cannot delete group \(groupId): \(code.name)")
        }
    }
}

/// What OffsetDelete answered: a group-level error, and each partition's.
public struct OffsetDeletion: Sendable, Equatable {
    public struct Partition: Sendable, Equatable {
        public var topic: String
        public var partition: Int32
        public var error: ErrorCode
    }

    public var error: ErrorCode
    public var partitions: [Partition]
}

extension KafkaClient {
    /// OffsetDelete at the group's coordinator: removes the committed offsets of `partitions` (by
    /// topic); the coordinator refuses the partitions of topics the group's members subscribe to.
    public func deleteOffsets(group groupId: String, partitions: [String: [Int32]]) async throws -> OffsetDeletion {
        let topics = partitions.sorted { $0.key < $1.key }.map { topic, ps in
            OffsetDeleteRequest.OffsetDeleteRequestTopic(
                name: topic, partitions: ps.sorted().map { .init(partitionIndex: $0) })
        }
        let (response, _) = try await sendToCoordinator(
            group: groupId, lane: .general, errorOf: { ErrorCode($0.errorCode) }
        ) { _ in
            OffsetDeleteRequest(groupId: groupId, topics: topics)
        }
        return OffsetDeletion(
            error: ErrorCode(response.errorCode),
            partitions: response.topics.flatMap { t in
                t.partitions.map {
                    OffsetDeletion.Partition(
                        topic: t.name, partition: $0.partitionIndex, error: ErrorCode($0.errorCode))
                }
            }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) })
    }
}
