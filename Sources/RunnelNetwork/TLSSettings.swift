#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOSSL
import X509

/// A problem with a TLS or SASL setting: one sentence naming the key.
public struct SecuritySettingError: Error, CustomStringConvertible, Sendable, Equatable {
    public var key: String
    public var problem: String
    public init(_ key: String, _ problem: String) {
        self.key = key
        self.problem = problem
    }
    public var description: String { "Invalid configuration \(key): \(problem)" }
}

/// Kafka's `security.protocol` values (and a listener's protocol in `listener.security.protocol.map`).
public enum SecurityProtocol: String, Sendable, CaseIterable {
    case plaintext = "PLAINTEXT"
    case ssl = "SSL"
    case saslPlaintext = "SASL_PLAINTEXT"
    case saslSsl = "SASL_SSL"

    /// Whether the connection runs over TLS.
    public var usesTLS: Bool { self == .ssl || self == .saslSsl }
    /// Whether the connection authenticates with SASL before any other request.
    public var usesSASL: Bool { self == .saslPlaintext || self == .saslSsl }

    /// Kafka's `SecurityProtocol.id`, as BrokerRegistration carries it.
    public var code: Int16 {
        switch self {
        case .plaintext: 0
        case .ssl: 1
        case .saslPlaintext: 2
        case .saslSsl: 3
        }
    }
}

/// The TLS half of a listener's or a client's settings, as Kafka's `ssl.*` keys give it: PEM key
/// and trust stores (KIP-651: files, or the PEM text itself), or PKCS12 files; client
/// authentication; the TLS versions. Values only: `serverContext()` and `clientContext()` load
/// the files and make the NIOSSL context.
public struct TLSSettings: Sendable, Equatable {
    /// `ssl.client.auth`.
    public enum ClientAuth: String, Sendable {
        case none, requested, required
    }

    /// `ssl.keystore.type`: PEM or PKCS12 (JKS, Java's own format, is not readable here).
    public var keystoreType = "PEM"
    /// `ssl.keystore.location` (a PEM file with the private key and the certificate chain, or a
    /// PKCS12 file).
    public var keystoreLocation: String?
    /// `ssl.keystore.password` (a PKCS12 file's password).
    public var keystorePassword: String?
    /// `ssl.keystore.certificate.chain`: the certificate chain as PEM text.
    public var keystoreCertificateChain: String?
    /// `ssl.keystore.key`: the private key as PEM text (PKCS#8, encrypted with `ssl.key.password` or not).
    public var keystoreKey: String?
    /// `ssl.key.password`.
    public var keyPassword: String?
    /// A separate private-key PEM file (librdkafka's `ssl.key.location`, clients only).
    public var keyLocation: String?
    /// `ssl.truststore.type`: PEM or PKCS12.
    public var truststoreType = "PEM"
    /// `ssl.truststore.location` (or librdkafka's `ssl.ca.location`): PEM certificates to trust.
    public var truststoreLocation: String?
    /// `ssl.truststore.password` (PKCS12 trust stores).
    public var truststorePassword: String?
    /// `ssl.truststore.certificates`: certificates to trust as PEM text.
    public var truststoreCertificates: String?
    /// `ssl.client.auth` (servers).
    public var clientAuth: ClientAuth = .none
    /// `ssl.enabled.protocols`.
    public var enabledProtocols: [TLSVersion] = [.tlsv12, .tlsv13]
    /// `ssl.endpoint.identification.algorithm=https` (the default): a client checks that the
    /// server's certificate names the host it connected to; empty turns the check off.
    public var verifyHostname = true

    public init() {}

