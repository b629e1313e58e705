import NIOCore
import RunnelCore
import RunnelLog
import RunnelWire

/// The metadata log `__cluster_metadata-0` on a `PartitionLog`: batches of framed metadata
/// records (and control records), each batch stamped with the epoch that wrote it.
public final class MetadataLog: @unchecked Sendable {
    public static let topicPartition = TopicPartition("__cluster_metadata", 0)
    public let log: PartitionLog

    public init(directory: String, disk: any Disk, nowMs: Int64, cleanShutdown: Bool) throws {
        var config = LogConfig()
        config.segmentBytes = 8 * 1024 * 1024
        config.retentionMs = -1
        config.retentionBytes = -1
        log = try PartitionLog(
            topicPartition: Self.topicPartition, directory: directory, config: config, disk: disk, nowMs: nowMs,
            recoveryPoint: 0, cleanShutdown: cleanShutdown)
    }

    public var endOffset: Int64 { log.logEndOffset }

    /// Builds one batch of `records` starting at the log end (without writing it).
    public static func batch(
        _ records: [MetadataRecord], baseOffset: Int64, epoch: Int32, timestamp: Int64
    ) -> ByteBuffer {
        let kafkaRecords = records.enumerated().map { i, record in
            Record(
                offset: baseOffset + Int64(i), timestamp: timestamp, key: nil, value: MetadataRecordFrame.encode(record)
            )
        }
        return RecordBatches.build(records: kafkaRecords, partitionLeaderEpoch: epoch)
    }

    /// Appends `records` as one batch (page cache only; call `sync` to make it durable).
    /// Returns the offset of the first record.
    @discardableResult
    public func append(_ records: [MetadataRecord], epoch: Int32, nowMs: Int64) throws -> Int64 {
        precondition(!records.isEmpty, "a metadata batch holds at least one record")
        let base = log.logEndOffset
        _ = try log.appendAsFollower(
            Self.batch(records, baseOffset: base, epoch: epoch, timestamp: nowMs), nowMs: nowMs)
        return base
    }

    public func sync(nowMs: Int64) throws {
        try log.flush(nowMs: nowMs)
    }

    /// A decoded metadata-log entry.
    public struct Entry: Sendable {
        public var offset: Int64
        public var epoch: Int32
        public var timestamp: Int64
        /// nil for control records and records this build cannot read.
        public var record: MetadataRecord?
        public var isControl: Bool
    }

    /// Every entry from `offset` to the end, in order.
    public func read(from offset: Int64, upTo end: Int64 = .max) throws -> [Entry] {
        var out: [Entry] = []
        var next = max(offset, log.logStartOffset)
        while next < min(end, log.logEndOffset) {
            let bytes = try log.readBytes(from: next, maxBytes: 4 * 1024 * 1024, maxOffset: end)
            let read = try Self.decode(bytes, from: next, into: &out)
            guard read > next else { break }
            next = read
        }
        return out
    }

    /// Appends the entries at or after `offset` of the whole batches in `bytes` to `out`; gives
    /// the offset after the last batch (`offset` when there is none).
    static func decode(_ bytes: ByteBuffer, from offset: Int64, into out: inout [Entry]) throws -> Int64 {
        var next = offset
        for batch in try RecordBatches.decode(bytes) {
            for record in batch.records where record.offset >= offset {
                var decoded: MetadataRecord?
                if !batch.header.isControl, let value = record.value {
                    decoded = try MetadataRecordFrame.decode(value).record
                }
                out.append(
                    Entry(
                        offset: record.offset, epoch: batch.header.partitionLeaderEpoch, timestamp: record.timestamp,
                        record: decoded, isControl: batch.header.isControl))
            }
            next = batch.header.nextOffset
        }
        return next
    }
}
