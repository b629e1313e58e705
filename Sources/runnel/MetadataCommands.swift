import ArgumentParser
import Foundation
import RunnelClient
import RunnelWire

struct Metadata: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the cluster metadata: the quorum, the metadata log, snapshots.",
        subcommands: [
            Quorum.self, MetadataLogDump.self, MetadataSnapshot.self, MetadataLs.self, MetadataCat.self,
            MetadataTreeCommand.self,
            MetadataShellCommand.self, MetadataSQL.self,
        ])
}

struct Quorum: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe the metadata quorum (as kafka-metadata-quorum does).",
        subcommands: [QuorumStatus.self, QuorumReplication.self])
}

struct QuorumOptions: ParsableArguments {
    @Option(name: .customLong("bootstrap-controller"), help: "Controller address(es), host:port[,host:port...].")
    var bootstrapController: String?

    @Option(name: .customLong("bootstrap-server"), help: "Also accepted: controller address(es).")
    var bootstrapServer: String?

    @Flag(help: "Print JSON (stable field names) instead of a table.")
    var json = false

    @Flag(name: .customLong("human-readable"), help: "Show times as durations ago instead of epoch milliseconds.")
    var humanReadable = false

    @Option(help: "Milliseconds to wait for an answer.")
    var timeoutMs: Int64 = 5000

    @Option(
        name: .customLong("command-config"),
        help: "A Kafka client properties file for a TLS or SASL controller listener (security.protocol, sasl.*, ssl.*)."
    )
    var commandConfig: String?

    @Flag(
        name: .customLong("from-this-node"),
        help: "Report what the (first) node asked knows even when it is not the leader (leader id and epoch only).")
    var fromThisNode = false

    func client() throws -> AdminClient {
        guard let servers = bootstrapController ?? bootstrapServer else {
            throw ValidationError("give --bootstrap-controller host:port (a controller listener).")
        }
        let client = try AdminClient(servers: servers)
        client.timeoutMs = timeoutMs
        client.security = try clientSecurity(commandConfig: commandConfig)
        return client
    }
}

/// The quorum as the leader reports it.
struct QuorumReport: Encodable {
    struct Replica: Encodable {
        var nodeId: Int32
        var logEndOffset: Int64
        var lag: Int64
        var lastFetchTimestamp: Int64
        var lastCaughtUpTimestamp: Int64
        var status: String
    }
    var clusterId: String?
    var leaderId: Int32
    var leaderEpoch: Int32
    var highWatermark: Int64
    var maxFollowerLag: Int64
    var maxFollowerLagTimeMs: Int64
    var currentVoters: [Int32]
    var currentObservers: [Int32]
    var replicas: [Replica]
    /// Whether the node that answered is the leader (false only with --from-this-node).
    var answeredByLeader = true

    static func fetch(_ options: QuorumOptions) throws -> QuorumReport {
        let client = try options.client()
        let response: DescribeQuorumResponse
        do {
            if options.fromThisNode {
                let request = DescribeQuorumRequest(topics: [
                    .init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 0)])
                ])
                let first = client.bootstrap[0]
                let single = try AdminClient(servers: "\(first.host):\(first.port)")
                single.timeoutMs = options.timeoutMs
                single.security = client.security
                response = try runBlocking { try await single.send(request, version: 2).response }
            } else {
                response = try runBlocking { try await client.describeQuorum() }
            }
        } catch {
            throw CLIError("cannot describe the quorum: \(error)")
        }
        guard let p = response.topics.first?.partitions.first else {
            throw CLIError("the controller sent an empty DescribeQuorum answer.")
        }
        if options.fromThisNode && p.errorCode == ErrorCode.notLeaderOrFollower.rawValue {
            return QuorumReport(
                clusterId: nil, leaderId: p.leaderId, leaderEpoch: p.leaderEpoch, highWatermark: -1, maxFollowerLag: -1,
                maxFollowerLagTimeMs: -1, currentVoters: [], currentObservers: [], replicas: [], answeredByLeader: false
            )
        }
        guard response.errorCode == 0, p.errorCode == 0 else {
            let code = ErrorCode(p.errorCode != 0 ? p.errorCode : response.errorCode)
            let hint = p.leaderId >= 0 ? " (the leader is node \(p.leaderId); ask it with --bootstrap-controller)" : ""
            throw CLIError("the controller answered \(code.name)\(hint).")
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let leaderEnd = p.currentVoters.first { $0.replicaId == p.leaderId }?.logEndOffset ?? p.highWatermark
        var replicas: [Replica] = []
        for (voter, list) in [(true, p.currentVoters), (false, p.observers)] {
            for r in list {
                let status = r.replicaId == p.leaderId ? "Leader" : (voter ? "Follower" : "Observer")
                replicas.append(
                    Replica(
                        nodeId: r.replicaId, logEndOffset: r.logEndOffset, lag: max(0, leaderEnd - r.logEndOffset),
                        lastFetchTimestamp: r.lastFetchTimestamp, lastCaughtUpTimestamp: r.lastCaughtUpTimestamp,
                        status: status))
            }
        }
        let followers = p.currentVoters.filter { $0.replicaId != p.leaderId }
        let maxLag = followers.map { max(0, leaderEnd - $0.logEndOffset) }.max() ?? 0
        let maxLagTime = followers.map { $0.lastCaughtUpTimestamp < 0 ? -1 : now - $0.lastCaughtUpTimestamp }.max() ?? 0
        // DescribeQuorum does not carry the cluster id; DescribeCluster (served by controllers
        // too) does, as Kafka's tool asks it.
        let clusterId = try? runBlocking { try await client.send(DescribeClusterRequest(), version: 0).response }
            .clusterId
        return QuorumReport(
            clusterId: clusterId, leaderId: p.leaderId, leaderEpoch: p.leaderEpoch, highWatermark: p.highWatermark,
            maxFollowerLag: maxLag, maxFollowerLagTimeMs: maxLagTime,
            currentVoters: p.currentVoters.map(\.replicaId).sorted(),
            currentObservers: p.observers.map(\.replicaId).sorted(),
            replicas: replicas)
    }
}

