import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import RunnelSecurity
import RunnelWire

/// What a listener asks of each connection before its requests reach the node: TLS (with the
/// client certificate's principal), SASL authentication, re-authentication (KIP-368).
public struct ListenerSecurity: Sendable {
    /// The listener's protocol (`listener.security.protocol.map`).
    public var securityProtocol: SecurityProtocol
    /// The TLS server context (SSL and SASL_SSL listeners).
    public var tls: ServerTLSContext?
    /// `ssl.principal.mapping.rules`: a client certificate's subject to a principal name (SSL listeners).
    public var principalMapper: SslPrincipalMapper
    /// The mechanisms offered and PLAIN's users (SASL listeners).
    public var sasl: SaslServerConfig?
    /// The SCRAM credentials now in force (the node's metadata image), asked at each handshake.
    public var scramCredentials: @Sendable () -> ScramServer.CredentialLookup
    /// `connections.max.reauth.ms`: a SASL session's lifetime; 0 means sessions never expire.
    public var reauthenticationMs: Int64
    /// `connection.failed.authentication.delay.ms`: how long a connection that failed to
    /// authenticate stays open (reading nothing) before it is closed.
    public var failedAuthenticationDelayMs: Int64

    public init(
        securityProtocol: SecurityProtocol, tls: ServerTLSContext? = nil, principalMapper: SslPrincipalMapper,
        sasl: SaslServerConfig? = nil,
        scramCredentials: @escaping @Sendable () -> ScramServer.CredentialLookup = { { _, _ in nil } },
        reauthenticationMs: Int64 = 0, failedAuthenticationDelayMs: Int64 = 100
    ) {
        precondition(securityProtocol.usesTLS == (tls != nil), "a TLS listener has a TLS context and only it")
        precondition(securityProtocol.usesSASL == (sasl != nil), "a SASL listener has SASL settings and only it")
        self.securityProtocol = securityProtocol
        self.tls = tls
        self.principalMapper = principalMapper
        self.sasl = sasl
        self.scramCredentials = scramCredentials
        self.reauthenticationMs = reauthenticationMs
        self.failedAuthenticationDelayMs = failedAuthenticationDelayMs
    }

    /// A PLAINTEXT listener: every connection is `User:ANONYMOUS`.
    public static var plaintext: ListenerSecurity {
        // The default rules parse by construction.
        ListenerSecurity(
            securityProtocol: .plaintext,
            principalMapper: try! SslPrincipalMapper(rules: SslPrincipalMapper.defaultRules))
    }
}

/// A TLS listener's server context. A dynamic key store change (`listener.name.<listener>.ssl.*`
/// on this broker, as Kafka's reconfigurable SslFactory takes it) replaces it for the connections
/// accepted afterwards; connections already open keep the one they began with.
public final class ServerTLSContext: Sendable {
    private let box: NIOLockedValueBox<NIOSSLContext>

    public init(_ context: NIOSSLContext) { box = NIOLockedValueBox(context) }

    /// The context a connection accepted now gets.
    public var current: NIOSSLContext { box.withLockedValue { $0 } }

    public func replace(with context: NIOSSLContext) { box.withLockedValue { $0 = context } }
}

/// A connection's authentication, as Kafka's SaslServerAuthenticator and the request channel
/// keep it: a state machine the connection handler asks about every frame, returning what to do.
///
/// - On a SASL listener, only ApiVersions, SaslHandshake and SaslAuthenticate may come before
///   the exchange succeeded; anything else closes the connection.
/// - SaslHandshake v0 is followed by raw SASL tokens (size-prefixed, no Kafka header), v1 by
///   SaslAuthenticate requests (KIP-152).
/// - A failed exchange is answered (SASL_AUTHENTICATION_FAILED and the mechanism's sentence; an
///   unknown mechanism UNSUPPORTED_SASL_MECHANISM), then the connection is closed after the
///   configured delay.
/// - With `connections.max.reauth.ms`, the successful answer carries the session lifetime; a
///   request after it expired closes the connection, unless the client re-authenticated first
///   (SaslHandshake v1 and SaslAuthenticate again on the same connection, as the same principal).
struct ConnectionAuthenticator {
    enum Decision {
        /// Hand the request to the node as `principal`.
        case forward(KafkaPrincipal)
        /// Answer the request with this.
        case answer(OutgoingResponse)
        /// Answer a raw SASL token with raw bytes (no Kafka header).
        case answerRaw(ByteBuffer)
        /// Answer, then close the connection after the failed-authentication delay.
        case answerAndClose(OutgoingResponse, reason: String)
        /// Close after the failed-authentication delay, with no answer (a raw token exchange failed).
        case closeAfterDelay(reason: String)
        /// Close now.
        case close(reason: String)
    }

