/// The users a listener's PLAIN mechanism accepts: `user_<name>="<password>"` options of its
/// PlainLoginModule (Kafka's `PlainServerCallbackHandler`). Names compare byte for byte and
/// passwords in constant time.
public struct PlainUsers: Sendable {
    private var passwords: [[UInt8]: [UInt8]]

    /// Users and their passwords.
    public init(_ users: [String: String]) {
        var passwords: [[UInt8]: [UInt8]] = [:]
        for (name, password) in users { passwords[Array(name.utf8)] = Array(password.utf8) }
        self.passwords = passwords
    }

    /// The users of a PlainLoginModule's options (`user_admin="x"` is user `admin`).
    public init(loginModule: JaasLoginModule) {
        var users: [String: String] = [:]
        for (key, value) in loginModule.options where key.hasPrefix("user_") {
            users[String(key.dropFirst("user_".count))] = value
        }
        self.init(users)
    }

    /// The users of `listener.name.<listener>.plain.sasl.jaas.config` (or `sasl.jaas.config`):
    /// exactly one login module, Kafka's PlainLoginModule.
    public init(jaasConfig: String, property: String = "sasl.jaas.config") throws(SecurityConfigError) {
        let module = try JaasConfig.parseSingle(jaasConfig, property: property)
        guard module.name == JaasLoginModule.plainLoginModule else {
            throw SecurityConfigError(
                "\(property) names login module \(module.name); SASL/PLAIN needs \(JaasLoginModule.plainLoginModule)")
        }
        self.init(loginModule: module)
    }

    /// The number of users.
    public var count: Int { passwords.count }

    /// Whether `username` exists and `password` is its password.
    public func check(username: String, password: String) -> Bool {
        guard let expected = passwords[Array(username.utf8)] else { return false }
        return constantTimeEquals(expected, Array(password.utf8))
    }
}

/// The server side of SASL/PLAIN (RFC 4616), as Kafka's `PlainSaslServer`: one message
/// `[authzid] NUL authcid NUL passwd`, checked against the listener's users.
public struct PlainServer: SaslServer {
    let users: PlainUsers
    var finished = false

    public init(users: PlainUsers) { self.users = users }

    public var mechanismName: String { SaslMechanismName.plain }

    public mutating func step(input: [UInt8]) -> SaslStep {
        if finished { return .failure(.illegalState("COMPLETE")) }
        finished = true
        guard input.count <= saslMessageBytesMax else {
            return .failure(
                .hidden(
                    "Invalid SASL/PLAIN response: longer than \(saslMessageBytesMax) bytes", mechanism: mechanismName))
        }
        let fields = input.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else {
            return .failure(
                .hidden("Invalid SASL/PLAIN response: expected 3 tokens, got \(fields.count)", mechanism: mechanismName)
            )
        }
        guard let authorizationId = String(validating: fields[0], as: UTF8.self),
            let username = String(validating: fields[1], as: UTF8.self),
            let password = String(validating: fields[2], as: UTF8.self)
        else {
            return .failure(.hidden("Invalid SASL/PLAIN response: not UTF-8", mechanism: mechanismName))
        }
        if username.isEmpty {
            return .failure(.hidden("Authentication failed: username not specified", mechanism: mechanismName))
        }
        if password.isEmpty {
            return .failure(.hidden("Authentication failed: password not specified", mechanism: mechanismName))
        }
        guard users.check(username: username, password: password) else {
            return .failure(.told("Authentication failed: Invalid username or password"))
        }
        if !authorizationId.isEmpty && !sameBytes(authorizationId, username) {
            return .failure(
                .told("Authentication failed: Client requested an authorization id that is different from username"))
        }
        return .success(principal: .user(username), response: [])
    }
}

/// The client side of SASL/PLAIN: one message, `NUL user NUL password`.
public struct PlainClient: SaslClient {
    let username: String
    let password: String
    var answered = false

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public var mechanismName: String { SaslMechanismName.plain }

    public var initialResponse: [UInt8] { [0] + Array(username.utf8) + [0] + Array(password.utf8) }

    /// The server's (empty) answer ends the exchange.
    public mutating func step(serverMessage: [UInt8]) -> SaslClientStep {
        if answered { return .failure("The PLAIN exchange has already ended") }
        answered = true
        return serverMessage.isEmpty
            ? .complete : .failure("Unexpected data from the server after a SASL/PLAIN response")
    }
}
