#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CPageCache
import NIOCore

/// The real disk: POSIX calls, `pread`/`pwrite`, `fdatasync`.
public struct PosixDisk: Disk {
    public init() {}

    static func error(_ operation: String, _ path: String) -> DiskError {
        let code = errno
        return DiskError(operation: operation, path: path, errno: code, message: String(cString: strerror(code)))
    }

    public func open(_ path: String, create: Bool) throws -> any DiskFile {
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let fd = Glibc.open(path, flags, 0o644)
        if fd < 0 { throw Self.error("open", path) }
        return PosixFile(fd: fd, path: path)
    }

    public func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public func space(_ path: String) throws -> DiskSpace? {
        var stats = statvfs()
        if statvfs(path, &stats) != 0 { throw Self.error("statvfs", path) }
        let unit = Int64(stats.f_frsize)
        return DiskSpace(totalBytes: Int64(stats.f_blocks) * unit, usableBytes: Int64(stats.f_bavail) * unit)
    }

    public func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw Self.error("list", directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func makeDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if !isDirectory(prefix) && mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw Self.error("mkdir", prefix)
            }
            prefix += "/"
        }
    }

    public func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw Self.error("remove", path) }
    }

    public func removeTree(_ path: String) throws {
        guard isDirectory(path) else { return try remove(path) }
        for name in try list(path) {
            try removeTree(path + "/" + name)
        }
        if rmdir(path) != 0 && errno != ENOENT { throw Self.error("rmdir", path) }
    }

    public func rename(_ from: String, to: String) throws {
        if Glibc.rename(from, to) != 0 { throw Self.error("rename", from) }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw Self.error("open directory", path) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw Self.error("fsync directory", path) }
    }
}

/// A file opened by `PosixDisk`.
public final class PosixFile: DiskFile, @unchecked Sendable {
    // The descriptor is immutable after init except for `close`, which the owner calls once no
    // other access can happen.
    private var fd: Int32
    public let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    public func size() throws -> Int64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw PosixDisk.error("stat", path) }
        return Int64(st.st_size)
    }

    public func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var done = 0
        try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PosixDisk.error("read", path)
                }
                if n == 0 { break }
                done += n
            }
            return done
        }
        return buffer
    }

    public func write(_ buffer: ByteBuffer, at offset: Int64) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PosixDisk.error("write", path)
                }
                done += n
            }
        }
    }

    /// Linux's IOV_MAX, which Glibc's module does not export.
    private static let vectorsPerWriteMax = 1024

    public func write(_ pieces: [ByteBuffer], at offset: Int64) throws {
        if pieces.count == 1 { return try write(pieces[0], at: offset) }
        // Each buffer's storage is retained while the kernel reads from its pointer.
        var storages: [Unmanaged<AnyObject>] = []
        var vectors: [iovec] = []
        storages.reserveCapacity(pieces.count)
        vectors.reserveCapacity(pieces.count)
        defer { for storage in storages { storage.release() } }
        for piece in pieces where piece.readableBytes > 0 {
            piece.withUnsafeReadableBytesWithStorageManagement { raw, storage in
                storages.append(storage.retain())
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress!), iov_len: raw.count))
            }
        }
        var first = 0
        var position = off_t(offset)
        while first < vectors.count {
            let count = Int32(min(vectors.count - first, Self.vectorsPerWriteMax))
            let n = vectors.withUnsafeBufferPointer { pwritev(fd, $0.baseAddress! + first, count, position) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixDisk.error("write", path)
            }
            position += off_t(n)
            var written = n
            while written > 0 {  // a short write: go on from the first byte not written
                if written >= vectors[first].iov_len {
                    written -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base += written
                    vectors[first].iov_len -= written
                    written = 0
                }
            }
        }
    }

    public func truncate(to size: Int64) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw PosixDisk.error("truncate", path) }
    }

    public func sync() throws {
        if fd < 0 { return }
        if fdatasync(fd) != 0 { throw PosixDisk.error("fsync", path) }
    }

    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    public func pageCacheHandle() -> (any PageCacheHandle)? {
        let copy = dup(fd)
        return copy < 0 ? nil : PosixPageCacheHandle(fd: copy)
    }

    public func region(at offset: Int64, count: Int) throws -> FileRegion? {
        let copy = dup(fd)
        if copy < 0 { throw PosixDisk.error("dup", path) }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy)
        return FileRegion(fileHandle: handle, readerIndex: Int(offset), endIndex: Int(offset) + count)
    }
}

/// A duplicated descriptor of a `PosixFile`, for drop-behind.
struct PosixPageCacheHandle: PageCacheHandle {
    let fd: Int32

    func drop(from: Int64, to: Int64) {
        guard to > from else { return }
        // Written back first (that range only: no device flush, no journal commit), so the
        // drop finds every page of it clean. Best effort: a failure leaves pages cached, and
        // the flush policy's next fsync reports a write error.
        _ = runnel_pagecache_write_back(fd, from, to - from)
        _ = runnel_pagecache_drop(fd, from, to - from)
    }

    func close() { _ = Glibc.close(fd) }
}
