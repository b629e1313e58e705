// DynamicBrokerConfigs.swift
// RunnelMetadata: which broker keys IncrementalAlterConfigs / AlterConfigs may change at runtime on a
// BROKER resource (a broker id, or "" for the cluster-wide default), and the refusal when not
// (project issue 20, "honest configuration").
//
// Source of facts: Apache Kafka 3.9, DynamicBrokerConfig.validateConfigs (called in KRaft mode from
// ConfigAdminManager.validateBrokerConfigChange before the request is forwarded to the controller):
// over the set of dynamic configs the resource ends up with, in this order,
//   1. a key of KafkaConfig that is not in DynamicBrokerConfig.AllDynamicConfigs:
//      "Cannot update these configs dynamically: Set(k)";
//   2. an SSL keystore/truststore key without a listener prefix:
//      "These security configs can be dynamically updated only per-listener using the listener prefix: Set(k)";
//   3. on the cluster default, a per-broker key (listeners, SSL/SASL, listener.name.*):
//      "Cannot update these configs at default cluster level, broker id must be specified: Set(k)";
// all answered with INVALID_REQUEST (42), validate_only or not. A DELETE removes the key from that
// set, so deleting any key is accepted. Keys Kafka does not know (e.g. the replication throttle
// rates) pass.
//
// Runnel adds one rule after Kafka's: a key Kafka may change at runtime but Runnel reads only at
// start-up (thread pools it sizes once, listeners and their SASL settings, cleaner sizing) is
// refused with 42 and a sentence saying so, rather than accepted and applied only after a restart.
// A TLS listener's key and trust stores (`listener.name.<listener>.ssl.keystore.*` and
// `.ssl.truststore.*`, per broker) are reloaded at runtime, as Kafka does.
// What Runnel honours at runtime: every broker key that supplies a topic config's default (the
// brokers resolve topic configs through the image on every metadata change), and the keys that
// change nothing in Runnel either way (ConfigEffects' `.none`). DescribeConfigs' `read_only` is the
// negation of `isDynamicBrokerConfig`, so what it shows is what is accepted.
//
// Pure standard library on purpose: no Foundation.

extension ConfigDefinitions {
    /// Kafka's DynamicSecurityConfigs (SslConfigs.DYNAMIC_LISTENER_CONFIGS): dynamic only with a
    /// `listener.name.<listener>.` prefix.
    public static let listenerPrefixOnlySecurityKeys: Set<String> = [
        "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
        "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password",
        "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.truststore.certificates",
    ]

    /// Kafka's cluster-level listener configs: reconfigurable with the listeners, yet settable on the
    /// cluster default.
    private static let clusterLevelListenerKeys: Set<String> = [
        "max.connections", "max.connection.creation.rate", "num.network.threads",
    ]

    /// Kafka's PerBrokerConfigs: DynamicSecurityConfigs plus DynamicListenerConfig.ReconfigurableConfigs
    /// (listeners, SSL and SASL keys) less the cluster-level listener configs. Of Runnel's known keys.
    static func isPerBrokerOnly(_ name: String) -> Bool {
        if name.hasPrefix("listener.name.") { return true }
        if clusterLevelListenerKeys.contains(name) { return false }
        return listenerPrefixOnlySecurityKeys.contains(name)
            || ["listeners", "advertised.listeners", "listener.security.protocol.map", "principal.builder.class"]
                .contains(name)
            || name.hasPrefix("ssl.") || name.hasPrefix("sasl.")
    }

    /// Broker keys every topic config takes its default from (retention, segment, cleanup, ...).
    private static let topicDefaultKeys: Set<String> = Set(topic.flatMap { $0.brokerSynonyms.map(\.name) })

    /// Whether Runnel honours a change of this broker key at runtime: Kafka allows it, and Runnel
    /// either re-resolves it on every metadata change (a topic default) or ignores the key anyway.
    /// Unknown keys are not broker configs; this answers false for them.
    public static func isDynamicBrokerConfig(_ name: String) -> Bool {
        guard let definition = brokerConfig(name), definition.dynamic else { return false }
        if topicDefaultKeys.contains(name) { return true }
        if case .none = effect(of: name) { return true }
        return false
    }

    /// `listener.name.<listener>.<key>` with a key of `listenerPrefixOnlySecurityKeys`: a TLS
    /// listener's key or trust store, which a broker reloads at runtime (its ListenerTLSReloader).
    public static func isListenerTLSStoreKey(_ name: String) -> Bool {
        let prefix = "listener.name."
        guard name.hasPrefix(prefix) else { return false }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), dot != rest.startIndex else { return false }
        return listenerPrefixOnlySecurityKeys.contains(String(rest[rest.index(after: dot)...]))
    }

    /// Kafka's broker keys that may change at runtime but that Runnel reads only at start-up.
    static func isReadAtStartUpOnly(_ name: String) -> Bool {
        if isListenerTLSStoreKey(name) { return false }
        guard let definition = brokerConfig(name) else { return name.hasPrefix("listener.name.") }
        return definition.dynamic && !isDynamicBrokerConfig(name)
    }

    /// Checks the dynamic configs a BROKER resource would hold after a change (its overrides with the
    /// request's operations applied): nil when acceptable, else the message to send with
    /// INVALID_REQUEST. `perBroker` is true for a broker id, false for the cluster default "".
    public static func dynamicBrokerChangeProblem<Names: Sequence<String>>(
        resultingKeys: Names, perBroker: Bool
    ) -> String? {
        let keys = resultingKeys.sorted()
        func problem(_ prefix: String, _ test: (String) -> Bool) -> String? {
            let offending = keys.filter(test)
            if offending.isEmpty { return nil }
            // Scala's Set.toString, as Kafka prints it.
            return "\(prefix): Set(\(offending.joined(separator: ", ")))"
        }
        return problem("Cannot update these configs dynamically") {
            guard let definition = brokerConfig($0) else { return false }
            return !definition.dynamic
        }
            ?? problem(
                "These security configs can be dynamically updated only per-listener using the listener prefix",
                listenerPrefixOnlySecurityKeys.contains)
            ?? (perBroker
                ? nil
                : problem(
                    "Cannot update these configs at default cluster level, broker id must be specified",
                    isPerBrokerOnly))
            ?? problem(
                "Runnel reads these configs only at start-up; set them in server.properties and restart the broker",
                isReadAtStartUpOnly)
    }
}
