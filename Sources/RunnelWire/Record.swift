import CRC32C
import NIOCore
import RunnelCore

/// A record header (key and nullable value).
public struct RecordHeader: Sendable, Equatable {
    public var key: String
    public var value: ByteBuffer?
    public init(key: String, value: ByteBuffer?) {
        self.key = key
        self.value = value
    }
}

/// One record of an uncompressed v2 batch, with absolute offset and timestamp.
public struct Record: Sendable, Equatable {
    public var offset: Int64
    public var timestamp: Int64
    public var key: ByteBuffer?
    public var value: ByteBuffer?
    public var headers: [RecordHeader]

    public init(
        offset: Int64 = 0, timestamp: Int64 = 0, key: ByteBuffer? = nil, value: ByteBuffer?,
        headers: [RecordHeader] = []
    ) {
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A decoded batch: header fields and, for uncompressed batches, the records.
public struct DecodedBatch: Sendable, Equatable {
    public var header: RecordBatchHeader
    public var records: [Record]

    public init(header: RecordBatchHeader, records: [Record]) {
        self.header = header
        self.records = records
    }
}

extension RecordBatches {
    /// Builds an uncompressed v2 batch. `records[i].offset` and timestamps are taken as given;
    /// the base offset is the first record's offset.
    public static func build(
        records: [Record],
        attributes: Int16 = 0,
        partitionLeaderEpoch: Int32 = -1,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        baseSequence: Int32 = -1,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        precondition(!records.isEmpty, "a record batch holds at least one record")
        let baseOffset = records[0].offset
        let baseTimestamp = records.map(\.timestamp).min()!
        let maxTimestamp = records.map(\.timestamp).max()!
        var body = encodeRecords(records, baseOffset: baseOffset, baseTimestamp: baseTimestamp, allocator: allocator)
        var out = allocator.buffer(capacity: RecordBatchHeader.size + body.readableBytes)
        out.writeInteger(baseOffset)
        out.writeInteger(Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + body.readableBytes))
        out.writeInteger(partitionLeaderEpoch)
        out.writeInteger(Int8(2))
        out.writeInteger(UInt32(0))  // crc, set below
        out.writeInteger(attributes)
        out.writeInteger(Int32(records.last!.offset - baseOffset))
        out.writeInteger(baseTimestamp)
        out.writeInteger(maxTimestamp)
        out.writeInteger(producerId)
        out.writeInteger(producerEpoch)
        out.writeInteger(baseSequence)
        out.writeInteger(Int32(records.count))
        out.writeBuffer(&body)
        let crc = crc32c(out, at: RecordBatchHeader.crcStart, length: out.readableBytes - RecordBatchHeader.crcStart)
        out.setInteger(crc, at: RecordBatchHeader.Offsets.crc)
        return out
    }

    /// The records of a v2 batch as they lie after its header (uncompressed), each encoded with
    /// its offset and timestamp as deltas from `baseOffset` and `baseTimestamp`.
    public static func encodeRecords(
        _ records: [Record], baseOffset: Int64, baseTimestamp: Int64,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var body = WireWriter(allocator: allocator, capacity: 64 * records.count)
        for record in records {
            var r = WireWriter(allocator: allocator, capacity: 64)
            r.writeInt8(0)
            r.writeVarlong(record.timestamp &- baseTimestamp)
            r.writeVarint(Int32(record.offset - baseOffset))
            writeVarBytes(&r, record.key)
            writeVarBytes(&r, record.value)
            r.writeVarint(Int32(record.headers.count))
            for header in record.headers {
                r.writeVarint(Int32(header.key.utf8.count))
                r.buffer.writeString(header.key)
                writeVarBytes(&r, header.value)
            }
            body.writeVarint(Int32(r.buffer.readableBytes))
            var bytes = r.buffer
            body.buffer.writeBuffer(&bytes)
        }
        return body.buffer
    }

    private static func writeVarBytes(_ w: inout WireWriter, _ bytes: ByteBuffer?) {
        guard var bytes else { return w.writeVarint(-1) }
        w.writeVarint(Int32(bytes.readableBytes))
        w.buffer.writeBuffer(&bytes)
    }

    private static func readVarBytes(_ r: inout WireReader) throws -> ByteBuffer? {
        let n = Int(try r.readVarint())
        if n < 0 { return nil }
        guard n <= r.remaining else { throw WireError.lengthTooLarge("record field") }
        return r.buffer.readSlice(length: n)!
    }

    /// Decodes every batch in `buffer`, compressed ones inflated. A trailing partial batch (as
    /// Fetch may return) is ignored.
    public static func decode(_ buffer: ByteBuffer) throws -> [DecodedBatch] {
        var out: [DecodedBatch] = []
        var index = buffer.readerIndex
        while let header = RecordBatchHeader(buffer, at: index), header.totalBytes <= buffer.writerIndex - index {
            out.append(DecodedBatch(header: header, records: try records(buffer, batchAt: index, header: header)))
            index += header.totalBytes
        }
        return out
    }

    /// Decodes the `header.recordCount` records of a batch from its (uncompressed) record bytes:
    /// the bytes after the 61-byte header, or what a compressed batch's payload inflates to.
    public static func decodeRecords(_ body: ByteBuffer, header: RecordBatchHeader) throws -> [Record] {
        var records: [Record] = []
        var r = WireReader(body)
        for _ in 0..<max(0, header.recordCount) {
            let length = Int(try r.readVarint())
            guard length >= 0, length <= r.remaining else { throw WireError.lengthTooLarge("record") }
            var rr = WireReader(r.buffer.readSlice(length: length)!)
            _ = try rr.readInt8()
            let timestampDelta = try rr.readVarlong()
            let offsetDelta = try rr.readVarint()
            let key = try readVarBytes(&rr)
            let value = try readVarBytes(&rr)
            let headerCount = try rr.readVarint()
            guard headerCount >= 0, Int(headerCount) <= rr.remaining else {
                throw WireError.invalidValue("record header count")
            }
            var headers: [RecordHeader] = []
            for _ in 0..<headerCount {
                let keyLength = Int(try rr.readVarint())
                guard keyLength >= 0, keyLength <= rr.remaining else { throw WireError.lengthTooLarge("header key") }
                let key = rr.buffer.readString(length: keyLength)!
                headers.append(RecordHeader(key: key, value: try readVarBytes(&rr)))
            }
            records.append(
                Record(
                    offset: header.baseOffset + Int64(offsetDelta),
                    timestamp: header.baseTimestamp + timestampDelta,
                    key: key, value: value, headers: headers))
        }
        return records
    }
}