struct QuorumStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Leader, epoch, high watermark, voters and observers.")
    @OptionGroup var options: QuorumOptions

    func run() throws {
        let report = try runCLI { try QuorumReport.fetch(options) }
        if options.json { return printJSON(report) }
        let rows: [(String, String)] = [
            ("ClusterId", report.clusterId ?? "-"),
            ("LeaderId", "\(report.leaderId)"),
            ("LeaderEpoch", "\(report.leaderEpoch)"),
            ("HighWatermark", "\(report.highWatermark)"),
            ("MaxFollowerLag", "\(report.maxFollowerLag)"),
            (
                "MaxFollowerLagTimeMs",
                options.humanReadable ? humanDuration(report.maxFollowerLagTimeMs) : "\(report.maxFollowerLagTimeMs)"
            ),
            ("CurrentVoters", "[" + report.currentVoters.map(String.init).joined(separator: ",") + "]"),
            ("CurrentObservers", "[" + report.currentObservers.map(String.init).joined(separator: ",") + "]"),
        ]
        for (k, v) in rows { print((k + ":").padding(toLength: 24, withPad: " ", startingAt: 0) + v) }
    }
}

struct QuorumReplication: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication", abstract: "Per node: log end offset, lag, last fetch, last caught up, status.")
    @OptionGroup var options: QuorumOptions

    func run() throws {
        let report = try runCLI { try QuorumReport.fetch(options) }
        if options.json { return printJSON(report.replicas) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func time(_ t: Int64) -> String {
            guard options.humanReadable else { return "\(t)" }
            return t < 0 ? "-" : humanDuration(now - t) + " ago"
        }
        var table = [["NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"]]
        for r in report.replicas.sorted(by: {
            ($0.status == "Leader" ? 0 : 1, $0.nodeId) < ($1.status == "Leader" ? 0 : 1, $1.nodeId)
        }) {
            table.append([
                "\(r.nodeId)", "\(r.logEndOffset)", "\(r.lag)", time(r.lastFetchTimestamp),
                time(r.lastCaughtUpTimestamp), r.status,
            ])
        }
        printTable(table)
    }
}

func humanDuration(_ ms: Int64) -> String {
    if ms < 0 { return "-" }
    if ms < 1000 { return "\(ms) ms" }
    if ms < 60_000 { return String(format: "%.1f s", Double(ms) / 1000) }
    return String(format: "%.1f min", Double(ms) / 60_000)
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for row in rows {
        print(
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset] + 2, withPad: " ", startingAt: 0) }
                .joined().trimmingCharacters(in: .whitespaces))
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    if let data = try? encoder.encode(value), let text = String(data: data, encoding: .utf8) { print(text) }
}

/// An operator-facing failure: one sentence, exit status 1, no stack trace.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func runCLI<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as CLIError {
        fail(error.description)
    }
}

/// Runs async work from a synchronous command.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, any Error>?
    Task {
        do { result = .success(try await body()) } catch { result = .failure(error) }
        semaphore.signal()
    }
    semaphore.wait()
    return try result!.get()
}
