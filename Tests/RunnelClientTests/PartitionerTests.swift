// Kafka's default partitioner: murmur2 exactly as Kafka's Utils.murmur2, checked against the
// vectors of apache/kafka's UtilsTest.testMurmur2, and `toPositive(murmur2(key)) % partitions`.
import Testing
@testable import RunnelClient

@Suite struct PartitionerTests {
    /// UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    @Test(arguments: [
        ("21", Int32(-973_932_308)),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ])
    func murmur2MatchesKafka(key: String, hash: Int32) {
        #expect(Partitioner.murmur2(Array(key.utf8)) == hash)
    }

    @Test func everyTailLengthAndTheEmptyKey() {
        // Lengths 0-4 exercise each tail case; values from the same algorithm in Kafka's form
        // (akka's Murmur2Spec lists them as Kafka's outputs for "1" ... "12345").
        #expect(Partitioner.murmur2(Array("1".utf8)) == -1_993_445_489)
        #expect(Partitioner.murmur2(Array("12".utf8)) == 126_087_238)
        #expect(Partitioner.murmur2(Array("123".utf8)) == -267_702_483)
        #expect(Partitioner.murmur2(Array("1234".utf8)) == -1_614_185_708)
        #expect(Partitioner.murmur2(Array("12345".utf8)) == -1_188_365_604)
        // The empty key (the Java client never hashes one; the value is the algorithm's, from a
        // Python rendering of Utils.murmur2 that reproduces the vectors above).
        #expect(Partitioner.murmur2([UInt8]()) == 275_646_681)
    }

    @Test func toPositiveClearsTheSignBitOnly() {
        #expect(Partitioner.toPositive(-1) == Int32.max)
        #expect(Partitioner.toPositive(Int32.min) == 0)
        #expect(Partitioner.toPositive(5) == 5)
    }

    @Test func partitionIsToPositiveModulo() {
        // murmur2("21") = -973932308; toPositive = 1173551340; % 4 = 0, % 7 = 1173551340 % 7.
        #expect(Partitioner.partition(forKey: Array("21".utf8), partitions: 4) == 1_173_551_340 % 4)
        #expect(Partitioner.partition(forKey: Array("21".utf8), partitions: 7) == 1_173_551_340 % 7)
        for n in Int32(1)...64 {
            let p = Partitioner.partition(forKey: Array("key-\(n)".utf8), partitions: n)
            #expect(p >= 0 && p < n)
        }
    }
}
