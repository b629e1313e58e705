import ArgumentParser
import Foundation
import RunnelClient
import RunnelCore
import RunnelNode
import RunnelWire

/// `runnel dev`: a local cluster of separate processes under one data folder.
struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Start a local cluster: controllers and brokers as separate processes on 127.0.0.1 (Ctrl-C stops them all).",
        discussion: """
            Brokers listen on --port, --port+1, ...; controllers on --port+100, +101, ...; Prometheus
            metrics are served on --port+200, ... (brokers) and --port+300, ... (controllers). Each node's
            server.properties and log are under --data-dir/<node>/. An existing data folder is reused.
            --combined runs one process with process.roles=broker,controller instead.
            --secure turns on TLS and SASL (SCRAM-SHA-512) on every listener and the StandardAuthorizer:
            it makes a CA, a certificate for the nodes and an admin user (a super user) under
            --data-dir/secure/, and prints the client configs to use.
            """)

    @Option(name: .customLong("data-dir"), help: "Folder for every node's data, configs and logs.")
    var dataDir: String = "./runnel-data"

    @Option(help: "Number of controllers (voters).")
    var controllers: Int = 3

    @Option(help: "Number of brokers.")
    var brokers: Int = 3

    @Option(help: "Port of the first broker.")
    var port: Int = 9092

    @Flag(help: "One combined broker+controller process instead.")
    var combined = false

    @Flag(help: "TLS and SCRAM-SHA-512 on every listener, the authorizer on, an admin user (see below).")
    var secure = false

    @Option(name: .customLong("cluster-id"), help: "Cluster id for a new data folder (default: random).")
    var clusterId: String?

    func validate() throws {
        if !combined {
            guard (1...9).contains(controllers) else { throw ValidationError("--controllers must be between 1 and 9.") }
            guard (1...50).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 50.") }
        }
        guard (1...65000).contains(port) else { throw ValidationError("--port must be a port number.") }
    }

    struct NodeSpec {
        var name: String
        var properties: [(String, String)]
        var clientPort: Int?
    }

    func plan(root: String, security: DevSecurity? = nil) -> [NodeSpec] {
        let client = security == nil ? "PLAINTEXT" : "SASL_SSL"
        let secured = security?.nodeProperties ?? []
        if combined {
            let controllerPort = port + 100
            return [
                NodeSpec(
                    name: "node1",
                    properties: [
                        ("process.roles", "broker,controller"), ("node.id", "1"),
                        ("controller.quorum.voters", "1@127.0.0.1:\(controllerPort)"),
                        ("listeners", "\(client)://127.0.0.1:\(port),CONTROLLER://127.0.0.1:\(controllerPort)"),
                        ("controller.listener.names", "CONTROLLER"), ("log.dirs", "\(root)/node1/data"),
                        ("num.partitions", "3"), ("metrics.port", "\(port + 200)"), ("metrics.host", "127.0.0.1"),
                    ] + (security == nil ? [] : [("inter.broker.listener.name", client)]) + secured, clientPort: port)
            ]
        }
        let voters = (0..<controllers).map { "\($0 + 1)@127.0.0.1:\(port + 100 + $0)" }.joined(separator: ",")
        var out: [NodeSpec] = []
        for i in 0..<controllers {
            out.append(
                NodeSpec(
                    name: "controller\(i + 1)",
                    properties: [
                        ("process.roles", "controller"), ("node.id", "\(i + 1)"), ("controller.quorum.voters", voters),
                        ("listeners", "CONTROLLER://127.0.0.1:\(port + 100 + i)"),
                        ("controller.listener.names", "CONTROLLER"),
                        ("log.dirs", "\(root)/controller\(i + 1)/data"),
                        ("default.replication.factor", "\(min(3, brokers))"), ("num.partitions", "3"),
                        ("offsets.topic.replication.factor", "\(min(3, brokers))"),
                        ("metrics.port", "\(port + 300 + i)"), ("metrics.host", "127.0.0.1"),
                    ] + secured, clientPort: nil))
        }
        for i in 0..<brokers {
            out.append(
                NodeSpec(
                    name: "broker\(i + 1)",
                    properties: [
                        ("process.roles", "broker"), ("node.id", "\(100 + i + 1)"),
                        ("controller.quorum.voters", voters),
                        ("listeners", "\(client)://127.0.0.1:\(port + i)"), ("controller.listener.names", "CONTROLLER"),
                        ("log.dirs", "\(root)/broker\(i + 1)/data"), ("broker.rack", "rack\(i % 3 + 1)"),
                        ("default.replication.factor", "\(min(3, brokers))"), ("num.partitions", "3"),
                        ("metrics.port", "\(port + 200 + i)"), ("metrics.host", "127.0.0.1"),
                    ] + (security == nil ? [] : [("inter.broker.listener.name", client)]) + secured,
                    clientPort: port + i))
        }
        return out
    }

    func run() throws {
        let root = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let binary = fm.isExecutableFile(atPath: me) ? me : (ProcessInfo.processInfo.arguments.first ?? "runnel")
        var generator = SystemRandomNumberGenerator()
        let clusterFile = root + "/cluster.id"
        let cluster: String
        if let existing = try? String(contentsOfFile: clusterFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines), !existing.isEmpty
        {
            cluster = existing
        } else {
            cluster = clusterId ?? KafkaUUID.random(using: &generator).description
            try cluster.write(toFile: clusterFile, atomically: true, encoding: .utf8)
        }
        let security = secure ? try DevSecurity.prepare(in: root + "/secure") : nil
        let nodes = plan(root: root, security: security)
        var processes: [(NodeSpec, Process)] = []
        let stopping = OnceFlag(), watching = OnceFlag()
        for node in nodes {
            let dir = root + "/" + node.name
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let config = dir + "/server.properties"
            try node.properties.map { "\($0.0)=\($0.1)\n" }.joined().write(
                toFile: config, atomically: true, encoding: .utf8)
            if !fm.fileExists(atPath: dir + "/data/meta.properties") {
                let format = Process()
                format.executableURL = URL(fileURLWithPath: binary)
                format.arguments =
                    ["format", "--config", config, "--cluster-id=\(cluster)"]
                    + (security.map { ["--add-scram", $0.scramArgument] } ?? [])
                format.standardOutput = FileHandle.nullDevice
                try format.run()
                format.waitUntilExit()
                guard format.terminationStatus == 0 else { fail("formatting \(node.name) failed; see \(config).") }
            }
            let log = dir + "/server.log"
            _ = fm.createFile(atPath: log, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try handle.seekToEnd()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["server", config]
            process.standardOutput = handle
            process.standardError = handle
            let name = node.name
            process.terminationHandler = { p in
                guard watching.isSet, !stopping.isSet else { return }
                say("runnel dev: \(name) exited (status \(p.terminationStatus)); see \(log)")
            }
            try process.run()
            processes.append((node, process))
        }
        let signals = SignalWaiter()
        // Wait until every broker answers.
        let ports = nodes.compactMap(\.clientPort)
        let deadline = Date().addingTimeInterval(60)
        let probe = try KafkaClient(
            bootstrapServers: "127.0.0.1:\(ports.first ?? port)", clientId: "runnel-dev", requestTimeoutMs: 2_000,
            connectTimeoutMs: 1_000, security: try clientSecurity(commandConfig: security?.clientConfigFile))
        while Date() < deadline && !ports.allSatisfy({ brokerAnswers(probe, port: $0) }) {
            if let dead = processes.first(where: { !$0.1.isRunning }) {
                stopping.set()
                stopAll(processes)
                let log = "\(root)/\(dead.0.name)/server.log"
                let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
                    .split(separator: "\n").suffix(5).map { "  " + $0 }.joined(separator: "\n")
                fail(
                    "\(dead.0.name) exited during start-up (status \(dead.1.terminationStatus)); the end of \(log):\n\(tail)"
                )
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard ports.allSatisfy({ brokerAnswers(probe, port: $0) }) else {
            stopping.set()
            stopAll(processes)
            fail("the cluster did not start within 60 s; see the server.log files under \(root)")
        }
        runBlocking { await probe.close() }
        say("runnel dev: \(nodes.count) process(es), data and logs under \(root)")
        say("bootstrap: " + ports.map { "127.0.0.1:\($0)" }.joined(separator: ","))
        let metrics = nodes.compactMap { node in
            node.properties.first { $0.0 == "metrics.port" }.map { "\(node.name) http://127.0.0.1:\($0.1)/metrics" }
        }
        say("metrics: " + metrics.joined(separator: ", "))
        if let security {
            say(
                "security: SASL_SSL (SCRAM-SHA-512) on every listener, the authorizer on; user \(DevSecurity.adminUser) is a super user"
            )
            say("  client config (Java client, runnel --command-config): \(security.clientConfigFile)")
            say("  client config (librdkafka, confluent-kafka, kcat -F): \(security.librdkafkaConfigFile)")
            say("  CA certificate: \(security.caFile); admin password: \(security.passwordFile)")
        }
        watching.set()
        runBlocking { await signals.wait() }
        say("runnel dev: stopping")
        stopping.set()
        stopAll(processes)
    }

    /// Brokers first (controlled shutdown needs the controllers), then controllers.
    func stopAll(_ processes: [(NodeSpec, Process)]) {
        let brokers = processes.filter { $0.0.clientPort != nil }
        let controllers = processes.filter { $0.0.clientPort == nil }
        for group in [brokers, controllers] {
            for (_, p) in group where p.isRunning { p.terminate() }
            let deadline = Date().addingTimeInterval(40)
            while group.contains(where: { $0.1.isRunning }) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            for (_, p) in group where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
    }
}

/// A flag set once, read from any thread.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Prints a line at once (stdout may be a file or a pipe read by a script).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Whether the broker on `port` answers ApiVersions (RunnelClient's handshake) within two
/// seconds. A bound port alone is not enough: a broker binds its port before it registers, and
/// lets clients in only once the controller has unfenced it.
func brokerAnswers(_ client: KafkaClient, port: Int) -> Bool {
    (try? runBlocking {
        try await client.send(to: BrokerAddress(host: "127.0.0.1", port: port)) { _ in ApiVersionsRequest() }
    }) != nil
}

/// Runs async work from a synchronous command, blocking the calling thread.
func runBlocking(_ body: @escaping @Sendable () async -> Void) {
    let semaphore = DispatchSemaphore(value: 0)
    Task {
        await body()
        semaphore.signal()
    }
    semaphore.wait()
}
