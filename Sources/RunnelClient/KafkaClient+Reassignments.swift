import RunnelCore
import RunnelWire

/// A partition's wanted replicas in a reassignment plan (KIP-455); nil replicas cancel its move.
public struct ReassignmentTarget: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var replicas: [Int32]?
    public init(topic: String, partition: Int32, replicas: [Int32]?) {
        self.topic = topic
        self.partition = partition
        self.replicas = replicas
    }
}

/// One partition's answer to AlterPartitionReassignments.
public struct ReassignmentResult: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var error: ErrorCode
    public var message: String?
}

/// A partition reassignment in progress, as ListPartitionReassignments reports it.
public struct OngoingReassignment: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var replicas: [Int32]
    public var adding: [Int32]
    public var removing: [Int32]
    /// The replicas the partition ends with.
    public var target: [Int32] { replicas.filter { !removing.contains($0) } }
}

extension KafkaClient {
    // MARK: partition reassignment (KIP-455)

    /// AlterPartitionReassignments: starts (or cancels, for nil replicas) the moves of `plan`;
    /// returns each partition's outcome.
    public func alterPartitionReassignments(_ plan: [ReassignmentTarget]) async throws -> [ReassignmentResult] {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        var byTopic: [String: [AlterPartitionReassignmentsRequest.ReassignablePartition]] = [:]
        for t in plan {
            byTopic[t.topic, default: []].append(.init(partitionIndex: t.partition, replicas: t.replicas))
        }
        let topics = byTopic.sorted { $0.key < $1.key }.map {
            AlterPartitionReassignmentsRequest.ReassignableTopic(name: $0.key, partitions: $0.value)
        }
        let (response, _, _) = try await sendAny { _ in
            AlterPartitionReassignmentsRequest(timeoutMs: timeoutMs, topics: topics)
        }
        if response.errorCode != 0 {
            throw ClientError(
                "cannot reassign partitions: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))")
        }
        return response.responses.flatMap { t in
            t.partitions.map {
                ReassignmentResult(
                    topic: t.name, partition: $0.partitionIndex, error: ErrorCode($0.errorCode),
                    message: $0.errorMessage)
            }
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// ListPartitionReassignments: the moves in progress, of `partitions` by topic or of all.
    public func listPartitionReassignments(
        _ partitions: [String: [Int32]]? = nil
    ) async throws
        -> [OngoingReassignment]
    {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        let topics = partitions?.sorted { $0.key < $1.key }.map {
            ListPartitionReassignmentsRequest.ListPartitionReassignmentsTopics(
                name: $0.key, partitionIndexes: $0.value.sorted())
        }
        let (response, _, _) = try await sendAny { _ in
            ListPartitionReassignmentsRequest(timeoutMs: timeoutMs, topics: topics)
        }
        if response.errorCode != 0 {
            throw ClientError(
                "cannot list partition reassignments: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))"
            )
        }
        return response.topics.flatMap { t in
            t.partitions.map {
                OngoingReassignment(
                    topic: t.name, partition: $0.partitionIndex, replicas: $0.replicas, adding: $0.addingReplicas,
                    removing: $0.removingReplicas)
            }
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }
}
