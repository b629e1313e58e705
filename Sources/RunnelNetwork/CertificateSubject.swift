/// The subject distinguished name of an X.509 certificate as Java's
/// `X500Principal.getName(RFC2253)` writes it, which is what Kafka's SSL principal builder hands
/// to `ssl.principal.mapping.rules`: the RDNs last-to-first (`CN=...,OU=...,O=...,C=...`),
/// attribute types CN, C, L, ST, O, OU, STREET, DC and UID by name and any other as its dotted
/// OID with the value as `#` and the hex of its DER encoding, multi-valued RDNs joined with `+`,
/// and RFC 2253's escapes.
///
/// Read from the certificate's DER bytes with a small reader of the few DER forms the path to the
/// subject has; a certificate it cannot read gives nil (the connection then has no principal
/// and is refused).
public enum CertificateSubject {
    public static func rfc2253(der: [UInt8]) -> String? {
        var reader = DERReader(bytes: der[...])
        guard let certificate = reader.read(), certificate.tag == 0x30 else { return nil }
        var inner = DERReader(bytes: certificate.content)
        guard let tbs = inner.read(), tbs.tag == 0x30 else { return nil }
        var fields = DERReader(bytes: tbs.content)
        guard var next = fields.read() else { return nil }
        if next.tag == 0xA0 {  // [0] EXPLICIT version
            guard let serial = fields.read() else { return nil }
            next = serial
        }
        guard next.tag == 0x02,  // serialNumber
            let signature = fields.read(), signature.tag == 0x30,  // signature AlgorithmIdentifier
            let issuer = fields.read(), issuer.tag == 0x30,
            let validity = fields.read(), validity.tag == 0x30,
            let subject = fields.read(), subject.tag == 0x30
        else { return nil }
        return name(subject.content)
    }

    /// A Name (SEQUENCE OF RelativeDistinguishedName) in RFC 2253 form.
    static func name(_ content: ArraySlice<UInt8>) -> String? {
        var rdns: [String] = []
        var reader = DERReader(bytes: content)
        while !reader.atEnd {
            guard let set = reader.read(), set.tag == 0x31 else { return nil }
            var attributes: [String] = []
            var setReader = DERReader(bytes: set.content)
            while !setReader.atEnd {
                guard let pair = setReader.read(), pair.tag == 0x30 else { return nil }
                var pairReader = DERReader(bytes: pair.content)
                guard let oid = pairReader.read(), oid.tag == 0x06, let value = pairReader.read(),
                    let dotted = objectIdentifier(oid.content)
                else { return nil }
                if let keyword = keywords[dotted], let text = string(tag: value.tag, value.content) {
                    attributes.append(keyword + "=" + escape(text))
                } else {
                    attributes.append(dotted + "=#" + hex(value.whole))
                }
            }
            rdns.append(attributes.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    static let keywords: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
        "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
    ]

    static func objectIdentifier(_ bytes: ArraySlice<UInt8>) -> String? {
        guard let first = bytes.first else { return nil }
        var parts: [UInt64] = [UInt64(first / 40), UInt64(first % 40)]
        if first >= 80 { parts = [2, UInt64(first) - 80] }
        var value: UInt64 = 0
        for byte in bytes.dropFirst() {
            guard value < (1 << 56) else { return nil }
            value = (value << 7) | UInt64(byte & 0x7F)
            if byte & 0x80 == 0 {
                parts.append(value)
                value = 0
            }
        }
        return parts.map(String.init).joined(separator: ".")
    }

    /// A directory string's text: UTF8String, PrintableString, IA5String, TeletexString (as
    /// Latin-1), BMPString (UCS-2), UniversalString (UCS-4).
    static func string(tag: UInt8, _ bytes: ArraySlice<UInt8>) -> String? {
        switch tag {
        case 0x0C, 0x13, 0x16:
            return String(decoding: bytes, as: UTF8.self)
        case 0x14:
            return String(bytes.map { Character(Unicode.Scalar($0)) })
        case 0x1E:
            guard bytes.count % 2 == 0 else { return nil }
            var units: [UInt16] = []
            var i = bytes.startIndex
            while i < bytes.endIndex {
                units.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
                i += 2
            }
            return String(decoding: units, as: UTF16.self)
        case 0x1C:
            guard bytes.count % 4 == 0 else { return nil }
            var scalars = String.UnicodeScalarView()
            var i = bytes.startIndex
            while i < bytes.endIndex {
                let value =
                    UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8
                    | UInt32(bytes[i + 3])
                guard let scalar = Unicode.Scalar(value) else { return nil }
                scalars.append(scalar)
                i += 4
            }
            return String(scalars)
        default:
            return nil
        }
    }

    /// RFC 2253 section 2.4: `,+"\<>;` escaped anywhere, a leading `#` or space and a trailing space.
    static func escape(_ value: String) -> String {
        var out = ""
        let characters = Array(value)
        for (index, c) in characters.enumerated() {
            if ",+\"\\<>;".contains(c) || (index == 0 && (c == "#" || c == " "))
                || (index == characters.count - 1 && c == " ")
            {
                out.append("\\")
            }
            out.append(c)
        }
        return out
    }

    static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }
}

/// Reads DER tag-length-value elements (single-byte tags, definite lengths).
struct DERReader {
    struct Element {
        var tag: UInt8
        var content: ArraySlice<UInt8>
        /// The element's bytes, tag and length included.
        var whole: ArraySlice<UInt8>
    }

    var bytes: ArraySlice<UInt8>

    var atEnd: Bool { bytes.isEmpty }

    mutating func read() -> Element? {
        let start = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        let tag = bytes[start]
        guard tag & 0x1F != 0x1F else { return nil }
        var index = start + 1
        let first = bytes[index]
        index += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { return nil }
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard bytes.endIndex - index >= length else { return nil }
        let element = Element(tag: tag, content: bytes[index..<index + length], whole: bytes[start..<index + length])
        bytes = bytes[(index + length)...]
        return element
    }
}
