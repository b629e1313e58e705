// The four SCRAM messages of RFC 5802 section 7, parsed and printed. Attributes are separated by
// commas, which no attribute value may hold (user names escape them as `=2C`), so a message splits
// on commas.

/// A SCRAM message that cannot be parsed: the RFC's `server-error-value` and a sentence.
struct ScramParseError: Error, Equatable {
    var scramError: String
    var reason: String
}

/// `client-first-message = gs2-header client-first-message-bare`.
struct ClientFirstMessage: Equatable {
    /// `n`, `y`, or `p=<cb-name>`.
    var channelBindingFlag: String
    /// The decoded `a=` authorization id, "" when absent.
    var authorizationId: String
    /// The decoded user name.
    var username: String
    /// The client's nonce (`r=`).
    var nonce: String
    /// `key=value` extensions after the nonce, in order.
    var extensions: [(String, String)]
    /// `gs2-header`: the flag, the `a=` attribute and their commas, as received.
    var gs2Header: String
    /// `client-first-message-bare`, as received (part of the AuthMessage).
    var bare: String

    static func == (lhs: ClientFirstMessage, rhs: ClientFirstMessage) -> Bool {
        lhs.bare == rhs.bare && lhs.gs2Header == rhs.gs2Header
    }

    init(parsing text: String) throws(ScramParseError) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4 else {
            throw ScramParseError(
                scramError: "other-error", reason: "Invalid SCRAM client first message format: \(text)")
        }
        let flag = parts[0]
        guard flag == "n" || flag == "y" || flag.hasPrefix("p=") else {
            throw ScramParseError(
                scramError: "other-error", reason: "Invalid SCRAM client first message format: \(text)")
        }
        channelBindingFlag = flag
        if parts[1].isEmpty {
            authorizationId = ""
        } else if parts[1].hasPrefix("a="), let authzid = ScramFormatter.username(saslName: parts[1].dropFirst(2)),
            !authzid.isEmpty
        {
            authorizationId = authzid
        } else {
            throw ScramParseError(
                scramError: "invalid-username-encoding", reason: "Invalid SCRAM authorization id: \(parts[1])")
        }
        gs2Header = parts[0] + "," + parts[1] + ","
        var index = 2
        if parts[index].hasPrefix("m=") {
            throw ScramParseError(
                scramError: "extensions-not-supported",
                reason: "SCRAM mandatory extension \(parts[index]) is not supported")
        }
        guard parts[index].hasPrefix("n=") else {
            throw ScramParseError(
                scramError: "other-error", reason: "Invalid SCRAM client first message format: \(text)")
        }
        guard let username = ScramFormatter.username(saslName: parts[index].dropFirst(2)), !username.isEmpty else {
            throw ScramParseError(
                scramError: "invalid-username-encoding", reason: "Invalid SCRAM user name: \(parts[index])")
        }
        self.username = username
        index += 1
        guard parts[index].hasPrefix("r="), isPrintable(parts[index].dropFirst(2)) else {
            throw ScramParseError(
                scramError: "other-error", reason: "Invalid SCRAM client first message format: \(text)")
        }
        nonce = String(parts[index].dropFirst(2))
        index += 1
        extensions = []
        while index < parts.count {
            guard let (key, value) = attribute(parts[index]) else {
                throw ScramParseError(
                    scramError: "other-error", reason: "Invalid SCRAM client first message format: \(text)")
            }
            extensions.append((key, value))
            index += 1
        }
        bare = parts[2...].joined(separator: ",")
    }
}

/// `server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]`.
struct ServerFirstMessage: Equatable {
    /// The client's nonce followed by the server's.
    var nonce: String
    var salt: [UInt8]
    var iterations: Int32

    init(nonce: String, salt: [UInt8], iterations: Int32) {
        self.nonce = nonce
        self.salt = salt
        self.iterations = iterations
    }