    private let security: ListenerSecurity
    /// The authenticated principal; on a non-SASL listener, set from TLS (or ANONYMOUS) on first use.
    private(set) var principal: KafkaPrincipal?
    /// When the SASL session ends (nil: never).
    private var sessionExpiry: NIODeadline?
    /// The exchange under way: the mechanism's server and whether its tokens come in
    /// SaslAuthenticate requests (handshake v1) or raw (v0).
    private var exchange: (server: any SaslServer, framed: Bool)?

    init(security: ListenerSecurity) {
        self.security = security
        if !security.securityProtocol.usesSASL && !security.securityProtocol.usesTLS { principal = .anonymous }
    }

    /// Whether the next frame is a raw SASL token rather than a Kafka request.
    var expectsRawToken: Bool { exchange.map { !$0.framed } ?? false }

    /// Sets the principal of a TLS connection from the client's certificate (DER), or ANONYMOUS
    /// without one; nil when the certificate's subject maps to no principal.
    mutating func tlsEstablished(peerCertificate der: [UInt8]?) -> String? {
        guard !security.securityProtocol.usesSASL else { return nil }
        guard let der else {
            principal = .anonymous
            return nil
        }
        guard let dn = CertificateSubject.rfc2253(der: der) else {
            return "the client certificate's subject cannot be read"
        }
        guard let mapped = security.principalMapper.principal(for: dn) else {
            return "no ssl.principal.mapping.rules rule maps the client certificate's subject \(dn)"
        }
        principal = mapped
        return nil
    }

    mutating func request(
        _ header: RequestHeader, body: ByteBuffer, now: NIODeadline, allocator: ByteBufferAllocator
    ) -> Decision {
        let version = header.apiVersion
        switch header.apiKey {
        case .saslHandshake:
            return handshake(body, version: version, allocator: allocator)
        case .saslAuthenticate:
            return authenticate(body, version: version, now: now, allocator: allocator)
        case .apiVersions:
            return .forward(principal ?? .anonymous)
        default:
            guard let principal else {
                return .close(reason: "\(header.apiKey.name) before the connection authenticated")
            }
            if let sessionExpiry, now > sessionExpiry {
                return .close(
                    reason:
                        "\(header.apiKey.name) after the SASL session of \(principal) expired (connections.max.reauth.ms) without re-authentication"
                )
            }
            return .forward(principal)
        }
    }

    private mutating func handshake(_ body: ByteBuffer, version: Int16, allocator: ByteBufferAllocator) -> Decision {
        guard let sasl = security.sasl else {
            // Not a SASL listener: Kafka's request handler answers ILLEGAL_SASL_STATE.
            return .answer(
                OutgoingResponse(
                    SaslHandshakeResponse(errorCode: ErrorCode.illegalSaslState.rawValue, mechanisms: []),
                    version: min(version, 1), allocator: allocator))
        }
        guard SaslHandshakeRequest.versions.contains(version),
            let request = try? SaslHandshakeRequest.decode(body, version: version)
        else {
            return .close(reason: "malformed SaslHandshake v\(version)")
        }
        if exchange != nil {
            return .answerAndClose(
                OutgoingResponse(
                    SaslHandshakeResponse(
                        errorCode: ErrorCode.illegalSaslState.rawValue, mechanisms: sasl.enabledMechanisms),
                    version: version, allocator: allocator), reason: "SaslHandshake during an exchange")
        }
        if principal != nil && version == 0 {
            return .close(reason: "re-authentication needs SaslHandshake v1")
        }
        var random = SystemRandomNumberGenerator()
        guard
            let server = sasl.server(
                for: request.mechanism, scramCredentials: security.scramCredentials(), random: &random)
        else {
            return .answerAndClose(
                OutgoingResponse(
                    SaslHandshakeResponse(
                        errorCode: ErrorCode.unsupportedSaslMechanism.rawValue,
                        mechanisms: sasl.enabledMechanisms),
                    version: version, allocator: allocator),
                reason: "unsupported SASL mechanism \(request.mechanism)")
        }
        exchange = (server, version >= 1)
        return .answer(
            OutgoingResponse(
                SaslHandshakeResponse(errorCode: 0, mechanisms: sasl.enabledMechanisms), version: version,
                allocator: allocator))
    }

