// Record batches as the consumer reads them: records built with RecordBatches.build come back
// field for field (null and empty keys and values, headers), CRC32C damage is reported at the
// batch that has it, control batches carry no records, a trailing partial batch is left out,
// log-append-time batches give their records the batch's timestamp, and a gzip batch (built
// here with a stored-block deflate stream around the records) and a batch of each codec decode
// like an uncompressed one.
import NIOCore
import RunnelWire
import RunnelCodecs
import Testing
@testable import RunnelClient

@Suite struct RecordDecodingTests {
    static let records: [Record] = [
        Record(
            offset: 10, timestamp: 1000, key: ByteBuffer(string: "k1"), value: ByteBuffer(string: "v1"),
            headers: [RecordHeader(key: "h", value: ByteBuffer(string: "x")), RecordHeader(key: "n", value: nil)]),
        Record(offset: 11, timestamp: 1005, key: nil, value: ByteBuffer(string: "")),
        Record(offset: 12, timestamp: 999, key: ByteBuffer(), value: nil),
    ]

    @Test func roundTripOfBuiltBatches() {
        var two = RecordBatches.build(records: Self.records)
        var second = RecordBatches.build(records: [
            Record(offset: 13, timestamp: 2000, key: nil, value: ByteBuffer(string: "last"))
        ])
        two.writeBuffer(&second)
        let (batches, failure) = FetchedRecords.decode(two)
        #expect(failure == nil)
        #expect(batches.count == 2)
        #expect(batches[0].records == Self.records)
        #expect(batches[0].header.nextOffset == 13)
        #expect(batches[1].records.map(\.offset) == [13])
    }

    @Test func partialTrailingBatchIsLeftOut() {
        var buffer = RecordBatches.build(records: Self.records)
        let whole = buffer.readableBytes
        let again = RecordBatches.build(records: Self.records)
        buffer.writeBytes(again.readableBytesView.prefix(again.readableBytes - 3))
        #expect(buffer.readableBytes > whole)
        let (batches, failure) = FetchedRecords.decode(buffer)
        #expect(failure == nil && batches.count == 1)
    }

    @Test func crcDamageStopsAtTheDamagedBatch() {
        var buffer = RecordBatches.build(records: [Record(offset: 0, timestamp: 1, value: ByteBuffer(string: "ok"))])
        var bad = RecordBatches.build(records: Self.records)
        bad.setInteger(UInt8(0x42), at: bad.readerIndex + bad.readableBytes - 1)
        buffer.writeBuffer(&bad)
        let (batches, failure) = FetchedRecords.decode(buffer)
        #expect(batches.count == 1)
        #expect(failure?.baseOffset == 10)
        #expect(failure?.description.contains("CRC32C") == true)
    }

    @Test func controlBatchesHaveNoRecords() {
        let control = RecordBatches.build(
            records: [
                Record(
                    offset: 5, timestamp: 1, key: ByteBuffer(bytes: [0, 0, 0, 0]),
                    value: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0]))
            ],
            attributes: 0x20 | 0x10, producerId: 7, producerEpoch: 0)
        let (batches, failure) = FetchedRecords.decode(control)
        #expect(failure == nil)
        #expect(batches.count == 1 && batches[0].header.isControl && batches[0].records.isEmpty)
        #expect(batches[0].header.nextOffset == 6)
    }

    @Test func logAppendTimeGivesTheBatchTimestamp() {
        var buffer = RecordBatches.build(records: Self.records)
        RecordBatches.setLogAppendTime(&buffer, batchAt: buffer.readerIndex, 77_777)
        let (batches, _) = FetchedRecords.decode(buffer)
        #expect(batches[0].records.map(\.timestamp) == [77_777, 77_777, 77_777])
    }

    /// A gzip member holding `payload` in stored deflate blocks (the CRC-32 trailer is left zero:
    /// the batch's CRC32C is what the consumer checks).
    static func storedGzip(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
        var rest = payload[...]
        repeat {
            let chunk = rest.prefix(65535)
            rest = rest.dropFirst(chunk.count)
            let n = UInt16(chunk.count)
            out += [rest.isEmpty ? 1 : 0, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8(~n >> 8)] + chunk
        } while !rest.isEmpty
        let size = UInt32(payload.count)
        let crc = crc32(payload)
        return out + [
            UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc >> 16 & 0xff), UInt8(crc >> 24),
            UInt8(size & 0xff), UInt8(size >> 8 & 0xff), UInt8(size >> 16 & 0xff), UInt8(size >> 24),
        ]
    }

    /// The CRC-32 (IEEE, reflected) gzip's trailer carries, bit by bit: slow and plain, for tests.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// Rewrites an uncompressed batch as a `codec` batch whose payload is `compress(records)`.
    static func recompress(_ batch: ByteBuffer, codec: Int16, _ compress: ([UInt8]) -> [UInt8]) -> ByteBuffer {
        let header = RecordBatchHeader(batch, at: batch.readerIndex)!
        let payload = Array(batch.readableBytesView.dropFirst(RecordBatchHeader.size))
        var out = ByteBuffer(bytes: batch.readableBytesView.prefix(RecordBatchHeader.size))
        out.writeBytes(compress(payload))
        out.setInteger(
            Int32(out.readableBytes - RecordBatchHeader.logOverhead), at: RecordBatchHeader.Offsets.batchLength)
        out.setInteger(header.attributes | codec, at: RecordBatchHeader.Offsets.attributes)
        out.setInteger(
            RecordBatches.crc32c(
                out, at: RecordBatchHeader.crcStart, length: out.readableBytes - RecordBatchHeader.crcStart),
            at: RecordBatchHeader.Offsets.crc)
        return out
    }

    @Test func gzipAndLz4BatchesDecodeLikeUncompressedOnes() {
        let plain = RecordBatches.build(records: Self.records)
        let gzip = Self.recompress(plain, codec: 1, Self.storedGzip)
        let (g, gFailure) = FetchedRecords.decode(gzip)
        #expect(gFailure == nil)
        #expect(g.first?.header.compression == .gzip)
        #expect(g.first?.records == Self.records)
        // lz4: one stored block in a frame.
        let lz4 = Self.recompress(plain, codec: 3) { payload in
            let n = UInt32(payload.count) | 0x8000_0000
            return [
                0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff),
                UInt8(n >> 24),
            ] + payload + [0, 0, 0, 0]
        }
        #expect(FetchedRecords.decode(lz4).batches.first?.records == Self.records)
    }

    @Test func everyCodecDecodesLikeUncompressed() throws {
        let plain = RecordBatches.build(records: Self.records)
        for codec in Codec.allCases {
            let packed = try RecordBatches.compress(plain, with: codec)
            let (batches, failure) = FetchedRecords.decode(packed)
            #expect(failure == nil, "\(codec)")
            #expect(batches.first?.header.compression?.codec == codec)
            #expect(batches.first?.records == Self.records, "\(codec)")
        }
    }

    @Test func aCorruptPayloadIsReportedNotSkipped() throws {
        let plain = RecordBatches.build(records: Self.records)
        let zstd = Self.recompress(plain, codec: 4) { $0 }  // marked zstd, but not compressed
        let (batches, failure) = FetchedRecords.decode(zstd)
        #expect(batches.isEmpty)
        #expect(failure?.description.contains("zstd") == true)
    }
}
