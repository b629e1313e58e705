import ArgumentParser
import Foundation
import RunnelClient
import RunnelWire

/// `runnel log-dirs describe`, as `kafka-log-dirs.sh --describe`: each broker's log dirs
/// (DescribeLogDirs sent to that broker), their space and the replicas they hold.
struct LogDirs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-dirs", abstract: "Describe brokers' log directories (as kafka-log-dirs).",
        subcommands: [LogDirsDescribe.self])
}

struct LogDirsDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Each broker's log dirs: space, and each replica's size and offset lag (DescribeLogDirs).",
        discussion: """
            Needs DESCRIBE on the cluster. --json prints Kafka's shape: {"version": 1, "brokers": \
            [{"broker", "logDirs": [{"logDir", "error" (null, or the Kafka error name), "totalBytes", \
            "usableBytes" (null when unknown), "partitions": [{"partition" ("topic-0"), "size", \
            "offsetLag", "isFuture"}]}]}]}.
            """)

    @Option(
        name: .customLong("broker-list"),
        help: "Brokers to ask, as 1,2,3 (default: every broker in the cluster's metadata).")
    var brokerList: String?

    @Option(name: .customLong("topic-list"), help: "Only replicas of these topics, as a,b (default: all).")
    var topicList: String?

    @OptionGroup var options: ClientOptions

    /// The broker ids of --broker-list (nil when not given).
    var brokerIds: [Int32]? {
        get throws {
            guard let brokerList else { return nil }
            let parts = brokerList.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            var ids: [Int32] = []
            for part in parts {
                guard let id = Int32(part), id >= 0 else {
                    throw ValidationError("--broker-list expects broker ids as 1,2,3, not \"\(brokerList)\"")
                }
                if !ids.contains(id) { ids.append(id) }
            }
            return ids
        }
    }

    /// The topic names of --topic-list (empty: all).
    var topics: Set<String> {
        Set(
            (topicList ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            })
    }

    func validate() throws {
        _ = try brokerIds
        if let topicList, topics.isEmpty {
            throw ValidationError("--topic-list names no topic (\"\(topicList)\")")
        }
    }

    func run() async {
        let (asked, topics) = (try? brokerIds, self.topics)
        let described = await withClient(options) { client in
            let cluster = try await client.describeCluster()
            let known = cluster.brokers.map(\.id)
            let ids = asked ?? known
            let missing = ids.filter { !known.contains($0) }
            if !missing.isEmpty {
                throw ClientError(
                    "the given brokers do not exist from --broker-list: \(missing.map(String.init).joined(separator: ",")) (brokers in the cluster: \(known.map(String.init).joined(separator: ",")))"
                )
            }
            var out: [(Int32, [LogDirInfo])] = []
            for id in ids.sorted() {
                let broker = cluster.brokers.first { $0.id == id }!
                out.append((id, try await client.describeLogDirs(broker: broker)))
            }
            return out
        }
        let filtered = Self.filter(described, topics: topics)
        if options.json { return Self.json(filtered).print() }
        Self.printText(filtered)
    }

    /// Keeps only the replicas of `topics` (all when empty), as kafka-log-dirs filters its answer.
    static func filter(_ brokers: [(Int32, [LogDirInfo])], topics: Set<String>) -> [(Int32, [LogDirInfo])] {
        guard !topics.isEmpty else { return brokers }
        return brokers.map { id, dirs in
            (
                id,
                dirs.map { dir in
                    var dir = dir
                    dir.replicas = dir.replicas.filter { topics.contains($0.topic) }
                    return dir
                }
            )
        }
    }

    /// Kafka's JSON (`LogDirsCommand.formatAsJson`) with each dir's space beside it.
    static func json(_ brokers: [(Int32, [LogDirInfo])]) -> JSON {
        .object([
            ("version", .int(1)),
            (
                "brokers",
                .array(
                    brokers.map { id, dirs in
                        .object([
                            ("broker", .int(id)),
                            (
                                "logDirs",
                                .array(
                                    dirs.map { dir in
                                        .object([
                                            ("logDir", .string(dir.path)),
                                            ("error", dir.error == .none ? .null : .string(dir.error.name)),
                                            ("totalBytes", .optional(dir.totalBytes)),
                                            ("usableBytes", .optional(dir.usableBytes)),
                                            (
                                                "partitions",
                                                .array(
                                                    dir.replicas.map { r in
                                                        .object([
                                                            ("partition", .string("\(r.topic)-\(r.partition)")),
                                                            ("size", .int(r.sizeBytes)),
                                                            ("offsetLag", .int(r.offsetLag)),
                                                            ("isFuture", .bool(r.isFuture)),
                                                        ])
                                                    })
                                            ),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
        ])
    }

    static func printText(_ brokers: [(Int32, [LogDirInfo])]) {
        printTable(
            [["BROKER", "LOG DIR", "ERROR", "TOTAL", "USABLE", "REPLICAS", "SIZE"]]
                + brokers.flatMap { id, dirs in
                    dirs.map { dir in
                        [
                            "\(id)", dir.path, dir.error == .none ? "-" : dir.error.name,
                            dir.totalBytes.map(humanBytes) ?? "-", dir.usableBytes.map(humanBytes) ?? "-",
                            "\(dir.replicas.count)", humanBytes(dir.replicas.reduce(0) { $0 + $1.sizeBytes }),
                        ]
                    }
                })
        let rows = brokers.flatMap { id, dirs in
            dirs.flatMap { dir in
                dir.replicas.map { r in
                    [
                        "\(id)", dir.path, "\(r.topic)-\(r.partition)", "\(r.sizeBytes)", "\(r.offsetLag)",
                        r.isFuture ? "yes" : "no",
                    ]
                }
            }
        }
        guard !rows.isEmpty else { return }
        print("")
        printTable([["BROKER", "LOG DIR", "PARTITION", "SIZE", "OFFSET LAG", "FUTURE"]] + rows)
    }
}

/// Bytes for people: B, KiB, MiB, GiB, TiB with one decimal.
func humanBytes(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    var value = Double(bytes)
    for unit in ["KiB", "MiB", "GiB", "TiB"] {
        value /= 1024
        if value < 1024 || unit == "TiB" { return String(format: "%.1f", value) + " " + unit }
    }
    return "\(bytes) B"
}
