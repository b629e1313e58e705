import ArgumentParser
import Foundation
import RunnelClient
import RunnelSecurity

// `runnel acl` (as kafka-acls) and `runnel user scram` (as kafka-configs --alter
// --add-config 'SCRAM-SHA-512=[...]' --entity-type users).

struct Acl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list and remove ACL bindings (as kafka-acls does); needs an authorizer on the brokers.",
        subcommands: [AclAdd.self, AclList.self, AclRemove.self])
}

/// The resource and entry options `acl add`, `list` and `remove` share.
struct AclOptions: ParsableArguments {
    @Option(
        name: .customLong("topic"),
        help: "A topic name (or prefix with --resource-pattern-type prefixed; * for every topic).")
    var topic: String?
    @Option(name: .customLong("group"), help: "A consumer group id (or prefix; * for every group).")
    var group: String?
    @Option(name: .customLong("transactional-id"), help: "A transactional id (or prefix; * for every one).")
    var transactionalId: String?
    @Flag(name: .customLong("cluster"), help: "The cluster resource.")
    var cluster = false
    @Option(
        name: .customLong("resource-pattern-type"),
        help: "literal (default) or prefixed; for list and remove also any or match.")
    var patternType: String?
    @Option(name: .customLong("allow-principal"), help: "Principal to allow, e.g. User:alice (repeatable).")
    var allowPrincipals: [String] = []
    @Option(name: .customLong("deny-principal"), help: "Principal to deny, e.g. User:mallory (repeatable).")
    var denyPrincipals: [String] = []
    @Option(name: .customLong("host"), help: "Host the principals connect from (default * for every host).")
    var host: String?
    @Option(
        name: .customLong("operation"),
        help:
            "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite or All (repeatable)."
    )
    var operations: [String] = []

    /// The resource patterns named (at most one of each kind).
    func patterns(forAdding: Bool) throws -> [ResourcePattern] {
        let type = try patternTypeValue(default: .literal)
        if forAdding && !type.isSpecific {
            throw ValidationError("--resource-pattern-type must be literal or prefixed when adding")
        }
        var out: [ResourcePattern] = []
        if let topic { out.append(ResourcePattern(.topic, topic, type)) }
        if let group { out.append(ResourcePattern(.group, group, type)) }
        if let transactionalId { out.append(ResourcePattern(.transactionalId, transactionalId, type)) }
        if cluster { out.append(ResourcePattern(.cluster, ResourcePattern.clusterName, .literal)) }
        return out
    }

    func patternTypeValue(default fallback: PatternType) throws -> PatternType {
        guard let patternType else { return fallback }
        let parsed = PatternType(name: patternType)
        guard parsed != .unknown else {
            throw ValidationError("--resource-pattern-type \(patternType) is not literal, prefixed, any or match")
        }
        return parsed
    }

    func operationValues() throws -> [AclOperation] {
        try operations.map { name in
            // kafka-acls spells them IdempotentWrite; Kafka's enum IDEMPOTENT_WRITE.
            var kafkaName = ""
            var previous: Character?
            for c in name {
                if c == "-" {
                    kafkaName.append("_")
                } else {
                    if c.isUppercase, let previous, previous.isLowercase { kafkaName.append("_") }
                    kafkaName.append(c)
                }
                previous = c
            }
            let parsed = AclOperation(name: kafkaName)
            guard parsed != .unknown && parsed != .any else {
                throw ValidationError("--operation \(name) is not an operation")
            }
            return parsed
        }
    }

    /// (principal, permission) pairs named.
    var principals: [(String, AclPermissionType)] {
        allowPrincipals.map { ($0, .allow) } + denyPrincipals.map { ($0, .deny) }
    }

