import RunnelCore
import RunnelWire

/// A resource pattern: the resources an ACL binding applies to (Kafka's `ResourcePattern`).
/// Names compare byte for byte, as Kafka's do.
public struct ResourcePattern: Sendable, Hashable, CustomStringConvertible {
    public var resourceType: ResourceType
    public var name: String
    public var patternType: PatternType

    /// The literal name that matches every resource of its type (`ResourcePattern.WILDCARD_RESOURCE`).
    public static let wildcardName = "*"
    /// The one name of the cluster resource (`Resource.CLUSTER_NAME`).
    public static let clusterName = "kafka-cluster"

    public init(_ resourceType: ResourceType, _ name: String, _ patternType: PatternType = .literal) {
        self.resourceType = resourceType
        self.name = name
        self.patternType = patternType
    }

    /// Whether this pattern applies to the resource `name` of its type: a literal pattern equal to
    /// it or named `*`, or a prefixed pattern whose name begins it.
    public func applies(to name: String) -> Bool {
        switch patternType {
        case .literal: sameBytes(self.name, Self.wildcardName) || sameBytes(self.name, name)
        case .prefixed: name.utf8.starts(with: self.name.utf8)
        default: false
        }
    }

    /// `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`, as Kafka prints it.
    public var description: String {
        "ResourcePattern(resourceType=\(resourceType), name=\(name), patternType=\(patternType))"
    }

    public static func == (lhs: ResourcePattern, rhs: ResourcePattern) -> Bool {
        lhs.resourceType == rhs.resourceType && lhs.patternType == rhs.patternType && sameBytes(lhs.name, rhs.name)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(resourceType)
        hasher.combine(patternType)
        for byte in name.utf8 { hasher.combine(byte) }
    }
}

/// Who may or may not do what from where (Kafka's `AccessControlEntry`). The principal is kept
/// as its text (`User:alice`, or `User:*` for everyone), as the wire and the records carry it.
public struct AccessControlEntry: Sendable, Hashable, CustomStringConvertible {
    public var principal: String
    /// A client address as the broker sees it, or `*` for any host.
    public var host: String
    public var operation: AclOperation
    public var permissionType: AclPermissionType

    /// The host that matches every client address.
    public static let wildcardHost = "*"

    public init(principal: String, host: String, operation: AclOperation, permissionType: AclPermissionType) {
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permissionType = permissionType
    }

    /// `(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)`, as Kafka prints it.
    public var description: String {
        "(principal=\(principal), host=\(host), operation=\(operation), permissionType=\(permissionType))"
    }

    public static func == (lhs: AccessControlEntry, rhs: AccessControlEntry) -> Bool {
        lhs.operation == rhs.operation && lhs.permissionType == rhs.permissionType
            && sameBytes(lhs.principal, rhs.principal) && sameBytes(lhs.host, rhs.host)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(permissionType)
        for byte in principal.utf8 { hasher.combine(byte) }
        hasher.combine(UInt8(0))
        for byte in host.utf8 { hasher.combine(byte) }
    }
}

/// An ACL: a resource pattern and an entry (Kafka's `AclBinding`).
public struct AclBinding: Sendable, Hashable, CustomStringConvertible {
    public var pattern: ResourcePattern
    public var entry: AccessControlEntry

    public init(pattern: ResourcePattern, entry: AccessControlEntry) {
        self.pattern = pattern
        self.entry = entry
    }

    /// A binding from its parts.
    public init(
        _ resourceType: ResourceType, _ name: String, _ patternType: PatternType = .literal,
        principal: String, host: String = AccessControlEntry.wildcardHost,
        operation: AclOperation, permission: AclPermissionType
    ) {
        self.init(
            pattern: ResourcePattern(resourceType, name, patternType),
            entry: AccessControlEntry(
                principal: principal, host: host, operation: operation, permissionType: permission))
    }

    /// The binding an AccessControlEntryRecord holds (codes this build does not know read as
    /// `.unknown`).
    public init(_ record: AccessControlEntryRecord) {
        self.init(
            pattern: ResourcePattern(
                ResourceType(code: record.resourceType), record.resourceName, PatternType(code: record.patternType)),
            entry: AccessControlEntry(
                principal: record.principal, host: record.host, operation: AclOperation(code: record.operation),
                permissionType: AclPermissionType(code: record.permissionType)))
    }

