import HashTreeCollections
import NIOCore
import RunnelCore
import RunnelWire

/// A broker as registered in the metadata log.
public struct BrokerRegistration: Sendable, Equatable {
    public struct Endpoint: Sendable, Equatable {
        public var listener: String
        public var host: String
        public var port: Int
        public var securityProtocol: Int16
        public init(listener: String, host: String, port: Int, securityProtocol: Int16) {
            self.listener = listener
            self.host = host
            self.port = port
            self.securityProtocol = securityProtocol
        }
    }
    public var id: NodeID
    /// The offset of the registration record (Kafka's broker epoch).
    public var epoch: Int64
    public var incarnationId: KafkaUUID
    public var endpoints: [Endpoint]
    public var rack: String?
    public var fenced: Bool
    public var inControlledShutdown: Bool
    public var logDirs: [KafkaUUID]
    /// The feature levels the broker's software supports, from its registration (Kafka's
    /// `BrokerRegistration.supportedFeatures`); UpdateFeatures is checked against them.
    public var supportedFeatures: [String: ClosedRange<Int16>]

    public init(
        id: NodeID, epoch: Int64, incarnationId: KafkaUUID, endpoints: [Endpoint], rack: String?, fenced: Bool,
        inControlledShutdown: Bool, logDirs: [KafkaUUID] = [], supportedFeatures: [String: ClosedRange<Int16>] = [:]
    ) {
        self.id = id
        self.epoch = epoch
        self.incarnationId = incarnationId
        self.endpoints = endpoints
        self.rack = rack
        self.fenced = fenced
        self.inControlledShutdown = inControlledShutdown
        self.logDirs = logDirs
        self.supportedFeatures = supportedFeatures
    }

    public func endpoint(_ listener: String) -> Endpoint? {
        endpoints.first { $0.listener == listener }
    }
}

/// A partition's replicas, ISR and leadership, as the metadata log says.
public struct PartitionRegistration: Sendable, Equatable {
    public var replicas: [Int32]
    public var isr: [Int32]
    public var removingReplicas: [Int32]
    public var addingReplicas: [Int32]
    public var leader: Int32
    public var leaderRecoveryState: Int8
    public var leaderEpoch: Int32
    public var partitionEpoch: Int32
    public var eligibleLeaderReplicas: [Int32]
    public var lastKnownElr: [Int32]

    public init(
        replicas: [Int32], isr: [Int32], leader: Int32, leaderEpoch: Int32, partitionEpoch: Int32,
        removingReplicas: [Int32] = [], addingReplicas: [Int32] = [], leaderRecoveryState: Int8 = 0,
        eligibleLeaderReplicas: [Int32] = [], lastKnownElr: [Int32] = []
    ) {
        self.replicas = replicas
        self.isr = isr
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.removingReplicas = removingReplicas
        self.addingReplicas = addingReplicas
        self.leaderRecoveryState = leaderRecoveryState
        self.eligibleLeaderReplicas = eligibleLeaderReplicas
        self.lastKnownElr = lastKnownElr
    }

    public init(_ record: PartitionRecord) {
        self.init(
            replicas: record.replicas, isr: record.isr, leader: record.leader, leaderEpoch: record.leaderEpoch,
            partitionEpoch: record.partitionEpoch, removingReplicas: record.removingReplicas,
            addingReplicas: record.addingReplicas, leaderRecoveryState: record.leaderRecoveryState,
            eligibleLeaderReplicas: record.eligibleLeaderReplicas ?? [], lastKnownElr: record.lastKnownElr ?? [])
    }

