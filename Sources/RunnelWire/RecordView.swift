import CRC32C
import NIOCore
import RunnelCore

/// One record of an uncompressed v2 batch, located in place: where its bytes lie and the fields
/// the log cleaner and the produce path look at, without copying key or value.
///
/// Record layout: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
/// key (varint length, -1 for null), value (same), header count varint, headers.
public struct RecordView: Sendable, Equatable {
    /// Index of the record's length varint in the buffer it was read from.
    public var start: Int
    /// Index just after the record's last byte.
    public var end: Int
    /// The record's attributes byte (unused by Kafka so far, kept as it is).
    public var attributes: Int8
    /// Timestamp minus the batch's base timestamp.
    public var timestampDelta: Int64
    /// Offset minus the batch's base offset.
    public var offsetDelta: Int32
    /// Index of the offset delta varint: from here to `end` a record is the same whatever its
    /// batch's base timestamp, so a rewrite copies these bytes as they are.
    public var offsetDeltaStart: Int
    /// Index of the key bytes (meaningless for a null key).
    public var keyIndex: Int
    /// Length of the key, -1 for a null key.
    public var keyLength: Int
    /// A null value: a tombstone on a compacted topic.
    public var valueIsNull: Bool

    public var hasKey: Bool { keyLength >= 0 }
}

extension RecordBatchHeader {
    /// Attributes bit 6 (KIP-534): `baseTimestamp` holds the delete horizon, the time from which
    /// the cleaner may drop the batch's tombstones; record timestamps stay base + delta.
    public static let deleteHorizonFlag: Int16 = 0x40

    /// The delete horizon, when the cleaner has set one.
    public var deleteHorizonMs: Int64? { attributes & Self.deleteHorizonFlag != 0 ? baseTimestamp : nil }
}

extension RecordBatches {
    /// Locates every record of the uncompressed batch at `index` (whose header is `header`).
    /// Throws `WireError` when the records do not parse or do not fill the batch exactly.
    public static func recordViews(
        _ buffer: ByteBuffer, batchAt index: Int, header: RecordBatchHeader
    ) throws -> [RecordView] {
        precondition(
            header.compression == CompressionCodec.none, "records of a compressed batch cannot be read in place")
        let end = index + header.totalBytes
        guard end <= buffer.writerIndex else { throw WireError.truncated("record batch") }
        var r = WireReader(
            buffer.getSlice(at: index + RecordBatchHeader.size, length: end - index - RecordBatchHeader.size)!)
        let base = index + RecordBatchHeader.size
        var at: Int { base + (r.buffer.readerIndex) }
        var views: [RecordView] = []
        views.reserveCapacity(Int(max(0, min(header.recordCount, 1 << 16))))
        for _ in 0..<max(0, header.recordCount) {
            let start = at
            let length = Int(try r.readVarint())
            guard length > 0, length <= r.remaining else { throw WireError.lengthTooLarge("record") }
            let recordEnd = at + length
            let attributes = try r.readInt8()
            let timestampDelta = try r.readVarlong()
            let offsetDeltaStart = at
            let offsetDelta = try r.readVarint()
            let keyLength = Int(try r.readVarint())
            let keyIndex = at
            if keyLength >= 0 {
                guard keyLength <= recordEnd - at else { throw WireError.lengthTooLarge("record key") }
                r.buffer.moveReaderIndex(forwardBy: keyLength)
            }
            let valueLength = Int(try r.readVarint())
            if valueLength > 0 {
                guard valueLength <= recordEnd - at else { throw WireError.lengthTooLarge("record value") }
                r.buffer.moveReaderIndex(forwardBy: valueLength)
            }
            guard at <= recordEnd else { throw WireError.invalidValue("record fields overrun its length") }
            // Headers are not looked at: skip to the record's end.
            r.buffer.moveReaderIndex(to: r.buffer.readerIndex + (recordEnd - at))
            views.append(
                RecordView(
                    start: start, end: recordEnd, attributes: attributes, timestampDelta: timestampDelta,
                    offsetDelta: offsetDelta, offsetDeltaStart: offsetDeltaStart, keyIndex: keyIndex,
                    keyLength: max(keyLength, -1), valueIsNull: valueLength < 0))
        }
        guard r.remaining == 0 else { throw WireError.invalidValue("bytes after the last record of a batch") }
        return views
    }

