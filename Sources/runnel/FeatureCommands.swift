import ArgumentParser
import Foundation
import RunnelClient

/// `runnel features describe`, as `kafka-features.sh describe`: the feature flags a broker
/// supports and the levels the cluster finalized (from ApiVersions v3). Read-only.
struct Features: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe the cluster's feature flags (as kafka-features).", subcommands: [FeaturesDescribe.self])
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

    @OptionGroup var options: ClientOptions

    func run() async {
        let features = await withClient(options) { client in try await client.describeFeatures() }
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
    /// 3.9-IV0), as kafka-features prints them; other features and unknown levels as numbers.
    static func levelName(_ feature: String, _ level: Int16) -> String {
        guard feature == "metadata.version", level >= 1, Int(level) <= metadataVersionNames.count else {
            return "\(level)"
        }
        return metadataVersionNames[Int(level) - 1]
    }

    static let metadataVersionNames = [
        "3.0-IV1", "3.1-IV0", "3.2-IV0", "3.3-IV0", "3.3-IV1", "3.3-IV2", "3.3-IV3", "3.4-IV0", "3.5-IV0", "3.5-IV1",
        "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2", "3.7-IV0", "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4", "3.8-IV0",
        "3.9-IV0",
    ]
}
