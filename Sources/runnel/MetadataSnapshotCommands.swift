import ArgumentParser
import Foundation
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelNode
import RunnelQuorum
import RunnelSnapshotStore
import RunnelWire

// Offline inspection of metadata snapshots and data dirs (as kafka-metadata-shell does):
// `runnel metadata snapshot|ls|cat|tree|sql FILE`. FILE is an SQLite snapshot file, a node's data
// dir, or its `__cluster_metadata-0` directory; a directory means its newest snapshot plus the
// log tail replayed on top. Nothing under FILE is ever written.

// MARK: errors

/// Runs an inspection command body: any failure ends as one sentence on stderr and exit status 1.
func inspect<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch let error as CLIError {
        fail(sentence(error.description))
    } catch let error as SnapshotError {
        fail(sentence(error.description))
    } catch let error as DiskError {
        fail(sentence("cannot read the metadata log: \(error)"))
    } catch {
        fail(sentence("\(error)"))
    }
}

/// `text` on one line, ending with a full stop.
func sentence(_ text: String) -> String {
    let line = text.split(whereSeparator: \.isNewline).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    return line.hasSuffix(".") || line.hasSuffix("?") || line.hasSuffix("!") ? line : line + "."
}

// MARK: JSON

/// A JSON value built at run time (records and tree nodes have no fixed Swift shape).
indirect enum JSONValue: Encodable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Members in order (the encoder sorts keys anyway).
    case object([(String, JSONValue)])

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .int(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .double(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .string(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .array(let values):
            var c = encoder.unkeyedContainer()
            for v in values { try c.encode(v) }
        case .object(let members):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in members { try c.encode(v, forKey: Key(stringValue: k)) }
        }
    }

    init(_ value: MetadataValue) {
        switch value {
        case .int(let v): self = .int(v)
        case .bool(let v): self = .bool(v)
        case .string(let v): self = .string(v)
        case .ints(let v): self = .array(v.map { .int($0) })
        case .strings(let v): self = .array(v.map { .string($0) })
        case .null: self = .null
        }
    }

    /// Compact text for people: strings bare (quoted when empty or spaced), lists in brackets,
    /// objects in braces.
    var text: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return v ? "true" : "false"
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return v.isEmpty || v.contains(where: { $0 == " " || $0 == "\t" }) ? "\"\(v)\"" : v
        case .array(let values): return "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let members): return "{" + members.map { "\($0.0)=\($0.1.text)" }.joined(separator: " ") + "}"
        }
    }
}

// MARK: temp files

/// Temporary directories of this process, removed at exit (also after `fail`).
enum TempFiles {
    nonisolated(unsafe) static var paths: [String] = []
    nonisolated(unsafe) static var registered = false

    static func makeDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "runnel-inspect-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CLIError(
                "cannot create a temporary directory under \(NSTemporaryDirectory()): \(error.localizedDescription)")
        }
        if !registered {
            registered = true
            atexit { TempFiles.removeAll() }
        }
        paths.append(path)
        return path
    }

    static func removeAll() {
        for p in paths { try? FileManager.default.removeItem(atPath: p) }
        paths = []
    }
}

// MARK: locating metadata on disk

/// Where a node keeps its metadata: the `__cluster_metadata-0` directory (segments and
/// snapshots) and the data dir above it (meta.properties, quorum-state).
struct MetadataLocation {
    var metadataLogDir: String
    var dataDir: String?

    static let logDirName = MetadataLog.topicPartition.description

