// ConfigDefinitions.swift
// RunnelMetadata: the topic and broker configuration keys that DescribeConfigs lists and that
// CreateTopics / AlterConfigs / IncrementalAlterConfigs validate against.
//
// Source of facts: Apache Kafka 3.9 (the topic-level and broker configuration reference, and the
// definitions behind it): LogConfig and TopicConfig for topic keys, types, defaults and validators;
// ServerTopicConfigSynonyms for the broker keys that supply topic defaults and their unit factors;
// KafkaConfig with ServerLogConfigs, ServerConfigs, ReplicationConfigs, KRaftConfigs, QuorumConfig,
// SocketServerConfigs, GroupCoordinatorConfig, CleanerConfig, TransactionLogConfigs, SslConfigs and
// SaslConfigs for broker keys; DynamicBrokerConfig.AllDynamicConfigs for which broker keys may be
// changed at runtime; ConfigDef for how values are parsed and how rejections are worded.
// Names, types, defaults, bounds, allowed values, synonyms and updatability are those facts; the
// one-sentence documentation strings are Runnel's own wording.
//
// Pure standard library on purpose: no Foundation.

/// The type of a config value, with Kafka's DescribeConfigs (v3+) type codes.
public enum ConfigType: Int8, Sendable {
    case boolean = 1, string = 2, int = 3, short = 4, long = 5, double = 6, list = 7, classType = 8, password = 9
}

/// A broker key that supplies a topic config's default, with the factor that converts its unit
/// (e.g. log.retention.hours -> retention.ms is 3_600_000).
public struct ConfigSynonym: Sendable, Equatable {
    public let name: String
    public let multiplier: Int64

    public init(name: String, multiplier: Int64 = 1) {
        self.name = name
        self.multiplier = multiplier
    }
}

/// One config key: its type, default, bounds and where its default comes from.
public struct ConfigDefinition: Sendable, Equatable {
    public let name: String
    public let type: ConfigType
    /// The default as Kafka prints it in DescribeConfigs; nil for a null default.
    public let defaultValue: String?
    public let documentation: String
    /// Topic configs only: broker keys that supply the default, highest priority first.
    public let brokerSynonyms: [ConfigSynonym]
    public let isSensitive: Bool
    /// Broker configs: whether Kafka allows changing it at runtime (DynamicBrokerConfig.AllDynamicConfigs);
    /// what Runnel accepts and reports as not read-only is `ConfigDefinitions.isDynamicBrokerConfig`. Topic configs: true.
    public let dynamic: Bool
    /// Allowed values for enumerations (case-sensitive as Kafka), nil when free.
    public let validValues: [String]?
    /// Inclusive numeric bounds, nil when unbounded.
    public let minimum: Int64?
    public let maximum: Int64?

    /// Password-typed configs are always sensitive, whatever `isSensitive` says.
    public init(
        name: String,
        type: ConfigType,
        defaultValue: String?,
        documentation: String,
        brokerSynonyms: [ConfigSynonym] = [],
        isSensitive: Bool = false,
        dynamic: Bool = false,
        validValues: [String]? = nil,
        minimum: Int64? = nil,
        maximum: Int64? = nil
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.documentation = documentation
        self.brokerSynonyms = brokerSynonyms
        self.isSensitive = isSensitive || type == .password
        self.dynamic = dynamic
        self.validValues = validValues
        self.minimum = minimum
        self.maximum = maximum
    }
}

