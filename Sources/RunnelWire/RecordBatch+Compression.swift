import NIOCore
import RunnelCodecs

extension CompressionCodec {
    /// The library codec behind this attribute value; nil for `none`.
    public var codec: Codec? { Codec(rawValue: rawValue) }
}

extension RecordBatches {
    /// The record bytes of the batch at `index`: the bytes after its header, inflated when the
    /// batch is compressed. Throws `CodecError` for a payload that does not decompress (or
    /// inflates past `limit`) and `WireError` for a batch cut short or an unknown codec.
    public static func recordBytes(
        _ buffer: ByteBuffer, batchAt index: Int, header: RecordBatchHeader, limit: Int = Codecs.outputBytesMax
    ) throws -> ByteBuffer {
        guard header.totalBytes >= RecordBatchHeader.size,
            let payload = buffer.getSlice(
                at: index + RecordBatchHeader.size, length: header.totalBytes - RecordBatchHeader.size)
        else {
            throw WireError.truncated("record batch")
        }
        guard let compression = header.compression else {
            throw WireError.invalidValue("compression codec \(header.attributes & 0x7)")
        }
        guard let codec = compression.codec else { return payload }
        return try Codecs.decompress(codec, payload, limit: limit)
    }

    /// Every record of the batch at `index`, decompressed first when it is compressed.
    public static func records(_ buffer: ByteBuffer, batchAt index: Int, header: RecordBatchHeader) throws -> [Record] {
        try decodeRecords(try recordBytes(buffer, batchAt: index, header: header), header: header)
    }

    /// The uncompressed batch `batch` with its records compressed by `codec` (attributes, length
    /// and CRC rewritten; every other header field kept), as a producer with
    /// `compression.type=<codec>` sends it.
    public static func compress(_ batch: ByteBuffer, with codec: Codec, level: Int32? = nil) throws -> ByteBuffer {
        guard let header = RecordBatchHeader(batch, at: batch.readerIndex), header.compression == CompressionCodec.none
        else {
            throw WireError.invalidValue("only an uncompressed record batch can be compressed")
        }
        return try recompress(
            batch, batchAt: batch.readerIndex, header: header, to: .init(rawValue: codec.rawValue)!, level: level)
    }

    /// The batch at `index` with its records stored by `target` instead (inflated first when the
    /// batch is compressed; `none` leaves them uncompressed), as Kafka's LogValidator rebuilds a
    /// batch for a topic whose `compression.type` differs from the producer's codec. Offsets,
    /// timestamps, producer fields and the other attributes are kept; length and CRC rewritten.
    public static func recompress(
        _ buffer: ByteBuffer, batchAt index: Int, header: RecordBatchHeader, to target: CompressionCodec,
        level: Int32? = nil
    ) throws -> ByteBuffer {
        var records = try recordBytes(buffer, batchAt: index, header: header)
        if let codec = target.codec { records = try Codecs.compress(codec, records, level: level) }
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + records.readableBytes)
        var head = buffer.getSlice(at: index, length: RecordBatchHeader.size)!
        out.writeBuffer(&head)
        out.writeBuffer(&records)
        out.setInteger(
            Int32(out.readableBytes - RecordBatchHeader.logOverhead), at: RecordBatchHeader.Offsets.batchLength)
        out.setInteger(header.attributes & ~0x7 | target.rawValue, at: RecordBatchHeader.Offsets.attributes)
        out.setInteger(
            crc32c(out, at: RecordBatchHeader.crcStart, length: out.readableBytes - RecordBatchHeader.crcStart),
            at: RecordBatchHeader.Offsets.crc)
        return out
    }
}
