/// The server side of SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as a value
/// stepped with each client message, as Kafka's `ScramSaslServer` behaves:
///
///     client-first  n,,n=alice,r=<client nonce>
///     server-first  r=<client nonce><server nonce>,s=<salt>,i=<iterations>   -> .challenge
///     client-final  c=biws,r=<both nonces>,p=<proof>
///     server-final  v=<server signature>                                     -> .success(User:alice)
///
/// The client's proof is checked against the credential's StoredKey, so the server never needs
/// the password. Failures carry the RFC's `server-error-value` for the log, and the client gets
/// Kafka's fixed sentence wherever the reason could reveal whether a user exists. As in Kafka,
/// an unknown user fails at the first message; `tokenauth` (delegation tokens) is refused, other
/// extensions are ignored.
///
/// Where Kafka is looser than RFC 5802, this follows the RFC: the `c=` attribute must be the
/// base64 of the client's gs2-header (Kafka ignores it), the gs2 flag may be `n` or `y` (Kafka
/// takes only `n`), and the `a=` authorization id is decoded as a saslname before it is compared
/// with the user name. The AuthMessage is built from the messages as received.
public struct ScramServer: SaslServer {
    /// Finds the credential of a user for a mechanism (from the metadata image's SCRAM
    /// credentials), nil when there is none.
    public typealias CredentialLookup = @Sendable (_ username: String, _ mechanism: ScramMechanism) -> ScramCredential?

    struct Exchange: Sendable {
        var username: String
        var gs2Header: String
        var clientFirstBare: String
        var serverFirst: ServerFirstMessage
        var credential: ScramCredential
    }

    enum State: Sendable {
        case awaitingClientFirst
        case awaitingClientFinal(Exchange)
        case complete
        case failed
    }

    public let mechanism: ScramMechanism
    let formatter: ScramFormatter
    let serverNonce: String
    let credentials: CredentialLookup
    var state: State = .awaitingClientFirst

    /// A server for one authentication. `random` draws the server's nonce: pass a
    /// cryptographically secure generator (`SystemRandomNumberGenerator`) outside tests.
    public init(
        mechanism: ScramMechanism, credentials: @escaping CredentialLookup, random: inout some RandomNumberGenerator
    ) {
        self.init(mechanism: mechanism, credentials: credentials, serverNonce: scramNonce(using: &random))
    }

    /// A server with a given nonce (test vectors).
    init(mechanism: ScramMechanism, credentials: @escaping CredentialLookup, serverNonce: String) {
        precondition(isPrintable(serverNonce), "a SCRAM nonce is printable ASCII without commas")
        self.mechanism = mechanism
        self.formatter = ScramFormatter(mechanism)
        self.serverNonce = serverNonce
        self.credentials = credentials
    }

    public var mechanismName: String { mechanism.mechanismName }

    /// Whether the exchange succeeded.
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    public mutating func step(input: [UInt8]) -> SaslStep {
        let result: SaslStep
        switch state {
        case .awaitingClientFirst:
            result = receiveClientFirst(input)
        case .awaitingClientFinal(let exchange):
            result = receiveClientFinal(input, exchange)
        case .complete:
            return .failure(.illegalState("COMPLETE"))
        case .failed:
            return .failure(.illegalState("FAILED"))
        }
        switch result {
        case .challenge: break
        case .success: state = .complete
        case .failure: state = .failed
        }
        return result
    }

    private func fail(_ reason: String, _ scramError: String) -> SaslStep {
        .failure(.hidden(reason, mechanism: mechanismName, scramError: scramError))
    }

    private mutating func receiveClientFirst(_ input: [UInt8]) -> SaslStep {
        guard input.count <= saslMessageBytesMax, let text = String(validating: input, as: UTF8.self) else {
            return fail(
                "Invalid SCRAM client first message: not UTF-8 text of at most \(saslMessageBytesMax) bytes",
                "invalid-encoding")
        }
        let first: ClientFirstMessage
        do {
            first = try ClientFirstMessage(parsing: text)
        } catch {
            return fail(error.reason, error.scramError)
        }
        if first.channelBindingFlag.hasPrefix("p=") {
            return fail(
                "The client requires channel binding, which this server does not support",
                "channel-binding-not-supported")
        }
        if first.extensions.contains(where: { $0.0 == "tokenauth" && $0.1.lowercased() == "true" }) {
            return fail("Token authentication (delegation tokens) is not supported", "extensions-not-supported")
        }
        guard let credential = credentials(first.username, mechanism) else {
            return fail(
                "Authentication failed: Invalid user credentials (no \(mechanismName) credential for user \(first.username))",
                "unknown-user")
        }
        if !first.authorizationId.isEmpty && !sameBytes(first.authorizationId, first.username) {
            return .failure(
                .told(
                    "Authentication failed: Client requested an authorization id that is different from username",
                    scramError: "invalid-username-encoding"))
        }
        if credential.iterations < mechanism.minIterations {
            return fail(
                "Iterations \(credential.iterations) is less than the minimum \(mechanism.minIterations) for \(mechanism)",
                "other-error")
        }
        let serverFirst = ServerFirstMessage(
            nonce: first.nonce + serverNonce, salt: credential.salt, iterations: credential.iterations)
        state = .awaitingClientFinal(
            Exchange(
                username: first.username, gs2Header: first.gs2Header, clientFirstBare: first.bare,
                serverFirst: serverFirst, credential: credential))
        return .challenge(Array(serverFirst.text.utf8))
    }

    private func receiveClientFinal(_ input: [UInt8], _ exchange: Exchange) -> SaslStep {
        guard input.count <= saslMessageBytesMax, let text = String(validating: input, as: UTF8.self) else {
            return fail(
                "Invalid SCRAM client final message: not UTF-8 text of at most \(saslMessageBytesMax) bytes",
                "invalid-encoding")
        }
        let final: ClientFinalMessage
        do {
            final = try ClientFinalMessage(parsing: text)
        } catch {
            return fail(error.reason, error.scramError)
        }
        // Kafka's ScramSaslServer accepts a final nonce that ends with the server's: librdkafka up
        // to 2.0 sends its own nonce again in front of the combined one (the proof, computed over
        // the final message as sent, still binds the server's nonce).
        let expected = exchange.serverFirst.nonce.utf8
        guard final.nonce.utf8.count >= expected.count, final.nonce.utf8.suffix(expected.count).elementsEqual(expected)
        else {
            return fail("Invalid client nonce in the final client message.", "other-error")
        }
        guard final.channelBinding == Array(exchange.gs2Header.utf8) else {
            return fail(
                "The channel binding of the final client message is not the gs2 header of the first",
                "channel-bindings-dont-match")
        }
        let authMessage = Array(
            (exchange.clientFirstBare + "," + exchange.serverFirst.text + "," + final.withoutProof).utf8)
        let credential = exchange.credential
        let clientSignature = formatter.hmac(key: credential.storedKey, authMessage)
        guard final.proof.count == clientSignature.count,
            constantTimeEquals(formatter.hash(ScramFormatter.xor(clientSignature, final.proof)), credential.storedKey)
        else {
            return fail("Invalid client credentials", "invalid-proof")
        }
        let serverSignature = formatter.hmac(key: credential.serverKey, authMessage)
        return .success(
            principal: .user(exchange.username), response: Array(ServerFinalMessage.verifier(serverSignature).text.utf8)
        )
    }
}
