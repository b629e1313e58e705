// The client settings the CLI passes through: acks, bootstrap address lists, and the
// producer's choice of partition (explicit, murmur2 of the key, round-robin otherwise).
import NIOCore
import Testing
@testable import RunnelClient

@Suite struct ArgumentTests {
    @Test func acks() throws {
        #expect(try Acks(parsing: "0") == .none)
        #expect(try Acks(parsing: "1") == .leader)
        #expect(try Acks(parsing: "all") == .all)
        #expect(try Acks(parsing: "ALL") == .all)
        #expect(try Acks(parsing: "-1") == .all)
        for bad in ["2", "", "some", "-2"] {
            #expect(throws: ClientError.self) { try Acks(parsing: bad) }
        }
        #expect((try? Acks(parsing: "2")).map { "\($0)" } == nil)
    }

    @Test func bootstrapLists() throws {
        #expect(
            try BrokerAddress.parseList("a:1, b:2") == [
                BrokerAddress(host: "a", port: 1), BrokerAddress(host: "b", port: 2),
            ])
        #expect(try BrokerAddress.parseList("[::1]:9092") == [BrokerAddress(host: "::1", port: 9092)])
        #expect(BrokerAddress(host: "::1", port: 9092).description == "[::1]:9092")
        for bad in ["", "host", "host:0", "host:70000", ":9092", "a:1,", "a:x"] {
            #expect(throws: ClientError.self, "\(bad)") { try BrokerAddress.parseList(bad) }
        }
    }

    @Test func producerPartitioning() async throws {
        let client = try KafkaClient(bootstrapServers: "127.0.0.1:1")
        let producer = Producer(client: client, topic: "t")
        let keyed = ProducerRecord(key: ByteBuffer(string: "21"), value: nil, timestamp: 0)
        let pinned = ProducerRecord(key: ByteBuffer(string: "21"), value: nil, partition: 2, timestamp: 0)
        let keyless = ProducerRecord(key: nil, value: nil, timestamp: 0)
        let chosen = await producer.partitions(
            for: [keyed, pinned, keyless, keyless, keyless, keyless], partitionCount: 4)
        #expect(chosen[0] == Partitioner.partition(forKey: Array("21".utf8), partitions: 4))
        #expect(chosen[1] == 2)
        // Round-robin: consecutive partitions from wherever it started.
        #expect(
            chosen[3] == (chosen[2] + 1) % 4 && chosen[4] == (chosen[2] + 2) % 4 && chosen[5] == (chosen[2] + 3) % 4)
        await client.close()
    }
}
