// SCRAM (RFC 5802, RFC 7677): the server and client state machines against RFC 7677's
// SCRAM-SHA-256 example, against a SCRAM-SHA-512 exchange computed with Python's hashlib and hmac
// (same user, password, nonces and salt as the RFC example), against each other, and against the
// failures Kafka's ScramSaslServer reports.
import RunnelCore
@testable import RunnelSecurity
import RunnelWire
import Testing

/// RFC 7677 section 3: user "user", password "pencil".
enum RFC7677 {
    static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    static let salt = Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ==")!
    static let clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    static let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    static let clientFinal =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
}

/// The same exchange with SCRAM-SHA-512, computed with Python:
/// `hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 4096)`, then `hmac.new(...)` as RFC 5802 says.
enum PythonSha512 {
    static let saltedPassword =
        "f16efe1be67f1d09502ebd5ed9262fddffba5a377ab4f0b687e5ed5ba0f50686b8a4ae166476da8ab3b951d2fa9238b63998f45461bc33a464814949cec9631d"
    static let storedKey = "6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmBqzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg=="
    static let serverKey = "jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA=="
    static let clientFinal =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
    static let serverFinal =
        "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw=="
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

func lookup(_ table: [String: ScramCredential]) -> ScramServer.CredentialLookup {
    { user, _ in table[user] }
}

@Suite("SCRAM")
struct ScramTests {
    let sha256 = ScramFormatter(.scramSha256)
    let sha512 = ScramFormatter(.scramSha512)

