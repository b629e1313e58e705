import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog

/// An in-memory disk for the simulator. Every file has what was written (the page cache) and
/// what was synced (the platter). A crash keeps the synced bytes plus, at random, a torn prefix
/// of what was not synced: exactly what a power cut may leave. Directory operations (create,
/// rename, remove) are durable at once (a simplification: the real code syncs directories anyway).
public final class SimDisk: Disk, @unchecked Sendable {
    final class Content {
        var data: [UInt8] = []
        var synced: [UInt8] = []
    }

    private let lock = NIOLock()
    private var files: [String: Content] = [:]
    private var directories: Set<String> = ["/"]
    /// Counts of operations, for the run's statistics.
    public private(set) var syncCount = 0

    public init() {}

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let p = String(path[..<slash])
        return p.isEmpty ? "/" : p
    }

    public func open(_ path: String, create: Bool) throws -> any DiskFile {
        try lock.withLock {
            if files[path] == nil {
                guard create else {
                    throw DiskError(operation: "open", path: path, errno: 2, message: "No such file or directory")
                }
                guard directories.contains(Self.parent(path)) else {
                    throw DiskError(operation: "open", path: path, errno: 2, message: "No such directory")
                }
                files[path] = Content()
            }
            return SimFile(disk: self, path: path, content: files[path]!)
        }
    }

    public func exists(_ path: String) -> Bool { lock.withLock { files[path] != nil || directories.contains(path) } }
    public func isDirectory(_ path: String) -> Bool { lock.withLock { directories.contains(path) } }

    public func list(_ directory: String) throws -> [String] {
        lock.withLock {
            let prefix = directory.hasSuffix("/") ? directory : directory + "/"
            var names = Set<String>()
            for path in files.keys where path.hasPrefix(prefix) {
                let rest = path.dropFirst(prefix.count)
                if !rest.contains("/") { names.insert(String(rest)) }
            }
            for path in directories where path.hasPrefix(prefix) {
                let rest = path.dropFirst(prefix.count)
                if !rest.isEmpty && !rest.contains("/") { names.insert(String(rest)) }
            }
            return names.sorted()
        }
    }

    public func makeDirectory(_ path: String) throws {
        lock.withLock {
            var current = ""
            for part in path.split(separator: "/") {
                current += "/" + part
                directories.insert(current)
            }
        }
    }

    public func remove(_ path: String) throws { _ = lock.withLock { files.removeValue(forKey: path) } }

    public func removeTree(_ path: String) throws {
        lock.withLock {
            let prefix = path + "/"
            for key in files.keys where key == path || key.hasPrefix(prefix) { files.removeValue(forKey: key) }
            directories = directories.filter { $0 != path && !$0.hasPrefix(prefix) }
        }
    }

    public func rename(_ from: String, to: String) throws {
        try lock.withLock {
            if let content = files.removeValue(forKey: from) {
                files[to] = content
            } else if directories.contains(from) {
                let prefix = from + "/"
                var moved: [String: Content] = [:]
                for (key, value) in files where key.hasPrefix(prefix) {
                    moved[to + "/" + key.dropFirst(prefix.count)] = value
                }
                for key in files.keys where key.hasPrefix(prefix) { files.removeValue(forKey: key) }
                files.merge(moved) { $1 }
                let dirs = directories.filter { $0 == from || $0.hasPrefix(prefix) }
                for d in dirs {
                    directories.remove(d)
                    directories.insert(to + d.dropFirst(from.count))
                }
            } else {
                throw DiskError(operation: "rename", path: from, errno: 2, message: "No such file or directory")
            }
        }
    }

    public func syncDirectory(_ path: String) throws {}

    func synced(_ content: Content) {
        lock.withLock {
            content.synced = content.data
            syncCount += 1
        }
    }

    /// A power cut: every file keeps what was synced, plus maybe a torn piece of the rest.
    public func crash(rng: inout SeededRandom, tornWrites: Bool) {
        lock.withLock {
            // In path order: the random choices must not depend on hash order, or a seed would not replay.
            for path in files.keys.sorted() {
                let content = files[path]!
                var kept = content.synced
                if tornWrites, content.data.count > content.synced.count, content.data.starts(with: content.synced),
                    rng.next() % 2 == 0
                {
                    let extra = content.data.count - content.synced.count
                    let keep = Int(rng.next() % UInt64(extra + 1))
                    kept += content.data[content.synced.count..<content.synced.count + keep]
                    // Sometimes the torn piece is garbage, not just short.
                    if keep > 0 && rng.next() % 4 == 0 {
                        kept[kept.count - 1 - Int(rng.next() % UInt64(keep))] ^= 0xFF
                    }
                }
                content.data = kept
                content.synced = kept
            }
        }
    }

    /// The kernel writing dirty pages back on its own: each file with unsynced data reaches the
    /// platter with probability `percent`, whether or not the program ever syncs it.
    public func writeBack(rng: inout SeededRandom, percent: UInt64) {
        lock.withLock {
            for path in files.keys.sorted() {
                let content = files[path]!
                if content.data != content.synced && rng.next() % 100 < percent { content.synced = content.data }
            }
        }
    }

    func withContent<T>(_ content: Content, _ body: (Content) throws -> T) rethrows -> T {
        try lock.withLock { try body(content) }
    }
}

final class SimFile: DiskFile, @unchecked Sendable {
    let disk: SimDisk
    let path: String
    let content: SimDisk.Content

    init(disk: SimDisk, path: String, content: SimDisk.Content) {
        self.disk = disk
        self.path = path
        self.content = content
    }

    func size() throws -> Int64 { disk.withContent(content) { Int64($0.data.count) } }

    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        disk.withContent(content) { c in
            let start = min(Int(offset), c.data.count)
            let end = min(start + count, c.data.count)
            var b = ByteBufferAllocator().buffer(capacity: end - start)
            b.writeBytes(c.data[start..<end])
            return b
        }
    }

    func write(_ buffer: ByteBuffer, at offset: Int64) throws {
        disk.withContent(content) { c in
            let bytes = Array(buffer.readableBytesView)
            let start = Int(offset)
            if c.data.count < start { c.data += [UInt8](repeating: 0, count: start - c.data.count) }
            let overlap = min(bytes.count, c.data.count - start)
            if overlap > 0 { c.data.replaceSubrange(start..<start + overlap, with: bytes[0..<overlap]) }
            if overlap < bytes.count { c.data += bytes[overlap...] }
        }
    }

    func truncate(to size: Int64) throws {
        disk.withContent(content) { c in
            if Int(size) < c.data.count { c.data.removeLast(c.data.count - Int(size)) }
            // A truncation reaches the platter with the next sync; until then the old tail may return.
        }
    }

    func sync() throws { disk.synced(content) }
    func close() {}
    func region(at offset: Int64, count: Int) throws -> FileRegion? { nil }
}
