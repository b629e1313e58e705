import RunnelCore
import RunnelWire

/// One value shown by the metadata tree: typed, so a script gets numbers and lists, and a person
/// gets plain text (`description`).
public enum MetadataValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int64)
    case bool(Bool)
    case string(String)
    case ints([Int64])
    case strings([String])
    case null

    /// The value as text for people: lists as `[1,2,3]`, a missing value as `null`.
    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .bool(let v): v ? "true" : "false"
        case .string(let v): v
        case .ints(let v): "[" + v.map(String.init).joined(separator: ",") + "]"
        case .strings(let v): "[" + v.joined(separator: ",") + "]"
        case .null: "null"
        }
    }
}

/// A named value of a node.
public struct MetadataField: Sendable, Equatable {
    /// The field's name (stable: scripts read it from `--json`).
    public var name: String
    /// The field's value, typed.
    public var value: MetadataValue
    /// A field named `name` holding `value`.
    public init(_ name: String, _ value: MetadataValue) {
        self.name = name
        self.value = value
    }
}

/// A node of the browsable metadata tree: a directory of children, a leaf of fields, or both (a
/// topic has fields and one child per partition). The tree is built once from an image and is a
/// plain value; the CLI's `ls`/`cat`/`tree` and its shell walk it (as Kafka's metadata shell walks
/// `image/node/*`).
///
///     /brokers/<id>                 one broker registration
///     /topics/<name>/<partition>    a topic and its partitions
///     /configs/<type>/<name>        config overrides (broker "default" is the cluster-wide one)
///     /features                     feature levels
///     /producerIds                  the next producer id block
///     /acls/<id>                    ACL bindings
///     /scram/<mechanism>/<user>     SCRAM credentials (salt and iterations; the keys redacted)
///     /clientQuotas/<entity>        client quotas (`user=alice,client-id=<default>`: key = value)
///     /quorum                       cluster id and voters
public struct MetadataNode: Sendable, Equatable {
    /// The last component of the node's path ("" for the root).
    public var name: String
    /// What the node says about the thing it names, in display order.
    public var fields: [MetadataField]
    /// Children in display order (numeric ids numerically, names alphabetically).
    public var children: [MetadataNode]
    /// Whether the node groups others (`ls` lists it with a trailing `/` even when empty).
    public var isDirectory: Bool

    /// A node; `isDirectory` defaults to whether it has children.
    public init(name: String, fields: [MetadataField] = [], children: [MetadataNode] = [], isDirectory: Bool? = nil) {
        self.name = name
        self.fields = fields
        self.children = children
        self.isDirectory = isDirectory ?? !children.isEmpty
    }

    /// The direct child named `name`.
    public func child(named name: String) -> MetadataNode? {
        children.first { $0.name == name }
    }

    /// The value of field `name`.
    public func field(_ name: String) -> MetadataValue? {
        fields.first { $0.name == name }?.value
    }

    /// The node at `path`, taken from this node as the root. `path` is absolute or relative to the
    /// root; `.`, `..`, repeated and trailing slashes are understood. nil when nothing is there.
    public func node(at path: String) -> MetadataNode? {
        var current = self
        for component in MetadataTree.components(MetadataTree.normalize(path)) {
            guard let next = current.child(named: component) else { return nil }
            current = next
        }
        return current
    }

    /// Every node below this one with its absolute path (depth first, in display order),
    /// starting with this node at `path`.
    public func walk(path: String = "/") -> [(path: String, node: MetadataNode)] {
        var out: [(path: String, node: MetadataNode)] = [(path, self)]
        for child in children {
            out += child.walk(path: MetadataTree.join(path, child.name))
        }
        return out
    }
}

/// Builds the tree of an image and resolves paths in it.
public enum MetadataTree {
    /// The tree of `image`. `voters` and `clusterId` fill `/quorum` (a snapshot knows them; the
    /// image alone does not).
    public static func build(_ image: MetadataImage, voters: [Int32] = [], clusterId: String? = nil) -> MetadataNode {
        let provenance = [
            MetadataField("lastOffset", .int(image.provenance.lastOffset)),
            MetadataField("lastEpoch", .int(Int64(image.provenance.lastEpoch))),
            MetadataField("recordCount", .int(image.provenance.recordCount)),
        ]
        return MetadataNode(
            name: "", fields: provenance,
            children: [
                brokers(image),
                topics(image),
                configs(image),
                features(image),
                producerIds(image),
                acls(image),
                scram(image),
                clientQuotas(image),
                quorum(voters: voters, clusterId: clusterId),
            ], isDirectory: true)
    }