    /// The record that creates this binding under `id`.
    public func record(id: KafkaUUID) -> AccessControlEntryRecord {
        AccessControlEntryRecord(
            id: id, resourceType: pattern.resourceType.rawValue, resourceName: pattern.name,
            patternType: pattern.patternType.rawValue,
            principal: entry.principal, host: entry.host, operation: entry.operation.rawValue,
            permissionType: entry.permissionType.rawValue)
    }

    /// Why Kafka's controller refuses to create this binding (`AclControlManager.validateNewAcl`
    /// and the broker's checks in `AclApis`), or nil when it may be created: a concrete resource
    /// type, a LITERAL or PREFIXED pattern, a non-empty name (`kafka-cluster` for the cluster), an
    /// operation other than UNKNOWN or ANY, ALLOW or DENY, and a principal of the form `Type:name`.
    public var validationError: String? {
        if !pattern.resourceType.isConcrete { return "Invalid resourceType \(pattern.resourceType)" }
        if !pattern.patternType.isSpecific { return "Invalid patternType \(pattern.patternType)" }
        if entry.operation == .unknown || entry.operation == .any { return "Invalid operation \(entry.operation)" }
        if entry.permissionType != .allow && entry.permissionType != .deny {
            return "Invalid permissionType \(entry.permissionType)"
        }
        if pattern.name.isEmpty { return "Resource name should not be empty" }
        if pattern.resourceType == .cluster && !sameBytes(pattern.name, ResourcePattern.clusterName) {
            return "The only valid name for the CLUSTER resource is \(ResourcePattern.clusterName)"
        }
        if KafkaPrincipal(parsing: entry.principal) == nil {
            return
                "Could not parse principal from `\(entry.principal)` (no colon is found between resource type and resource name)."
        }
        return nil
    }

    /// `(pattern=..., entry=...)`, as Kafka prints it.
    public var description: String { "(pattern=\(pattern), entry=\(entry))" }
}

/// A filter over resource patterns (Kafka's `ResourcePatternFilter`), as DescribeAcls and
/// DeleteAcls carry it.
public struct ResourcePatternFilter: Sendable, Hashable, CustomStringConvertible {
    /// `.any` matches every type; another type only itself.
    public var resourceType: ResourceType
    /// nil matches every name.
    public var name: String?
    /// `.any` and `.match` match every pattern type; another type only itself.
    public var patternType: PatternType

    /// Matches every pattern.
    public static let any = ResourcePatternFilter(.any, nil, .any)

    public init(_ resourceType: ResourceType, _ name: String?, _ patternType: PatternType) {
        self.resourceType = resourceType
        self.name = name
        self.patternType = patternType
    }

    /// Whether a component is UNKNOWN (such a filter is refused).
    public var isUnknown: Bool { resourceType == .unknown || patternType == .unknown }

    /// Kafka's matching rule: the type must agree unless the filter's is ANY; the pattern type
    /// must agree unless the filter's is ANY or MATCH; a null name matches all; with ANY or the
    /// same pattern type the names must be equal; with MATCH a literal pattern matches when its
    /// name is the filter's or `*`, and a prefixed pattern when its name begins the filter's.
    public func matches(_ pattern: ResourcePattern) -> Bool {
        if resourceType != .any && resourceType != pattern.resourceType { return false }
        if patternType != .any && patternType != .match && patternType != pattern.patternType { return false }
        guard let name else { return true }
        if patternType == .any || patternType == pattern.patternType { return sameBytes(name, pattern.name) }
        switch pattern.patternType {
        case .literal: return sameBytes(name, pattern.name) || sameBytes(pattern.name, ResourcePattern.wildcardName)
        case .prefixed: return name.utf8.starts(with: pattern.name.utf8)
        default: return false
        }
    }

    /// `ResourcePattern(resourceType=..., name=<any>, patternType=...)`, as Kafka prints it.
    public var description: String {
        "ResourcePattern(resourceType=\(resourceType), name=\(name ?? "<any>"), patternType=\(patternType))"
    }

    public static func == (lhs: ResourcePatternFilter, rhs: ResourcePatternFilter) -> Bool {
        lhs.resourceType == rhs.resourceType && lhs.patternType == rhs.patternType
            && optionalSameBytes(lhs.name, rhs.name)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(resourceType)
        hasher.combine(patternType)
        hasher.combine(name == nil)
        for byte in name?.utf8 ?? "".utf8 { hasher.combine(byte) }
    }
}

