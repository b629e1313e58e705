import ArgumentParser
import Foundation
import RunnelClient
import RunnelCore

struct Topic: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, describe, reconfigure and delete topics (as kafka-topics does).",
        subcommands: [
            TopicCreate.self, TopicList.self, TopicDescribe.self, TopicAlter.self, TopicDelete.self,
            TopicAlterConfig.self,
        ])
}

struct TopicCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a topic (CreateTopics) and wait until every partition has a leader.",
        discussion: """
            --json prints {"name", "topicId", "partitions", "replicationFactor", "configs": {key: value}}.
            """)

    @Argument(help: "The topic name.") var name: String
    @Option(help: "Number of partitions (default: the broker's num.partitions).") var partitions: Int32?
    @Option(
        name: .customLong("replication-factor"),
        help: "Replicas per partition (default: the broker's default.replication.factor).")
    var replicationFactor: Int16?
    @Option(name: .customLong("config"), help: "A topic config, key=value (repeatable).") var configs: [String] = []
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let partitions, partitions < 1 { throw ValidationError("--partitions must be at least 1") }
        if let replicationFactor, replicationFactor < 1 {
            throw ValidationError("--replication-factor must be at least 1")
        }
        for c in configs { _ = try parseKeyValue(c, option: "--config") }
    }

    func run() async {
        let pairs = configs.map { try! parseKeyValue($0, option: "--config") }
        let (name, partitions, replicationFactor) = (self.name, self.partitions ?? -1, self.replicationFactor ?? -1)
        let created = await withClient(options) { client in
            try await client.createTopic(
                name: name, partitions: partitions, replicationFactor: replicationFactor, configs: pairs)
        }
        if options.json {
            return JSON.object([
                ("name", .string(created.name)), ("topicId", .string(created.topicId.description)),
                ("partitions", .int(created.partitions)), ("replicationFactor", .int(created.replicationFactor)),
                ("configs", .object(pairs.map { ($0.0, .string($0.1)) })),
            ]).print()
        }
        print(
            "Created topic \(created.name) (topic id \(created.topicId), \(created.partitions) partition\(created.partitions == 1 ? "" : "s"), replication factor \(created.replicationFactor))."
        )
    }
}

struct TopicList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List topics, one name per line.",
        discussion: """
            --json prints [{"name", "topicId", "partitions", "replicationFactor", "internal"}], sorted by name.
            """)

    @Flag(name: .customLong("exclude-internal"), help: "Leave out internal topics (__consumer_offsets).")
    var excludeInternal = false
    @OptionGroup var options: ClientOptions

    func run() async {
        let exclude = excludeInternal
        let topics = await withClient(options) { client in
            try await client.listTopics().filter { !exclude || !$0.isInternal }
        }
        if options.json {
            return JSON.array(
                topics.map { t in
                    .object([
                        ("name", .string(t.name)), ("topicId", .string(t.topicId.description)),
                        ("partitions", .int(t.partitionCount)),
                        ("replicationFactor", .int(t.partitions.first?.replicas.count ?? 0)),
                        ("internal", .bool(t.isInternal)),
                    ])
                }
            ).print()
        }
        for t in topics { print(t.name) }
    }
}

