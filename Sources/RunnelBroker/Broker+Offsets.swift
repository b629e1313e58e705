import NIOCore
import RunnelCore
import RunnelLog
import RunnelSecurity
import RunnelWire

extension Broker {
    /// ListOffsets special timestamps.
    enum OffsetSpec {
        static let latest: Int64 = -1
        static let earliest: Int64 = -2
        static let maxTimestamp: Int64 = -3
        static let earliestLocal: Int64 = -4
        static let latestTiered: Int64 = -5
    }

    func listOffsets(_ request: ListOffsetsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        var response = ListOffsetsResponse()
        let isFollower = request.replicaId >= 0
        // Kafka's handleListOffsetRequest: DESCRIBE on each topic.
        let describable = authorization(context).allowedTopics(.describe, request.topics.map(\.name))
        for topic in request.topics {
            var topicResponse = ListOffsetsResponse.ListOffsetsTopicResponse(name: topic.name)
            for p in topic.partitions {
                var out = ListOffsetsResponse.ListOffsetsPartitionResponse(
                    partitionIndex: p.partitionIndex, errorCode: 0)
                defer { topicResponse.partitions.append(out) }
                guard describable.contains(topic.name) else {
                    out.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    continue
                }
                let tp = TopicPartition(topic.name, p.partitionIndex)
                guard let partition = partition(tp) else {
                    out.errorCode =
                        (image.partition(tp) == nil ? ErrorCode.unknownTopicOrPartition : .notLeaderOrFollower).rawValue
                    continue
                }
                guard partition.isLeader || isFollower else {
                    out.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                    continue
                }
                if let epochError = partition.checkLeaderEpoch(p.currentLeaderEpoch) {
                    out.errorCode = epochError.rawValue
                    continue
                }
                let log = partition.log
                // read_committed (v2+): nothing at or past the last stable offset is offered.
                let hw = request.isolationLevel == 1 ? partition.lastStableOffset : partition.highWatermark
                let epoch = partition.leaderEpoch
                // KIP-207: a consumer asking a new leader whose high watermark has not reached
                // its epoch's start gets OFFSET_NOT_AVAILABLE (retriable) rather than an end
                // offset below what the previous leader had committed.
                let lagging = !isFollower && version >= 1 && partition.highWatermarkLagsEpochStart
                // The leader epoch answered (v4+) is Kafka's: the latest epoch for the end, the
                // epoch whose range holds the offset found otherwise (its batch's, for the max).
                var found: (offset: Int64, timestamp: Int64, leaderEpoch: Int32?)?
                switch p.timestamp {
                case OffsetSpec.latest, OffsetSpec.latestTiered:
                    if lagging {
                        out.errorCode = ErrorCode.offsetNotAvailable.rawValue
                        continue
                    }
                    found = (isFollower ? log.logEndOffset : hw, -1, epoch)
                case OffsetSpec.earliest, OffsetSpec.earliestLocal:
                    found = (log.logStartOffset, -1, log.leaderEpoch(forOffset: log.logStartOffset))
                default:
                    if p.timestamp < 0 && p.timestamp != OffsetSpec.maxTimestamp {
                        out.errorCode = ErrorCode.invalidRequest.rawValue
                        continue
                    }
                    do {
                        let hit =
                            p.timestamp == OffsetSpec.maxTimestamp
                            ? try log.maxTimestampAndOffset() : try log.offset(forTimestamp: p.timestamp)
                        if let hit, hit.offset < hw { found = hit }
                    } catch {
                        out.errorCode = ErrorCode.kafkaStorageError.rawValue
                        continue
                    }
                }
                if found == nil && lagging && p.timestamp != OffsetSpec.earliest
                    && p.timestamp != OffsetSpec.earliestLocal
                {
                    // Nothing below the high watermark, which may yet move past it.
                    out.errorCode = ErrorCode.offsetNotAvailable.rawValue
                    continue
                }
                if version == 0 {
                    out.oldStyleOffsets = found.map { [$0.offset] } ?? []
                } else {
                    out.offset = found?.offset ?? -1
                    out.timestamp = found?.timestamp ?? -1
                    if version >= 4 { out.leaderEpoch = found?.leaderEpoch ?? -1 }
                }
            }
            response.topics.append(topicResponse)
        }
        return respond(response, version: version, context: context)
    }

    func deleteRecords(_ request: DeleteRecordsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        var response = DeleteRecordsResponse()
        // Kafka's handleDeleteRecordsRequest: DELETE on each topic.
        let deletable = authorization(context).allowedTopics(.delete, request.topics.map(\.name))
        for topic in request.topics {
            var result = DeleteRecordsResponse.DeleteRecordsTopicResult(name: topic.name)
            for p in topic.partitions {
                var out = DeleteRecordsResponse.DeleteRecordsPartitionResult(
                    partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode: 0)
                let tp = TopicPartition(topic.name, p.partitionIndex)
                if !deletable.contains(topic.name) {
                    out.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                } else if let partition = partition(tp) {
                    do {
                        switch try partition.deleteRecords(before: p.offset) {
                        case .success(let low): out.lowWatermark = low
                        case .failure(let code): out.errorCode = code.rawValue
                        }
                    } catch {
                        out.errorCode = ErrorCode.kafkaStorageError.rawValue
                    }
                } else {
                    out.errorCode =
                        (image.partition(tp) == nil ? ErrorCode.unknownTopicOrPartition : .notLeaderOrFollower).rawValue
                }
                result.partitions.append(out)
            }
            response.topics.append(result)
        }
        return respond(response, version: version, context: context)
    }
}

extension Broker {
    /// OffsetForLeaderEpoch (KIP-101/320): where a leader epoch ends in the leader's log, so a
    /// consumer or replica whose position came from an older leader can detect truncation.
    func offsetForLeaderEpoch(
        _ request: OffsetForLeaderEpochRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        var response = OffsetForLeaderEpochResponse()
        // Kafka's handleOffsetForLeaderEpochRequest: a replica (replica id >= 0) needs
        // CLUSTER_ACTION on the cluster, a consumer DESCRIBE on each topic.
        let auth = authorization(context)
        let isReplica = version >= 3 && request.replicaId >= 0
        let clusterAction = isReplica && auth.allows(.clusterAction, .cluster)
        let describable = isReplica ? [] : auth.allowedTopics(.describe, request.topics.map(\.topic))
        for topic in request.topics {
            var result = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topic.topic)
            for p in topic.partitions {
                var out = OffsetForLeaderEpochResponse.EpochEndOffset()
                out.partition = p.partition
                defer { result.partitions.append(out) }
                guard isReplica ? clusterAction : describable.contains(topic.topic) else {
                    out.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    continue
                }
                let tp = TopicPartition(topic.topic, p.partition)
                guard let partition = partition(tp) else {
                    out.errorCode =
                        (image.partition(tp) == nil ? ErrorCode.unknownTopicOrPartition : .notLeaderOrFollower).rawValue
                    continue
                }
                guard partition.isLeader else {
                    out.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                    continue
                }
                if let epochError = partition.checkLeaderEpoch(p.currentLeaderEpoch) {
                    out.errorCode = epochError.rawValue
                    continue
                }
                let (epoch, endOffset) = partition.log.endOffset(forEpoch: p.leaderEpoch)
                out.leaderEpoch = epoch
                out.endOffset = endOffset
            }
            response.topics.append(result)
        }
        return respond(response, version: version, context: context)
    }
}
