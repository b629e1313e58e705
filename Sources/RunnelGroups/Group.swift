import NIOCore
import RunnelCore
import RunnelWire

/// The states of a classic consumer group (Kafka's names, as DescribeGroups reports them).
public enum GroupState: String, Sendable, Equatable, CaseIterable {
    /// No members; may still hold committed offsets.
    case empty = "Empty"
    /// Waiting for members to (re)join.
    case preparingRebalance = "PreparingRebalance"
    /// Joined; waiting for the leader's assignment (SyncGroup).
    case completingRebalance = "CompletingRebalance"
    /// Every member has its assignment.
    case stable = "Stable"
    /// Removed (deleted, or its coordinator moved away).
    case dead = "Dead"
}

/// A request parked by the coordinator until the group moves on (a JoinGroup waiting for the
/// rebalance, a SyncGroup waiting for the leader). The driver names it; the coordinator hands it
/// back with the answer.
public typealias RequestToken = Int

/// One member of a group.
public struct GroupMember: Sendable, Equatable {
    public var memberId: String
    /// `group.instance.id` of a static member.
    public var groupInstanceId: String?
    public var clientId: String
    public var clientHost: String
    public var rebalanceTimeoutMs: Int32
    public var sessionTimeoutMs: Int32
    public var protocolType: String
    /// The member's protocols (assignors) in its order of preference, with their metadata.
    public var protocols: [(name: String, metadata: ByteBuffer)]
    /// What the leader assigned it in the current generation.
    public var assignment: ByteBuffer
    /// A JoinGroup waiting for the rebalance to complete.
    public var pendingJoin: RequestToken?
    /// A SyncGroup waiting for the leader's assignment.
    public var pendingSync: RequestToken?
    /// When the member's session ends unless it heartbeats.
    public var sessionDeadlineMs: Int64
    /// Joined in the rebalance under way (for the initial-delay and "new member" rules).
    public var isNew: Bool

    public init(
        memberId: String, groupInstanceId: String?, clientId: String, clientHost: String, rebalanceTimeoutMs: Int32,
        sessionTimeoutMs: Int32, protocolType: String, protocols: [(name: String, metadata: ByteBuffer)],
        assignment: ByteBuffer = ByteBuffer(), sessionDeadlineMs: Int64, isNew: Bool = false
    ) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.sessionTimeoutMs = sessionTimeoutMs
        self.protocolType = protocolType
        self.protocols = protocols
        self.assignment = assignment
        self.sessionDeadlineMs = sessionDeadlineMs
        self.isNew = isNew
    }

    public static func == (a: GroupMember, b: GroupMember) -> Bool {
        a.memberId == b.memberId && a.groupInstanceId == b.groupInstanceId && a.clientId == b.clientId
            && a.clientHost == b.clientHost && a.rebalanceTimeoutMs == b.rebalanceTimeoutMs
            && a.sessionTimeoutMs == b.sessionTimeoutMs
            && a.protocolType == b.protocolType && a.protocols.map(\.name) == b.protocols.map(\.name)
            && a.protocols.map(\.metadata) == b.protocols.map(\.metadata) && a.assignment == b.assignment
            && a.pendingJoin == b.pendingJoin && a.pendingSync == b.pendingSync
            && a.sessionDeadlineMs == b.sessionDeadlineMs
            && a.isNew == b.isNew
    }

    /// This member's metadata for `protocol`.
    public func metadata(for protocol: String) -> ByteBuffer? {
        protocols.first { $0.name == `protocol` }?.metadata
    }

    /// Same protocols and metadata (a rejoin that changes nothing).
    func sameProtocols(_ other: [(name: String, metadata: ByteBuffer)]) -> Bool {
        protocols.map(\.name) == other.map(\.name) && protocols.map(\.metadata) == other.map(\.metadata)
    }
}

/// A committed offset (OffsetCommit), as stored in `__consumer_offsets`.
public struct CommittedOffset: Sendable, Equatable {
    public var offset: Int64
    public var leaderEpoch: Int32
    public var metadata: String
    public var commitTimestampMs: Int64
    public init(offset: Int64, leaderEpoch: Int32, metadata: String, commitTimestampMs: Int64) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestampMs = commitTimestampMs
    }
}

/// A transactional offset commit (TxnOffsetCommit) written to `__consumer_offsets`, waiting for
/// its producer's transaction to end (an entry of Kafka's pendingTransactionalOffsetCommits).
public struct PendingTransactionalOffset: Sendable, Equatable {
    public var offset: CommittedOffset
    /// The log offset of the batch holding its record (Kafka's appendedBatchOffset).
    public var appendedBatchOffset: Int64

    public init(offset: CommittedOffset, appendedBatchOffset: Int64) {
        precondition(appendedBatchOffset >= 0, "a pending transactional offset was written at a log offset")
        self.offset = offset
        self.appendedBatchOffset = appendedBatchOffset
    }
}

