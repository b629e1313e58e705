import NIOCore
import RunnelCore

/// Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
/// `replication-offset-checkpoint`): a version line (0), a count line, then `topic partition offset`
/// per line. Written to a temp file, synced, renamed, and the directory synced.
public enum OffsetCheckpoint {
    public static func write(_ offsets: [TopicPartition: Int64], to path: String, disk: any Disk) throws {
        var text = "0\n\(offsets.count)\n"
        for (tp, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            text += "\(tp.topic) \(tp.partition) \(offset)\n"
        }
        try writeAtomically(text, to: path, disk: disk)
    }

    /// Reads a checkpoint; a missing file is empty, a malformed one is an error naming the line.
    public static func read(_ path: String, disk: any Disk) throws -> [TopicPartition: Int64] {
        guard disk.exists(path) else { return [:] }
        let file = try disk.open(path, create: false)
        defer { file.close() }
        let buffer = try file.read(at: 0, count: Int(try file.size()))
        let text = String(buffer: buffer)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).makeIterator()
        guard lines.next() == "0", let countLine = lines.next(), let count = Int(countLine) else {
            throw CheckpointError(path: path, reason: "bad header")
        }
        var out: [TopicPartition: Int64] = [:]
        for _ in 0..<count {
            guard let line = lines.next() else {
                throw CheckpointError(path: path, reason: "fewer entries than its count")
            }
            let parts = line.split(separator: " ")
            guard parts.count == 3, let p = Int32(parts[1]), let o = Int64(parts[2]) else {
                throw CheckpointError(path: path, reason: "bad line \"\(line)\"")
            }
            out[TopicPartition(String(parts[0]), p)] = o
        }
        return out
    }

    /// Writes `text` to `path` atomically, and durably unless `durable` is false (then a crash
    /// may leave the old file, or none, in its place).
    public static func writeAtomically(_ text: String, to path: String, disk: any Disk, durable: Bool = true) throws {
        let temp = path + ".tmp"
        let file = try disk.open(temp, create: true)
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        try file.truncate(to: 0)
        try file.write(buffer, at: 0)
        if durable { try file.sync() }
        file.close()
        try disk.rename(temp, to: path)
        guard durable else { return }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        try disk.syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Reads a whole small text file; nil when it does not exist.
    public static func readText(_ path: String, disk: any Disk) throws -> String? {
        guard disk.exists(path) else { return nil }
        let file = try disk.open(path, create: false)
        defer { file.close() }
        return String(buffer: try file.read(at: 0, count: Int(try file.size())))
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "checkpoint file \(path) is corrupt: \(reason)" }
}
