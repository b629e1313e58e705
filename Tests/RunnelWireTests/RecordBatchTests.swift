// Record batches are validated and stored as received: CRC32C (hardware and portable agree with
// the standard check value), size limits, magic, and the base offset rewrite that leaves the CRC
// intact because it lies outside the checksummed range.
import CRC32C
import NIOCore
import Testing
@testable import RunnelWire

@Suite("Record batches")
struct RecordBatchTests {
    @Test("CRC32C matches the standard check value on both paths and across chunkings")
    func crc() {
        let check = Array("123456789".utf8)
        #expect(runnel_crc32c(0, check, check.count) == 0xE306_9283)
        #expect(runnel_crc32c_portable(0, check, check.count) == 0xE306_9283)
        var bytes = [UInt8](repeating: 0, count: 100_000)
        var x: UInt32 = 12345
        for i in bytes.indices {
            x = x &* 1_103_515_245 &+ 12345
            bytes[i] = UInt8(truncatingIfNeeded: x >> 16)
        }
        let whole = runnel_crc32c(0, bytes, bytes.count)
        #expect(whole == runnel_crc32c_portable(0, bytes, bytes.count))
        // Extending a CRC piece by piece gives the same result (odd offsets, long and short pieces).
        var crc: UInt32 = 0
        var offset = 0
        for size in [1, 7, 30_000, 3, 25_000, 13] {
            bytes.withUnsafeBufferPointer { crc = runnel_crc32c(crc, $0.baseAddress! + offset, size) }
            offset += size
        }
        bytes.withUnsafeBufferPointer { crc = runnel_crc32c(crc, $0.baseAddress! + offset, bytes.count - offset) }
        #expect(crc == whole)
    }

    func sampleBatch(records: Int = 3) -> ByteBuffer {
        RecordBatches.build(
            records: (0..<records).map { i in
                Record(
                    offset: Int64(i), timestamp: 1_700_000_000_000 + Int64(i), key: ByteBuffer(string: "k\(i)"),
                    value: ByteBuffer(string: "value \(i)"),
                    headers: [RecordHeader(key: "h", value: ByteBuffer(string: "x"))])
            })
    }

    @Test("a built batch validates and decodes back")
    func buildAndDecode() throws {
        let batch = sampleBatch()
        let infos = try RecordBatches.validate(batch, maxBatchBytes: 1_000_000).get()
        #expect(infos.count == 1)
        #expect(infos[0].header.recordCount == 3)
        let decoded = try RecordBatches.decode(batch)
        #expect(decoded[0].records.map { String(buffer: $0.value!) } == ["value 0", "value 1", "value 2"])
        #expect(decoded[0].records[1].headers == [RecordHeader(key: "h", value: ByteBuffer(string: "x"))])
    }

    @Test("the base offset and leader epoch are rewritten without touching the CRC")
    func rewrite() throws {
        var batch = sampleBatch()
        RecordBatches.setBaseOffset(&batch, batchAt: 0, 1_000)
        RecordBatches.setPartitionLeaderEpoch(&batch, batchAt: 0, 42)
        let infos = try RecordBatches.validate(batch, maxBatchBytes: 1_000_000).get()
        #expect(infos[0].header.baseOffset == 1_000)
        #expect(try RecordBatches.decode(batch)[0].records.map(\.offset) == [1_000, 1_001, 1_002])
        RecordBatches.setLogAppendTime(&batch, batchAt: 0, 5)
        let after = try RecordBatches.validate(batch, maxBatchBytes: 1_000_000).get()
        #expect(after[0].header.isLogAppendTime && after[0].header.maxTimestamp == 5)
    }

    @Test("corrupt, truncated, oversized and old-magic batches are refused with Kafka's codes")
    func refusals() {
        var corrupt = sampleBatch()
        corrupt.setInteger(UInt8(0xFF) ^ corrupt.getInteger(at: 70, as: UInt8.self)!, at: 70)
        #expect(RecordBatches.validate(corrupt, maxBatchBytes: 1_000_000).failureCode == .corruptMessage)
        let whole = sampleBatch()
        #expect(
            RecordBatches.validate(whole.getSlice(at: 0, length: whole.readableBytes - 1)!, maxBatchBytes: 1_000_000)
                .failureCode == .corruptMessage)
        #expect(
            RecordBatches.validate(whole.getSlice(at: 0, length: 30)!, maxBatchBytes: 1_000_000).failureCode
                == .corruptMessage)
        #expect(RecordBatches.validate(whole, maxBatchBytes: 50).failureCode == .messageTooLarge)
        var oldMagic = sampleBatch()
        oldMagic.setInteger(Int8(1), at: 16)
        #expect(RecordBatches.validate(oldMagic, maxBatchBytes: 1_000_000).failureCode == .invalidRecord)
        #expect(RecordBatches.validate(ByteBuffer(), maxBatchBytes: 1_000_000).failureCode == .invalidRecord)
        var control = RecordBatches.build(records: [Record(value: ByteBuffer(string: "c"))], attributes: 0x20)
        #expect(RecordBatches.validate(control, maxBatchBytes: 1_000_000).failureCode == .invalidRecord)
        control.moveReaderIndex(to: 0)
    }

    @Test("compressed batches are stored as they come: validated by CRC only, never opened")
    func compressedPassThrough() throws {
        // A batch whose attributes say zstd and whose body is opaque bytes: valid as long as its CRC is.
        var batch = sampleBatch()
        batch.setInteger(Int16(4), at: RecordBatchHeader.Offsets.attributes)
        let crc = RecordBatches.crc32c(
            batch, at: RecordBatchHeader.crcStart, length: batch.readableBytes - RecordBatchHeader.crcStart)
        batch.setInteger(crc, at: RecordBatchHeader.Offsets.crc)
        let infos = try RecordBatches.validate(batch, maxBatchBytes: 1_000_000).get()
        #expect(infos[0].header.compression == .zstd)
    }
}

extension Result where Failure == BatchValidationError {
    var failureCode: ErrorCode? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
}
