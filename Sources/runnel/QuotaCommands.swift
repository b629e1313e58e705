import ArgumentParser
import Foundation
import RunnelClient

// `runnel quota set|describe`: client quotas (KIP-13, KIP-55, KIP-124) as kafka-configs sets
// and describes them (--entity-type users|clients with --entity-name or --entity-default, or
// --user/--client/--user-defaults/--client-defaults; --add-config and --delete-config).

struct Quota: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Set and describe client quotas: producer_byte_rate, consumer_byte_rate, request_percentage of users and client ids (as kafka-configs does).",
        subcommands: [QuotaSet.self, QuotaDescribe.self])
}

/// The entity options `quota set` and `describe` share, with kafka-configs' names.
struct QuotaEntityOptions: ParsableArguments {
    @Option(
        name: .customLong("entity-type"),
        help: "users or clients (repeatable: --entity-type users --entity-type clients for a user's client id).")
    var entityTypes: [String] = []
    @Option(
        name: .customLong("entity-name"),
        help: "The name of each --entity-type, in the same order (types left without a name take --entity-default).")
    var entityNames: [String] = []
    @Flag(name: .customLong("entity-default"), help: "The default entity of the --entity-type(s) left without a name.")
    var entityDefault = false
    @Option(name: .customLong("user"), help: "A user principal name (same as --entity-type users --entity-name).")
    var user: String?
    @Option(name: .customLong("client"), help: "A client id (same as --entity-type clients --entity-name).")
    var client: String?
    @Flag(name: .customLong("user-defaults"), help: "The default user.") var userDefaults = false
    @Flag(name: .customLong("client-defaults"), help: "The default client id.") var clientDefaults = false

    /// Entity type (`user`, `client-id`) to a name (nil for the default entity) or, for describe
    /// without a name, `.none`-named: the second element says whether the part names an entity
    /// (name or default) or only the type.
    func parts(requireEntity: Bool) throws -> [(type: String, match: ClientQuotaMatch)] {
        var out: [(String, ClientQuotaMatch)] = []
        func add(_ type: String, _ match: ClientQuotaMatch) throws {
            if out.contains(where: { $0.0 == type }) {
                throw ValidationError("the entity names \(type) twice")
            }
            out.append((type, match))
        }
        guard entityNames.count <= entityTypes.count else {
            throw ValidationError("--entity-name given more often than --entity-type")
        }
        for (index, given) in entityTypes.enumerated() {
            let type: String
            switch given {
            case "users", "user": type = "user"
            case "clients", "client", "client-id": type = "client-id"
            case "ips", "ip":
                throw ValidationError("--entity-type ips: IP quotas (KIP-612) are not supported")
            default:
                throw ValidationError("--entity-type \(given) is not users or clients")
            }
            if index < entityNames.count {
                try add(type, .exact(entityNames[index]))
            } else if entityDefault {
                try add(type, .defaultEntity)
            } else if requireEntity {
                throw ValidationError("--entity-type \(given) needs --entity-name or --entity-default")
            } else {
                try add(type, .any)
            }
        }
        if let user { try add("user", .exact(user)) }
        if userDefaults { try add("user", .defaultEntity) }
        if let client { try add("client-id", .exact(client)) }
        if clientDefaults { try add("client-id", .defaultEntity) }
        if requireEntity && out.isEmpty {
            throw ValidationError("name an entity: --entity-type users|clients with --entity-name or --entity-default")
        }
        // Users before client ids, as Kafka names them.
        return out.sorted { $0.0 == "user" && $1.0 != "user" }
    }
}

struct QuotaSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set or delete quotas of one entity (AlterClientQuotas).",
        discussion: """
            Examples:
              runnel quota set --entity-type clients --entity-name app --add-config producer_byte_rate=1048576
              runnel quota set --entity-type users --entity-default --add-config consumer_byte_rate=2097152,request_percentage=50
              runnel quota set --entity-type users --entity-name alice --entity-type clients --entity-default --delete-config producer_byte_rate
            """)

    @OptionGroup var options: ClientOptions
    @OptionGroup var entity: QuotaEntityOptions
    @Option(
        name: .customLong("add-config"),
        help: "key=value[,key=value...]: producer_byte_rate, consumer_byte_rate (bytes/s), request_percentage.")
    var addConfig: [String] = []
    @Option(name: .customLong("delete-config"), help: "key[,key...] to remove.") var deleteConfig: [String] = []
    @Flag(name: .customLong("dry-run"), help: "Check the change with the controller without making it.")
    var dryRun = false

    func settings() throws -> [String: Double] {
        var out: [String: Double] = [:]
        for item in addConfig.flatMap({ $0.split(separator: ",") }) {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[0].isEmpty else {
                throw ValidationError("--add-config \(item) is not key=value")
            }
            guard let value = Double(pair[1]) else {
                throw ValidationError("--add-config \(pair[0])=\(pair[1]): the value is not a number")
            }
            out[pair[0]] = value
        }
        return out
    }

    func validate() throws {
        _ = try entity.parts(requireEntity: true)
        let set = try settings()
        if set.isEmpty && deleteConfig.isEmpty { throw ValidationError("give --add-config or --delete-config") }
    }

    func run() async {
        let parts = try! entity.parts(requireEntity: true)
        var target: [String: String?] = [:]
        for part in parts {
            if case .exact(let name) = part.match {
                target[part.type] = .some(name)
            } else {
                target[part.type] = .some(nil)
            }
        }
        let set = try! settings()
        let remove = deleteConfig.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        let validateOnly = dryRun
        let chosen = target
        await withClient(options) { client in
            try await client.alterClientQuotas(entity: chosen, set: set, remove: remove, validateOnly: validateOnly)
        }
        if !options.json {
            print("\(dryRun ? "Checked" : "Completed") updating quotas for \(KafkaClient.describe(target)).")
        }
    }
}

struct QuotaDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Quotas of the entities that match (DescribeClientQuotas); every entity's without an entity option.",
        discussion: """
            --entity-type without --entity-name lists every entity of that type (named or default),
            and only entities of the types named. --json prints
            [{"entity": {"user": "alice", "client-id": null}, "quotas": {"producer_byte_rate": 1048576}}]
            (null is the default entity).
            """)

    @OptionGroup var options: ClientOptions
    @OptionGroup var entity: QuotaEntityOptions

    func validate() throws { _ = try entity.parts(requireEntity: false) }

    func run() async {
        let parts = try! entity.parts(requireEntity: false)
        var filter: [String: ClientQuotaMatch] = [:]
        for part in parts { filter[part.type] = part.match }
        let chosen = filter
        let found = await withClient(options) { client in
            try await client.describeClientQuotas(chosen, strict: !chosen.isEmpty)
        }
        if options.json {
            return JSON.array(
                found.map { d in
                    .object([
                        (
                            "entity",
                            .object(d.entity.keys.sorted().map { ($0, JSON.optional(d.entity[$0]!)) })
                        ),
                        ("quotas", .object(d.quotas.keys.sorted().map { ($0, .number(d.quotas[$0]!)) })),
                    ])
                }
            ).print()
        }
        for d in found {
            let values = d.quotas.keys.sorted().map { "\($0)=\(d.quotas[$0]!)" }.joined(separator: ", ")
            print("Quota configs for \(KafkaClient.describe(d.entity)) are \(values)")
        }
    }
}
