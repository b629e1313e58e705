// The produce path's record checks (KIP-467): which records a client may not append, each named
// by its index, as Kafka's LogValidator reports them in a ProduceResponse's record_errors.
import NIOCore
import RunnelCodecs
import RunnelCore
import RunnelLog
import RunnelWire
import Testing
@testable import RunnelBroker

private func batch(
    _ records: [(key: String?, timestamp: Int64)], attributes: Int16 = 0
) -> (ByteBuffer, [BatchInfo]) {
    let built = records.enumerated().map { i, r in
        Record(
            offset: Int64(i), timestamp: r.timestamp, key: r.key.map { ByteBuffer(string: $0) },
            value: ByteBuffer(string: "v\(i)"))
    }
    let payload = RecordBatches.build(records: built, attributes: attributes)
    return (payload, try! RecordBatches.validate(payload, maxBatchBytes: 1_000_000).get())
}

@Suite("Record validation on produce")
struct RecordValidationTests {
    let tp = TopicPartition("t", 0)
    let now: Int64 = 1_000_000

    func check(_ b: (ByteBuffer, [BatchInfo]), _ config: LogConfig) -> RecordRejection? {
        Broker.invalidRecords(b.0, batches: b.1, tp: tp, config: config, nowMs: now)
    }

    @Test("every keyless record of a compacted topic's batch is named; a delete topic takes them")
    func keyless() {
        var compacted = LogConfig()
        compacted.compactEnabled = true
        let records = batch([("a", now), (nil, now), ("c", now), (nil, now)])
        let rejection = check(records, compacted)
        #expect(rejection?.code == .invalidRecord)
        #expect(rejection?.recordErrors.map(\.batchIndex) == [1, 3])
        #expect(rejection?.message.hasPrefix("One or more records have been rejected due to 2 record errors") == true)
        #expect(check(records, LogConfig()) == nil)
        #expect(check(batch([("a", now)]), compacted) == nil)
    }

    @Test("timestamps outside message.timestamp.before/after.max.ms fail the batch with INVALID_TIMESTAMP")
    func timestamps() {
        var config = LogConfig()
        config.timestampBeforeMaxMs = 1_000
        config.timestampAfterMaxMs = 500
        let records = batch([("a", now - 2_000), ("b", now), ("c", now + 400), ("d", now + 501)])
        let rejection = check(records, config)
        #expect(rejection?.code == .invalidTimestamp)
        #expect(rejection?.recordErrors.map(\.batchIndex) == [0, 3])
        #expect(rejection?.recordErrors.first?.batchIndexErrorMessage?.contains("is out of range") == true)
        #expect(check(batch([("a", now - 999), ("b", now + 500)]), config) == nil)
        // A LogAppendTime topic stamps the records itself: no bound applies.
        config.logAppendTime = true
        #expect(check(records, config) == nil)
    }

    @Test("a compressed batch is decompressed to check its records", arguments: Codec.allCases)
    func compressed(codec: Codec) throws {
        var config = LogConfig()
        config.timestampAfterMaxMs = 500
        config.compactEnabled = true
        let (plain, _) = batch([("a", now), (nil, now + 900), ("c", now)])
        let packed = try RecordBatches.compress(plain, with: codec)
        let infos = try RecordBatches.validate(packed, maxBatchBytes: 1_000_000).get()
        let rejection = check((packed, infos), config)
        #expect(rejection?.code == .invalidTimestamp)
        #expect(rejection?.recordErrors.map(\.batchIndex) == [1, 1], "no key, and too new")
        // Marked compressed but not: refused as corrupt, not let through unchecked.
        let fake = batch([("a", now)], attributes: codec.rawValue)
        #expect(check(fake, config)?.code == .corruptMessage)
        // Nothing to check on a plain delete topic: the batch is not decompressed at all.
        #expect(check(fake, LogConfig()) == nil)
    }

    @Test("a producer may not set LogAppendTime itself")
    func logAppendTimeFromProducer() {
        let rejection = check(batch([("a", now)], attributes: 0x8), LogConfig())
        #expect(rejection?.code == .invalidTimestamp && rejection?.recordErrors.map(\.batchIndex) == [0])
    }

    @Test("compression.type rebuilds a batch in the topic's codec, keeping offsets, timestamps and producer fields")
    func recompression() throws {
        let records = (0..<20).map {
            Record(
                offset: Int64($0), timestamp: now + Int64($0), key: ByteBuffer(string: "k\($0)"),
                value: ByteBuffer(string: String(repeating: "v", count: 50)))
        }
        let plain = RecordBatches.build(records: records, producerId: 42, producerEpoch: 3, baseSequence: 7)
        let snappy = try RecordBatches.compress(plain, with: .snappy)
        let infos = try RecordBatches.validate(snappy, maxBatchBytes: 1_000_000).get()
        var config = LogConfig()
        for target in [CompressionCodec.zstd, .none, .gzip] {
            config.compression = target
            let (out, batches) = try Broker.recompressed(snappy, batches: infos, to: target, config: config)
            let header = batches[0].header
            #expect(header.compression == target)
            #expect(header.producerId == 42 && header.producerEpoch == 3 && header.baseSequence == 7)
            #expect(header.maxTimestamp == now + 19 && header.lastOffsetDelta == 19)
            #expect(try RecordBatches.records(out, batchAt: 0, header: header) == records)
        }
        // Rebuilt larger than max.message.bytes: refused as Kafka refuses it.
        config.maxMessageBytes = 200
        #expect(throws: BatchValidationError.self) {
            try Broker.recompressed(snappy, batches: infos, to: CompressionCodec.none, config: config)
        }
    }
}
