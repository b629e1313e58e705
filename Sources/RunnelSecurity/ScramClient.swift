/// The client side of SASL/SCRAM (RFC 5802), as a value: what a broker sends to authenticate to
/// another broker or a controller, and what the tools send to log in (Kafka's `ScramSaslClient`).
///
///     initialResponse      n,,n=<user>,r=<client nonce>
///     step(server-first)   -> .send(c=biws,r=<nonce>,p=<proof>)
///     step(server-final)   -> .complete once the server's signature is right
///
/// The server must append to our nonce and may not ask for fewer iterations than the
/// mechanism's minimum (4096), as Kafka's client checks.
public struct ScramClient: SaslClient {
    enum State: Sendable {
        case awaitingServerFirst
        /// The server signature we expect.
        case awaitingServerFinal([UInt8])
        case complete
        case failed
    }

    public let mechanism: ScramMechanism
    let formatter: ScramFormatter
    let password: String
    let clientFirstBare: String
    let clientNonce: String
    var state: State = .awaitingServerFirst

    /// A client that logs in as `username` with `password`. `random` draws the client's nonce:
    /// pass a cryptographically secure generator outside tests.
    public init(mechanism: ScramMechanism, username: String, password: String, random: inout some RandomNumberGenerator)
    {
        self.init(mechanism: mechanism, username: username, password: password, nonce: scramNonce(using: &random))
    }

    /// A client with a given nonce (test vectors).
    init(mechanism: ScramMechanism, username: String, password: String, nonce: String) {
        self.mechanism = mechanism
        self.formatter = ScramFormatter(mechanism)
        self.password = password
        self.clientNonce = nonce
        self.clientFirstBare = "n=\(ScramFormatter.saslName(username)),r=\(nonce)"
    }

    public var mechanismName: String { mechanism.mechanismName }

    /// `n,,` then the bare message.
    public var initialResponse: [UInt8] { Array(("n,," + clientFirstBare).utf8) }

    /// Whether the server proved it knows the credential.
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    public mutating func step(serverMessage: [UInt8]) -> SaslClientStep {
        let result: SaslClientStep
        switch state {
        case .awaitingServerFirst: result = receiveServerFirst(serverMessage)
        case .awaitingServerFinal(let expected): result = receiveServerFinal(serverMessage, expected: expected)
        case .complete, .failed: return .failure("The SCRAM exchange has already ended")
        }
        switch result {
        case .send: break
        case .complete: state = .complete
        case .failure: state = .failed
        }
        return result
    }

    private mutating func receiveServerFirst(_ message: [UInt8]) -> SaslClientStep {
        guard message.count <= saslMessageBytesMax, let text = String(validating: message, as: UTF8.self) else {
            return .failure("Invalid SCRAM server first message: not UTF-8 text")
        }
        let serverFirst: ServerFirstMessage
        do {
            serverFirst = try ServerFirstMessage(parsing: text)
        } catch {
            return .failure(error.reason)
        }
        guard serverFirst.nonce.utf8.count > clientNonce.utf8.count,
            serverFirst.nonce.utf8.starts(with: clientNonce.utf8)
        else {
            return .failure("Invalid server nonce: does not start with client nonce")
        }
        guard serverFirst.iterations >= mechanism.minIterations else {
            return .failure(
                "Requested iterations \(serverFirst.iterations) is less than the minimum \(mechanism.minIterations) for \(mechanismName)"
            )
        }
        let saltedPassword = formatter.saltedPassword(
            password, salt: serverFirst.salt, iterations: serverFirst.iterations)
        let clientKey = formatter.clientKey(saltedPassword: saltedPassword)
        let withoutProof = "c=\(Base64.encode(Array("n,,".utf8))),r=\(serverFirst.nonce)"
        let authMessage = Array((clientFirstBare + "," + text + "," + withoutProof).utf8)
        let clientSignature = formatter.hmac(key: formatter.storedKey(clientKey: clientKey), authMessage)
        let proof = ScramFormatter.xor(clientKey, clientSignature)
        let serverSignature = formatter.hmac(key: formatter.serverKey(saltedPassword: saltedPassword), authMessage)
        state = .awaitingServerFinal(serverSignature)
        return .send(Array((withoutProof + ",p=" + Base64.encode(proof)).utf8))
    }

    private func receiveServerFinal(_ message: [UInt8], expected: [UInt8]) -> SaslClientStep {
        guard message.count <= saslMessageBytesMax, let text = String(validating: message, as: UTF8.self) else {
            return .failure("Invalid SCRAM server final message: not UTF-8 text")
        }
        switch try? ServerFinalMessage(parsing: text) {
        case .error(let error)?:
            return .failure("Sasl authentication using \(mechanismName) failed with error: \(error)")
        case .verifier(let signature)?:
            return constantTimeEquals(signature, expected)
                ? .complete : .failure("Invalid server signature in server final message")
        case nil:
            return .failure("Invalid SCRAM server final message format: \(text)")
        }
    }
}
