import ArgumentParser
import Foundation
import RunnelClient
import RunnelWire

struct LeaderElection: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leader-election",
        abstract:
            "Elect partition leaders: the preferred replica, or any live one (ElectLeaders, as kafka-leader-election).",
        discussion: """
            preferred moves leadership to each partition's first replica when it is live and in the \
            ISR; unclean gives a partition without a leader any live replica, which may lose \
            records the ISR had. Prints kafka-leader-election's lines: "Successfully completed \
            leader election (PREFERRED) for partitions t-0, t-1", "Valid replica already elected \
            for partitions t-2" and, per failure, "Error completing leader election (PREFERRED) for \
            partition: t-3: reason"; exits 1 when any partition failed. --path-to-json-file reads \
            {"partitions": [{"topic": "t", "partition": 0}, ...]}.

            --json prints {"electionType", "succeeded": [{"topic", "partition"}], "noop": [{"topic", \
            "partition"}], "failed": [{"topic", "partition", "error", "message"}]}.
            """)

    @Option(name: .customLong("election-type"), help: "preferred or unclean.") var electionType: String
    @Option(help: "The topic of --partition.") var topic: String?
    @Option(help: "The partition of --topic.") var partition: Int32?
    @Flag(name: .customLong("all-topic-partitions"), help: "Every partition of every topic.")
    var allTopicPartitions = false
    @Option(name: .customLong("path-to-json-file"), help: "A JSON file of the partitions.") var pathToJSONFile: String?
    @OptionGroup var options: ClientOptions

    /// The wire election type: 0 preferred, 1 unclean.
    func type() throws -> Int8 {
        switch electionType.lowercased() {
        case "preferred": return 0
        case "unclean": return 1
        default: throw ValidationError("--election-type must be preferred or unclean, not \"\(electionType)\"")
        }
    }

    func validate() throws {
        _ = try type()
        let given = [topic != nil || partition != nil, allTopicPartitions, pathToJSONFile != nil].filter { $0 }.count
        guard given == 1 else {
            throw ValidationError(
                "give exactly one of --topic with --partition, --all-topic-partitions and --path-to-json-file")
        }
        if (topic == nil) != (partition == nil) { throw ValidationError("--topic and --partition go together") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
    }

    /// The partitions of a kafka-leader-election JSON file, by topic.
    static func partitions(fromFile path: String) throws -> [String: [Int32]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("--path-to-json-file: \(path) cannot be read")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = root["partitions"] as? [[String: Any]]
        else {
            throw CLIError(#"--path-to-json-file: \#(path) is not {"partitions": [{"topic": ..., "partition": ...}]}"#)
        }
        var out: [String: [Int32]] = [:]
        var duplicates: [String] = []
        for item in list {
            guard let topic = item["topic"] as? String, let p = (item["partition"] as? NSNumber)?.int32Value else {
                throw CLIError("--path-to-json-file: an entry of \(path) lacks a topic or a partition")
            }
            if out[topic]?.contains(p) == true { duplicates.append("\(topic)-\(p)") }
            out[topic, default: []].append(p)
        }
        guard duplicates.isEmpty else {
            throw CLIError(
                "--path-to-json-file: \(path) names partitions more than once: \(duplicates.joined(separator: ", "))")
        }
        return out
    }

    func run() async {
        let type = try! type()
        let label = type == 0 ? "PREFERRED" : "UNCLEAN"
        var partitions: [String: [Int32]]?
        if let topic, let partition { partitions = [topic: [partition]] }
        if let pathToJSONFile {
            do { partitions = try Self.partitions(fromFile: pathToJSONFile) } catch { fail(sentence(error)) }
        }
        let asked = partitions
        let results = await withClient(options) { client in
            try await client.electLeaders(type: type, partitions: asked)
        }
        let succeeded = results.filter { $0.error == .none }
        let noop = results.filter { $0.error == .electionNotNeeded }
        let failed = results.filter { $0.error != .none && $0.error != .electionNotNeeded }
        func names(_ rs: [ElectionResult]) -> String {
            rs.map { "\($0.topic)-\($0.partition)" }.joined(separator: ", ")
        }
        func reason(_ r: ElectionResult) -> String { r.message.flatMap { $0.isEmpty ? nil : $0 } ?? r.error.message }
        if options.json {
            func pairs(_ rs: [ElectionResult]) -> JSON {
                .array(rs.map { .object([("topic", .string($0.topic)), ("partition", .int($0.partition))]) })
            }
            JSON.object([
                ("electionType", .string(label.lowercased())), ("succeeded", pairs(succeeded)), ("noop", pairs(noop)),
                (
                    "failed",
                    .array(
                        failed.map {
                            .object([
                                ("topic", .string($0.topic)), ("partition", .int($0.partition)),
                                ("error", .string($0.error.name)), ("message", .string(reason($0))),
                            ])
                        })
                ),
            ]).print()
        } else {
            if !succeeded.isEmpty {
                print("Successfully completed leader election (\(label)) for partitions \(names(succeeded))")
            }
            if !noop.isEmpty { print("Valid replica already elected for partitions \(names(noop))") }
            for f in failed {
                print(
                    "Error completing leader election (\(label)) for partition: \(f.topic)-\(f.partition): \(reason(f))"
                )
            }
        }
        if !failed.isEmpty {
            fail(
                "\(failed.count) replica(s) could not be elected (\(failed[0].topic)-\(failed[0].partition): \(failed[0].error.name))."
            )
        }
    }
}
