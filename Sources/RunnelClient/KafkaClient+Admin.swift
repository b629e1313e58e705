import NIOCore
import RunnelCore
import RunnelWire

/// A config entry as DescribeConfigs reports it.
public struct ConfigEntry: Sendable, Equatable, Codable {
    public var name: String
    public var value: String?
    /// Kafka's config source: DYNAMIC_TOPIC_CONFIG, DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
    /// STATIC_BROKER_CONFIG, DEFAULT_CONFIG, DYNAMIC_BROKER_LOGGER_CONFIG or UNKNOWN.
    public var source: String
    public var readOnly: Bool
    public var sensitive: Bool
    /// Every place a value was found, highest priority first (asked for with `includeSynonyms`).
    public var synonyms: [ConfigSynonym] = []
    /// Whether the value is the built-in default (nothing set it anywhere).
    public var isDefault: Bool { source == "DEFAULT_CONFIG" }

    static func sourceName(_ code: Int8) -> String {
        switch code {
        case 1: "DYNAMIC_TOPIC_CONFIG"
        case 2: "DYNAMIC_BROKER_CONFIG"
        case 3: "DYNAMIC_DEFAULT_BROKER_CONFIG"
        case 4: "STATIC_BROKER_CONFIG"
        case 5: "DEFAULT_CONFIG"
        case 6: "DYNAMIC_BROKER_LOGGER_CONFIG"
        default: "UNKNOWN"
        }
    }
}

/// One place a config's value was found: the config (or a broker config standing for it), its
/// value and its source, as Kafka's DescribeConfigs synonyms.
public struct ConfigSynonym: Sendable, Equatable, Codable {
    public var name: String
    public var value: String?
    public var source: String
}

/// The resource a config belongs to, as DescribeConfigs and IncrementalAlterConfigs name it.
public enum ConfigResourceName: Sendable, Equatable, CustomStringConvertible {
    case topic(String)
    case broker(Int32)
    /// The cluster-wide default of every broker (the empty broker name).
    case brokerDefaults

    var type: Int8 { if case .topic = self { 2 } else { 4 } }
    var name: String {
        switch self {
        case .topic(let t): t
        case .broker(let id): String(id)
        case .brokerDefaults: ""
        }
    }
    public var description: String {
        switch self {
        case .topic(let t): "topic \(t)"
        case .broker(let id): "broker \(id)"
        case .brokerDefaults: "the brokers' defaults"
        }
    }
}

/// One partition's outcome of ElectLeaders.
public struct ElectionResult: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// NONE when a new leader was elected, ELECTION_NOT_NEEDED when a valid one already leads.
    public var error: ErrorCode
    public var message: String?
}

/// What CreateTopics reported for a new topic.
public struct CreatedTopic: Sendable, Equatable {
    public var name: String
    public var topicId: KafkaUUID
    public var partitions: Int32
    public var replicationFactor: Int16
}

/// The cluster as DescribeCluster (or Metadata) reports it.
public struct ClusterDescription: Sendable, Equatable {
    public var clusterId: String?
    public var controllerId: Int32
    public var brokers: [BrokerInfo]
}

extension KafkaClient {
    /// Why an admin request failed: the broker's message when it sent one, else the code's.
    nonisolated static func reason(_ code: ErrorCode, _ message: String?) -> String {
        if let message, !message.isEmpty { return message.hasSuffix(".") ? String(message.dropLast()) : message }
        return "\(code.name): \(code.message.hasSuffix(".") ? String(code.message.dropLast()) : code.message)"
    }

    // MARK: topics

