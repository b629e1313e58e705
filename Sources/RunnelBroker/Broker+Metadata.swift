import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire

extension Broker {
    /// Internal topics that clients see flagged as internal.
    static let internalTopics: Set<String> = ["__consumer_offsets", "__transaction_state"]

    /// Brokers clients can use, on the listener the request came in on.
    func liveBrokers(_ image: MetadataImage, listener: String) -> [(id: Int32, host: String, port: Int, rack: String?)]
    {
        image.brokers.values.filter { !$0.fenced }.sorted { $0.id < $1.id }.compactMap { broker in
            guard let endpoint = broker.endpoint(listener) ?? broker.endpoints.first else { return nil }
            return (broker.id.rawValue, endpoint.host, endpoint.port, broker.rack)
        }
    }

    func metadata(_ request: MetadataRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let image = self.image
        var response = MetadataResponse()
        let brokers = liveBrokers(image, listener: context.listener)
        response.brokers = brokers.map { .init(nodeId: $0.id, host: $0.host, port: Int32($0.port), rack: $0.rack) }
        response.clusterId = settings.clusterId
        // KRaft controllers are not reachable by clients; Kafka names a live broker instead.
        response.controllerId = brokers.first?.id ?? -1
        let wantAll = request.topics == nil || (version == 0 && request.topics?.isEmpty == true)
        var toCreate: [String] = []
        // Kafka's handleTopicMetadataRequest: topics the principal may not DESCRIBE are left out
        // of an all-topics answer and answer TOPIC_AUTHORIZATION_FAILED when named; creating a
        // missing one needs CREATE on the cluster or on the topic.
        let auth = authorization(context)
        let withOperations = version >= 8 && request.includeTopicAuthorizedOperations
        func described(_ topic: TopicImage) -> MetadataResponse.MetadataResponseTopic {
            var out = topicMetadata(topic, image: image)
            if withOperations { out.topicAuthorizedOperations = auth.operationsField(.topic(topic.name)) }
            return out
        }
        let refused = ErrorCode.topicAuthorizationFailed.rawValue
        // Kafka looks topics up by id as soon as one id is set, and then ignores the names: the
        // Java client sends "" (its default), not null, as the name of a topic it asks for by id.
        var topicIds: [KafkaUUID] = [], seen: Set<KafkaUUID> = []
        for wanted in request.topics ?? [] where wanted.topicId != .zero && seen.insert(wanted.topicId).inserted {
            topicIds.append(wanted.topicId)
        }
        if !topicIds.isEmpty && version < 12 {
            // Kafka: "Topic IDs are not supported in requests for version N".
            response.topics = (request.topics ?? []).map {
                .init(errorCode: ErrorCode.invalidRequest.rawValue, name: $0.name, topicId: $0.topicId)
            }
        } else if !topicIds.isEmpty {
            for id in topicIds {
                if let topic = image.topic(id: id) {
                    response.topics.append(
                        auth.allows(.describe, .topic(topic.name))
                            ? described(topic) : .init(errorCode: refused, name: nil, topicId: id, isInternal: false))
                } else {
                    response.topics.append(.init(errorCode: ErrorCode.unknownTopicId.rawValue, name: nil, topicId: id))
                }
            }
        } else if wantAll {
            response.topics = image.topicNames.filter { auth.allows(.describe, .topic($0)) }.compactMap {
                image.topic(named: $0)
            }.map(described)
        } else {
            for wanted in request.topics ?? [] {
                if let name = wanted.name {
                    if !auth.allows(.describe, .topic(name)) {
                        response.topics.append(.init(errorCode: refused, name: name, topicId: .zero, isInternal: false))
                    } else if let topic = image.topic(named: name) {
                        response.topics.append(described(topic))
                    } else {
                        let autoCreate = settings.autoCreateTopics && (version < 4 || request.allowAutoTopicCreation)
                        if autoCreate && QuorumNames.isValidTopicName(name) && !auth.allows(.create, .cluster)
                            && !auth.allows(.create, .topic(name))
                        {
                            response.topics.append(
                                .init(errorCode: refused, name: name, topicId: .zero, isInternal: false))
                            continue
                        }
                        var missing = MetadataResponse.MetadataResponseTopic(
                            errorCode: ErrorCode.unknownTopicOrPartition.rawValue, name: name)
                        if QuorumNames.isValidTopicName(name) {
                            if autoCreate {
                                toCreate.append(name)
                                missing.errorCode = ErrorCode.leaderNotAvailable.rawValue
                            }
                        } else {
                            missing.errorCode = ErrorCode.invalidTopicException.rawValue
                        }
                        response.topics.append(missing)
                    }
                } else {
                    // Neither a name nor an id.
                    response.topics.append(
                        .init(errorCode: ErrorCode.unknownTopicId.rawValue, name: nil, topicId: wanted.topicId))
                }
            }
        }
        if !toCreate.isEmpty { autoCreate(toCreate) }
        if version >= 8 && version <= 10 && request.includeClusterAuthorizedOperations {
            response.clusterAuthorizedOperations = auth.allows(.describe, .cluster) ? auth.operationsField(.cluster) : 0
        }
        return respond(response, version: version, context: context)
    }

