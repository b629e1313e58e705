import ArgumentParser
import Foundation
import NIOCore
import RunnelClient
import RunnelWire

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write lines from stdin to a topic, one record per line.",
        discussion: """
            Keyed records go to the partition Kafka's default partitioner picks (murmur2 of the key, as \
            the Java client and librdkafka's murmur2_random do); keyless ones round-robin over the \
            partitions; --partition sends everything to one partition. Lines are sent as they arrive \
            (what is already read is batched), each batch to its partition's leader, retried at a new \
            leader when leadership moves. A batch that fails is reported on stderr, one line each, and \
            the exit status is 1.

            --json prints, at the end, {"topic", "records", "written", "failed", \
            "partitions": [{"partition", "records", "firstOffset", "lastOffset"}], \
            "errors": [{"partition", "records", "firstLine", "lastLine", "error"}]} \
            (offsets are null with --acks 0, which gets no answer).
            """)

    @Argument(help: "The topic to write to.") var topic: String
    @Option(
        name: .customLong("key-separator"),
        help: "Split each line at the first SEP into key and value (a line without it is an error).")
    var keySeparator: String?
    @Option(name: .customLong("header"), help: "A header for every record, key=value (repeatable).") var headers:
        [String] = []
    @Option(help: "Write every record to this partition.") var partition: Int32?
    @Option(help: "Acknowledgements: 0 (none), 1 (the leader) or all (every in-sync replica).") var acks: String = "all"
    @OptionGroup var options: ClientOptions

    func validate() throws {
        do { _ = try Acks(parsing: acks) } catch { throw ValidationError("\(error)") }
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
        for h in headers { _ = try parseKeyValue(h, option: "--header") }
    }

    struct Summary: Sendable {
        var records = 0
        var partitions: [Int32: (records: Int, first: Int64, last: Int64)] = [:]
        var errors: [(partition: Int32, records: Int, firstLine: Int, lastLine: Int, error: String)] = []
    }

    func run() async {
        let acks = try! Acks(parsing: self.acks)
        let headers = self.headers.map { try! parseKeyValue($0, option: "--header") }.map {
            RecordHeader(key: $0.0, value: ByteBuffer(string: $0.1))
        }
        let (topic, separator, partition, json) = (
            self.topic, keySeparator.map { Array($0.utf8) }, self.partition, options.json
        )
        let summary = await withClient(options) { client in
            let producer = Producer(client: client, topic: topic, acks: acks)
            _ = try await client.topic(topic)  // fail early on a topic that does not exist
            var summary = Summary()
            var lineNumber = 0
            for await chunk in StdinLines.chunks() {
                var records: [ProducerRecord] = []
                var badLine: Int?
                let firstLine = lineNumber + 1
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                for line in chunk {
                    lineNumber += 1
                    var key: ByteBuffer?
                    var value = line[...]
                    if let separator {
                        guard let at = line.firstRange(of: separator) else {
                            badLine = lineNumber
                            break
                        }
                        key = ByteBuffer(bytes: line[..<at.lowerBound])
                        value = line[at.upperBound...]
                    }
                    records.append(
                        ProducerRecord(
                            key: key, value: ByteBuffer(bytes: value), headers: headers, partition: partition,
                            timestamp: now))
                }
                for outcome in try await producer.send(records) {
                    let lines = outcome.recordIndexes.map { firstLine + $0 }
                    if let error = outcome.error {
                        summary.errors.append((outcome.partition, lines.count, lines.first!, lines.last!, error))
                        let span = lines.count == 1 ? "line \(lines[0])" : "lines \(lines.first!)-\(lines.last!)"
                        FileHandle.standardError.write(
                            Data(
                                "runnel: \(lines.count) record\(lines.count == 1 ? " (\(span)) was" : "s (\(span)) were") not written to partition \(outcome.partition) of topic \(topic): \(sentence(error))\n"
                                    .utf8))
                    } else {
                        var p = summary.partitions[outcome.partition] ?? (0, Int64.max, -1)
                        p.records += lines.count
                        if outcome.baseOffset >= 0 {
                            p.first = min(p.first, outcome.baseOffset)
                            p.last = max(p.last, outcome.baseOffset + Int64(lines.count) - 1)
                        }
                        summary.partitions[outcome.partition] = p
                    }
                }
                summary.records += records.count
                if let badLine {
                    throw CLIError(
                        "line \(badLine) has no key separator \"\(String(decoding: separator!, as: UTF8.self))\"; the lines before it were sent, none after"
                    )
                }
            }
            return summary
        }
        let failed = summary.errors.reduce(0) { $0 + $1.records }
        if json {
            JSON.object([
                ("topic", .string(topic)), ("records", .int(summary.records)),
                ("written", .int(summary.records - failed)), ("failed", .int(failed)),
                (
                    "partitions",
                    .array(
                        summary.partitions.keys.sorted().map { p in
                            let s = summary.partitions[p]!
                            return .object([
                                ("partition", .int(p)), ("records", .int(s.records)),
                                ("firstOffset", s.last >= 0 ? .int(s.first) : .null),
                                ("lastOffset", s.last >= 0 ? .int(s.last) : .null),
                            ])
                        })
                ),
                (
                    "errors",
                    .array(
                        summary.errors.map { e in
                            .object([
                                ("partition", .int(e.partition)), ("records", .int(e.records)),
                                ("firstLine", .int(e.firstLine)),
                                ("lastLine", .int(e.lastLine)), ("error", .string(e.error)),
                            ])
                        })
                ),
            ]).print()
        } else if failed == 0 {
            print("Wrote \(summary.records) record\(summary.records == 1 ? "" : "s") to topic \(topic).")
        }
        if failed > 0 { Foundation.exit(1) }
    }
}

/// Lines of stdin in chunks: whatever is there to read at once becomes one chunk, so piped input
/// is sent in large batches and typed input line by line. A trailing "\r" is dropped, as Java's
/// readLine does; a last line without a newline still counts.
enum StdinLines {
    static func chunks() -> AsyncStream<[[UInt8]]> {
        AsyncStream(bufferingPolicy: .bufferingOldest(4)) { continuation in
            let thread = Thread {
                var pending: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                while true {
                    let n = read(0, &buffer, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 {
                        if !pending.isEmpty { continuation.yield([strip(pending[...])]) }
                        continuation.finish()
                        return
                    }
                    pending += buffer[0..<n]
                    var lines: [[UInt8]] = []
                    var start = 0
                    while let nl = pending[start...].firstIndex(of: 0x0a) {
                        lines.append(strip(pending[start..<nl]))
                        start = nl + 1
                    }
                    pending.removeFirst(start)
                    if !lines.isEmpty { yieldWaiting(continuation, lines) }
                }
            }
            thread.start()
        }
    }

    /// Yields, waiting while the consumer is behind (the stream keeps at most a few chunks).
    static func yieldWaiting(_ continuation: AsyncStream<[[UInt8]]>.Continuation, _ lines: [[UInt8]]) {
        while true {
            switch continuation.yield(lines) {
            case .enqueued, .terminated: return
            case .dropped: usleep(2000)
            @unknown default: return
            }
        }
    }

    static func strip(_ line: ArraySlice<UInt8>) -> [UInt8] {
        line.last == 0x0d ? Array(line.dropLast()) : Array(line)
    }
}
