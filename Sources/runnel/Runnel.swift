import ArgumentParser
import Foundation
import Logging
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelNode
import RunnelSecurity
import RunnelWire

@main
struct Runnel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runnel",
        abstract: "Runnel: a Kafka-compatible distributed log, built the KRaft way.",
        subcommands: [
            Server.self, Dev.self, Format.self, RandomUUID.self, Metadata.self, Topic.self, Produce.self, Consume.self,
            Group.self, Transactions.self, Cluster.self, Acl.self, User.self, LogDirs.self, Features.self,
            Storage.self, GetOffsets.self, ConfigCommand.self, LeaderElection.self, DumpLog.self,
            Reassign.self, BrokerCommand.self, Bench.self, Quota.self,
        ]
    )

    /// ArgumentParser's entry point, except that a bad argument to a client tool (topic, produce,
    /// consume, group, transactions, cluster, log-dirs, features, storage, get-offsets, config,
    /// leader-election, dump-log) ends with one sentence and exit status 1 instead of the usage text.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if let first = arguments.first, clientToolCommands[first] != nil, exitCode(for: error) != .success,
                !(error is ExitCode)
            {
                fail(usageFailure(error, arguments: arguments))
            }
            exit(withError: error)
        }
    }
}

/// Prints one sentence and exits non-zero: the way every operator-facing failure ends.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("runnel: \(message)\n".utf8))
    exit(code)
}

func loadConfig(_ path: String) -> ServerConfig {
    guard FileManager.default.fileExists(atPath: path) else {
        fail("config file \(path) does not exist.")
    }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        fail("config file \(path) cannot be read as UTF-8 text.")
    }
    do {
        return try ServerConfig(Properties(parsing: text))
    } catch let error as ConfigError {
        fail("\(error) (in \(path))")
    } catch {
        fail("config file \(path): \(error)")
    }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a node from a server.properties file.")

    @Argument(help: "The server.properties file.")
    var config: String

    func run() async throws {
        let config = loadConfig(config)
        let nodeId = config.nodeId
        let level =
            ProcessInfo.processInfo.environment["RUNNEL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            handler.metadata["node"] = "\(nodeId)"
            return handler
        }
        let logger = Logger(label: "runnel")
        for key in config.unknownKeys {
            logger.warning("unknown configuration key \(key) is ignored")
        }
        // Once per key of the file, with the reason from the table `runnel config no-effect` prints.
        for (key, effect) in config.keysWithoutEffect {
            switch effect {
            case .honoured: break
            case .partial(let reason): logger.warning("configuration key \(key) is only partly honoured: \(reason)")
            case .none(let reason): logger.warning("configuration key \(key) is accepted without effect: \(reason)")
            }
        }
        // Signals are caught from the start, so a stop during start-up is still graceful.
        let signals = SignalWaiter()
        let server = RunnelServer(config: config, logger: logger)
        do {
            try await server.start()
        } catch let error as StorageError {
            await server.shutdown()
            fail(error.description)
        } catch {
            await server.shutdown()
            fail("could not start: \(error)")
        }
        await signals.wait()
        await server.shutdown()
    }
}

/// Catches SIGTERM and SIGINT from the moment it is made; `wait()` returns once one came.
final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.fire() }
            source.resume()
            sources.append(source)
        }
    }

    private func fire() {
        lock.lock()
        fired = true
        let waiting = continuation
        continuation = nil
        lock.unlock()
        waiting?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if fired {
                lock.unlock()
                c.resume()
            } else {
                continuation = c
                lock.unlock()
            }
        }
    }
}

