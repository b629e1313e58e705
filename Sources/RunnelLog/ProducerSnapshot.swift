import NIOCore
import RunnelCore
import RunnelWire

/// Kafka's producer-state snapshot file, `<20-digit offset>.snapshot`: the producer state as of
/// that offset (every batch below it applied), so opening a log rescans only from there.
///
/// Layout (big-endian): int16 version (1), uint32 CRC32C of every byte after the CRC, int32
/// entry count, then per producer: producer id int64, epoch int16, last sequence int32, last
/// offset int64 (-1 when the producer wrote only markers), offset delta int32 (last minus first
/// offset of its last batch), timestamp int64, coordinator epoch int32, first offset of its open
/// transaction int64 (-1 for none). 46 bytes per entry.
public enum ProducerSnapshot {
    public static let version: Int16 = 1
    public static let suffix = ".snapshot"
    static let entryBytes = 46
    static let headerBytes = 10

    public struct Entry: Sendable, Equatable {
        public var producerId: Int64
        public var producerEpoch: Int16
        public var lastSequence: Int32
        public var lastOffset: Int64
        public var offsetDelta: Int32
        public var timestamp: Int64
        public var coordinatorEpoch: Int32
        public var currentTxnFirstOffset: Int64

        public init(
            producerId: Int64, producerEpoch: Int16, lastSequence: Int32, lastOffset: Int64, offsetDelta: Int32,
            timestamp: Int64,
            coordinatorEpoch: Int32, currentTxnFirstOffset: Int64
        ) {
            self.producerId = producerId
            self.producerEpoch = producerEpoch
            self.lastSequence = lastSequence
            self.lastOffset = lastOffset
            self.offsetDelta = offsetDelta
            self.timestamp = timestamp
            self.coordinatorEpoch = coordinatorEpoch
            self.currentTxnFirstOffset = currentTxnFirstOffset
        }
    }

    /// Why a snapshot file cannot be used (the log then falls back to an older one, or a scan).
    public struct CorruptError: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "producer snapshot \(path) is unusable: \(reason)" }
    }

    public static func fileName(_ offset: Int64) -> String { LogSegment.fileName(offset, suffix) }

    /// The offset a snapshot file name carries; nil for other files.
    public static func offset(ofFile name: String) -> Int64? {
        guard name.hasSuffix(suffix) else { return nil }
        return Int64(name.dropLast(suffix.count))
    }

    public static func encode(_ entries: [Entry]) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: headerBytes + entries.count * entryBytes)
        b.writeInteger(version)
        b.writeInteger(UInt32(0))
        b.writeInteger(Int32(entries.count))
        for e in entries {
            b.writeInteger(e.producerId)
            b.writeInteger(e.producerEpoch)
            b.writeInteger(e.lastSequence)
            b.writeInteger(e.lastOffset)
            b.writeInteger(e.offsetDelta)
            b.writeInteger(e.timestamp)
            b.writeInteger(e.coordinatorEpoch)
            b.writeInteger(e.currentTxnFirstOffset)
        }
        let crc = RecordBatches.crc32c(b, at: b.readerIndex + 6, length: b.readableBytes - 6)
        b.setInteger(crc, at: b.readerIndex + 2)
        return b
    }

    public static func decode(_ buffer: ByteBuffer, path: String) throws(CorruptError) -> [Entry] {
        func fail(_ reason: String) -> CorruptError { CorruptError(path: path, reason: reason) }
        var b = buffer
        guard let v = b.readInteger(as: Int16.self), let crc = b.readInteger(as: UInt32.self),
            let count = b.readInteger(as: Int32.self)
        else {
            throw fail("shorter than its header")
        }
        guard v == version else { throw fail("unknown version \(v)") }
        guard count >= 0, Int(count) * entryBytes == b.readableBytes else {
            throw fail("\(count) entries in \(b.readableBytes) bytes")
        }
        guard RecordBatches.crc32c(buffer, at: buffer.readerIndex + 6, length: buffer.readableBytes - 6) == crc else {
            throw fail("CRC mismatch")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(Int(count))
        for _ in 0..<count {
            entries.append(
                Entry(
                    producerId: b.readInteger()!, producerEpoch: b.readInteger()!, lastSequence: b.readInteger()!,
                    lastOffset: b.readInteger()!,
                    offsetDelta: b.readInteger()!, timestamp: b.readInteger()!, coordinatorEpoch: b.readInteger()!,
                    currentTxnFirstOffset: b.readInteger()!))
        }
        return entries
    }

    /// Writes the snapshot file for `offset` in `directory` (temp file and rename; synced when
    /// `durable`, else a crash may leave it torn, which its CRC then tells).
    static func write(_ entries: [Entry], offset: Int64, directory: String, disk: any Disk, durable: Bool) throws {
        let path = directory + "/" + fileName(offset)
        let temp = path + ".tmp"
        let file = try disk.open(temp, create: true)
        do {
            try file.truncate(to: 0)
            try file.write(encode(entries), at: 0)
            if durable { try file.sync() }
            file.close()
        } catch {
            file.close()
            try? disk.remove(temp)
            throw error
        }
        try disk.rename(temp, to: path)
        if durable { try disk.syncDirectory(directory) }
    }

    static func read(offset: Int64, directory: String, disk: any Disk) throws -> [Entry] {
        let path = directory + "/" + fileName(offset)
        let file = try disk.open(path, create: false)
        defer { file.close() }
        return try decode(try file.read(at: 0, count: Int(try file.size())), path: path)
    }
}

/// An aborted transaction as the `.txnindex` of a segment keeps it (Kafka's `AbortedTxn`,
/// 34 bytes): int16 version (0), producer id int64, first offset int64, last offset int64 (the
/// abort marker's), last stable offset int64 (the LSO when the marker was written).
public struct AbortedTransaction: Sendable, Equatable, CustomStringConvertible {
    public static let entryBytes = 34
    public static let currentVersion: Int16 = 0

    public var producerId: Int64
    public var firstOffset: Int64
    public var lastOffset: Int64
    public var lastStableOffset: Int64

    public init(producerId: Int64, firstOffset: Int64, lastOffset: Int64, lastStableOffset: Int64) {
        self.producerId = producerId
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.lastStableOffset = lastStableOffset
    }

    public var description: String {
        "aborted producer \(producerId) \(firstOffset)...\(lastOffset) lso \(lastStableOffset)"
    }

    public func write(to b: inout ByteBuffer) {
        b.writeInteger(Self.currentVersion)
        b.writeInteger(producerId)
        b.writeInteger(firstOffset)
        b.writeInteger(lastOffset)
        b.writeInteger(lastStableOffset)
    }

    /// Reads one entry; nil at a partial entry or an unknown version.
    public static func read(from b: inout ByteBuffer) -> AbortedTransaction? {
        guard b.readableBytes >= entryBytes, let version = b.readInteger(as: Int16.self), version <= currentVersion,
            let p = b.readInteger(as: Int64.self), let f = b.readInteger(as: Int64.self),
            let l = b.readInteger(as: Int64.self),
            let s = b.readInteger(as: Int64.self)
        else { return nil }
        return AbortedTransaction(producerId: p, firstOffset: f, lastOffset: l, lastStableOffset: s)
    }
}