    /// The filters `list` and `remove` use: each named resource (or any), each principal (or any), each operation (or any).
    func filters() throws -> [AclBindingFilter] {
        let type = try patternTypeValue(default: .any)
        var patterns: [ResourcePatternFilter] = []
        if let topic { patterns.append(ResourcePatternFilter(.topic, topic, type)) }
        if let group { patterns.append(ResourcePatternFilter(.group, group, type)) }
        if let transactionalId { patterns.append(ResourcePatternFilter(.transactionalId, transactionalId, type)) }
        if cluster { patterns.append(ResourcePatternFilter(.cluster, ResourcePattern.clusterName, type)) }
        if patterns.isEmpty { patterns = [ResourcePatternFilter(.any, nil, type)] }
        let entries: [(String?, AclPermissionType)] =
            principals.isEmpty ? [(nil, .any)] : principals.map { ($0.0, $0.1) }
        let ops: [AclOperation] = try operationValues().isEmpty ? [.any] : operationValues()
        var out: [AclBindingFilter] = []
        for pattern in patterns {
            for (principal, permission) in entries {
                for op in ops {
                    out.append(
                        AclBindingFilter(
                            patternFilter: pattern,
                            entryFilter: AccessControlEntryFilter(
                                principal: principal, host: host, operation: op, permissionType: permission)))
                }
            }
        }
        return out
    }
}

func aclJSON(_ binding: AclBinding) -> JSON {
    .object([
        ("resourceType", .string(binding.pattern.resourceType.description)), ("name", .string(binding.pattern.name)),
        ("patternType", .string(binding.pattern.patternType.description)),
        ("principal", .string(binding.entry.principal)),
        ("host", .string(binding.entry.host)), ("operation", .string(binding.entry.operation.description)),
        ("permissionType", .string(binding.entry.permissionType.description)),
    ])
}

func printAcls(_ bindings: [AclBinding], json: Bool) {
    if json { return JSON.array(bindings.map(aclJSON)).print() }
    printTable(
        [["RESOURCE-TYPE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"]]
            + bindings.map {
                [
                    $0.pattern.resourceType.description, $0.pattern.name, $0.pattern.patternType.description,
                    $0.entry.principal, $0.entry.host,
                    $0.entry.operation.description, $0.entry.permissionType.description,
                ]
            })
}

struct AclAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add bindings: each principal, each operation, on each resource named (CreateAcls).",
        discussion:
            "Example: runnel acl add --allow-principal User:alice --operation Read --operation Describe --topic orders --bootstrap-server ..."
    )

    @OptionGroup var options: ClientOptions
    @OptionGroup var acl: AclOptions

    func validate() throws {
        if try acl.patterns(forAdding: true).isEmpty {
            throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster")
        }
        if acl.principals.isEmpty { throw ValidationError("name a principal: --allow-principal or --deny-principal") }
        if try acl.operationValues().isEmpty { throw ValidationError("name an operation: --operation") }
        for (principal, _) in acl.principals where KafkaPrincipal(parsing: principal) == nil {
            throw ValidationError("principal \(principal) is not of the form Type:name (User:alice)")
        }
    }

    func run() async {
        let bindings = try! acl.patterns(forAdding: true).flatMap { pattern in
            acl.principals.flatMap { principal, permission in
                try! acl.operationValues().map {
                    AclBinding(
                        pattern: pattern,
                        entry: AccessControlEntry(
                            principal: principal, host: acl.host ?? AccessControlEntry.wildcardHost,
                            operation: $0, permissionType: permission))
                }
            }
        }
        await withClient(options) { client in try await client.createAcls(bindings) }
        printAcls(bindings, json: options.json)
    }
}

struct AclList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The bindings that match the options given (all without any), DescribeAcls.",
        discussion: """
            --json prints [{"resourceType", "name", "patternType", "principal", "host", "operation", "permissionType"}].
            """)

    @OptionGroup var options: ClientOptions
    @OptionGroup var acl: AclOptions

    func run() async {
        let filters: [AclBindingFilter]
        do { filters = try acl.filters() } catch { fail(sentence(error)) }
        let bindings = await withClient(options) { client in
            var seen = Set<AclBinding>()
            var out: [AclBinding] = []
            for filter in filters {
                for binding in try await client.describeAcls(filter) where seen.insert(binding).inserted {
                    out.append(binding)
                }
            }
            return out
        }
        printAcls(bindings, json: options.json)
    }
}

