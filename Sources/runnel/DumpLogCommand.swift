import ArgumentParser
import RunnelGroups
import RunnelTransactions
import Foundation
import NIOCore
import RunnelWire

struct DumpLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-log",
        abstract: "Print the batches of .log segments and check .index and .timeindex files (as kafka-dump-log).",
        discussion: """
            Reads the files only, so it works on a stopped node's log dirs (or a copy). A .log \
            prints one kafka-dump-log line per batch (offsets, count, producer fields, leader \
            epoch, position, timestamp, size, codec, CRC and whether it is valid); with \
            --deep-iteration one line per record too, compressed batches inflated, and with \
            --print-data-log each record's key, payload and headers. A .index or .timeindex \
            prints its entries and checks them against the .log beside it, listing the entries \
            that do not match the log as kafka-dump-log does. --offsets-decoder and \
            --transaction-log-decoder print a __consumer_offsets or __transaction_state record's key \
            and value as Kafka's parsers do: key {"type", "data"} and payload {"version", "data"} \
            (<DELETE> for a tombstone), in --json as the record's "key" and "value" objects.

            --json prints one object per line: {"file", "baseOffset", "lastOffset", "count", \
            "baseSequence", "lastSequence", "producerId", "producerEpoch", "partitionLeaderEpoch", \
            "isTransactional", "isControl", "position", "timestampType", "timestamp", "size", \
            "magic", "compressCodec", "crc", "isValid", "records": [{"offset", "timestamp", \
            "key", "value", "headers": [{"key", "value"}], "endTxnMarker"}]} per batch (records \
            with --deep-iteration, key/value/headers with --print-data-log, else null), \
            {"file", "offset", "position", "valid"} per .index entry and {"file", "timestamp", \
            "offset", "valid"} per .timeindex entry.
            """)

    @Argument(help: "Segment files: .log, .index or .timeindex.") var files: [String]
    @Flag(name: [.customLong("deep-iteration"), .customLong("deep")], help: "Print every record of each batch.")
    var deepIteration = false
    @Flag(
        name: .customLong("print-data-log"),
        help: "Print each record's key, payload and headers (implies --deep-iteration).")
    var printDataLog = false
    @Flag(
        name: .customLong("offsets-decoder"),
        help:
            "Decode records as __consumer_offsets records: committed offsets and group metadata (implies --print-data-log)."
    )
    var offsetsDecoder = false
    @Flag(
        name: .customLong("transaction-log-decoder"),
        help: "Decode records as __transaction_state records (implies --print-data-log).")
    var transactionLogDecoder = false
    @Flag(help: "Print JSON lines for scripts (the fields are listed above) instead of text for people.")
    var json = false

    /// The decoder of an internal topic's records, when one was asked for.
    var decoder: InternalRecordDecoder? {
        offsetsDecoder ? .offsets : transactionLogDecoder ? .transactionLog : nil
    }

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one segment file") }
        guard !(offsetsDecoder && transactionLogDecoder) else {
            throw ValidationError("choose one of --offsets-decoder and --transaction-log-decoder")
        }
        for f in files where !(f.hasSuffix(".log") || f.hasSuffix(".index") || f.hasSuffix(".timeindex")) {
            throw ValidationError("\(f) is not a .log, .index or .timeindex file")
        }
    }

    func run() async {
        for path in files {
            do {
                if path.hasSuffix(".log") {
                    try dumpLog(path)
                } else if path.hasSuffix(".timeindex") {
                    try dumpTimeIndex(path)
                } else {
                    try dumpOffsetIndex(path)
                }
            } catch {
                fail(sentence(error))
            }
        }
    }

    // MARK: .log

    func dumpLog(_ path: String) throws {
        var segment = try SegmentReader(path: path)
        if !json {
            print("Dumping \(path)")
            print("Log starting offset: \(SegmentReader.baseOffset(of: path) ?? 0)")
        }
        var progress = Progress("Bytes of \((path as NSString).lastPathComponent) read", total: Int(segment.size))
        defer { progress.finish() }
        while let (position, batch, header) = try segment.next() {
            progress.advance(by: header.totalBytes)
            let deep = deepIteration || printDataLog || decoder != nil
            var records: [Record] = []
            var recordsProblem: String?
            if deep {
                do { records = try RecordBatches.records(batch, batchAt: batch.readerIndex, header: header) } catch {
                    recordsProblem = "\(error)"
                }
            }
            let crcValid =
                RecordBatches.crc32c(
                    batch, at: batch.readerIndex + RecordBatchHeader.crcStart,
                    length: header.totalBytes - RecordBatchHeader.crcStart) == header.crc
            let lastSequence = header.baseSequence < 0 ? -1 : header.baseSequence &+ header.lastOffsetDelta
            let timestampType = header.isLogAppendTime ? "LogAppendTime" : "CreateTime"
            let codec = header.compression.map { "\($0)" } ?? "unknown(\(header.attributes & 0x7))"
            let deleteHorizon = header.attributes & 0x40 != 0 ? header.baseTimestamp : nil
            if json {
                print(
                    JSON.object([
                        ("file", .string(path)), ("baseOffset", .int(header.baseOffset)),
                        ("lastOffset", .int(header.lastOffset)), ("count", .int(header.recordCount)),
                        ("baseSequence", .int(header.baseSequence)), ("lastSequence", .int(lastSequence)),
                        ("producerId", .int(header.producerId)), ("producerEpoch", .int(header.producerEpoch)),
                        ("partitionLeaderEpoch", .int(header.partitionLeaderEpoch)),
                        ("isTransactional", .bool(header.isTransactional)), ("isControl", .bool(header.isControl)),
                        ("deleteHorizonMs", .optional(deleteHorizon)), ("position", .int(position)),
                        ("timestampType", .string(timestampType)), ("timestamp", .int(header.maxTimestamp)),
                        ("size", .int(header.totalBytes)), ("magic", .int(header.magic)),
                        ("compressCodec", .string(codec)), ("crc", .int(header.crc)), ("isValid", .bool(crcValid)),
                        ("records", deep ? .array(records.map { recordJSON($0, header: header) }) : .null),
                        ("recordsError", .optional(recordsProblem)),
                    ]).render(pretty: false))
                continue
            }
            print(
                "baseOffset: \(header.baseOffset) lastOffset: \(header.lastOffset) count: \(header.recordCount) baseSequence: \(header.baseSequence) lastSequence: \(lastSequence) producerId: \(header.producerId) producerEpoch: \(header.producerEpoch) partitionLeaderEpoch: \(header.partitionLeaderEpoch) isTransactional: \(header.isTransactional) isControl: \(header.isControl) deleteHorizonMs: \(deleteHorizon.map { "OptionalLong[\($0)]" } ?? "OptionalLong.empty") position: \(position) \(timestampType): \(header.maxTimestamp) size: \(header.totalBytes) magic: \(header.magic) compresscodec: \(codec) crc: \(header.crc) isvalid: \(crcValid)"
            )
            if let recordsProblem { print("| the records of this batch cannot be read: \(recordsProblem)") }
            for r in records {
                let sequence = header.baseSequence < 0 ? -1 : header.baseSequence &+ Int32(r.offset - header.baseOffset)
                var line =
                    "| offset: \(r.offset) \(timestampType): \(header.isLogAppendTime ? header.maxTimestamp : r.timestamp) keySize: \(r.key?.readableBytes ?? -1) valueSize: \(r.value?.readableBytes ?? -1) sequence: \(sequence) headerKeys: [\(r.headers.map(\.key).joined(separator: ","))]"
                if header.isControl, let marker = EndTransactionMarker(key: r.key, value: r.value) {
                    line +=
                        " endTxnMarker: \(marker.committed ? "COMMIT" : "ABORT") coordinatorEpoch: \(marker.coordinatorEpoch)"
                } else if let decoder {
                    let (key, payload) = decoder.decode(r)
                    line +=
                        " key: \(key.render(pretty: false)) payload: \(payload?.render(pretty: false) ?? "<DELETE>")"
                } else if printDataLog {
                    if let key = r.key { line += " key: \(text(key))" }
                    line += " payload: \(r.value.map(text) ?? "")"
                    if !r.headers.isEmpty {
                        line +=
                            " headers: [\(r.headers.map { "\($0.key)=\($0.value.map(text) ?? "null")" }.joined(separator: ", "))]"
                    }
                }
                print(line)
            }
        }
    }

    func text(_ bytes: ByteBuffer) -> String { String(decoding: bytes.readableBytesView, as: UTF8.self) }

    func recordJSON(_ r: Record, header: RecordBatchHeader) -> JSON {
        let marker = header.isControl ? EndTransactionMarker(key: r.key, value: r.value) : nil
        if let decoder, marker == nil {
            let (key, payload) = decoder.decode(r)
            return .object([
                ("offset", .int(r.offset)),
                ("timestamp", .int(header.isLogAppendTime ? header.maxTimestamp : r.timestamp)),
                ("key", key), ("value", payload ?? .null), ("headers", .array([])), ("endTxnMarker", .null),
            ])
        }
        return .object([
            ("offset", .int(r.offset)), ("timestamp", .int(header.isLogAppendTime ? header.maxTimestamp : r.timestamp)),
            ("key", printDataLog ? .optional(r.key.map(text)) : .null),
            ("value", printDataLog ? .optional(r.value.map(text)) : .null),
            (
                "headers",
                printDataLog
                    ? .array(
                        r.headers.map { .object([("key", .string($0.key)), ("value", .optional($0.value.map(text)))]) })
                    : .null
            ),
            ("endTxnMarker", marker.map { .string($0.committed ? "COMMIT" : "ABORT") } ?? .null),
        ])
    }

    // MARK: indexes

    /// The batches of the .log beside an index: (position, base offset, last offset, max timestamp).
    func batchesBeside(
        _ indexPath: String, suffix: String
    ) throws -> [(position: Int64, base: Int64, last: Int64, maxTimestamp: Int64)] {
        let logPath = String(indexPath.dropLast(suffix.count)) + ".log"
        var segment = try SegmentReader(path: logPath)
        var out: [(Int64, Int64, Int64, Int64)] = []
        while let (position, _, header) = try segment.next(headerOnly: true) {
            out.append((position, header.baseOffset, header.lastOffset, header.maxTimestamp))
        }
        return out
    }

    func dumpOffsetIndex(_ path: String) throws {
        let data = try SegmentReader.contents(of: path)
        let base = SegmentReader.baseOffset(of: path) ?? 0
        let batches = try batchesBeside(path, suffix: ".index")
        let lastOffsetAt = Dictionary(batches.map { ($0.position, $0.last) }, uniquingKeysWith: { a, _ in a })
        if !json { print("Dumping \(path)") }
        var mismatches: [String] = []
        var index = ByteBuffer(bytes: data)
        if index.readableBytes % 8 != 0 {
            mismatches.append("  The index has \(index.readableBytes % 8) stray bytes at its end")
        }
        while let relative = index.readInteger(as: UInt32.self), let position = index.readInteger(as: UInt32.self) {
            let offset = base + Int64(relative)
            let logOffset = lastOffsetAt[Int64(position)]
            let valid = logOffset == offset
            if !valid {
                mismatches.append(
                    "  Index offset: \(offset), log offset: \(logOffset.map(String.init) ?? "no batch at position \(position)")"
                )
            }
            if json {
                print(
                    JSON.object([
                        ("file", .string(path)), ("offset", .int(offset)), ("position", .int(position)),
                        ("valid", .bool(valid)),
                    ]).render(pretty: false))
            } else {
                print("offset: \(offset) position: \(position)")
            }
        }
        if !json && !mismatches.isEmpty {
            print("Mismatches in :\(path)")
            for m in mismatches { print(m) }
        }
    }

    func dumpTimeIndex(_ path: String) throws {
        let data = try SegmentReader.contents(of: path)
        let base = SegmentReader.baseOffset(of: path) ?? 0
        let batches = try batchesBeside(path, suffix: ".timeindex")
        if !json { print("Dumping \(path)") }
        var mismatches: [String] = []
        var outOfOrder: [String] = []
        var previous: Int64?
        var index = ByteBuffer(bytes: data)
        if index.readableBytes % 12 != 0 {
            mismatches.append("  The time index has \(index.readableBytes % 12) stray bytes at its end")
        }
        while let timestamp = index.readInteger(as: Int64.self), let relative = index.readInteger(as: UInt32.self) {
            let offset = base + Int64(relative)
            let batch = batches.first { $0.base <= offset && offset <= $0.last }
            var valid = true
            if let batch, batch.maxTimestamp != timestamp {
                valid = false
                mismatches.append("  Index timestamp: \(timestamp), log timestamp: \(batch.maxTimestamp)")
            } else if batch == nil {
                valid = false
                mismatches.append("  Index offset: \(offset) is in no batch of the log")
            }
            if let previous, timestamp < previous {
                valid = false
                outOfOrder.append("  Index timestamp: \(timestamp), Previously indexed timestamp: \(previous)")
            }
            previous = max(previous ?? timestamp, timestamp)
            if json {
                print(
                    JSON.object([
                        ("file", .string(path)), ("timestamp", .int(timestamp)), ("offset", .int(offset)),
                        ("valid", .bool(valid)),
                    ]).render(pretty: false))
            } else {
                print("timestamp: \(timestamp) offset: \(offset)")
            }
        }
        if !json && !mismatches.isEmpty {
            print("Found timestamp mismatch in :\(path)")
            for m in mismatches { print(m) }
        }
        if !json && !outOfOrder.isEmpty {
            print("Found out of order timestamp in :\(path)")
            for m in outOfOrder { print(m) }
        }
    }
}

