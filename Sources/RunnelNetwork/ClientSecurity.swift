import NIOSSL
import RunnelSecurity

/// A SASL identity to log in with: the mechanism and the user's name and password.
public struct SaslCredentials: Sendable, Equatable {
    public var mechanism: String
    public var username: String
    public var password: String

    public init(mechanism: String, username: String, password: String) {
        self.mechanism = mechanism
        self.username = username
        self.password = password
    }

    /// A fresh client-side state machine for one exchange; nil for a mechanism this build lacks.
    public func makeClient() -> (any SaslClient)? {
        if mechanism == SaslMechanismName.plain { return PlainClient(username: username, password: password) }
        guard let scram = ScramMechanism(mechanismName: mechanism) else { return nil }
        var random = SystemRandomNumberGenerator()
        return ScramClient(mechanism: scram, username: username, password: password, random: &random)
    }

    /// The credentials a JAAS login module gives (`username="..." password="..."`), for `mechanism`.
    public static func fromJaas(
        _ text: String, mechanism: String, key: String
    ) throws(SecuritySettingError) -> SaslCredentials {
        let module: JaasLoginModule
        do {
            module = try JaasConfig.parseSingle(text, property: key)
        } catch {
            throw SecuritySettingError(key, error.description)
        }
        guard let username = module.options["username"], let password = module.options["password"] else {
            throw SecuritySettingError(key, "the login module names no username and password to log in with.")
        }
        return SaslCredentials(mechanism: mechanism, username: username, password: password)
    }
}

/// How an outgoing connection is secured, as a Kafka client's `security.protocol`, `ssl.*` and
/// `sasl.*` keys say: a node's connections to other nodes (its inter-broker or controller
/// listener's protocol) and the `runnel` client tools (`--command-config`).
public struct ClientSecurity: Sendable {
    public var securityProtocol: SecurityProtocol
    /// The TLS client context (SSL, SASL_SSL).
    public var tls: NIOSSLContext?
    /// Whether TLS checks the server's name against its certificate.
    public var verifyHostname: Bool
    /// Who to log in as (SASL_PLAINTEXT, SASL_SSL).
    public var sasl: SaslCredentials?

    public init(
        securityProtocol: SecurityProtocol, tls: NIOSSLContext? = nil, verifyHostname: Bool = true,
        sasl: SaslCredentials? = nil
    ) {
        precondition(securityProtocol.usesTLS == (tls != nil), "a TLS connection has a TLS context and only it")
        precondition(securityProtocol.usesSASL == (sasl != nil), "a SASL connection has credentials and only it")
        self.securityProtocol = securityProtocol
        self.tls = tls
        self.verifyHostname = verifyHostname
        self.sasl = sasl
    }

    public static let plaintext = ClientSecurity(securityProtocol: .plaintext)

    /// A Kafka client configuration's security keys (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`/`sasl.password` or `sasl.jaas.config`, `ssl.*`), read through `value`.
    public static func parse(_ value: (String) -> String?) throws -> ClientSecurity {
        func text(_ key: String) -> String? {
            guard let v = value(key)?.trimmingSpaces(), !v.isEmpty else { return nil }
            return v
        }
        let protocolText = text("security.protocol") ?? "PLAINTEXT"
        guard let securityProtocol = SecurityProtocol(rawValue: protocolText.uppercased()) else {
            throw SecuritySettingError(
                "security.protocol", "\(protocolText) is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
        }
        var tls: NIOSSLContext?
        var verifyHostname = true
        if securityProtocol.usesTLS {
            let settings = try TLSSettings.parse(value)
            verifyHostname = settings.verifyHostname
            tls = try settings.clientContext()
        }
        var sasl: SaslCredentials?
        if securityProtocol.usesSASL {
            let mechanism = (text("sasl.mechanism") ?? text("sasl.mechanisms") ?? "GSSAPI").uppercased()
            guard
                [SaslMechanismName.plain, SaslMechanismName.scramSha256, SaslMechanismName.scramSha512].contains(
                    mechanism)
            else {
                throw SecuritySettingError(
                    "sasl.mechanism", "\(mechanism) is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
            }
            if let username = text("sasl.username") {
                guard let password = value("sasl.password") else {
                    throw SecuritySettingError("sasl.password", "is required with sasl.username.")
                }
                sasl = SaslCredentials(mechanism: mechanism, username: username, password: password)
            } else if let jaas = text("sasl.jaas.config") {
                sasl = try SaslCredentials.fromJaas(jaas, mechanism: mechanism, key: "sasl.jaas.config")
            } else {
                throw SecuritySettingError(
                    "sasl.jaas.config", "a SASL connection needs sasl.username and sasl.password, or sasl.jaas.config.")
            }
        }
        return ClientSecurity(securityProtocol: securityProtocol, tls: tls, verifyHostname: verifyHostname, sasl: sasl)
    }
}

/// Why a SASL login was refused: the server's error code and sentence.
public struct AuthenticationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