    /// Finds the metadata log directory from a data dir or the log directory itself.
    static func find(_ path: String) throws -> MetadataLocation {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("\(path) does not exist") }
        guard isDir.boolValue else {
            throw CLIError("\(path) is a file, not a directory; give a node's data dir or its \(logDirName) directory")
        }
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        let nested = trimmed + "/" + logDirName
        var nestedIsDir: ObjCBool = false
        if fm.fileExists(atPath: nested, isDirectory: &nestedIsDir), nestedIsDir.boolValue {
            return MetadataLocation(metadataLogDir: nested, dataDir: trimmed)
        }
        let url = URL(fileURLWithPath: trimmed).standardizedFileURL
        let parent = url.deletingLastPathComponent().path
        if url.lastPathComponent.hasPrefix("__cluster_metadata-") {
            return MetadataLocation(metadataLogDir: trimmed, dataDir: parent)
        }
        guard let names = try? fm.contentsOfDirectory(atPath: trimmed) else {
            throw CLIError("cannot list the directory \(path)")
        }
        if names.contains(where: { $0.hasSuffix(".log") || SQLiteSnapshot.parse(fileName: $0) != nil }) {
            return MetadataLocation(metadataLogDir: trimmed, dataDir: parent)
        }
        throw CLIError(
            "\(path) is neither a node's data dir (it has no \(logDirName) directory) nor a metadata log directory")
    }

    /// Snapshot files, oldest first.
    func snapshots() -> [(path: String, endOffset: Int64, epoch: Int32)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: metadataLogDir)) ?? []
        return names.compactMap { name in
            SQLiteSnapshot.parse(fileName: name).map { (metadataLogDir + "/" + name, $0.endOffset, $0.epoch) }
        }
        .sorted { ($0.endOffset, $0.epoch) < ($1.endOffset, $1.epoch) }
    }

    /// The cluster id from meta.properties, when readable.
    func clusterId() -> String? {
        for dir in [dataDir, metadataLogDir].compactMap({ $0 }) {
            if let meta = try? MetaProperties.read(directory: dir, disk: PosixDisk()) { return meta.clusterId }
        }
        return nil
    }

    /// The voters named in quorum-state, when readable.
    func voters() -> [Int32]? {
        guard let dataDir,
            let data = FileManager.default.contents(atPath: dataDir + "/" + QuorumStateFile.name),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let voters = object["currentVoters"] as? [[String: Any]]
        else { return nil }
        return voters.compactMap { ($0["voterId"] as? NSNumber)?.int32Value }.sorted()
    }
}

// MARK: loading an image

/// The metadata an offline command works on: one snapshot file, or a data dir's newest snapshot
/// with the log tail replayed.
struct LoadedMetadata {
    enum Kind: String { case snapshot, dataDir }
    var source: String
    var kind: Kind
    /// The snapshot file read (nil for a data dir without one).
    var snapshotPath: String?
    var header: SQLiteSnapshot.Header?
    var image: MetadataImage
    var voters: [Int32]
    var clusterId: String?
    /// The offset after the last record included, and the epoch of that record.
    var endOffset: Int64
    var epoch: Int32
    var lastContainedTimestamp: Int64
    /// Log records replayed on top of the snapshot.
    var replayedRecords: Int

