import NIOCore
import RunnelCore
import RunnelWire

/// What one Fetch returned for one partition.
public struct PartitionFetch: Sendable {
    public var partition: Int32
    /// Data records at or after the fetch offset, in offset order (control batches left out).
    public var records: [ConsumedRecord]
    /// Where to fetch from next: past every whole batch received (control batches included).
    public var nextOffset: Int64
    public var highWatermark: Int64
    public var error: ErrorCode
    /// Set when a batch could not be read (a codec this client lacks, a bad CRC).
    public var decodeError: String?
}

/// Special ListOffsets timestamps.
public enum OffsetSpec: Sendable, Equatable {
    case earliest, latest
    /// The first record with the largest timestamp (ListOffsets v7+, KIP-734).
    case maxTimestamp
    case timestamp(Int64)

    var wireTimestamp: Int64 {
        switch self {
        case .earliest: -2
        case .latest: -1
        case .maxTimestamp: -3
        case .timestamp(let t): t
        }
    }
}

/// One partition's ListOffsets answer.
public struct ListedOffset: Sendable, Equatable {
    /// The offset found, or -1 when there is none (a timestamp after every record, an empty log
    /// asked for its max timestamp).
    public var offset: Int64
    /// The record's timestamp for a timestamp or max-timestamp lookup, else -1.
    public var timestamp: Int64
    /// The leader epoch the offset falls in, or -1 when unknown.
    public var leaderEpoch: Int32
}

/// Which records a consumer reads (Kafka's `isolation.level`).
public enum IsolationLevel: Int8, Sendable, Equatable {
    /// Every record up to the high watermark, those of open and aborted transactions included.
    case readUncommitted = 0
    /// Records up to the last stable offset, without those of aborted transactions.
    case readCommitted = 1
}

extension KafkaClient {
    /// ListOffsets at each partition's leader; retried after a metadata refresh while
    /// leadership is moving. With read_committed, latest is the last stable offset.
    public func listOffsets(
        topic: String, partitions: [Int32], spec: OffsetSpec, isolation: IsolationLevel = .readUncommitted
    ) async throws -> [Int32: Int64] {
        try await listOffsetAnswers(topic: topic, partitions: partitions, spec: spec, isolation: isolation)
            .mapValues(\.offset)
    }

