/// A concrete resource a request touches: a topic, a group, the cluster, a transactional id, a
/// delegation token or a user, by name (Kafka checks actions against a LITERAL `ResourcePattern`).
public struct Resource: Sendable, Hashable, CustomStringConvertible {
    public var type: ResourceType
    public var name: String

    /// A resource of a concrete type.
    public init(_ type: ResourceType, _ name: String) {
        precondition(type.isConcrete, "a checked resource has a concrete type, not \(type)")
        self.type = type
        self.name = name
    }

    /// The topic `name`.
    public static func topic(_ name: String) -> Resource { Resource(.topic, name) }
    /// The consumer group `name`.
    public static func group(_ name: String) -> Resource { Resource(.group, name) }
    /// The transactional id `name`.
    public static func transactionalId(_ name: String) -> Resource { Resource(.transactionalId, name) }
    /// The cluster (`kafka-cluster`).
    public static let cluster = Resource(.cluster, ResourcePattern.clusterName)

    /// `TOPIC:orders`.
    public var description: String { "\(type):\(name)" }

    public static func == (lhs: Resource, rhs: Resource) -> Bool {
        lhs.type == rhs.type && sameBytes(lhs.name, rhs.name)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        for byte in name.utf8 { hasher.combine(byte) }
    }
}

/// What decided an authorization, for the audit log (Kafka's `MatchingRule`).
public enum AuthorizationRule: Sendable, Equatable, CustomStringConvertible {
    /// The principal is in `super.users`.
    case superUser
    /// This ALLOW binding matched and no DENY did.
    case allowedBy(AclBinding)
    /// This DENY binding matched (DENY beats ALLOW).
    case deniedBy(AclBinding)
    /// No binding names the resource at all; `allow.everyone.if.no.acl.found` decided.
    case noAclFound(allowed: Bool)
    /// Bindings name the resource, but none matched the principal, host and operation.
    case noMatchingAcl

    /// Whether the action is allowed.
    public var allowed: Bool {
        switch self {
        case .superUser, .allowedBy: true
        case .deniedBy, .noMatchingAcl: false
        case .noAclFound(let allowed): allowed
        }
    }

    /// `SuperUser`, `MatchingAcl(acl=...)`, `DefaultAllow`, `DefaultDeny`, as Kafka's audit log says.
    public var description: String {
        switch self {
        case .superUser: "SuperUser"
        case .allowedBy(let acl), .deniedBy(let acl): "MatchingAcl(acl=\(acl))"
        case .noAclFound(let allowed): allowed ? "DefaultAllow" : "DefaultDeny"
        case .noMatchingAcl: "DefaultDeny"
        }
    }
}

/// What the broker asks before it serves an action: may `principal`, connected from `host`, do
/// `operation` to `resource`? Implementations are values, safe to read from any thread.
public protocol Authorizer: Sendable {
    /// The decision with the rule that made it (for the audit log).
    func decide(
        _ principal: KafkaPrincipal, host: String, operation: AclOperation, resource: Resource
    ) -> AuthorizationRule

    /// Whether `principal` may do `operation` to at least one resource of `type` (Kafka's
    /// `authorizeByResourceType`: an idempotent producer without IDEMPOTENT_WRITE on the cluster
    /// may still produce if it may WRITE some topic).
    func authorizeByResourceType(
        _ principal: KafkaPrincipal, host: String, operation: AclOperation, type: ResourceType
    ) -> Bool
}

extension Authorizer {
    /// Whether `principal`, connected from `host`, may do `operation` to `resource`.
    public func authorize(
        _ principal: KafkaPrincipal, host: String, operation: AclOperation, resource: Resource
    ) -> Bool {
        decide(principal, host: host, operation: operation, resource: resource).allowed
    }

    /// The operations `principal` may do to `resource`, among those Kafka defines for its type
    /// (for Metadata's and DescribeGroups' `*AuthorizedOperations` fields: encode them with
    /// `AclOperation.bitField`).
    public func authorizedOperations(_ principal: KafkaPrincipal, host: String, resource: Resource) -> Set<AclOperation>
    {
        Set(
            AclOperation.supported(by: resource.type).filter {
                authorize(principal, host: host, operation: $0, resource: resource)
            })
    }
}

extension AclOperation {
    /// The operations that apply to resources of `type` (Kafka's `AclEntry.supportedOperations`,
    /// with the group config operations Kafka 4 added for group configs).
    public static func supported(by type: ResourceType) -> [AclOperation] {
        switch type {
        case .topic: [.read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs]
        case .group: [.read, .describe, .delete, .describeConfigs, .alterConfigs]
        case .cluster: [.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe]
        case .transactionalId: [.describe, .write]
        case .delegationToken: [.describe]
        case .user: [.createTokens, .describeTokens]
        case .unknown, .any: []
        }
    }

    /// The `*AuthorizedOperations` value of Metadata, DescribeGroups and DescribeCluster when the
    /// client did not ask for it (Kafka's `Integer.MIN_VALUE`).
    public static let authorizedOperationsOmitted = Int32.min

    /// Kafka's bit field of operations (`Utils.to32BitField`): bit `code` set for each operation.
    public static func bitField(_ operations: some Sequence<AclOperation>) -> Int32 {
        var field: UInt32 = 0
        for operation in operations {
            precondition(operation.rawValue >= 0 && operation.rawValue < 32, "an operation code fits a 32-bit field")
            field |= 1 << UInt32(operation.rawValue)
        }
        return Int32(bitPattern: field)
    }

    /// The operations whose bits are set in `field` (the inverse of `bitField`, for clients and tests).
    public static func operations(inBitField field: Int32) -> Set<AclOperation> {
        guard field != authorizedOperationsOmitted else { return [] }
        let bits = UInt32(bitPattern: field)
        return Set(allCases.filter { bits & (1 << UInt32($0.rawValue)) != 0 })
    }
}
