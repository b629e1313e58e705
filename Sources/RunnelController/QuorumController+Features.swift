import RunnelCore
import RunnelMetadata
import RunnelWire

/// UpdateFeatures (KIP-584, KIP-778): finalizing feature levels, `metadata.version` above all,
/// by Kafka's FeatureControlManager rules. A level must be supported by this controller and by
/// every registered broker; going down needs a downgrade upgrade type; `metadata.version` may go
/// down only where no level in between changed the metadata records, never to 0.
extension QuorumController {
    /// How a feature may move (UpdateFeatures v1 `upgrade_type`; v0's `allow_downgrade` maps to
    /// upgrade or safe downgrade).
    public enum UpgradeType: Int8, Sendable {
        case upgrade = 1
        case safeDowngrade = 2
        case unsafeDowngrade = 3
    }

    /// UpdateFeatures: one FeatureLevelRecord per accepted change (none when `validate_only`),
    /// and a result for every feature named. Accepted changes are written even when others are
    /// refused, as Kafka does.
    public func updateFeatures(
        _ request: UpdateFeaturesRequest, version: Int16
    ) -> ControllerResult<UpdateFeaturesResponse> {
        var records: [MetadataRecord] = []
        var results: [UpdateFeaturesResponse.UpdatableFeatureResult] = []
        var seen: Set<String> = []
        for update in request.featureUpdates {
            let upgradeType: UpgradeType?
            if version == 0 {
                upgradeType = update.allowDowngrade ? .safeDowngrade : .upgrade
            } else {
                upgradeType = UpgradeType(rawValue: update.upgradeType)
            }
            var error: (ErrorCode, String)?
            if !seen.insert(update.feature).inserted {
                error = (.invalidRequest, "Feature \(update.feature) was specified more than once.")
            } else {
                switch validateFeatureUpdate(update.feature, level: update.maxVersionLevel, upgradeType) {
                case .success(let record): records.append(.featureLevel(record))
                case .failure(let refusal): error = (.invalidUpdateVersion, refusal.message)
                }
            }
            results.append(
                .init(feature: update.feature, errorCode: error?.0.rawValue ?? 0, errorMessage: error?.1))
        }
        precondition(records.count <= request.featureUpdates.count, "at most one FeatureLevelRecord per feature")
        return ControllerResult(
            records: request.validateOnly ? [] : records,
            response: UpdateFeaturesResponse(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, results: results))
    }

    /// Why an update is refused: Kafka's INVALID_UPDATE_VERSION message.
    public struct FeatureRefusal: Error, Equatable {
        public var message: String
    }

    /// Kafka's `FeatureControlManager.updateFeature`: the record to write, or why not.
    public func validateFeatureUpdate(
        _ feature: String, level: Int16, _ upgradeType: UpgradeType?
    ) -> Result<FeatureLevelRecord, FeatureRefusal> {
        func invalid(_ message: String) -> Result<FeatureLevelRecord, FeatureRefusal> {
            .failure(FeatureRefusal(message: "Invalid update version \(level) for feature \(feature). \(message)"))
        }
        guard let upgradeType else { return invalid("The controller does not support the given upgrade type.") }
        let current = image.features[feature] ?? 0
        if level < 0 { return invalid("A feature version cannot be less than 0.") }
        if let reason = reasonNotSupported(feature, level: level) { return invalid(reason) }
        if level < current, upgradeType == .upgrade {
            return invalid(
                "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."
            )
        }
        if level > current, upgradeType != .upgrade { return invalid("Can't downgrade to a newer version.") }
        if feature == MetadataVersion.featureName {
            return metadataVersionUpdate(level, current: current, unsafe: upgradeType == .unsafeDowngrade)
        }
        return .success(FeatureLevelRecord(name: feature, featureLevel: level))
    }

    /// Kafka's `FeatureControlManager.reasonNotSupported` over this controller, every registered
    /// broker (fenced ones too: they may come back) and, from 3.7-IV0 on (controller
    /// registration, KIP-919), every other voter, which must have registered.
    func reasonNotSupported(_ feature: String, level: Int16) -> String? {
        if let reason = Self.reasonNotSupported(
            level, what: "Local controller \(settings.nodeId)", range: settings.supportedFeatures[feature])
        {
            return reason
        }
        for id in image.brokers.keys.sorted() {
            let broker = image.brokers[id]!
            if let reason = Self.reasonNotSupported(
                level, what: "broker\(id.rawValue)", range: broker.supportedFeatures[feature])
            {
                return reason
            }
        }
        guard image.metadataVersion >= MetadataVersion.controllerRegistrationLevel else { return nil }
        for id in settings.voterIds.sorted() where id != settings.nodeId {
            guard let controller = image.controllers[NodeID(id)] else {
                return "controller \(id) has not registered, and may not support this feature"
            }
            if let reason = Self.reasonNotSupported(
                level, what: "controller \(id)", range: controller.supportedFeatures[feature])
            {
                return reason
            }
        }
        return nil
    }

