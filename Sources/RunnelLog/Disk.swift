import NIOCore

/// The file system as the log sees it. The real implementation is `PosixDisk`; the simulator
/// swaps in a disk that loses unsynced writes and tears blocks on crash.
public protocol Disk: Sendable {
    /// Opens (and with `create`, creates) a file for reading and writing.
    func open(_ path: String, create: Bool) throws -> any DiskFile
    func exists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// Names (not paths) of the entries of a directory.
    func list(_ directory: String) throws -> [String]
    /// Creates a directory and its parents.
    func makeDirectory(_ path: String) throws
    /// Removes a file.
    func remove(_ path: String) throws
    /// Removes a directory and everything under it.
    func removeTree(_ path: String) throws
    /// Renames atomically (within one file system).
    func rename(_ from: String, to: String) throws
    /// Makes a directory's entries (creates, renames, removes) durable.
    func syncDirectory(_ path: String) throws
    /// The size and free space of the file system holding `path`; nil when the disk cannot tell
    /// (the simulator).
    func space(_ path: String) throws -> DiskSpace?
}

extension Disk {
    public func space(_ path: String) throws -> DiskSpace? { nil }
}

/// A file system's size and the free space an unprivileged writer may use, in bytes (Java's
/// `FileStore.getTotalSpace` and `getUsableSpace`, which DescribeLogDirs v4 reports).
public struct DiskSpace: Sendable, Equatable {
    public var totalBytes: Int64
    public var usableBytes: Int64

    public init(totalBytes: Int64, usableBytes: Int64) {
        self.totalBytes = totalBytes
        self.usableBytes = usableBytes
    }
}

/// An open file. Callers serialize writes, truncations and closing (the log's append lock); reads
/// may run beside a write, at offsets the write does not touch (positional I/O, no shared cursor).
public protocol DiskFile: AnyObject, Sendable {
    var path: String { get }
    func size() throws -> Int64
    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    func read(at offset: Int64, count: Int) throws -> ByteBuffer
    func write(_ buffer: ByteBuffer, at offset: Int64) throws
    /// Writes `pieces` one after another from `offset`: one `pwritev` where the file has a
    /// descriptor, otherwise piece by piece.
    func write(_ pieces: [ByteBuffer], at offset: Int64) throws
    func truncate(to size: Int64) throws
    /// Makes written data durable (fdatasync).
    func sync() throws
    func close()
    /// A file region for zero-copy sends, owning its own descriptor (the caller closes its handle
    /// once sent); nil when the disk has no descriptors (the simulator).
    func region(at offset: Int64, count: Int) throws -> FileRegion?
    /// A handle on the file's page cache for drop-behind, with its own descriptor; nil when the
    /// disk has no page cache to drop (the simulator).
    func pageCacheHandle() -> (any PageCacheHandle)?
}

extension DiskFile {
    public func pageCacheHandle() -> (any PageCacheHandle)? { nil }

    public func write(_ pieces: [ByteBuffer], at offset: Int64) throws {
        var position = offset
        for piece in pieces {
            try write(piece, at: position)
            position += Int64(piece.readableBytes)
        }
    }

    /// Writes `bytes` at `offset`.
    public func write(bytes: [UInt8], at offset: Int64) throws {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try write(buffer, at: offset)
    }
}

/// An I/O failure, with the path and the OS error.
public struct DiskError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var errno: Int32
    public var message: String

    public init(operation: String, path: String, errno: Int32, message: String) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.message = message
    }

    public var description: String { "\(operation) \(path): \(message)" }
}
