import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelRaft
import RunnelSnapshotStore
import RunnelWire

/// A piece of a snapshot file in transit (FetchSnapshot).
public struct SnapshotChunk: Sendable, Equatable {
    public var id: SnapshotId
    public var totalBytes: Int64
    public var position: Int64
    public var bytes: ByteBuffer
    public init(id: SnapshotId, totalBytes: Int64, position: Int64, bytes: ByteBuffer) {
        self.id = id
        self.totalBytes = totalBytes
        self.position = position
        self.bytes = bytes
    }
}

/// Where a node keeps its metadata snapshots. The process uses SQLite files; the simulator keeps
/// them in memory. Every method may block (it is called off the driver's executor).
public protocol SnapshotStorage: AnyObject, Sendable {
    /// The newest complete snapshot.
    func latest() -> SnapshotId?
    /// Writes `image` as snapshot `id`, atomically.
    func write(_ image: MetadataImage, id: SnapshotId) throws
    /// Reads and verifies snapshot `id`.
    func load(_ id: SnapshotId) throws -> MetadataImage
    func size(_ id: SnapshotId) throws -> Int64
    func read(_ id: SnapshotId, position: Int64, maxBytes: Int) throws -> ByteBuffer
    /// Accepts the next piece of a snapshot being fetched; when the last piece arrives the file
    /// is verified and installed, and true is returned.
    func receive(_ chunk: SnapshotChunk) throws -> Bool
    /// Deletes all but the newest `count` snapshots.
    func retain(newest count: Int)
}

/// Snapshots as SQLite files in the metadata log directory.
public final class SQLiteSnapshotStorage: SnapshotStorage, @unchecked Sendable {
    public let directory: String
    public let clusterId: String
    public let voters: [Int32]
    private let lock = NIOLock()
    private var download: (id: SnapshotId, path: String, expected: Int64)?
    /// Where each snapshot written or loaded is logged, with its size and time (nil: nowhere).
    private let logger: Logger?

    public init(directory: String, clusterId: String, voters: [Int32], logger: Logger? = nil) throws {
        self.directory = directory
        self.clusterId = clusterId
        self.voters = voters
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Leftovers of an interrupted write or download.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasSuffix(".tmp") || name.hasSuffix(".part") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    func path(_ id: SnapshotId) -> String {
        directory + "/" + SQLiteSnapshot.fileName(endOffset: id.endOffset, epoch: id.epoch)
    }

    public func all() -> [SnapshotId] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap {
            SQLiteSnapshot.parse(fileName: $0).map { SnapshotId(endOffset: $0.endOffset, epoch: $0.epoch) }
        }.sorted()
    }

    public func latest() -> SnapshotId? { all().last }

    public func write(_ image: MetadataImage, id: SnapshotId) throws {
        let started = NIODeadline.now()
        try SQLiteSnapshot.write(
            image, clusterId: clusterId, endOffset: id.endOffset, epoch: id.epoch, voters: voters,
            lastContainedTimestamp: 0, directory: directory)
        logged("wrote", id, image: image, since: started)
    }

    public func load(_ id: SnapshotId) throws -> MetadataImage {
        let started = NIODeadline.now()
        let loaded = try SQLiteSnapshot.read(path(id))
        guard loaded.header.clusterId == clusterId else {
            throw SnapshotError("\(path(id)) belongs to cluster \(loaded.header.clusterId), not \(clusterId)")
        }
        logged("loaded", id, image: loaded.image, since: started)
        return loaded.image
    }

    private func logged(_ verb: String, _ id: SnapshotId, image: MetadataImage, since started: NIODeadline) {
        guard let logger else { return }
        let ms = Double((NIODeadline.now() - started).nanoseconds) / 1e6
        logger.info(
            "\(verb) metadata snapshot \(SQLiteSnapshot.fileName(endOffset: id.endOffset, epoch: id.epoch))",
            metadata: [
                "ms": "\(Int(ms.rounded()))", "bytes": "\((try? size(id)) ?? 0)",
                "partitions": "\(image.partitionCount)", "topics": "\(image.topicsById.count)",
            ])
    }