    package func topicMetadata(_ topic: TopicImage, image: MetadataImage) -> MetadataResponse.MetadataResponseTopic {
        var out = MetadataResponse.MetadataResponseTopic(
            errorCode: 0, name: topic.name, topicId: topic.id, isInternal: Self.internalTopics.contains(topic.name))
        // A topic's partitions are numbered 0..<count (CreatePartitions only adds at the end).
        out.partitions = (0..<Int32(topic.partitionCount)).compactMap { index in
            guard let p = partitionMetadata(topic, index, image: image) else { return nil }
            return .init(
                errorCode: p.errorCode.rawValue, partitionIndex: index, leaderId: p.leader,
                leaderEpoch: p.registration.leaderEpoch, replicaNodes: p.registration.replicas,
                isrNodes: p.registration.isr, offlineReplicas: p.offline)
        }
        return out
    }

    /// One partition as Metadata and DescribeTopicPartitions tell it to clients.
    struct ClientPartitionView {
        var registration: PartitionRegistration
        var errorCode: ErrorCode
        var leader: Int32
        var offline: [Int32]
    }

    /// What clients are told of one partition: its leader only when that broker is live (and has
    /// not stepped aside here), else LEADER_NOT_AVAILABLE and no leader; the replicas on fenced
    /// or unknown brokers as offline.
    func partitionMetadata(_ topic: TopicImage, _ index: Int32, image: MetadataImage) -> ClientPartitionView? {
        guard let p = topic.partitions[index] else { return nil }
        let offline = p.replicas.filter { id in image.brokers[NodeID(id)].map { $0.fenced } ?? true }
        // A leader that stepped aside here is no leader to send clients to.
        let leaderLive =
            p.leader >= 0 && image.brokers[NodeID(p.leader)].map { !$0.fenced } == true
            && !(p.leader == settings.nodeId && steppedAside(TopicPartition(topic.name, index)))
        return ClientPartitionView(
            registration: p, errorCode: leaderLive ? .none : .leaderNotAvailable, leader: leaderLive ? p.leader : -1,
            offline: offline)
    }

