import ArgumentParser
import Foundation
import RunnelClient

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Describe and alter topic and broker configs (as kafka-configs does).",
        subcommands: [ConfigDescribe.self, ConfigAlter.self, ConfigsNoEffect.self])
}

/// The resource options of `config describe|alter`: Runnel's short ones and kafka-configs' entity ones.
struct ConfigResourceOptions: ParsableArguments {
    @Option(help: "A topic's configs.") var topic: String?
    @Option(help: "A broker's configs, by broker id.") var broker: Int32?
    @Flag(name: .customLong("broker-defaults"), help: "The cluster-wide defaults of every broker.")
    var brokerDefaults = false
    @Option(name: .customLong("entity-type"), help: "topics or brokers, with --entity-name or --entity-default.")
    var entityType: String?
    @Option(name: .customLong("entity-name"), help: "The topic name or broker id of --entity-type.")
    var entityName: String?
    @Flag(name: .customLong("entity-default"), help: "With --entity-type brokers: the brokers' defaults.")
    var entityDefault = false

    func resource() throws -> ConfigResourceName {
        var chosen: [ConfigResourceName] = []
        if let topic { chosen.append(.topic(topic)) }
        if let broker { chosen.append(.broker(broker)) }
        if brokerDefaults { chosen.append(.brokerDefaults) }
        if let entityType {
            switch (entityType, entityName, entityDefault) {
            case ("topics", let name?, false): chosen.append(.topic(name))
            case ("brokers", let name?, false):
                guard let id = Int32(name) else {
                    throw ValidationError("--entity-name of brokers must be a broker id, not \"\(name)\"")
                }
                chosen.append(.broker(id))
            case ("brokers", nil, true): chosen.append(.brokerDefaults)
            case ("topics", _, _), ("brokers", _, _):
                throw ValidationError("--entity-type \(entityType) needs one of --entity-name and --entity-default")
            default:
                throw ValidationError("--entity-type must be topics or brokers, not \"\(entityType)\"")
            }
        } else if entityName != nil || entityDefault {
            throw ValidationError("--entity-name and --entity-default need --entity-type")
        }
        guard chosen.count == 1 else {
            throw ValidationError("give exactly one of --topic, --broker and --broker-defaults")
        }
        return chosen[0]
    }

    func validate() throws { _ = try resource() }
}

extension ConfigResourceName {
    /// The source of the configs set on the resource itself, which describe shows without --all.
    var ownSource: String {
        switch self {
        case .topic: "DYNAMIC_TOPIC_CONFIG"
        case .broker: "DYNAMIC_BROKER_CONFIG"
        case .brokerDefaults: "DYNAMIC_DEFAULT_BROKER_CONFIG"
        }
    }

    /// The resource as kafka-configs names it in its messages.
    var kafkaName: String {
        switch self {
        case .topic(let t): "topic \(t)"
        case .broker(let id): "broker \(id)"
        case .brokerDefaults: "brokers in the cluster"
        }
    }

    var json: JSON {
        switch self {
        case .topic(let t): .object([("type", .string("topic")), ("name", .string(t))])
        case .broker(let id): .object([("type", .string("broker")), ("name", .string(String(id)))])
        case .brokerDefaults: .object([("type", .string("broker-defaults")), ("name", .string(""))])
        }
    }
}

struct ConfigDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "A topic's or broker's configs (DescribeConfigs, as kafka-configs --describe).",
        discussion: """
            Without --all, only the configs set on the resource itself (a topic's overrides, a \
            broker's own dynamic configs, the dynamic broker defaults); --all adds every other \
            config with the value that applies and where it comes from. Each line is kafka-configs' \
            "name=value sensitive=false synonyms={SOURCE:name=value, ...}".

            --json prints {"resource": {"type", "name"}, "configs": [{"name", "value", "source", \
            "readOnly", "sensitive", "synonyms": [{"name", "value", "source"}]}]} (sensitive values are null).
            """)

    @OptionGroup var resource: ConfigResourceOptions
    @Flag(help: "Every config, defaults included.") var all = false
    @OptionGroup var options: ClientOptions

    func run() async {
        let resource = try! resource.resource()
        let configs = await withClient(options) { client in
            try await client.describeConfigs(resource, includeSynonyms: true)
        }
        let shown = all ? configs : configs.filter { $0.source == resource.ownSource }
        func value(_ v: String?, sensitive: Bool) -> String? { sensitive ? nil : v }
        if options.json {
            return JSON.object([
                ("resource", resource.json),
                (
                    "configs",
                    .array(
                        shown.map { c in
                            .object([
                                ("name", .string(c.name)), ("value", .optional(value(c.value, sensitive: c.sensitive))),
                                ("source", .string(c.source)), ("readOnly", .bool(c.readOnly)),
                                ("sensitive", .bool(c.sensitive)),
                                (
                                    "synonyms",
                                    .array(
                                        c.synonyms.map { s in
                                            .object([
                                                ("name", .string(s.name)),
                                                ("value", .optional(value(s.value, sensitive: c.sensitive))),
                                                ("source", .string(s.source)),
                                            ])
                                        })
                                ),
                            ])
                        })
                ),
            ]).print()
        }
        let kind = all ? "All" : resource == .brokerDefaults ? "Default" : "Dynamic"
        print("\(kind) configs for \(resource.kafkaName) are:")
        for c in shown {
            let synonyms = c.synonyms.map {
                "\($0.source):\($0.name)=\(value($0.value, sensitive: c.sensitive) ?? "null")"
            }.joined(separator: ", ")
            print(
                "  \(c.name)=\(value(c.value, sensitive: c.sensitive) ?? "null") sensitive=\(c.sensitive) synonyms={\(synonyms)}"
            )
        }
    }
}