    init(parsing text: String) throws(ScramParseError) {
        let bad = ScramParseError(
            scramError: "other-error", reason: "Invalid SCRAM server first message format: \(text)")
        var parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if parts.first?.hasPrefix("m=") == true {
            throw ScramParseError(
                scramError: "extensions-not-supported", reason: "SCRAM mandatory extension \(parts[0]) is not supported"
            )
        }
        guard parts.count >= 3, parts[0].hasPrefix("r="), parts[1].hasPrefix("s="), parts[2].hasPrefix("i=") else {
            throw bad
        }
        guard isPrintable(parts[0].dropFirst(2)), let salt = Base64.decode(parts[1].dropFirst(2)),
            let iterations = Int32(parts[2].dropFirst(2)), iterations > 0
        else { throw bad }
        let nonce = String(parts[0].dropFirst(2))
        parts.removeFirst(3)
        guard parts.allSatisfy({ attribute($0) != nil }) else { throw bad }
        self.init(nonce: nonce, salt: salt, iterations: iterations)
    }

    /// `r=...,s=...,i=...`.
    var text: String { "r=\(nonce),s=\(Base64.encode(salt)),i=\(iterations)" }
}

/// `client-final-message = client-final-message-without-proof "," proof`.
struct ClientFinalMessage: Equatable {
    /// The decoded `c=` value: the gs2-header (and channel binding data, which we never use).
    var channelBinding: [UInt8]
    var nonce: String
    var proof: [UInt8]
    /// Everything before `,p=`, as received (part of the AuthMessage).
    var withoutProof: String

    init(channelBinding: [UInt8], nonce: String, proof: [UInt8]) {
        self.channelBinding = channelBinding
        self.nonce = nonce
        self.proof = proof
        self.withoutProof = "c=\(Base64.encode(channelBinding)),r=\(nonce)"
    }

    init(parsing text: String) throws(ScramParseError) {
        let bad = ScramParseError(
            scramError: "other-error", reason: "Invalid SCRAM client final message format: \(text)")
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts[0].hasPrefix("c="), parts[1].hasPrefix("r="), let last = parts.last,
            last.hasPrefix("p=")
        else { throw bad }
        guard let binding = Base64.decode(parts[0].dropFirst(2)) else {
            throw ScramParseError(scramError: "invalid-encoding", reason: "Invalid SCRAM channel binding: \(parts[0])")
        }
        guard isPrintable(parts[1].dropFirst(2)), parts[2..<(parts.count - 1)].allSatisfy({ attribute($0) != nil })
        else { throw bad }
        guard let proof = Base64.decode(last.dropFirst(2)) else {
            throw ScramParseError(scramError: "invalid-encoding", reason: "Invalid SCRAM client proof encoding")
        }
        channelBinding = binding
        nonce = String(parts[1].dropFirst(2))
        self.proof = proof
        withoutProof = parts[0..<(parts.count - 1)].joined(separator: ",")
    }

    /// The whole message.
    var text: String { withoutProof + ",p=" + Base64.encode(proof) }
}

/// `server-final-message = (server-error / verifier) ["," extensions]`.
enum ServerFinalMessage: Equatable {
    case verifier([UInt8])
    case error(String)

    init(parsing text: String) throws(ScramParseError) {
        let first = text.split(separator: ",", omittingEmptySubsequences: false)[0]
        if first.hasPrefix("e="), first.count > 2 {
            self = .error(String(first.dropFirst(2)))
        } else if first.hasPrefix("v="), let signature = Base64.decode(first.dropFirst(2)) {
            self = .verifier(signature)
        } else {
            throw ScramParseError(
                scramError: "other-error", reason: "Invalid SCRAM server final message format: \(text)")
        }
    }

    var text: String {
        switch self {
        case .verifier(let signature): "v=" + Base64.encode(signature)
        case .error(let error): "e=" + error
        }
    }
}

/// RFC 5802 `printable`: %x21-7E except `,`, at least one.
func isPrintable(_ text: some StringProtocol) -> Bool {
    !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") }
}

/// `attr-val = ALPHA "=" value`: the attribute letter(s) and the value.
func attribute(_ text: String) -> (String, String)? {
    guard let eq = text.firstIndex(of: "="), eq != text.startIndex else { return nil }
    let key = text[..<eq]
    guard key.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }) else { return nil }
    return (String(key), String(text[text.index(after: eq)...]))
}

/// The base64 of `bytes`, as a SCRAM nonce (printable, no commas).
func scramNonce(using random: inout some RandomNumberGenerator) -> String {
    Base64.encode(randomBytes(24, using: &random))
}
