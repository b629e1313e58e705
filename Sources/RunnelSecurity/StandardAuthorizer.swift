import RunnelCore
import RunnelWire

/// Kafka's StandardAuthorizer as a value: the ACL bindings from the metadata log (by their
/// record id), `super.users` and `allow.everyone.if.no.acl.found`, and the rules that turn them
/// into a decision:
///
/// 1. A super user may do everything.
/// 2. The bindings that apply to a resource are those of its type whose pattern is LITERAL with
///    its exact name, LITERAL `*`, or PREFIXED with a name that begins it.
/// 3. Among those, a binding matches when its principal is the requester's or `User:*`, its host is
///    the requester's or `*`, and its operation is the requested one or ALL; an ALLOW binding also
///    matches the operations it implies (DESCRIBE by READ, WRITE, DELETE or ALTER; DESCRIBE_CONFIGS
///    by ALTER_CONFIGS), a DENY binding does not.
/// 4. Any matching DENY denies; otherwise any matching ALLOW allows.
/// 5. With no binding for the resource at all, `allow.everyone.if.no.acl.found` decides; with
///    bindings but none matching, the action is denied.
///
/// A check looks only at the bindings that can apply: literal bindings by (type, name), and
/// prefixed bindings by (type, prefix) for each prefix length that some prefixed binding of the
/// type has. It never scans the whole set, so thousands of bindings cost a few hash lookups.
/// Names compare byte for byte, as Kafka compares Java strings.
///
/// The broker keeps one value, applies each metadata delta's ACL changes with `add`/`remove`, and
/// publishes the new value to its request handlers.
public struct StandardAuthorizer: Authorizer, Sendable {
    /// One binding as stored: its record id, and its principal parsed once.
    struct StoredAcl: Sendable {
        var id: KafkaUUID
        var binding: AclBinding
        /// nil when the binding's principal text has no colon: it then matches no principal.
        var principal: KafkaPrincipal?
    }

    /// (type, name bytes) of a bucket.
    struct NameKey: Hashable, Sendable {
        var type: ResourceType
        var name: [UInt8]
    }

    /// Principals allowed everything (`super.users`).
    public var superUsers: Set<KafkaPrincipal>
    /// What an action on a resource that no binding names gets (`allow.everyone.if.no.acl.found`).
    public var allowEveryoneIfNoAclFound: Bool

    private var byId: [KafkaUUID: StoredAcl] = [:]
    private var literal: [NameKey: [KafkaUUID: StoredAcl]] = [:]
    private var prefixed: [NameKey: [KafkaUUID: StoredAcl]] = [:]
    /// For each type, how many distinct prefixed names have each byte length.
    private var prefixLengths: [ResourceType: [Int: Int]] = [:]