struct TopicDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract:
            "Topics' ids, partitions (leader, replicas, ISR) and configs set on them (as kafka-topics --describe).",
        discussion: """
            Without a topic, every topic is described. Configs shown are those set on the topic \
            (source DYNAMIC_TOPIC_CONFIG); --all-configs shows every one.

            The report options work as kafka-topics': --under-replicated-partitions, \
            --under-min-isr-partitions, --at-min-isr-partitions and --unavailable-partitions print \
            only the partitions that match any of those given, without the topic lines; \
            --topics-with-overrides prints only the topic lines of topics with a config set on them. \
            A partition is under-replicated with fewer ISR members than replicas, under min ISR with \
            no leader or fewer ISR members than the topic's min.insync.replicas, at min ISR with \
            exactly that many, and unavailable with no leader or a leader that is not a live broker.

            --json prints {"name", "topicId", "internal", "partitionCount", "replicationFactor", \
            "configs": [{"name", "value", "source", "readOnly", "sensitive"}], \
            "partitions": [{"partition", "leader", "leaderEpoch", "replicas", "isr", "offlineReplicas"}]} \
            for a named topic, or an array of them when no topic is named or a report option is \
            given (then only the partitions and topics it selects).
            """)

    @Argument(help: "The topic name (default: every topic).") var name: String?
    @Option(name: .customLong("topic"), help: "The topic name, as kafka-topics takes it.") var topicOption: String?
    @Flag(name: .customLong("all-configs"), help: "Show every config, defaults included.") var allConfigs = false
    @Flag(name: .customLong("exclude-internal"), help: "Leave out internal topics when none is named.")
    var excludeInternal = false
    @Flag(
        name: .customLong("under-replicated-partitions"), help: "Only partitions with fewer ISR members than replicas.")
    var underReplicated = false
    @Flag(
        name: .customLong("under-min-isr-partitions"),
        help: "Only partitions without a leader or with fewer ISR members than min.insync.replicas.")
    var underMinIsr = false
    @Flag(
        name: .customLong("at-min-isr-partitions"),
        help: "Only partitions with exactly min.insync.replicas ISR members.")
    var atMinIsr = false
    @Flag(
        name: .customLong("unavailable-partitions"),
        help: "Only partitions without a leader or whose leader is not live.")
    var unavailable = false
    @Flag(name: .customLong("topics-with-overrides"), help: "Only the topic lines of topics with configs set on them.")
    var topicsWithOverrides = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let name, let topicOption, name != topicOption {
            throw ValidationError("give the topic once, as an argument or with --topic")
        }
    }

    /// The topic and the configs DescribeConfigs reports for it.
    struct Described: Sendable {
        var topic: TopicInfo
        var configs: [ConfigEntry]
        var hasOverrides: Bool { configs.contains { $0.source == "DYNAMIC_TOPIC_CONFIG" } }
        /// min.insync.replicas as it applies to the topic (Kafka's default, 1, when not reported).
        var minInSyncReplicas: Int {
            configs.first { $0.name == "min.insync.replicas" }?.value.flatMap { Int($0) } ?? 1
        }
    }

    var reportsPartitions: Bool { underReplicated || underMinIsr || atMinIsr || unavailable }

    /// Whether a report option selects partition `p` of `t` (kafka-topics' PartitionDescription rules).
    func selects(_ p: PartitionInfo, of t: Described, live: Set<Int32>) -> Bool {
        let hasLeader = p.leader >= 0
        return (underReplicated && p.isr.count < p.replicas.count)
            || (underMinIsr && (!hasLeader || p.isr.count < t.minInSyncReplicas))
            || (atMinIsr && p.isr.count == t.minInSyncReplicas)
            || (unavailable && (!hasLeader || !live.contains(p.leader)))
    }

    func run() async {
        let name = self.name ?? topicOption
        let excludeInternal = self.excludeInternal
        let (described, live) = await withClient(options) { client -> ([Described], Set<Int32>) in
            var topics: [TopicInfo]
            if let name {
                topics = [try await client.topic(name, refresh: true)]
            } else {
                topics = try await client.listTopics().filter { !excludeInternal || !$0.isInternal }
            }
            var described: [Described] = []
            for t in topics {
                described.append(Described(topic: t, configs: try await client.describeConfigs(.topic(t.name))))
            }
            return (described, Set(await client.metadata.brokers.keys))
        }
        let reportsPartitions = self.reportsPartitions
        var shown: [(Described, [PartitionInfo])] = []
        for d in described {
            if topicsWithOverrides && !d.hasOverrides { continue }
            let partitions = d.topic.partitions.filter { !reportsPartitions || selects($0, of: d, live: live) }
            if reportsPartitions && partitions.isEmpty { continue }
            shown.append((d, partitions))
        }
        if options.json {
            let objects = shown.map { topicJSON($0.0, partitions: $0.1) }
            if name != nil && !reportsPartitions && !topicsWithOverrides { return objects[0].print() }
            return JSON.array(objects).print()
        }
        func list(_ ids: [Int32]) -> String { ids.map(String.init).joined(separator: ",") }
        for (d, partitions) in shown {
            let topic = d.topic
            if !reportsPartitions {
                let configText = configsShown(d).map {
                    "\($0.name)=\($0.sensitive ? "(sensitive)" : $0.value ?? "null")"
                }.joined(separator: ",")
                print(
                    "Topic: \(topic.name)\tTopicId: \(topic.topicId)\tPartitionCount: \(topic.partitionCount)\tReplicationFactor: \(topic.partitions.first?.replicas.count ?? 0)\tConfigs: \(configText)"
                )
            }
            if topicsWithOverrides { continue }
            for p in partitions {
                var line =
                    "\tTopic: \(topic.name)\tPartition: \(p.partition)\tLeader: \(p.leader < 0 ? "none" : String(p.leader))\tReplicas: \(list(p.replicas))\tIsr: \(list(p.isr))"
                if !p.offlineReplicas.isEmpty { line += "\tOffline: \(list(p.offlineReplicas))" }
                print(line)
            }
        }
    }

    func configsShown(_ d: Described) -> [ConfigEntry] {
        allConfigs ? d.configs : d.configs.filter { $0.source == "DYNAMIC_TOPIC_CONFIG" }
    }

    func topicJSON(_ d: Described, partitions: [PartitionInfo]) -> JSON {
        let topic = d.topic
        return .object([
            ("name", .string(topic.name)), ("topicId", .string(topic.topicId.description)),
            ("internal", .bool(topic.isInternal)),
            ("partitionCount", .int(topic.partitionCount)),
            ("replicationFactor", .int(topic.partitions.first?.replicas.count ?? 0)),
            (
                "configs",
                .array(
                    configsShown(d).map { c in
                        .object([
                            ("name", .string(c.name)), ("value", c.sensitive ? .null : .optional(c.value)),
                            ("source", .string(c.source)),
                            ("readOnly", .bool(c.readOnly)), ("sensitive", .bool(c.sensitive)),
                        ])
                    })
            ),
            (
                "partitions",
                .array(
                    partitions.map { p in
                        .object([
                            ("partition", .int(p.partition)), ("leader", .int(p.leader)),
                            ("leaderEpoch", .int(p.leaderEpoch)),
                            ("replicas", .ints(p.replicas)), ("isr", .ints(p.isr)),
                            ("offlineReplicas", .ints(p.offlineReplicas)),
                        ])
                    })
            ),
        ])
    }
}

