import NIOCore
import RunnelCore
import RunnelWire

/// The feature flags of a cluster as a broker's ApiVersions (v3+) reports them: what the broker
/// supports and what the cluster finalized (Kafka's `FeatureMetadata`, KIP-584).
public struct FeatureMetadata: Sendable, Equatable {
    /// A feature the broker's software can run, with the range of levels it supports.
    public struct Supported: Sendable, Equatable {
        public var name: String
        public var minVersion: Int16
        public var maxVersion: Int16

        public init(name: String, minVersion: Int16, maxVersion: Int16) {
            self.name = name
            self.minVersion = minVersion
            self.maxVersion = maxVersion
        }
    }

    /// Supported features in name order.
    public var supported: [Supported]
    /// The finalized level of each feature the cluster has finalized.
    public var finalized: [String: Int16]
    /// The epoch of the finalized features (the metadata offset they were read at), nil when the
    /// broker did not say.
    public var finalizedEpoch: Int64?

    public init(supported: [Supported], finalized: [String: Int16], finalizedEpoch: Int64?) {
        self.supported = supported
        self.finalized = finalized
        self.finalizedEpoch = finalizedEpoch
    }
}

extension KafkaClient {
    /// Kafka's `Admin.describeFeatures`: ApiVersions v3 to any broker, whose answer carries the
    /// supported and finalized features.
    public func describeFeatures() async throws -> FeatureMetadata {
        let (response, version, address) = try await sendAny { _ in
            var request = ApiVersionsRequest()
            request.clientSoftwareName = "runnel-client"
            request.clientSoftwareVersion = "1.0"
            return request
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "the broker at \(address) answered ApiVersions with \(ErrorCode(response.errorCode).name)")
        }
        guard version >= 3 else {
            throw ClientError("the broker at \(address) answers ApiVersions only below v3, which carries no features")
        }
        var finalized: [String: Int16] = [:]
        for feature in response.finalizedFeatures { finalized[feature.name] = feature.maxVersionLevel }
        return FeatureMetadata(
            supported: response.supportedFeatures.map {
                FeatureMetadata.Supported(name: $0.name, minVersion: $0.minVersion, maxVersion: $0.maxVersion)
            }.sorted { $0.name < $1.name }, finalized: finalized,
            finalizedEpoch: response.finalizedFeaturesEpoch >= 0 ? response.finalizedFeaturesEpoch : nil)
    }
}

/// One change for `updateFeatures` (Kafka's `FeatureUpdate`): the new finalized level (0 removes
/// the feature) and how it may move.
public struct FeatureUpdate: Sendable, Equatable {
    /// Kafka's `FeatureUpdate.UpgradeType` codes.
    public enum UpgradeType: Int8, Sendable {
        case upgrade = 1
        case safeDowngrade = 2
        case unsafeDowngrade = 3
    }

    public var feature: String
    public var maxVersionLevel: Int16
    public var upgradeType: UpgradeType

    public init(feature: String, maxVersionLevel: Int16, upgradeType: UpgradeType) {
        self.feature = feature
        self.maxVersionLevel = maxVersionLevel
        self.upgradeType = upgradeType
    }
}

extension KafkaClient {
    /// Kafka's `Admin.updateFeatures`: UpdateFeatures to any broker, which forwards it to the
    /// active controller. Returns each feature's refusal (Kafka's error name and message), nil
    /// for the ones accepted (or, with `validateOnly`, that would be).
    public func updateFeatures(
        _ updates: [FeatureUpdate], validateOnly: Bool
    ) async throws -> [(feature: String, error: String?)] {
        let build: @Sendable (Int16) -> UpdateFeaturesRequest = { [requestTimeoutMs] _ in
            UpdateFeaturesRequest(
                timeoutMs: Int32(clamping: requestTimeoutMs),
                featureUpdates: updates.map {
                    .init(
                        feature: $0.feature, maxVersionLevel: $0.maxVersionLevel,
                        allowDowngrade: $0.upgradeType != .upgrade, upgradeType: $0.upgradeType.rawValue)
                }, validateOnly: validateOnly)
        }
        let (response, version, address) = try await sendToActiveController(build, errorCode: \.errorCode)
        if version == 0 && (validateOnly || updates.contains { $0.upgradeType == .unsafeDowngrade }) {
            throw ClientError(
                "the broker at \(address) answers UpdateFeatures only at v0, which has no dry run and no unsafe downgrade"
            )
        }
        if response.errorCode != 0 {
            let reason = Self.reason(ErrorCode(response.errorCode), response.errorMessage)
            return updates.map { ($0.feature, reason) }
        }
        return updates.map { update in
            guard let result = response.results.first(where: { $0.feature == update.feature }) else {
                return (update.feature, "the controller did not answer for \(update.feature)")
            }
            return (
                update.feature,
                result.errorCode == 0 ? nil : Self.reason(ErrorCode(result.errorCode), result.errorMessage)
            )
        }
    }
}