    /// ListOffsets as `listOffsets` does, keeping each answer's timestamp and leader epoch.
    public func listOffsetAnswers(
        topic: String, partitions: [Int32], spec: OffsetSpec, isolation: IsolationLevel = .readUncommitted
    ) async throws -> [Int32: ListedOffset] {
        var result: [Int32: ListedOffset] = [:]
        var pending = Set(partitions)
        var refresh = false
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        var lastProblem = ""
        while !pending.isEmpty {
            var byLeader: [BrokerAddress: [Int32]] = [:]
            for p in pending.sorted() {
                byLeader[try await leader(topic: topic, partition: p, refresh: refresh).address, default: []].append(p)
            }
            for (address, list) in byLeader {
                let response: ListOffsetsResponse
                do {
                    response = try await send(to: address) { _ in
                        var r = ListOffsetsRequest()
                        r.replicaId = -1
                        r.isolationLevel = isolation.rawValue
                        r.topics = [
                            .init(
                                name: topic,
                                partitions: list.map {
                                    .init(partitionIndex: $0, currentLeaderEpoch: -1, timestamp: spec.wireTimestamp)
                                })
                        ]
                        return r
                    }.response
                } catch {
                    lastProblem = "\(error)"
                    continue
                }
                for a in response.topics.first(where: { $0.name == topic })?.partitions ?? []
                where pending.contains(a.partitionIndex) {
                    let code = ErrorCode(a.errorCode)
                    if code == .none {
                        result[a.partitionIndex] = ListedOffset(
                            offset: a.offset, timestamp: a.timestamp, leaderEpoch: a.leaderEpoch)
                        pending.remove(a.partitionIndex)
                    } else if !Self.isStaleLeadership(code) && code != .offsetNotAvailable {
                        throw ClientError(
                            "cannot list the offsets of partition \(a.partitionIndex) of topic \(topic): \(code.name)")
                    } else {
                        lastProblem = code.name
                    }
                }
            }
            if pending.isEmpty { break }
            guard NIODeadline.now() < deadline else {
                throw ClientError(
                    "cannot list the offsets of topic \(topic) partition \(pending.sorted().map(String.init).joined(separator: ",")) (\(lastProblem))"
                )
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            refresh = true
        }
        return result
    }

    /// One Fetch per leader (in parallel) for the partitions at the given offsets. Partitions
    /// whose leader cannot be found or whose leader moved come back with the error (and the
    /// next call asks for fresh metadata); the caller decides what to do with
    /// OFFSET_OUT_OF_RANGE. With read_committed, leaders answer up to the last stable offset and
    /// the records of aborted transactions are left out.
    public func fetch(
        topic: String, offsets: [Int32: Int64], maxWaitMs: Int32 = 500, partitionMaxBytes: Int32 = 4 << 20,
        isolation: IsolationLevel = .readUncommitted
    ) async throws -> [PartitionFetch] {
        let info = try await self.topic(topic, refresh: needsRefresh)
        needsRefresh = false
        var byLeader: [BrokerAddress: [Int32]] = [:]
        var out: [PartitionFetch] = []
        for p in offsets.keys.sorted() {
            guard p < info.partitionCount else {
                throw ClientError(
                    "partition \(p) does not exist (topic \(topic) has \(info.partitionCount) partitions)")
            }
            let leaderId = info.partitions[Int(p)].leader
            if leaderId >= 0, let broker = metadata.brokers[leaderId] {
                byLeader[broker.address, default: []].append(p)
            } else {
                out.append(
                    PartitionFetch(
                        partition: p, records: [], nextOffset: offsets[p]!, highWatermark: -1,
                        error: .leaderNotAvailable))
                needsRefresh = true
            }
        }
        let topicId = info.topicId
        let epochs = Dictionary(uniqueKeysWithValues: info.partitions.map { ($0.partition, $0.leaderEpoch) })
        let results = await withTaskGroup(of: [PartitionFetch].self) { tasks in
            for (address, partitions) in byLeader {
                tasks.addTask {
                    await self.fetchFrom(
                        address, topic: topic, topicId: topicId,
                        partitions: partitions.map { ($0, offsets[$0]!, epochs[$0] ?? -1) },
                        maxWaitMs: maxWaitMs, partitionMaxBytes: partitionMaxBytes, isolation: isolation)
                }
            }
            var all: [PartitionFetch] = []
            for await r in tasks { all += r }
            return all
        }
        for r in results where r.error != .none && Self.isStaleLeadership(r.error) { needsRefresh = true }
        return (out + results).sorted { $0.partition < $1.partition }
    }

    func fetchFrom(
        _ address: BrokerAddress, topic: String, topicId: KafkaUUID, partitions: [(Int32, Int64, Int32)],
        maxWaitMs: Int32, partitionMaxBytes: Int32, isolation: IsolationLevel
    ) async -> [PartitionFetch] {
        func failed(_ code: ErrorCode, _ reason: String? = nil) -> [PartitionFetch] {
            partitions.map {
                PartitionFetch(
                    partition: $0.0, records: [], nextOffset: $0.1, highWatermark: -1, error: code, decodeError: reason)
            }
        }
        let response: FetchResponse
        let version: Int16
        do {
            // Fetch v13+ names topics by id; without one (an old Metadata answer) stay at v12.
            (response, version) = try await send(
                to: address, lane: .fetch, extraTimeoutMs: Int64(maxWaitMs), maxVersion: topicId == .zero ? 12 : nil
            ) { v in
                var r = FetchRequest()
                r.replicaId = -1
                r.maxWaitMs = maxWaitMs
                r.minBytes = 1
                r.maxBytes = 64 << 20
                r.isolationLevel = isolation.rawValue
                r.sessionId = 0
                r.sessionEpoch = -1
                r.topics = [
                    .init(
                        topic: topic, topicId: topicId,
                        partitions: partitions.map {
                            .init(
                                partition: $0.0, currentLeaderEpoch: v >= 9 ? $0.2 : -1, fetchOffset: $0.1,
                                logStartOffset: -1, partitionMaxBytes: partitionMaxBytes)
                        })
                ]
                return r
            }
        } catch {
            needsRefresh = true
            return failed(.networkException, "\(error)")
        }
        if response.errorCode != 0 { return failed(ErrorCode(response.errorCode)) }
        let topicAnswer = response.responses.first(where: { version >= 13 ? $0.topicId == topicId : $0.topic == topic })
        let answers: [FetchResponse.PartitionData] = topicAnswer?.partitions ?? []
        return partitions.map { p, offset, _ in
            guard let a = answers.first(where: { $0.partitionIndex == p }) else {
                return PartitionFetch(partition: p, records: [], nextOffset: offset, highWatermark: -1, error: .none)
            }
            var result = PartitionFetch(
                partition: p, records: [], nextOffset: offset, highWatermark: a.highWatermark,
                error: ErrorCode(a.errorCode))
            guard result.error == .none, let bytes = a.records?.bytes, bytes.readableBytes > 0 else { return result }
            var (batches, failure) = FetchedRecords.decode(bytes)
            if isolation == .readCommitted {
                batches = FetchedRecords.withoutAborted(
                    batches, in: bytes, aborted: (a.abortedTransactions ?? []).map { ($0.producerId, $0.firstOffset) })
            }
            for batch in batches {
                // A compressed batch may start before the offset asked for.
                let type = batch.header.isLogAppendTime ? "LogAppendTime" : "CreateTime"
                result.records += batch.records.filter { $0.offset >= offset }.map {
                    ConsumedRecord(topic: topic, partition: p, record: $0, timestampType: type)
                }
                result.nextOffset = max(result.nextOffset, batch.header.nextOffset)
            }
            result.decodeError = failure?.description
            return result
        }
    }
}
