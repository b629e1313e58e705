import NIOCore
import RunnelCore
import RunnelWire

/// A record as a consumer hands it out.
public struct ConsumedRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var record: Record
    /// "CreateTime" or "LogAppendTime".
    public var timestampType: String
}

/// Where a consumer starts on a partition with no committed offset.
public enum StartPosition: Sendable, Equatable {
    case earliest, latest
    case offset(Int64)
}

/// Reads one topic: the partitions given (or all of them) from a start position, or, with a
/// group, the partitions the group assigns, each from the group's committed offset (the start
/// position when there is none). `poll` fetches from every leader at once; `commit` stores the
/// offsets marked consumed; `close` commits and leaves the group.
public actor Consumer {
    public let client: KafkaClient
    public let topic: String
    public let member: GroupMember?
    let requestedPartitions: [Int32]?
    let start: StartPosition
    /// Where a partition restarts when its offset is out of range (auto.offset.reset).
    let reset: OffsetSpec
    /// Next offset to fetch, per assigned partition.
    public private(set) var positions: [Int32: Int64] = [:]
    /// Next offset after the last record handed out and marked consumed.
    var consumed: [Int32: Int64] = [:]
    var committed: [Int32: Int64] = [:]
    var started = false
    /// A failure found after records were returned, thrown on the next poll.
    var pendingFailure: ClientError?
    /// read_committed reads up to the last stable offset, without aborted transactions' records.
    public let isolation: IsolationLevel

    public init(
        client: KafkaClient, topic: String, partitions: [Int32]? = nil, start: StartPosition, group: String? = nil,
        isolation: IsolationLevel = .readUncommitted
    ) {
        self.client = client
        self.topic = topic
        self.requestedPartitions = partitions
        self.isolation = isolation
        self.start = start
        self.reset = start == .earliest ? .earliest : .latest
        self.member = group.map { GroupMember(client: client, groupId: $0, topics: [topic]) }
    }

    /// Whether the consumer knows its partitions: it started them, or, in a group, it joined
    /// (possibly with none assigned).
    public var isStarted: Bool { started }

    /// Joins or rejoins the group when needed, then fetches once (waiting up to `maxWaitMs`).
    public func poll(maxWaitMs: Int32 = 500) async throws -> [ConsumedRecord] {
        if let failure = pendingFailure { throw failure }
        try await prepare()
        guard !positions.isEmpty else {
            try await Task.sleep(nanoseconds: UInt64(maxWaitMs) * 1_000_000)
            return []
        }
        let results = try await client.fetch(
            topic: topic, offsets: positions, maxWaitMs: maxWaitMs, isolation: isolation)
        var out: [ConsumedRecord] = []
        var retryLater = false
        var outOfRange: [Int32] = []
        for r in results where positions[r.partition] != nil {
            switch r.error {
            case .none:
                out += r.records
                positions[r.partition] = r.nextOffset
                if let reason = r.decodeError {
                    pendingFailure = ClientError("cannot read partition \(r.partition) of topic \(topic): \(reason)")
                }
            case .offsetOutOfRange:
                outOfRange.append(r.partition)
            case let code
            where KafkaClient.isStaleLeadership(code) || code == .networkException || code == .requestTimedOut:
                retryLater = true
            case let code:
                throw ClientError("cannot fetch partition \(r.partition) of topic \(topic): \(code.name)")
            }
        }
        if !outOfRange.isEmpty {
            for (p, o) in try await client.listOffsets(
                topic: topic, partitions: outOfRange, spec: reset, isolation: isolation)
            {
                positions[p] = o
            }
        }
        if out.isEmpty && retryLater { try await Task.sleep(nanoseconds: 200_000_000) }
        if out.isEmpty, let failure = pendingFailure { throw failure }
        return out
    }

    /// Joins (again) when the group asks for it, committing what was consumed with the old
    /// generation first; a new assignment restarts each partition from its committed offset.
    func prepare() async throws {
        if let member {
            if await member.needsRejoin { await commitConsumed() }
            if try await member.ensureActive() || !started {
                started = true
                positions = try await startPositions(await member.assignment[topic] ?? [], group: member.groupId)
                consumed = [:]
                committed = positions
            }
            return
        }
        guard !started else { return }
        let info = try await client.topic(topic)
        let partitions = requestedPartitions ?? info.partitions.map(\.partition)
        for p in partitions where p < 0 || p >= info.partitionCount {
            throw ClientError(
                "partition \(p) does not exist (topic \(topic) has \(info.partitionCount) partition\(info.partitionCount == 1 ? "" : "s"))"
            )
        }
        positions = try await startPositions(partitions, group: nil)
        started = true
    }

    /// Committed offsets for a group member, else the start position.
    func startPositions(_ partitions: [Int32], group: String?) async throws -> [Int32: Int64] {
        guard !partitions.isEmpty else { return [:] }
        var out: [Int32: Int64] = [:]
        if let group {
            out = try await client.committedOffsets(group: group, partitions: [topic: partitions])[topic] ?? [:]
        }
        let missing = partitions.filter { out[$0] == nil }
        switch start {
        case .offset(let o):
            for p in missing { out[p] = o }
        case .earliest, .latest:
            if !missing.isEmpty {
                for (p, o) in try await client.listOffsets(
                    topic: topic, partitions: missing, spec: start == .earliest ? .earliest : .latest,
                    isolation: isolation)
                { out[p] = o }
            }
        }
        return out
    }

    /// Marks everything up to `offset` (exclusive) of `partition` as consumed.
    public func markConsumed(partition: Int32, nextOffset: Int64) {
        consumed[partition] = max(consumed[partition] ?? 0, nextOffset)
    }

    /// Marks every partition consumed up to its fetch position (all polled records were used).
    public func markAllConsumed() {
        for (p, o) in positions { consumed[p] = o }
    }

    /// Commits the consumed offsets that moved (group consumers only); failures that end the
    /// generation make the next poll rejoin.
    public func commit() async throws {
        guard let member else { return }
        let changed = consumed.filter { committed[$0.key] != $0.value }
        guard !changed.isEmpty else { return }
        let failed = try await member.commit([topic: changed])
        for (p, o) in changed where !failed.contains(where: { $0.partition == p }) { committed[p] = o }
        if let f = failed.first,
            ![.rebalanceInProgress, .illegalGeneration, .unknownMemberId, .fencedInstanceId].contains(f.error)
        {
            throw ClientError(
                "cannot commit the offset of partition \(f.partition) of topic \(topic) for group \(member.groupId): \(f.error.name)"
            )
        }
    }

    func commitConsumed() async {
        try? await commit()
    }

    /// Commits what was consumed and leaves the group.
    public func close() async throws {
        guard let member else { return }
        defer { consumed = [:] }
        var failure: (any Error)?
        do { try await commit() } catch { failure = error }
        await member.leave()
        if let failure { throw failure }
    }
}