    /// DescribeTopicPartitions (KIP-966; Kafka's DescribeTopicPartitionsRequestHandler): the named
    /// topics, or every topic the principal may DESCRIBE when none is named, in name order from
    /// the request's cursor, with at most `responsePartitionLimit` partitions (capped at
    /// `max.request.partition.size.limit`, 2,000) and a cursor where the next page starts. A named
    /// topic the principal may not DESCRIBE answers TOPIC_AUTHORIZATION_FAILED (no id), an
    /// unknown one UNKNOWN_TOPIC_OR_PARTITION; no partition has eligible leader replicas (Runnel
    /// keeps no ELR, as Kafka with `eligible.leader.replicas.version` 0).
    func describeTopicPartitions(
        _ request: DescribeTopicPartitionsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        let image = self.image
        let auth = authorization(context)
        var response = DescribeTopicPartitionsResponse()
        let all = request.topics.isEmpty
        let cursor = request.cursor
        let from = cursor?.topicName ?? ""
        // The image's names are sorted already; named topics are sorted here, each once.
        let names =
            all
            ? image.topicNames.filter { $0 >= from } : Set(request.topics.map(\.name)).filter { $0 >= from }.sorted()
        if let cursor, cursor.partitionIndex < 0 || (!all && !names.contains(cursor.topicName)) {
            response.topics = request.topics.map {
                .init(errorCode: ErrorCode.invalidRequest.rawValue, name: $0.name, topicId: .zero)
            }
            return respond(response, version: version, context: context)
        }
        var refused: [DescribeTopicPartitionsResponse.DescribeTopicPartitionsResponseTopic] = []
        var remaining = max(1, min(Self.maxRequestPartitionSizeLimit, Int(request.responsePartitionLimit)))
        for name in names {
            guard auth.allows(.describe, .topic(name)) else {
                if !all {
                    refused.append(
                        .init(errorCode: ErrorCode.topicAuthorizationFailed.rawValue, name: name, topicId: .zero))
                }
                continue
            }
            guard remaining > 0 else {
                // The page is full: the next one starts at this topic.
                if response.nextCursor == nil { response.nextCursor = .init(topicName: name, partitionIndex: 0) }
                continue
            }
            let isInternal = Self.internalTopics.contains(name)
            guard let topic = image.topic(named: name) else {
                let error: ErrorCode =
                    QuorumNames.isValidTopicName(name) ? .unknownTopicOrPartition : .invalidTopicException
                response.topics.append(
                    .init(errorCode: error.rawValue, name: name, topicId: .zero, isInternal: isInternal))
                continue
            }
            // Partition ids run from 0 to the count less one: the page walks them from the
            // cursor, as Kafka's handler does, without sorting the topic's partitions.
            let start = name == cursor?.topicName ? cursor!.partitionIndex : 0
            let end = Int32(topic.partitions.count)
            let pageEnd = start + Int32(min(remaining, max(0, Int(end) - Int(start))))
            if pageEnd < end { response.nextCursor = .init(topicName: name, partitionIndex: pageEnd) }
            remaining -= Int(pageEnd - start)
            var out = DescribeTopicPartitionsResponse.DescribeTopicPartitionsResponseTopic(
                errorCode: 0, name: name, topicId: topic.id, isInternal: isInternal)
            out.partitions = (start..<max(start, pageEnd)).compactMap { index in
                guard let p = partitionMetadata(topic, index, image: image) else { return nil }
                return .init(
                    errorCode: p.errorCode.rawValue, partitionIndex: index, leaderId: p.leader,
                    leaderEpoch: p.registration.leaderEpoch, replicaNodes: p.registration.replicas,
                    isrNodes: p.registration.isr, eligibleLeaderReplicas: [], lastKnownElr: [],
                    offlineReplicas: p.offline)
            }
            out.topicAuthorizedOperations = auth.operationsField(.topic(name))
            response.topics.append(out)
        }
        response.topics += refused
        return respond(response, version: version, context: context)
    }

    /// `max.request.partition.size.limit`: the most partitions one DescribeTopicPartitions answer
    /// holds, whatever the request asks.
    static let maxRequestPartitionSizeLimit = 2000
}

/// Name rules shared by the broker (auto-creation) and tools.
public enum QuorumNames {
    static let legal = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    public static func isValidTopicName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.count <= 249 && name.allSatisfy { legal.contains($0) }
    }
}
