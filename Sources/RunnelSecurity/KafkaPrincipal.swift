/// Who a connection is, as Kafka names it: a principal type and a name, printed `Type:name`
/// (`User:alice`). The authorizer, `super.users` and ACL bindings all speak this form.
///
/// Two principals are equal when their type and name are the same bytes (Kafka compares Java
/// strings exactly; Swift's `String ==` would also equate canonically equivalent Unicode, which
/// a security check must not do).
public struct KafkaPrincipal: Sendable, Hashable, CustomStringConvertible {
    /// The principal type, `User` for every principal Kafka's own builders make.
    public var type: String
    /// The name within the type: the SASL authorization id, the mapped certificate name, or
    /// `ANONYMOUS`.
    public var name: String

    /// Kafka's `KafkaPrincipal.USER_TYPE`.
    public static let userType = "User"
    /// The principal of an unauthenticated connection (PLAINTEXT, or SSL without a client
    /// certificate): `User:ANONYMOUS`.
    public static let anonymous = KafkaPrincipal(type: userType, name: "ANONYMOUS")
    /// The principal an ACL names to mean every principal: `User:*`.
    public static let wildcard = KafkaPrincipal(type: userType, name: "*")

    /// A principal of `type` named `name`.
    public init(type: String, name: String) {
        self.type = type
        self.name = name
    }

    /// A `User` principal named `name`.
    public static func user(_ name: String) -> KafkaPrincipal {
        KafkaPrincipal(type: userType, name: name)
    }

    /// Parses `Type:name` as Kafka's `SecurityUtils.parseKafkaPrincipal` does: split at the first
    /// colon; nil when there is no colon. The name may itself contain colons.
    public init?(parsing text: String) {
        guard let colon = text.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        self.type = String(text[..<colon])
        self.name = String(text[text.utf8.index(after: colon)...])
    }

    /// `Type:name`.
    public var description: String { type + ":" + name }

    public static func == (lhs: KafkaPrincipal, rhs: KafkaPrincipal) -> Bool {
        lhs.type.utf8.elementsEqual(rhs.type.utf8) && lhs.name.utf8.elementsEqual(rhs.name.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        for byte in type.utf8 { hasher.combine(byte) }
        hasher.combine(UInt8(ascii: ":"))
        for byte in name.utf8 { hasher.combine(byte) }
    }
}

/// Byte-exact string equality, as Java's `String.equals` (no Unicode canonical equivalence).
@inline(__always)
func sameBytes(_ a: String, _ b: String) -> Bool {
    a.utf8.elementsEqual(b.utf8)
}
