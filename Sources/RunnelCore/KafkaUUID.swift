/// A 128-bit id as Kafka uses for topics, directories, incarnations and clusters.
///
/// Its text form is Kafka's: URL-safe base64 of the 16 bytes, without padding (22 characters).
public struct KafkaUUID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The all-zero id, Kafka's `Uuid.ZERO_UUID` ("no id").
    public static let zero = KafkaUUID(high: 0, low: 0)
    /// Kafka's `Uuid.METADATA_TOPIC_ID` (1): the id of `__cluster_metadata`.
    public static let metadataTopic = KafkaUUID(high: 0, low: 1)

    /// A random version-4 id from the given generator; ids below 100 and ids whose text starts
    /// with "-" are skipped, as Kafka reserves them.
    public static func random(using generator: inout some RandomNumberGenerator) -> KafkaUUID {
        while true {
            var high = generator.next() as UInt64
            var low = generator.next() as UInt64
            high = (high & ~0xF000) | 0x4000
            low = (low & ~(0xC000_0000_0000_0000)) | 0x8000_0000_0000_0000
            let id = KafkaUUID(high: high, low: low)
            if !id.description.hasPrefix("-") { return id }
        }
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: high >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: low >> UInt64(shift)))
        }
        return out
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a KafkaUUID is 16 bytes")
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
        self.init(high: high, low: low)
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public var description: String {
        let input = bytes
        var out = [UInt8]()
        out.reserveCapacity(22)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            for shift in [18, 12, 6, 0] { out.append(Self.alphabet[Int((n >> UInt32(shift)) & 63)]) }
            i += 3
        }
        // 16 = 5*3 + 1: one byte left, two characters, no padding.
        let n = UInt32(input[i]) << 16
        out.append(Self.alphabet[Int((n >> 18) & 63)])
        out.append(Self.alphabet[Int((n >> 12) & 63)])
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses Kafka's 22-character text form; nil when it is not one.
    public init?(_ text: String) {
        let chars = Array(text.utf8)
        guard chars.count == 22 else { return nil }
        var values = [UInt32]()
        values.reserveCapacity(22)
        for c in chars {
            guard let index = Self.alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt32(index))
        }
        var out = [UInt8]()
        var i = 0
        while i + 4 <= 20 {
            let n = values[i] << 18 | values[i + 1] << 12 | values[i + 2] << 6 | values[i + 3]
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
            i += 4
        }
        let n = values[20] << 18 | values[21] << 12
        guard n & 0xFFFF == 0 else { return nil }
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        self.init(bytes: out)
    }

    public static func < (lhs: KafkaUUID, rhs: KafkaUUID) -> Bool {
        lhs.high != rhs.high ? lhs.high < rhs.high : lhs.low < rhs.low
    }
}
