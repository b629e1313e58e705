import RunnelWire

/// Per-log settings, named after Kafka's topic configs (broker-level `log.*` keys supply defaults).
public struct LogConfig: Sendable, Equatable {
    /// `segment.bytes` / `log.segment.bytes`: roll when the active segment would pass this size.
    public var segmentBytes: Int = 1_073_741_824
    /// `segment.ms` / `log.roll.ms`: roll when the active segment's first record is this old.
    public var segmentMs: Int64 = 604_800_000
    /// `retention.ms` / `log.retention.ms`: delete segments whose newest record is older; -1 keeps all.
    public var retentionMs: Int64 = 604_800_000
    /// `retention.bytes` / `log.retention.bytes`: delete oldest segments while the log is larger; -1 keeps all.
    public var retentionBytes: Int64 = -1
    /// `segment.index.bytes` / `log.index.size.max.bytes`: roll when the offset index is this full.
    public var segmentIndexBytes: Int = 10_485_760
    /// `index.interval.bytes` / `log.index.interval.bytes`: bytes between sparse index entries.
    public var indexIntervalBytes: Int = 4096
    /// `flush.messages` / `log.flush.interval.messages`: fsync after this many records.
    public var flushMessages: Int64 = Int64.max
    /// `flush.ms` / `log.flush.interval.ms`: fsync when unflushed data is this old.
    public var flushMs: Int64 = Int64.max
    /// `max.message.bytes` / `message.max.bytes`: largest record batch accepted.
    public var maxMessageBytes: Int = 1_048_588
    /// `message.timestamp.type` / `log.message.timestamp.type`: CreateTime or LogAppendTime.
    public var logAppendTime: Bool = false
    /// `message.timestamp.before.max.ms` (else `message.timestamp.difference.max.ms`): how far in
    /// the past a CreateTime record's timestamp may be.
    public var timestampBeforeMaxMs: Int64 = .max
    /// `message.timestamp.after.max.ms` (else `message.timestamp.difference.max.ms`): how far in
    /// the future a CreateTime record's timestamp may be.
    public var timestampAfterMaxMs: Int64 = .max
    /// `compression.type`: the codec batches are stored in; nil for `producer` (as they come).
    public var compression: CompressionCodec? = nil
    /// `compression.gzip.level` / `compression.lz4.level` / `compression.zstd.level` (KIP-390):
    /// the level used when the broker recompresses; nil for the codec's default.
    public var compressionLevels: [CompressionCodec: Int32] = [:]
    /// `cleanup.policy` contains `delete`.
    public var deleteEnabled: Bool = true
    /// `cleanup.policy` contains `compact`.
    public var compactEnabled: Bool = false
    /// `delete.retention.ms` / `log.cleaner.delete.retention.ms`: how long a tombstone stays
    /// after the cleaner first kept it (its batch's delete horizon, KIP-534).
    public var deleteRetentionMs: Int64 = 86_400_000
    /// `min.compaction.lag.ms` / `log.cleaner.min.compaction.lag.ms`: segments holding a record
    /// younger than this are not cleaned.
    public var minCompactionLagMs: Int64 = 0
    /// `max.compaction.lag.ms` / `log.cleaner.max.compaction.lag.ms` (KIP-354): a dirty record
    /// older than this gets its log cleaned whatever the dirty ratio, and an active segment of a
    /// compacted log rolls at this age; `.max` never.
    public var maxCompactionLagMs: Int64 = .max
    /// The age at which the active segment rolls: `segment.ms`, or `max.compaction.lag.ms` when
    /// compacted and shorter (Kafka's maxSegmentMs).
    public var rollMs: Int64 {
        compactEnabled && maxCompactionLagMs > 0 ? min(segmentMs, maxCompactionLagMs) : segmentMs
    }
    /// `min.cleanable.dirty.ratio` / `log.cleaner.min.cleanable.ratio`: clean once the dirty
    /// (not yet cleaned) bytes are at least this share of the cleanable bytes.
    public var minCleanableDirtyRatio: Double = 0.5

    public init() {}
}