    static func load(_ path: String) throws -> LoadedMetadata {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CLIError("\(path) does not exist")
        }
        return isDir.boolValue ? try loadDirectory(path) : try loadSnapshot(path)
    }

    /// Whether the file starts like an SQLite database.
    static func looksLikeSQLite(_ path: String) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot open \(path) for reading") }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 16)) ?? Data()
        return magic == Data("SQLite format 3\0".utf8)
    }

    /// Reads and verifies a snapshot file, saying plainly when it is not one or is damaged.
    static func readSnapshot(
        _ path: String
    ) throws -> (header: SQLiteSnapshot.Header, image: MetadataImage, voters: [Int32]) {
        guard try looksLikeSQLite(path) else {
            throw CLIError("\(path) is not a Runnel snapshot (it is not an SQLite file)")
        }
        func damaged(_ error: SnapshotError) -> CLIError {
            var reason = error.description
            if let range = reason.range(of: "SQLite error") { reason = String(reason[range.lowerBound...]) }
            if let range = reason.range(of: " - while executing") { reason = String(reason[..<range.lowerBound]) }
            while reason.hasSuffix(")") || reason.hasSuffix(".") { reason.removeLast() }
            return CLIError("\(path) is corrupt: SQLite cannot read it (\(reason))")
        }
        let tables: [String]
        do {
            tables = try SQLiteSnapshot.query(path, sql: "SELECT name FROM sqlite_master WHERE type = 'table'").rows
                .compactMap { $0.first ?? nil }
        } catch let error as SnapshotError {
            throw damaged(error)
        }
        guard tables.contains("snapshot") else {
            throw CLIError("\(path) is not a Runnel snapshot (an SQLite file without a snapshot table)")
        }
        do {
            return try SQLiteSnapshot.read(path)
        } catch let error as SnapshotError where error.description.contains("malformed") {
            throw damaged(error)
        }
    }

    static func loadSnapshot(_ path: String) throws -> LoadedMetadata {
        let (header, image, voters) = try readSnapshot(path)
        return LoadedMetadata(
            source: path, kind: .snapshot, snapshotPath: path, header: header, image: image, voters: voters,
            clusterId: header.clusterId, endOffset: header.endOffset, epoch: header.epoch,
            lastContainedTimestamp: header.lastContainedTimestamp, replayedRecords: 0)
    }

    static func loadDirectory(_ path: String) throws -> LoadedMetadata {
        let location = try MetadataLocation.find(path)
        var image = MetadataImage.empty
        var header: SQLiteSnapshot.Header?
        var snapshotPath: String?
        var voters = location.voters()
        if let newest = location.snapshots().last {
            let loaded = try readSnapshot(newest.path)
            image = loaded.image
            header = loaded.header
            snapshotPath = newest.path
            if !loaded.voters.isEmpty { voters = loaded.voters }
        }
        let start = header?.endOffset ?? 0
        var endOffset = start
        var epoch = header?.epoch ?? -1
        var timestamp = header?.lastContainedTimestamp ?? 0
        var replayed = 0
        if let reader = try MetadataLogReader.open(location.metadataLogDir) {
            if reader.logStartOffset > start && reader.logEndOffset > reader.logStartOffset {
                let what = header == nil ? "there is no snapshot" : "the newest snapshot ends at offset \(start)"
                throw CLIError(
                    "the metadata log in \(location.metadataLogDir) starts at offset \(reader.logStartOffset) but \(what): records in between are missing"
                )
            }
            var delta = MetadataDelta(image)
            try reader.forEach(from: start) { entry in
                if let record = entry.record {
                    delta.replay(record, offset: entry.offset, epoch: entry.epoch)
                    replayed += 1
                } else {
                    delta.advance(offset: entry.offset, epoch: entry.epoch)
                }
                endOffset = entry.offset + 1
                epoch = entry.epoch
                timestamp = entry.timestamp
            }
            image = delta.apply()
        }
        if header == nil && endOffset == 0 {
            throw CLIError("\(path) holds no metadata: no snapshot and an empty metadata log")
        }
        return LoadedMetadata(
            source: path, kind: .dataDir, snapshotPath: snapshotPath, header: header, image: image,
            voters: voters ?? [], clusterId: header?.clusterId ?? location.clusterId(),
            endOffset: endOffset, epoch: epoch, lastContainedTimestamp: timestamp, replayedRecords: replayed)
    }

    var tree: MetadataNode { MetadataTree.build(image, voters: voters, clusterId: clusterId) }

    /// A snapshot file holding exactly this metadata, for SQL: the file itself, or the replayed
    /// image written to a temporary snapshot.
    func sqlFile() throws -> String {
        if let snapshotPath, replayedRecords == 0, endOffset == header?.endOffset { return snapshotPath }
        let dir = try TempFiles.makeDirectory()
        return try SQLiteSnapshot.write(
            image, clusterId: clusterId ?? "", endOffset: endOffset, epoch: max(epoch, 0), voters: voters,
            lastContainedTimestamp: lastContainedTimestamp, directory: dir)
    }

    /// The summary `runnel metadata snapshot` prints.
    var summary: [(String, JSONValue)] {
        var partitions = 0
        for (_, topic) in image.topicsById { partitions += topic.partitionCount }
        var configEntries = 0
        for (_, entries) in image.configs { configEntries += entries.count }
        let fenced = image.brokers.values.filter(\.fenced).count
        return [
            ("source", .string(source)),
            ("kind", .string(kind.rawValue)),
            ("snapshotFile", snapshotPath.map { .string($0) } ?? .null),
            ("clusterId", clusterId.map { .string($0) } ?? .null),
            ("endOffset", .int(endOffset)),
            ("epoch", .int(Int64(epoch))),
            ("recordCount", .int(image.provenance.recordCount)),
            ("replayedLogRecords", .int(Int64(replayedRecords))),
            ("lastContainedTimestamp", .int(lastContainedTimestamp)),
            ("voters", .array(voters.map { .int(Int64($0)) })),
            ("brokers", .int(Int64(image.brokers.count))),
            ("fencedBrokers", .int(Int64(fenced))),
            ("topics", .int(Int64(image.topicsById.count))),
            ("partitions", .int(Int64(partitions))),
            ("configResources", .int(Int64(image.configs.count))),
            ("configEntries", .int(Int64(configEntries))),
            ("acls", .int(Int64(image.acls.count))),
            ("scramCredentials", .int(Int64(image.scramCredentials.count))),
            ("features", .object(image.features.keys.sorted().map { ($0, .int(Int64(image.features[$0]!))) })),
            ("nextProducerId", .int(image.nextProducerId)),
        ]
    }
}

// MARK: rendering the tree

