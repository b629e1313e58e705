// The records of `__transaction_state` byte for byte in Kafka's layout (TransactionLogKey v0,
// TransactionLogValue v0 and v1; the expected bytes were laid out by hand from Kafka's schema),
// the coordinator partition of an id (Java's String.hashCode and Utils.abs), the state table,
// and the producer-id pool.
import NIOCore
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelTransactions

func hex(_ b: ByteBuffer) -> String { b.readableBytesView.map { String(format: "%02x", $0) }.joined() }

func bytes(_ hex: String) -> ByteBuffer {
    var b = ByteBuffer()
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        b.writeInteger(UInt8(hex[i..<j], radix: 16)!)
        i = j
    }
    return b
}

@Suite("__transaction_state records")
struct TransactionLogTests {
    let ongoing = TransactionMetadata(
        transactionalId: "t", producerId: 1000, previousProducerId: 999, producerEpoch: 2, timeoutMs: 60_000,
        state: .ongoing,
        partitions: [TopicPartition("b", 3), TopicPartition("a", 1), TopicPartition("a", 0)], startTimestampMs: 4000,
        lastUpdateTimestampMs: 5000, clientTransactionVersion: .v2)

    @Test("the key is version 0 and the id as an int16-length string")
    func key() {
        #expect(hex(TransactionLog.encodeKey("t")) == "0000000174")
        #expect(TransactionLog.decodeKey(bytes("0000000174")) == "t")
        #expect(TransactionLog.decodeKey(bytes("0001000174")) == nil, "another key version is not ours")
    }

    @Test("value version 0: fixed-width fields, partitions grouped by topic with int32 lengths")
    func valueV0() throws {
        let encoded = TransactionLog.encodeValue(ongoing, version: 0)
        #expect(
            hex(encoded)
                == "000000000000000003e800020000ea600100000002000161000000020000000000000001000162000000010000000300000000000013880000000000000fa0"
        )
        var back = try TransactionLog.decodeValue(encoded, transactionalId: "t")
        #expect(back.previousProducerId == -1 && back.clientTransactionVersion == .v0, "version 0 has no tagged fields")
        back.previousProducerId = 999
        back.clientTransactionVersion = .v2
        #expect(back == ongoing)
    }

    @Test("value version 1: compact arrays and strings, tagged previous producer id and client transaction version")
    func valueV1() throws {
        let encoded = TransactionLog.encodeValue(ongoing, version: 1)
        #expect(
            hex(encoded)
                == "000100000000000003e800020000ea600103026103000000000000000100026202000000030000000000000013880000000000000fa002000800000000000003e702020002"
        )
        #expect(try TransactionLog.decodeValue(encoded, transactionalId: "t") == ongoing)
    }

    @Test("an Empty transaction writes null partitions")
    func emptyValue() throws {
        let empty = TransactionMetadata(
            transactionalId: "t", producerId: 1000, producerEpoch: 0, timeoutMs: 60_000, state: .empty,
            lastUpdateTimestampMs: 5000)
        let encoded = TransactionLog.encodeValue(empty, version: 0)
        #expect(hex(encoded) == "000000000000000003e800000000ea6000ffffffff0000000000001388ffffffffffffffff")
        #expect(try TransactionLog.decodeValue(encoded, transactionalId: "t") == empty)
        #expect(
            try TransactionLog.decodeValue(TransactionLog.encodeValue(empty, version: 1), transactionalId: "t") == empty
        )
    }

    @Test("an unknown value version or status is an error naming the id; a null value is a tombstone")
    func decodeErrors() throws {
        #expect(throws: TransactionLog.DecodeError.self) {
            try TransactionLog.decodeValue(bytes("0002"), transactionalId: "t")
        }
        var bad = TransactionLog.encodeValue(ongoing, version: 0)
        bad.setInteger(Int8(9), at: 2 + 8 + 2 + 4)
        #expect(throws: TransactionLog.DecodeError.self) { try TransactionLog.decodeValue(bad, transactionalId: "t") }
        #expect(
            try TransactionLog.decodeRecord(key: TransactionLog.encodeKey("t"), value: nil)
                == .init(transactionalId: "t", value: nil))
    }

    @Test("the coordinator partition is abs(Java hashCode) mod the partition count, abs(Int.min) being 0")
    func partitionFor() {
        #expect(TransactionLog.partition(for: "t", partitions: 50) == 16)
        #expect(TransactionLog.partition(for: "my-txn", partitions: 50) == 45, "a negative hash code")
        #expect(TransactionLog.partition(for: "transactional-id-7", partitions: 50) == 47)
        #expect(TransactionLog.partition(for: "polygenelubricants", partitions: 50) == 0, "hashCode Int.min")
    }

    @Test("the legal transitions are Kafka's")
    func transitions() {
        let table: [TransactionState: Set<TransactionState>] = [
            .empty: [.empty, .completeCommit, .completeAbort],
            .ongoing: [.ongoing, .empty, .completeCommit, .completeAbort],
            .prepareCommit: [.ongoing],
            .prepareAbort: [.ongoing, .prepareEpochFence, .empty, .completeCommit, .completeAbort],
            .completeCommit: [.prepareCommit],
            .completeAbort: [.prepareAbort],
            .dead: [.empty, .completeAbort, .completeCommit],
            .prepareEpochFence: [.ongoing],
        ]
        for state in TransactionState.allCases { #expect(state.validPreviousStates == table[state], "\(state)") }
        #expect(
            TransactionState.allCases.map(\.description) == [
                "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
                "CompleteAbort", "Dead", "PrepareEpochFence",
            ])
    }

    @Test("producer ids: the next block is fetched once 90% of the current one is used, and taken when it runs out")
    func producerIdPool() {
        var pool = ProducerIdPool()
        #expect(pool.take() == (nil, true))
        #expect(pool.take() == (nil, false), "one fetch at a time")
        pool.arrived(start: 0, count: 10)
        for i in 0..<8 { #expect(pool.take() == (Int64(i), false)) }
        #expect(pool.take() == (8, true))
        pool.arrived(start: 100, count: 10)
        #expect(pool.take() == (9, false))
        #expect(pool.take() == (100, false))
    }
}
