import ArgumentParser
import Foundation
import RunnelClient
import RunnelCore

struct Topic: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, describe, reconfigure and delete topics (as kafka-topics does).",
        subcommands: [TopicCreate.self, TopicList.self, TopicDescribe.self, TopicDelete.self, TopicAlterConfig.self])
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
            "A topic's id, partitions (leader, replicas, ISR) and configs set on it (as kafka-topics --describe).",
        discussion: """
            Configs shown are those set on the topic (source DYNAMIC_TOPIC_CONFIG); --all-configs shows every one.

            --json prints {"name", "topicId", "internal", "partitionCount", "replicationFactor", \
            "configs": [{"name", "value", "source", "readOnly", "sensitive"}], \
            "partitions": [{"partition", "leader", "leaderEpoch", "replicas", "isr", "offlineReplicas"}]}.
            """)

    @Argument(help: "The topic name.") var name: String
    @Flag(name: .customLong("all-configs"), help: "Show every config, defaults included.") var allConfigs = false
    @OptionGroup var options: ClientOptions

    func run() async {
        let name = self.name
        let (topic, configs) = await withClient(options) { client in
            let topic = try await client.topic(name, refresh: true)
            return (topic, try await client.describeConfigs(resourceType: 2, name: name))
        }
        let shown = allConfigs ? configs : configs.filter { $0.source == "DYNAMIC_TOPIC_CONFIG" }
        let replicationFactor = topic.partitions.first?.replicas.count ?? 0
        if options.json {
            return JSON.object([
                ("name", .string(topic.name)), ("topicId", .string(topic.topicId.description)),
                ("internal", .bool(topic.isInternal)),
                ("partitionCount", .int(topic.partitionCount)), ("replicationFactor", .int(replicationFactor)),
                (
                    "configs",
                    .array(
                        shown.map { c in
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
                        topic.partitions.map { p in
                            .object([
                                ("partition", .int(p.partition)), ("leader", .int(p.leader)),
                                ("leaderEpoch", .int(p.leaderEpoch)),
                                ("replicas", .ints(p.replicas)), ("isr", .ints(p.isr)),
                                ("offlineReplicas", .ints(p.offlineReplicas)),
                            ])
                        })
                ),
            ]).print()
        }
        let configText = shown.map { "\($0.name)=\($0.sensitive ? "(sensitive)" : $0.value ?? "null")" }.joined(
            separator: ",")
        print(
            "Topic: \(topic.name)\tTopicId: \(topic.topicId)\tPartitionCount: \(topic.partitionCount)\tReplicationFactor: \(replicationFactor)\tConfigs: \(configText)"
        )
        func list(_ ids: [Int32]) -> String { ids.map(String.init).joined(separator: ",") }
        for p in topic.partitions {
            var line =
                "\tTopic: \(topic.name)\tPartition: \(p.partition)\tLeader: \(p.leader < 0 ? "none" : String(p.leader))\tReplicas: \(list(p.replicas))\tIsr: \(list(p.isr))"
            if !p.offlineReplicas.isEmpty { line += "\tOffline: \(list(p.offlineReplicas))" }
            print(line)
        }
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
        guard !set.isEmpty || !delete.isEmpty else {
            throw ValidationError("give at least one --set key=value or --delete key")
        }
        let keys = try set.map { try parseKeyValue($0, option: "--set").0 }
        for k in delete where k.isEmpty || k.contains("=") {
            throw ValidationError("--delete expects a config name, not \"\(k)\"")
        }
        if let both = keys.first(where: delete.contains) {
            throw ValidationError("config \(both) is both set and deleted")
        }
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
        abstract: "Describe the cluster.", subcommands: [ClusterDescribe.self])
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
