// DynamicBrokerConfigTests.swift
// Which broker keys may change at runtime (project issue 20, DynamicBrokerConfigs.swift): Kafka's
// DynamicBrokerConfig.validateConfigs rules in their order (a key that is never dynamic, an SSL
// store key without a listener prefix, a per-broker key on the cluster default), then Runnel's
// refusal of a key Kafka allows but Runnel reads only at start-up; all with INVALID_REQUEST (42)
// and the whole resource refused, validate_only or not; DELETE always accepted; and DescribeConfigs'
// read_only agrees with what is accepted.

import RunnelController
import RunnelMetadata
import RunnelWire
import Testing

@Suite("dynamic broker configs")
struct DynamicBrokerConfigTests {
    private func alter(
        _ c: inout QuorumController, broker: String, _ ops: [(String, Int8, String?)], validateOnly: Bool = false
    ) -> (code: Int16, message: String?, records: Int) {
        var request = IncrementalAlterConfigsRequest()
        request.validateOnly = validateOnly
        request.resources = [
            .init(
                resourceType: 4, resourceName: broker,
                configs: ops.map { .init(name: $0.0, configOperation: $0.1, value: $0.2) })
        ]
        let result = c.incrementalAlterConfigs(request)
        c.replay(result.records.map { ($0, 400) }, epoch: 1)
        let response = result.response.responses[0]
        return (response.errorCode, response.errorMessage, result.records.count)
    }

    @Test("a key that is never dynamic is refused with 42 and Kafka's message, the whole resource with it")
    func nonDynamicKeyRefused() {
        var c = controller(imageWithBrokers([1]))
        for broker in ["", "1"] {
            let refused = alter(&c, broker: broker, [("log.retention.ms", 0, "1000"), ("log.dirs", 0, "/tmp/x")])
            #expect(refused.code == ErrorCode.invalidRequest.rawValue)
            #expect(refused.message == "Cannot update these configs dynamically: Set(log.dirs)")
            #expect(refused.records == 0)
            #expect(c.image.configs(of: .init(.broker, broker)).isEmpty, "nothing of a refused resource is written")
        }
        let validateOnly = alter(&c, broker: "", [("node.id", 0, "7")], validateOnly: true)
        #expect(validateOnly.code == ErrorCode.invalidRequest.rawValue, "validate_only is refused the same way")
        #expect(validateOnly.message == "Cannot update these configs dynamically: Set(node.id)")
        let two = alter(&c, broker: "1", [("process.roles", 0, "broker"), ("broker.rack", 0, "r")])
        #expect(two.message == "Cannot update these configs dynamically: Set(broker.rack, process.roles)")
    }

    @Test("a topic default and an unknown key change at runtime, on the cluster default and per broker")
    func dynamicKeysAccepted() {
        var c = controller(imageWithBrokers([1]))
        #expect(alter(&c, broker: "", [("log.retention.ms", 0, "60000")]).code == 0)
        #expect(alter(&c, broker: "1", [("min.insync.replicas", 0, "2")]).code == 0)
        #expect(alter(&c, broker: "1", [("leader.replication.throttled.rate", 0, "1000")]).code == 0)
        #expect(c.image.configs(of: .init(.broker, ""))["log.retention.ms"] == "60000")
        #expect(c.image.configs(of: .init(.broker, "1"))["min.insync.replicas"] == "2")
    }

    @Test("deleting a read-only key is accepted, as Kafka's DELETE drops it from the checked set")
    func deleteAccepted() {
        var c = controller(imageWithBrokers([1]))
        let deleted = alter(&c, broker: "", [("log.dirs", 1, nil)])
        #expect(deleted.code == 0)
    }

