import RunnelCore
import RunnelMetadata
import RunnelWire

/// Why a change to one partition (an election, a reassignment) was refused: the error code and
/// message its response carries for that partition.
public struct PartitionRefusal: Error, Sendable {
    public var code: ErrorCode
    public var message: String
    init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// What a controller command produces: the records to commit and the response to send once they
/// are committed. Nothing changes until the records are replayed.
public struct ControllerResult<Response: Sendable>: Sendable {
    public var records: [MetadataRecord]
    public var response: Response
    public init(records: [MetadataRecord], response: Response) {
        self.records = records
        self.response = response
    }
}

/// Cluster-wide settings the controller applies (from the controller's `server.properties`).
public struct ControllerSettings: Sendable {
    /// `num.partitions`
    public var defaultPartitions: Int32 = 1
    /// `default.replication.factor`
    public var defaultReplicationFactor: Int16 = 1
    /// `delete.topic.enable`
    public var deleteTopicEnable = true
    /// Most partitions one CreateTopics or CreatePartitions may add.
    public var partitionsPerRequestMax = Limits.partitionsPerRequestMax
    /// Test only (the replication simulation's broken rule): AlterPartition accepts ISR members
    /// whose broker epoch is not their current registration's (no KIP-903 check). Off in every
    /// real run.
    public var acceptsStaleBrokerEpochs = false
    /// This controller's `node.id`, named in UpdateFeatures refusals ("Local controller 3000 ...").
    public var nodeId: Int32 = -1
    /// The feature levels this controller's software supports; UpdateFeatures never finalizes a
    /// level outside them.
    public var supportedFeatures: [String: ClosedRange<Int16>] = SupportedFeatures.local
    /// The quorum's voters (`controller.quorum.voters`): the controllers that must have
    /// registered before a feature level is finalized (KIP-919). Empty: not checked.
    public var voterIds: [Int32] = []
    public init() {}
}

/// The controller's commands, pure: each reads the image and returns records and a response.
/// `replay` is the only way its state changes, on the active and the standby controllers alike.
public struct QuorumController: Sendable {
    public private(set) var image: MetadataImage
    public var settings: ControllerSettings
    public var resolver: ConfigResolver

    public init(
        image: MetadataImage = .empty, settings: ControllerSettings = ControllerSettings(), resolver: ConfigResolver
    ) {
        self.image = image
        self.settings = settings
        self.resolver = resolver
    }

    /// Folds committed (or, on the active controller, proposed) records into the image, and
    /// returns the delta that did so.
    @discardableResult
    public mutating func replay(_ records: [(record: MetadataRecord, offset: Int64)], epoch: Int32) -> MetadataDelta {
        var delta = MetadataDelta(image)
        for (record, offset) in records { delta.replay(record, offset: offset, epoch: epoch) }
        image = delta.apply()
        return delta
    }

    /// Replaces the image (after loading a snapshot, or when a new leader resets to the committed state).
    public mutating func reset(to image: MetadataImage) { self.image = image }

    /// Brokers that may host new replicas: registered and not fenced.
    var usableBrokers: [ReplicaPlacement.Broker] {
        image.brokers.values.filter { !$0.fenced && !$0.inControlledShutdown }
            .map { ReplicaPlacement.Broker(id: $0.id.rawValue, rack: $0.rack) }
            .sorted { $0.id < $1.id }
    }

    // MARK: topic names

    static let topicNameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    static let topicNameLengthMax = 249