/// Parses kafka-configs' `--add-config k1=v1,k2=[v2,v3]`: commas inside brackets belong to the
/// value, and the brackets go.
func parseAddConfig(_ text: String) throws -> [(String, String)] {
    var items: [String] = []
    var current = ""
    var depth = 0
    for c in text {
        switch c {
        case "[": depth += 1
        case "]": depth -= 1
        case "," where depth == 0:
            items.append(current)
            current = ""
            continue
        default: break
        }
        guard depth >= 0 else { throw ValidationError("--add-config has an unmatched ] in \"\(text)\"") }
        current.append(c)
    }
    guard depth == 0 else { throw ValidationError("--add-config has an unmatched [ in \"\(text)\"") }
    items.append(current)
    return try items.filter { !$0.isEmpty }.map { item in
        var (key, value) = try parseKeyValue(item, option: "--add-config")
        if value.hasPrefix("[") && value.hasSuffix("]") { value = String(value.dropFirst().dropLast()) }
        return (key, value)
    }
}

/// Checks a set of config changes: something to do, config names without `=`, none both set and deleted.
func validateConfigChanges(set keys: [String], delete: [String], setOption: String, deleteOption: String) throws {
    guard !keys.isEmpty || !delete.isEmpty else {
        throw ValidationError("give at least one \(setOption) key=value or \(deleteOption) key")
    }
    for k in delete where k.isEmpty || k.contains("=") {
        throw ValidationError("\(deleteOption) expects a config name, not \"\(k)\"")
    }
    if let both = keys.first(where: delete.contains) { throw ValidationError("config \(both) is both set and deleted") }
}

struct ConfigAlter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alter",
        abstract: "Set or remove a topic's or broker's configs (IncrementalAlterConfigs, as kafka-configs --alter).",
        discussion: """
            A removed config falls back to the next place that sets it (a broker default, the \
            static config, the built-in default). List values go in brackets: \
            --add-config follower.replication.throttled.replicas=[0:4,1:5].

            --json prints {"resource": {"type", "name"}, "set": {key: value}, "deleted": [key]}.
            """)

    @OptionGroup var resource: ConfigResourceOptions
    @Option(name: .customLong("add-config"), help: "Configs to set, k1=v1,k2=[v2,v3] (repeatable).")
    var addConfig: [String] = []
    @Option(name: .customLong("delete-config"), help: "Configs to remove, k1,k2 (repeatable).")
    var deleteConfig: [String] = []
    @OptionGroup var options: ClientOptions

    func changes() throws -> (set: [(String, String)], delete: [String]) {
        let set = try addConfig.flatMap { try parseAddConfig($0) }
        let delete = deleteConfig.flatMap { $0.split(separator: ",").map(String.init) }
        try validateConfigChanges(
            set: set.map(\.0), delete: delete, setOption: "--add-config", deleteOption: "--delete-config")
        return (set, delete)
    }

    func validate() throws { _ = try changes() }

    func run() async {
        let resource = try! resource.resource()
        let (set, delete) = try! changes()
        await withClient(options) { client in try await client.alterConfigs(resource, set: set, delete: delete) }
        if options.json {
            return JSON.object([
                ("resource", resource.json), ("set", .object(set.map { ($0.0, .string($0.1)) })),
                ("deleted", .array(delete.map { .string($0) })),
            ]).print()
        }
        print(
            resource == .brokerDefaults
                ? "Completed updating default config for brokers in the cluster."
                : "Completed updating config for \(resource.kafkaName).")
    }
}
