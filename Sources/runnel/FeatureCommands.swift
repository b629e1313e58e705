import ArgumentParser
import Foundation
import RunnelClient
import RunnelMetadata

/// `runnel features`, as `kafka-features.sh`: `describe` shows the feature flags a broker
/// supports and the levels the cluster finalized (from ApiVersions v3); `upgrade`, `downgrade`
/// and `disable` change finalized levels through UpdateFeatures.
struct Features: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe and change the cluster's feature flags (as kafka-features).",
        subcommands: [FeaturesDescribe.self, FeaturesUpgrade.self, FeaturesDowngrade.self, FeaturesDisable.self])
}

struct FeaturesDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Each feature's supported levels and finalized level (ApiVersions).",
        discussion: """
            Prints kafka-features' lines: Feature, SupportedMinVersion, SupportedMaxVersion, \
            FinalizedVersionLevel (0 when not finalized) and Epoch ("-" when unknown), with \
            metadata.version levels by name (3.9-IV0). --json prints {"features": [{"feature", \
            "supportedMinVersion", "supportedMaxVersion", "finalizedVersionLevel" (numbers), \
            "finalizedVersion" (the level as text), "epoch" (or null)}]}.
            """)

    @OptionGroup var options: FeatureClientOptions

    func run() async {
        let features = await options.connect { client in try await client.describeFeatures() }
        if options.json { return Self.json(features).print() }
        for line in Self.lines(features) { print(line) }
    }

    /// kafka-features describe's lines (FeatureCommand.handleDescribe), tab-separated.
    static func lines(_ features: FeatureMetadata) -> [String] {
        let epoch = features.finalizedEpoch.map(String.init) ?? "-"
        return features.supported.map { f in
            let finalized = features.finalized[f.name] ?? 0
            return
                "Feature: \(f.name)\tSupportedMinVersion: \(levelName(f.name, f.minVersion))\tSupportedMaxVersion: \(levelName(f.name, f.maxVersion))\tFinalizedVersionLevel: \(levelName(f.name, finalized))\tEpoch: \(epoch)"
        }
    }

    static func json(_ features: FeatureMetadata) -> JSON {
        .object([
            (
                "features",
                .array(
                    features.supported.map { f in
                        let finalized = features.finalized[f.name] ?? 0
                        return .object([
                            ("feature", .string(f.name)), ("supportedMinVersion", .int(f.minVersion)),
                            ("supportedMaxVersion", .int(f.maxVersion)), ("finalizedVersionLevel", .int(finalized)),
                            ("finalizedVersion", .string(levelName(f.name, finalized))),
                            ("epoch", .optional(features.finalizedEpoch)),
                        ])
                    })
            )
        ])
    }

    /// `metadata.version` levels by Kafka's names (MetadataVersion, level 1 = 3.0-IV1 to 21 =
    /// 3.9-IV0), as kafka-features prints them; other features as numbers, an unknown
    /// `metadata.version` level as "UNKNOWN <level>" (0 stays 0).
    static func levelName(_ feature: String, _ level: Int16) -> String {
        guard feature == MetadataVersion.featureName, level != 0 else { return "\(level)" }
        return MetadataVersion.fromFeatureLevel(level)?.name ?? "UNKNOWN \(level)"
    }
}

/// kafka-features' connection options: brokers (--bootstrap-server) or the controller quorum
/// (--bootstrap-controller), exactly one of them, plus the client tools' timeout, security and
/// --json.
struct FeatureClientOptions: ParsableArguments {
    @Option(name: .customLong("bootstrap-server"), help: "Broker address(es), host:port[,host:port...].")
    var bootstrapServer: String?

    @Option(
        name: .customLong("bootstrap-controller"),
        help: "Controller address(es), host:port[,host:port...]: ask the quorum instead of a broker.")
    var bootstrapController: String?

    @Option(name: .customLong("request-timeout-ms"), help: "How long one request (and its retries) may take.")
    var requestTimeoutMs: Int64 = 30_000

