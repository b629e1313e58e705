import NIOCore
import RunnelCore
import RunnelWire

/// One log directory of a broker, as DescribeLogDirs reports it (Kafka's `LogDirDescription`).
public struct LogDirInfo: Sendable, Equatable {
    /// The directory's absolute path on the broker.
    public var path: String
    /// NONE, or why the directory could not be described (KAFKA_STORAGE_ERROR for an offline dir).
    public var error: ErrorCode
    /// Size and usable space of the directory's file system in bytes (v4), nil when unknown.
    public var totalBytes: Int64?
    public var usableBytes: Int64?
    /// The replicas in the directory, by topic name and partition index.
    public var replicas: [ReplicaLogDirInfo]

    public init(
        path: String, error: ErrorCode, totalBytes: Int64?, usableBytes: Int64?, replicas: [ReplicaLogDirInfo]
    ) {
        self.path = path
        self.error = error
        self.totalBytes = totalBytes
        self.usableBytes = usableBytes
        self.replicas = replicas
    }
}

/// One replica in a log directory (Kafka's `ReplicaInfo`).
public struct ReplicaLogDirInfo: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// The bytes of its log's segment files.
    public var sizeBytes: Int64
    /// How far its log end is behind the partition's high watermark (-1 when unknown).
    public var offsetLag: Int64
    /// Whether it is a future replica moving into this directory.
    public var isFuture: Bool

    public init(topic: String, partition: Int32, sizeBytes: Int64, offsetLag: Int64, isFuture: Bool) {
        self.topic = topic
        self.partition = partition
        self.sizeBytes = sizeBytes
        self.offsetLag = offsetLag
        self.isFuture = isFuture
    }
}

extension KafkaClient {
    /// DescribeLogDirs sent to `broker` itself (each broker answers for its own dirs): every
    /// replica of every dir, or only the partitions of `partitions` when given. Throws one
    /// sentence when the broker refuses the request as a whole (no DESCRIBE on the cluster).
    public func describeLogDirs(broker: BrokerInfo, partitions: [String: [Int32]]? = nil) async throws -> [LogDirInfo] {
        let (response, version) = try await send(to: broker.address) { _ in
            DescribeLogDirsRequest(
                topics: partitions.map { asked in
                    asked.keys.sorted().map { .init(topic: $0, partitions: asked[$0]!) }
                })
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "broker \(broker.id) refused DescribeLogDirs: \(Self.reason(ErrorCode(response.errorCode), nil))")
        }
        return response.results.map { result in
            LogDirInfo(
                path: result.logDir, error: ErrorCode(result.errorCode),
                totalBytes: version >= 4 && result.totalBytes >= 0 ? result.totalBytes : nil,
                usableBytes: version >= 4 && result.usableBytes >= 0 ? result.usableBytes : nil,
                replicas: result.topics.flatMap { topic in
                    topic.partitions.map {
                        ReplicaLogDirInfo(
                            topic: topic.name, partition: $0.partitionIndex, sizeBytes: $0.partitionSize,
                            offsetLag: $0.offsetLag, isFuture: $0.isFutureKey)
                    }
                }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) })
        }
    }
}
