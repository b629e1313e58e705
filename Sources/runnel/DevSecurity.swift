import Crypto
import Foundation
import SwiftASN1
import X509

/// What `runnel dev --secure` makes under `<data-dir>/secure/` (kept, and reused by later runs on
/// the same folder): a certificate authority, one certificate for every node (127.0.0.1 and
/// localhost), the admin user's password, and client configs for Kafka's Java client and the
/// Runnel tools (`client.properties`) and for librdkafka (`librdkafka.properties`).
struct DevSecurity {
    static let mechanism = "SCRAM-SHA-512"
    static let adminUser = "admin"

    let directory: String
    let password: String

    var caFile: String { directory + "/ca.pem" }
    /// The nodes' certificate chain and key, one PEM file (`ssl.keystore.type=PEM`).
    var nodeKeystoreFile: String { directory + "/node.pem" }
    var clientConfigFile: String { directory + "/client.properties" }
    var librdkafkaConfigFile: String { directory + "/librdkafka.properties" }
    var passwordFile: String { directory + "/admin.password" }

    /// Loads what an earlier run made in `directory`, or makes it.
    static func prepare(in directory: String) throws -> DevSecurity {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let passwordFile = directory + "/admin.password"
        let password: String
        if let existing = try? String(contentsOfFile: passwordFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), !existing.isEmpty
        {
            password = existing
        } else {
            var generator = SystemRandomNumberGenerator()
            let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
            password = String((0..<24).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
            try write(password + "\n", to: passwordFile, private: true)
        }
        let security = DevSecurity(directory: directory, password: password)
        if !fm.fileExists(atPath: security.caFile) || !fm.fileExists(atPath: security.nodeKeystoreFile) {
            try security.makeCertificates()
        }
        try write(security.clientProperties, to: security.clientConfigFile, private: true)
        try write(security.librdkafkaProperties, to: security.librdkafkaConfigFile, private: true)
        return security
    }

    /// A CA valid for ten years and a node certificate it signs for 127.0.0.1 and localhost
    /// (server and client authentication), both ECDSA P-256.
    func makeCertificates() throws {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("Runnel dev")
            CommonName("Runnel dev CA")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))
        let nodeKey = P256.Signing.PrivateKey()
        let node = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(nodeKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(2 * 365 * 86400),
            issuer: caName,
            subject: try DistinguishedName {
                OrganizationName("Runnel dev")
                CommonName("localhost")
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
            },
            issuerPrivateKey: .init(caKey))
        let caPEM = try ca.serializeAsPEM().pemString + "\n"
        try Self.write(caPEM, to: caFile)
        try Self.write(caKey.pemRepresentation + "\n", to: directory + "/ca-key.pem", private: true)
        try Self.write(
            try node.serializeAsPEM().pemString + "\n" + caPEM + nodeKey.pemRepresentation + "\n", to: nodeKeystoreFile,
            private: true)
    }

    /// `sasl.jaas.config` for the admin user, as Kafka's clients and brokers take it.
    var jaas: String {
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"\(Self.adminUser)\" password=\"\(password)\";"
    }

    /// The keys every node gets: SASL_SSL with SCRAM-SHA-512 on every listener (the nodes log in
    /// to each other as the admin user, a super user), the StandardAuthorizer, PEM stores.
    var nodeProperties: [(String, String)] {
        [
            ("listener.security.protocol.map", "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL"),
            ("sasl.enabled.mechanisms", Self.mechanism),
            ("sasl.mechanism.controller.protocol", Self.mechanism),
            ("sasl.mechanism.inter.broker.protocol", Self.mechanism),
            ("listener.name.controller.scram-sha-512.sasl.jaas.config", jaas),
            ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", jaas),
            ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
            ("super.users", "User:\(Self.adminUser)"),
            ("ssl.keystore.type", "PEM"), ("ssl.keystore.location", nodeKeystoreFile),
            ("ssl.truststore.type", "PEM"), ("ssl.truststore.location", caFile),
        ]
    }

    /// `runnel format --add-scram` for the admin user.
    var scramArgument: String { "\(Self.mechanism)=[name=\(Self.adminUser),password=\(password)]" }

    var clientProperties: String {
        """
        # Kafka's Java client and the runnel tools (--command-config): the admin user over SASL_SSL.
        security.protocol=SASL_SSL
        sasl.mechanism=\(Self.mechanism)
        sasl.jaas.config=\(jaas)
        ssl.truststore.type=PEM
        ssl.truststore.location=\(caFile)

        """
    }

    var librdkafkaProperties: String {
        """
        # librdkafka (confluent-kafka, kcat -F): the admin user over SASL_SSL.
        security.protocol=SASL_SSL
        sasl.mechanisms=\(Self.mechanism)
        sasl.username=\(Self.adminUser)
        sasl.password=\(password)
        ssl.ca.location=\(caFile)

        """
    }

    static func write(_ text: String, to path: String, private: Bool = false) throws {
        let fm = FileManager.default
        guard
            fm.createFile(
                atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: `private` ? 0o600 : 0o644])
        else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }
}
