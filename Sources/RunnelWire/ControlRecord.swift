import NIOCore
import RunnelCore

/// A transaction marker: the one record of a control batch that commits or aborts a producer's
/// transaction on a partition. Kafka's layout: the key is int16 version (0) and int16 control
/// type (0 abort, 1 commit); the value (`EndTransactionMarker`) is int16 version (0) and int32
/// coordinator epoch. The batch is transactional and control (attributes 0x30), carries the
/// producer id and epoch, and has no sequence.
public struct EndTransactionMarker: Sendable, Equatable, CustomStringConvertible {
    /// Control type 0 (abort) or 1 (commit).
    public var committed: Bool
    public var coordinatorEpoch: Int32

    public init(committed: Bool, coordinatorEpoch: Int32) {
        self.committed = committed
        self.coordinatorEpoch = coordinatorEpoch
    }

    public static let abortType: Int16 = 0
    public static let commitType: Int16 = 1
    /// Attributes of a marker batch: transactional and control.
    public static let batchAttributes: Int16 = 0x30

    public var description: String {
        "\(committed ? "COMMIT" : "ABORT") marker (coordinator epoch \(coordinatorEpoch))"
    }

    public var key: ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 4)
        b.writeInteger(Int16(0))
        b.writeInteger(committed ? Self.commitType : Self.abortType)
        return b
    }

    public var value: ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 6)
        b.writeInteger(Int16(0))
        b.writeInteger(coordinatorEpoch)
        return b
    }

    /// Reads a marker from a control record's key and value; nil for another control type
    /// (a KRaft leader-change or snapshot record) or a malformed one.
    public init?(key: ByteBuffer?, value: ByteBuffer?) {
        guard var k = key, k.readInteger(as: Int16.self) != nil, let type = k.readInteger(as: Int16.self),
            type == Self.abortType || type == Self.commitType,
            var v = value, let version = v.readInteger(as: Int16.self), version >= 0,
            let epoch = v.readInteger(as: Int32.self)
        else { return nil }
        self.committed = type == Self.commitType
        self.coordinatorEpoch = epoch
    }

    /// A marker batch at `baseOffset` 0 (the log assigns the offset) for a producer.
    public func batch(producerId: Int64, producerEpoch: Int16, timestamp: Int64) -> ByteBuffer {
        RecordBatches.build(
            records: [Record(offset: 0, timestamp: timestamp, key: key, value: value)],
            attributes: Self.batchAttributes,
            producerId: producerId, producerEpoch: producerEpoch, baseSequence: -1)
    }

    /// The marker in a control batch (`batch` holds the whole batch at its reader index); nil when
    /// the batch is not a marker (or is an empty batch the cleaner left).
    public static func read(batch: ByteBuffer, header: RecordBatchHeader) -> EndTransactionMarker? {
        guard header.isControl, header.recordCount > 0, header.compression == CompressionCodec.none,
            let body = batch.getSlice(
                at: batch.readerIndex + RecordBatchHeader.size, length: header.totalBytes - RecordBatchHeader.size),
            let record = try? RecordBatches.decodeRecords(body, header: header).first
        else { return nil }
        return EndTransactionMarker(key: record.key, value: record.value)
    }
}
