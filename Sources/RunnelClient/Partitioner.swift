/// Kafka's default partitioning of keyed records: `toPositive(murmur2(key)) % partitions`, with
/// murmur2 exactly as Kafka's `Utils.murmur2` (seed 0x9747b28c, little-endian 4-byte words, the
/// tail folded in before the final mix), so a key lands where the Java client and librdkafka's
/// `murmur2_random` partitioner put it.
public enum Partitioner {
    /// Kafka's 32-bit murmur2 of `bytes`, as a signed Java int.
    public static func murmur2<Bytes: Collection>(_ bytes: Bytes) -> Int32 where Bytes.Element == UInt8 {
        let data = Array(bytes)
        let length = data.count
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h = seed ^ UInt32(truncatingIfNeeded: length)
        let words = length / 4
        for i in 0..<words {
            let base = i * 4
            var k =
                UInt32(data[base]) | UInt32(data[base + 1]) << 8 | UInt32(data[base + 2]) << 16 | UInt32(data[base + 3])
                << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = words * 4
        switch length % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default:
            break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on Int32.min).
    public static func toPositive(_ n: Int32) -> Int32 { n & 0x7fff_ffff }

    /// The partition Kafka's default partitioner picks for a non-null key.
    public static func partition<Bytes: Collection>(forKey key: Bytes, partitions: Int32) -> Int32
    where Bytes.Element == UInt8 {
        precondition(partitions > 0, "a topic has at least one partition")
        return toPositive(murmur2(key)) % partitions
    }
}