public enum ConfigDefinitions {
    /// Every topic-level config of Kafka 3.9 (36 keys), sorted by name.
    public static let topic: [ConfigDefinition] = [
        ConfigDefinition(
            name: "cleanup.policy", type: .list, defaultValue: "delete",
            documentation:
                "Comma-separated retention strategies for old segments: delete removes them by age or size, compact keeps the newest record per key.",
            brokerSynonyms: [ConfigSynonym(name: "log.cleanup.policy")],
            dynamic: true, validValues: ["compact", "delete"]),
        ConfigDefinition(
            name: "compression.gzip.level", type: .int, defaultValue: "-1",
            documentation: "Level the broker uses when it recompresses this topic's batches with gzip.",
            brokerSynonyms: [ConfigSynonym(name: "compression.gzip.level")],
            dynamic: true, minimum: -1, maximum: 9),
        ConfigDefinition(
            name: "compression.lz4.level", type: .int, defaultValue: "9",
            documentation: "Level the broker uses when it recompresses this topic's batches with lz4.",
            brokerSynonyms: [ConfigSynonym(name: "compression.lz4.level")],
            dynamic: true, minimum: 1, maximum: 17),
        ConfigDefinition(
            name: "compression.type", type: .string, defaultValue: "producer",
            documentation:
                "Codec the broker stores this topic's batches in; producer keeps whatever codec the producer chose.",
            brokerSynonyms: [ConfigSynonym(name: "compression.type")],
            dynamic: true, validValues: ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        ConfigDefinition(
            name: "compression.zstd.level", type: .int, defaultValue: "3",
            documentation: "Level the broker uses when it recompresses this topic's batches with zstd.",
            brokerSynonyms: [ConfigSynonym(name: "compression.zstd.level")],
            dynamic: true, minimum: -131072, maximum: 22),
        ConfigDefinition(
            name: "delete.retention.ms", type: .long, defaultValue: "86400000",
            documentation:
                "How long delete tombstones stay readable in a compacted topic before the cleaner may drop them.",
            brokerSynonyms: [ConfigSynonym(name: "log.cleaner.delete.retention.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "file.delete.delay.ms", type: .long, defaultValue: "60000",
            documentation: "Grace period before a segment file scheduled for deletion is removed from disk.",
            brokerSynonyms: [ConfigSynonym(name: "log.segment.delete.delay.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "flush.messages", type: .long, defaultValue: "9223372036854775807",
            documentation: "Number of appended messages after which the partition log is forced to disk.",
            brokerSynonyms: [ConfigSynonym(name: "log.flush.interval.messages")],
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "flush.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Maximum age of unflushed data before the partition log is forced to disk.",
            brokerSynonyms: [
                ConfigSynonym(name: "log.flush.interval.ms"), ConfigSynonym(name: "log.flush.scheduler.interval.ms"),
            ],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "follower.replication.throttled.replicas", type: .list, defaultValue: "",
            documentation:
                "Replicas, as partition:broker pairs or the wildcard *, whose follower-side replication is throttled.",
            dynamic: true),
        ConfigDefinition(
            name: "index.interval.bytes", type: .int, defaultValue: "4096",
            documentation: "Approximate number of log bytes between two entries of the offset index.",
            brokerSynonyms: [ConfigSynonym(name: "log.index.interval.bytes")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "leader.replication.throttled.replicas", type: .list, defaultValue: "",
            documentation:
                "Replicas, as partition:broker pairs or the wildcard *, whose leader-side replication is throttled.",
            dynamic: true),
        ConfigDefinition(
            name: "local.retention.bytes", type: .long, defaultValue: "-2",
            documentation:
                "Size limit for the locally kept part of a tiered partition; -2 falls back to retention.bytes.",
            brokerSynonyms: [ConfigSynonym(name: "log.local.retention.bytes")],
            dynamic: true, minimum: -2),
        ConfigDefinition(
            name: "local.retention.ms", type: .long, defaultValue: "-2",
            documentation: "Age limit for the locally kept part of a tiered partition; -2 falls back to retention.ms.",
            brokerSynonyms: [ConfigSynonym(name: "log.local.retention.ms")],
            dynamic: true, minimum: -2),
        ConfigDefinition(
            name: "max.compaction.lag.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Upper bound on how long a record may remain uncompacted in a compacted topic.",
            brokerSynonyms: [ConfigSynonym(name: "log.cleaner.max.compaction.lag.ms")],
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "max.message.bytes", type: .int, defaultValue: "1048588",
            documentation: "Largest record batch, after compression, that this topic accepts.",
            brokerSynonyms: [ConfigSynonym(name: "message.max.bytes")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "message.downconversion.enable", type: .boolean, defaultValue: "true",
            documentation:
                "Deprecated: whether the broker converts batches to an older format for fetchers that need it.",
            brokerSynonyms: [ConfigSynonym(name: "log.message.downconversion.enable")],
            dynamic: true),
        ConfigDefinition(
            name: "message.format.version", type: .string, defaultValue: "3.0-IV1",
            documentation:
                "Deprecated: record format version for the topic, ignored once the inter-broker protocol is 3.0 or newer.",
            brokerSynonyms: [ConfigSynonym(name: "log.message.format.version")],
            dynamic: true),
        ConfigDefinition(
            name: "message.timestamp.after.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "How far in the future a CreateTime record timestamp may be compared with the broker clock.",
            brokerSynonyms: [ConfigSynonym(name: "log.message.timestamp.after.max.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "message.timestamp.before.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "How far in the past a CreateTime record timestamp may be compared with the broker clock.",
            brokerSynonyms: [ConfigSynonym(name: "log.message.timestamp.before.max.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "message.timestamp.difference.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation:
                "Deprecated: largest allowed gap in either direction between a CreateTime timestamp and the broker clock.",
            brokerSynonyms: [ConfigSynonym(name: "log.message.timestamp.difference.max.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "message.timestamp.type", type: .string, defaultValue: "CreateTime",
            documentation:
                "Whether record timestamps come from the producer (CreateTime) or from the broker at append (LogAppendTime).",
            brokerSynonyms: [ConfigSynonym(name: "log.message.timestamp.type")],
            dynamic: true, validValues: ["CreateTime", "LogAppendTime"]),
        ConfigDefinition(
            name: "min.cleanable.dirty.ratio", type: .double, defaultValue: "0.5",
            documentation: "Share of uncompacted log that makes a partition eligible for cleaning.",
            brokerSynonyms: [ConfigSynonym(name: "log.cleaner.min.cleanable.ratio")],
            dynamic: true, minimum: 0, maximum: 1),
        ConfigDefinition(
            name: "min.compaction.lag.ms", type: .long, defaultValue: "0",
            documentation: "Minimum age a record must reach before the cleaner may compact it.",
            brokerSynonyms: [ConfigSynonym(name: "log.cleaner.min.compaction.lag.ms")],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "min.insync.replicas", type: .int, defaultValue: "1",
            documentation: "Fewest in-sync replicas that must hold a write for an acks=all produce to succeed.",
            brokerSynonyms: [ConfigSynonym(name: "min.insync.replicas")],
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "preallocate", type: .boolean, defaultValue: "false",
            documentation: "Whether new segment files are allocated at full size on disk when they are created.",
            brokerSynonyms: [ConfigSynonym(name: "log.preallocate")],
            dynamic: true),
        ConfigDefinition(
            name: "remote.log.copy.disable", type: .boolean, defaultValue: "false",
            documentation: "Stops copying segments to remote storage while keeping already tiered data readable.",
            dynamic: true),
        ConfigDefinition(
            name: "remote.log.delete.on.disable", type: .boolean, defaultValue: "false",
            documentation: "Whether remote data is deleted when tiered storage is turned off for the topic.",
            dynamic: true),
        ConfigDefinition(
            name: "remote.storage.enable", type: .boolean, defaultValue: "false",
            documentation: "Turns on tiered storage for the topic.",
            dynamic: true),
        ConfigDefinition(
            name: "retention.bytes", type: .long, defaultValue: "-1",
            documentation: "Size a partition may grow to before old segments are deleted; -1 means no size limit.",
            brokerSynonyms: [ConfigSynonym(name: "log.retention.bytes")],
            dynamic: true),
        ConfigDefinition(
            name: "retention.ms", type: .long, defaultValue: "604800000",
            documentation: "How long old segments are kept before deletion; -1 means no time limit.",
            brokerSynonyms: [
                ConfigSynonym(name: "log.retention.ms"),
                ConfigSynonym(name: "log.retention.minutes", multiplier: 60_000),
                ConfigSynonym(name: "log.retention.hours", multiplier: 3_600_000),
            ],
            dynamic: true, minimum: -1),
        ConfigDefinition(
            name: "segment.bytes", type: .int, defaultValue: "1073741824",
            documentation: "Size at which the active segment file is closed and a new one is rolled.",
            brokerSynonyms: [ConfigSynonym(name: "log.segment.bytes")],
            dynamic: true, minimum: 14),
        ConfigDefinition(
            name: "segment.index.bytes", type: .int, defaultValue: "10485760",
            documentation: "Maximum size of the offset and time index files of a segment.",
            brokerSynonyms: [ConfigSynonym(name: "log.index.size.max.bytes")],
            dynamic: true, minimum: 4),
        ConfigDefinition(
            name: "segment.jitter.ms", type: .long, defaultValue: "0",
            documentation: "Largest random amount subtracted from segment.ms so partitions do not all roll at once.",
            brokerSynonyms: [
                ConfigSynonym(name: "log.roll.jitter.ms"),
                ConfigSynonym(name: "log.roll.jitter.hours", multiplier: 3_600_000),
            ],
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "segment.ms", type: .long, defaultValue: "604800000",
            documentation: "Age after which the active segment is rolled even if it is not full.",
            brokerSynonyms: [
                ConfigSynonym(name: "log.roll.ms"), ConfigSynonym(name: "log.roll.hours", multiplier: 3_600_000),
            ],
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "unclean.leader.election.enable", type: .boolean, defaultValue: "false",
            documentation:
                "Whether an out-of-sync replica may become leader as a last resort, at the risk of losing data.",
            brokerSynonyms: [ConfigSynonym(name: "unclean.leader.election.enable")],
            dynamic: true),
    ]

    /// Broker-level configs (218 keys), sorted by name: every key an operator commonly sets in
    /// server.properties for a KRaft node, every broker synonym of a topic config, and the log,
    /// log cleaner, replication, group, offsets, transaction, quorum, socket, SASL and SSL families.
    /// Listener-prefixed variants (listener.name.<l>.<key>) are not listed separately.
    public static let broker: [ConfigDefinition] = [
        ConfigDefinition(
            name: "advertised.listeners", type: .string, defaultValue: nil,
            documentation: "Listener addresses published to clients and other brokers when they differ from listeners.",
            dynamic: true),
        ConfigDefinition(
            name: "alter.config.policy.class.name", type: .classType, defaultValue: nil,
            documentation: "Class that validates configuration change requests.",
            dynamic: false),
        ConfigDefinition(
            name: "authorizer.class.name", type: .string, defaultValue: "",
            documentation: "Fully qualified class of the authorizer; empty disables authorization.",
            dynamic: false),
        ConfigDefinition(
            name: "auto.create.topics.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether metadata requests for a missing topic create it automatically.",
            dynamic: false),
        ConfigDefinition(
            name: "auto.leader.rebalance.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether leadership is periodically moved back to preferred replicas.",
            dynamic: false),
        ConfigDefinition(
            name: "background.threads", type: .int, defaultValue: "10",
            documentation: "Threads used for miscellaneous background tasks.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "broker.heartbeat.interval.ms", type: .int, defaultValue: "2000",
            documentation: "Interval between a broker's heartbeats to the active controller.",
            dynamic: false),
        ConfigDefinition(
            name: "broker.id", type: .int, defaultValue: "-1",
            documentation: "Legacy broker identifier; in KRaft mode it must match node.id when set.",
            dynamic: false),
        ConfigDefinition(
            name: "broker.rack", type: .string, defaultValue: nil,
            documentation: "Rack or zone label of the broker, used for rack-aware replica placement.",
            dynamic: false),
        ConfigDefinition(
            name: "broker.session.timeout.ms", type: .int, defaultValue: "9000",
            documentation: "How long a broker stays registered without heartbeating before it is fenced.",
            dynamic: false),
        ConfigDefinition(
            name: "compression.gzip.level", type: .int, defaultValue: "-1",
            documentation: "Default gzip level when the broker recompresses batches.",
            dynamic: true, minimum: -1, maximum: 9),
        ConfigDefinition(
            name: "compression.lz4.level", type: .int, defaultValue: "9",
            documentation: "Default lz4 level when the broker recompresses batches.",
            dynamic: true, minimum: 1, maximum: 17),
        ConfigDefinition(
            name: "compression.type", type: .string, defaultValue: "producer",
            documentation: "Default codec brokers store batches in; producer keeps the producer's codec.",
            dynamic: true, validValues: ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        ConfigDefinition(
            name: "compression.zstd.level", type: .int, defaultValue: "3",
            documentation: "Default zstd level when the broker recompresses batches.",
            dynamic: true, minimum: -131072, maximum: 22),
        ConfigDefinition(
            name: "connection.failed.authentication.delay.ms", type: .int, defaultValue: "100",
            documentation: "Delay before closing a connection whose authentication failed.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "connections.max.idle.ms", type: .long, defaultValue: "600000",
            documentation: "Idle time after which the server closes a client connection.",
            dynamic: false),
        ConfigDefinition(
            name: "connections.max.reauth.ms", type: .long, defaultValue: "0",
            documentation:
                "Longest session lifetime before a client must re-authenticate; 0 disables re-authentication.",
            dynamic: false),
        ConfigDefinition(
            name: "controlled.shutdown.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether the broker hands off leadership before shutting down.",
            dynamic: false),
        ConfigDefinition(
            name: "controlled.shutdown.max.retries", type: .int, defaultValue: "3",
            documentation: "Attempts at a controlled shutdown before the broker gives up (ZooKeeper mode).",
            dynamic: false),
        ConfigDefinition(
            name: "controlled.shutdown.retry.backoff.ms", type: .long, defaultValue: "5000",
            documentation: "Pause between controlled shutdown attempts.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.listener.names", type: .string, defaultValue: nil,
            documentation:
                "Comma-separated names of the listeners the controllers serve on; brokers use the first one.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.append.linger.ms", type: .int, defaultValue: "25",
            documentation: "How long the quorum leader batches metadata writes before flushing them.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.bootstrap.servers", type: .list, defaultValue: "",
            documentation: "Comma-separated host:port endpoints used to discover the controller quorum.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.election.backoff.max.ms", type: .int, defaultValue: "1000",
            documentation: "Upper bound of the randomized backoff between election attempts.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.election.timeout.ms", type: .int, defaultValue: "1000",
            documentation: "How long a voter waits without hearing from a leader before starting an election.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.fetch.timeout.ms", type: .int, defaultValue: "2000",
            documentation:
                "How long a voter goes without a successful fetch from the leader before becoming a candidate.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.request.timeout.ms", type: .int, defaultValue: "2000",
            documentation: "How long a quorum request may wait for a response before it is retried or failed.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.retry.backoff.ms", type: .int, defaultValue: "20",
            documentation: "Pause before retrying a failed quorum request.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.quorum.voters", type: .list, defaultValue: "",
            documentation: "Static controller quorum as comma-separated id@host:port entries.",
            dynamic: false),
        ConfigDefinition(
            name: "controller.socket.timeout.ms", type: .int, defaultValue: "30000",
            documentation: "Socket timeout for controller-to-broker channels.",
            dynamic: false),
        ConfigDefinition(
            name: "create.topic.policy.class.name", type: .classType, defaultValue: nil,
            documentation: "Class that validates topic creation requests.",
            dynamic: false),
        ConfigDefinition(
            name: "default.replication.factor", type: .int, defaultValue: "1",
            documentation: "Replication factor for topics created without an explicit factor.",
            dynamic: false),
        ConfigDefinition(
            name: "delete.records.purgatory.purge.interval.requests", type: .int, defaultValue: "1",
            documentation: "Delete-records requests between purges of their purgatory.",
            dynamic: false),
        ConfigDefinition(
            name: "delete.topic.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether topics can be deleted through the admin API.",
            dynamic: false),
        ConfigDefinition(
            name: "early.start.listeners", type: .string, defaultValue: nil,
            documentation: "Listeners that may start accepting connections before the authorizer is ready.",
            dynamic: false),
        ConfigDefinition(
            name: "fetch.max.bytes", type: .int, defaultValue: "57671680",
            documentation: "Upper bound on the bytes returned by one fetch request.",
            dynamic: false, minimum: 1024),
        ConfigDefinition(
            name: "fetch.purgatory.purge.interval.requests", type: .int, defaultValue: "1000",
            documentation: "Fetch requests between purges of the fetch purgatory.",
            dynamic: false),
        ConfigDefinition(
            name: "group.consumer.assignors", type: .list,
            defaultValue:
                "org.apache.kafka.coordinator.group.assignor.UniformAssignor,org.apache.kafka.coordinator.group.assignor.RangeAssignor",
            documentation: "Server-side partition assignors, the first being the default.",
            dynamic: false),
        ConfigDefinition(
            name: "group.consumer.heartbeat.interval.ms", type: .int, defaultValue: "5000",
            documentation: "Heartbeat interval handed to consumer-protocol members.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.max.heartbeat.interval.ms", type: .int, defaultValue: "15000",
            documentation: "Longest heartbeat interval a consumer-protocol member may use.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.max.session.timeout.ms", type: .int, defaultValue: "60000",
            documentation: "Longest session timeout a consumer-protocol member may use.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.max.size", type: .int, defaultValue: "2147483647",
            documentation: "Maximum number of members in a consumer-protocol group.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.min.heartbeat.interval.ms", type: .int, defaultValue: "5000",
            documentation: "Shortest heartbeat interval a consumer-protocol member may use.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.min.session.timeout.ms", type: .int, defaultValue: "45000",
            documentation: "Shortest session timeout a consumer-protocol member may use.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.consumer.session.timeout.ms", type: .int, defaultValue: "45000",
            documentation: "Session timeout for members of consumer-protocol groups.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.coordinator.rebalance.protocols", type: .list, defaultValue: "classic",
            documentation: "Group rebalance protocols the coordinator enables.",
            dynamic: false, validValues: ["consumer", "classic", "share"]),
        ConfigDefinition(
            name: "group.coordinator.threads", type: .int, defaultValue: "1",
            documentation: "Threads used by the new group coordinator.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.initial.rebalance.delay.ms", type: .int, defaultValue: "3000",
            documentation: "How long a new classic group waits for more members before its first rebalance.",
            dynamic: false),
        ConfigDefinition(
            name: "group.max.session.timeout.ms", type: .int, defaultValue: "1800000",
            documentation: "Longest session timeout a classic group member may request.",
            dynamic: false),
        ConfigDefinition(
            name: "group.max.size", type: .int, defaultValue: "2147483647",
            documentation: "Maximum number of members in a classic group.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "group.min.session.timeout.ms", type: .int, defaultValue: "6000",
            documentation: "Shortest session timeout a classic group member may request.",
            dynamic: false),
        ConfigDefinition(
            name: "initial.broker.registration.timeout.ms", type: .int, defaultValue: "60000",
            documentation: "How long a starting broker waits to register with the controllers before giving up.",
            dynamic: false),
        ConfigDefinition(
            name: "inter.broker.listener.name", type: .string, defaultValue: nil,
            documentation: "Listener used for broker-to-broker traffic; exclusive with security.inter.broker.protocol.",
            dynamic: false),
        ConfigDefinition(
            name: "inter.broker.protocol.version", type: .string, defaultValue: "3.9-IV0",
            documentation:
                "Protocol version brokers use among themselves; ignored in KRaft mode, where metadata.version rules.",
            dynamic: false),
        ConfigDefinition(
            name: "leader.imbalance.check.interval.seconds", type: .long, defaultValue: "300",
            documentation: "How often the controller checks whether leadership needs rebalancing.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "leader.imbalance.per.broker.percentage", type: .int, defaultValue: "10",
            documentation: "Share of non-preferred leaders per broker, in percent, that triggers a leader rebalance.",
            dynamic: false),
        ConfigDefinition(
            name: "listener.security.protocol.map", type: .string,
            defaultValue: "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
            documentation: "Mapping of listener names to security protocols as NAME:PROTOCOL pairs.",
            dynamic: true),
        ConfigDefinition(
            name: "listeners", type: .string, defaultValue: "PLAINTEXT://:9092",
            documentation: "Comma-separated listener URIs the node binds to, each as NAME://host:port.",
            dynamic: true),
        ConfigDefinition(
            name: "log.cleaner.backoff.ms", type: .long, defaultValue: "15000",
            documentation: "Pause of the cleaner when no log needs cleaning.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.cleaner.dedupe.buffer.size", type: .long, defaultValue: "134217728",
            documentation: "Memory shared by all cleaner threads for the key-to-offset map.",
            dynamic: true),
        ConfigDefinition(
            name: "log.cleaner.delete.retention.ms", type: .long, defaultValue: "86400000",
            documentation: "Default time tombstones are retained in compacted topics.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.cleaner.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether the log cleaner runs, which compacted topics require.",
            dynamic: false),
        ConfigDefinition(
            name: "log.cleaner.io.buffer.load.factor", type: .double, defaultValue: "0.9",
            documentation: "Fill ratio of the cleaner's deduplication hash map.",
            dynamic: true),
        ConfigDefinition(
            name: "log.cleaner.io.buffer.size", type: .int, defaultValue: "524288",
            documentation: "Memory shared by all cleaner threads for read and write buffers.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.cleaner.io.max.bytes.per.second", type: .double, defaultValue: "1.7976931348623157E308",
            documentation: "Throttle on combined cleaner read and write throughput.",
            dynamic: true),
        ConfigDefinition(
            name: "log.cleaner.max.compaction.lag.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Default maximum time a record may stay uncompacted.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "log.cleaner.min.cleanable.ratio", type: .double, defaultValue: "0.5",
            documentation: "Default dirty-to-total ratio that makes a log eligible for cleaning.",
            dynamic: true, minimum: 0, maximum: 1),
        ConfigDefinition(
            name: "log.cleaner.min.compaction.lag.ms", type: .long, defaultValue: "0",
            documentation: "Default minimum age before a record may be compacted.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.cleaner.threads", type: .int, defaultValue: "1",
            documentation: "Threads that compact logs in the background.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.cleanup.policy", type: .list, defaultValue: "delete",
            documentation: "Default cleanup strategies for old segments: delete, compact, or both.",
            dynamic: true, validValues: ["compact", "delete"]),
        ConfigDefinition(
            name: "log.dir", type: .string, defaultValue: "/tmp/kafka-logs",
            documentation: "Data directory used when log.dirs is not set.",
            dynamic: false),
        ConfigDefinition(
            name: "log.dir.failure.timeout.ms", type: .long, defaultValue: "30000",
            documentation: "How long a broker keeps trying to report a failed log directory before shutting down.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "log.drop.cache.behind.bytes", type: .long, defaultValue: "-1",
            documentation:
                "Runnel only: bytes behind each partition's log end kept in the page cache; older written bytes are written back and dropped from it (for hosts where new page-cache memory is expensive, or counts against a container's limit). -1 leaves caching to the kernel.",
            dynamic: false, minimum: -1),
        ConfigDefinition(
            name: "log.dirs", type: .string, defaultValue: nil,
            documentation: "Comma-separated data directories; falls back to log.dir when unset.",
            dynamic: false),
        ConfigDefinition(
            name: "log.flush.interval.messages", type: .long, defaultValue: "9223372036854775807",
            documentation: "Default number of messages appended before a partition is flushed.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "log.flush.interval.ms", type: .long, defaultValue: nil,
            documentation: "Default maximum time data stays unflushed; falls back to log.flush.scheduler.interval.ms.",
            dynamic: true),
        ConfigDefinition(
            name: "log.flush.offset.checkpoint.interval.ms", type: .int, defaultValue: "60000",
            documentation: "How often the recovery-point checkpoint file is written.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "log.flush.scheduler.interval.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "How often the flusher checks whether any log needs flushing.",
            dynamic: false),
        ConfigDefinition(
            name: "log.flush.start.offset.checkpoint.interval.ms", type: .int, defaultValue: "60000",
            documentation: "How often the log-start-offset checkpoint file is written.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "log.index.interval.bytes", type: .int, defaultValue: "4096",
            documentation: "Default byte interval between offset index entries.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.index.size.max.bytes", type: .int, defaultValue: "10485760",
            documentation: "Default maximum size of a segment's offset index.",
            dynamic: true, minimum: 4),
        ConfigDefinition(
            name: "log.local.retention.bytes", type: .long, defaultValue: "-2",
            documentation: "Default size limit of local data for tiered topics; -2 uses the topic's retention.bytes.",
            dynamic: true, minimum: -2),
        ConfigDefinition(
            name: "log.local.retention.ms", type: .long, defaultValue: "-2",
            documentation: "Default age limit of local data for tiered topics; -2 uses the topic's retention.ms.",
            dynamic: true, minimum: -2),
        ConfigDefinition(
            name: "log.message.downconversion.enable", type: .boolean, defaultValue: "true",
            documentation: "Deprecated: whether fetches from old clients may be served by down-converting batches.",
            dynamic: true),
        ConfigDefinition(
            name: "log.message.format.version", type: .string, defaultValue: "3.0-IV1",
            documentation:
                "Deprecated: default record format version, ignored with an inter-broker protocol of 3.0 or newer.",
            dynamic: false),
        ConfigDefinition(
            name: "log.message.timestamp.after.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Default limit on how far in the future a CreateTime timestamp may be.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.message.timestamp.before.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Default limit on how far in the past a CreateTime timestamp may be.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.message.timestamp.difference.max.ms", type: .long, defaultValue: "9223372036854775807",
            documentation: "Deprecated: default largest gap between a CreateTime timestamp and the broker clock.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "log.message.timestamp.type", type: .string, defaultValue: "CreateTime",
            documentation: "Default timestamp source for records: CreateTime or LogAppendTime.",
            dynamic: true, validValues: ["CreateTime", "LogAppendTime"]),
        ConfigDefinition(
            name: "log.preallocate", type: .boolean, defaultValue: "false",
            documentation: "Whether new segment files are preallocated by default.",
            dynamic: true),
        ConfigDefinition(
            name: "log.retention.bytes", type: .long, defaultValue: "-1",
            documentation: "Default size limit of a partition before old segments are deleted; -1 means none.",
            dynamic: true),
        ConfigDefinition(
            name: "log.retention.check.interval.ms", type: .long, defaultValue: "300000",
            documentation: "How often the broker looks for segments that retention allows it to delete.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "log.retention.hours", type: .int, defaultValue: "168",
            documentation: "Default retention time in hours, the lowest-priority retention setting.",
            dynamic: false),
        ConfigDefinition(
            name: "log.retention.minutes", type: .int, defaultValue: nil,
            documentation: "Default retention time in minutes, used when log.retention.ms is unset.",
            dynamic: false),
        ConfigDefinition(
            name: "log.retention.ms", type: .long, defaultValue: nil,
            documentation:
                "Default retention time in milliseconds; overrides the minutes and hours forms, -1 keeps data forever.",
            dynamic: true),
        ConfigDefinition(
            name: "log.roll.hours", type: .int, defaultValue: "168",
            documentation: "Default age in hours after which a segment is rolled, used when log.roll.ms is unset.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "log.roll.jitter.hours", type: .int, defaultValue: "0",
            documentation: "Default roll jitter in hours, used when log.roll.jitter.ms is unset.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "log.roll.jitter.ms", type: .long, defaultValue: nil,
            documentation: "Default roll jitter in milliseconds; overrides log.roll.jitter.hours.",
            dynamic: true),
        ConfigDefinition(
            name: "log.roll.ms", type: .long, defaultValue: nil,
            documentation: "Default age in milliseconds after which a segment is rolled; overrides log.roll.hours.",
            dynamic: true),
        ConfigDefinition(
            name: "log.segment.bytes", type: .int, defaultValue: "1073741824",
            documentation: "Default size at which a log segment is rolled.",
            dynamic: true, minimum: 14),
        ConfigDefinition(
            name: "log.segment.delete.delay.ms", type: .long, defaultValue: "60000",
            documentation: "Default grace period before a deleted segment's files are removed.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "max.connection.creation.rate", type: .int, defaultValue: "2147483647",
            documentation: "Maximum number of new connections per second the broker accepts.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "max.connections", type: .int, defaultValue: "2147483647",
            documentation: "Maximum number of connections the broker accepts at once across all listeners.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "max.connections.per.ip", type: .int, defaultValue: "2147483647",
            documentation: "Maximum number of connections accepted from a single IP address.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "max.connections.per.ip.overrides", type: .string, defaultValue: "",
            documentation: "Per-host or per-IP exceptions to max.connections.per.ip, as host:count pairs.",
            dynamic: true),
        ConfigDefinition(
            name: "max.incremental.fetch.session.cache.slots", type: .int, defaultValue: "1000",
            documentation: "Number of incremental fetch sessions the broker keeps cached.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "message.max.bytes", type: .int, defaultValue: "1048588",
            documentation:
                "Largest record batch, after compression, the broker accepts; topics override it with max.message.bytes.",
            dynamic: true, minimum: 0),
        ConfigDefinition(
            name: "metadata.log.dir", type: .string, defaultValue: nil,
            documentation: "Directory for the cluster metadata log; defaults to the first entry of log.dirs.",
            dynamic: false),
        ConfigDefinition(
            name: "metadata.log.max.record.bytes.between.snapshots", type: .long, defaultValue: "20971520",
            documentation: "Bytes of new metadata records that trigger a fresh metadata snapshot.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "metadata.log.max.snapshot.interval.ms", type: .long, defaultValue: "3600000",
            documentation:
                "Longest time before unsnapshotted metadata records trigger a snapshot; 0 disables time-based snapshots.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "metadata.log.segment.bytes", type: .int, defaultValue: "1073741824",
            documentation: "Maximum size of one metadata log segment.",
            dynamic: false, minimum: 12),
        ConfigDefinition(
            name: "metadata.log.segment.ms", type: .long, defaultValue: "604800000",
            documentation: "Age after which the active metadata log segment is rolled.",
            dynamic: false),
        ConfigDefinition(
            name: "metadata.max.idle.interval.ms", type: .int, defaultValue: "500",
            documentation: "How often the active controller appends a no-op record to the metadata log; 0 disables it.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "metadata.max.retention.bytes", type: .long, defaultValue: "104857600",
            documentation: "Soft size limit of metadata log plus snapshots before old files are deleted.",
            dynamic: false),
        ConfigDefinition(
            name: "metadata.max.retention.ms", type: .long, defaultValue: "604800000",
            documentation: "Soft age limit for metadata log segments and snapshots before they are deleted.",
            dynamic: false),
        ConfigDefinition(
            name: "metric.reporters", type: .list, defaultValue: "",
            documentation: "Classes notified of new metrics as they are created.",
            dynamic: true),
        ConfigDefinition(
            name: "metrics.num.samples", type: .int, defaultValue: "2",
            documentation: "Number of samples kept per metric window.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "metrics.recording.level", type: .string, defaultValue: "INFO",
            documentation: "Highest recording level of metrics that are collected.",
            dynamic: false),
        ConfigDefinition(
            name: "metrics.sample.window.ms", type: .long, defaultValue: "30000",
            documentation: "Time window covered by one metrics sample.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "min.insync.replicas", type: .int, defaultValue: "1",
            documentation: "Default minimum number of in-sync replicas needed for acks=all writes.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "node.id", type: .int, defaultValue: "-1",
            documentation: "Identifier of this node in the KRaft cluster; required when process.roles is set.",
            dynamic: false),
        ConfigDefinition(
            name: "num.io.threads", type: .int, defaultValue: "8",
            documentation: "Threads that process requests, including disk I/O.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "num.network.threads", type: .int, defaultValue: "3",
            documentation: "Threads per listener that read requests from and write responses to the network.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "num.partitions", type: .int, defaultValue: "1",
            documentation: "Partition count for topics created without an explicit count.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "num.recovery.threads.per.data.dir", type: .int, defaultValue: "1",
            documentation: "Threads per data directory used for log recovery at startup and flushing at shutdown.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "num.replica.alter.log.dirs.threads", type: .int, defaultValue: nil,
            documentation:
                "Threads that move replicas between log directories; defaults to the number of log directories.",
            dynamic: false),
        ConfigDefinition(
            name: "num.replica.fetchers", type: .int, defaultValue: "1",
            documentation: "Fetcher threads used to replicate from each source broker.",
            dynamic: true),
        ConfigDefinition(
            name: "offset.metadata.max.bytes", type: .int, defaultValue: "4096",
            documentation: "Largest metadata string allowed with a committed offset.",
            dynamic: false),
        ConfigDefinition(
            name: "offsets.commit.required.acks", type: .short, defaultValue: "-1",
            documentation: "Deprecated: acknowledgements required before an offset commit is accepted.",
            dynamic: false),
        ConfigDefinition(
            name: "offsets.commit.timeout.ms", type: .int, defaultValue: "5000",
            documentation: "How long an offset commit waits for the offsets topic replicas.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.load.buffer.size", type: .int, defaultValue: "5242880",
            documentation: "Read batch size used when loading the offsets topic into the cache.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.retention.check.interval.ms", type: .long, defaultValue: "600000",
            documentation: "How often expired offsets are looked for.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.retention.minutes", type: .int, defaultValue: "10080",
            documentation: "How long committed offsets of an empty or unsubscribed group are kept.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.topic.compression.codec", type: .int, defaultValue: "0",
            documentation: "Compression codec id used for writes to the offsets topic.",
            dynamic: false),
        ConfigDefinition(
            name: "offsets.topic.num.partitions", type: .int, defaultValue: "50",
            documentation: "Partition count of the internal offsets topic; fix it before deployment.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.topic.replication.factor", type: .short, defaultValue: "3",
            documentation: "Replication factor of the internal offsets topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "offsets.topic.segment.bytes", type: .int, defaultValue: "104857600",
            documentation: "Segment size of the internal offsets topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "principal.builder.class", type: .classType,
            defaultValue: "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder",
            documentation: "Class that builds the principal used for authorization from a connection.",
            dynamic: true),
        ConfigDefinition(
            name: "process.roles", type: .list, defaultValue: "",
            documentation: "Roles this node runs in KRaft mode: broker, controller, or both.",
            dynamic: false, validValues: ["broker", "controller"]),
        ConfigDefinition(
            name: "producer.id.expiration.ms", type: .int, defaultValue: "86400000",
            documentation: "Idle time after which a producer id's state is dropped from a partition.",
            dynamic: true, minimum: 1),
        ConfigDefinition(
            name: "producer.purgatory.purge.interval.requests", type: .int, defaultValue: "1000",
            documentation: "Produce requests between purges of the produce purgatory.",
            dynamic: false),
        ConfigDefinition(
            name: "queued.max.request.bytes", type: .long, defaultValue: "-1",
            documentation: "Bytes of queued requests allowed before reading pauses; -1 means unlimited.",
            dynamic: false),
        ConfigDefinition(
            name: "queued.max.requests", type: .int, defaultValue: "500",
            documentation: "Requests that may wait in the request queue before network threads stop reading.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "quota.window.num", type: .int, defaultValue: "11",
            documentation: "Samples kept for client quota accounting.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "quota.window.size.seconds", type: .int, defaultValue: "1",
            documentation: "Length of one client quota sample window.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "remote.log.storage.system.enable", type: .boolean, defaultValue: "false",
            documentation: "Whether tiered storage support is enabled on this broker.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.fetch.backoff.ms", type: .int, defaultValue: "1000",
            documentation: "Pause after a follower fetch hits a partition error.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "replica.fetch.max.bytes", type: .int, defaultValue: "1048576",
            documentation: "Bytes a follower asks for per partition in one fetch.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "replica.fetch.min.bytes", type: .int, defaultValue: "1",
            documentation: "Bytes a follower fetch waits for before the leader answers.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.fetch.response.max.bytes", type: .int, defaultValue: "10485760",
            documentation: "Bytes a follower asks for across a whole fetch response.",
            dynamic: false, minimum: 0),
        ConfigDefinition(
            name: "replica.fetch.wait.max.ms", type: .int, defaultValue: "500",
            documentation: "How long a follower fetch may wait on the leader for data.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.high.watermark.checkpoint.interval.ms", type: .long, defaultValue: "5000",
            documentation: "How often high watermarks are checkpointed to disk.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.lag.time.max.ms", type: .long, defaultValue: "30000",
            documentation: "How long a follower may fall behind or stay silent before it is dropped from the ISR.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.selector.class", type: .string, defaultValue: nil,
            documentation: "ReplicaSelector implementation that picks a preferred read replica for consumers.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.socket.receive.buffer.bytes", type: .int, defaultValue: "65536",
            documentation: "Socket receive buffer for follower connections to leaders.",
            dynamic: false),
        ConfigDefinition(
            name: "replica.socket.timeout.ms", type: .int, defaultValue: "30000",
            documentation:
                "Socket timeout for follower fetch requests: a follower waits replica.fetch.wait.max.ms plus this (at most plus replica.lag.time.max.ms) for an answer, then fetches again on a new connection.",
            dynamic: false),
        ConfigDefinition(
            name: "replication.quota.window.num", type: .int, defaultValue: "11",
            documentation: "Samples kept for replication quota accounting.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "replication.quota.window.size.seconds", type: .int, defaultValue: "1",
            documentation: "Length of one replication quota sample window.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "request.timeout.ms", type: .int, defaultValue: "30000",
            documentation: "How long the node waits for a response to its own outgoing requests.",
            dynamic: false),
        ConfigDefinition(
            name: "sasl.enabled.mechanisms", type: .list, defaultValue: "GSSAPI",
            documentation: "SASL mechanisms the server accepts.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.jaas.config", type: .password, defaultValue: nil,
            documentation: "Inline JAAS login configuration for SASL connections.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.kinit.cmd", type: .string, defaultValue: "/usr/bin/kinit",
            documentation: "Path of the kinit command.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.min.time.before.relogin", type: .long, defaultValue: "60000",
            documentation: "Minimum sleep between Kerberos refresh attempts.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.principal.to.local.rules", type: .list, defaultValue: "DEFAULT",
            documentation: "Rules that map Kerberos principals to short names.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.service.name", type: .string, defaultValue: nil,
            documentation: "Kerberos principal name the server runs as.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.ticket.renew.jitter", type: .double, defaultValue: "0.05",
            documentation: "Random jitter added to the Kerberos renewal time.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.kerberos.ticket.renew.window.factor", type: .double, defaultValue: "0.8",
            documentation: "Share of a ticket's lifetime after which renewal is attempted.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.login.callback.handler.class", type: .classType, defaultValue: nil,
            documentation: "Callback handler class for the SASL login module.",
            dynamic: false),
        ConfigDefinition(
            name: "sasl.login.class", type: .classType, defaultValue: nil,
            documentation: "Login class for SASL authentication.",
            dynamic: false),
        ConfigDefinition(
            name: "sasl.login.refresh.buffer.seconds", type: .short, defaultValue: "300",
            documentation: "Time kept before credential expiry when refreshing a login.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.login.refresh.min.period.seconds", type: .short, defaultValue: "60",
            documentation: "Minimum wait between login refreshes.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.login.refresh.window.factor", type: .double, defaultValue: "0.8",
            documentation: "Share of a credential's lifetime after which login refresh is attempted.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.login.refresh.window.jitter", type: .double, defaultValue: "0.05",
            documentation: "Random jitter added to the login refresh time.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.mechanism.controller.protocol", type: .string, defaultValue: "GSSAPI",
            documentation: "SASL mechanism used when talking to the controllers.",
            dynamic: false),
        ConfigDefinition(
            name: "sasl.mechanism.inter.broker.protocol", type: .string, defaultValue: "GSSAPI",
            documentation: "SASL mechanism for broker-to-broker connections.",
            dynamic: true),
        ConfigDefinition(
            name: "sasl.server.callback.handler.class", type: .classType, defaultValue: nil,
            documentation: "Callback handler class for SASL servers.",
            dynamic: false),
        ConfigDefinition(
            name: "sasl.server.max.receive.size", type: .int, defaultValue: "524288",
            documentation: "Largest SASL frame accepted before authentication completes.",
            dynamic: false),
        ConfigDefinition(
            name: "security.inter.broker.protocol", type: .string, defaultValue: "PLAINTEXT",
            documentation:
                "Security protocol for broker-to-broker traffic when no inter-broker listener name is given.",
            dynamic: false, validValues: ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
        ConfigDefinition(
            name: "security.providers", type: .string, defaultValue: nil,
            documentation: "Creator classes of extra security algorithm providers.",
            dynamic: false),
        ConfigDefinition(
            name: "socket.connection.setup.timeout.max.ms", type: .long, defaultValue: "30000",
            documentation: "Upper bound of the exponentially growing connection setup timeout.",
            dynamic: false),
        ConfigDefinition(
            name: "socket.connection.setup.timeout.ms", type: .long, defaultValue: "10000",
            documentation: "Initial time the node waits for an outgoing connection to be established.",
            dynamic: false),
        ConfigDefinition(
            name: "socket.listen.backlog.size", type: .int, defaultValue: "50",
            documentation: "Maximum number of pending connections queued on a listening socket.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "socket.receive.buffer.bytes", type: .int, defaultValue: "102400",
            documentation: "SO_RCVBUF size of server sockets; -1 uses the OS default.",
            dynamic: false),
        ConfigDefinition(
            name: "socket.request.max.bytes", type: .int, defaultValue: "104857600",
            documentation: "Largest request size the server reads from a socket.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "socket.send.buffer.bytes", type: .int, defaultValue: "102400",
            documentation: "SO_SNDBUF size of server sockets; -1 uses the OS default.",
            dynamic: false),
        ConfigDefinition(
            name: "ssl.allow.dn.changes", type: .boolean, defaultValue: "false",
            documentation: "Whether a reloaded key store may change the certificate's distinguished name.",
            dynamic: false),
        ConfigDefinition(
            name: "ssl.allow.san.changes", type: .boolean, defaultValue: "false",
            documentation: "Whether a reloaded key store may change the certificate's subject alternative names.",
            dynamic: false),
        ConfigDefinition(
            name: "ssl.cipher.suites", type: .list, defaultValue: "",
            documentation: "Cipher suites allowed on SSL connections; empty allows all supported suites.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.client.auth", type: .string, defaultValue: "none",
            documentation: "Whether SSL clients must, may, or need not present a certificate.",
            dynamic: true, validValues: ["required", "requested", "none"]),
        ConfigDefinition(
            name: "ssl.enabled.protocols", type: .list, defaultValue: "TLSv1.2,TLSv1.3",
            documentation: "TLS protocol versions allowed on SSL connections.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.endpoint.identification.algorithm", type: .string, defaultValue: "https",
            documentation: "Algorithm used to check the peer host name against its certificate.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.engine.factory.class", type: .classType, defaultValue: nil,
            documentation: "Custom factory class for SSLEngine objects.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.key.password", type: .password, defaultValue: nil,
            documentation: "Password of the private key in the key store.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.keymanager.algorithm", type: .string, defaultValue: "SunX509",
            documentation: "Key manager factory algorithm for SSL connections.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.keystore.certificate.chain", type: .password, defaultValue: nil,
            documentation: "Certificate chain in PEM form, given inline instead of a key store file.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.keystore.key", type: .password, defaultValue: nil,
            documentation: "Private key in PEM form, given inline instead of a key store file.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.keystore.location", type: .string, defaultValue: nil,
            documentation: "Path of the key store file.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.keystore.password", type: .password, defaultValue: nil,
            documentation: "Password of the key store file.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.keystore.type", type: .string, defaultValue: "JKS",
            documentation: "File format of the key store.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.principal.mapping.rules", type: .string, defaultValue: "DEFAULT",
            documentation: "Rules that map SSL certificate distinguished names to short names.",
            dynamic: false),
        ConfigDefinition(
            name: "ssl.protocol", type: .string, defaultValue: "TLSv1.3",
            documentation: "TLS protocol used to create the SSL context.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.provider", type: .string, defaultValue: nil,
            documentation: "Security provider used for SSL connections.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.secure.random.implementation", type: .string, defaultValue: nil,
            documentation: "SecureRandom implementation used for SSL operations.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.trustmanager.algorithm", type: .string, defaultValue: "PKIX",
            documentation: "Trust manager factory algorithm for SSL connections.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.truststore.certificates", type: .password, defaultValue: nil,
            documentation: "Trusted certificates in PEM form, given inline instead of a trust store file.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.truststore.location", type: .string, defaultValue: nil,
            documentation: "Path of the trust store file.",
            dynamic: true),
        ConfigDefinition(
            name: "ssl.truststore.password", type: .password, defaultValue: nil,
            documentation: "Password of the trust store file.",
            isSensitive: true, dynamic: true),
        ConfigDefinition(
            name: "ssl.truststore.type", type: .string, defaultValue: "JKS",
            documentation: "File format of the trust store.",
            dynamic: true),
        ConfigDefinition(
            name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", type: .int, defaultValue: "10000",
            documentation: "How often timed-out transactions are looked for and aborted.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.max.timeout.ms", type: .int, defaultValue: "900000",
            documentation: "Largest transaction timeout a producer may request.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.partition.verification.enable", type: .boolean, defaultValue: "true",
            documentation: "Whether partitions are verified as part of a transaction before transactional writes.",
            dynamic: true),
        ConfigDefinition(
            name: "transaction.remove.expired.transaction.cleanup.interval.ms", type: .int, defaultValue: "3600000",
            documentation: "How often expired transactional ids are removed.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.state.log.load.buffer.size", type: .int, defaultValue: "5242880",
            documentation: "Read batch size used when loading the transaction state topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.state.log.min.isr", type: .int, defaultValue: "2",
            documentation: "min.insync.replicas of the internal transaction state topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.state.log.num.partitions", type: .int, defaultValue: "50",
            documentation: "Partition count of the internal transaction state topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.state.log.replication.factor", type: .short, defaultValue: "3",
            documentation: "Replication factor of the internal transaction state topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transaction.state.log.segment.bytes", type: .int, defaultValue: "104857600",
            documentation: "Segment size of the internal transaction state topic.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "transactional.id.expiration.ms", type: .int, defaultValue: "604800000",
            documentation: "Idle time after which a transactional id's state is expired.",
            dynamic: false, minimum: 1),
        ConfigDefinition(
            name: "unclean.leader.election.enable", type: .boolean, defaultValue: "false",
            documentation: "Whether out-of-sync replicas may be elected leader as a last resort.",
            dynamic: true),
    ]

    private static let topicByName: [String: ConfigDefinition] = index(topic)
    private static let brokerByName: [String: ConfigDefinition] = index(broker)

    private static func index(_ definitions: [ConfigDefinition]) -> [String: ConfigDefinition] {
        var byName: [String: ConfigDefinition] = [:]
        byName.reserveCapacity(definitions.count)
        for definition in definitions where byName[definition.name] == nil {
            byName[definition.name] = definition
        }
        return byName
    }

    public static func topicConfig(_ name: String) -> ConfigDefinition? {
        topicByName[name]
    }

    public static func brokerConfig(_ name: String) -> ConfigDefinition? {
        brokerByName[name]
    }

    /// Validates a topic config value as Kafka would for CreateTopics/AlterConfigs: nil when valid,
    /// else one sentence (e.g. "Invalid value abc for configuration retention.ms: Not a number of type LONG").
    public static func validateTopicConfig(name: String, value: String) -> String? {
        guard let definition = topicConfig(name) else {
            return "Unknown topic config name: \(name)"
        }
        return validate(definition, value)
    }

    /// Validates a broker config value the same way; unknown broker keys return nil (they are only
    /// warned about elsewhere).
    public static func validateBrokerConfig(name: String, value: String) -> String? {
        guard let definition = brokerConfig(name) else { return nil }
        return validate(definition, value)
    }
}

// MARK: - Validation, following Kafka's ConfigDef parsing and validators

extension ConfigDefinitions {
    /// Keys whose values must name a MetadataVersion (Kafka's MetadataVersionValidator).
    private static let metadataVersionKeys: Set<String> = [
        "message.format.version", "log.message.format.version", "inter.broker.protocol.version",
    ]

    /// Keys whose lists use Kafka's ThrottledReplicaListValidator.
    private static let throttledReplicaKeys: Set<String> = [
        "leader.replication.throttled.replicas", "follower.replication.throttled.replicas",
    ]

    /// Version strings MetadataVersion.fromVersionString accepts in Kafka 3.9: every internal
    /// version plus the short release form, which maps to that release's newest internal version.
    private static let metadataVersions: Set<String> = {
        let internalVersions = [
            "0.8.0", "0.8.1", "0.8.2", "0.9.0",
            "0.10.0-IV0", "0.10.0-IV1", "0.10.1-IV0", "0.10.1-IV1", "0.10.1-IV2", "0.10.2-IV0",
            "0.11.0-IV0", "0.11.0-IV1", "0.11.0-IV2", "1.0-IV0", "1.1-IV0", "2.0-IV0", "2.0-IV1",
            "2.1-IV0", "2.1-IV1", "2.1-IV2", "2.2-IV0", "2.2-IV1", "2.3-IV0", "2.3-IV1", "2.4-IV0",
            "2.4-IV1", "2.5-IV0", "2.6-IV0", "2.7-IV0", "2.7-IV1", "2.7-IV2", "2.8-IV0", "2.8-IV1",
            "3.0-IV0", "3.0-IV1", "3.1-IV0", "3.2-IV0", "3.3-IV0", "3.3-IV1", "3.3-IV2", "3.3-IV3",
            "3.4-IV0", "3.5-IV0", "3.5-IV1", "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2", "3.7-IV0",
            "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4", "3.8-IV0", "3.9-IV0",
        ]
        let releases = [
            "0.10.0", "0.10.1", "0.10.2", "0.11.0", "1.0", "1.1", "2.0", "2.1", "2.2", "2.3", "2.4",
            "2.5", "2.6", "2.7", "2.8", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9",
        ]
        return Set(internalVersions + releases)
    }()

    static func validate(_ definition: ConfigDefinition, _ raw: String) -> String? {
        let value = javaTrim(raw)
        switch definition.type {
        case .boolean:
            let lowered = value.lowercased()
            if lowered == "true" || lowered == "false" { return nil }
            return invalid(definition, raw, "Expected value to be either true or false")
        case .short, .int, .long:
            guard let number = parseInteger(value, definition.type) else {
                return invalid(definition, raw, "Not a number of type \(typeName(definition.type))")
            }
            if definition.name == "compression.gzip.level", number != -1, number < 1 || number > 9 {
                return invalid(definition, String(number), "Value must be between 1 and 9 or equal to -1")
            }
            if let minimum = definition.minimum, number < minimum {
                return invalid(definition, String(number), "Value must be at least \(minimum)")
            }
            if let maximum = definition.maximum, number > maximum {
                return invalid(definition, String(number), "Value must be no more than \(maximum)")
            }
            return nil
        case .double:
            guard let number = parseJavaDouble(value) else {
                return invalid(definition, raw, "Not a number of type DOUBLE")
            }
            // Like Java, NaN fails neither comparison.
            if let minimum = definition.minimum, number < Double(minimum) {
                return invalid(definition, javaDoubleString(number), "Value must be at least \(minimum)")
            }
            if let maximum = definition.maximum, number > Double(maximum) {
                return invalid(definition, javaDoubleString(number), "Value must be no more than \(maximum)")
            }
            return nil
        case .string:
            if let allowed = definition.validValues, !allowed.contains(value) {
                return invalid(definition, value, "String must be one of: " + allowed.joined(separator: ", "))
            }
            if metadataVersionKeys.contains(definition.name), !isMetadataVersion(value) {
                return invalid(definition, value, "Version \(value) is not a valid version")
            }
            return nil
        case .list:
            let elements = splitList(value)
            if let allowed = definition.validValues {
                for element in elements where !allowed.contains(element) {
                    return invalid(definition, element, "String must be one of: " + allowed.joined(separator: ", "))
                }
            }
            if throttledReplicaKeys.contains(definition.name) {
                return validateThrottledReplicas(definition, elements)
            }
            if definition.name == "controller.quorum.voters" {
                return validateQuorumVoters(elements)
            }
            if definition.name == "controller.quorum.bootstrap.servers" {
                return validateQuorumBootstrapServers(elements)
            }
            return nil
        case .classType, .password:
            // Kafka resolves classes by loading them; passwords are opaque.
            return nil
        }
    }

    private static func invalid(_ definition: ConfigDefinition, _ shown: String, _ reason: String) -> String {
        "Invalid value \(shown) for configuration \(definition.name): \(reason)"
    }

    private static func typeName(_ type: ConfigType) -> String {
        switch type {
        case .boolean: return "BOOLEAN"
        case .string: return "STRING"
        case .int: return "INT"
        case .short: return "SHORT"
        case .long: return "LONG"
        case .double: return "DOUBLE"
        case .list: return "LIST"
        case .classType: return "CLASS"
        case .password: return "PASSWORD"
        }
    }

    /// Java's String.trim(): strips leading and trailing code points at or below U+0020.
    static func javaTrim(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0.value > 0x20 }),
            let last = scalars.lastIndex(where: { $0.value > 0x20 })
        else { return "" }
        return String(scalars[first...last])
    }

    /// Java's regex `\s`: space, tab, newline, vertical tab, form feed, carriage return.
    private static func isRegexSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D: return true
        default: return false
        }
    }

    /// Kafka's LIST parsing: an empty (trimmed) value is the empty list; otherwise the value is split
    /// on commas with surrounding whitespace removed, keeping empty elements.
    static func splitList(_ trimmed: String) -> [String] {
        if trimmed.isEmpty { return [] }
        return trimmed.split(separator: ",", omittingEmptySubsequences: false).map { part in
            let scalars = part.unicodeScalars
            guard let first = scalars.firstIndex(where: { !isRegexSpace($0) }),
                let last = scalars.lastIndex(where: { !isRegexSpace($0) })
            else { return "" }
            return String(scalars[first...last])
        }
    }

    /// Java's String.split(String) for a one-character separator: trailing empty strings are dropped.
    private static func javaSplit(_ text: String, _ separator: Character) -> [String] {
        var parts = text.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        while parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        if parts.count == 1, parts[0].isEmpty, !text.isEmpty { return [] }
        return parts
    }

    private static func parseInteger(_ text: String, _ type: ConfigType) -> Int64? {
        switch type {
        case .short: return Int16(text).map(Int64.init)
        case .int: return Int32(text).map(Int64.init)
        default: return Int64(text)
        }
    }

    /// Double.parseDouble for the decimal forms Java accepts: optional sign, digits with an optional
    /// point and exponent, an optional f/F/d/D suffix, plus "NaN" and "Infinity".
    static func parseJavaDouble(_ text: String) -> Double? {
        var body = Substring(text)
        var negative = false
        if let sign = body.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            body = body.dropFirst()
        }
        if body == "NaN" { return .nan }
        if body == "Infinity" { return negative ? -.infinity : .infinity }
        if let suffix = body.last, "fFdD".contains(suffix) { body = body.dropLast() }
        guard let lead = body.first, lead.isASCII, lead.isNumber || lead == "." else { return nil }
        guard body.allSatisfy({ $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }) else { return nil }
        guard let magnitude = Double(String(body)) else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// Double.toString as Java prints it (e.g. 1.5, 1.0E10, 1.0E-4), used when echoing a rejected value.
    static func javaDoubleString(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        if number == 0 { return number.sign == .minus ? "-0.0" : "0.0" }
        // Shortest round-trip digits and decimal exponent from Swift's description.
        var text = number.magnitude.description
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        let point = text.firstIndex(of: ".")
        let integerPart = point.map { String(text[..<$0]) } ?? text
        let fractionPart = point.map { String(text[text.index(after: $0)...]) } ?? ""
        var digits = integerPart + fractionPart
        var pointPosition = integerPart.count + exponent  // decimal point sits after this many digits
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let sign = number < 0 ? "-" : ""
        let magnitude = number.magnitude
        if magnitude >= 1e-3, magnitude < 1e7 {
            if pointPosition <= 0 {
                return sign + "0." + String(repeating: "0", count: -pointPosition) + digits
            }
            if pointPosition >= digits.count {
                return sign + digits + String(repeating: "0", count: pointPosition - digits.count) + ".0"
            }
            let split = digits.index(digits.startIndex, offsetBy: pointPosition)
            return sign + String(digits[..<split]) + "." + String(digits[split...])
        }
        let head = String(digits.prefix(1))
        let tail = digits.count > 1 ? String(digits.dropFirst()) : "0"
        return sign + head + "." + tail + "E" + String(pointPosition - 1)
    }

    private static func isASCIIDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { $0.value >= 0x30 && $0.value <= 0x39 }
    }

    /// MetadataVersion.fromVersionString: versions starting "0." keep three dot-separated segments,
    /// others two; anything after that is ignored (so "2.8.1" reads as "2.8").
    private static func isMetadataVersion(_ text: String) -> Bool {
        let segments = javaSplit(text, ".")
        let keep = text.hasPrefix("0.") ? 3 : 2
        let key = segments.count <= keep ? text : segments.prefix(keep).joined(separator: ".")
        return metadataVersions.contains(key)
    }

    /// Kafka's ThrottledReplicaListValidator: every entry is partition:broker (empty entries allowed),
    /// or the whole list is the wildcard "*".
    private static func validateThrottledReplicas(_ definition: ConfigDefinition, _ elements: [String]) -> String? {
        let pairs = elements.allSatisfy { element in
            if element.isEmpty { return true }
            let sides = element.split(separator: ":", omittingEmptySubsequences: false)
            return sides.count == 2 && isASCIIDigits(sides[0]) && isASCIIDigits(sides[1])
        }
        if pairs || elements.joined() == "*" { return nil }
        let shown = "[" + elements.joined(separator: ", ") + "]"
        return invalid(
            definition, shown,
            "\(definition.name) must be the literal '*' or a list of replicas in the "
                + "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
    }

    /// Utils.getHost/getPort accept any text that ends in ":<digits>".
    private static func hasHostAndPort(_ address: String) -> Bool {
        guard let colon = address.lastIndex(of: ":") else { return false }
        let port = address[address.index(after: colon)...]
        return isASCIIDigits(port) && Int32(port) != nil
    }

    /// QuorumConfig.ControllerQuorumVotersValidator: entries of the form {id}@{host}:{port}.
    private static func validateQuorumVoters(_ elements: [String]) -> String? {
        let key = "controller.quorum.voters"
        let form = "Each entry should be in the form `{id}@{host}:{port}`."
        for entry in elements {
            let parts = javaSplit(entry, "@")
            guard parts.count == 2 else {
                return "Invalid configuration value for \(key). \(form)"
            }
            guard Int32(parts[0]) != nil else {
                return "Failed to parse voter ID as an integer from \(parts[0])"
            }
            guard hasHostAndPort(parts[1]) else {
                return "Failed to parse host name from entry \(entry) for the configuration \(key). \(form)"
            }
        }
        return nil
    }

    /// QuorumConfig.ControllerQuorumBootstrapServersValidator: entries of the form {host}:{port}.
    private static func validateQuorumBootstrapServers(_ elements: [String]) -> String? {
        for entry in elements where !hasHostAndPort(entry) {
            return "Failed to parse host name from \(entry) for the configuration controller.quorum.bootstrap.servers. "
                + "Each entry should be in the form \"{host}:{port}\""
        }
        return nil
    }
}