    /// Reads the `ssl.*` keys through `value` (which applies any per-listener override).
    /// Client key spellings of librdkafka (`ssl.ca.location`, `ssl.certificate.location`,
    /// `ssl.key.location`) are read too, so one client config file serves both kinds of client.
    public static func parse(_ value: (String) -> String?) throws(SecuritySettingError) -> TLSSettings {
        var s = TLSSettings()
        func text(_ key: String) -> String? {
            guard let v = value(key)?.trimmingSpaces(), !v.isEmpty else { return nil }
            return v
        }
        if let type = text("ssl.keystore.type") {
            guard ["PEM", "PKCS12"].contains(type.uppercased()) else {
                throw SecuritySettingError("ssl.keystore.type", "\(type) is not supported; use PEM (or PKCS12).")
            }
            s.keystoreType = type.uppercased()
        }
        if let type = text("ssl.truststore.type") {
            guard ["PEM", "PKCS12"].contains(type.uppercased()) else {
                throw SecuritySettingError("ssl.truststore.type", "\(type) is not supported; use PEM (or PKCS12).")
            }
            s.truststoreType = type.uppercased()
        }
        s.keystoreLocation = text("ssl.keystore.location") ?? text("ssl.certificate.location")
        s.keyLocation = text("ssl.key.location")
        s.keystorePassword = text("ssl.keystore.password")
        s.keystoreCertificateChain = text("ssl.keystore.certificate.chain")
        s.keystoreKey = text("ssl.keystore.key")
        s.keyPassword = text("ssl.key.password")
        s.truststoreLocation = text("ssl.truststore.location") ?? text("ssl.ca.location")
        s.truststorePassword = text("ssl.truststore.password")
        s.truststoreCertificates = text("ssl.truststore.certificates")
        if (s.keystoreCertificateChain == nil) != (s.keystoreKey == nil) {
            throw SecuritySettingError(
                "ssl.keystore.key",
                "ssl.keystore.certificate.chain and ssl.keystore.key go together; set both or neither.")
        }
        if s.keystoreCertificateChain != nil && s.keystoreLocation != nil {
            throw SecuritySettingError(
                "ssl.keystore.location",
                "give the key store either as ssl.keystore.location or as ssl.keystore.certificate.chain and ssl.keystore.key, not both."
            )
        }
        if s.truststoreCertificates != nil && s.truststoreLocation != nil {
            throw SecuritySettingError(
                "ssl.truststore.location",
                "give the trust store either as ssl.truststore.location or as ssl.truststore.certificates, not both.")
        }
        if let auth = text("ssl.client.auth") {
            guard let parsed = ClientAuth(rawValue: auth.lowercased()) else {
                throw SecuritySettingError("ssl.client.auth", "\(auth) is not none, requested or required.")
            }
            s.clientAuth = parsed
        }
        if let list = text("ssl.enabled.protocols") {
            var versions: [TLSVersion] = []
            for name in list.split(separator: ",").map({ $0.trimmingSpaces() }) where !name.isEmpty {
                switch name {
                case "TLSv1.2": versions.append(.tlsv12)
                case "TLSv1.3": versions.append(.tlsv13)
                default:
                    throw SecuritySettingError(
                        "ssl.enabled.protocols", "\(name) is not supported; use TLSv1.2 and/or TLSv1.3.")
                }
            }
            guard !versions.isEmpty else { throw SecuritySettingError("ssl.enabled.protocols", "names no protocol.") }
            s.enabledProtocols = versions
        }
        if let algorithm = value("ssl.endpoint.identification.algorithm")?.trimmingSpaces() {
            switch algorithm.lowercased() {
            case "": s.verifyHostname = false
            case "https": s.verifyHostname = true
            case "none": s.verifyHostname = false
            default:
                throw SecuritySettingError(
                    "ssl.endpoint.identification.algorithm", "\(algorithm) is not https or empty.")
            }
        }
        return s
    }

    /// Whether a key store is configured.
    public var hasKeystore: Bool { keystoreLocation != nil || keystoreCertificateChain != nil }

