import ArgumentParser
import Foundation
import NIOCore
import RunnelCore
import RunnelLog
import RunnelQuorum
import RunnelWire

// `runnel metadata log --dir DIR`: the metadata log decoded record by record, as
// `kafka-dump-log --cluster-metadata-decoder` prints it. The segments are copied to a temporary
// directory and opened there, so nothing of the node's is touched (opening a log may rebuild
// indexes or trim a torn tail).

/// One decoded entry of the metadata log.
struct DecodedLogEntry {
    var offset: Int64
    var epoch: Int32
    var timestamp: Int64
    var isControl: Bool
    /// The record type (metadata record api key), or the control record type.
    var typeId: Int16
    var typeName: String
    var version: Int16?
    /// The metadata record (nil for control records and undecodable ones).
    var record: MetadataRecord?
    /// The decoded body, for printing (nil when it could not be decoded).
    var body: Any?
    var error: String?

    var fields: [(String, JSONValue)] {
        guard let body else { return [] }
        guard case .object(let members) = Reflection.value(body) else { return [] }
        // A SCRAM credential's keys are enough to pose as the server: redacted, as Kafka's tools do.
        guard body is UserScramCredentialRecord else { return members }
        return members.map { ["storedKey", "serverKey"].contains($0.0) ? ($0.0, .string("[redacted]")) : $0 }
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("offset", .int(offset)), ("epoch", .int(Int64(epoch))), ("timestamp", .int(timestamp)),
            ("control", .bool(isControl)), ("type", .string(typeName)), ("typeId", .int(Int64(typeId))),
            ("version", version.map { .int(Int64($0)) } ?? .null), ("fields", .object(fields)),
        ]
        if let error { members.append(("error", .string(error))) }
        return .object(members)
    }
}

/// Turns generated record structs into JSON values with `Mirror`.
enum Reflection {
    static func value(_ any: Any) -> JSONValue {
        switch any {
        case let v as String: return .string(v)
        case let v as Bool: return .bool(v)
        case let v as Int: return .int(Int64(v))
        case let v as Int8: return .int(Int64(v))
        case let v as Int16: return .int(Int64(v))
        case let v as Int32: return .int(Int64(v))
        case let v as Int64: return .int(v)
        case let v as UInt8: return .int(Int64(v))
        case let v as UInt16: return .int(Int64(v))
        case let v as UInt32: return .int(Int64(v))
        case let v as UInt64: return v <= UInt64(Int64.max) ? .int(Int64(v)) : .string(String(v))
        case let v as Double: return .double(v)
        case let v as KafkaUUID: return .string(v.description)
        case let v as NodeID: return .int(Int64(v.rawValue))
        case let v as ByteBuffer: return .string(v.readableBytesView.map { String(format: "%02x", $0) }.joined())
        default: break
        }
        let mirror = Mirror(reflecting: any)
        switch mirror.displayStyle {
        case .optional:
            return mirror.children.first.map { value($0.value) } ?? .null
        case .collection, .set:
            return .array(mirror.children.map { value($0.value) })
        case .struct, .class:
            return .object(
                mirror.children.compactMap { child in
                    guard let label = child.label, label != "unknownTaggedFields" else { return nil }
                    return (label, value(child.value))
                })
        default:
            return .string(String(describing: any))
        }
    }
}

/// Metadata record and control record types, by id, for `--type` and for naming control records.
enum MetadataRecordTypes {
    static let records: [(Int16, String)] = [
        (0, "RegisterBrokerRecord"), (1, "UnregisterBrokerRecord"), (2, "TopicRecord"), (3, "PartitionRecord"),
        (4, "ConfigRecord"),
        (5, "PartitionChangeRecord"), (7, "FenceBrokerRecord"), (8, "UnfenceBrokerRecord"), (9, "RemoveTopicRecord"),
        (10, "DelegationTokenRecord"), (11, "UserScramCredentialRecord"), (12, "FeatureLevelRecord"),
        (14, "ClientQuotaRecord"),
        (15, "ProducerIdsRecord"), (17, "BrokerRegistrationChangeRecord"), (18, "AccessControlEntryRecord"),
        (19, "RemoveAccessControlEntryRecord"), (20, "NoOpRecord"), (21, "ZkMigrationStateRecord"),
        (22, "RemoveUserScramCredentialRecord"), (23, "BeginTransactionRecord"), (24, "EndTransactionRecord"),
        (25, "AbortTransactionRecord"), (26, "RemoveDelegationTokenRecord"), (27, "RegisterControllerRecord"),
    ]
    static let controls: [(Int16, String)] = [
        (ControlRecordType.abort, "AbortMarker"), (ControlRecordType.commit, "CommitMarker"),
        (ControlRecordType.leaderChange, "LeaderChangeMessage"),
        (ControlRecordType.snapshotHeader, "SnapshotHeaderRecord"),
        (ControlRecordType.snapshotFooter, "SnapshotFooterRecord"),
        (ControlRecordType.kRaftVersion, "KRaftVersionRecord"),
        (ControlRecordType.voters, "VotersRecord"),
    ]

