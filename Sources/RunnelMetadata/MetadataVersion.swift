import RunnelWire

/// A `metadata.version` level with Kafka's name for it (Kafka's `MetadataVersion`, KIP-778): the
/// feature level that says which metadata records and RPC versions a KRaft cluster may use.
/// Levels only grow; a level whose `didMetadataChange` is set added or changed metadata records,
/// so going below it could drop information (Kafka's `checkIfMetadataChanged`).
public struct MetadataVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The feature level written in FeatureLevelRecord.
    public let featureLevel: Int16
    /// The Kafka release that introduced it ("3.7").
    public let release: String
    /// The internal version within the release ("IV4").
    public let internalVersion: String
    /// Whether this level changed the metadata records (Kafka's `didMetadataChange`).
    public let didMetadataChange: Bool

    /// Kafka's name, "3.7-IV4".
    public var name: String { "\(release)-\(internalVersion)" }
    public var description: String { name }

    public static func < (lhs: MetadataVersion, rhs: MetadataVersion) -> Bool { lhs.featureLevel < rhs.featureLevel }

    /// The feature's name in ApiVersions, registrations and FeatureLevelRecord.
    public static let featureName = "metadata.version"

    /// Every KRaft level Kafka 3.9 knows, level 1 (3.0-IV1) to 21 (3.9-IV0), in order, with
    /// Kafka's `didMetadataChange` for each.
    public static let all: [MetadataVersion] = [
        ("3.0", "IV1", true), ("3.1", "IV0", false), ("3.2", "IV0", true), ("3.3", "IV0", false),
        ("3.3", "IV1", true), ("3.3", "IV2", true), ("3.3", "IV3", true), ("3.4", "IV0", true),
        ("3.5", "IV0", false), ("3.5", "IV1", false), ("3.5", "IV2", true), ("3.6", "IV0", false),
        ("3.6", "IV1", true), ("3.6", "IV2", true), ("3.7", "IV0", true), ("3.7", "IV1", false),
        ("3.7", "IV2", true), ("3.7", "IV3", false), ("3.7", "IV4", false), ("3.8", "IV0", false),
        ("3.9", "IV0", false),
    ].enumerated().map { index, entry in
        MetadataVersion(
            featureLevel: Int16(index + 1), release: entry.0, internalVersion: entry.1, didMetadataChange: entry.2)
    }

    /// The levels this build runs: from 3.3-IV3, the oldest Kafka 4 still supports and the first
    /// whose broker records Runnel writes (controlled-shutdown state, KIP-841), to 3.9-IV0.
    public static let supportedLevels: ClosedRange<Int16> = 7...21

    /// The newest level this build runs, the one a new cluster starts at unless formatted lower.
    public static let latest = fromFeatureLevel(supportedLevels.upperBound)!
    /// The oldest level this build runs.
    public static let minimumSupported = fromFeatureLevel(supportedLevels.lowerBound)!

    /// 3.7-IV0, the first level with controller registration (KIP-919): from it on, controllers
    /// send ControllerRegistration and UpdateFeatures checks their ranges.
    public static let controllerRegistrationLevel: Int16 = 15

    /// The level `level` names, nil when Kafka 3.9 has none (0, negative, above 21).
    public static func fromFeatureLevel(_ level: Int16) -> MetadataVersion? {
        guard level >= 1, Int(level) <= all.count else { return nil }
        let version = all[Int(level) - 1]
        precondition(version.featureLevel == level, "MetadataVersion.all is indexed by feature level - 1")
        return version
    }

    /// Kafka's `MetadataVersion.fromVersionString`: "3.7-IV2" names one level, a release "3.7"
    /// names its newest internal version (3.7-IV4), and a third segment is ignored ("3.7.1" reads
    /// as "3.7"). Nil when no KRaft level has that name.
    public static func fromVersionString(_ text: String) -> MetadataVersion? {
        let segments = text.split(separator: ".", omittingEmptySubsequences: false)
        let key = segments.count <= 2 ? text : segments.prefix(2).joined(separator: ".")
        if let exact = all.first(where: { $0.name == key }) { return exact }
        return all.last { $0.release == key }
    }

    /// Kafka's `checkIfMetadataChanged`: whether some level above the lower of the two, up to the
    /// higher, changed the metadata records, so moving down from the higher to the lower could
    /// lose information.
    public static func checkIfMetadataChanged(_ from: MetadataVersion, _ to: MetadataVersion) -> Bool {
        let (low, high) = from < to ? (from, to) : (to, from)
        guard low != high else { return false }
        return all[Int(low.featureLevel)..<Int(high.featureLevel)].contains { $0.didMetadataChange }
    }

    /// The supported names for messages: "3.3-IV3, 3.4-IV0, ..., 3.9-IV0".
    public static var supportedNames: String {
        supportedLevels.map { fromFeatureLevel($0)!.name }.joined(separator: ", ")
    }
}

/// The features this build can finalize, with the levels it supports (what a node advertises in
/// BrokerRegistration and ApiVersions, and what a controller checks UpdateFeatures against).
/// `metadata.version` and `transaction.version` (0 to 2, KIP-890); Kafka 3.9's `kraft.version`
/// stays 0 with a static voter set, and `group.version` (KIP-848) is not built.
public enum SupportedFeatures {
    public static let local: [String: ClosedRange<Int16>] = [
        MetadataVersion.featureName: MetadataVersion.supportedLevels,
        TransactionVersionFeature.featureName: TransactionVersionFeature.supportedLevels,
    ]
}

extension BrokerRegistration {
    /// A registration record's feature list as ranges; a range whose minimum exceeds its maximum
    /// is dropped (the broker supports no level of that feature).
    public static func supportedFeatures(
        _ features: [RegisterBrokerRecord.BrokerFeature]
    ) -> [String: ClosedRange<Int16>] {
        var ranges: [String: ClosedRange<Int16>] = [:]
        for f in features where f.minSupportedVersion <= f.maxSupportedVersion {
            ranges[f.name] = f.minSupportedVersion...f.maxSupportedVersion
        }
        return ranges
    }
}