    public func size(_ id: SnapshotId) throws -> Int64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path(id))
        return (attributes[.size] as? NSNumber)?.int64Value ?? 0
    }

    public func read(_ id: SnapshotId, position: Int64, maxBytes: Int) throws -> ByteBuffer {
        guard let handle = FileHandle(forReadingAtPath: path(id)) else {
            throw SnapshotError("snapshot \(id) is not here")
        }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(position))
        let data = try handle.read(upToCount: maxBytes) ?? Data()
        var buffer = ByteBufferAllocator().buffer(capacity: data.count)
        buffer.writeBytes(data)
        return buffer
    }

    public func receive(_ chunk: SnapshotChunk) throws -> Bool {
        try lock.withLock {
            let partPath = path(chunk.id) + ".part"
            if chunk.position == 0 {
                try? FileManager.default.removeItem(atPath: partPath)
                guard FileManager.default.createFile(atPath: partPath, contents: nil) else {
                    throw SnapshotError("cannot create \(partPath)")
                }
                download = (chunk.id, partPath, chunk.totalBytes)
            }
            guard let current = download, current.id == chunk.id else {
                throw SnapshotError("snapshot chunk out of order")
            }
            guard let handle = FileHandle(forWritingAtPath: partPath) else {
                throw SnapshotError("cannot write \(partPath)")
            }
            let size = try handle.seekToEnd()
            guard Int64(size) == chunk.position else {
                try? handle.close()
                throw SnapshotError("snapshot chunk at \(chunk.position), expected \(size)")
            }
            try handle.write(contentsOf: Data(chunk.bytes.readableBytesView))
            try handle.synchronize()
            try handle.close()
            let written = chunk.position + Int64(chunk.bytes.readableBytes)
            guard written >= current.expected else { return false }
            // Verify before installing: a snapshot that does not check out is never used.
            let loaded = try SQLiteSnapshot.read(partPath)
            guard loaded.header.endOffset == chunk.id.endOffset, loaded.header.epoch == chunk.id.epoch,
                loaded.header.clusterId == clusterId
            else {
                try? FileManager.default.removeItem(atPath: partPath)
                throw SnapshotError("the fetched snapshot does not match \(chunk.id)")
            }
            guard rename(partPath, path(chunk.id)) == 0 else {
                throw SnapshotError("cannot install snapshot \(chunk.id)")
            }
            download = nil
            return true
        }
    }

    public func retain(newest count: Int) {
        let ids = all()
        for id in ids.dropLast(count) { try? FileManager.default.removeItem(atPath: path(id)) }
    }
}

/// Snapshots kept in memory (the simulator's disk is memory too). The bytes are the image's
/// canonical records, each length-prefixed, after a header with the checksum.
public final class MemorySnapshotStorage: SnapshotStorage, @unchecked Sendable {
    private let lock = NIOLock()
    private var files: [SnapshotId: [UInt8]] = [:]
    private var partial: (id: SnapshotId, bytes: [UInt8])?

    public init() {}

    public static func encode(_ image: MetadataImage) -> [UInt8] {
        var w = WireWriter(capacity: 1024)
        w.writeInt64(Int64(bitPattern: image.contentChecksum))
        w.writeInt64(image.provenance.lastOffset)
        w.writeInt32(image.provenance.lastEpoch)
        w.writeInt64(image.provenance.recordCount)
        for record in image.records() {
            let bytes = MetadataRecordFrame.encode(record)
            w.writeInt32(Int32(bytes.readableBytes))
            var b = bytes
            w.buffer.writeBuffer(&b)
        }
        return Array(w.bytes.readableBytesView)
    }

    public static func decode(_ bytes: [UInt8]) throws -> MetadataImage {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        var r = WireReader(buffer)
        let checksum = UInt64(bitPattern: try r.readInt64())
        let provenance = MetadataProvenance(
            lastOffset: try r.readInt64(), lastEpoch: try r.readInt32(), recordCount: try r.readInt64())
        var records: [MetadataRecord] = []
        while r.remaining > 0 {
            let n = Int(try r.readInt32())
            guard n >= 0, n <= r.remaining else { throw SnapshotError("truncated snapshot") }
            records.append(try MetadataRecordFrame.decode(r.buffer.readSlice(length: n)!).record)
        }
        let image = MetadataImage.replaying(records, provenance: provenance)
        guard image.contentChecksum == checksum else { throw SnapshotError("snapshot checksum mismatch") }
        return image
    }

    public func latest() -> SnapshotId? { lock.withLock { files.keys.max() } }
    public func write(_ image: MetadataImage, id: SnapshotId) throws {
        let bytes = Self.encode(image)
        lock.withLock { files[id] = bytes }
    }
    public func load(_ id: SnapshotId) throws -> MetadataImage {
        guard let bytes = lock.withLock({ files[id] }) else { throw SnapshotError("no snapshot \(id)") }
        return try Self.decode(bytes)
    }
    public func size(_ id: SnapshotId) throws -> Int64 {
        guard let bytes = lock.withLock({ files[id] }) else { throw SnapshotError("no snapshot \(id)") }
        return Int64(bytes.count)
    }
    public func read(_ id: SnapshotId, position: Int64, maxBytes: Int) throws -> ByteBuffer {
        guard let bytes = lock.withLock({ files[id] }) else { throw SnapshotError("no snapshot \(id)") }
        let start = min(Int(position), bytes.count)
        let end = min(start + maxBytes, bytes.count)
        var b = ByteBufferAllocator().buffer(capacity: end - start)
        b.writeBytes(bytes[start..<end])
        return b
    }
    public func receive(_ chunk: SnapshotChunk) throws -> Bool {
        try lock.withLock {
            if chunk.position == 0 { partial = (chunk.id, []) }
            guard var p = partial, p.id == chunk.id, Int64(p.bytes.count) == chunk.position else {
                throw SnapshotError("snapshot chunk out of order")
            }
            p.bytes += chunk.bytes.readableBytesView
            partial = p
            guard Int64(p.bytes.count) >= chunk.totalBytes else { return false }
            _ = try Self.decode(p.bytes)
            files[chunk.id] = p.bytes
            partial = nil
            return true
        }
    }
    public func retain(newest count: Int) {
        lock.withLock {
            for id in files.keys.sorted().dropLast(count) { files.removeValue(forKey: id) }
        }
    }
    /// A crash loses a download in progress.
    public func crash() { lock.withLock { partial = nil } }
}
