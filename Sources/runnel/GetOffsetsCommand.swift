import ArgumentParser
import Foundation
import RunnelClient

struct GetOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get-offsets",
        abstract:
            "Partitions' offsets at a time: earliest, latest, max-timestamp or a timestamp (as kafka-get-offsets).",
        discussion: """
            Prints topic:partition:offset per partition, sorted by topic and partition; a partition \
            with no offset at that time (a timestamp after its last record, an empty log asked for \
            max-timestamp) is left out, as Kafka's tool does.

            --json prints [{"topic", "partition", "offset", "timestamp", "leaderEpoch"}], the \
            partitions without an offset included with offset null; timestamp is the record's for \
            max-timestamp and timestamp lookups, else null; leaderEpoch is null when unknown.
            """)

    @Option(help: "The topic, a regular expression matched against whole names (default: every topic).")
    var topic: String?
    @Option(help: "Partition ids, comma-separated (default: every partition).") var partitions: String?
    @Option(
        parsing: .unconditional,
        help:
            "earliest (-2), latest (-1), max-timestamp (-3), or a timestamp in ms: the first offset whose timestamp is at or after it."
    )
    var time = "latest"
    @Flag(name: .customLong("exclude-internal-topics"), help: "Leave out internal topics.")
    var excludeInternalTopics = false
    @OptionGroup var options: ClientOptions

    /// The offset spec `--time` names, as kafka-get-offsets reads it.
    static func spec(_ text: String) throws -> OffsetSpec {
        switch text {
        case "earliest", "-2": return .earliest
        case "latest", "-1": return .latest
        case "max-timestamp", "-3": return .maxTimestamp
        default:
            guard let ms = Int64(text), ms >= 0 else {
                throw ValidationError(
                    "--time must be earliest (-2), latest (-1), max-timestamp (-3) or a timestamp in ms, not \"\(text)\""
                )
            }
            return .timestamp(ms)
        }
    }

    func partitionSet() throws -> Set<Int32>? {
        guard let partitions else { return nil }
        var out: Set<Int32> = []
        for item in partitions.split(separator: ",", omittingEmptySubsequences: false) {
            guard let p = Int32(item.trimmingCharacters(in: .whitespaces)), p >= 0 else {
                throw ValidationError("--partitions expects comma-separated partition ids, not \"\(partitions)\"")
            }
            out.insert(p)
        }
        return out
    }

    func topicPattern() throws -> Regex<AnyRegexOutput>? {
        guard let topic else { return nil }
        do {
            return try Regex(topic)
        } catch {
            throw ValidationError("--topic \"\(topic)\" is not a regular expression")
        }
    }

    func validate() throws {
        _ = try Self.spec(time)
        _ = try partitionSet()
        _ = try topicPattern()
    }

    struct Row: Sendable {
        var topic: String
        var partition: Int32
        var answer: ListedOffset
    }

    func run() async {
        let spec = try! Self.spec(time)
        let wanted = try! partitionSet()
        let topic = self.topic
        let exclude = excludeInternalTopics
        let rows = await withClient(options) { client -> [Row] in
            let pattern = try! topic.map { try Regex($0) }
            let topics = try await client.listTopics().filter { t in
                if exclude && t.isInternal { return false }
                guard let pattern else { return true }
                return (try? pattern.wholeMatch(in: t.name)) != nil
            }
            var rows: [Row] = []
            for t in topics {
                let partitions = t.partitions.map(\.partition).filter { wanted?.contains($0) ?? true }
                if partitions.isEmpty { continue }
                let answers = try await client.listOffsetAnswers(topic: t.name, partitions: partitions, spec: spec)
                for p in partitions.sorted() {
                    rows.append(Row(topic: t.name, partition: p, answer: answers[p]!))
                }
            }
            if rows.isEmpty { throw CLIError("no topic partition matches the given --topic and --partitions") }
            return rows
        }
        if options.json {
            return JSON.array(
                rows.map { r in
                    .object([
                        ("topic", .string(r.topic)), ("partition", .int(r.partition)),
                        ("offset", r.answer.offset < 0 ? .null : .int(r.answer.offset)),
                        ("timestamp", r.answer.timestamp < 0 ? .null : .int(r.answer.timestamp)),
                        ("leaderEpoch", r.answer.leaderEpoch < 0 ? .null : .int(r.answer.leaderEpoch)),
                    ])
                }
            ).print()
        }
        for r in rows where r.answer.offset >= 0 { print("\(r.topic):\(r.partition):\(r.answer.offset)") }
    }
}
