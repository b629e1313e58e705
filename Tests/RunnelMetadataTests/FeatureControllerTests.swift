// The controller's UpdateFeatures follows Kafka 3.9's FeatureControlManager: a level must be
// supported by this controller and every registered broker, a lower level needs a downgrade
// upgrade type, metadata.version goes down only across levels that changed no metadata records,
// and validate-only writes nothing. Also the MetadataVersion table (Kafka's names and
// didMetadataChange), the registration check, and that broker feature ranges survive a snapshot.
import Foundation
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelSnapshotStore
import RunnelWire
import Testing

/// A controller (node 3000) whose image has `metadata.version` at `level` and brokers 1-3 that
/// registered with `brokerRange` (broker 3 with `lastBrokerRange` when given).
private func featureController(
    level: Int16, brokerRange: ClosedRange<Int16> = 7...21, lastBrokerRange: ClosedRange<Int16>? = nil,
    transactionRange: ClosedRange<Int16>? = nil
) -> QuorumController {
    var delta = MetadataDelta(.empty)
    delta.replay(.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: level)), offset: 0, epoch: 1)
    for id: Int32 in 1...3 {
        let range = id == 3 ? (lastBrokerRange ?? brokerRange) : brokerRange
        let record = RegisterBrokerRecord(
            brokerId: id, incarnationId: KafkaUUID(high: 1, low: UInt64(id)), brokerEpoch: Int64(id),
            endPoints: [.init(name: "PLAINTEXT", host: "h\(id)", port: 9092, securityProtocol: 0)],
            features: [
                .init(
                    name: "metadata.version", minSupportedVersion: range.lowerBound,
                    maxSupportedVersion: range.upperBound)
            ]
                + (transactionRange.map {
                    [
                        .init(
                            name: "transaction.version", minSupportedVersion: $0.lowerBound,
                            maxSupportedVersion: $0.upperBound)
                    ]
                } ?? []),
            rack: nil, fenced: false)
        delta.replay(.registerBroker(record), offset: Int64(id), epoch: 1)
    }
    var settings = ControllerSettings()
    settings.nodeId = 3000
    return QuorumController(
        image: delta.apply(), settings: settings, resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: 1))
}

private func update(
    _ feature: String, _ level: Int16, _ type: Int8 = 1, validateOnly: Bool = false
) -> UpdateFeaturesRequest {
    UpdateFeaturesRequest(
        timeoutMs: 60_000,
        featureUpdates: [.init(feature: feature, maxVersionLevel: level, allowDowngrade: type != 1, upgradeType: type)],
        validateOnly: validateOnly)
}

@Suite("UpdateFeatures on the controller (Kafka's FeatureControlManager)")
struct FeatureControllerTests {
    @Test("transaction.version moves between 0 and 2 where every broker supports it; 3 and old brokers refused")
    func transactionVersion() {
        var c = featureController(level: 21, transactionRange: 0...2)
        let up = c.updateFeatures(update("transaction.version", 2), version: 1)
        #expect(up.response.results.map(\.errorCode) == [0])
        #expect(up.records == [.featureLevel(FeatureLevelRecord(name: "transaction.version", featureLevel: 2))])
        commit(&c, up.records)
        #expect(c.image.features["transaction.version"] == 2)
        let down = c.updateFeatures(update("transaction.version", 1, 2), version: 1)
        #expect(down.response.results.map(\.errorCode) == [0])
        let tooHigh = c.updateFeatures(update("transaction.version", 3), version: 1)
        #expect(
            tooHigh.response.results[0].errorMessage
                == "Invalid update version 3 for feature transaction.version. Local controller 3000 only supports versions 0-2"
        )
        let disabled = c.updateFeatures(update("transaction.version", 0, 2), version: 1)
        commit(&c, disabled.records)
        #expect(c.image.features["transaction.version"] == nil, "level 0 is not finalized")