struct TopicAlter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alter", abstract: "Add partitions to a topic (CreatePartitions, as kafka-topics --alter).",
        discussion: """
            The partition count can only grow; the brokers place the new partitions' replicas. \
            Keyed records of existing keys may map to other partitions afterwards.

            --json prints {"name", "partitions", "previousPartitions"}.
            """)

    @Argument(help: "The topic name.") var name: String?
    @Option(name: .customLong("topic"), help: "The topic name, as kafka-topics takes it.") var topicOption: String?
    @Option(help: "The new partition count.") var partitions: Int32
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard name != nil || topicOption != nil else { throw ValidationError("give the topic, with --topic") }
        if let name, let topicOption, name != topicOption {
            throw ValidationError("give the topic once, as an argument or with --topic")
        }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
    }

    func run() async {
        let (name, count) = (self.name ?? topicOption!, partitions)
        let previous = await withClient(options) { client -> Int32 in
            let before = try await client.topic(name, refresh: true).partitionCount
            guard count > before else {
                throw CLIError(
                    count == before
                        ? "topic \(name) already has \(before) partition\(before == 1 ? "" : "s")"
                        : "topic \(name) has \(before) partitions and a partition count can only grow, not shrink to \(count)"
                )
            }
            try await client.createPartitions(name, count: count)
            return before
        }
        if options.json {
            return JSON.object([
                ("name", .string(name)), ("partitions", .int(count)), ("previousPartitions", .int(previous)),
            ]).print()
        }
        print("Topic \(name) now has \(count) partitions (it had \(previous)).")
    }
}

