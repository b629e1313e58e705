import NIOCore
import RunnelCore
import RunnelWire

/// Producer acknowledgements (`acks`): 0 none, 1 the leader, -1 (`all`) every in-sync replica.
public struct Acks: Sendable, Equatable, CustomStringConvertible {
    public var value: Int16

    public static let none = Acks(value: 0)
    public static let leader = Acks(value: 1)
    public static let all = Acks(value: -1)

    init(value: Int16) { self.value = value }

    /// Parses `0`, `1`, `all` or `-1`.
    public init(parsing text: String) throws {
        switch text.lowercased() {
        case "0": self = .none
        case "1": self = .leader
        case "all", "-1": self = .all
        default: throw ClientError("--acks must be 0, 1 or all, not \"\(text)\"")
        }
    }

    public var description: String { value == -1 ? "all" : "\(value)" }
}

/// A record to send; `partition` nil lets the partitioner choose.
public struct ProducerRecord: Sendable, Equatable {
    public var key: ByteBuffer?
    public var value: ByteBuffer?
    public var headers: [RecordHeader]
    public var partition: Int32?
    public var timestamp: Int64

    public init(
        key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader] = [], partition: Int32? = nil, timestamp: Int64
    ) {
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp
    }
}

/// What became of one record batch sent to one partition.
public struct BatchOutcome: Sendable, Equatable {
    public var partition: Int32
    /// Indexes, into the records given to `send`, of the batch's records (in order).
    public var recordIndexes: [Int]
    /// The offset of the batch's first record; -1 with acks=0 or on failure.
    public var baseOffset: Int64
    /// nil when the batch was written.
    public var error: String?
}