    /// Kafka's topic name rules; nil when valid, else the reason.
    public static func validateTopicName(_ name: String) -> String? {
        if name.isEmpty { return "Topic name is illegal, it can't be empty" }
        if name == "." || name == ".." { return "Topic name cannot be \".\" or \"..\"" }
        if name.count > topicNameLengthMax {
            return
                "Topic name is illegal, it can't be longer than \(topicNameLengthMax) characters, topic name: \(name)"
        }
        if !name.allSatisfy({ topicNameCharacters.contains($0) }) {
            return
                "Topic name \(name) is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        }
        return nil
    }

    static func collisionKey(_ name: String) -> String { name.replacingAll(".", with: "_") }

    // MARK: CreateTopics

    /// Creates topics: validates names, partition counts, replication factors, assignments and
    /// configs as Kafka does, and places replicas. `newId` supplies topic ids.
    public func createTopics(
        _ request: CreateTopicsRequest, version: Int16, newId: () -> KafkaUUID
    ) -> ControllerResult<CreateTopicsResponse> {
        var records: [MetadataRecord] = []
        var results: [CreateTopicsResponse.CreatableTopicResult] = []
        var counts: [String: Int] = [:]
        for t in request.topics { counts[t.name, default: 0] += 1 }
        var working = self.image
        var totalPartitions = 0
        for topic in request.topics {
            var result = CreateTopicsResponse.CreatableTopicResult(name: topic.name)
            func fail(_ code: ErrorCode, _ message: String) {
                result.errorCode = code.rawValue
                result.errorMessage = message
                result.configs = nil
                results.append(result)
            }
            if counts[topic.name]! > 1 {
                fail(
                    .invalidRequest,
                    "Create topics request from client contains multiple entries for the topic \(topic.name)")
                continue
            }
            if let reason = Self.validateTopicName(topic.name) {
                fail(.invalidTopicException, reason)
                continue
            }
            if working.topic(named: topic.name) != nil {
                fail(.topicAlreadyExists, "Topic '\(topic.name)' already exists.")
                continue
            }
            // Only names with '.' or '_' can collide with another name; the scan is for them.
            let key = Self.collisionKey(topic.name)
            if topic.name.contains(where: { $0 == "." || $0 == "_" }),
                let other = working.topicIdsByName.keys.first(where: { Self.collisionKey($0) == key })
            {
                fail(.invalidTopicException, "Topic '\(topic.name)' collides with existing topic: \(other)")
                continue
            }
            // Configs.
            var configError: String?
            var configs: [(String, String)] = []
            for c in topic.configs {
                guard let value = c.value else {
                    configError = "Null value not supported for topic configs: \(c.name)"
                    break
                }
                if let problem = ConfigDefinitions.validateTopicConfig(name: c.name, value: value) {
                    configError = problem
                    break
                }
                configs.append((c.name, value))
            }
            if let configError {
                fail(.invalidConfig, configError)
                continue
            }
            // Replicas.
            var assignments: [[Int32]]
            if !topic.assignments.isEmpty {
                if topic.numPartitions != -1 || topic.replicationFactor != -1 {
                    fail(
                        .invalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."
                    )
                    continue
                }
                let sorted = topic.assignments.sorted { $0.partitionIndex < $1.partitionIndex }
                if sorted.enumerated().contains(where: { $0.offset != Int($0.element.partitionIndex) }) {
                    fail(
                        .invalidReplicaAssignment,
                        "Unable to create topic \(topic.name) because the partitions are not numbered consecutively from 0."
                    )
                    continue
                }
                if let problem = validateAssignment(sorted.map(\.brokerIds), replicationFactor: nil) {
                    fail(.invalidReplicaAssignment, problem)
                    continue
                }
                assignments = sorted.map(\.brokerIds)
            } else {
                let partitions = topic.numPartitions == -1 ? settings.defaultPartitions : topic.numPartitions
                let factor = topic.replicationFactor == -1 ? settings.defaultReplicationFactor : topic.replicationFactor
                if partitions <= 0 {
                    fail(.invalidPartitions, "Number of partitions was set to an invalid non-positive value.")
                    continue
                }
                if factor <= 0 {
                    fail(
                        .invalidReplicationFactor,
                        "Replication factor must be larger than 0, or -1 to use the default value.")
                    continue
                }
                if totalPartitions + Int(partitions) > settings.partitionsPerRequestMax {
                    fail(
                        .policyViolation,
                        "Creating \(partitions) partitions would exceed the limit of \(settings.partitionsPerRequestMax) per request."
                    )
                    continue
                }
                let brokers = usableBrokers
                if Int(factor) > brokers.count {
                    fail(
                        .invalidReplicationFactor,
                        "Unable to replicate the partition \(factor) time(s): The target replication factor of \(factor) cannot be reached because only \(brokers.count) broker(s) are registered."
                    )
                    continue
                }
                let start = ReplicaPlacement.leastLoadedStart(brokers: brokers, image: working)
                switch ReplicaPlacement.place(
                    count: Int(partitions), replicationFactor: Int(factor), brokers: brokers, start: start)
                {
                case .success(let placed): assignments = placed
                case .failure:
                    fail(.invalidReplicationFactor, "Unable to replicate the partition \(factor) time(s).")
                    continue
                }
            }
            totalPartitions += assignments.count
            let id = newId()
            result.topicId = version >= 7 ? id : .zero
            result.numPartitions = Int32(assignments.count)
            result.replicationFactor = Int16(assignments.first?.count ?? 0)
            var topicRecords: [MetadataRecord] = [.topic(TopicRecord(name: topic.name, topicId: id))]
            for (name, value) in configs {
                topicRecords.append(
                    .config(
                        ConfigRecord(
                            resourceType: ConfigResourceType.topic.rawValue, resourceName: topic.name, name: name,
                            value: value)))
            }
            for (index, replicas) in assignments.enumerated() {
                topicRecords.append(
                    .partition(newPartitionRecord(topicId: id, index: Int32(index), replicas: replicas)))
            }
            var delta = MetadataDelta(working)
            for r in topicRecords {
                delta.replay(r, offset: working.provenance.lastOffset, epoch: working.provenance.lastEpoch)
            }
            working = delta.apply()
            if version >= 5 {
                result.configs = resolver.topicConfigs(topic: topic.name, image: working).map {
                    .init(
                        name: $0.name, value: $0.value, readOnly: $0.readOnly, configSource: $0.source.rawValue,
                        isSensitive: $0.isSensitive)
                }
            }
            if !request.validateOnly { records += topicRecords }
            results.append(result)
        }
        return ControllerResult(records: records, response: CreateTopicsResponse(topics: results))
    }

    func newPartitionRecord(topicId: KafkaUUID, index: Int32, replicas: [Int32]) -> PartitionRecord {
        let live = replicas.filter { id in image.brokers[NodeID(id)].map { !$0.fenced } ?? false }
        return PartitionRecord(
            partitionId: index, topicId: topicId, replicas: replicas, isr: live.isEmpty ? replicas : live,
            leader: live.first ?? -1, leaderRecoveryState: 0, leaderEpoch: 0, partitionEpoch: 0)
    }

    /// Checks a manual assignment; nil when valid.
    func validateAssignment(_ assignment: [[Int32]], replicationFactor: Int?) -> String? {
        let factor = replicationFactor ?? assignment.first?.count ?? 0
        for (i, replicas) in assignment.enumerated() {
            if replicas.isEmpty { return "The manual partition assignment includes an empty replica list." }
            if Set(replicas).count != replicas.count {
                return "The manual partition assignment includes a partition with duplicate replicas."
            }
            if replicas.count != factor {
                return
                    "The manual partition assignment includes partition \(i) with \(replicas.count) replica(s), but this is not consistent with previous partitions, which have \(factor) replica(s)."
            }
            if let missing = replicas.first(where: { image.brokers[NodeID($0)] == nil }) {
                return "The manual partition assignment includes broker \(missing), but no such broker is registered."
            }
        }
        return nil
    }

    // MARK: DeleteTopics

    public func deleteTopics(_ request: DeleteTopicsRequest, version: Int16) -> ControllerResult<DeleteTopicsResponse> {
        var records: [MetadataRecord] = []
        var results: [DeleteTopicsResponse.DeletableTopicResult] = []
        var deleted = Set<KafkaUUID>()
        var targets: [(name: String?, id: KafkaUUID)] = request.topicNames.map { ($0, .zero) }
        targets += request.topics.map { ($0.name, $0.topicId) }
        for target in targets {
            var result = DeleteTopicsResponse.DeletableTopicResult(name: target.name, topicId: target.id)
            let topic: TopicImage?
            if target.id != .zero {
                topic = image.topic(id: target.id)
                if topic == nil {
                    result.errorCode = ErrorCode.unknownTopicId.rawValue
                    result.errorMessage = "This server does not host this topic ID."
                }
            } else if let name = target.name {
                topic = image.topic(named: name)
                if topic == nil {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "This server does not host this topic-partition."
                }
            } else {
                topic = nil
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "Neither topic name nor id were specified."
            }
            if let topic {
                result.name = topic.name
                result.topicId = version >= 6 ? topic.id : .zero
                if !settings.deleteTopicEnable {
                    result.errorCode = ErrorCode.topicDeletionDisabled.rawValue
                    result.errorMessage = "Topic deletion is disabled."
                } else if !deleted.contains(topic.id) {
                    deleted.insert(topic.id)
                    records.append(.removeTopic(RemoveTopicRecord(topicId: topic.id)))
                }
            }
            results.append(result)
        }
        return ControllerResult(records: records, response: DeleteTopicsResponse(responses: results))
    }

    // MARK: CreatePartitions

    public func createPartitions(_ request: CreatePartitionsRequest) -> ControllerResult<CreatePartitionsResponse> {
        var records: [MetadataRecord] = []
        var results: [CreatePartitionsResponse.CreatePartitionsTopicResult] = []
        var counts: [String: Int] = [:]
        for t in request.topics { counts[t.name, default: 0] += 1 }
        for topic in request.topics {
            var result = CreatePartitionsResponse.CreatePartitionsTopicResult(name: topic.name)
            func fail(_ code: ErrorCode, _ message: String) {
                result.errorCode = code.rawValue
                result.errorMessage = message
                results.append(result)
            }
            if counts[topic.name]! > 1 {
                fail(.invalidRequest, "Duplicate topic name.")
                continue
            }
            guard let existing = image.topic(named: topic.name) else {
                fail(.unknownTopicOrPartition, "This server does not host this topic-partition.")
                continue
            }
            let current = Int32(existing.partitionCount)
            if topic.count < current {
                fail(
                    .invalidPartitions,
                    "The topic \(topic.name) currently has \(current) partition(s); \(topic.count) would not be an increase."
                )
                continue
            }
            if topic.count == current {
                fail(.invalidPartitions, "Topic already has \(current) partition(s).")
                continue
            }
            let adding = Int(topic.count - current)
            if adding > settings.partitionsPerRequestMax {
                fail(
                    .policyViolation,
                    "Creating \(adding) partitions would exceed the limit of \(settings.partitionsPerRequestMax) per request."
                )
                continue
            }
            let factor = existing.partitions[0]?.replicas.count ?? 1
            var placed: [[Int32]]
            if let manual = topic.assignments, !manual.isEmpty {
                if manual.count != adding {
                    fail(
                        .invalidReplicaAssignment,
                        "Attempted to add \(adding) additional partition(s), but only \(manual.count) assignment(s) were specified."
                    )
                    continue
                }
                if let problem = validateAssignment(manual.map(\.brokerIds), replicationFactor: factor) {
                    fail(.invalidReplicaAssignment, problem)
                    continue
                }
                placed = manual.map(\.brokerIds)
            } else {
                let brokers = usableBrokers
                switch ReplicaPlacement.place(
                    count: adding, replicationFactor: factor, brokers: brokers,
                    start: ReplicaPlacement.leastLoadedStart(brokers: brokers, image: image),
                    firstPartition: Int(current))
                {
                case .success(let p): placed = p
                case .failure:
                    fail(
                        .invalidReplicationFactor,
                        "Unable to replicate the partition \(factor) time(s): The target replication factor of \(factor) cannot be reached because only \(brokers.count) broker(s) are registered."
                    )
                    continue
                }
            }
            if !request.validateOnly {
                for (i, replicas) in placed.enumerated() {
                    records.append(
                        .partition(
                            newPartitionRecord(topicId: existing.id, index: current + Int32(i), replicas: replicas)))
                }
            }
            results.append(result)
        }
        return ControllerResult(records: records, response: CreatePartitionsResponse(results: results))
    }

    // MARK: configs

    /// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) on topic and broker
    /// configs. APPEND and SUBTRACT work on list configs only and start from the current value
    /// (the override, or the default). A broker resource whose overrides would then hold a key that
    /// cannot change at runtime is refused whole (DynamicBrokerConfigs.swift), validate_only or not.
    public func incrementalAlterConfigs(
        _ request: IncrementalAlterConfigsRequest
    ) -> ControllerResult<IncrementalAlterConfigsResponse> {
        var records: [MetadataRecord] = []
        var responses: [IncrementalAlterConfigsResponse.AlterConfigsResourceResponse] = []
        var seen = Set<ConfigResource>()
        for resource in request.resources {
            var response = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType,
                resourceName: resource.resourceName)
            func fail(_ code: ErrorCode, _ message: String) {
                response.errorCode = code.rawValue
                response.errorMessage = message
                responses.append(response)
            }
            guard let type = ConfigResourceType(rawValue: resource.resourceType), type == .topic || type == .broker
            else {
                fail(.invalidRequest, "Unsupported resource type \(resource.resourceType).")
                continue
            }
            let target = ConfigResource(type, resource.resourceName)
            if seen.contains(target) {
                fail(.invalidRequest, "Duplicate resource \(resource.resourceName).")
                continue
            }
            seen.insert(target)
            if let problem = checkResource(target) {
                fail(problem.0, problem.1)
                continue
            }
            var current = image.configs(of: target)
            var resourceRecords: [MetadataRecord] = []
            var failure: (ErrorCode, String)?
            for config in resource.configs {
                let definition =
                    type == .topic
                    ? ConfigDefinitions.topicConfig(config.name) : ConfigDefinitions.brokerConfig(config.name)
                if type == .topic && definition == nil {
                    failure = (.invalidConfig, "Unknown topic config name: \(config.name)")
                    break
                }
                var newValue: String?
                switch config.configOperation {
                case 0:  // SET
                    guard let value = config.value else {
                        failure = (.invalidRequest, "Null value not supported for : \(config.name)")
                        break
                    }
                    newValue = value
                case 1:  // DELETE
                    newValue = nil
                case 2, 3:  // APPEND, SUBTRACT
                    guard let definition, definition.type == .list else {
                        failure = (
                            .invalidConfig,
                            "Config value \(config.configOperation == 2 ? "append" : "subtract") is not allowed for config key: \(config.name)"
                        )
                        break
                    }
                    let base = current[config.name] ?? definition.defaultValue ?? ""
                    var items = base.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
                    let change = (config.value ?? "").split(separator: ",").map { String($0).trimmingSpaces() }.filter {
                        !$0.isEmpty
                    }
                    if config.configOperation == 2 {
                        for item in change where !items.contains(item) { items.append(item) }
                    } else {
                        items.removeAll { change.contains($0) }
                    }
                    newValue = items.joined(separator: ",")
                default:
                    failure = (
                        .invalidRequest, "Unknown config operation \(config.configOperation) for \(config.name)."
                    )
                }
                if failure != nil { break }
                if let value = newValue {
                    let problem =
                        type == .topic
                        ? ConfigDefinitions.validateTopicConfig(name: config.name, value: value)
                        : ConfigDefinitions.validateBrokerConfig(name: config.name, value: value)
                    if let problem {
                        failure = (Self.badValueCode(type), problem)
                        break
                    }
                    current[config.name] = value
                } else {
                    current.removeValue(forKey: config.name)
                }
                resourceRecords.append(
                    .config(
                        ConfigRecord(
                            resourceType: type.rawValue, resourceName: resource.resourceName, name: config.name,
                            value: newValue)))
            }
            if failure == nil, type == .broker,
                let problem = ConfigDefinitions.dynamicBrokerChangeProblem(
                    resultingKeys: current.keys, perBroker: !resource.resourceName.isEmpty)
            {
                failure = (.invalidRequest, problem)
            }
            if let failure {
                fail(failure.0, failure.1)
                continue
            }
            if !request.validateOnly { records += resourceRecords }
            responses.append(response)
        }
        return ControllerResult(records: records, response: IncrementalAlterConfigsResponse(responses: responses))
    }