/// Reads a .log segment one batch at a time, so a large segment is never held whole.
struct SegmentReader {
    let path: String
    let handle: FileHandle
    let size: UInt64
    var position: UInt64 = 0

    init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw CLIError("\(path) does not exist")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("\(path) cannot be read") }
        self.path = path
        self.handle = handle
        self.size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
    }

    /// The base offset a segment file's name carries (`00000000000000000042.log`).
    static func baseOffset(of path: String) -> Int64? {
        Int64(((path as NSString).lastPathComponent as NSString).deletingPathExtension)
    }

    static func contents(of path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("\(path) does not exist or cannot be read")
        }
        return data
    }

    /// The next batch (its position, its bytes, its header), or nil at the end; a batch cut short
    /// or not magic v2 ends the dump with one sentence naming its position.
    mutating func next(headerOnly: Bool = false) throws -> (Int64, ByteBuffer, RecordBatchHeader)? {
        guard position < size else { return nil }
        try handle.seek(toOffset: position)
        let headerData = try handle.read(upToCount: RecordBatchHeader.size) ?? Data()
        let headerBytes = ByteBuffer(bytes: headerData)
        guard let header = RecordBatchHeader(headerBytes, at: 0), header.totalBytes >= RecordBatchHeader.size else {
            throw CLIError(
                "\(path) ends with \(size - position) bytes at position \(position) that are not a whole batch header")
        }
        guard header.magic == 2 else {
            throw CLIError("the batch at position \(position) of \(path) has magic \(header.magic), not 2")
        }
        guard position + UInt64(header.totalBytes) <= size else {
            throw CLIError(
                "the batch at position \(position) of \(path) is \(header.totalBytes) bytes but the file ends \(size - position) bytes after it starts"
            )
        }
        var batch = headerBytes
        if !headerOnly {
            let rest = try handle.read(upToCount: header.totalBytes - RecordBatchHeader.size) ?? Data()
            batch.writeBytes(rest)
        }
        let at = position
        position += UInt64(header.totalBytes)
        return (Int64(at), batch, header)
    }
}

