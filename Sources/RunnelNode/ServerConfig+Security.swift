import RunnelNetwork
import RunnelSecurity

/// One listener's security, from `listener.security.protocol.map` and the `ssl.*`/`sasl.*`
/// keys (each may be given for one listener as `listener.name.<listener>.<key>`).
public struct ListenerSecurityConfig: Sendable {
    public var securityProtocol: SecurityProtocol
    /// `ssl.*` (SSL and SASL_SSL listeners).
    public var tls: TLSSettings?
    /// `sasl.enabled.mechanisms` (SASL listeners).
    public var saslMechanisms: [String]
    /// PLAIN's users: `listener.name.<listener>.plain.sasl.jaas.config` (`user_<name>="<password>"`).
    public var plainUsers: PlainUsers?
    /// `ssl.principal.mapping.rules`.
    public var principalMapper: SslPrincipalMapper
}

/// How this node connects to the other nodes on one listener: the listener's protocol, its
/// `ssl.*` (a trust store, and a key store for listeners that ask for client certificates), and
/// the SASL login of `sasl.mechanism.inter.broker.protocol` / `sasl.mechanism.controller.protocol`
/// from that listener's JAAS config (`username`, `password`).
public struct PeerSecurityConfig: Sendable {
    public var listener: String
    public var securityProtocol: SecurityProtocol
    public var tls: TLSSettings?
    public var sasl: SaslCredentials?

    /// The client side, with its TLS context loaded.
    public func clientSecurity() throws -> ClientSecurity {
        ClientSecurity(
            securityProtocol: securityProtocol, tls: try tls?.clientContext(),
            verifyHostname: tls?.verifyHostname ?? true, sasl: sasl)
    }
}

/// Everything security in `server.properties`.
public struct SecurityConfig: Sendable {
    /// By listener name.
    public var listeners: [String: ListenerSecurityConfig]
    /// `connections.max.reauth.ms` (0: sessions never expire).
    public var reauthenticationMs: Int64
    /// `connection.failed.authentication.delay.ms`.
    public var failedAuthenticationDelayMs: Int64
    /// `authorizer.class.name` with `super.users` and `allow.everyone.if.no.acl.found`; nil without one.
    public var authorizer: StandardAuthorizer?
    /// How a broker reaches the other brokers (`inter.broker.listener.name`).
    public var interBroker: PeerSecurityConfig
    /// How this node reaches the controllers (the first of `controller.listener.names`).
    public var controller: PeerSecurityConfig

    /// The authorizer class names that turn the built-in authorizer on.
    public static let standardAuthorizerNames: Set<String> = [
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    ]