/// A consumer group: members, generation, chosen protocol and committed offsets.
public struct Group: Sendable, Equatable {
    public let groupId: String
    public internal(set) var state: GroupState = .empty
    public internal(set) var generationId: Int32 = 0
    public internal(set) var protocolType: String?
    public internal(set) var protocolName: String?
    public internal(set) var leaderId: String?
    /// Members by id, in join order (Kafka picks the first as leader when none is left).
    public internal(set) var members: [GroupMember] = []
    /// Dynamic members that were given an id (MEMBER_ID_REQUIRED) and must join with it.
    public internal(set) var pendingMemberIds: Set<String> = []
    /// When the join phase of the rebalance under way ends.
    public internal(set) var joinDeadlineMs: Int64?
    /// The initial-rebalance delay of an empty group: the join phase ends no earlier than this.
    public internal(set) var initialDelayUntilMs: Int64?
    public internal(set) var offsets: [TopicPartition: CommittedOffset] = [:]
    /// The log offset of the `__consumer_offsets` batch each committed offset was written in or
    /// loaded from (Kafka's appendedBatchOffset): a commit materialized later replaces the one in
    /// place only if its record comes later in the log, so plain and transactional commits end
    /// as a reload of the log would leave them.
    public internal(set) var appendedBatchOffsets: [TopicPartition: Int64] = [:]
    /// Transactional offsets written but whose transaction has not ended, by producer id (Kafka's
    /// pendingTransactionalOffsetCommits). OffsetFetch does not see them; a commit marker makes
    /// them `offsets`, an abort marker drops them.
    public internal(set) var pendingTransactionalOffsets: [Int64: [TopicPartition: PendingTransactionalOffset]] = [:]
    public internal(set) var stateTimestampMs: Int64 = -1

    public init(groupId: String) { self.groupId = groupId }

    /// Makes `offset`, written in the batch at `appendedBatchOffset`, the committed offset of `tp`,
    /// unless the one in place was written at or after that offset (Kafka's rule: a commit wins
    /// only over an older one in log order). Returns whether it did.
    @discardableResult
    mutating func materialize(_ tp: TopicPartition, _ offset: CommittedOffset, appendedBatchOffset: Int64) -> Bool {
        precondition(appendedBatchOffset >= 0, "a committed offset is materialized from a record at a log offset")
        precondition(
            (offsets[tp] == nil) == (appendedBatchOffsets[tp] == nil), "every committed offset has its batch offset")
        if let current = appendedBatchOffsets[tp], current >= appendedBatchOffset { return false }
        offsets[tp] = offset
        appendedBatchOffsets[tp] = appendedBatchOffset
        return true
    }

    /// Removes the committed offset of `tp` (pending transactional ones stay: they are the log's
    /// until their marker).
    mutating func removeOffset(_ tp: TopicPartition) {
        offsets.removeValue(forKey: tp)
        appendedBatchOffsets.removeValue(forKey: tp)
    }

    /// Whether a producer's open transaction holds an offset of `tp` for this group.
    public func hasPendingTransactionalOffset(_ tp: TopicPartition) -> Bool {
        pendingTransactionalOffsets.values.contains { $0[tp] != nil }
    }

    public func member(_ id: String) -> GroupMember? { members.first { $0.memberId == id } }
    func index(of id: String) -> Int? { members.firstIndex { $0.memberId == id } }
    public func member(instance: String) -> GroupMember? { members.first { $0.groupInstanceId == instance } }

    /// Kafka's check of a request's member: a static member's instance id must belong to that
    /// member id (else FENCED_INSTANCE_ID: another process took the identity over); the member id
    /// must be known (else UNKNOWN_MEMBER_ID). Returns the member's index.
    func validate(memberId: String, instanceId: String?) -> Result<Int, ErrorCode> {
        if let instanceId {
            guard let owner = member(instance: instanceId) else { return .failure(.unknownMemberId) }
            if owner.memberId != memberId { return .failure(.fencedInstanceId) }
        }
        guard let i = index(of: memberId) else { return .failure(.unknownMemberId) }
        return .success(i)
    }

    /// The protocols every member supports, in the order of the first member's preference.
    var commonProtocols: [String] {
        guard let first = members.first else { return [] }
        return first.protocols.map(\.name).filter { name in
            members.allSatisfy { m in m.protocols.contains { $0.name == name } }
        }
    }

    /// Kafka's protocol vote: each member votes for the first of its protocols every member
    /// supports; the most votes wins (ties go to the earliest in the first member's order).
    func selectProtocol() -> String? {
        let candidates = commonProtocols
        guard !candidates.isEmpty else { return nil }
        var votes: [String: Int] = [:]
        for m in members {
            if let choice = m.protocols.map(\.name).first(where: { candidates.contains($0) }) {
                votes[choice, default: 0] += 1
            }
        }
        return candidates.max {
            (votes[$0] ?? 0) < (votes[$1] ?? 0)
                || ((votes[$0] ?? 0) == (votes[$1] ?? 0)
                    && candidates.firstIndex(of: $0)! > candidates.firstIndex(of: $1)!)
        }
    }

    /// Whether a member offering `protocols` could join (it shares a protocol with everyone).
    func supports(protocolType: String, protocols: [String]) -> Bool {
        if members.isEmpty { return !protocols.isEmpty }
        guard self.protocolType == protocolType || self.protocolType == nil else { return false }
        return commonProtocols.contains { protocols.contains($0) }
    }

    /// The topics the members subscribe to, from their consumer-protocol metadata (for OffsetDelete).
    public var subscribedTopics: Set<String>? {
        guard protocolType == "consumer", let name = protocolName else { return nil }
        var topics = Set<String>()
        for m in members {
            guard let metadata = m.metadata(for: name), let subscription = ConsumerProtocol.topics(metadata) else {
                return nil
            }
            topics.formUnion(subscription)
        }
        return topics
    }
}

/// The consumer protocol's subscription: version, topics (Kafka's ConsumerProtocolSubscription).
public enum ConsumerProtocol {
    /// The topics of a subscription, or nil when it does not parse.
    public static func topics(_ metadata: ByteBuffer) -> [String]? {
        var b = metadata
        guard let _ = b.readInteger(as: Int16.self), let count = b.readInteger(as: Int32.self), count >= 0,
            count < 100_000
        else { return nil }
        var topics: [String] = []
        for _ in 0..<count {
            guard let length = b.readInteger(as: Int16.self), length >= 0, let name = b.readString(length: Int(length))
            else { return nil }
            topics.append(name)
        }
        return topics
    }
}
