// `runnel format`'s feature levels and the first active controller's bootstrap records: a
// cluster formatted without a release version starts at the newest metadata.version and at
// transaction.version 2 (Kafka 4.x's default); one formatted at a 3.x release gets
// transaction.version 0 (not finalized), as Kafka's format picks a feature's level from the
// release; `--feature transaction.version=N` sets it, and out-of-range levels are refused.
import RunnelMetadata
import RunnelWire
import Testing

@testable import runnel

@Suite struct FormatFeatureTests {
    static func levels(_ records: [MetadataRecord]) -> [String: Int16] {
        var out: [String: Int16] = [:]
        for case .featureLevel(let r) in records { out[r.name] = r.featureLevel }
        return out
    }

    @Test("no release version: nothing written at format, metadata.version 21 and transaction.version 2 at bootstrap")
    func defaults() throws {
        let formatted = try Format.bootstrapFeatures(releaseVersion: nil, features: [])
        #expect(formatted.isEmpty)
        let first = BootstrapMetadata.firstRecords(formatted)
        #expect(Self.levels(first) == ["metadata.version": 21, "transaction.version": 2])
        guard case .featureLevel(let head) = first.first else {
            Issue.record("metadata.version first")
            return
        }
        #expect(head.name == "metadata.version")
    }

    @Test("a 3.x release version gives transaction.version 0, which bootstrap does not write")
    func releaseVersion() throws {
        let formatted = try Format.bootstrapFeatures(releaseVersion: "3.7", features: [])
        #expect(Self.levels(formatted) == ["metadata.version": 19, "transaction.version": 0])
        #expect(Self.levels(BootstrapMetadata.firstRecords(formatted)) == ["metadata.version": 19])
        let byFeature = try Format.bootstrapFeatures(releaseVersion: nil, features: ["metadata.version=20"])
        #expect(Self.levels(BootstrapMetadata.firstRecords(byFeature)) == ["metadata.version": 20])
    }

    @Test("--feature transaction.version=N sets the level, alone or with a release version")
    func explicitLevel() throws {
        let alone = try Format.bootstrapFeatures(releaseVersion: nil, features: ["transaction.version=1"])
        #expect(
            Self.levels(BootstrapMetadata.firstRecords(alone)) == ["metadata.version": 21, "transaction.version": 1])
        let both = try Format.bootstrapFeatures(releaseVersion: "3.8", features: ["transaction.version=2"])
        #expect(
            Self.levels(BootstrapMetadata.firstRecords(both)) == ["metadata.version": 20, "transaction.version": 2])
    }

    @Test("an unsupported transaction.version, a repeated one, or an unknown feature is one sentence")
    func refusals() {
        func refusal(_ features: [String]) -> String? {
            do {
                _ = try Format.bootstrapFeatures(releaseVersion: nil, features: features)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(
            refusal(["transaction.version=3"])
                == "transaction.version 3 is not supported; this build runs levels 0 to 2.")
        #expect(
            refusal(["transaction.version=1", "transaction.version=2"]) == "transaction.version is given twice.")
        #expect(refusal(["group.version=1"])?.hasPrefix("Unsupported feature group.version;") == true)
    }

    @Test("this build supports transaction.version 0 to 2 beside metadata.version")
    func supported() {
        #expect(SupportedFeatures.local == ["metadata.version": 7...21, "transaction.version": 0...2])
    }
}