    /// AlterConfigs (the older, whole-set form): the given configs replace every override.
    public func alterConfigs(_ request: AlterConfigsRequest) -> ControllerResult<AlterConfigsResponse> {
        var records: [MetadataRecord] = []
        var responses: [AlterConfigsResponse.AlterConfigsResourceResponse] = []
        for resource in request.resources {
            var response = AlterConfigsResponse.AlterConfigsResourceResponse(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType,
                resourceName: resource.resourceName)
            guard let type = ConfigResourceType(rawValue: resource.resourceType), type == .topic || type == .broker
            else {
                response.errorCode = ErrorCode.invalidRequest.rawValue
                response.errorMessage = "Unsupported resource type \(resource.resourceType)."
                responses.append(response)
                continue
            }
            let target = ConfigResource(type, resource.resourceName)
            if let problem = checkResource(target) {
                response.errorCode = problem.0.rawValue
                response.errorMessage = problem.1
                responses.append(response)
                continue
            }
            var wanted: [String: String] = [:]
            var failure: String?
            for c in resource.configs {
                guard let value = c.value else { continue }
                let problem =
                    type == .topic
                    ? ConfigDefinitions.validateTopicConfig(name: c.name, value: value)
                    : ConfigDefinitions.validateBrokerConfig(name: c.name, value: value)
                if let problem {
                    failure = problem
                    break
                }
                wanted[c.name] = value
            }
            if let failure {
                response.errorCode = Self.badValueCode(type).rawValue
                response.errorMessage = failure
                responses.append(response)
                continue
            }
            if type == .broker,
                let problem = ConfigDefinitions.dynamicBrokerChangeProblem(
                    resultingKeys: wanted.keys, perBroker: !target.name.isEmpty)
            {
                response.errorCode = ErrorCode.invalidRequest.rawValue
                response.errorMessage = problem
                responses.append(response)
                continue
            }
            if !request.validateOnly {
                let current = image.configs(of: target)
                for name in current.keys.sorted() where wanted[name] == nil {
                    records.append(
                        .config(
                            ConfigRecord(resourceType: type.rawValue, resourceName: target.name, name: name, value: nil)
                        ))
                }
                for name in wanted.keys.sorted() where current[name] != wanted[name] {
                    records.append(
                        .config(
                            ConfigRecord(
                                resourceType: type.rawValue, resourceName: target.name, name: name, value: wanted[name])
                        ))
                }
            }
            responses.append(response)
        }
        return ControllerResult(records: records, response: AlterConfigsResponse(responses: responses))
    }

    func checkResource(_ resource: ConfigResource) -> (ErrorCode, String)? {
        switch resource.type {
        case .topic:
            if image.topic(named: resource.name) == nil {
                return (.unknownTopicOrPartition, "The topic '\(resource.name)' does not exist.")
            }
        case .broker:
            if !resource.name.isEmpty && Int32(resource.name) == nil {
                return (.invalidRequest, "Broker id must be an integer, not \(resource.name).")
            }
        default:
            return (.invalidRequest, "Unsupported resource type.")
        }
        return nil
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }

    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

extension QuorumController {
    /// The error for a config value its validator refuses: INVALID_CONFIG for a topic, and for a
    /// broker INVALID_REQUEST, as Kafka's ConfigAdminManager.validateBrokerConfigChange answers
    /// (KAFKA-13609 keeps that code for compatibility).
    static func badValueCode(_ type: ConfigResourceType) -> ErrorCode {
        type == .broker ? .invalidRequest : .invalidConfig
    }
}
