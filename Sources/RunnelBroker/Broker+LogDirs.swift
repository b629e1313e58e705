import NIOCore
import RunnelCore
import RunnelLog
import RunnelSecurity
import RunnelWire

/// DescribeLogDirs (KIP-113; v4 adds each directory's space, KIP-827): every broker answers for
/// its own `log.dirs`, as Kafka's `ReplicaManager.describeLogDirs` does. Runnel has no future
/// replicas (no moves between log dirs), so every replica is a current one.
extension Broker {
    /// One log dir as the broker sees it when asked: the file system's space (nil when it could
    /// not be read, or the disk cannot tell) and the partition logs it holds.
    struct LogDirState: Sendable {
        var path: String
        /// Nil with `spaceUnreadable`: the directory cannot be read (KAFKA_STORAGE_ERROR).
        var space: DiskSpace?
        var spaceUnreadable = false
        var replicas: [ReplicaState] = []
    }

    /// One partition log in a log dir: its size (the sum of its segment files) and its end, with
    /// the partition's high watermark when this broker hosts the replica (nil for a log no
    /// partition owns, which Kafka reports with offset lag -1).
    struct ReplicaState: Sendable {
        var topicPartition: TopicPartition
        var sizeBytes: Int64
        var logEndOffset: Int64
        var highWatermark: Int64?
    }

    /// DescribeLogDirs: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED for the whole
    /// response and no directories (Kafka's handleDescribeLogDirsRequest; before v3 the error
    /// code is not on the wire and the client sees an empty answer).
    func describeLogDirs(
        _ request: DescribeLogDirsRequest, version: Int16, context: RequestContext
    )
        -> RequestOutcome
    {
        guard authorization(context).allows(.describe, .cluster) else {
            return respond(
                DescribeLogDirsResponse(errorCode: ErrorCode.clusterAuthorizationFailed.rawValue), version: version,
                context: context)
        }
        let requested: Set<TopicPartition>? = request.topics.map { topics in
            Set(topics.flatMap { topic in topic.partitions.map { TopicPartition(topic.topic, $0) } })
        }
        let response = DescribeLogDirsResponse(
            results: Self.describeLogDirs(logDirStates(), requested: requested))
        return respond(response, version: version, context: context)
    }

    /// What every log dir holds now. Sizes and offsets come from the open logs; only the space
    /// asks the file system (one statvfs per dir).
    func logDirStates() -> [LogDirState] {
        var byDir: [String: [ReplicaState]] = [:]
        for (log, dir) in logManager.logsWithDirs {
            let tp = log.topicPartition
            byDir[dir, default: []].append(
                ReplicaState(
                    topicPartition: tp, sizeBytes: log.sizeInBytes, logEndOffset: log.logEndOffset,
                    highWatermark: partition(tp)?.highWatermark))
        }
        return logManager.logDirs.map { dir in
            var state = LogDirState(path: dir, replicas: byDir[dir] ?? [])
            do {
                state.space = try logManager.space(ofLogDir: dir)
            } catch {
                logger.warning("cannot read the space of log dir \(dir): \(error)")
                state.spaceUnreadable = true
            }
            return state
        }
    }

    /// The results of DescribeLogDirs for `dirs`: each dir with its space (-1 when unknown), and
    /// the partitions of `requested` (nil: all) it holds, by topic, in name and index order; a
    /// dir whose space cannot be read answers KAFKA_STORAGE_ERROR and nothing else, as Kafka
    /// answers for an offline dir. Unlike Kafka, a topic with none of its partitions asked for is
    /// left out rather than sent with an empty list (no client reads those; it keeps the answer
    /// for one partition small on a broker with many topics).
    static func describeLogDirs(
        _ dirs: [LogDirState], requested: Set<TopicPartition>?
    ) -> [DescribeLogDirsResponse.DescribeLogDirsResult] {
        dirs.map { dir in
            if dir.spaceUnreadable {
                return .init(errorCode: ErrorCode.kafkaStorageError.rawValue, logDir: dir.path)
            }
            let wanted = dir.replicas.filter { requested?.contains($0.topicPartition) ?? true }
            let byTopic = Dictionary(grouping: wanted, by: \.topicPartition.topic)
            let topics = byTopic.keys.sorted().map { name in
                DescribeLogDirsResponse.DescribeLogDirsTopic(
                    name: name,
                    partitions: byTopic[name]!.sorted { $0.topicPartition.partition < $1.topicPartition.partition }
                        .map { replica in
                            .init(
                                partitionIndex: replica.topicPartition.partition, partitionSize: replica.sizeBytes,
                                offsetLag: offsetLag(replica), isFutureKey: false)
                        })
            }
            return .init(
                errorCode: 0, logDir: dir.path, topics: topics, totalBytes: dir.space?.totalBytes ?? -1,
                usableBytes: dir.space?.usableBytes ?? -1)
        }
    }

    /// Kafka's `getLogEndOffsetLag` for a current replica: how far the log's end is behind the
    /// partition's high watermark, never negative (a leader's end is at or past it, so 0; a
    /// follower's can be behind it), or -1 when no hosted partition owns the log.
    static func offsetLag(_ replica: ReplicaState) -> Int64 {
        guard let highWatermark = replica.highWatermark else { return -1 }
        return max(highWatermark - replica.logEndOffset, 0)
    }
}