    @Test("SSL store keys need a listener prefix; listener keys need a broker id")
    func securityAndPerBrokerRules() {
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: ["ssl.keystore.location"], perBroker: true)
                == "These security configs can be dynamically updated only per-listener using the listener prefix: Set(ssl.keystore.location)"
        )
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: ["listeners"], perBroker: false)
                == "Cannot update these configs at default cluster level, broker id must be specified: Set(listeners)")
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(
                resultingKeys: ["listener.name.external.ssl.keystore.location"], perBroker: false)
                == "Cannot update these configs at default cluster level, broker id must be specified: Set(listener.name.external.ssl.keystore.location)"
        )
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: ["num.network.threads"], perBroker: false)
                == nil,
            "a cluster-level listener key without effect in Runnel may be set cluster-wide")
    }

    @Test(
        "a TLS listener's key and trust stores may change per broker (the broker reloads them); other listener keys not"
    )
    func listenerStoresAreDynamic() {
        for key in [
            "listener.name.external.ssl.keystore.location", "listener.name.ssl.ssl.keystore.certificate.chain",
            "listener.name.ssl.ssl.keystore.key", "listener.name.ssl.ssl.key.password",
            "listener.name.ssl.ssl.truststore.location", "listener.name.ssl.ssl.truststore.certificates",
        ] {
            #expect(ConfigDefinitions.isListenerTLSStoreKey(key))
            #expect(
                ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: [key], perBroker: true) == nil, "\(key)")
        }
        for key in [
            "listener.name.ssl.ssl.client.auth", "listener.name.ssl.sasl.enabled.mechanisms",
            "listener.name..ssl.keystore.location",
        ] {
            #expect(!ConfigDefinitions.isListenerTLSStoreKey(key))
        }
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(
                resultingKeys: ["listener.name.ssl.ssl.client.auth"], perBroker: true)
                == "Runnel reads these configs only at start-up; set them in server.properties and restart the broker: Set(listener.name.ssl.ssl.client.auth)"
        )
        var c = controller(imageWithBrokers([1]))
        #expect(alter(&c, broker: "1", [("listener.name.ssl.ssl.keystore.location", 0, "/etc/new.pem")]).code == 0)
    }

    @Test("a key Kafka allows at runtime but Runnel reads only at start-up is refused with a sentence saying so")
    func startUpOnlyRefused() {
        let message =
            "Runnel reads these configs only at start-up; set them in server.properties and restart the broker: Set(max.connections)"
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: ["max.connections"], perBroker: false)
                == message)
        #expect(
            ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: ["listeners"], perBroker: true)
                == "Runnel reads these configs only at start-up; set them in server.properties and restart the broker: Set(listeners)"
        )
        var c = controller(imageWithBrokers([1]))
        let refused = alter(&c, broker: "1", [("max.connections", 0, "4")])
        #expect(refused.code == ErrorCode.invalidRequest.rawValue)
        #expect(refused.message == message)
    }

    @Test("AlterConfigs on a broker resource follows the same rule over the whole new set")
    func legacyAlterConfigs() {
        let c = controller(imageWithBrokers([1]))
        var request = AlterConfigsRequest()
        request.resources = [
            .init(resourceType: 4, resourceName: "", configs: [.init(name: "log.dirs", value: "/tmp/y")])
        ]
        let refused = c.alterConfigs(request).response.responses[0]
        #expect(refused.errorCode == ErrorCode.invalidRequest.rawValue)
        #expect(refused.errorMessage == "Cannot update these configs dynamically: Set(log.dirs)")
        request.resources[0].configs = [.init(name: "log.retention.bytes", value: "1000")]
        #expect(c.alterConfigs(request).response.responses[0].errorCode == 0)
    }

    @Test("DescribeConfigs read_only is false exactly for the broker keys a change is accepted for")
    func readOnlyAgreesWithValidation() {
        let resolved = ConfigResolver(staticBrokerConfig: [:], brokerId: 1).brokerConfigs(
            brokerName: "1", image: imageWithBrokers([1]))
        #expect(resolved.count == ConfigDefinitions.broker.count)
        for config in resolved {
            let accepted =
                ConfigDefinitions.dynamicBrokerChangeProblem(resultingKeys: [config.name], perBroker: true) == nil
            #expect(config.readOnly == !accepted, "\(config.name): read_only \(config.readOnly), accepted \(accepted)")
        }
        #expect(resolved.first { $0.name == "log.retention.ms" }?.readOnly == false)
        #expect(resolved.first { $0.name == "log.dirs" }?.readOnly == true)
        #expect(resolved.first { $0.name == "max.connections" }?.readOnly == true)
    }
}