        let old = featureController(level: 21)
        let refused = old.updateFeatures(update("transaction.version", 2), version: 1)
        #expect(
            refused.response.results[0].errorMessage
                == "Invalid update version 2 for feature transaction.version. broker1 does not support this feature.")
    }

    @Test("an upgrade every node supports writes one FeatureLevelRecord and answers NONE")
    func upgrade() {
        var c = featureController(level: 19)
        let result = c.updateFeatures(update("metadata.version", 21), version: 1)
        #expect(result.response.errorCode == 0)
        #expect(result.response.results.map(\.errorCode) == [0])
        #expect(result.records == [.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21))])
        commit(&c, result.records)
        #expect(c.image.metadataVersion == 21)
    }

    @Test("validate_only checks but writes nothing")
    func validateOnly() {
        let c = featureController(level: 19)
        let result = c.updateFeatures(update("metadata.version", 21, validateOnly: true), version: 1)
        #expect(result.records.isEmpty)
        #expect(result.response.results.map(\.errorCode) == [0])
        let refused = c.updateFeatures(update("metadata.version", 40, validateOnly: true), version: 1)
        #expect(refused.response.results.map(\.errorCode) == [ErrorCode.invalidUpdateVersion.rawValue])
    }

    @Test("a level this controller does not run is INVALID_UPDATE_VERSION with Kafka's message")
    func locallyUnsupported() {
        let c = featureController(level: 21)
        let result = c.updateFeatures(update("metadata.version", 22), version: 1)
        #expect(result.records.isEmpty)
        #expect(result.response.results[0].errorCode == ErrorCode.invalidUpdateVersion.rawValue)
        #expect(
            result.response.results[0].errorMessage
                == "Invalid update version 22 for feature metadata.version. Local controller 3000 only supports versions 7-21"
        )
        let unknown = c.updateFeatures(update("group.version", 1), version: 1)
        #expect(
            unknown.response.results[0].errorMessage
                == "Invalid update version 1 for feature group.version. Local controller 3000 does not support this feature."
        )
        let removal = c.updateFeatures(update("metadata.version", 0, 2), version: 1)
        #expect(removal.response.results[0].errorCode == ErrorCode.invalidUpdateVersion.rawValue, "never removable")
        let negative = c.updateFeatures(update("metadata.version", -1), version: 1)
        #expect(
            negative.response.results[0].errorMessage?.hasSuffix("A feature version cannot be less than 0.") == true)
    }

    @Test("a level a registered broker does not support is refused, naming the broker")
    func brokerUnsupported() {
        let c = featureController(level: 19, lastBrokerRange: 7...20)
        let result = c.updateFeatures(update("metadata.version", 21), version: 1)
        #expect(result.records.isEmpty)
        #expect(
            result.response.results[0].errorMessage
                == "Invalid update version 21 for feature metadata.version. broker3 only supports versions 7-20")
        #expect(c.updateFeatures(update("metadata.version", 20), version: 1).records.count == 1)
    }

    @Test("going down needs a downgrade type, going up refuses one")
    func direction() {
        let c = featureController(level: 21)
        let down = c.updateFeatures(update("metadata.version", 20), version: 1)
        #expect(
            down.response.results[0].errorMessage
                == "Invalid update version 20 for feature metadata.version. Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."
        )
        let low = featureController(level: 19)
        let up = low.updateFeatures(update("metadata.version", 21, 2), version: 1)
        #expect(
            up.response.results[0].errorMessage
                == "Invalid update version 21 for feature metadata.version. Can't downgrade to a newer version.")
        let unknownType = low.updateFeatures(update("metadata.version", 21, 7), version: 1)
        #expect(
            unknownType.response.results[0].errorMessage?.hasSuffix("does not support the given upgrade type.") == true)
    }

    @Test("metadata.version goes down safely only across levels without metadata changes (3.9 to 3.7-IV2)")
    func metadataDowngrade() {
        let c = featureController(level: 21)
        let safe = c.updateFeatures(update("metadata.version", 17, 2), version: 1)
        #expect(safe.response.results[0].errorCode == 0)
        #expect(safe.records == [.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 17))])
        let lossy = c.updateFeatures(update("metadata.version", 15, 2), version: 1)
        #expect(
            lossy.response.results[0].errorMessage
                == "Invalid metadata.version 15. Refusing to perform the requested downgrade because it might delete metadata information. Retry using UNSAFE_DOWNGRADE if you want to force the downgrade to proceed."
        )
        let unsafe = c.updateFeatures(update("metadata.version", 15, 3), version: 1)
        #expect(
            unsafe.response.results[0].errorMessage
                == "Invalid metadata.version 15. Unsafe metadata downgrade is not supported in this version.")
        #expect(lossy.records.isEmpty && unsafe.records.isEmpty)
    }

    @Test("v0's allow_downgrade is a safe downgrade")
    func version0() {
        let c = featureController(level: 21)
        var request = update("metadata.version", 20)
        request.featureUpdates[0].allowDowngrade = true
        request.featureUpdates[0].upgradeType = 1
        #expect(c.updateFeatures(request, version: 0).records.count == 1)
        request.featureUpdates[0].allowDowngrade = false
        #expect(c.updateFeatures(request, version: 0).records.isEmpty)
    }

    @Test("accepted changes are written even when another in the request is refused; a repeat is INVALID_REQUEST")
    func mixed() {
        let c = featureController(level: 19)
        var request = update("metadata.version", 21)
        request.featureUpdates.append(
            .init(feature: "kraft.version", maxVersionLevel: 1, allowDowngrade: false, upgradeType: 1))
        request.featureUpdates.append(
            .init(feature: "metadata.version", maxVersionLevel: 20, allowDowngrade: false, upgradeType: 1))
        let result = c.updateFeatures(request, version: 1)
        #expect(
            result.response.results.map(\.errorCode)
                == [0, ErrorCode.invalidUpdateVersion.rawValue, ErrorCode.invalidRequest.rawValue])
        #expect(result.records == [.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21))])
    }

    @Test("a broker that cannot run the finalized metadata.version may not register (UNSUPPORTED_VERSION)")
    func registration() {
        let c = featureController(level: 21)
        var request = BrokerRegistrationRequest()
        request.brokerId = 9
        request.clusterId = "c"
        request.incarnationId = KafkaUUID(high: 9, low: 9)
        request.features = [.init(name: "metadata.version", minSupportedVersion: 1, maxSupportedVersion: 20)]
        let refused = c.registerBroker(request, clusterId: "c", nextOffset: 10)
        #expect(refused.response.errorCode == ErrorCode.unsupportedVersion.rawValue)
        #expect(refused.records.isEmpty)
        request.features = [.init(name: "metadata.version", minSupportedVersion: 7, maxSupportedVersion: 21)]
        let accepted = c.registerBroker(request, clusterId: "c", nextOffset: 10)
        #expect(accepted.response.errorCode == 0)
        guard case .registerBroker(let record) = accepted.records.first else {
            Issue.record("no RegisterBrokerRecord")
            return
        }
        var after = c
        commit(&after, [.registerBroker(record)])
        #expect(after.image.brokers[NodeID(9)]?.supportedFeatures == ["metadata.version": 7...21])
    }

    @Test("from 3.7-IV0 every other voter must have registered, and its range counts (KIP-919)")
    func controllersChecked() {
        var c = featureController(level: 19)
        c.settings.voterIds = [3000, 3001, 3002]
        let missing = c.updateFeatures(update("metadata.version", 21), version: 1)
        #expect(
            missing.response.results[0].errorMessage
                == "Invalid update version 21 for feature metadata.version. controller 3001 has not registered, and may not support this feature"
        )
        for (id, high): (Int32, Int16) in [(3001, 21), (3002, 20)] {
            var request = ControllerRegistrationRequest()
            request.controllerId = id
            request.incarnationId = KafkaUUID(high: 7, low: UInt64(id))
            request.features = [.init(name: "metadata.version", minSupportedVersion: 7, maxSupportedVersion: high)]
            let result = c.registerController(request)
            #expect(result.response.errorCode == 0)
            #expect(result.records.count == 1)
            commit(&c, result.records)
            #expect(c.registerController(request).records.isEmpty, "the same registration again writes nothing")
        }
        #expect(c.image.controllers[NodeID(3002)]?.supportedFeatures == ["metadata.version": 7...20])
        let narrow = c.updateFeatures(update("metadata.version", 21), version: 1)
        #expect(
            narrow.response.results[0].errorMessage
                == "Invalid update version 21 for feature metadata.version. controller 3002 only supports versions 7-20"
        )
        #expect(c.updateFeatures(update("metadata.version", 20), version: 1).records.count == 1)
        // Below 3.7-IV0 controllers neither register nor count.
        var old = featureController(level: 14)
        old.settings.voterIds = [3000, 3001]
        #expect(old.updateFeatures(update("metadata.version", 15), version: 1).records.count == 1)
        var request = ControllerRegistrationRequest()
        request.controllerId = 3001
        #expect(old.registerController(request).response.errorCode == ErrorCode.unsupportedVersion.rawValue)
        request.controllerId = 9
        #expect(c.registerController(request).response.errorCode == ErrorCode.invalidRequest.rawValue, "not a voter")
    }

    @Test("broker feature ranges survive a snapshot and the image's records")
    func snapshot() throws {
        let image = featureController(level: 19, lastBrokerRange: 7...20).image
        let dir = NSTemporaryDirectory() + "runnel-feature-snapshot-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try SQLiteSnapshot.write(
            image, clusterId: "c", endOffset: 4, epoch: 1, voters: [3000], lastContainedTimestamp: 0, directory: dir)
        let loaded = try SQLiteSnapshot.read(path)
        #expect(loaded.image == image)
        #expect(loaded.image.brokers[NodeID(3)]?.supportedFeatures == ["metadata.version": 7...20])
        var delta = MetadataDelta(.empty)
        for (i, record) in image.records().enumerated() { delta.replay(record, offset: Int64(i), epoch: 1) }
        #expect(delta.apply().brokers[NodeID(3)]?.supportedFeatures == ["metadata.version": 7...20])
    }

    @Test("controller registrations survive a snapshot and the image's records")
    func controllerSnapshot() throws {
        var c = featureController(level: 21)
        var request = ControllerRegistrationRequest()
        request.controllerId = 3001
        request.incarnationId = KafkaUUID(high: 7, low: 1)
        request.listeners = [.init(name: "CONTROLLER", host: "c1", port: 9093, securityProtocol: 0)]
        request.features = [.init(name: "metadata.version", minSupportedVersion: 7, maxSupportedVersion: 21)]
        commit(&c, c.registerController(request).records)
        let image = c.image
        let dir = NSTemporaryDirectory() + "runnel-controller-snapshot-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try SQLiteSnapshot.write(
            image, clusterId: "c", endOffset: 6, epoch: 1, voters: [3000], lastContainedTimestamp: 0, directory: dir)
        let loaded = try SQLiteSnapshot.read(path)
        #expect(loaded.image == image)
        #expect(loaded.image.controllers[NodeID(3001)]?.endpoints.map(\.host) == ["c1"])
        var delta = MetadataDelta(.empty)
        for (i, record) in image.records().enumerated() { delta.replay(record, offset: Int64(i), epoch: 1) }
        #expect(delta.apply().controllers == image.controllers)
    }
}

