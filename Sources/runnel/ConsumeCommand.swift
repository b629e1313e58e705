import ArgumentParser
import Foundation
import NIOCore
import RunnelClient
import RunnelWire

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print records of a topic, one per line.",
        discussion: """
            Without --group, reads every partition (or --partition) from the log end, --from-beginning, \
            or --offset. With --group it is a member of a classic consumer group (range assignor, \
            session timeout 10 s, heartbeat every 3 s): each assigned partition starts from the group's \
            committed offset (else from the beginning or the end, as above), offsets are committed \
            after the records are printed, a rebalance is followed by joining again, and the member \
            leaves the group on exit (also on Ctrl-C). Stops after --max-messages records or after \
            --timeout-ms without a record; runs until interrupted otherwise.

            Batches may be uncompressed or gzip, snappy, lz4 or zstd compressed (a batch that does \
            not decompress stops the consumer with an error). Control batches are skipped. With \
            --isolation-level read_committed, reading stops at the last stable offset (the first offset \
            of the earliest open transaction) and records of aborted transactions are left out.

            Text output: [Partition:P<TAB>Offset:O<TAB>] [headers<TAB>] [key<TAB>] value, headers as \
            k:v,k2:v2 (NO_HEADERS when none); a null key or value prints as null.

            --json prints one object per line: {"topic", "partition", "offset", "timestamp", \
            "timestampType", "key", "value", "headers": [{"key", "value"}]} (key, value and header \
            values are UTF-8 text or null), whatever the --print-* flags.
            """)

    @Argument(help: "The topic to read.") var topic: String
    @Flag(
        name: .customLong("from-beginning"),
        help: "Start at the earliest offset (when the group has no committed offset).") var fromBeginning = false
    @Option(help: "Read only this partition.") var partition: Int32?
    @Option(help: "Start offset on --partition: a number, earliest or latest.") var offset: String?
    @Option(name: .customLong("max-messages"), help: "Stop after this many records.") var maxMessages: Int?
    @Option(name: .customLong("timeout-ms"), help: "Stop after this long without a record.") var timeoutMs: Int64?
    @Flag(name: .customLong("print-key"), help: "Print each record's key.") var printKey = false
    @Flag(name: .customLong("print-headers"), help: "Print each record's headers.") var printHeaders = false
    @Flag(name: .customLong("print-offset"), help: "Print each record's partition and offset.") var printOffset = false
    @Option(help: "Consume as a member of this consumer group, committing offsets.") var group: String?
    @Option(
        name: .customLong("isolation-level"),
        help:
            "read_uncommitted (default): every record; read_committed: records of committed transactions (and non-transactional ones) up to the last stable offset."
    )
    var isolationLevel: String = "read_uncommitted"
    @OptionGroup var options: ClientOptions

    func isolation() throws -> IsolationLevel {
        switch isolationLevel {
        case "read_uncommitted": return .readUncommitted
        case "read_committed": return .readCommitted
        default:
            throw ValidationError(
                "--isolation-level must be read_committed or read_uncommitted, not \"\(isolationLevel)\"")
        }
    }

    func startPosition() throws -> StartPosition {
        guard let offset else { return fromBeginning ? .earliest : .latest }
        switch offset.lowercased() {
        case "earliest": return .earliest
        case "latest": return .latest
        default:
            guard let o = Int64(offset), o >= 0 else {
                throw ValidationError("--offset must be a number 0 or more, earliest or latest, not \"\(offset)\"")
            }
            return .offset(o)
        }
    }

    func validate() throws {
        _ = try startPosition()
        _ = try isolation()
        if offset != nil && partition == nil { throw ValidationError("--offset needs --partition") }
        if offset != nil && fromBeginning {
            throw ValidationError("--offset and --from-beginning cannot be used together")
        }
        if group != nil && (partition != nil || offset != nil) {
            throw ValidationError("--partition and --offset cannot be used with --group, which assigns the partitions")
        }
        if let group, group.isEmpty { throw ValidationError("--group must not be empty") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
        if let maxMessages, maxMessages < 1 { throw ValidationError("--max-messages must be at least 1") }
        if let timeoutMs, timeoutMs < 0 { throw ValidationError("--timeout-ms must be 0 or more") }
    }

    struct Format: Sendable {
        var json, key, headers, offset: Bool
    }

    func run() async {
        let start = try! startPosition()
        let isolation = try! isolation()
        let stop = StopFlag()
        let format = Format(json: options.json, key: printKey, headers: printHeaders, offset: printOffset)
        let (topic, partition, group, maxMessages, timeoutMs) = (
            self.topic, self.partition, self.group, self.maxMessages, self.timeoutMs
        )
        await withClient(options) { client in
            let consumer = Consumer(
                client: client, topic: topic, partitions: partition.map { [$0] }, start: start, group: group,
                isolation: isolation)
            var printed = 0
            var idleSince: NIODeadline?
            do {
                if group == nil { idleSince = NIODeadline.now() }
                while !stop.isSet {
                    // Wait no longer than the idle time left (and at most half a second, to notice Ctrl-C).
                    var waitMs: Int64 = 500
                    if let timeoutMs, let since = idleSince {
                        waitMs = max(1, min(waitMs, timeoutMs - (NIODeadline.now() - since).nanoseconds / 1_000_000))
                    }
                    let records = try await consumer.poll(maxWaitMs: Int32(waitMs))
                    let now = NIODeadline.now()
                    // With a group the idle clock starts once partitions are assigned (joining takes a while).
                    if idleSince == nil, await consumer.isStarted { idleSince = now }
                    if records.isEmpty {
                        if let timeoutMs, let since = idleSince, now - since >= .milliseconds(timeoutMs) { break }
                        continue
                    }
                    idleSince = now
                    var out = ""
                    var done: [Int32: Int64] = [:]
                    for r in records {
                        out += Self.render(r, format) + "\n"
                        done[r.partition] = r.record.offset + 1
                        printed += 1
                        if let maxMessages, printed >= maxMessages { break }
                    }
                    FileHandle.standardOutput.write(Data(out.utf8))
                    if let maxMessages, printed >= maxMessages {
                        // Only what was printed counts as consumed; the rest is read again next time.
                        for (p, next) in done { await consumer.markConsumed(partition: p, nextOffset: next) }
                        break
                    }
                    await consumer.markAllConsumed()
                    try await consumer.commit()
                }
            } catch {
                try? await consumer.close()
                throw error
            }
            try await consumer.close()
        }
    }

    static func text(_ b: ByteBuffer?) -> String {
        guard let b else { return "null" }
        return String(decoding: b.readableBytesView, as: UTF8.self)
    }

    static func render(_ r: ConsumedRecord, _ f: Format) -> String {
        let rec = r.record
        if f.json {
            return JSON.object([
                ("topic", .string(r.topic)), ("partition", .int(r.partition)), ("offset", .int(rec.offset)),
                ("timestamp", .int(rec.timestamp)), ("timestampType", .string(r.timestampType)),
                ("key", rec.key.map { .string(text($0)) } ?? .null),
                ("value", rec.value.map { .string(text($0)) } ?? .null),
                (
                    "headers",
                    .array(
                        rec.headers.map { h in
                            .object([("key", .string(h.key)), ("value", h.value.map { .string(text($0)) } ?? .null)])
                        })
                ),
            ]).render(pretty: false)
        }
        var fields: [String] = []
        if f.offset { fields += ["Partition:\(r.partition)", "Offset:\(rec.offset)"] }
        if f.headers {
            fields.append(
                rec.headers.isEmpty
                    ? "NO_HEADERS" : rec.headers.map { "\($0.key):\(text($0.value))" }.joined(separator: ","))
        }
        if f.key { fields.append(text(rec.key)) }
        fields.append(text(rec.value))
        return fields.joined(separator: "\t")
    }
}
