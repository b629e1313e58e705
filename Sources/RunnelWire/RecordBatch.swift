import CRC32C
import NIOCore
import RunnelCore

/// The compression codec of a record batch (attributes bits 0-2).
public enum CompressionCodec: Int16, Sendable, CaseIterable {
    case none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4
}

/// The fixed 61-byte header of a magic v2 record batch, read in place.
///
/// Layout: baseOffset int64 @0, batchLength int32 @8 (bytes after this field), partitionLeaderEpoch
/// int32 @12, magic int8 @16, crc uint32 @17 (CRC32C of bytes 21..end), attributes int16 @21,
/// lastOffsetDelta int32 @23, baseTimestamp int64 @27, maxTimestamp int64 @35, producerId int64 @43,
/// producerEpoch int16 @51, baseSequence int32 @53, recordCount int32 @57.
public struct RecordBatchHeader: Sendable, Equatable {
    public static let size = 61
    /// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
    public static let logOverhead = 12
    public static let crcStart = 21

    public enum Offsets {
        public static let baseOffset = 0
        public static let batchLength = 8
        public static let partitionLeaderEpoch = 12
        public static let magic = 16
        public static let crc = 17
        public static let attributes = 21
        public static let lastOffsetDelta = 23
        public static let baseTimestamp = 27
        public static let maxTimestamp = 35
        public static let producerId = 43
        public static let producerEpoch = 51
        public static let baseSequence = 53
        public static let recordCount = 57
    }

    public var baseOffset: Int64
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordCount: Int32

    /// Reads a header at `index` of `buffer` without moving its reader index; nil when fewer than
    /// 61 bytes are there.
    public init?(_ buffer: ByteBuffer, at index: Int) {
        guard index >= buffer.readerIndex, index + Self.size <= buffer.writerIndex else { return nil }
        baseOffset = buffer.getInteger(at: index, as: Int64.self)!
        batchLength = buffer.getInteger(at: index + 8, as: Int32.self)!
        partitionLeaderEpoch = buffer.getInteger(at: index + 12, as: Int32.self)!
        magic = buffer.getInteger(at: index + 16, as: Int8.self)!
        crc = buffer.getInteger(at: index + 17, as: UInt32.self)!
        attributes = buffer.getInteger(at: index + 21, as: Int16.self)!
        lastOffsetDelta = buffer.getInteger(at: index + 23, as: Int32.self)!
        baseTimestamp = buffer.getInteger(at: index + 27, as: Int64.self)!
        maxTimestamp = buffer.getInteger(at: index + 35, as: Int64.self)!
        producerId = buffer.getInteger(at: index + 43, as: Int64.self)!
        producerEpoch = buffer.getInteger(at: index + 51, as: Int16.self)!
        baseSequence = buffer.getInteger(at: index + 53, as: Int32.self)!
        recordCount = buffer.getInteger(at: index + 57, as: Int32.self)!
    }

    /// The whole batch's size in bytes, header included.
    public var totalBytes: Int { Int(batchLength) + Self.logOverhead }
    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    public var nextOffset: Int64 { lastOffset + 1 }
    public var compression: CompressionCodec? { CompressionCodec(rawValue: attributes & 0x7) }
    public var isLogAppendTime: Bool { attributes & 0x8 != 0 }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }
    public var hasProducerId: Bool { producerId >= 0 }
}