    /// Applies a PartitionChangeRecord: absent fields keep their value; a new leader bumps the
    /// leader epoch; every change bumps the partition epoch.
    public func merging(_ change: PartitionChangeRecord) -> PartitionRegistration {
        var next = self
        if let isr = change.isr { next.isr = isr }
        if let replicas = change.replicas { next.replicas = replicas }
        if let removing = change.removingReplicas { next.removingReplicas = removing }
        if let adding = change.addingReplicas { next.addingReplicas = adding }
        if change.leaderRecoveryState != -1 { next.leaderRecoveryState = change.leaderRecoveryState }
        if let elr = change.eligibleLeaderReplicas { next.eligibleLeaderReplicas = elr }
        if let lastKnown = change.lastKnownElr { next.lastKnownElr = lastKnown }
        if change.leader != PartitionChange.noLeaderChange {
            next.leader = change.leader
            next.leaderEpoch = leaderEpoch + 1
        }
        next.partitionEpoch = partitionEpoch + 1
        return next
    }

    public var hasLeader: Bool { leader >= 0 }

    /// The PartitionChangeRecord that takes this registration to `next`: only the replicas, ISR,
    /// adding and removing replicas, leader and leader recovery state that differ, or nil when none
    /// does. `newLeaderEpoch` names the leader again though it stays, so its epoch goes up.
    public func change(
        to next: PartitionRegistration, partitionId: Int32, topicId: KafkaUUID, newLeaderEpoch: Bool = false
    ) -> PartitionChangeRecord? {
        var change = PartitionChangeRecord(partitionId: partitionId, topicId: topicId)
        if next.replicas != replicas { change.replicas = next.replicas }
        if next.isr != isr { change.isr = next.isr }
        if next.addingReplicas != addingReplicas { change.addingReplicas = next.addingReplicas }
        if next.removingReplicas != removingReplicas { change.removingReplicas = next.removingReplicas }
        if next.leaderRecoveryState != leaderRecoveryState { change.leaderRecoveryState = next.leaderRecoveryState }
        if next.leader != leader || (newLeaderEpoch && next.leader >= 0) { change.leader = next.leader }
        return change == PartitionChangeRecord(partitionId: partitionId, topicId: topicId) ? nil : change
    }
}

/// Markers of PartitionChangeRecord.
public enum PartitionChange {
    /// `leader` value meaning "leader unchanged".
    public static let noLeaderChange: Int32 = -2
    /// `leader` value meaning "no leader".
    public static let noLeader: Int32 = -1
}

/// A topic: its id, name and partitions.
public struct TopicImage: Sendable, Equatable {
    public var id: KafkaUUID
    public var name: String
    public var partitions: [Int32: PartitionRegistration]

    public init(id: KafkaUUID, name: String, partitions: [Int32: PartitionRegistration] = [:]) {
        self.id = id
        self.name = name
        self.partitions = partitions
    }

    public var partitionCount: Int { partitions.count }
}

/// The kind of resource a config belongs to, with Kafka's resource type codes.
public enum ConfigResourceType: Int8, Sendable, Hashable {
    case unknown = 0
    case topic = 2
    case broker = 4
    case brokerLogger = 8
    case clientMetrics = 16
    case group = 32
}

/// A config resource: a topic by name, a broker by id (or "" for the cluster-wide default).
public struct ConfigResource: Sendable, Hashable, Comparable {
    public var type: ConfigResourceType
    public var name: String
    public init(_ type: ConfigResourceType, _ name: String) {
        self.type = type
        self.name = name
    }
    public static func < (lhs: ConfigResource, rhs: ConfigResource) -> Bool {
        lhs.type.rawValue != rhs.type.rawValue ? lhs.type.rawValue < rhs.type.rawValue : lhs.name < rhs.name
    }
}

/// An ACL binding.
public struct AclEntry: Sendable, Equatable {
    public var id: KafkaUUID
    public var resourceType: Int8
    public var resourceName: String
    public var patternType: Int8
    public var principal: String
    public var host: String
    public var operation: Int8
    public var permissionType: Int8

    public init(
        id: KafkaUUID, resourceType: Int8, resourceName: String, patternType: Int8, principal: String, host: String,
        operation: Int8, permissionType: Int8
    ) {
        self.id = id
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permissionType = permissionType
    }
}

