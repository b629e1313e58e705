// DescribeConfigs' synonyms of a topic config as Kafka lists them: each broker synonym with its
// own value (log.retention.hours=1, not converted), the default under the first broker synonym
// that has one (log.cleanup.policy, log.retention.hours=168), and the topic's value converted to
// the topic key's unit. A broker config's synonyms as Kafka's ConfigHelper lists them: its synonym
// group by source, less the names before its own; the cluster default lists only its own keys.
import RunnelMetadata
import RunnelWire
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

    func image(_ configs: [(resource: String, name: String, value: String)]) -> MetadataImage {
        var delta = MetadataDelta(.empty)
        for (i, c) in configs.enumerated() {
            delta.replay(
                .config(ConfigRecord(resourceType: 4, resourceName: c.resource, name: c.name, value: c.value)),
                offset: Int64(i), epoch: 1)
        }
        return delta.apply()
    }

    @Test("a broker key lists its synonym group from its own name on; set only in another unit, it lists none")
    func brokerSynonyms() {
        let resolver = ConfigResolver(staticBrokerConfig: ["log.retention.hours": "1"], brokerId: 1)
        var broker = Dictionary(
            uniqueKeysWithValues: resolver.brokerConfigs(brokerName: "1", image: .empty).map { ($0.name, $0) })
        #expect(broker["log.retention.ms"]!.value == nil && broker["log.retention.ms"]!.source == .defaultConfig)
        #expect(broker["log.retention.ms"]!.synonyms.isEmpty, "no null default synonym, and the hours are dropped")
        #expect(broker["log.retention.hours"]!.value == "1")
        #expect(broker["log.retention.hours"]!.synonyms.map(\.source) == [.staticBrokerConfig, .defaultConfig])
        #expect(broker["log.retention.hours"]!.synonyms.map(\.value) == ["1", "168"])

        let dynamic = image([("1", "log.retention.ms", "5000"), ("", "log.retention.minutes", "30")])
        broker = Dictionary(
            uniqueKeysWithValues: resolver.brokerConfigs(brokerName: "1", image: dynamic).map { ($0.name, $0) })
        let ms = broker["log.retention.ms"]!
        #expect(ms.value == "5000" && ms.source == .dynamicBrokerConfig)
        #expect(
            ms.synonyms.map(\.name) == [
                "log.retention.ms", "log.retention.minutes", "log.retention.hours", "log.retention.hours",
            ])
        #expect(
            ms.synonyms.map(\.source) == [
                .dynamicBrokerConfig, .dynamicDefaultBrokerConfig, .staticBrokerConfig, .defaultConfig,
            ])

        let defaults = resolver.brokerConfigs(brokerName: "", image: dynamic)
        #expect(defaults.map(\.name) == ["log.retention.minutes"], "the cluster default lists the keys set on it")
        #expect(defaults[0].value == "30" && defaults[0].source == .dynamicDefaultBrokerConfig)
        #expect(
            defaults[0].synonyms.map(\.source) == [.dynamicDefaultBrokerConfig, .staticBrokerConfig, .defaultConfig])
    }
}
