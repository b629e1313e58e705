import ArgumentParser
import Foundation
import NIOPosix
import RunnelClient
import RunnelNetwork
import RunnelWire

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators that print figures (tools/bench runs them).",
        subcommands: [QuorumCommitBench.self, MetadataScaleBenchCommand.self])
}

/// Commit latency of single-record proposals: each request is an IncrementalAlterConfigs SET of
/// one cluster-wide broker config, which the active controller answers once the ConfigRecord is
/// committed by a majority of the quorum.
struct QuorumCommitBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quorum-commit", abstract: "Commit latency of one-record proposals through the controller quorum.")

    @Option(name: .customLong("bootstrap-controller"), help: "Controller address(es), host:port[,...].")
    var bootstrapController: String

    @Option(help: "Proposals to make, one at a time.")
    var count: Int = 1000

    @Option(help: "Config key to write (a cluster-wide broker config).")
    var key: String = "log.retention.ms"

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let report = try runCLI { try measure() }
        if json {
            printJSON(report)
        } else {
            print(
                String(
                    format:
                        "quorum commit: %d proposals, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.0f commits/s (leader %d)",
                    report.count, report.p50Ms, report.p99Ms, report.maxMs, report.commitsPerSecond, report.leader))
        }
    }

    struct Report: Encodable {
        var count: Int
        var p50Ms: Double
        var p99Ms: Double
        var maxMs: Double
        var commitsPerSecond: Double
        var leader: Int
    }

    func measure() throws -> Report {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let addresses = try AdminClient(servers: bootstrapController, group: group).bootstrap
        func request(_ value: Int) -> IncrementalAlterConfigsRequest {
            var r = IncrementalAlterConfigsRequest()
            r.resources = [
                .init(
                    resourceType: 4, resourceName: "",
                    configs: [.init(name: key, configOperation: 0, value: String(value))])
            ]
            return r
        }
        // Find the active controller: the one that does not answer NOT_CONTROLLER.
        var leader: (PeerClient, Int)?
        let deadline = Date().addingTimeInterval(20)
        while leader == nil && Date() < deadline {
            for (index, address) in addresses.enumerated() {
                let peer = PeerClient(host: address.host, port: address.port, clientId: "runnel-bench", group: group)
                if let answer = try? peer.send(request(0), version: 1).wait(), answer.responses.first?.errorCode == 0 {
                    leader = (peer, index)
                    break
                }
                peer.close()
            }
            if leader == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        guard let (peer, _) = leader else {
            throw CLIError("no controller at \(bootstrapController) accepted the proposal (is a leader elected?)")
        }
        defer { peer.close() }
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 1...max(count, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let answer = try peer.send(request(1000 + i), version: 1).wait()
            guard answer.responses.first?.errorCode == 0 else {
                throw CLIError("proposal \(i) failed: \(ErrorCode(answer.responses.first?.errorCode ?? -1))")
            }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        latencies.sort()
        func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        return Report(
            count: latencies.count, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: latencies.last ?? 0,
            commitsPerSecond: Double(latencies.count) / total, leader: Int(addresses[leader!.1].port))
    }
}