/// A filter over access control entries (Kafka's `AccessControlEntryFilter`).
public struct AccessControlEntryFilter: Sendable, Hashable, CustomStringConvertible {
    /// nil matches every principal; otherwise the principal text must be equal (`User:*` matches
    /// only bindings for `User:*`).
    public var principal: String?
    /// nil matches every host; otherwise equal.
    public var host: String?
    /// `.any` matches every operation; otherwise equal (no implied operations here).
    public var operation: AclOperation
    /// `.any` matches both; otherwise equal.
    public var permissionType: AclPermissionType

    /// Matches every entry.
    public static let any = AccessControlEntryFilter(principal: nil, host: nil, operation: .any, permissionType: .any)

    public init(principal: String?, host: String?, operation: AclOperation, permissionType: AclPermissionType) {
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permissionType = permissionType
    }

    /// Whether a component is UNKNOWN (such a filter is refused).
    public var isUnknown: Bool { operation == .unknown || permissionType == .unknown }

    /// Kafka's matching rule: each non-null, non-ANY component must be equal.
    public func matches(_ entry: AccessControlEntry) -> Bool {
        if let principal, !sameBytes(principal, entry.principal) { return false }
        if let host, !sameBytes(host, entry.host) { return false }
        if operation != .any && operation != entry.operation { return false }
        if permissionType != .any && permissionType != entry.permissionType { return false }
        return true
    }

    /// `(principal=..., host=..., operation=..., permissionType=...)`.
    public var description: String {
        "(principal=\(principal ?? "<any>"), host=\(host ?? "<any>"), operation=\(operation), permissionType=\(permissionType))"
    }

    public static func == (lhs: AccessControlEntryFilter, rhs: AccessControlEntryFilter) -> Bool {
        lhs.operation == rhs.operation && lhs.permissionType == rhs.permissionType
            && optionalSameBytes(lhs.principal, rhs.principal) && optionalSameBytes(lhs.host, rhs.host)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(operation)
        hasher.combine(permissionType)
        hasher.combine(principal == nil)
        for byte in principal?.utf8 ?? "".utf8 { hasher.combine(byte) }
        hasher.combine(host == nil)
        for byte in host?.utf8 ?? "".utf8 { hasher.combine(byte) }
    }
}

/// A filter over ACL bindings (Kafka's `AclBindingFilter`): DescribeAcls selects with one,
/// DeleteAcls deletes what each of its filters matches.
public struct AclBindingFilter: Sendable, Hashable, CustomStringConvertible {
    public var patternFilter: ResourcePatternFilter
    public var entryFilter: AccessControlEntryFilter

    /// Matches every binding.
    public static let any = AclBindingFilter(patternFilter: .any, entryFilter: .any)

    public init(patternFilter: ResourcePatternFilter, entryFilter: AccessControlEntryFilter) {
        self.patternFilter = patternFilter
        self.entryFilter = entryFilter
    }

    /// The filter a DescribeAcls request carries.
    public init(_ request: DescribeAclsRequest) {
        self.init(
            patternFilter: ResourcePatternFilter(
                ResourceType(code: request.resourceTypeFilter), request.resourceNameFilter,
                PatternType(code: request.patternTypeFilter)),
            entryFilter: AccessControlEntryFilter(
                principal: request.principalFilter, host: request.hostFilter,
                operation: AclOperation(code: request.operation),
                permissionType: AclPermissionType(code: request.permissionType)))
    }

    /// The filter one entry of a DeleteAcls request carries.
    public init(_ filter: DeleteAclsRequest.DeleteAclsFilter) {
        self.init(
            patternFilter: ResourcePatternFilter(
                ResourceType(code: filter.resourceTypeFilter), filter.resourceNameFilter,
                PatternType(code: filter.patternTypeFilter)),
            entryFilter: AccessControlEntryFilter(
                principal: filter.principalFilter, host: filter.hostFilter,
                operation: AclOperation(code: filter.operation),
                permissionType: AclPermissionType(code: filter.permissionType)))
    }

    /// Whether a component is UNKNOWN: Kafka refuses such a filter with INVALID_REQUEST.
    public var isUnknown: Bool { patternFilter.isUnknown || entryFilter.isUnknown }

    /// Whether `binding` is selected by this filter.
    public func matches(_ binding: AclBinding) -> Bool {
        patternFilter.matches(binding.pattern) && entryFilter.matches(binding.entry)
    }

    public var description: String { "(patternFilter=\(patternFilter), entryFilter=\(entryFilter))" }
}

@inline(__always)
func optionalSameBytes(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case let (x?, y?): sameBytes(x, y)
    default: false
    }
}