    @Test("Hi is PBKDF2: the salted password of RFC 7677's example")
    func saltedPasswordMatchesPython() {
        #expect(
            hex(sha256.saltedPassword("pencil", salt: RFC7677.salt, iterations: 4096))
                == "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d")
        #expect(
            hex(sha512.saltedPassword("pencil", salt: RFC7677.salt, iterations: 4096)) == PythonSha512.saltedPassword)
    }

    @Test(
        "a credential keeps StoredKey = H(HMAC(SaltedPassword, \"Client Key\")) and ServerKey = HMAC(SaltedPassword, \"Server Key\")"
    )
    func credentialDerivation() {
        let c256 = sha256.credential(password: "pencil", salt: RFC7677.salt, iterations: 4096)
        #expect(Base64.encode(c256.storedKey) == "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=")
        #expect(Base64.encode(c256.serverKey) == "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
        let c512 = sha512.credential(password: "pencil", salt: RFC7677.salt, iterations: 4096)
        #expect(Base64.encode(c512.storedKey) == PythonSha512.storedKey)
        #expect(Base64.encode(c512.serverKey) == PythonSha512.serverKey)
        #expect(
            c512
                == sha512.credential(
                    saltedPassword: sha512.saltedPassword("pencil", salt: RFC7677.salt, iterations: 4096),
                    salt: RFC7677.salt, iterations: 4096))
    }

    @Test("the server answers RFC 7677's SCRAM-SHA-256 example message for message")
    func serverFollowsRfc7677() {
        let credential = sha256.credential(password: "pencil", salt: RFC7677.salt, iterations: 4096)
        var server = ScramServer(
            mechanism: .scramSha256, credentials: lookup(["user": credential]), serverNonce: RFC7677.serverNonce)
        #expect(server.step(input: bytes(RFC7677.clientFirst)) == .challenge(bytes(RFC7677.serverFirst)))
        #expect(
            server.step(input: bytes(RFC7677.clientFinal))
                == .success(principal: .user("user"), response: bytes(RFC7677.serverFinal)))
        #expect(server.isComplete)
    }

    @Test("the client sends RFC 7677's SCRAM-SHA-256 example and accepts its server signature")
    func clientFollowsRfc7677() {
        var client = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        #expect(text(client.initialResponse) == RFC7677.clientFirst)
        #expect(client.step(serverMessage: bytes(RFC7677.serverFirst)) == .send(bytes(RFC7677.clientFinal)))
        #expect(client.step(serverMessage: bytes(RFC7677.serverFinal)) == .complete)
        #expect(client.isComplete)
    }

    @Test("SCRAM-SHA-512 gives the proof and signature Python's hashlib and hmac compute")
    func sha512MatchesPython() {
        let credential = sha512.credential(password: "pencil", salt: RFC7677.salt, iterations: 4096)
        var server = ScramServer(
            mechanism: .scramSha512, credentials: lookup(["user": credential]), serverNonce: RFC7677.serverNonce)
        var client = ScramClient(
            mechanism: .scramSha512, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        #expect(server.step(input: client.initialResponse) == .challenge(bytes(RFC7677.serverFirst)))
        #expect(client.step(serverMessage: bytes(RFC7677.serverFirst)) == .send(bytes(PythonSha512.clientFinal)))
        #expect(
            server.step(input: bytes(PythonSha512.clientFinal))
                == .success(principal: .user("user"), response: bytes(PythonSha512.serverFinal)))
        #expect(client.step(serverMessage: bytes(PythonSha512.serverFinal)) == .complete)
    }

    @Test("a client and a server with random nonces agree, for both mechanisms, with user names that need escaping")
    func clientAndServerAgree() {
        var random = SeededRandom(seed: 7)
        for mechanism in ScramMechanism.allCases {
            let formatter = ScramFormatter(mechanism)
            let user = "a=b,c"
            let credential = formatter.credential(password: "s3cret", iterations: 4096, using: &random)
            var server = ScramServer(mechanism: mechanism, credentials: lookup([user: credential]), random: &random)
            var client = ScramClient(mechanism: mechanism, username: user, password: "s3cret", random: &random)
            #expect(text(client.initialResponse).hasPrefix("n,,n=a=3Db=2Cc,r="))
            guard case .challenge(let serverFirst) = server.step(input: client.initialResponse),
                case .send(let clientFinal) = client.step(serverMessage: serverFirst),
                case .success(let principal, let serverFinal) = server.step(input: clientFinal)
            else {
                Issue.record("the exchange did not succeed")
                continue
            }
            #expect(principal == .user(user))
            #expect(client.step(serverMessage: serverFinal) == .complete)
        }
    }

    func failure(_ step: SaslStep) -> SaslFailure? {
        if case .failure(let failure) = step { return failure }
        return nil
    }

    func server(iterations: Int32 = 4096) -> ScramServer {
        let credential = sha256.credential(password: "pencil", salt: RFC7677.salt, iterations: iterations)
        return ScramServer(
            mechanism: .scramSha256, credentials: lookup(["user": credential]), serverNonce: RFC7677.serverNonce)
    }

    @Test("a wrong password fails with invalid-proof and Kafka's fixed sentence for the client")
    func wrongPassword() {
        var server = server()
        var client = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil!", nonce: RFC7677.clientNonce)
        guard case .challenge(let first) = server.step(input: client.initialResponse),
            case .send(let final) = client.step(serverMessage: first)
        else {
            Issue.record("no challenge")
            return
        }
        let f = failure(server.step(input: final))
        #expect(f?.scramError == "invalid-proof")
        #expect(f?.errorCode == .saslAuthenticationFailed)
        #expect(
            f?.clientMessage
                == "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        )
        #expect(
            failure(server.step(input: final))?.errorCode == .illegalSaslState, "nothing is accepted after a failure")
    }

    @Test("an unknown user fails at the first message without saying so to the client")
    func unknownUser() {
        var server = server()
        let f = failure(server.step(input: bytes("n,,n=mallory,r=abc")))
        #expect(f?.scramError == "unknown-user")
        #expect(f?.clientMessage.contains("mallory") == false)
    }

    @Test("a credential with fewer than 4096 iterations is refused")
    func tooFewIterations() {
        var server = server(iterations: 4095)
        #expect(
            failure(server.step(input: bytes(RFC7677.clientFirst)))?.reason
                == "Iterations 4095 is less than the minimum 4096 for SCRAM_SHA_256")
    }

    @Test("the final message must repeat the server's nonce")
    func wrongNonce() {
        var server = server()
        _ = server.step(input: bytes(RFC7677.clientFirst))
        let final = RFC7677.clientFinal.replacingOccurrences("hNlF$k0", "hNlF$k1")
        #expect(
            failure(server.step(input: bytes(final)))?.reason == "Invalid client nonce in the final client message.")
    }

    @Test(
        "a final nonce that only ends with the server's passes the nonce check, as in Kafka (librdkafka 2.0 repeats its own nonce in front); the proof then decides"
    )
    func librdkafkaNonce() {
        var server = server()
        _ = server.step(input: bytes(RFC7677.clientFirst))
        let combined = RFC7677.clientNonce + RFC7677.serverNonce
        let final = RFC7677.clientFinal.replacingOccurrences("r=" + combined, "r=" + RFC7677.clientNonce + combined)
        let reason = failure(server.step(input: bytes(final)))?.reason
        #expect(reason != nil && reason != "Invalid client nonce in the final client message.", "\(reason ?? "")")
    }

    @Test("the channel binding must be the base64 of the client's gs2 header")
    func channelBinding() {
        var server = server()
        _ = server.step(input: bytes(RFC7677.clientFirst))
        let final = RFC7677.clientFinal.replacingOccurrences("c=biws", "c=eSws")
        #expect(failure(server.step(input: bytes(final)))?.scramError == "channel-bindings-dont-match")
    }

    @Test("an authorization id other than the user name is refused, and the client is told why")
    func authorizationId() {
        var server = server()
        let f = failure(server.step(input: bytes("n,a=admin,n=user,r=abc")))
        #expect(
            f?.clientMessage
                == "Authentication failed: Client requested an authorization id that is different from username")
        var same = self.server()
        if case .challenge = same.step(input: bytes("n,a=user,n=user,r=abc")) {
        } else {
            Issue.record("a=user for user n=user is fine")
        }
    }

    @Test("malformed first messages, mandatory extensions, channel-binding requests and delegation tokens are refused")
    func malformedFirstMessages() {
        let cases: [(String, String)] = [
            ("", "other-error"),
            ("x,,n=user,r=abc", "other-error"),
            ("n,,n=user", "other-error"),
            ("n,,n=us=er,r=abc", "invalid-username-encoding"),
            ("n,,m=ext,n=user,r=abc", "extensions-not-supported"),
            ("p=tls-unique,,n=user,r=abc", "channel-binding-not-supported"),
            ("n,,n=user,r=abc,tokenauth=true", "extensions-not-supported"),
            ("n,,n=user,r=a b", "other-error"),
        ]
        for (message, error) in cases {
            var server = server()
            #expect(failure(server.step(input: bytes(message)))?.scramError == error, "\(message)")
        }
        var server = server()
        if case .challenge = server.step(input: bytes("y,,n=user,r=abc,ext=1")) {
        } else {
            Issue.record("y flag and unknown extensions are accepted")
        }
    }

    @Test("the client refuses a server nonce that does not extend its own, and too few iterations")
    func clientChecks() {
        var client = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        #expect(
            client.step(serverMessage: bytes("r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
                == .failure("Invalid server nonce: does not start with client nonce"))
        var weak = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        #expect(
            weak.step(serverMessage: bytes("r=\(RFC7677.clientNonce)x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100"))
                == .failure("Requested iterations 100 is less than the minimum 4096 for SCRAM-SHA-256"))
    }

    @Test("the client refuses a wrong server signature and reports a server error")
    func clientVerifiesServer() {
        var client = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        _ = client.step(serverMessage: bytes(RFC7677.serverFirst))
        #expect(
            client.step(serverMessage: bytes("v=AAAA")) == .failure("Invalid server signature in server final message"))
        var other = ScramClient(
            mechanism: .scramSha256, username: "user", password: "pencil", nonce: RFC7677.clientNonce)
        _ = other.step(serverMessage: bytes(RFC7677.serverFirst))
        #expect(
            other.step(serverMessage: bytes("e=invalid-proof"))
                == .failure("Sasl authentication using SCRAM-SHA-256 failed with error: invalid-proof"))
    }

    @Test("saslname escaping round-trips and refuses a bare =")
    func saslNames() {
        #expect(ScramFormatter.saslName("a=b,c") == "a=3Db=2Cc")
        #expect(ScramFormatter.username(saslName: "a=3Db=2Cc") == "a=b,c")
        #expect(ScramFormatter.username(saslName: "a=b") == nil)
        #expect(ScramFormatter.username(saslName: "a=3") == nil)
    }

    @Test("mechanism codes and names are Kafka's")
    func mechanisms() {
        #expect(ScramMechanism(code: 1) == .scramSha256)
        #expect(ScramMechanism(code: 2) == .scramSha512)
        #expect(ScramMechanism(code: 0) == nil)
        #expect(ScramMechanism(mechanismName: "SCRAM-SHA-512") == .scramSha512)
        #expect(ScramMechanism.scramSha256.minIterations == 4096)
        #expect(ScramMechanism.maxIterations == 16384)
    }
}

@Suite("Base64")
struct Base64Tests {
    @Test("RFC 4648's test vectors encode and decode")
    func vectors() {
        let cases = [
            "": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
            "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in cases {
            #expect(Base64.encode(bytes(plain)) == encoded)
            #expect(Base64.decode(encoded) == bytes(plain))
        }
    }

    @Test("every byte value survives a round trip")
    func allBytes() {
        let all = (0...255).map { UInt8($0) }
        for n in 0...all.count { #expect(Base64.decode(Base64.encode(Array(all.prefix(n)))) == Array(all.prefix(n))) }
    }

    @Test("non-canonical or broken text is refused")
    func refused() {
        for bad in ["Zg=", "Zg", "Z===", "Zh==", "Zm9v!", "Zm=v", "====", "Zg==Zg=="] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