/// Why a batch was refused; maps to a Kafka error code.
public struct BatchValidationError: Error, Equatable, Sendable {
    public var code: ErrorCode
    public var reason: String
    public init(_ code: ErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Facts about one validated batch in a produce payload.
public struct BatchInfo: Sendable, Equatable {
    /// Index of the batch's first byte in the payload buffer.
    public var position: Int
    public var header: RecordBatchHeader
}

public enum RecordBatches {
    /// CRC32C of `length` bytes at `index`.
    public static func crc32c(_ buffer: ByteBuffer, at index: Int, length: Int) -> UInt32 {
        buffer.withUnsafeReadableBytes { raw in
            let start = index - buffer.readerIndex
            return runnel_crc32c(0, raw.baseAddress! + start, length)
        }
    }

    /// Validates a produce payload: every batch is magic v2, whole, within `maxBatchBytes`, with a
    /// correct CRC32C, and not a control batch. Never decompresses. Returns the batches found.
    public static func validate(
        _ records: ByteBuffer, maxBatchBytes: Int, allowControl: Bool = false
    ) -> Result<[BatchInfo], BatchValidationError> {
        var batches: [BatchInfo] = []
        var index = records.readerIndex
        let end = records.writerIndex
        if index == end { return .failure(BatchValidationError(.invalidRecord, "no record batch in the payload")) }
        while index < end {
            guard end - index >= RecordBatchHeader.size else {
                // A size over the limit announced in a partial header still reads as too large.
                if end - index >= 12, let length = records.getInteger(at: index + 8, as: Int32.self),
                    Int(length) + 12 > maxBatchBytes
                {
                    return .failure(
                        BatchValidationError(
                            .messageTooLarge, "batch of \(Int(length) + 12) bytes is over \(maxBatchBytes)"))
                }
                return .failure(BatchValidationError(.corruptMessage, "truncated record batch header"))
            }
            let header = RecordBatchHeader(records, at: index)!
            guard header.magic == 2 else {
                return .failure(
                    BatchValidationError(.invalidRecord, "record batch magic \(header.magic); only v2 is accepted"))
            }
            guard header.batchLength >= Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead) else {
                return .failure(
                    BatchValidationError(
                        .corruptMessage, "record batch length \(header.batchLength) is below the header size"))
            }
            if header.totalBytes > maxBatchBytes {
                return .failure(
                    BatchValidationError(
                        .messageTooLarge, "batch of \(header.totalBytes) bytes is over \(maxBatchBytes)"))
            }
            guard header.totalBytes <= end - index else {
                return .failure(BatchValidationError(.corruptMessage, "record batch is truncated"))
            }
            let crc = crc32c(
                records, at: index + RecordBatchHeader.crcStart, length: header.totalBytes - RecordBatchHeader.crcStart)
            guard crc == header.crc else {
                return .failure(BatchValidationError(.corruptMessage, "record batch CRC mismatch"))
            }
            guard header.compression != nil else {
                return .failure(
                    BatchValidationError(.corruptMessage, "unknown compression codec \(header.attributes & 7)"))
            }
            guard header.recordCount >= 0, header.lastOffsetDelta >= 0 else {
                return .failure(BatchValidationError(.invalidRecord, "negative record count or offset delta"))
            }
            if header.compression == CompressionCodec.none && header.recordCount != header.lastOffsetDelta &+ 1 {
                return .failure(
                    BatchValidationError(
                        .invalidRecord,
                        "record count \(header.recordCount) does not match last offset delta \(header.lastOffsetDelta)")
                )
            }
            if header.recordCount == 0 {
                return .failure(BatchValidationError(.invalidRecord, "empty record batch"))
            }
            if header.isControl && !allowControl {
                return .failure(BatchValidationError(.invalidRecord, "clients may not write control batches"))
            }
            batches.append(BatchInfo(position: index, header: header))
            index += header.totalBytes
        }
        return .success(batches)
    }

    /// A batch as the pieces to write for it with a new base offset and partition leader epoch
    /// (both outside the CRC'd range), leaving `buffer` untouched: the first 16 bytes rewritten
    /// into `stamps`, then a slice of the rest. A request's records are shared with the frame
    /// they came in, so setting the fields in place would copy the whole batch.
    public static func stampedPieces(
        _ buffer: ByteBuffer, batchAt index: Int, totalBytes: Int, baseOffset: Int64, partitionLeaderEpoch: Int32,
        stamps: inout ByteBuffer
    ) -> (prefix: ByteBuffer, rest: ByteBuffer) {
        let prefixBytes = RecordBatchHeader.Offsets.magic
        let at = stamps.writerIndex
        stamps.writeInteger(baseOffset)
        stamps.writeInteger(buffer.getInteger(at: index + RecordBatchHeader.Offsets.batchLength, as: Int32.self)!)
        stamps.writeInteger(partitionLeaderEpoch)
        return (
            stamps.getSlice(at: at, length: prefixBytes)!,
            buffer.getSlice(at: index + prefixBytes, length: totalBytes - prefixBytes)!
        )
    }

    /// Sets a batch's base offset (outside the CRC'd range).
    public static func setBaseOffset(_ buffer: inout ByteBuffer, batchAt index: Int, _ offset: Int64) {
        buffer.setInteger(offset, at: index + RecordBatchHeader.Offsets.baseOffset)
    }

    /// Sets a batch's partition leader epoch (outside the CRC'd range).
    public static func setPartitionLeaderEpoch(_ buffer: inout ByteBuffer, batchAt index: Int, _ epoch: Int32) {
        buffer.setInteger(epoch, at: index + RecordBatchHeader.Offsets.partitionLeaderEpoch)
    }

    /// Marks a batch as log-append-time with `timestamp` as its max timestamp and recomputes its CRC
    /// (topics with `message.timestamp.type=LogAppendTime`).
    public static func setLogAppendTime(_ buffer: inout ByteBuffer, batchAt index: Int, _ timestamp: Int64) {
        let attributes = buffer.getInteger(at: index + RecordBatchHeader.Offsets.attributes, as: Int16.self)!
        buffer.setInteger(attributes | 0x8, at: index + RecordBatchHeader.Offsets.attributes)
        buffer.setInteger(timestamp, at: index + RecordBatchHeader.Offsets.maxTimestamp)
        let length = Int(buffer.getInteger(at: index + 8, as: Int32.self)!) + RecordBatchHeader.logOverhead
        let crc = crc32c(buffer, at: index + RecordBatchHeader.crcStart, length: length - RecordBatchHeader.crcStart)
        buffer.setInteger(crc, at: index + RecordBatchHeader.Offsets.crc)
    }
}