struct AclRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove the bindings that match the options given (DeleteAcls); prints those removed.")

    @OptionGroup var options: ClientOptions
    @OptionGroup var acl: AclOptions

    func validate() throws {
        if try acl.patterns(forAdding: false).isEmpty && acl.principals.isEmpty {
            throw ValidationError("name a resource or a principal to remove bindings of")
        }
    }

    func run() async {
        let filters: [AclBindingFilter]
        do { filters = try acl.filters() } catch { fail(sentence(error)) }
        let removed = await withClient(options) { client in
            var out: [AclBinding] = []
            for filter in filters { out += try await client.deleteAcls(filter) }
            return out
        }
        printAcls(removed, json: options.json)
    }
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Users' SCRAM credentials.", subcommands: [UserScram.self])
}

struct UserScram: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scram",
        abstract: "Set, list and delete SCRAM credentials (AlterUserScramCredentials, DescribeUserScramCredentials).",
        subcommands: [UserScramSet.self, UserScramList.self, UserScramDelete.self])
}

func scramMechanism(_ name: String) throws -> ScramMechanism {
    guard let mechanism = ScramMechanism(mechanismName: name.uppercased()) else {
        throw ValidationError("--mechanism \(name) is not SCRAM-SHA-256 or SCRAM-SHA-512")
    }
    return mechanism
}

struct UserScramSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Create or change a user's credential; the password is salted and hashed here, never sent.")

    @OptionGroup var options: ClientOptions
    @Argument(help: "The user name.") var user: String
    @Option(name: .customLong("mechanism"), help: "SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default SCRAM-SHA-512).")
    var mechanisms: [String] = []
    @Option(name: .customLong("password"), help: "The password.") var password: String
    @Option(name: .customLong("iterations"), help: "PBKDF2 iterations (4096 to 16384).") var iterations: Int32 = 4096

    func validate() throws {
        for m in mechanisms { _ = try scramMechanism(m) }
        guard (4096...16384).contains(iterations) else {
            throw ValidationError("--iterations must be from 4096 to 16384")
        }
    }

    func run() async {
        let chosen = (mechanisms.isEmpty ? ["SCRAM-SHA-512"] : mechanisms).map { try! scramMechanism($0) }
        await withClient(options) { client in
            for mechanism in chosen {
                try await client.setScramCredential(
                    user: user, mechanism: mechanism, password: password, iterations: iterations)
            }
        }
        if !options.json { print("Set \(chosen.map(\.mechanismName).joined(separator: ", ")) for \(user).") }
    }
}

struct UserScramList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Users with SCRAM credentials: mechanism and iterations (never keys).",
        discussion: "--json prints [{\"user\", \"mechanism\", \"iterations\"}].")

    @OptionGroup var options: ClientOptions
    @Option(name: .customLong("user"), help: "Only these users (repeatable).") var users: [String] = []

    func run() async {
        let wanted = users
        let infos = await withClient(options) { client in
            try await client.describeScramCredentials(users: wanted.isEmpty ? nil : wanted)
        }
        if options.json {
            return JSON.array(
                infos.map {
                    .object([
                        ("user", .string($0.user)), ("mechanism", .string($0.mechanism)),
                        ("iterations", .int($0.iterations)),
                    ])
                }
            ).print()
        }
        printTable([["USER", "MECHANISM", "ITERATIONS"]] + infos.map { [$0.user, $0.mechanism, "\($0.iterations)"] })
    }
}

struct UserScramDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a user's credential for a mechanism.")

    @OptionGroup var options: ClientOptions
    @Argument(help: "The user name.") var user: String
    @Option(name: .customLong("mechanism"), help: "SCRAM-SHA-256 or SCRAM-SHA-512.") var mechanism: String

    func validate() throws { _ = try scramMechanism(mechanism) }

    func run() async {
        let chosen = try! scramMechanism(mechanism)
        await withClient(options) { client in try await client.deleteScramCredential(user: user, mechanism: chosen) }
        if !options.json { print("Deleted \(chosen.mechanismName) of \(user).") }
    }
}