struct Format: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Write meta.properties into the log directories of a server.properties file (as kafka-storage format).")

    @Option(name: [.customShort("c"), .long], help: "The server.properties file.")
    var config: String

    @Option(
        name: [.customShort("t"), .long], help: "The cluster id (22-character Kafka uuid; see `runnel random-uuid`).")
    var clusterId: String

    @Flag(name: [.customShort("g"), .long], help: "Skip directories that are already formatted.")
    var ignoreFormatted = false

    @Option(
        name: [.customShort("S"), .customLong("add-scram")],
        help:
            "A SCRAM credential for the new cluster, as kafka-storage takes it: 'SCRAM-SHA-512=[name=admin,password=secret]' (or with salt, saltedpassword and iterations). Repeat for more."
    )
    var addScram: [String] = []

    @Option(
        name: [.customShort("r"), .customLong("release-version")],
        help:
            "The metadata.version the new cluster starts at, as a release (3.3 to 3.9, its newest level) or a name such as 3.7-IV2 (default: 3.9-IV0)."
    )
    var releaseVersion: String?

    @Option(
        name: [.customShort("f"), .long],
        help:
            "A feature level for the new cluster as feature=level (metadata.version=7..21, transaction.version=0..2). Repeat for more."
    )
    var feature: [String] = []

    /// The FeatureLevelRecords for `--release-version` and `--feature` (none means the newest
    /// metadata.version and transaction.version 2, written by the first active controller), or
    /// one sentence saying what is wrong. A metadata.version given without a transaction.version
    /// also writes transaction.version 0, as Kafka's format picks that feature's level from the
    /// release (every 3.x release predates transactions v2).
    static func bootstrapFeatures(releaseVersion: String?, features: [String]) throws -> [MetadataRecord] {
        var level: Int16?
        var transactionLevel: Int16?
        if let releaseVersion {
            guard let version = MetadataVersion.fromVersionString(releaseVersion) else {
                throw StorageError(
                    "Unknown release version \(releaseVersion); give a release from 3.3 to 3.9 or a metadata.version name (\(MetadataVersion.supportedNames))."
                )
            }
            level = version.featureLevel
        }
        for text in features {
            let parts = text.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let value = Int16(parts[1]) else {
                throw StorageError(
                    "--feature \(text) is not feature=level (a level is a number, e.g. metadata.version=21).")
            }
            switch parts[0] {
            case MetadataVersion.featureName:
                guard level == nil else {
                    throw StorageError(
                        "metadata.version is given twice; use --release-version or --feature metadata.version=N once.")
                }
                level = value
            case TransactionVersionFeature.featureName:
                guard transactionLevel == nil else { throw StorageError("transaction.version is given twice.") }
                guard TransactionVersionFeature.supportedLevels.contains(value) else {
                    throw StorageError(
                        "transaction.version \(value) is not supported; this build runs levels \(TransactionVersionFeature.supportedLevels.lowerBound) to \(TransactionVersionFeature.supportedLevels.upperBound)."
                    )
                }
                transactionLevel = value
            default:
                throw StorageError(
                    "Unsupported feature \(parts[0]); this build finalizes metadata.version and transaction.version (group.version is not built)."
                )
            }
        }
        var records: [MetadataRecord] = []
        if let level {
            guard let version = MetadataVersion.fromFeatureLevel(level),
                MetadataVersion.supportedLevels.contains(level)
            else {
                throw StorageError(
                    "metadata.version \(level) is not supported; this build runs \(MetadataVersion.minimumSupported) (\(MetadataVersion.supportedLevels.lowerBound)) to \(MetadataVersion.latest) (\(MetadataVersion.supportedLevels.upperBound))."
                )
            }
            records.append(
                .featureLevel(FeatureLevelRecord(name: MetadataVersion.featureName, featureLevel: version.featureLevel))
            )
        }
        if level != nil || transactionLevel != nil {
            let chosen = transactionLevel ?? TransactionVersionFeature.defaultLevel(releaseVersionGiven: level != nil)
            records.append(
                .featureLevel(FeatureLevelRecord(name: TransactionVersionFeature.featureName, featureLevel: chosen)))
        }
        return records
    }

    func run() throws {
        let config = loadConfig(config)
        var records: [MetadataRecord] = []
        do {
            records = try Self.bootstrapFeatures(releaseVersion: releaseVersion, features: feature)
        } catch {
            fail("\(error)")
        }
        var random = SystemRandomNumberGenerator()
        for argument in addScram {
            do {
                let parsed = try ScramCredentialArgument(parsing: argument, random: &random)
                let entry = ScramCredentialEntry(
                    user: parsed.user, mechanism: parsed.mechanism.rawValue, salt: parsed.credential.salt,
                    storedKey: parsed.credential.storedKey, serverKey: parsed.credential.serverKey,
                    iterations: parsed.credential.iterations)
                records.append(.userScramCredential(entry.record))
            } catch {
                fail("--add-scram \(argument): \(error)")
            }
        }
        do {
            let written = try StorageFormatter.format(
                config: config, clusterId: clusterId, ignoreFormatted: ignoreFormatted, bootstrapRecords: records)
            for dir in written { print("Formatted \(dir) for cluster \(clusterId), node \(config.nodeId).") }
            if written.isEmpty { print("All directories were already formatted.") }
        } catch {
            fail("\(error)")
        }
    }
}

struct RandomUUID: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-uuid", abstract: "Print a new random cluster id.")

    func run() {
        var generator = SystemRandomNumberGenerator()
        print(KafkaUUID.random(using: &generator))
    }
}