    /// Reads the security keys through `value` (the file's text for a key) with `listeners` and
    /// `protocols` already checked by the caller.
    static func parse(
        _ value: @escaping (String) -> String?, keys: [String], listeners: [ListenerSpec], protocols: [String: String],
        controllerListenerNames: [String], interBrokerListenerName: String
    ) throws -> SecurityConfig {
        func text(_ key: String) -> String? {
            guard let v = value(key)?.trimmed(), !v.isEmpty else { return nil }
            return v
        }
        func onListener(_ listener: String) -> (String) -> String? {
            { key in value("listener.name.\(listener.lowercased()).\(key)") ?? value(key) }
        }
        func securityProtocol(_ listener: String) -> SecurityProtocol {
            SecurityProtocol(rawValue: protocols[listener] ?? "PLAINTEXT") ?? .plaintext
        }
        func mechanisms(_ listener: String) throws -> [String] {
            let key = "sasl.enabled.mechanisms"
            let listed = (onListener(listener)(key) ?? "GSSAPI").split(separator: ",").map { $0.trimmed().uppercased() }
                .filter { !$0.isEmpty }
            let supported = [SaslMechanismName.plain, SaslMechanismName.scramSha256, SaslMechanismName.scramSha512]
            if let unsupported = listed.first(where: { !supported.contains($0) }) {
                throw ConfigError(
                    key,
                    "listener \(listener) enables \(unsupported), which this build does not support; use PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512."
                )
            }
            if listed.isEmpty { throw ConfigError(key, "listener \(listener) is a SASL listener with no mechanism.") }
            return listed
        }
        func tlsSettings(_ listener: String) throws -> TLSSettings {
            do {
                return try TLSSettings.parse(onListener(listener))
            } catch {
                throw ConfigError(error.key, "\(error.problem) (listener \(listener))")
            }
        }

        var configs: [String: ListenerSecurityConfig] = [:]
        for listener in listeners {
            let proto = securityProtocol(listener.name)
            var tls: TLSSettings?
            if proto.usesTLS {
                let settings = try tlsSettings(listener.name)
                guard settings.hasKeystore else {
                    throw ConfigError(
                        "ssl.keystore.location",
                        "listener \(listener.name) uses \(proto.rawValue) and needs a key store (ssl.keystore.location, or ssl.keystore.certificate.chain with ssl.keystore.key)."
                    )
                }
                tls = settings
            }
            var saslMechanisms: [String] = []
            var plainUsers: PlainUsers?
            if proto.usesSASL {
                saslMechanisms = try mechanisms(listener.name)
                if saslMechanisms.contains(SaslMechanismName.plain) {
                    let key = "listener.name.\(listener.name.lowercased()).plain.sasl.jaas.config"
                    guard let jaas = value(key) else {
                        throw ConfigError(
                            key,
                            "is required: listener \(listener.name) enables PLAIN, whose users it names (user_<name>=\"<password>\")."
                        )
                    }
                    do {
                        plainUsers = try PlainUsers(jaasConfig: jaas, property: key)
                    } catch {
                        throw ConfigError(key, error.description)
                    }
                }
            }
            let rulesKey = "ssl.principal.mapping.rules"
            let mapper: SslPrincipalMapper
            do {
                mapper = try SslPrincipalMapper(
                    rules: onListener(listener.name)(rulesKey)?.trimmed() ?? SslPrincipalMapper.defaultRules)
            } catch {
                throw ConfigError(rulesKey, error.description)
            }
            configs[listener.name] = ListenerSecurityConfig(
                securityProtocol: proto, tls: tls, saslMechanisms: saslMechanisms,
                plainUsers: plainUsers, principalMapper: mapper)
        }

        func peer(_ listener: String, mechanismKey: String) throws -> PeerSecurityConfig {
            let proto = securityProtocol(listener)
            var tls: TLSSettings?
            if proto.usesTLS { tls = try tlsSettings(listener) }
            var sasl: SaslCredentials?
            if proto.usesSASL {
                let mechanism = (text(mechanismKey) ?? "GSSAPI").uppercased()
                guard
                    [SaslMechanismName.plain, SaslMechanismName.scramSha256, SaslMechanismName.scramSha512].contains(
                        mechanism)
                else {
                    throw ConfigError(
                        mechanismKey,
                        "\(mechanism) is not supported; listener \(listener) is \(proto.rawValue), so set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
                    )
                }
                let key = "listener.name.\(listener.lowercased()).\(mechanism.lowercased()).sasl.jaas.config"
                guard let jaas = value(key) else {
                    throw ConfigError(
                        key,
                        "is required: this node logs in to listener \(listener) with \(mechanism) as the username and password it names."
                    )
                }
                do {
                    sasl = try SaslCredentials.fromJaas(jaas, mechanism: mechanism, key: key)
                } catch {
                    throw ConfigError(error.key, error.problem)
                }
            }
            return PeerSecurityConfig(listener: listener, securityProtocol: proto, tls: tls, sasl: sasl)
        }

        let reauth = try int64(value, "connections.max.reauth.ms", default: 0, min: 0)
        let delay = try int64(value, "connection.failed.authentication.delay.ms", default: 100, min: 0)

        var authorizer: StandardAuthorizer?
        if let name = text("authorizer.class.name") {
            guard standardAuthorizerNames.contains(name) else {
                throw ConfigError(
                    "authorizer.class.name",
                    "\(name) is not available; use org.apache.kafka.metadata.authorizer.StandardAuthorizer (or leave it unset)."
                )
            }
            let superUsers: Set<KafkaPrincipal>
            do {
                superUsers = try StandardAuthorizer.superUsers(fromConfig: text("super.users") ?? "")
            } catch {
                throw ConfigError("super.users", error.description)
            }
            let allowText = text("allow.everyone.if.no.acl.found") ?? "false"
            guard let allow = Bool(allowText.lowercased()) else {
                throw ConfigError("allow.everyone.if.no.acl.found", "\"\(allowText)\" is not true or false.")
            }
            authorizer = StandardAuthorizer(superUsers: superUsers, allowEveryoneIfNoAclFound: allow)
        }

        return SecurityConfig(
            listeners: configs, reauthenticationMs: reauth, failedAuthenticationDelayMs: delay, authorizer: authorizer,
            interBroker: try peer(interBrokerListenerName, mechanismKey: "sasl.mechanism.inter.broker.protocol"),
            controller: try peer(
                controllerListenerNames.first ?? "CONTROLLER", mechanismKey: "sasl.mechanism.controller.protocol"))
    }

    static func int64(_ value: (String) -> String?, _ key: String, default fallback: Int64, min: Int64) throws -> Int64
    {
        guard let text = value(key)?.trimmed(), !text.isEmpty else { return fallback }
        guard let n = Int64(text) else { throw ConfigError(key, "\"\(text)\" is not an integer.") }
        if n < min { throw ConfigError(key, "\(n) is below the minimum of \(min).") }
        return n
    }

    /// The server side of `listener` for the network layer, with its TLS context loaded; SCRAM
    /// credentials come from `scramCredentials` (the node's image) at each handshake.
    public func listenerSecurity(
        _ listener: String, scramCredentials: @escaping @Sendable () -> ScramServer.CredentialLookup
    ) throws -> ListenerSecurity {
        guard let config = listeners[listener] else { return .plaintext }
        let sasl =
            config.securityProtocol.usesSASL
            ? SaslServerConfig(enabledMechanisms: config.saslMechanisms, plainUsers: config.plainUsers) : nil
        return ListenerSecurity(
            securityProtocol: config.securityProtocol,
            tls: try config.tls.map { ServerTLSContext(try $0.serverContext()) },
            principalMapper: config.principalMapper,
            sasl: sasl, scramCredentials: scramCredentials, reauthenticationMs: reauthenticationMs,
            failedAuthenticationDelayMs: failedAuthenticationDelayMs)
    }
}