    /// Writes `record` (located in `source`) to `out` with a new timestamp delta: the length and
    /// the delta are re-encoded, everything from the offset delta on is copied as it is.
    public static func writeRecord(
        _ record: RecordView, from source: ByteBuffer, timestampDelta: Int64, to out: inout ByteBuffer
    ) {
        var body = WireWriter(buffer: ByteBufferAllocator().buffer(capacity: 1 + 10))
        body.writeInt8(record.attributes)
        body.writeVarlong(timestampDelta)
        let tail = record.end - record.offsetDeltaStart
        var w = WireWriter(buffer: out)
        w.writeVarint(Int32(body.buffer.readableBytes + tail))
        out = w.buffer
        out.writeBuffer(&body.buffer)
        var tailBytes = source.getSlice(at: record.offsetDeltaStart, length: tail)!
        out.writeBuffer(&tailBytes)
    }

    /// Builds a batch from header fields and encoded records: `batchLength`, `recordCount` and
    /// the CRC are computed here, everything else is taken from `header` as given.
    public static func assemble(_ header: RecordBatchHeader, records: ByteBuffer, recordCount: Int32) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + records.readableBytes)
        out.writeInteger(header.baseOffset)
        out.writeInteger(Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + records.readableBytes))
        out.writeInteger(header.partitionLeaderEpoch)
        out.writeInteger(Int8(2))
        out.writeInteger(UInt32(0))  // crc, set below
        out.writeInteger(header.attributes)
        out.writeInteger(header.lastOffsetDelta)
        out.writeInteger(header.baseTimestamp)
        out.writeInteger(header.maxTimestamp)
        out.writeInteger(header.producerId)
        out.writeInteger(header.producerEpoch)
        out.writeInteger(header.baseSequence)
        out.writeInteger(recordCount)
        var body = records
        out.writeBuffer(&body)
        let crc = crc32c(
            out, at: out.readerIndex + RecordBatchHeader.crcStart,
            length: out.readableBytes - RecordBatchHeader.crcStart)
        out.setInteger(crc, at: out.readerIndex + RecordBatchHeader.Offsets.crc)
        return out
    }

    /// A batch with no records spanning `baseOffset ... lastOffset` (as Kafka's cleaner keeps
    /// one): no base timestamp, `maxTimestamp` kept, the other fields as given.
    public static func emptyBatch(
        baseOffset: Int64, lastOffset: Int64, partitionLeaderEpoch: Int32, attributes: Int16, maxTimestamp: Int64,
        producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1
    ) -> ByteBuffer {
        precondition(
            lastOffset >= baseOffset && lastOffset - baseOffset <= Int64(Int32.max),
            "an empty batch spans 1 to 2^31 offsets")
        var header = RecordBatchHeader(empty: ())
        header.baseOffset = baseOffset
        header.partitionLeaderEpoch = partitionLeaderEpoch
        header.attributes = attributes
        header.lastOffsetDelta = Int32(lastOffset - baseOffset)
        header.baseTimestamp = -1
        header.maxTimestamp = maxTimestamp
        header.producerId = producerId
        header.producerEpoch = producerEpoch
        header.baseSequence = baseSequence
        return assemble(header, records: ByteBuffer(), recordCount: 0)
    }
}

extension RecordBatchHeader {
    /// A zeroed header (magic 2) to fill in field by field.
    init(empty: Void) {
        baseOffset = 0
        batchLength = Int32(Self.size - Self.logOverhead)
        partitionLeaderEpoch = -1
        magic = 2
        crc = 0
        attributes = 0
        lastOffsetDelta = 0
        baseTimestamp = -1
        maxTimestamp = -1
        producerId = -1
        producerEpoch = -1
        baseSequence = -1
        recordCount = 0
    }
}