/// kafka-dump-log's --offsets-decoder and --transaction-log-decoder: an internal topic's record
/// key and value as the JSON Kafka's parsers print ({"type", "data"} and {"version", "data"}).
enum InternalRecordDecoder {
    case offsets
    case transactionLog

    /// The key and the value (nil for a tombstone) as JSON; a record that does not decode says so.
    func decode(_ r: Record) -> (key: JSON, value: JSON?) {
        guard let key = r.key else { return (.string("NO KEY"), r.value.map { _ in .string("unknown") }) }
        switch self {
        case .offsets:
            switch OffsetsTopic.decodeKey(key) {
            case .offset(let group, let tp)?:
                let value = r.value.map { v in
                    OffsetsTopic.decodeOffset(v).map { o in
                        JSON.object([
                            ("version", .string("\(v.getInteger(at: v.readerIndex, as: Int16.self) ?? -1)")),
                            (
                                "data",
                                .object([
                                    ("offset", .int(o.offset)), ("leaderEpoch", .int(o.leaderEpoch)),
                                    ("metadata", .string(o.metadata)), ("commitTimestamp", .int(o.commitTimestampMs)),
                                ])
                            ),
                        ])
                    } ?? .string("unknown")
                }
                return (
                    .object([
                        ("type", .string("1")),
                        (
                            "data",
                            .object([
                                ("group", .string(group)), ("topic", .string(tp.topic)),
                                ("partition", .int(tp.partition)),
                            ])
                        ),
                    ]), value
                )
            case .group(let group)?:
                let value = r.value.map { v in
                    OffsetsTopic.decodeGroup(v).map { g in
                        JSON.object([
                            ("version", .string("\(v.getInteger(at: v.readerIndex, as: Int16.self) ?? -1)")),
                            (
                                "data",
                                .object([
                                    ("protocolType", .string(g.protocolType)), ("generation", .int(g.generation)),
                                    ("protocol", .optional(g.protocolName)), ("leader", .optional(g.leader)),
                                    ("currentStateTimestamp", .int(g.currentStateTimestampMs)),
                                    (
                                        "members",
                                        .array(
                                            g.members.map { m in
                                                .object([
                                                    ("memberId", .string(m.memberId)),
                                                    ("groupInstanceId", .optional(m.groupInstanceId)),
                                                    ("clientId", .string(m.clientId)),
                                                    ("clientHost", .string(m.clientHost)),
                                                    ("rebalanceTimeout", .int(m.rebalanceTimeoutMs)),
                                                    ("sessionTimeout", .int(m.sessionTimeoutMs)),
                                                    ("subscription", .string(base64(m.subscription))),
                                                    ("assignment", .string(base64(m.assignment))),
                                                ])
                                            })
                                    ),
                                ])
                            ),
                        ])
                    } ?? .string("unknown")
                }
                return (.object([("type", .string("2")), ("data", .object([("group", .string(group))]))]), value)
            case nil:
                return (.string("unknown"), r.value.map { _ in .string("unknown") })
            }
        case .transactionLog:
            let decoded: TransactionLog.Record?
            do { decoded = try TransactionLog.decodeRecord(key: key, value: r.value) } catch {
                return (.string("unknown"), .string("\(error)"))
            }
            guard let decoded else { return (.string("unknown"), r.value.map { _ in .string("unknown") }) }
            let keyJSON = JSON.object([
                ("type", .string("0")), ("data", .object([("transactionalId", .string(decoded.transactionalId))])),
            ])
            guard let m = decoded.value, let v = r.value else { return (keyJSON, nil) }
            let byTopic = Dictionary(grouping: m.partitions, by: \.topic)
            return (
                keyJSON,
                .object([
                    ("version", .string("\(v.getInteger(at: v.readerIndex, as: Int16.self) ?? -1)")),
                    (
                        "data",
                        .object([
                            ("producerId", .int(m.producerId)), ("producerEpoch", .int(m.producerEpoch)),
                            ("transactionTimeoutMs", .int(m.timeoutMs)),
                            ("transactionStatus", .int(m.state.rawValue)),
                            (
                                "transactionPartitions",
                                .array(
                                    byTopic.keys.sorted().map { topic in
                                        .object([
                                            ("topic", .string(topic)),
                                            ("partitionIds", .ints(byTopic[topic]!.map(\.partition).sorted())),
                                        ])
                                    })
                            ),
                            ("transactionLastUpdateTimestampMs", .int(m.lastUpdateTimestampMs)),
                            ("transactionStartTimestampMs", .int(m.startTimestampMs)),
                        ])
                    ),
                ])
            )
        }
    }

    private func base64(_ bytes: ByteBuffer) -> String { Data(bytes.readableBytesView).base64EncodedString() }
}
