// The vocabulary of Kafka's ACLs with Kafka's wire codes (`org.apache.kafka.common.resource` and
// `org.apache.kafka.common.acl`). A code this build does not know reads as `.unknown`, as Kafka's
// `fromCode` does; a binding holding one is refused where Kafka refuses it.

/// The kind of resource an ACL protects.
public enum ResourceType: Int8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A code this build does not know.
    case unknown = 0
    /// Filters only: any resource type.
    case any = 1
    case topic = 2
    case group = 3
    /// The cluster itself; its only resource name is `kafka-cluster`.
    case cluster = 4
    case transactionalId = 5
    case delegationToken = 6
    /// A user, for delegation tokens (KIP-373).
    case user = 7

    /// The type with wire code `code`; `.unknown` for a code this build does not know.
    public init(code: Int8) { self = ResourceType(rawValue: code) ?? .unknown }

    /// Kafka's name: `TOPIC`, `TRANSACTIONAL_ID`, ...
    public var description: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .topic: "TOPIC"
        case .group: "GROUP"
        case .cluster: "CLUSTER"
        case .transactionalId: "TRANSACTIONAL_ID"
        case .delegationToken: "DELEGATION_TOKEN"
        case .user: "USER"
        }
    }

    /// Parses Kafka's name, ignoring case (as `ResourceType.fromString`); `.unknown` otherwise.
    public init(name: String) {
        self = Self.allCases.first { $0.description == name.uppercased() } ?? .unknown
    }

    /// A type an ACL can be created for (not `.unknown` or `.any`).
    public var isConcrete: Bool { self != .unknown && self != .any }
}

/// How an ACL's resource name is matched.
public enum PatternType: Int8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A code this build does not know.
    case unknown = 0
    /// Filters only: any pattern type, name compared exactly.
    case any = 1
    /// Filters only: every pattern that would apply to the named resource (literal equal,
    /// literal `*`, prefixed prefix).
    case match = 2
    /// The name is the resource name, or `*` for every resource of the type.
    case literal = 3
    /// The name is a prefix of resource names.
    case prefixed = 4

    /// The pattern type with wire code `code`; `.unknown` for a code this build does not know.
    public init(code: Int8) { self = PatternType(rawValue: code) ?? .unknown }

    /// Kafka's name: `LITERAL`, `PREFIXED`, ...
    public var description: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .match: "MATCH"
        case .literal: "LITERAL"
        case .prefixed: "PREFIXED"
        }
    }

    /// Parses Kafka's name, ignoring case; `.unknown` otherwise.
    public init(name: String) {
        self = Self.allCases.first { $0.description == name.uppercased() } ?? .unknown
    }

    /// A pattern type a binding may hold (`.literal` or `.prefixed`).
    public var isSpecific: Bool { self == .literal || self == .prefixed }
}

/// What an ACL allows or denies doing to a resource.
public enum AclOperation: Int8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A code this build does not know.
    case unknown = 0
    /// Filters only: any operation.
    case any = 1
    /// In a binding: every operation.
    case all = 2
    case read = 3
    case write = 4
    case create = 5
    case delete = 6
    case alter = 7
    case describe = 8
    case clusterAction = 9
    case describeConfigs = 10
    case alterConfigs = 11
    case idempotentWrite = 12
    case createTokens = 13
    case describeTokens = 14

    /// The operation with wire code `code`; `.unknown` for a code this build does not know.
    public init(code: Int8) { self = AclOperation(rawValue: code) ?? .unknown }

    /// Kafka's name: `READ`, `DESCRIBE_CONFIGS`, ...
    public var description: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .all: "ALL"
        case .read: "READ"
        case .write: "WRITE"
        case .create: "CREATE"
        case .delete: "DELETE"
        case .alter: "ALTER"
        case .describe: "DESCRIBE"
        case .clusterAction: "CLUSTER_ACTION"
        case .describeConfigs: "DESCRIBE_CONFIGS"
        case .alterConfigs: "ALTER_CONFIGS"
        case .idempotentWrite: "IDEMPOTENT_WRITE"
        case .createTokens: "CREATE_TOKENS"
        case .describeTokens: "DESCRIBE_TOKENS"
        }
    }

    /// Parses Kafka's name, ignoring case; `.unknown` otherwise.
    public init(name: String) {
        self = Self.allCases.first { $0.description == name.uppercased() } ?? .unknown
    }

    /// The operations an ALLOW binding for this operation also allows, itself included
    /// (Kafka's implied operations): READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
    /// implies DESCRIBE_CONFIGS; ALL implies every operation. A DENY binding implies nothing but
    /// its own operation (and ALL denies every operation).
    public func allows(_ requested: AclOperation) -> Bool {
        if self == .all || self == requested { return true }
        switch requested {
        case .describe: return self == .read || self == .write || self == .delete || self == .alter
        case .describeConfigs: return self == .alterConfigs
        default: return false
        }
    }
}

/// Whether a binding allows or denies.
public enum AclPermissionType: Int8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A code this build does not know.
    case unknown = 0
    /// Filters only: either.
    case any = 1
    case deny = 2
    case allow = 3

    /// The permission type with wire code `code`; `.unknown` for a code this build does not know.
    public init(code: Int8) { self = AclPermissionType(rawValue: code) ?? .unknown }

    /// Kafka's name: `ALLOW` or `DENY`.
    public var description: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .deny: "DENY"
        case .allow: "ALLOW"
        }
    }

    /// Parses Kafka's name, ignoring case; `.unknown` otherwise.
    public init(name: String) {
        self = Self.allCases.first { $0.description == name.uppercased() } ?? .unknown
    }
}