    @Option(
        name: .customLong("command-config"),
        help: "A Kafka client properties file (security.protocol, sasl.*, ssl.*) for a TLS or SASL listener.")
    var commandConfig: String?

    @Flag(help: "Print JSON for scripts (the fields are listed above) instead of text for people.")
    var json = false

    var servers: String { bootstrapServer ?? bootstrapController ?? "" }

    func validate() throws {
        guard (bootstrapServer == nil) != (bootstrapController == nil) else {
            throw ValidationError("Give exactly one of --bootstrap-server and --bootstrap-controller.")
        }
        do {
            _ = try BrokerAddress.parseList(servers)
        } catch {
            throw ValidationError(
                "\(bootstrapServer == nil ? "--bootstrap-controller" : "--bootstrap-server"): \(error)")
        }
        guard requestTimeoutMs >= 1 else { throw ValidationError("--request-timeout-ms must be at least 1") }
    }

    /// Runs `body` with a client of the brokers or controllers given.
    func connect<T: Sendable>(_ body: @Sendable (KafkaClient) async throws -> T) async -> T {
        await withClient(
            servers: servers, requestTimeoutMs: requestTimeoutMs, commandConfig: commandConfig, body)
    }
}

/// The options `upgrade` and `downgrade` share (Kafka 3.9's FeatureCommand): the metadata level
/// by name (--metadata, or --release-version), any feature as name=level (--feature, repeatable),
/// and --dry-run.
struct FeatureChangeOptions: ParsableArguments {
    @Option(help: "The metadata.version to move to, by name: 3.7-IV4, or a release such as 3.7 (its newest level).")
    var metadata: String?

    @Option(
        name: .customLong("release-version"),
        help: "The release whose metadata.version to move to (3.3 to 3.9, or a name such as 3.7-IV2).")
    var releaseVersion: String?

    @Option(help: "A feature change as feature=level, e.g. metadata.version=21. Repeat for more.")
    var feature: [String] = []

    @Flag(name: .customLong("dry-run"), help: "Validate the change on the controller, but do not make it.")
    var dryRun = false

    /// The requested levels by feature, or a sentence saying what is wrong with the arguments.
    func levels() throws -> [(String, Int16)] {
        var levels: [(String, Int16)] = []
        func add(_ name: String, _ level: Int16) throws {
            if levels.contains(where: { $0.0 == name }) {
                throw ValidationError("Feature \(name) was specified more than once.")
            }
            levels.append((name, level))
        }
        if metadata != nil && releaseVersion != nil {
            throw ValidationError("Give --metadata or --release-version, not both.")
        }
        if let metadata {
            guard let version = MetadataVersion.fromVersionString(metadata) else {
                throw ValidationError(
                    "Unsupported metadata version \(metadata). Supported metadata versions are \(MetadataVersion.supportedNames)"
                )
            }
            try add(MetadataVersion.featureName, version.featureLevel)
        }
        if let releaseVersion {
            guard let version = MetadataVersion.fromVersionString(releaseVersion) else {
                throw ValidationError(
                    "Unknown release version \(releaseVersion). Supported metadata.version are \(MetadataVersion.supportedNames)"
                )
            }
            try add(MetadataVersion.featureName, version.featureLevel)
        }
        for text in feature {
            guard let equals = text.firstIndex(of: "=") else {
                throw ValidationError("Can't parse feature=level string \(text): equals sign not found.")
            }
            let name = text[..<equals].trimmingCharacters(in: .whitespaces)
            let levelText = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard let level = Int16(levelText) else {
                throw ValidationError(
                    "Can't parse feature=level string \(text): unable to parse \(levelText) as a short.")
            }
            try add(name, level)
        }
        return levels
    }
}