    /// An authorizer with no bindings.
    public init(superUsers: Set<KafkaPrincipal> = [], allowEveryoneIfNoAclFound: Bool = false) {
        self.superUsers = superUsers
        self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    /// An authorizer holding `acls`, keyed by their record ids.
    public init(
        superUsers: Set<KafkaPrincipal> = [], allowEveryoneIfNoAclFound: Bool = false,
        acls: some Sequence<(KafkaUUID, AclBinding)>
    ) {
        self.init(superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound)
        for (id, binding) in acls { add(id: id, binding: binding) }
    }

    /// The number of bindings held.
    public var aclCount: Int { byId.count }

    /// The binding with record id `id`.
    public func acl(id: KafkaUUID) -> AclBinding? { byId[id]?.binding }

    /// Every binding with its id, in id order.
    public var acls: [(id: KafkaUUID, binding: AclBinding)] {
        byId.keys.sorted().map { ($0, byId[$0]!.binding) }
    }

    /// The bindings `filter` selects (what DescribeAcls answers), in id order.
    public func acls(matching filter: AclBindingFilter) -> [AclBinding] {
        acls.map(\.binding).filter(filter.matches)
    }

    /// Adds (or replaces) the binding with record id `id`, as replaying an
    /// AccessControlEntryRecord does. A binding whose pattern type is neither LITERAL nor PREFIXED
    /// is kept but applies to nothing.
    public mutating func add(id: KafkaUUID, binding: AclBinding) {
        if byId[id] != nil { remove(id: id) }
        let stored = StoredAcl(id: id, binding: binding, principal: KafkaPrincipal(parsing: binding.entry.principal))
        byId[id] = stored
        let key = NameKey(type: binding.pattern.resourceType, name: Array(binding.pattern.name.utf8))
        switch binding.pattern.patternType {
        case .literal:
            literal[key, default: [:]][id] = stored
        case .prefixed:
            if prefixed[key] == nil { prefixLengths[key.type, default: [:]][key.name.count, default: 0] += 1 }
            prefixed[key, default: [:]][id] = stored
        default:
            break
        }
    }

    /// Removes the binding with record id `id`, as replaying a RemoveAccessControlEntryRecord
    /// does; nothing when there is none.
    public mutating func remove(id: KafkaUUID) {
        guard let stored = byId.removeValue(forKey: id) else { return }
        let key = NameKey(type: stored.binding.pattern.resourceType, name: Array(stored.binding.pattern.name.utf8))
        switch stored.binding.pattern.patternType {
        case .literal:
            literal[key]?.removeValue(forKey: id)
            if literal[key]?.isEmpty == true { literal.removeValue(forKey: key) }
        case .prefixed:
            prefixed[key]?.removeValue(forKey: id)
            if prefixed[key]?.isEmpty == true {
                prefixed.removeValue(forKey: key)
                let remaining = (prefixLengths[key.type]?[key.name.count] ?? 0) - 1
                precondition(remaining >= 0, "the prefix length count follows the prefixed buckets")
                prefixLengths[key.type]?[key.name.count] = remaining == 0 ? nil : remaining
                if prefixLengths[key.type]?.isEmpty == true { prefixLengths.removeValue(forKey: key.type) }
            }
        default:
            break
        }
    }

    // MARK: decisions

    public func decide(
        _ principal: KafkaPrincipal, host: String, operation: AclOperation, resource: Resource
    ) -> AuthorizationRule {
        precondition(
            operation != .unknown && operation != .any, "an action names a concrete operation, not \(operation)")
        if superUsers.contains(principal) { return .superUser }
        var sawResourceAcl = false
        var allowedBy: AclBinding?
        var denied: AclBinding?
        forEachApplicable(to: resource) { acl in
            sawResourceAcl = true
            switch Self.result(of: acl, principal: principal, host: host, operation: operation) {
            case .allow?:
                if allowedBy == nil { allowedBy = acl.binding }
                return true
            case .deny?:
                denied = acl.binding
                return false
            case nil:
                return true
            }
        }
        if let denied { return .deniedBy(denied) }
        if let allowedBy { return .allowedBy(allowedBy) }
        return sawResourceAcl ? .noMatchingAcl : .noAclFound(allowed: allowEveryoneIfNoAclFound)
    }

    /// Calls `body` with each binding that applies to `resource` (rule 2) until it returns false.
    private func forEachApplicable(to resource: Resource, _ body: (StoredAcl) -> Bool) {
        let name = Array(resource.name.utf8)
        var buckets: [NameKey] = [NameKey(type: resource.type, name: name)]
        if !sameBytes(resource.name, ResourcePattern.wildcardName) {
            buckets.append(NameKey(type: resource.type, name: Array(ResourcePattern.wildcardName.utf8)))
        }
        for key in buckets {
            for acl in literal[key]?.values ?? [:].values {
                if !body(acl) { return }
            }
        }
        for length in prefixLengths[resource.type]?.keys ?? [:].keys where length <= name.count {
            for acl in prefixed[NameKey(type: resource.type, name: Array(name[..<length]))]?.values ?? [:].values {
                if !body(acl) { return }
            }
        }
    }

    /// How many bindings a check of `resource` looks at (tests pin that it is not all of them).
    func applicableCount(to resource: Resource) -> Int {
        var count = 0
        forEachApplicable(to: resource) { _ in
            count += 1
            return true
        }
        return count
    }

    enum Permission { case allow, deny }

    /// What one applicable binding says about the action (rule 3), nil when it does not match
    /// the principal, host or operation.
    static func result(
        of acl: StoredAcl, principal: KafkaPrincipal, host: String, operation: AclOperation
    ) -> Permission? {
        guard let aclPrincipal = acl.principal, aclPrincipal == principal || aclPrincipal == .wildcard else {
            return nil
        }
        let entry = acl.binding.entry
        guard sameBytes(entry.host, AccessControlEntry.wildcardHost) || sameBytes(entry.host, host) else { return nil }
        if entry.permissionType == .allow { return entry.operation.allows(operation) ? .allow : nil }
        // DENY, and, failing closed as Kafka's findResult does, any permission that is not ALLOW
        // (a record from a newer version).
        return entry.operation == .all || entry.operation == operation ? .deny : nil
    }

    /// Kafka's default `authorizeByResourceType`: allowed when the principal could do `operation`
    /// to an unnamed resource of `type` (super users; `allow.everyone.if.no.acl.found` with no
    /// bindings for it), or when some ALLOW binding of the type for the principal (or `User:*`),
    /// host and operation (or ALL) is not dominated by a DENY: a literal `*` DENY denies all, a
    /// literal ALLOW is dominated by a literal DENY of the same name, and any ALLOW by a prefixed
    /// DENY whose name begins the ALLOW's. Implied operations do not count here, as in Kafka.
    /// This looks at every binding of the type.
    public func authorizeByResourceType(
        _ principal: KafkaPrincipal, host: String, operation: AclOperation, type: ResourceType
    ) -> Bool {
        precondition(
            operation != .unknown && operation != .any,
            "authorizeByResourceType needs a concrete operation, not \(operation)")
        precondition(type.isConcrete, "authorizeByResourceType needs a concrete resource type, not \(type)")
        if authorize(principal, host: host, operation: operation, resource: Resource(type, "hardcode")) { return true }
        var denyLiteral = Set<[UInt8]>()
        var denyPrefixed = Set<[UInt8]>()
        var allowLiteral = Set<[UInt8]>()
        var allowPrefixed = Set<[UInt8]>()
        var wildcardAllow = false
        let wildcard = Array(ResourcePattern.wildcardName.utf8)
        for (key, bucket) in literal.lazy.filter({ $0.key.type == type }) {
            for acl in bucket.values
            where Self.matchesExactly(acl, principal: principal, host: host, operation: operation) {
                switch acl.binding.entry.permissionType {
                case .deny:
                    if key.name == wildcard { return false }
                    denyLiteral.insert(key.name)
                case .allow:
                    if key.name == wildcard { wildcardAllow = true } else { allowLiteral.insert(key.name) }
                default: break
                }
            }
        }
        for (key, bucket) in prefixed.lazy.filter({ $0.key.type == type }) {
            for acl in bucket.values
            where Self.matchesExactly(acl, principal: principal, host: host, operation: operation) {
                switch acl.binding.entry.permissionType {
                case .deny: denyPrefixed.insert(key.name)
                case .allow: allowPrefixed.insert(key.name)
                default: break
                }
            }
        }
        if wildcardAllow { return true }
        func dominated(_ name: [UInt8]) -> Bool {
            (1...max(1, name.count)).contains { length in
                length <= name.count && denyPrefixed.contains(Array(name[..<length]))
            }
        }
        for name in allowLiteral where !denyLiteral.contains(name) && !dominated(name) { return true }
        for name in allowPrefixed where !dominated(name) { return true }
        return false
    }

    /// The principal, host and operation test of `authorizeByResourceType`: the principal is the
    /// requester's or the text `User:*`, the operation is the requested one or ALL.
    static func matchesExactly(
        _ acl: StoredAcl, principal: KafkaPrincipal, host: String, operation: AclOperation
    ) -> Bool {
        let entry = acl.binding.entry
        guard sameBytes(entry.host, AccessControlEntry.wildcardHost) || sameBytes(entry.host, host) else {
            return false
        }
        guard acl.principal == principal || sameBytes(entry.principal, KafkaPrincipal.wildcard.description) else {
            return false
        }
        return entry.operation == operation || entry.operation == .all
    }
}

extension StandardAuthorizer {
    /// Parses `super.users` (principals separated by `;`, as Kafka's StandardAuthorizer reads it).
    /// Blank entries are skipped; an entry that is not `Type:name` is refused with a sentence that
    /// names it (Kafka would keep it and never match it).
    public static func superUsers(fromConfig value: String) throws(SecurityConfigError) -> Set<KafkaPrincipal> {
        var out = Set<KafkaPrincipal>()
        for part in value.split(separator: ";", omittingEmptySubsequences: true) {
            let text = part.trimmingWhitespace()
            if text.isEmpty { continue }
            guard let principal = KafkaPrincipal(parsing: text) else {
                throw SecurityConfigError(
                    "super.users holds `\(text)`, which is not a principal of the form Type:name (User:admin); separate principals with `;`"
                )
            }
            out.insert(principal)
        }
        return out
    }
}

/// A security setting that cannot be used: one sentence that says what is wrong and what to do.
public struct SecurityConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}
