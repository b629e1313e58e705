// ConfigEffectTests.swift
// The table of config keys Runnel accepts without effect (ConfigDefinitions.effects, project issue
// 20): it names only keys Runnel accepts, once each and in order; a topic key and its broker
// synonyms agree; keys other work is making effective stay out; and DescribeConfigs' documentation
// is headed by the reason. docs/configuration.md is checked against the table by
// Tests/integration/test_config_effects.py.

import RunnelMetadata
import Testing

@Suite("config keys without effect")
struct ConfigEffectTests {
    @Test("every listed key is a broker or topic key Runnel accepts, listed once, sorted by name")
    func listedKeysAreAccepted() {
        let names = ConfigDefinitions.effects.map(\.name)
        #expect(names == names.sorted())
        #expect(Set(names).count == names.count)
        for name in names {
            #expect(
                ConfigDefinitions.brokerConfig(name) != nil || ConfigDefinitions.topicConfig(name) != nil,
                "\(name) is not a config key Runnel accepts")
        }
        for entry in ConfigDefinitions.effects {
            #expect(!entry.reason.isEmpty && entry.reason.hasSuffix("."), "\(entry.name): a reason is one sentence")
            #expect(entry.effect != .honoured, "\(entry.name): only keys without full effect are listed")
        }
    }

    @Test("a topic key without effect has broker synonyms without effect, and the other way round")
    func topicKeysAndSynonymsAgree() {
        func withoutEffect(_ name: String) -> Bool {
            if case .none = ConfigDefinitions.effect(of: name) { return true }
            return false
        }
        for topic in ConfigDefinitions.topic {
            for synonym in topic.brokerSynonyms {
                #expect(
                    withoutEffect(topic.name) == withoutEffect(synonym.name),
                    "\(topic.name) and its broker synonym \(synonym.name) disagree")
            }
        }
    }

    @Test("keys that take effect, or that other work is making effective, are not listed")
    func effectiveKeysAreNotListed() {
        for name in [
            "compression.type", "compression.gzip.level", "compression.lz4.level", "compression.zstd.level",
            "max.incremental.fetch.session.cache.slots", "message.timestamp.before.max.ms",
            "max.connections.per.ip", "max.connections.per.ip.overrides", "connections.max.idle.ms",
            "max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms",
            "message.timestamp.after.max.ms", "message.timestamp.difference.max.ms",
            "log.message.timestamp.before.max.ms", "log.message.timestamp.after.max.ms",
            "log.message.timestamp.difference.max.ms", "retention.ms", "log.retention.hours", "broker.id",
            "security.inter.broker.protocol", "fetch.max.bytes", "node.id",
        ] {
            #expect(ConfigDefinitions.effect(of: name) == .honoured, "\(name)")
        }
    }

    @Test("DescribeConfigs' documentation begins with the reason for keys without effect")
    func describeConfigsMarksKeys() {
        let resolver = ConfigResolver(
            staticBrokerConfig: ["num.io.threads": "16", "log.flush.scheduler.interval.ms": "1000"], brokerId: 1)
        let broker = Dictionary(
            uniqueKeysWithValues: resolver.brokerConfigs(brokerName: "1", image: .empty).map { ($0.name, $0) })
        let io = broker["num.io.threads"]
        #expect(io?.value == "16")
        #expect(io?.source == .staticBrokerConfig)
        #expect(
            io?.documentation
                == "Accepted without effect in Runnel: Runnel's threads are its NIO event loops (one per core) and a few fixed workers, not configurable pools. Threads that process requests, including disk I/O."
        )
        #expect(
            broker["log.flush.scheduler.interval.ms"]?.documentation.hasPrefix("Partly honoured in Runnel: ") == true)
        #expect(
            broker["num.partitions"]?.documentation == "Partition count for topics created without an explicit count.")
        let topic = Dictionary(
            uniqueKeysWithValues: resolver.topicConfigs(topic: "t", image: .empty).map { ($0.name, $0) })
        #expect(topic["preallocate"]?.documentation.hasPrefix("Accepted without effect in Runnel: ") == true)
        #expect(topic["retention.ms"]?.documentation.hasPrefix("How long") == true)
    }
}