struct TopicDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a topic (DeleteTopics).",
        discussion: """
            --json prints {"name", "deleted": true}.
            """)

    @Argument(help: "The topic name.") var name: String
    @OptionGroup var options: ClientOptions

    func run() async {
        let name = self.name
        await withClient(options) { client in try await client.deleteTopic(name) }
        if options.json { return JSON.object([("name", .string(name)), ("deleted", .bool(true))]).print() }
        print("Deleted topic \(name).")
    }
}

struct TopicAlterConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alter-config", abstract: "Set or remove topic configs (IncrementalAlterConfigs).",
        discussion: """
            A removed config falls back to the broker's default.

            --json prints {"name", "set": {key: value}, "deleted": [key]}.
            """)

    @Argument(help: "The topic name.") var name: String
    @Option(name: .customLong("set"), help: "A config to set, key=value (repeatable).") var set: [String] = []
    @Option(name: .customLong("delete"), help: "A config to remove, key (repeatable).") var delete: [String] = []
    @OptionGroup var options: ClientOptions

    func validate() throws {
        let keys = try set.map { try parseKeyValue($0, option: "--set").0 }
        try validateConfigChanges(set: keys, delete: delete, setOption: "--set", deleteOption: "--delete")
    }

    func run() async {
        let pairs = set.map { try! parseKeyValue($0, option: "--set") }
        let (name, delete) = (self.name, self.delete)
        await withClient(options) { client in try await client.alterTopicConfigs(name, set: pairs, delete: delete) }
        if options.json {
            return JSON.object([
                ("name", .string(name)), ("set", .object(pairs.map { ($0.0, .string($0.1)) })),
                ("deleted", .array(delete.map { .string($0) })),
            ]).print()
        }
        var parts: [String] = []
        if !pairs.isEmpty { parts.append("set " + pairs.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")) }
        if !delete.isEmpty { parts.append("deleted " + delete.joined(separator: ", ")) }
        print("Altered the configs of topic \(name): \(parts.joined(separator: "; ")).")
    }
}

struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe the cluster; unregister a broker that left for good (as kafka-cluster).",
        subcommands: [ClusterDescribe.self, ClusterUnregister.self])
}

struct ClusterUnregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unregister",
        abstract:
            "Remove a broker's registration from the cluster metadata (UnregisterBroker; kafka-cluster unregister).",
        discussion: """
            For a broker that will not come back: its partitions are led by others and it leaves
            their ISRs. A broker that is still running registers again. --json prints {"unregistered": ID}.
            """)

    @OptionGroup var options: ClientOptions
    @Option(name: .customLong("id"), help: "The id of the broker to unregister.") var id: Int32

    func run() async {
        let id = self.id
        await withClient(options) { client in try await client.unregisterBroker(id) }
        if options.json { return JSON.object([("unregistered", .int(Int(id)))]).print() }
        print("Broker \(id) is unregistered.")
    }
}

struct ClusterDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Cluster id, controller id and brokers (DescribeCluster, else Metadata).",
        discussion: """
            --json prints {"clusterId", "controllerId", "brokers": [{"id", "host", "port", "rack"}]}.
            """)

    @OptionGroup var options: ClientOptions

    func run() async {
        let cluster = await withClient(options) { client in try await client.describeCluster() }
        if options.json {
            return JSON.object([
                ("clusterId", .optional(cluster.clusterId)), ("controllerId", .int(cluster.controllerId)),
                (
                    "brokers",
                    .array(
                        cluster.brokers.map { b in
                            .object([
                                ("id", .int(b.id)), ("host", .string(b.host)), ("port", .int(b.port)),
                                ("rack", .optional(b.rack)),
                            ])
                        })
                ),
            ]).print()
        }
        print("Cluster id:    \(cluster.clusterId ?? "-")")
        print("Controller id: \(cluster.controllerId)")
        print("")
        printTable(
            [["ID", "HOST", "PORT", "RACK"]]
                + cluster.brokers.map { ["\($0.id)", $0.host, "\($0.port)", $0.rack ?? "-"] })
    }
}