    static func brokers(_ image: MetadataImage) -> MetadataNode {
        let children = image.brokers.keys.sorted().map { id -> MetadataNode in
            let b = image.brokers[id]!
            return MetadataNode(
                name: String(id.rawValue),
                fields: [
                    MetadataField("id", .int(Int64(b.id.rawValue))),
                    MetadataField("epoch", .int(b.epoch)),
                    MetadataField("incarnationId", .string(b.incarnationId.description)),
                    MetadataField("fenced", .bool(b.fenced)),
                    MetadataField("inControlledShutdown", .bool(b.inControlledShutdown)),
                    MetadataField("rack", b.rack.map { .string($0) } ?? .null),
                    MetadataField("endpoints", .strings(b.endpoints.map { "\($0.listener)://\($0.host):\($0.port)" })),
                    MetadataField("logDirs", .strings(b.logDirs.map(\.description))),
                ])
        }
        return MetadataNode(name: "brokers", children: children, isDirectory: true)
    }

    static func ints(_ values: [Int32]) -> MetadataValue { .ints(values.map(Int64.init)) }

    /// The fields of one partition.
    public static func partitionFields(_ index: Int32, _ p: PartitionRegistration) -> [MetadataField] {
        [
            MetadataField("partition", .int(Int64(index))),
            MetadataField("leader", .int(Int64(p.leader))),
            MetadataField("leaderEpoch", .int(Int64(p.leaderEpoch))),
            MetadataField("partitionEpoch", .int(Int64(p.partitionEpoch))),
            MetadataField("replicas", ints(p.replicas)),
            MetadataField("isr", ints(p.isr)),
            MetadataField("removingReplicas", ints(p.removingReplicas)),
            MetadataField("addingReplicas", ints(p.addingReplicas)),
            MetadataField("leaderRecoveryState", .int(Int64(p.leaderRecoveryState))),
            MetadataField("eligibleLeaderReplicas", ints(p.eligibleLeaderReplicas)),
            MetadataField("lastKnownElr", ints(p.lastKnownElr)),
        ]
    }

    static func topics(_ image: MetadataImage) -> MetadataNode {
        let children = image.topicNames.compactMap { name -> MetadataNode? in
            guard let t = image.topic(named: name) else { return nil }
            let partitions = t.partitions.keys.sorted().map { index in
                MetadataNode(name: String(index), fields: partitionFields(index, t.partitions[index]!))
            }
            return MetadataNode(
                name: t.name,
                fields: [
                    MetadataField("name", .string(t.name)),
                    MetadataField("id", .string(t.id.description)),
                    MetadataField("partitions", .int(Int64(t.partitionCount))),
                ], children: partitions, isDirectory: true)
        }
        return MetadataNode(name: "topics", children: children, isDirectory: true)
    }

    /// The directory name of a config resource type under `/configs`.
    public static func configTypeName(_ type: ConfigResourceType) -> String {
        switch type {
        case .unknown: "unknown"
        case .topic: "topic"
        case .broker: "broker"
        case .brokerLogger: "brokerLogger"
        case .clientMetrics: "clientMetrics"
        case .group: "group"
        }
    }

    /// The node name of a config resource: its name, or `default` for the cluster-wide broker
    /// config (whose resource name is empty).
    public static func configResourceName(_ resource: ConfigResource) -> String {
        resource.name.isEmpty ? "default" : resource.name
    }

    static func configs(_ image: MetadataImage) -> MetadataNode {
        var byType: [ConfigResourceType: [MetadataNode]] = [:]
        var order: [ConfigResourceType] = []
        for resource in image.configs.keys.sorted() {
            let entries = image.configs(of: resource).sorted { $0.key < $1.key }
            if byType[resource.type] == nil { order.append(resource.type) }
            byType[resource.type, default: []].append(
                MetadataNode(
                    name: configResourceName(resource), fields: entries.map { MetadataField($0.key, .string($0.value)) }
                ))
        }
        let children = order.map { type in
            MetadataNode(name: configTypeName(type), children: sortedByName(byType[type]!), isDirectory: true)
        }
        return MetadataNode(name: "configs", children: children, isDirectory: true)
    }

    static func features(_ image: MetadataImage) -> MetadataNode {
        MetadataNode(
            name: "features",
            fields: image.features.keys.sorted().map { MetadataField($0, .int(Int64(image.features[$0]!))) })
    }

    static func producerIds(_ image: MetadataImage) -> MetadataNode {
        MetadataNode(
            name: "producerIds",
            fields: [
                MetadataField("nextProducerId", .int(image.nextProducerId)),
                MetadataField("lastBrokerId", .int(Int64(image.producerIdsBroker))),
            ])
    }

    static func acls(_ image: MetadataImage) -> MetadataNode {
        let children = image.acls.keys.sorted().map { id -> MetadataNode in
            let a = image.acls[id]!
            return MetadataNode(
                name: a.id.description,
                fields: [
                    MetadataField("id", .string(a.id.description)),
                    MetadataField("resourceType", .string(AclNames.resourceType(a.resourceType))),
                    MetadataField("resourceName", .string(a.resourceName)),
                    MetadataField("patternType", .string(AclNames.patternType(a.patternType))),
                    MetadataField("principal", .string(a.principal)),
                    MetadataField("host", .string(a.host)),
                    MetadataField("operation", .string(AclNames.operation(a.operation))),
                    MetadataField("permissionType", .string(AclNames.permissionType(a.permissionType))),
                ])
        }
        return MetadataNode(name: "acls", children: children, isDirectory: true)
    }