    static func key(_ name: String) -> String {
        var k = name.lowercased().filter { $0 != "_" && $0 != "-" }
        for suffix in ["record", "message"] where k.hasSuffix(suffix) && k.count > suffix.count {
            k.removeLast(suffix.count)
        }
        return k
    }

    /// The type names `--type` accepts, normalized (case, `_`, and a `Record` suffix do not matter;
    /// a number means that metadata record type).
    static func filter(_ names: [String]) throws -> Set<String> {
        var out = Set<String>()
        let known = Set((records + controls).map { key($0.1) })
        for raw in names.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let name = raw.trimmingCharacters(in: .whitespaces)
            if let id = Int16(name), let match = records.first(where: { $0.0 == id }) {
                out.insert(key(match.1))
            } else if known.contains(key(name)) {
                out.insert(key(name))
            } else {
                throw CLIError(
                    "unknown record type \"\(name)\"; use a name such as TopicRecord, PartitionRecord, PartitionChangeRecord, RegisterBrokerRecord, ConfigRecord or LeaderChangeMessage, or a type number"
                )
            }
        }
        return out
    }
}

/// Reads a metadata log directory from a private copy.
struct MetadataLogReader {
    let log: MetadataLog

    var logStartOffset: Int64 { log.log.logStartOffset }
    var logEndOffset: Int64 { log.endOffset }

    /// Copies the segments of `directory` to a temporary directory and opens them; nil when the
    /// directory has no segment files.
    static func open(_ directory: String) throws -> MetadataLogReader? {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory)
        } catch {
            throw CLIError("cannot list \(directory): \(error.localizedDescription)")
        }
        let segmentFiles = names.filter { $0.hasSuffix(".log") || $0.hasSuffix(".index") || $0.hasSuffix(".timeindex") }
        guard segmentFiles.contains(where: { $0.hasSuffix(".log") }) else { return nil }
        let copy = try TempFiles.makeDirectory() + "/" + MetadataLocation.logDirName
        do {
            try fm.createDirectory(atPath: copy, withIntermediateDirectories: true)
            for name in segmentFiles { try fm.copyItem(atPath: directory + "/" + name, toPath: copy + "/" + name) }
        } catch {
            throw CLIError("cannot read the metadata log in \(directory): \(error.localizedDescription)")
        }
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            return MetadataLogReader(
                log: try MetadataLog(directory: copy, disk: PosixDisk(), nowMs: nowMs, cleanShutdown: true))
        } catch {
            throw CLIError("cannot open the metadata log in \(directory): \(error)")
        }
    }

    /// Calls `body` with every entry from `from` up to `to` (exclusive), in offset order.
    func forEach(from: Int64, to: Int64 = .max, _ body: (DecodedLogEntry) throws -> Void) throws {
        let end = min(to, log.endOffset)
        var next = max(from, log.log.logStartOffset)
        while next < end {
            let bytes: ByteBuffer
            let batches: [DecodedBatch]
            do {
                bytes = try log.log.readBytes(from: next, maxBytes: 4 * 1024 * 1024, maxOffset: end)
                batches = try RecordBatches.decode(bytes)
            } catch {
                throw CLIError("the metadata log cannot be read at offset \(next): \(error)")
            }
            guard let last = batches.last else { break }
            for batch in batches {
                for record in batch.records where record.offset >= next && record.offset < end {
                    try body(Self.decode(record, batch: batch.header))
                }
            }
            next = last.header.nextOffset
        }
    }

    static func decode(_ record: Record, batch: RecordBatchHeader) -> DecodedLogEntry {
        var entry = DecodedLogEntry(
            offset: record.offset, epoch: batch.partitionLeaderEpoch, timestamp: record.timestamp,
            isControl: batch.isControl, typeId: -1, typeName: "Unknown", version: nil, record: nil, body: nil,
            error: nil)
        guard let value = record.value else {
            entry.error = "the record has no value"
            return entry
        }
        if batch.isControl {
            // A control record's key is (version: int16, type: int16); its value starts with its version.
            var key = record.key ?? ByteBuffer()
            _ = key.readInteger(as: Int16.self)
            let type = key.readInteger(as: Int16.self) ?? -1
            entry.typeId = type
            entry.typeName = MetadataRecordTypes.controls.first { $0.0 == type }?.1 ?? "ControlRecord(\(type))"
            let version = value.getInteger(at: value.readerIndex, as: Int16.self) ?? 0
            entry.version = version
            func body<M: MetadataRecordMessage>(_: M.Type) -> Any? {
                var reader = WireReader(value)
                do {
                    return try M(from: &reader, version: version)
                } catch {
                    entry.error = "cannot decode: \(error)"
                    return nil
                }
            }
            switch type {
            case ControlRecordType.leaderChange: entry.body = body(LeaderChangeMessage.self)
            case ControlRecordType.snapshotHeader: entry.body = body(SnapshotHeaderRecord.self)
            case ControlRecordType.snapshotFooter: entry.body = body(SnapshotFooterRecord.self)
            case ControlRecordType.kRaftVersion: entry.body = body(KRaftVersionRecord.self)
            case ControlRecordType.voters: entry.body = body(VotersRecord.self)
            default: break
            }
            return entry
        }
        do {
            let (decoded, version) = try MetadataRecordFrame.decode(value)
            entry.record = decoded
            entry.typeId = decoded.recordType
            entry.typeName = decoded.typeName
            entry.version = version
            entry.body = Mirror(reflecting: decoded).children.first?.value
        } catch {
            // Name the type from the frame when only the body is unreadable.
            var r = WireReader(value)
            if (try? r.readUnsignedVarint()) != nil, let type = try? r.readUnsignedVarint(),
                let known = MetadataRecordTypes.records.first(where: { Int64($0.0) == Int64(type) })
            {
                entry.typeId = known.0
                entry.typeName = known.1
            }
            entry.error = "cannot decode: \(error)"
        }
        return entry
    }
}