    /// CreateTopics; with `waitForLeaders`, returns once Metadata shows every partition with a leader.
    public func createTopic(
        name: String, partitions: Int32, replicationFactor: Int16, configs: [(String, String)],
        waitForLeaders: Bool = true
    ) async throws -> CreatedTopic {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        let (response, _, _) = try await sendAny { _ in
            var r = CreateTopicsRequest()
            r.topics = [
                .init(
                    name: name, numPartitions: partitions, replicationFactor: replicationFactor,
                    configs: configs.map { .init(name: $0.0, value: $0.1) })
            ]
            r.timeoutMs = timeoutMs
            return r
        }
        guard let result = response.topics.first(where: { $0.name == name }) else {
            throw ClientError("the broker's CreateTopics answer left out topic \(name)")
        }
        switch ErrorCode(result.errorCode) {
        case .none: break
        case .topicAlreadyExists: throw ClientError("topic \(name) already exists")
        case let code: throw ClientError("cannot create topic \(name): \(Self.reason(code, result.errorMessage))")
        }
        var created = CreatedTopic(
            name: name, topicId: result.topicId,
            partitions: result.numPartitions > 0 ? result.numPartitions : partitions,
            replicationFactor: result.replicationFactor > 0 ? result.replicationFactor : replicationFactor)
        if waitForLeaders {
            let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
            while true {
                if let t = try? await topic(name, refresh: true), t.partitionCount == created.partitions,
                    t.partitions.allSatisfy({ $0.leader >= 0 })
                {
                    if created.topicId == .zero { created.topicId = t.topicId }
                    break
                }
                guard NIODeadline.now() < deadline else {
                    throw ClientError(
                        "topic \(name) was created but its partitions have no leaders after \(requestTimeoutMs) ms")
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        return created
    }

    /// Every topic (internal ones included), by name.
    public func listTopics() async throws -> [TopicInfo] {
        try await refreshMetadata(topics: nil)
        return metadata.topics.values.sorted { $0.name < $1.name }
    }

    /// DeleteTopics by name.
    public func deleteTopic(_ name: String) async throws {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        let (response, _, _) = try await sendAny { v in
            var r = DeleteTopicsRequest()
            if v >= 6 { r.topics = [.init(name: name, topicId: .zero)] } else { r.topicNames = [name] }
            r.timeoutMs = timeoutMs
            return r
        }
        guard let result = response.responses.first(where: { $0.name == name }) ?? response.responses.first else {
            throw ClientError("the broker's DeleteTopics answer left out topic \(name)")
        }
        switch ErrorCode(result.errorCode) {
        case .none: metadata.topics[name] = nil
        case .unknownTopicOrPartition: throw ClientError("topic \(name) does not exist")
        case let code: throw ClientError("cannot delete topic \(name): \(Self.reason(code, result.errorMessage))")
        }
    }

    /// CreatePartitions: grows topic `name` to `count` partitions, the brokers placing the new
    /// replicas; returns once Metadata shows every new partition with a leader.
    public func createPartitions(_ name: String, count: Int32) async throws {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        let (response, _, _) = try await sendAny { _ in
            var r = CreatePartitionsRequest()
            r.topics = [.init(name: name, count: count, assignments: nil)]
            r.timeoutMs = timeoutMs
            return r
        }
        guard let result = response.results.first(where: { $0.name == name }) else {
            throw ClientError("the broker's CreatePartitions answer left out topic \(name)")
        }
        switch ErrorCode(result.errorCode) {
        case .none: break
        case .unknownTopicOrPartition: throw ClientError("topic \(name) does not exist")
        case let code:
            throw ClientError("cannot add partitions to topic \(name): \(Self.reason(code, result.errorMessage))")
        }
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        while true {
            if let t = try? await topic(name, refresh: true), t.partitionCount >= count,
                t.partitions.allSatisfy({ $0.leader >= 0 })
            {
                return
            }
            guard NIODeadline.now() < deadline else {
                throw ClientError(
                    "topic \(name) was given \(count) partitions but the new ones have no leaders after \(requestTimeoutMs) ms"
                )
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// DescribeConfigs of one resource, every entry, sorted by name; a broker's own configs are
    /// asked of that broker, as only it knows them.
    public func describeConfigs(
        _ resource: ConfigResourceName, includeSynonyms: Bool = false
    ) async throws
        -> [ConfigEntry]
    {
        let (type, name) = (resource.type, resource.name)
        let build: @Sendable (Int16) -> DescribeConfigsRequest = { _ in
            var r = DescribeConfigsRequest()
            r.resources = [.init(resourceType: type, resourceName: name, configurationKeys: nil)]
            r.includeSynonyms = includeSynonyms
            return r
        }
        let response: DescribeConfigsResponse
        if case .broker(let id) = resource {
            if metadata.brokers[id] == nil { try await refreshMetadata(topics: []) }
            guard let broker = metadata.brokers[id] else {
                throw ClientError("broker \(id) is not a live broker of the cluster")
            }
            response = try await send(to: broker.address, build).response
        } else {
            response = try await sendAny(build).response
        }
        guard let result = response.results.first else {
            throw ClientError("the broker's DescribeConfigs answer is empty")
        }
        switch ErrorCode(result.errorCode) {
        case .none: break
        case .unknownTopicOrPartition: throw ClientError("topic \(name) does not exist")
        case let code:
            throw ClientError("cannot describe the configs of \(resource): \(Self.reason(code, result.errorMessage))")
        }
        return result.configs.map {
            ConfigEntry(
                name: $0.name, value: $0.value, source: ConfigEntry.sourceName($0.configSource), readOnly: $0.readOnly,
                sensitive: $0.isSensitive,
                synonyms: $0.synonyms.map {
                    ConfigSynonym(name: $0.name, value: $0.value, source: ConfigEntry.sourceName($0.source))
                })
        }.sorted { $0.name < $1.name }
    }

    /// IncrementalAlterConfigs of a topic: SET each of `set`, DELETE each of `delete`.
    public func alterTopicConfigs(_ name: String, set: [(String, String)], delete: [String]) async throws {
        try await alterConfigs(.topic(name), set: set, delete: delete)
    }

    /// IncrementalAlterConfigs of one resource: SET each of `set`, DELETE each of `delete`.
    public func alterConfigs(_ resource: ConfigResourceName, set: [(String, String)], delete: [String]) async throws {
        let (type, name) = (resource.type, resource.name)
        let (response, _, _) = try await sendAny { _ in
            var r = IncrementalAlterConfigsRequest()
            r.resources = [
                .init(
                    resourceType: type, resourceName: name,
                    configs: set.map { .init(name: $0.0, configOperation: 0, value: $0.1) }
                        + delete.map { .init(name: $0, configOperation: 1, value: nil) })
            ]
            return r
        }
        guard let result = response.responses.first else {
            throw ClientError("the broker's IncrementalAlterConfigs answer is empty")
        }
        switch ErrorCode(result.errorCode) {
        case .none: return
        case .unknownTopicOrPartition: throw ClientError("topic \(name) does not exist")
        case let code:
            throw ClientError("cannot alter the configs of \(resource): \(Self.reason(code, result.errorMessage))")
        }
    }

    // MARK: leader election

    /// ElectLeaders (type 0 preferred, 1 unclean) for `partitions` by topic, or for every partition
    /// when nil; returns each partition's outcome as the controller reports it.
    public func electLeaders(type: Int8, partitions: [String: [Int32]]?) async throws -> [ElectionResult] {
        let timeoutMs = Int32(clamping: requestTimeoutMs)
        let asked = partitions?.sorted { $0.key < $1.key }.map {
            ElectLeadersRequest.TopicPartitions(topic: $0.key, partitions: $0.value.sorted())
        }
        let (response, _, _) = try await sendAny { _ in
            var r = ElectLeadersRequest()
            r.electionType = type
            r.topicPartitions = asked
            r.timeoutMs = timeoutMs
            return r
        }
        if response.errorCode != 0 {
            throw ClientError("cannot elect leaders: \(Self.reason(ErrorCode(response.errorCode), nil))")
        }
        return response.replicaElectionResults.flatMap { t in
            t.partitionResult.map {
                ElectionResult(
                    topic: t.topic, partition: $0.partitionId, error: ErrorCode($0.errorCode), message: $0.errorMessage)
            }
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    // MARK: cluster

    /// Kafka's `Admin.unregisterBroker` (`kafka-cluster.sh unregister`): UnregisterBroker to any
    /// broker, which forwards it to the active controller; the controller removes the broker's
    /// registration, as for a broker that left for good.
    public func unregisterBroker(_ brokerId: Int32) async throws {
        let (response, _, _) = try await sendToActiveController(
            { _ in UnregisterBrokerRequest(brokerId: brokerId) }, errorCode: \.errorCode)
        guard response.errorCode == 0 else {
            throw ClientError(
                "cannot unregister broker \(brokerId): \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))"
            )
        }
    }

    /// DescribeCluster when a broker serves it, else what Metadata says.
    public func describeCluster() async throws -> ClusterDescription {
        var candidate: Connection?
        for address in anyAddresses() {
            if let c = try? await connection(to: address) {
                candidate = c
                break
            }
        }
        if let c = candidate, supports(.describeCluster, on: c) {
            let (response, _) = try await send(to: c.address) { _ in DescribeClusterRequest() }
            guard response.errorCode == 0 else {
                throw ClientError(
                    "cannot describe the cluster: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))")
            }
            return ClusterDescription(
                clusterId: response.clusterId, controllerId: response.controllerId,
                brokers: response.brokers.map {
                    BrokerInfo(id: $0.brokerId, host: $0.host, port: $0.port, rack: $0.rack)
                }.sorted { $0.id < $1.id })
        }
        let response = try await refreshMetadata(topics: [])
        return ClusterDescription(
            clusterId: response.clusterId, controllerId: response.controllerId,
            brokers: metadata.brokers.values.sorted { $0.id < $1.id })
    }
}