    /// The server side of a TLS listener: its certificate and key, whom it trusts for client
    /// certificates, and whether it asks for one.
    public func serverContext() throws -> NIOSSLContext {
        guard hasKeystore else {
            throw SecuritySettingError(
                "ssl.keystore.location",
                "a TLS listener needs a key store (ssl.keystore.location, or ssl.keystore.certificate.chain with ssl.keystore.key)."
            )
        }
        let (chain, key) = try loadKeystore()
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.trustRoots = try loadTrustRoots()
        switch clientAuth {
        case .none: configuration.certificateVerification = .none
        case .requested: configuration.certificateVerification = .optionalVerification
        case .required: configuration.certificateVerification = .noHostnameVerification
        }
        applyVersions(&configuration)
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client side: whom it trusts, its own certificate when it has one (for listeners with
    /// `ssl.client.auth`), and whether it checks the server's name.
    public func clientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = try loadTrustRoots()
        if hasKeystore {
            let (chain, key) = try loadKeystore()
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(key)
        }
        configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        applyVersions(&configuration)
        return try NIOSSLContext(configuration: configuration)
    }

    private func applyVersions(_ configuration: inout TLSConfiguration) {
        let order: [TLSVersion] = [.tlsv12, .tlsv13]
        let enabled = order.filter { enabledProtocols.contains($0) }
        configuration.minimumTLSVersion = enabled.first ?? .tlsv12
        configuration.maximumTLSVersion = enabled.last ?? .tlsv13
    }

    /// Kafka's check of a key store replacing this one (SslFactory's
    /// CertificateEntries.ensureCompatible): the same subject, unless `allowDNChanges`
    /// (`ssl.allow.dn.changes`), and at least the same subject alternative names, unless
    /// `allowSANChanges` (`ssl.allow.san.changes`). Nil when compatible, or when this store no
    /// longer loads (nothing to compare with); else Kafka's sentence.
    public func certificateMismatch(_ new: TLSSettings, allowDNChanges: Bool, allowSANChanges: Bool) throws -> String? {
        guard let oldDER = try? keystoreCertificateDER() else { return nil }
        let old = try Certificate(derEncoded: oldDER)
        let next = try Certificate(derEncoded: try new.keystoreCertificateDER())
        if !allowDNChanges, old.subject != next.subject {
            return "Keystore DistinguishedName does not match: existing={DN=\(old.subject)}, new={DN=\(next.subject)}"
        }
        let oldNames = try old.extensions.subjectAlternativeNames.map { Array($0) } ?? []
        let newNames = try next.extensions.subjectAlternativeNames.map { Array($0) } ?? []
        if !allowSANChanges, !oldNames.allSatisfy(newNames.contains) {
            func text(_ names: [GeneralName]) -> String { "[" + names.map { "\($0)" }.joined(separator: ", ") + "]" }
            return
                "Keystore SubjectAltNames do not match: existing={SAN=\(text(oldNames))}, new={SAN=\(text(newNames))}"
        }
        return nil
    }

    /// The DER bytes of the key store's own certificate (the first of its chain).
    private func keystoreCertificateDER() throws -> [UInt8] {
        guard let leaf = try loadKeystore().0.first else {
            throw SecuritySettingError("ssl.keystore.location", "holds no certificate.")
        }
        return try leaf.toDERBytes()
    }

    private func loadKeystore() throws -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let password = keyPassword ?? keystorePassword
        if keystoreType == "PKCS12", let location = keystoreLocation {
            do {
                let bundle = try NIOSSLPKCS12Bundle(file: location, passphrase: (keystorePassword ?? "").utf8)
                return (bundle.certificateChain, bundle.privateKey)
            } catch {
                throw SecuritySettingError(
                    "ssl.keystore.location", "\(location) is not a PKCS12 key store this password opens (\(error)).")
            }
        }
        let chainText: String, keyText: String, keyKey: String, chainKey: String
        if let chain = keystoreCertificateChain, let key = keystoreKey {
            (chainText, keyText, chainKey, keyKey) = (chain, key, "ssl.keystore.certificate.chain", "ssl.keystore.key")
        } else if let location = keystoreLocation {
            chainText = try readFile(location, key: "ssl.keystore.location")
            chainKey = "ssl.keystore.location"
            if let keyLocation {
                keyText = try readFile(keyLocation, key: "ssl.key.location")
                keyKey = "ssl.key.location"
            } else {
                keyText = chainText
                keyKey = "ssl.keystore.location"
            }
        } else {
            throw SecuritySettingError("ssl.keystore.location", "is not set.")
        }
        let certificates = PEMBlocks.blocks(in: chainText).filter { $0.label == "CERTIFICATE" }
        guard !certificates.isEmpty else { throw SecuritySettingError(chainKey, "holds no PEM CERTIFICATE.") }
        let chain: [NIOSSLCertificate]
        do {
            chain = try certificates.flatMap { try NIOSSLCertificate.fromPEMBytes(Array($0.text.utf8)) }
        } catch {
            throw SecuritySettingError(chainKey, "holds a certificate that cannot be read (\(error)).")
        }
        guard let keyBlock = PEMBlocks.blocks(in: keyText).first(where: { $0.label.hasSuffix("PRIVATE KEY") }) else {
            throw SecuritySettingError(keyKey, "holds no PEM PRIVATE KEY.")
        }
        if keyBlock.label == "ENCRYPTED PRIVATE KEY" && password == nil {
            throw SecuritySettingError("ssl.key.password", "is needed: the private key is encrypted.")
        }
        do {
            let key: NIOSSLPrivateKey
            if let password {
                key = try NIOSSLPrivateKey(bytes: Array(keyBlock.text.utf8), format: .pem) { setter in
                    setter(Array(password.utf8))
                }
            } else {
                key = try NIOSSLPrivateKey(bytes: Array(keyBlock.text.utf8), format: .pem)
            }
            return (chain, key)
        } catch {
            throw SecuritySettingError(
                keyKey,
                "holds a private key that cannot be read\(password == nil ? "" : " with ssl.key.password") (\(error)).")
        }
    }

