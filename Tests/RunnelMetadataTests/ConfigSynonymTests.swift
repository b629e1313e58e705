// DescribeConfigs' synonyms of a topic config as Kafka lists them: each broker synonym with its
// own value (log.retention.hours=1, not converted), the default under the first broker synonym
// that has one (log.cleanup.policy, log.retention.hours=168), and the topic's value converted to
// the topic key's unit.
import RunnelMetadata
import Testing

@Suite("Config synonyms")
struct ConfigSynonymTests {
    @Test("broker synonyms keep their own names and values; the topic value is converted")
    func topicSynonyms() {
        let resolver = ConfigResolver(staticBrokerConfig: ["log.retention.hours": "1"], brokerId: 1)
        let topic = Dictionary(
            uniqueKeysWithValues: resolver.topicConfigs(topic: "t", image: .empty).map { ($0.name, $0) })
        let retention = topic["retention.ms"]!
        #expect(retention.value == "3600000" && retention.source == .staticBrokerConfig)
        #expect(retention.synonyms.map(\.name) == ["log.retention.hours", "log.retention.hours"])
        #expect(retention.synonyms.map(\.value) == ["1", "168"])
        #expect(retention.synonyms.map(\.source) == [.staticBrokerConfig, .defaultConfig])
        let cleanup = topic["cleanup.policy"]!
        #expect(cleanup.value == "delete" && cleanup.isDefault)
        #expect(cleanup.synonyms.map(\.name) == ["log.cleanup.policy"])
        let segment = topic["segment.ms"]!
        #expect(segment.value == "604800000", "log.roll.hours=168 by default, in ms")
    }
}
