import RunnelWire

/// SASL mechanism names as SaslHandshake carries them.
public enum SaslMechanismName {
    public static let plain = "PLAIN"
    public static let scramSha256 = "SCRAM-SHA-256"
    public static let scramSha512 = "SCRAM-SHA-512"
}

/// Why an authentication failed: what the client is told, what the log may say, and the error
/// code of the SaslAuthenticate answer.
public struct SaslFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// SASL_AUTHENTICATION_FAILED, or ILLEGAL_SASL_STATE for a message after the exchange ended.
    public var errorCode: ErrorCode
    /// The text for the client. Where the reason could tell an attacker whether a user exists,
    /// it is Kafka's fixed sentence instead.
    public var clientMessage: String
    /// The full reason, for the broker's log (never for the client).
    public var reason: String
    /// The RFC 5802 `server-error-value` that names the failure (`invalid-proof`,
    /// `unknown-user`, ...), for SCRAM; nil for PLAIN.
    public var scramError: String?

    public init(
        errorCode: ErrorCode = .saslAuthenticationFailed, clientMessage: String, reason: String,
        scramError: String? = nil
    ) {
        self.errorCode = errorCode
        self.clientMessage = clientMessage
        self.reason = reason
        self.scramError = scramError
    }

    /// A failure whose reason must stay in the log: the client gets Kafka's fixed sentence
    /// ("Authentication failed during authentication due to invalid credentials with SASL
    /// mechanism ..."), as Kafka's SaslServerAuthenticator answers a `SaslException`.
    static func hidden(_ reason: String, mechanism: String, scramError: String? = nil) -> SaslFailure {
        SaslFailure(
            clientMessage:
                "Authentication failed during authentication due to invalid credentials with SASL mechanism \(mechanism)",
            reason: reason, scramError: scramError)
    }

    /// A failure whose reason the client may read (Kafka's `SaslAuthenticationException`).
    static func told(_ message: String, scramError: String? = nil) -> SaslFailure {
        SaslFailure(clientMessage: message, reason: message, scramError: scramError)
    }

    /// A message that arrived after the exchange had ended.
    static func illegalState(_ state: String) -> SaslFailure {
        SaslFailure(
            errorCode: .illegalSaslState, clientMessage: "Unexpected challenge in Sasl server state \(state)",
            reason: "Unexpected challenge in Sasl server state \(state)")
    }

    public var description: String { reason }
}

/// What a server-side mechanism says after one client message.
public enum SaslStep: Sendable, Equatable {
    /// Send these bytes to the client (SaslAuthenticate's `authBytes`) and wait for its next message.
    case challenge([UInt8])
    /// The client is `principal`. Send `response` (empty for PLAIN, SCRAM's server-final message)
    /// with the successful SaslAuthenticate answer.
    case success(principal: KafkaPrincipal, response: [UInt8])
    /// Authentication failed; answer with the failure's error code and client message, then close
    /// the connection.
    case failure(SaslFailure)
}

/// A server-side SASL mechanism: a state machine stepped with each client message.
public protocol SaslServer: Sendable {
    /// The mechanism's name (`PLAIN`, `SCRAM-SHA-256`, ...).
    var mechanismName: String { get }
    /// Takes the client's next message.
    mutating func step(input: [UInt8]) -> SaslStep
}

/// What a client-side mechanism says after one server message.
public enum SaslClientStep: Sendable, Equatable {
    /// Send these bytes to the server.
    case send([UInt8])
    /// The server is authenticated (for SCRAM: its signature is right) and so are we.
    case complete
    /// The exchange failed: one sentence.
    case failure(String)
}

/// A client-side SASL mechanism: the first message to send, then a state machine stepped with
/// each server message.
public protocol SaslClient: Sendable {
    /// The mechanism's name (`PLAIN`, `SCRAM-SHA-256`, ...).
    var mechanismName: String { get }
    /// The client's first message.
    var initialResponse: [UInt8] { get }
    /// Takes the server's next message.
    mutating func step(serverMessage: [UInt8]) -> SaslClientStep
}

/// Most bytes one SASL message may have here: a real PLAIN or SCRAM message is a few hundred.
public let saslMessageBytesMax = 65_536

/// Compares two byte strings in time that depends only on their lengths.
func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}

/// The SASL mechanisms a listener offers (`sasl.enabled.mechanisms`, or
/// `listener.name.<listener>.sasl.enabled.mechanisms`) and where their users come from: what
/// the network layer asks when a SaslHandshake names a mechanism.
public struct SaslServerConfig: Sendable {
    /// Mechanism names in the order the listener lists them (SaslHandshake answers with them).
    public var enabledMechanisms: [String]
    /// PLAIN's users (`listener.name.<listener>.plain.sasl.jaas.config`); nil when PLAIN has none.
    public var plainUsers: PlainUsers?

    public init(enabledMechanisms: [String], plainUsers: PlainUsers? = nil) {
        self.enabledMechanisms = enabledMechanisms
        self.plainUsers = plainUsers
    }

    /// A server for `mechanism` as the client named it; nil when the listener does not offer it
    /// (answer UNSUPPORTED_SASL_MECHANISM with `enabledMechanisms`). SCRAM asks
    /// `scramCredentials` (the metadata image's); `random` draws its nonce.
    public func server(
        for mechanism: String, scramCredentials: @escaping ScramServer.CredentialLookup,
        random: inout some RandomNumberGenerator
    ) -> (any SaslServer)? {
        guard enabledMechanisms.contains(mechanism) else { return nil }
        if mechanism == SaslMechanismName.plain {
            return PlainServer(users: plainUsers ?? PlainUsers([:]))
        }
        if let scram = ScramMechanism(mechanismName: mechanism) {
            return ScramServer(mechanism: scram, credentials: scramCredentials, random: &random)
        }
        return nil
    }
}
