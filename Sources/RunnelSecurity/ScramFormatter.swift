import Crypto
import _CryptoExtras

/// A SCRAM mechanism, with Kafka's codes (`org.apache.kafka.clients.admin.ScramMechanism`: the
/// `mechanism` of UserScramCredentialRecord, AlterUserScramCredentials and
/// DescribeUserScramCredentials).
public enum ScramMechanism: Int8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case scramSha256 = 1
    case scramSha512 = 2

    /// The mechanism with code `code`; nil for 0 (UNKNOWN) and codes this build does not know.
    public init?(code: Int8) { self.init(rawValue: code) }

    /// The mechanism named `name` (`SCRAM-SHA-256`, `SCRAM-SHA-512`), exactly as SaslHandshake says it.
    public init?(mechanismName name: String) {
        guard let m = Self.allCases.first(where: { $0.mechanismName == name }) else { return nil }
        self = m
    }

    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    public var mechanismName: String {
        switch self {
        case .scramSha256: SaslMechanismName.scramSha256
        case .scramSha512: SaslMechanismName.scramSha512
        }
    }

    /// Kafka's enum name: `SCRAM_SHA_256`.
    public var description: String {
        switch self {
        case .scramSha256: "SCRAM_SHA_256"
        case .scramSha512: "SCRAM_SHA_512"
        }
    }

    /// Fewest iterations a credential may have (Kafka's `ScramMechanism.minIterations`, 4096 for both).
    public var minIterations: Int32 { 4096 }

    /// Most iterations AlterUserScramCredentials accepts (Kafka's `ScramControlManager.MAX_ITERATIONS`).
    public static let maxIterations: Int32 = 16384

    /// Bytes of the hash (and of every key): 32 for SHA-256, 64 for SHA-512.
    public var hashBytes: Int {
        switch self {
        case .scramSha256: 32
        case .scramSha512: 64
        }
    }
}

/// What a server keeps to check a SCRAM client (RFC 5802 section 3): never the password.
public struct ScramCredential: Sendable, Equatable {
    public var salt: [UInt8]
    /// H(ClientKey): checks the client's proof.
    public var storedKey: [UInt8]
    /// HMAC(SaltedPassword, "Server Key"): signs the server's final message.
    public var serverKey: [UInt8]
    public var iterations: Int32

    public init(salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int32) {
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.iterations = iterations
    }
}

/// The SCRAM functions of RFC 5802 section 2.2 for one mechanism (Kafka's `ScramFormatter`):
/// HMAC, H, Hi (PBKDF2 from swift-crypto) and the keys derived from a password.
public struct ScramFormatter: Sendable {
    public var mechanism: ScramMechanism

    public init(_ mechanism: ScramMechanism) { self.mechanism = mechanism }

    /// HMAC(key, data).
    public func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let symmetricKey = SymmetricKey(data: key)
        switch mechanism {
        case .scramSha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: symmetricKey))
        case .scramSha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: symmetricKey))
        }
    }

    /// H(data).
    public func hash(_ data: [UInt8]) -> [UInt8] {
        switch mechanism {
        case .scramSha256: return Array(SHA256.hash(data: data))
        case .scramSha512: return Array(SHA512.hash(data: data))
        }
    }

    /// Hi(password, salt, i): PBKDF2 with this mechanism's HMAC and one block of output. The
    /// password's UTF-8 bytes are used as they are (Kafka does not SASLprep them).
    public func saltedPassword(_ password: String, salt: [UInt8], iterations: Int32) -> [UInt8] {
        precondition(iterations >= 1, "PBKDF2 needs at least one iteration")
        let function: KDF.Insecure.PBKDF2.HashFunction = mechanism == .scramSha256 ? .sha256 : .sha512
        do {
            let key = try KDF.Insecure.PBKDF2.deriveKey(
                from: Array(password.utf8), salt: salt, using: function,
                outputByteCount: mechanism.hashBytes, unsafeUncheckedRounds: Int(iterations))
            return key.withUnsafeBytes { Array($0) }
        } catch {
            preconditionFailure("PBKDF2 with \(function) and \(iterations) rounds cannot fail: \(error)")
        }
    }

    /// ClientKey = HMAC(SaltedPassword, "Client Key").
    public func clientKey(saltedPassword: [UInt8]) -> [UInt8] {
        hmac(key: saltedPassword, Array("Client Key".utf8))
    }

    /// StoredKey = H(ClientKey).
    public func storedKey(clientKey: [UInt8]) -> [UInt8] { hash(clientKey) }

    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    public func serverKey(saltedPassword: [UInt8]) -> [UInt8] {
        hmac(key: saltedPassword, Array("Server Key".utf8))
    }

    /// The credential of a salted password (what the controller derives from an
    /// AlterUserScramCredentials upsertion, whose client ran PBKDF2).
    public func credential(saltedPassword: [UInt8], salt: [UInt8], iterations: Int32) -> ScramCredential {
        ScramCredential(
            salt: salt, storedKey: storedKey(clientKey: clientKey(saltedPassword: saltedPassword)),
            serverKey: serverKey(saltedPassword: saltedPassword), iterations: iterations)
    }

    /// The credential of `password` with `salt` (for `runnel format --add-scram` and tools).
    public func credential(password: String, salt: [UInt8], iterations: Int32) -> ScramCredential {
        credential(
            saltedPassword: saltedPassword(password, salt: salt, iterations: iterations), salt: salt,
            iterations: iterations)
    }

    /// The credential of `password` with a new 32-byte salt drawn from `random` (pass a
    /// cryptographically secure generator, `SystemRandomNumberGenerator`, outside tests).
    public func credential(
        password: String, iterations: Int32, using random: inout some RandomNumberGenerator
    ) -> ScramCredential {
        credential(password: password, salt: randomBytes(32, using: &random), iterations: iterations)
    }

    /// X XOR Y of two keys of one length.
    static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == b.count, "XOR of SCRAM keys of one length")
        return zip(a, b).map { $0 ^ $1 }
    }

    /// A user name as a SCRAM `saslname`: `=` as `=3D` and `,` as `=2C`.
    public static func saslName(_ username: String) -> String {
        var out = ""
        for c in username {
            switch c {
            case "=": out += "=3D"
            case ",": out += "=2C"
            default: out.append(c)
            }
        }
        return out
    }

    /// The user name of a SCRAM `saslname`; nil when a `=` is not part of `=2C` or `=3D`.
    public static func username(saslName: some StringProtocol) -> String? {
        var out = [UInt8]()
        let bytes = Array(saslName.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "=") {
                guard i + 2 < bytes.count else { return nil }
                switch (bytes[i + 1], bytes[i + 2]) {
                case (UInt8(ascii: "2"), UInt8(ascii: "C")): out.append(UInt8(ascii: ","))
                case (UInt8(ascii: "3"), UInt8(ascii: "D")): out.append(UInt8(ascii: "="))
                default: return nil
                }
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// `count` bytes from `random`.
func randomBytes(_ count: Int, using random: inout some RandomNumberGenerator) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        var word = random.next() as UInt64
        for _ in 0..<8 where out.count < count {
            out.append(UInt8(truncatingIfNeeded: word))
            word >>= 8
        }
    }
    return out
}