/// Text and JSON views of tree nodes, shared by the commands and the shell.
enum TreeView {
    static func resolve(
        _ root: MetadataNode, _ path: String, from cwd: String = "/"
    ) throws -> (path: String, node: MetadataNode) {
        let absolute = MetadataTree.normalize(path, from: cwd)
        guard let node = root.node(at: absolute) else {
            throw CLIError("\(absolute) does not exist in the metadata tree (try ls /)")
        }
        return (absolute, node)
    }

    /// `ls`: the children of a directory, or the node itself for a leaf.
    static func lsEntries(_ path: String, _ node: MetadataNode) -> [(name: String, path: String, node: MetadataNode)] {
        if !node.isDirectory { return [(node.name, path, node)] }
        return node.children.map { ($0.name, MetadataTree.join(path, $0.name), $0) }
    }

    static func lsText(_ path: String, _ node: MetadataNode) -> [String] {
        lsEntries(path, node).map { $0.name + ($0.node.isDirectory ? "/" : "") }
    }

    static func lsJSON(_ path: String, _ node: MetadataNode) -> JSONValue {
        .array(
            lsEntries(path, node).map { entry in
                .object([
                    ("name", .string(entry.name)), ("path", .string(entry.path)),
                    ("directory", .bool(entry.node.isDirectory)),
                    ("children", .int(Int64(entry.node.children.count))),
                ])
            })
    }

    static func catText(_ path: String, _ node: MetadataNode) throws -> [String] {
        if node.fields.isEmpty && node.isDirectory { throw CLIError("\(path) is a directory; use ls or tree") }
        let width = (node.fields.map(\.name.count).max() ?? 0) + 2
        return node.fields.map {
            ($0.name + ":").padding(toLength: width, withPad: " ", startingAt: 0) + $0.value.description
        }
    }

    static func fieldsJSON(_ node: MetadataNode) -> JSONValue {
        .object(node.fields.map { ($0.name, JSONValue($0.value)) })
    }

    static func catJSON(_ path: String, _ node: MetadataNode) -> JSONValue {
        .object([("path", .string(path)), ("fields", fieldsJSON(node))])
    }

    static func treeText(_ path: String, _ node: MetadataNode) -> [String] {
        var out: [String] = []
        func visit(_ n: MetadataNode, label: String, depth: Int) {
            let fields = n.fields.map { "\($0.name)=\($0.value.description)" }.joined(separator: " ")
            let name = label + (n.isDirectory && label != "/" ? "/" : "")
            out.append(String(repeating: "  ", count: depth) + name + (fields.isEmpty ? "" : "  " + fields))
            for child in n.children { visit(child, label: child.name, depth: depth + 1) }
        }
        visit(node, label: path == "/" ? "/" : node.name, depth: 0)
        return out
    }

    static func treeJSON(_ path: String, _ node: MetadataNode) -> JSONValue {
        .object([
            ("name", .string(node.name)), ("path", .string(path)), ("directory", .bool(node.isDirectory)),
            ("fields", fieldsJSON(node)),
            ("children", .array(node.children.map { treeJSON(MetadataTree.join(path, $0.name), $0) })),
        ])
    }
}

/// Runs SQL over a snapshot file: a table for people, rows as JSON objects for scripts.
enum SQLView {
    static func run(_ file: String, _ sql: String) throws -> (columns: [String], rows: [[String?]]) {
        let trimmed = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw CLIError("give an SQL query, e.g. \"SELECT * FROM topics\"") }
        do {
            return try SQLiteSnapshot.query(file, sql: trimmed)
        } catch let error as SnapshotError where error.description.hasPrefix("SQL error: ") {
            // "SQL error: SQLite error 1: no such table: x - while executing `...`" -> "no such table: x"
            var reason = String(error.description.dropFirst("SQL error: ".count))
            if let range = reason.range(of: " - while executing") { reason = String(reason[..<range.lowerBound]) }
            if reason.hasPrefix("SQLite error "), let colon = reason.firstIndex(of: ":") {
                reason = String(reason[reason.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            }
            if reason.hasPrefix("Multiple statements") { throw CLIError("give one SQL statement at a time") }
            throw CLIError("the query failed: \(reason)")
        }
    }

    static func text(_ result: (columns: [String], rows: [[String?]])) -> [String] {
        var table = [result.columns]
        for row in result.rows { table.append(row.map { $0 ?? "NULL" }) }
        var lines: [String] = []
        if !result.columns.isEmpty {
            var widths = result.columns.map(\.count)
            for row in table {
                for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
            }
            for row in table {
                lines.append(
                    row.enumerated().map {
                        $0.element.padding(toLength: widths[$0.offset] + 2, withPad: " ", startingAt: 0)
                    }
                    .joined().trimmingCharacters(in: .whitespaces))
            }
        }
        lines.append("(\(result.rows.count) row\(result.rows.count == 1 ? "" : "s"))")
        return lines
    }

    static func json(_ result: (columns: [String], rows: [[String?]])) -> JSONValue {
        .array(
            result.rows.map { row in
                .object(zip(result.columns, row).map { ($0, $1.map { .string($0) } ?? .null) })
            })
    }
}

// MARK: commands

struct SnapshotFileOptions: ParsableArguments {
    @Argument(
        help:
            "A snapshot file (*.checkpoint.sqlite), a node's data dir, or its __cluster_metadata-0 directory (newest snapshot plus the log tail)."
    )
    var file: String