    /// What the tree shows in place of a SCRAM key: knowing a StoredKey and ServerKey is enough to
    /// pose as the server, so they stay out of tools' output (as Kafka's shell redacts them).
    public static let redacted = "[redacted]"

    static func scram(_ image: MetadataImage) -> MetadataNode {
        var byMechanism: [Int8: [MetadataNode]] = [:]
        for key in image.scramCredentials.keys.sorted() {
            let c = image.scramCredentials[key]!
            byMechanism[key.mechanism, default: []].append(
                MetadataNode(
                    name: pathComponent(c.user),
                    fields: [
                        MetadataField("user", .string(c.user)),
                        MetadataField("mechanism", .string(ScramNames.mechanism(c.mechanism))),
                        MetadataField("iterations", .int(Int64(c.iterations))),
                        MetadataField("salt", .string(ScramNames.hex(c.salt))),
                        MetadataField("storedKey", .string(redacted)),
                        MetadataField("serverKey", .string(redacted)),
                    ]))
        }
        let children = byMechanism.keys.sorted().map { mechanism in
            MetadataNode(name: ScramNames.mechanism(mechanism), children: byMechanism[mechanism]!, isDirectory: true)
        }
        return MetadataNode(name: "scram", children: children, isDirectory: true)
    }

    static func clientQuotas(_ image: MetadataImage) -> MetadataNode {
        let children = image.clientQuotas.keys.sorted().map { entity -> MetadataNode in
            let values = image.clientQuotas[entity]!
            return MetadataNode(
                name: pathComponent(entity.description),
                fields: values.keys.sorted().map { MetadataField($0, .string(String(values[$0]!))) })
        }
        return MetadataNode(name: "clientQuotas", children: children, isDirectory: true)
    }

    /// A name as one path component: `%` as `%25` and `/` as `%2F`, so a user name with a slash
    /// stays one node.
    public static func pathComponent(_ name: String) -> String {
        var out = ""
        for c in name {
            switch c {
            case "%": out += "%25"
            case "/": out += "%2F"
            default: out.append(c)
            }
        }
        return out
    }

    static func quorum(voters: [Int32], clusterId: String?) -> MetadataNode {
        MetadataNode(
            name: "quorum",
            fields: [
                MetadataField("clusterId", clusterId.map { .string($0) } ?? .null),
                MetadataField("voters", ints(voters.sorted())),
            ])
    }

    /// Numeric names numerically, then the others alphabetically.
    static func sortedByName(_ nodes: [MetadataNode]) -> [MetadataNode] {
        nodes.sorted { a, b in
            switch (Int64(a.name), Int64(b.name)) {
            case let (x?, y?): x < y
            case (.some, nil): true
            case (nil, .some): false
            case (nil, nil): a.name < b.name
            }
        }
    }

    // MARK: paths

    /// The absolute, canonical form of `path` taken from `cwd`: `.` and `..` resolved, no
    /// repeated or trailing slashes. `..` above the root stays at the root.
    public static func normalize(_ path: String, from cwd: String = "/") -> String {
        var parts = path.hasPrefix("/") ? [] : components(cwd)
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(String(component))
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The names along an absolute path (empty for the root).
    public static func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    /// `parent` + `/` + `name`.
    public static func join(_ parent: String, _ name: String) -> String {
        parent.hasSuffix("/") ? parent + name : parent + "/" + name
    }
}

/// Kafka's names for the codes of an ACL binding (as its tools print them).
public enum AclNames {
    /// TOPIC, GROUP, CLUSTER, ... (the code itself when unknown).
    public static func resourceType(_ code: Int8) -> String {
        let names = ["UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"]
        return name(code, names)
    }

    /// LITERAL, PREFIXED, MATCH, ...
    public static func patternType(_ code: Int8) -> String {
        name(code, ["UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"])
    }

    /// READ, WRITE, DESCRIBE, ...
    public static func operation(_ code: Int8) -> String {
        let names = [
            "UNKNOWN", "ANY", "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
            "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS",
        ]
        return name(code, names)
    }

    /// ALLOW or DENY.
    public static func permissionType(_ code: Int8) -> String {
        name(code, ["UNKNOWN", "ANY", "DENY", "ALLOW"])
    }

    static func name(_ code: Int8, _ names: [String]) -> String {
        code >= 0 && Int(code) < names.count ? names[Int(code)] : String(code)
    }
}

/// Kafka's names for SCRAM mechanism codes.
public enum ScramNames {
    /// SCRAM-SHA-256 (1), SCRAM-SHA-512 (2); the code itself otherwise.
    public static func mechanism(_ code: Int8) -> String {
        switch code {
        case 1: "SCRAM-SHA-256"
        case 2: "SCRAM-SHA-512"
        default: String(code)
        }
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