    private func loadTrustRoots() throws -> NIOSSLTrustRoots {
        let text: String, key: String
        if truststoreType == "PKCS12", let location = truststoreLocation {
            do {
                let bundle = try NIOSSLPKCS12Bundle(file: location, passphrase: (truststorePassword ?? "").utf8)
                return .certificates(bundle.certificateChain)
            } catch {
                throw SecuritySettingError(
                    "ssl.truststore.location", "\(location) is not a PKCS12 trust store this password opens (\(error))."
                )
            }
        }
        if let certificates = truststoreCertificates {
            (text, key) = (certificates, "ssl.truststore.certificates")
        } else if let location = truststoreLocation {
            (text, key) = (try readFile(location, key: "ssl.truststore.location"), "ssl.truststore.location")
        } else {
            return .default
        }
        let blocks = PEMBlocks.blocks(in: text).filter { $0.label == "CERTIFICATE" }
        guard !blocks.isEmpty else { throw SecuritySettingError(key, "holds no PEM CERTIFICATE.") }
        do {
            return .certificates(try blocks.flatMap { try NIOSSLCertificate.fromPEMBytes(Array($0.text.utf8)) })
        } catch {
            throw SecuritySettingError(key, "holds a certificate that cannot be read (\(error)).")
        }
    }

    private func readFile(_ path: String, key: String) throws -> String {
        guard let text = FileText.read(path) else { throw SecuritySettingError(key, "\(path) cannot be read.") }
        return text
    }
}

/// The PEM blocks of a text (`-----BEGIN LABEL-----` ... `-----END LABEL-----`), each with its
/// label and its whole text; anything between blocks is ignored, as PEM readers do.
enum PEMBlocks {
    struct Block {
        var label: String
        var text: String
    }

    static func blocks(in text: String) -> [Block] {
        var out: [Block] = []
        var current: (label: String, lines: [Substring])?
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingSpaces()
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                let label = String(line.dropFirst(11).dropLast(5))
                current = (label, [Substring(line)])
            } else if line.hasPrefix("-----END "), line.hasSuffix("-----"), var block = current {
                block.lines.append(Substring(line))
                out.append(Block(label: block.label, text: block.lines.joined(separator: "\n") + "\n"))
                current = nil
            } else if current != nil {
                current!.lines.append(Substring(line))
            }
        }
        return out
    }
}

/// Reads a whole small file (keys, certificates) without Foundation.
enum FileText {
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress!, $0.count) }
            if count < 0 { return nil }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > 16 * 1024 * 1024 { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Darwin)
        Darwin.read(fd, buffer, count)
        #elseif canImport(Musl)
        Musl.read(fd, buffer, count)
        #else
        Glibc.read(fd, buffer, count)
        #endif
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