    @Flag(help: "Print JSON (stable field names) instead of text.")
    var json = false
}

struct MetadataSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Summarize a metadata snapshot or a data dir: end offset, epoch, cluster id, counts.")
    @OptionGroup var options: SnapshotFileOptions

    func run() throws {
        let summary = inspect { try LoadedMetadata.load(options.file).summary }
        if options.json { return printJSON(JSONValue.object(summary)) }
        let width = (summary.map(\.0.count).max() ?? 0) + 2
        for (k, v) in summary {
            let label = k.prefix(1).uppercased() + k.dropFirst() + ":"
            let value: String
            switch v {
            case .object(let members): value = members.map { "\($0.0)=\($0.1.text)" }.joined(separator: " ")
            case .null: value = "-"
            default: value = v.text
            }
            print(label.padding(toLength: width, withPad: " ", startingAt: 0) + value)
        }
    }
}

struct MetadataLs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract:
            "List a node of the metadata tree (/brokers, /topics, /configs, /features, /producerIds, /acls, /scram, /quorum)."
    )
    @OptionGroup var options: SnapshotFileOptions
    @Argument(help: "Path in the tree.") var path: String = "/"

    func run() throws {
        let (absolute, node) = inspect { try TreeView.resolve(LoadedMetadata.load(options.file).tree, path) }
        if options.json { return printJSON(TreeView.lsJSON(absolute, node)) }
        for line in TreeView.lsText(absolute, node) { print(line) }
    }
}

struct MetadataCat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat", abstract: "Show the fields of a node of the metadata tree.")
    @OptionGroup var options: SnapshotFileOptions
    @Argument(help: "Path in the tree, e.g. /topics/orders/0.") var path: String

    func run() throws {
        let (absolute, node) = inspect { try TreeView.resolve(LoadedMetadata.load(options.file).tree, path) }
        if options.json { return printJSON(TreeView.catJSON(absolute, node)) }
        let lines = inspect { try TreeView.catText(absolute, node) }
        for line in lines { print(line) }
    }
}

struct MetadataTreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree", abstract: "Print a node of the metadata tree and everything below it.")
    @OptionGroup var options: SnapshotFileOptions
    @Argument(help: "Path in the tree.") var path: String = "/"

    func run() throws {
        let (absolute, node) = inspect { try TreeView.resolve(LoadedMetadata.load(options.file).tree, path) }
        if options.json { return printJSON(TreeView.treeJSON(absolute, node)) }
        for line in TreeView.treeText(absolute, node) { print(line) }
    }
}

struct MetadataSQL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql",
        abstract:
            "Run read-only SQL over a snapshot's tables (snapshot, brokers, broker_endpoints, broker_features, controllers, controller_endpoints, controller_features, topics, partitions, configs, features, producer_ids, acls, voters, scram_credentials)."
    )
    @OptionGroup var options: SnapshotFileOptions
    @Argument(help: "The query, e.g. \"SELECT topic_name, partition, leader FROM partitions\".") var query: String
    @Flag(
        name: .customLong("no-verify"),
        help: "Query a snapshot file without checking its checksum first (to look into a damaged file).")
    var noVerify = false

    func run() throws {
        let result = inspect { () throws -> (columns: [String], rows: [[String?]]) in
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: options.file, isDirectory: &isDir) else {
                throw CLIError("\(options.file) does not exist")
            }
            let file: String
            if !isDir.boolValue && noVerify {
                guard try LoadedMetadata.looksLikeSQLite(options.file) else {
                    throw CLIError("\(options.file) is not a Runnel snapshot (it is not an SQLite file)")
                }
                file = options.file
            } else {
                file = try LoadedMetadata.load(options.file).sqlFile()
            }
            return try SQLView.run(file, query)
        }
        if options.json { return printJSON(SQLView.json(result)) }
        for line in SQLView.text(result) { print(line) }
    }
}