@Suite("MetadataVersion: Kafka 3.9's levels")
struct MetadataVersionTests {
    @Test("levels 1-21 carry Kafka's names; a release names its newest level")
    func names() {
        #expect(MetadataVersion.all.count == 21)
        #expect(MetadataVersion.fromFeatureLevel(7)?.name == "3.3-IV3")
        #expect(MetadataVersion.fromFeatureLevel(11)?.name == "3.5-IV2")
        #expect(MetadataVersion.fromFeatureLevel(21)?.name == "3.9-IV0")
        #expect(MetadataVersion.fromFeatureLevel(0) == nil && MetadataVersion.fromFeatureLevel(22) == nil)
        #expect(MetadataVersion.fromVersionString("3.7")?.featureLevel == 19)
        #expect(MetadataVersion.fromVersionString("3.7-IV2")?.featureLevel == 17)
        #expect(MetadataVersion.fromVersionString("3.9.1")?.featureLevel == 21)
        #expect(MetadataVersion.fromVersionString("3.3")?.featureLevel == 7)
        #expect(MetadataVersion.fromVersionString("4.0") == nil)
        #expect(MetadataVersion.fromVersionString("2.8") == nil, "not a KRaft level")
        #expect(MetadataVersion.supportedLevels == 7...21)
    }

    @Test("checkIfMetadataChanged: only a level with didMetadataChange between the two counts")
    func metadataChanged() {
        func changed(_ a: Int16, _ b: Int16) -> Bool {
            MetadataVersion.checkIfMetadataChanged(
                MetadataVersion.fromFeatureLevel(a)!, MetadataVersion.fromFeatureLevel(b)!)
        }
        #expect(!changed(21, 21))
        #expect(!changed(21, 17), "18-21 changed no records")
        #expect(changed(21, 16), "17 (3.7-IV2, JBOD) did")
        #expect(changed(16, 21), "symmetric")
        #expect(!changed(10, 8), "9 and 10 did not")
        #expect(changed(11, 10), "11 (SCRAM) did")
    }
}