    private mutating func authenticate(
        _ body: ByteBuffer, version: Int16, now: NIODeadline, allocator: ByteBufferAllocator
    ) -> Decision {
        func failure(_ code: ErrorCode, _ message: String) -> OutgoingResponse {
            OutgoingResponse(
                SaslAuthenticateResponse(
                    errorCode: code.rawValue, errorMessage: message, authBytes: ByteBuffer(), sessionLifetimeMs: 0),
                version: min(version, 2), allocator: allocator)
        }
        guard security.sasl != nil else {
            return .answer(failure(.illegalSaslState, "SaslAuthenticate on a listener without SASL"))
        }
        guard SaslAuthenticateRequest.versions.contains(version),
            let request = try? SaslAuthenticateRequest.decode(body, version: version)
        else {
            return .close(reason: "malformed SaslAuthenticate v\(version)")
        }
        guard let current = exchange, current.framed else {
            return .answerAndClose(
                failure(.illegalSaslState, "Unexpected SaslAuthenticate request"),
                reason: "SaslAuthenticate without a SaslHandshake v1")
        }
        var server = current.server
        let step = server.step(input: Array(request.authBytes.readableBytesView))
        exchange = (server, true)
        switch step {
        case .challenge(let bytes):
            return .answer(
                OutgoingResponse(
                    SaslAuthenticateResponse(
                        errorCode: 0, errorMessage: nil, authBytes: ByteBuffer(bytes: bytes), sessionLifetimeMs: 0),
                    version: version, allocator: allocator))
        case .success(let authenticated, let response):
            exchange = nil
            if let principal, principal != authenticated {
                return .answerAndClose(
                    failure(
                        .saslAuthenticationFailed,
                        "Cannot change principals during re-authentication from \(principal): \(authenticated)"),
                    reason: "re-authentication as \(authenticated) on a connection of \(principal)")
            }
            principal = authenticated
            let lifetime = security.reauthenticationMs
            sessionExpiry = lifetime > 0 ? now + .milliseconds(lifetime) : nil
            return .answer(
                OutgoingResponse(
                    SaslAuthenticateResponse(
                        errorCode: 0, errorMessage: nil, authBytes: ByteBuffer(bytes: response),
                        sessionLifetimeMs: version >= 1 ? lifetime : 0),
                    version: version, allocator: allocator))
        case .failure(let failed):
            exchange = nil
            return .answerAndClose(
                failure(failed.errorCode, failed.clientMessage), reason: "SASL authentication failed: \(failed.reason)")
        }
    }

    /// A raw SASL token (after SaslHandshake v0).
    mutating func rawToken(_ frame: ByteBuffer, now: NIODeadline) -> Decision {
        guard var server = exchange?.server else { return .close(reason: "raw SASL token without a handshake") }
        let step = server.step(input: Array(frame.readableBytesView))
        exchange = (server, false)
        switch step {
        case .challenge(let bytes):
            return .answerRaw(ByteBuffer(bytes: bytes))
        case .success(let authenticated, let response):
            exchange = nil
            principal = authenticated
            let lifetime = security.reauthenticationMs
            sessionExpiry = lifetime > 0 ? now + .milliseconds(lifetime) : nil
            return .answerRaw(ByteBuffer(bytes: response))
        case .failure(let failed):
            exchange = nil
            return .closeAfterDelay(reason: "SASL authentication failed: \(failed.reason)")
        }
    }
}