/// The key of a SCRAM credential: a user and a mechanism code (1 SCRAM-SHA-256, 2 SCRAM-SHA-512),
/// as Kafka's ScramControlManager keys them. User names compare byte for byte, as Kafka's Java
/// strings do (Swift's `String ==` would equate canonically equivalent names).
public struct ScramCredentialKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var user: String
    public var mechanism: Int8

    public init(user: String, mechanism: Int8) {
        self.user = user
        self.mechanism = mechanism
    }

    public static func == (lhs: ScramCredentialKey, rhs: ScramCredentialKey) -> Bool {
        lhs.mechanism == rhs.mechanism && lhs.user.utf8.elementsEqual(rhs.user.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(mechanism)
        for byte in user.utf8 { hasher.combine(byte) }
    }

    /// By user name bytes, then mechanism.
    public static func < (lhs: ScramCredentialKey, rhs: ScramCredentialKey) -> Bool {
        if lhs.user.utf8.elementsEqual(rhs.user.utf8) { return lhs.mechanism < rhs.mechanism }
        return lhs.user.utf8.lexicographicallyPrecedes(rhs.user.utf8)
    }

    /// `alice/SCRAM-SHA-256`.
    public var description: String { "\(user)/\(ScramNames.mechanism(mechanism))" }
}

/// A user's SCRAM credential for one mechanism: the salted keys only, never the password.
public struct ScramCredentialEntry: Sendable, Equatable {
    public var user: String
    public var mechanism: Int8
    public var salt: [UInt8]
    /// H(ClientKey): checks a client's proof.
    public var storedKey: [UInt8]
    /// HMAC(SaltedPassword, "Server Key"): signs the server's answer.
    public var serverKey: [UInt8]
    public var iterations: Int32

    public init(user: String, mechanism: Int8, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int32)
    {
        self.user = user
        self.mechanism = mechanism
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.iterations = iterations
    }

    /// The credential a UserScramCredentialRecord sets.
    public init(_ record: UserScramCredentialRecord) {
        self.init(
            user: record.name, mechanism: record.mechanism, salt: Array(record.salt.readableBytesView),
            storedKey: Array(record.storedKey.readableBytesView), serverKey: Array(record.serverKey.readableBytesView),
            iterations: record.iterations)
    }

    public var key: ScramCredentialKey { ScramCredentialKey(user: user, mechanism: mechanism) }

    /// The record that sets this credential.
    public var record: UserScramCredentialRecord {
        UserScramCredentialRecord(
            name: user, mechanism: mechanism, salt: ByteBuffer(bytes: salt),
            storedKey: ByteBuffer(bytes: storedKey), serverKey: ByteBuffer(bytes: serverKey), iterations: iterations)
    }
}

/// Where the image stands in the metadata log.
public struct MetadataProvenance: Sendable, Equatable {
    /// Offset of the last record applied (-1 before any).
    public var lastOffset: Int64
    /// Epoch of that record.
    public var lastEpoch: Int32
    public var recordCount: Int64
    public static let empty = MetadataProvenance(lastOffset: -1, lastEpoch: -1, recordCount: 0)
    public init(lastOffset: Int64, lastEpoch: Int32, recordCount: Int64) {
        self.lastOffset = lastOffset
        self.lastEpoch = lastEpoch
        self.recordCount = recordCount
    }
}

/// The whole cluster metadata at one point of the metadata log: immutable, built only by
/// replaying records through a `MetadataDelta`. Collections are persistent (hash tries), so a new
/// image shares everything that did not change with the previous one.
public struct MetadataImage: Sendable, Equatable {
    public internal(set) var provenance: MetadataProvenance
    public internal(set) var features: TreeDictionary<String, Int16>
    public internal(set) var brokers: TreeDictionary<NodeID, BrokerRegistration>
    public internal(set) var topicsById: TreeDictionary<KafkaUUID, TopicImage>
    public internal(set) var topicIdsByName: TreeDictionary<String, KafkaUUID>
    public internal(set) var configs: TreeDictionary<ConfigResource, TreeDictionary<String, String>>
    /// The next producer id the controller will hand out, and who asked last.
    public internal(set) var nextProducerId: Int64
    public internal(set) var producerIdsBroker: Int32
    /// ACL bindings by the id of the AccessControlEntryRecord that created them.
    public internal(set) var acls: TreeDictionary<KafkaUUID, AclEntry>
    /// SCRAM credentials by user and mechanism.
    public internal(set) var scramCredentials: TreeDictionary<ScramCredentialKey, ScramCredentialEntry>
    /// Controllers as they registered (KIP-919), by node id.
    public internal(set) var controllers: TreeDictionary<NodeID, ControllerRegistration>
    /// Client quotas (ClientQuotaRecords) by entity: quota key to value. An entity with no key
    /// left is removed.
    public internal(set) var clientQuotas: TreeDictionary<ClientQuotaEntity, TreeDictionary<String, Double>>

