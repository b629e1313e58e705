// Every message of every API and every metadata record round-trips at every version: random
// values for every field present at that version (from the generated `arbitrary` builders)
// encode, decode to an equal value, and re-encode to the same bytes.
import NIOCore
import RunnelCore
import Testing
@testable import RunnelWire

func roundTrip<M: WireMessage & ArbitraryMessage>(_ type: M.Type, versions: ClosedRange<Int16>, seeds: Int = 25) throws
{
    for version in versions {
        for seed in 0..<seeds {
            var rng = SeededRandom(seed: UInt64(seed) &* 7919 &+ UInt64(version))
            let value = M.arbitrary(version: version, rng: &rng)
            var writer = WireWriter()
            value.write(to: &writer, version: version)
            let bytes = writer.bytes
            var reader = WireReader(bytes)
            let decoded = try M(from: &reader, version: version)
            try reader.expectEnd("\(M.self)")
            #expect(decoded == value, "\(M.self) v\(version) seed \(seed)")
            var again = WireWriter()
            decoded.write(to: &again, version: version)
            #expect(again.bytes == bytes, "\(M.self) v\(version) seed \(seed) re-encodes identically")
        }
    }
}

func roundTripApi<Request: RequestMessage & ArbitraryMessage>(_ request: Request.Type) throws
where Request.Response: ArbitraryMessage {
    try roundTrip(Request.self, versions: Request.versions)
    try roundTrip(Request.Response.self, versions: Request.Response.versions)
}

func openRoundTrip(_ type: any RequestMessage.Type) throws {
    guard let t = type as? any (RequestMessage & ArbitraryMessage).Type else {
        Issue.record("\(type) has no arbitrary builder")
        return
    }
    try roundTripOpened(t)
}

func roundTripOpened<R: RequestMessage & ArbitraryMessage>(_ type: R.Type) throws {
    try roundTrip(R.self, versions: R.versions)
    guard let response = R.Response.self as? any (ResponseMessage & ArbitraryMessage).Type else {
        Issue.record("\(R.Response.self) has no arbitrary builder")
        return
    }
    try roundTripResponse(response)
}

func roundTripResponse<R: ResponseMessage & ArbitraryMessage>(_ type: R.Type) throws {
    try roundTrip(R.self, versions: R.versions)
}

@Suite("Round trips")
struct RoundTripTests {
    @Test("API messages round-trip at every version", arguments: ApiKey.all.map(\.key))
    func api(key: ApiKey) throws {
        let types = try #require(key.messageTypes)
        try openRoundTrip(types.request)
    }

    @Test("metadata records round-trip at every version")
    func records() throws {
        for version in Int16(0)...2 {
            for seed in 0..<25 {
                var rng = SeededRandom(seed: UInt64(seed))
                for type in MetadataRecordSamples.all(version: version, rng: &rng) {
                    var writer = WireWriter()
                    type.record.write(to: &writer, version: type.version)
                    var reader = WireReader(writer.bytes)
                    let decoded = try MetadataRecord(type: type.record.recordType, version: type.version, from: &reader)
                    try reader.expectEnd("record")
                    #expect(decoded == type.record)
                }
            }
        }
    }
}

enum MetadataRecordSamples {
    static func all(version: Int16, rng: inout SeededRandom) -> [(record: MetadataRecord, version: Int16)] {
        var out: [(MetadataRecord, Int16)] = []
        func add<R: MetadataRecordMessage & ArbitraryMessage>(_ type: R.Type, _ wrap: (R) -> MetadataRecord) {
            guard R.versions.contains(version) else { return }
            out.append((wrap(R.arbitrary(version: version, rng: &rng)), version))
        }
        add(TopicRecord.self, MetadataRecord.topic)
        add(PartitionRecord.self, MetadataRecord.partition)
        add(PartitionChangeRecord.self, MetadataRecord.partitionChange)
        add(RegisterBrokerRecord.self, MetadataRecord.registerBroker)
        add(ConfigRecord.self, MetadataRecord.config)
        add(RemoveTopicRecord.self, MetadataRecord.removeTopic)
        add(FenceBrokerRecord.self, MetadataRecord.fenceBroker)
        add(UnfenceBrokerRecord.self, MetadataRecord.unfenceBroker)
        add(ProducerIdsRecord.self, MetadataRecord.producerIds)
        add(FeatureLevelRecord.self, MetadataRecord.featureLevel)
        add(AccessControlEntryRecord.self, MetadataRecord.accessControlEntry)
        add(BrokerRegistrationChangeRecord.self, MetadataRecord.brokerRegistrationChange)
        add(NoOpRecord.self, MetadataRecord.noOp)
        return out
    }
}
