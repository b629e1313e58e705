import NIOConcurrencyHelpers
import NIOCore

/// A segment's `.index` or `.timeindex` file, opened when first needed and closed again by
/// `release()`. The indexes live in memory (`LogSegment`), so their files are only written as
/// entries are added and read once at load: a segment that is not being written holds one
/// descriptor, its log's, not three. A broker with many partitions otherwise runs out of
/// descriptors at a third of the partitions (Kafka, whose index files are memory-mapped and
/// closed, keeps one per segment too).
final class SegmentIndexFile: @unchecked Sendable {
    let path: String
    private let disk: any Disk
    private let lock = NIOLock()
    private var file: (any DiskFile)?
    /// Written since the last sync.
    private var unsynced = false

    /// The file at `path`, not opened yet; or `open`, a handle on it already (the cleaner's
    /// output, opened under another name and renamed to `path`).
    init(disk: any Disk, path: String, open: (any DiskFile)? = nil) {
        self.disk = disk
        self.path = path
        self.file = open
    }

    /// Whether a descriptor is held (for tests).
    var isOpen: Bool { lock.withLock { file != nil } }

    private func openedLocked() throws -> any DiskFile {
        if let file { return file }
        let opened = try disk.open(path, create: true)
        file = opened
        return opened
    }

    /// Creates the file, empty, if it is not there (Kafka's layout has both index files beside
    /// every log), holding no descriptor after.
    func create() throws {
        try lock.withLock {
            guard file == nil, !disk.exists(path) else { return }
            try disk.open(path, create: true).close()
        }
    }

    /// The file's size; 0 for a file that is not there.
    func size() throws -> Int64 {
        try lock.withLock {
            if file == nil && !disk.exists(path) { return 0 }
            return try openedLocked().size()
        }
    }

    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        try lock.withLock { try openedLocked().read(at: offset, count: count) }
    }

    func write(_ buffer: ByteBuffer, at offset: Int64) throws {
        try lock.withLock {
            try openedLocked().write(buffer, at: offset)
            unsynced = true
        }
    }

    func truncate(to size: Int64) throws {
        try lock.withLock {
            // Emptying a file never written leaves nothing to do.
            if file == nil && size == 0 && !disk.exists(path) { return }
            try openedLocked().truncate(to: size)
            unsynced = true
        }
    }

    /// Makes what was written durable; nothing to do when nothing was written since.
    func sync() throws {
        try lock.withLock {
            guard let file, unsynced else { return }
            try file.sync()
            unsynced = false
        }
    }

    /// Closes the descriptor, after syncing what was written (an index file is rebuilt from its
    /// log when it does not match it, so a failed sync costs a rescan, never data); the next use
    /// opens the file again.
    func release() {
        lock.withLock {
            guard let file else { return }
            if unsynced { try? file.sync() }
            unsynced = false
            file.close()
            self.file = nil
        }
    }

    func close() {
        lock.withLock {
            file?.close()
            file = nil
        }
    }
}