    public static let empty = MetadataImage(
        provenance: .empty, features: [:], brokers: [:], topicsById: [:], topicIdsByName: [:], configs: [:],
        nextProducerId: 0, producerIdsBroker: -1, acls: [:], scramCredentials: [:], controllers: [:],
        clientQuotas: [:])

    public func topic(named name: String) -> TopicImage? {
        topicIdsByName[name].flatMap { topicsById[$0] }
    }

    public func topic(id: KafkaUUID) -> TopicImage? { topicsById[id] }

    /// How many partitions the image holds, kept by every delta.
    public internal(set) var partitionCount: Int = 0

    /// Partitions without a leader (Kafka's OfflinePartitionsCount), kept by every delta rather
    /// than counted: a count over a million partitions on every commit would be the commit's cost.
    public internal(set) var offlinePartitionCount: Int = 0

    /// Every partition by each broker it names (replicas, ISR, leader), kept by topic: topic
    /// id, then broker id, then the sorted partition indexes. Kept by every delta
    /// (`MetadataImage+PartitionIndex.swift`).
    public internal(set) var brokerIndexByTopic: TreeDictionary<KafkaUUID, TopicBrokerIndex> = [:]

    /// Partitions without a leader, by topic id; kept by every delta.
    public internal(set) var leaderlessPartitions: PartitionsByTopic = [:]

    /// How many partitions each broker leads (brokers leading none are absent), kept by every
    /// delta: where a new topic's first leader goes, without a walk over every partition for
    /// each topic created.
    public internal(set) var leaderCounts: [Int32: Int] = [:]

    /// The leader counts by a walk over every partition (building an image from a snapshot, and
    /// checking the kept ones).
    func countLeaders() -> [Int32: Int] {
        var counts: [Int32: Int] = [:]
        for topic in topicsById.values {
            for p in topic.partitions.values where p.leader >= 0 { counts[p.leader, default: 0] += 1 }
        }
        return counts
    }

    /// The offline partition count, by a walk over every partition (building an image from a
    /// snapshot, and checking the kept one).
    func countOfflinePartitions() -> Int {
        topicsById.values.reduce(0) { sum, topic in sum + topic.partitions.values.filter { $0.leader < 0 }.count }
    }

    /// The partition count by a walk over the topics (each topic knows its own).
    func countPartitions() -> Int {
        topicsById.values.reduce(0) { $0 + $1.partitions.count }
    }

    public func partition(_ tp: TopicPartition) -> PartitionRegistration? {
        topic(named: tp.topic)?.partitions[tp.partition]
    }

    /// Config overrides of a resource (only what was set, not defaults).
    public func configs(of resource: ConfigResource) -> [String: String] {
        guard let entries = configs[resource] else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in entries { out[k] = v }
        return out
    }

    /// Topic names, sorted.
    public var topicNames: [String] { topicIdsByName.keys.sorted() }

    /// The SCRAM credential of `user` for mechanism code `mechanism`.
    public func scramCredential(user: String, mechanism: Int8) -> ScramCredentialEntry? {
        scramCredentials[ScramCredentialKey(user: user, mechanism: mechanism)]
    }

    /// The `metadata.version` feature level, 0 when unset.
    public var metadataVersion: Int16 { features["metadata.version"] ?? 0 }
}