struct MetadataLogDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Decode the metadata log record by record (offset, epoch, timestamp, type, fields).",
        discussion:
            "Reads a copy of the segments; the node's files are never changed. Works on a stopped or running node.")

    @Option(help: "A node's data dir, or its __cluster_metadata-0 directory.")
    var dir: String

    @Option(
        name: .customLong("type"),
        help:
            "Show only records of this type (e.g. TopicRecord, PartitionChange, 2, LeaderChangeMessage); repeatable or comma-separated."
    )
    var types: [String] = []

    @Option(help: "First offset to show (inclusive).")
    var from: Int64?

    @Option(help: "Last offset to show (inclusive).")
    var to: Int64?

    @Flag(help: "Print a JSON array of entries (stable field names) instead of a table.")
    var json = false

    func run() throws {
        let filter = inspect { try MetadataRecordTypes.filter(types) }
        let from = from ?? 0
        let upTo = to.map { $0 == .max ? $0 : $0 + 1 } ?? .max
        if let to, to < from { fail("--to \(to) is below --from \(from).") }
        let reader = inspect { () throws -> MetadataLogReader in
            let location = try MetadataLocation.find(dir)
            guard let reader = try MetadataLogReader.open(location.metadataLogDir) else {
                throw CLIError("\(location.metadataLogDir) holds no metadata log segments")
            }
            if reader.logEndOffset <= reader.logStartOffset {
                let snapshots = location.snapshots()
                let hint =
                    snapshots.isEmpty
                    ? "" : " (its records are in snapshot \(snapshots.last!.path); see runnel metadata snapshot)"
                throw CLIError("the metadata log in \(location.metadataLogDir) is empty\(hint)")
            }
            return reader
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let offsetWidth = max(6, String(reader.logEndOffset).count)
        var entries: [JSONValue] = []
        if !json {
            print(
                row([
                    "OFFSET".padding(toLength: offsetWidth, withPad: " ", startingAt: 0), "EPOCH",
                    "TIMESTAMP".padding(toLength: 24, withPad: " ", startingAt: 0),
                    "TYPE".padding(toLength: 30, withPad: " ", startingAt: 0), "FIELDS",
                ]))
        }
        inspect {
            try reader.forEach(from: from, to: upTo) { entry in
                if !filter.isEmpty && !filter.contains(MetadataRecordTypes.key(entry.typeName)) { return }
                if json {
                    entries.append(entry.json)
                    return
                }
                let time = formatter.string(from: Date(timeIntervalSince1970: Double(entry.timestamp) / 1000))
                var fields = entry.fields.map { "\($0.0)=\($0.1.text)" }.joined(separator: " ")
                if let error = entry.error { fields += (fields.isEmpty ? "" : " ") + "error=\"\(error)\"" }
                print(
                    row([
                        String(entry.offset).padding(toLength: offsetWidth, withPad: " ", startingAt: 0),
                        String(entry.epoch).padding(toLength: 5, withPad: " ", startingAt: 0),
                        time.padding(toLength: 24, withPad: " ", startingAt: 0),
                        entry.typeName.padding(toLength: 30, withPad: " ", startingAt: 0), fields,
                    ]))
            }
        }
        if json { printJSON(JSONValue.array(entries)) }
    }

    private func row(_ cells: [String]) -> String {
        cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
}