    /// ControllerRegistration (KIP-919): a RegisterControllerRecord with the controller's
    /// incarnation, listeners and supported features, once `metadata.version` has controller
    /// registration (3.7-IV0). The same registration again writes nothing.
    public func registerController(
        _ request: ControllerRegistrationRequest
    ) -> ControllerResult<ControllerRegistrationResponse> {
        func refuse(_ code: ErrorCode, _ message: String) -> ControllerResult<ControllerRegistrationResponse> {
            ControllerResult(
                records: [],
                response: ControllerRegistrationResponse(
                    throttleTimeMs: 0, errorCode: code.rawValue, errorMessage: message))
        }
        guard image.metadataVersion >= MetadataVersion.controllerRegistrationLevel else {
            return refuse(
                .unsupportedVersion, "The current MetadataVersion is too old to support controller registrations.")
        }
        if !settings.voterIds.isEmpty, !settings.voterIds.contains(request.controllerId) {
            return refuse(
                .invalidRequest, "Unable to register because node \(request.controllerId) is not a controller.")
        }
        var ranges: [String: ClosedRange<Int16>] = [:]
        for f in request.features {
            if let level = image.features[f.name], !(f.minSupportedVersion <= level && level <= f.maxSupportedVersion) {
                return refuse(
                    .unsupportedVersion,
                    "Unable to register because the controller does not support finalized version \(level) of \(f.name). The controller wants a version between \(f.minSupportedVersion) and \(f.maxSupportedVersion), inclusive."
                )
            }
            if f.minSupportedVersion <= f.maxSupportedVersion {
                ranges[f.name] = f.minSupportedVersion...f.maxSupportedVersion
            }
        }
        let registration = ControllerRegistration(
            id: NodeID(request.controllerId), incarnationId: request.incarnationId,
            endpoints: request.listeners.map {
                .init(listener: $0.name, host: $0.host, port: Int($0.port), securityProtocol: $0.securityProtocol)
            }, supportedFeatures: ranges)
        let response = ControllerRegistrationResponse(throttleTimeMs: 0, errorCode: 0, errorMessage: nil)
        if image.controllers[registration.id] == registration {
            return ControllerResult(records: [], response: response)
        }
        return ControllerResult(records: [.registerController(registration.record)], response: response)
    }

    /// "does not support this feature" when the node supports no level of it (a missing feature
    /// supports only level 0), else "only supports versions 7-21" when the level is outside.
    static func reasonNotSupported(_ level: Int16, what: String, range: ClosedRange<Int16>?) -> String? {
        let range = range ?? 0...0
        if range.contains(level) { return nil }
        if range.upperBound == 0 { return "\(what) does not support this feature." }
        let text =
            range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
        return "\(what) only supports versions \(text)"
    }

    /// Kafka's `updateMetadataVersion`: a known level, not below the oldest this build runs, and a
    /// downgrade only across levels that did not change the metadata records (Kafka 3.9 refuses
    /// an unsafe metadata downgrade outright).
    func metadataVersionUpdate(
        _ level: Int16, current: Int16, unsafe: Bool
    ) -> Result<FeatureLevelRecord, FeatureRefusal> {
        func invalid(_ message: String) -> Result<FeatureLevelRecord, FeatureRefusal> {
            .failure(FeatureRefusal(message: "Invalid metadata.version \(level). \(message)"))
        }
        guard let target = MetadataVersion.fromFeatureLevel(level) else { return invalid("Unknown metadata.version.") }
        if target < MetadataVersion.minimumSupported {
            return invalid("Unable to set a metadata.version less than \(MetadataVersion.minimumSupported)")
        }
        if let now = MetadataVersion.fromFeatureLevel(current), target < now,
            MetadataVersion.checkIfMetadataChanged(now, target)
        {
            if unsafe { return invalid("Unsafe metadata downgrade is not supported in this version.") }
            return invalid(
                "Refusing to perform the requested downgrade because it might delete metadata information. Retry using UNSAFE_DOWNGRADE if you want to force the downgrade to proceed."
            )
        }
        return .success(FeatureLevelRecord(name: MetadataVersion.featureName, featureLevel: level))
    }

    /// Kafka's registration check: why a broker whose supported range misses a finalized level
    /// may not register, or nil. Features the broker does not list are not checked (Runnel's
    /// own brokers always list `metadata.version`).
    public func registrationFeatureRefusal(_ features: [BrokerRegistrationRequest.Feature]) -> String? {
        for f in features {
            guard let level = image.features[f.name] else { continue }
            if f.minSupportedVersion <= level && level <= f.maxSupportedVersion { continue }
            return
                "Unable to register because the broker does not support finalized version \(level) of \(f.name). The broker wants a version between \(f.minSupportedVersion) and \(f.maxSupportedVersion), inclusive."
        }
        return nil
    }
}
