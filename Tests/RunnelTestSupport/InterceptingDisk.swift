// A real disk whose file writes and syncs a test can step into: subclasses override `write` and
// `sync` (to gate, fail or count them) and everything else goes to `PosixDisk`.
import NIOCore
import RunnelLog

open class InterceptingDisk: Disk, @unchecked Sendable {
    public let base = PosixDisk()

    public init() {}

    /// Every write to a file opened through this disk; by default, writes through.
    open func write(_ buffer: ByteBuffer, at offset: Int64, to file: any DiskFile) throws {
        try file.write(buffer, at: offset)
    }

    /// Every fsync of a file opened through this disk, and of a directory (`file` nil).
    open func sync(_ file: (any DiskFile)?, path: String) throws {
        if let file { try file.sync() } else { try base.syncDirectory(path) }
    }

    public func open(_ path: String, create: Bool) throws -> any DiskFile {
        InterceptedFile(try base.open(path, create: create), disk: self)
    }
    public func exists(_ path: String) -> Bool { base.exists(path) }
    public func isDirectory(_ path: String) -> Bool { base.isDirectory(path) }
    public func list(_ directory: String) throws -> [String] { try base.list(directory) }
    public func makeDirectory(_ path: String) throws { try base.makeDirectory(path) }
    public func remove(_ path: String) throws { try base.remove(path) }
    public func removeTree(_ path: String) throws { try base.removeTree(path) }
    public func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    public func syncDirectory(_ path: String) throws { try sync(nil, path: path) }
    public func space(_ path: String) throws -> DiskSpace? { try base.space(path) }
}

/// A file of an `InterceptingDisk`: writes and syncs go through the disk.
final class InterceptedFile: DiskFile, @unchecked Sendable {
    let inner: any DiskFile
    let disk: InterceptingDisk

    init(_ inner: any DiskFile, disk: InterceptingDisk) {
        self.inner = inner
        self.disk = disk
    }

    var path: String { inner.path }
    func size() throws -> Int64 { try inner.size() }
    func read(at offset: Int64, count: Int) throws -> ByteBuffer { try inner.read(at: offset, count: count) }
    func write(_ buffer: ByteBuffer, at offset: Int64) throws { try disk.write(buffer, at: offset, to: inner) }
    func truncate(to size: Int64) throws { try inner.truncate(to: size) }
    func sync() throws { try disk.sync(inner, path: path) }
    func close() { inner.close() }
    func region(at offset: Int64, count: Int) throws -> FileRegion? { try inner.region(at: offset, count: count) }
    func pageCacheHandle() -> (any PageCacheHandle)? { inner.pageCacheHandle() }
}