/// Sends records to one topic: keyed records go where Kafka's default partitioner puts them
/// (murmur2), keyless ones round-robin, records with a partition to that partition. Records
/// become v2 batches of at most `batchBytesMax` (one per partition per request, in order), sent
/// to each partition's leader; a batch refused because leadership moved is retried at the new
/// leader after a metadata refresh, within the client's request timeout.
public actor Producer {
    public let client: KafkaClient
    public let topic: String
    public let acks: Acks
    /// The largest batch built (bytes of records); the broker's `message.max.bytes` is about 1 MB.
    public let batchBytesMax: Int
    /// How long the broker may wait for acknowledgements.
    public let ackTimeoutMs: Int32
    var nextRoundRobin: Int32?

    public init(
        client: KafkaClient, topic: String, acks: Acks = .all, batchBytesMax: Int = 512 * 1024,
        ackTimeoutMs: Int32 = 30_000
    ) {
        self.client = client
        self.topic = topic
        self.acks = acks
        self.batchBytesMax = batchBytesMax
        self.ackTimeoutMs = ackTimeoutMs
    }

    /// The partition for each record: its own, murmur2 of its key, or the next in round-robin.
    public func partitions(for records: [ProducerRecord], partitionCount: Int32) -> [Int32] {
        records.map { r in
            if let p = r.partition { return p }
            if let key = r.key {
                return Partitioner.partition(forKey: key.readableBytesView, partitions: partitionCount)
            }
            let p = (nextRoundRobin ?? Int32.random(in: 0..<partitionCount)) % partitionCount
            nextRoundRobin = (p + 1) % partitionCount
            return p
        }
    }

    /// Sends `records` and reports every batch, written or not. Throws only when the topic
    /// cannot be found at all (or a partition asked for does not exist).
    public func send(_ records: [ProducerRecord]) async throws -> [BatchOutcome] {
        guard !records.isEmpty else { return [] }
        let topicInfo = try await client.topic(topic)
        for r in records {
            if let p = r.partition, p < 0 || p >= topicInfo.partitionCount {
                throw ClientError(
                    "partition \(p) does not exist (topic \(topic) has \(topicInfo.partitionCount) partition\(topicInfo.partitionCount == 1 ? "" : "s"))"
                )
            }
        }
        let chosen = partitions(for: records, partitionCount: topicInfo.partitionCount)
        // Per partition, its records cut into batches of at most batchBytesMax.
        var queues: [Int32: [[Int]]] = [:]
        var sizes: [Int32: Int] = [:]
        for (i, r) in records.enumerated() {
            let p = chosen[i]
            let size =
                (r.key?.readableBytes ?? 0) + (r.value?.readableBytes ?? 0)
                + r.headers.reduce(0) { $0 + $1.key.utf8.count + ($1.value?.readableBytes ?? 0) } + 24
            if queues[p] == nil || sizes[p]! + size > batchBytesMax {
                queues[p, default: []].append([])
                sizes[p] = 0
            }
            queues[p]![queues[p]!.count - 1].append(i)
            sizes[p]! += size
        }
        var outcomes: [BatchOutcome] = []
        // Round k sends the k-th batch of every partition, so one partition's batches stay in order.
        while !queues.isEmpty {
            var round: [(Int32, [Int])] = []
            for p in queues.keys.sorted() {
                round.append((p, queues[p]!.removeFirst()))
                if queues[p]!.isEmpty { queues[p] = nil }
            }
            outcomes += await sendRound(round, records: records)
        }
        return outcomes
    }

    /// One batch per partition, grouped into one Produce request per leader; retried while
    /// leadership is moving.
    func sendRound(_ batches: [(Int32, [Int])], records: [ProducerRecord]) async -> [BatchOutcome] {
        var pending: [Int32: [Int]] = Dictionary(uniqueKeysWithValues: batches)
        var done: [BatchOutcome] = []
        var lastError: [Int32: String] = [:]
        let deadline = NIODeadline.now() + .milliseconds(client.requestTimeoutMs)
        var refresh = false
        var backoffMs: UInt64 = 100
        while !pending.isEmpty {
            // Leaders of what is left.
            var byLeader: [BrokerAddress: [Int32]] = [:]
            for p in pending.keys.sorted() {
                do {
                    let leader = try await client.leader(topic: topic, partition: p, refresh: refresh)
                    byLeader[leader.address, default: []].append(p)
                } catch {
                    lastError[p] = "\(error)"
                }
            }
            await withTaskGroup(of: [(Int32, Result<Int64, ProduceFailure>)].self) { tasks in
                for (address, partitions) in byLeader {
                    let payload = partitions.map { p in (p, Self.batch(pending[p]!.map { records[$0] })) }
                    tasks.addTask { await self.produce(to: address, payload) }
                }
                for await results in tasks {
                    for (p, result) in results {
                        switch result {
                        case .success(let offset):
                            done.append(
                                BatchOutcome(partition: p, recordIndexes: pending[p]!, baseOffset: offset, error: nil))
                            pending[p] = nil
                        case .failure(let failure):
                            lastError[p] = failure.reason
                            if !failure.retriable {
                                done.append(
                                    BatchOutcome(
                                        partition: p, recordIndexes: pending[p]!, baseOffset: -1, error: failure.reason)
                                )
                                pending[p] = nil
                            }
                        }
                    }
                }
            }
            // Partitions whose leader could not be found stay pending too.
            if pending.isEmpty { break }
            guard NIODeadline.now() + .milliseconds(Int64(backoffMs)) < deadline else {
                for (p, indexes) in pending {
                    done.append(
                        BatchOutcome(
                            partition: p, recordIndexes: indexes, baseOffset: -1,
                            error: lastError[p] ?? "no leader answered in time"))
                }
                break
            }
            try? await Task.sleep(nanoseconds: backoffMs * 1_000_000)
            backoffMs = min(backoffMs * 2, 1000)
            refresh = true
        }
        return done.sorted { $0.recordIndexes[0] < $1.recordIndexes[0] }
    }

    struct ProduceFailure: Error {
        var reason: String
        var retriable: Bool
    }

    static func batch(_ records: [ProducerRecord]) -> ByteBuffer {
        RecordBatches.build(
            records: records.enumerated().map { i, r in
                Record(offset: Int64(i), timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
            })
    }

    func produce(
        to address: BrokerAddress, _ payload: [(Int32, ByteBuffer)]
    ) async -> [(Int32, Result<Int64, ProduceFailure>)] {
        let topic = self.topic
        let acks = self.acks.value
        let timeoutMs = ackTimeoutMs
        let build: @Sendable (Int16) -> ProduceRequest = { _ in
            ProduceRequest(
                transactionalId: nil, acks: acks, timeoutMs: timeoutMs,
                topicData: [
                    .init(name: topic, partitionData: payload.map { .init(index: $0.0, records: Records($0.1)) })
                ])
        }
        if acks == 0 {
            do {
                try await client.sendWithoutResponse(to: address, build)
                return payload.map { ($0.0, .success(-1)) }
            } catch {
                return payload.map { ($0.0, .failure(ProduceFailure(reason: "\(error)", retriable: true))) }
            }
        }
        let response: ProduceResponse
        do {
            response = try await client.send(to: address, extraTimeoutMs: Int64(timeoutMs), build).response
        } catch {
            // The connection failed: the leader may have moved or stopped.
            return payload.map { ($0.0, .failure(ProduceFailure(reason: "\(error)", retriable: true))) }
        }
        let answers = response.responses.first { $0.name == topic }?.partitionResponses ?? []
        return payload.map { p, _ in
            guard let a = answers.first(where: { $0.index == p }) else {
                return (
                    p, .failure(ProduceFailure(reason: "the broker's answer left out partition \(p)", retriable: false))
                )
            }
            let code = ErrorCode(a.errorCode)
            if code == .none { return (p, .success(a.baseOffset)) }
            var reason = KafkaClient.reason(code, a.errorMessage)
            if reason != "\(code.name): \(code.message.dropLastPeriod)" { reason = "\(code.name): \(reason)" }
            if let first = a.recordErrors.first, let message = first.batchIndexErrorMessage {
                reason += " (record \(first.batchIndex): \(message))"
            }
            return (p, .failure(ProduceFailure(reason: reason, retriable: KafkaClient.isStaleLeadership(code))))
        }
    }
}

extension String {
    var dropLastPeriod: String { hasSuffix(".") ? String(dropLast()) : self }
}