/// Sends the changes and prints kafka-features' lines: "metadata.version was upgraded to 21."
/// (or "can be" with --dry-run), "Could not upgrade ... . <reason>" for a refusal; exits 1 when
/// any was refused ("1 out of 2 operation(s) failed.").
func runFeatureUpdate(
    _ op: String, _ options: FeatureClientOptions, _ levels: [(String, Int16)], _ type: FeatureUpdate.UpgradeType,
    dryRun: Bool
) async {
    guard !levels.isEmpty else { fail("You must specify at least one feature to \(op).") }
    let updates = levels.map { FeatureUpdate(feature: $0.0, maxVersionLevel: $0.1, upgradeType: type) }
    let results = await options.connect { client in try await client.updateFeatures(updates, validateOnly: dryRun) }
    var failures = 0
    var json: [JSON] = []
    for (update, result) in zip(updates, results).sorted(by: { $0.0.feature < $1.0.feature }) {
        let target =
            op == "disable" ? "disable \(update.feature)" : "\(op) \(update.feature) to \(update.maxVersionLevel)"
        if let error = result.error {
            failures += 1
            if !options.json { print("\(dryRun ? "Can not" : "Could not") \(target). \(sentence(error))") }
        } else if !options.json {
            let done = op == "disable" ? "disabled." : "\(op)d to \(update.maxVersionLevel)."
            print("\(update.feature)\(dryRun ? " can be " : " was ")\(done)")
        }
        json.append(
            .object([
                ("feature", .string(update.feature)), ("level", .int(update.maxVersionLevel)),
                ("error", result.error.map { .string($0) } ?? .null),
            ]))
    }
    if options.json {
        JSON.object([("dryRun", .bool(dryRun)), ("results", .array(json))]).print()
    }
    if failures > 0 { fail("\(failures) out of \(updates.count) operation(s) failed.") }
}

struct FeaturesUpgrade: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Raise finalized feature levels, metadata.version above all (UpdateFeatures).",
        discussion: """
            As kafka-features upgrade: the active controller checks that it and every registered \
            broker support the level, and refuses a lower level than the finalized one. --json \
            prints {"dryRun", "results": [{"feature", "level", "error" (or null)}]}.
            """)

    @OptionGroup var options: FeatureClientOptions
    @OptionGroup var change: FeatureChangeOptions

    func run() async throws {
        await runFeatureUpdate("upgrade", options, try change.levels(), .upgrade, dryRun: change.dryRun)
    }
}

struct FeaturesDowngrade: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "downgrade",
        abstract: "Lower finalized feature levels (UpdateFeatures with a safe or unsafe downgrade).",
        discussion: """
            As kafka-features downgrade. metadata.version goes down only across levels that did \
            not change the metadata records (Kafka 3.9's rule; 3.9-IV0 to 3.7-IV2 is safe, below \
            that is refused, and Kafka 3.9 refuses an unsafe metadata downgrade too). Output as upgrade.
            """)

    @OptionGroup var options: FeatureClientOptions
    @OptionGroup var change: FeatureChangeOptions

    @Flag(help: "Perform this downgrade even if it may irreversibly destroy metadata.")
    var unsafe = false

    func run() async throws {
        await runFeatureUpdate(
            "downgrade", options, try change.levels(), unsafe ? .unsafeDowngrade : .safeDowngrade, dryRun: change.dryRun
        )
    }
}

struct FeaturesDisable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Remove finalized features (level 0; never metadata.version).")

    @OptionGroup var options: FeatureClientOptions

    @Option(help: "A feature flag to disable. Repeat for more.")
    var feature: [String] = []

    @Flag(help: "Disable this feature flag even if it may irreversibly destroy metadata.")
    var unsafe = false

    @Flag(name: .customLong("dry-run"), help: "Perform a dry-run of this disable operation.")
    var dryRun = false

    func run() async throws {
        var levels: [(String, Int16)] = []
        for name in feature {
            if levels.contains(where: { $0.0 == name }) {
                throw ValidationError("Feature \(name) was specified more than once.")
            }
            levels.append((name, 0))
        }
        await runFeatureUpdate("disable", options, levels, unsafe ? .unsafeDowngrade : .safeDowngrade, dryRun: dryRun)
    }
}
