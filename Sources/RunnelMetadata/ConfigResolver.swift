import RunnelCore

/// Where a config value comes from, with Kafka's DescribeConfigs source codes.
public enum ConfigSource: Int8, Sendable {
    case unknown = 0
    case dynamicTopicConfig = 1
    case dynamicBrokerConfig = 2
    case dynamicDefaultBrokerConfig = 3
    case staticBrokerConfig = 4
    case defaultConfig = 5
    case dynamicBrokerLoggerConfig = 6
}

/// One config's effective value and where it came from.
public struct ResolvedConfig: Sendable, Equatable {
    public struct Synonym: Sendable, Equatable {
        public var name: String
        public var value: String?
        public var source: ConfigSource
    }
    public var name: String
    public var value: String?
    public var source: ConfigSource
    public var isSensitive: Bool
    public var readOnly: Bool
    public var type: ConfigType
    public var documentation: String
    /// Every place a value was found, highest priority first (DescribeConfigs synonyms).
    public var synonyms: [Synonym]
    public var isDefault: Bool { source == .defaultConfig }
}

/// Resolves effective topic and broker configs the way Kafka does: a topic override, else a
/// dynamic per-broker value, else the dynamic cluster default, else the static value from
/// `server.properties`, else the built-in default.
public struct ConfigResolver: Sendable {
    /// `server.properties` of this node.
    public var staticBrokerConfig: [String: String]
    public var brokerId: Int32

    public init(staticBrokerConfig: [String: String], brokerId: Int32) {
        self.staticBrokerConfig = staticBrokerConfig
        self.brokerId = brokerId
    }

    /// Every broker-level source for `key`, highest priority first.
    func brokerSources(_ key: String, multiplier: Int64, image: MetadataImage) -> [ResolvedConfig.Synonym] {
        var out: [ResolvedConfig.Synonym] = []
        func scaled(_ v: String) -> String {
            guard multiplier != 1, let n = Int64(v) else { return v }
            return String(n &* multiplier)
        }
        if let v = image.configs[ConfigResource(.broker, String(brokerId))]?[key] {
            out.append(.init(name: key, value: scaled(v), source: .dynamicBrokerConfig))
        }
        if let v = image.configs[ConfigResource(.broker, "")]?[key] {
            out.append(.init(name: key, value: scaled(v), source: .dynamicDefaultBrokerConfig))
        }
        if let v = staticBrokerConfig[key] {
            out.append(.init(name: key, value: scaled(v), source: .staticBrokerConfig))
        }
        return out
    }

    /// A topic config's effective value.
    public func topicConfig(_ definition: ConfigDefinition, topic: String, image: MetadataImage) -> ResolvedConfig {
        var synonyms: [ResolvedConfig.Synonym] = []
        if let v = image.configs[ConfigResource(.topic, topic)]?[definition.name] {
            synonyms.append(.init(name: definition.name, value: v, source: .dynamicTopicConfig))
        }
        // As Kafka lists them: each broker synonym's own value (log.retention.hours=168, not
        // converted), and for the default the first broker synonym that has one (else the
        // topic key's); the topic's value is the winner converted to the topic key's unit.
        for synonym in definition.brokerSynonyms {
            synonyms += brokerSources(synonym.name, multiplier: 1, image: image)
        }
        if let fallback = definition.brokerSynonyms.first(where: {
            ConfigDefinitions.brokerConfig($0.name)?.defaultValue != nil
        }) {
            synonyms.append(
                .init(
                    name: fallback.name, value: ConfigDefinitions.brokerConfig(fallback.name)?.defaultValue,
                    source: .defaultConfig))
        } else {
            synonyms.append(.init(name: definition.name, value: definition.defaultValue, source: .defaultConfig))
        }
        let winner = synonyms[0]
        let multiplier = definition.brokerSynonyms.first { $0.name == winner.name }?.multiplier ?? 1
        let value = winner.value.map { v in multiplier == 1 ? v : Int64(v).map { String($0 &* multiplier) } ?? v }
        return ResolvedConfig(
            name: definition.name, value: definition.isSensitive ? nil : value, source: winner.source,
            isSensitive: definition.isSensitive, readOnly: false, type: definition.type,
            documentation: definition.describedDocumentation, synonyms: synonyms)
    }

    /// Every topic config of `topic`, sorted by name.
    public func topicConfigs(topic: String, image: MetadataImage) -> [ResolvedConfig] {
        ConfigDefinitions.topic.map { topicConfig($0, topic: topic, image: image) }
    }

    /// The effective value of one topic config (nil when unknown or null).
    public func topicValue(_ name: String, topic: String, image: MetadataImage) -> String? {
        guard let definition = ConfigDefinitions.topicConfig(name) else { return nil }
        return topicConfig(definition, topic: topic, image: image).value
    }

    /// Kafka's broker synonym groups (DynamicBrokerConfig.brokerConfigSynonyms): keys that set
    /// the same thing in other units, highest priority first.
    static let brokerSynonymGroups: [[String]] = [
        ["log.roll.ms", "log.roll.hours"],
        ["log.roll.jitter.ms", "log.roll.jitter.hours"],
        ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        ["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
    ]

    /// Every broker config of broker `id`, sorted by name; for "" (the cluster default) only the
    /// keys set on it, as Kafka's ConfigHelper lists them. Each key's synonyms are Kafka's: every
    /// name of its synonym group by source (dynamic per broker, dynamic default, static, default;
    /// a default only where the key has one), less those before the key's own name, which a key
    /// set only under another unit therefore lists none of (its value is its own, null for
    /// `log.retention.ms` unless set).
    public func brokerConfigs(brokerName: String, image: MetadataImage) -> [ResolvedConfig] {
        let perBroker = !brokerName.isEmpty
        let dynamicDefault = image.configs(of: ConfigResource(.broker, ""))
        let dynamicBroker = perBroker ? image.configs(of: ConfigResource(.broker, brokerName)) : [:]
        let sources: [([String: String], ConfigSource)] = [
            (dynamicBroker, .dynamicBrokerConfig), (dynamicDefault, .dynamicDefaultBrokerConfig),
            (staticBrokerConfig, .staticBrokerConfig),
        ]
        var out: [ResolvedConfig] = []
        for definition in ConfigDefinitions.broker where perBroker || dynamicDefault[definition.name] != nil {
            let names = Self.brokerSynonymGroups.first { $0.contains(definition.name) } ?? [definition.name]
            var synonyms: [ResolvedConfig.Synonym] = []
            for (values, source) in sources {
                for name in names {
                    if let v = values[name] { synonyms.append(.init(name: name, value: v, source: source)) }
                }
            }
            for name in names {
                if let v = ConfigDefinitions.brokerConfig(name)?.defaultValue {
                    synonyms.append(.init(name: name, value: v, source: .defaultConfig))
                }
            }
            synonyms = Array(synonyms.drop { $0.name != definition.name })
            let winner = synonyms.first
            out.append(
                ResolvedConfig(
                    name: definition.name, value: definition.isSensitive ? nil : winner?.value,
                    source: winner?.source ?? .defaultConfig, isSensitive: definition.isSensitive,
                    readOnly: !ConfigDefinitions.isDynamicBrokerConfig(definition.name), type: definition.type,
                    documentation: definition.describedDocumentation, synonyms: synonyms))
        }
        // A TLS listener's stores set on this broker (`listener.name.<listener>.ssl.*`), as
        // Kafka lists its listener configs: passwords and PEM texts hidden.
        for (name, value) in dynamicBroker.sorted(by: { $0.key < $1.key })
        where ConfigDefinitions.isListenerTLSStoreKey(name) {
            let key = name.split(separator: ".", maxSplits: 3).last.map(String.init) ?? name
            let definition = ConfigDefinitions.brokerConfig(key)
            let sensitive = definition?.isSensitive ?? true
            out.append(
                ResolvedConfig(
                    name: name, value: sensitive ? nil : value, source: .dynamicBrokerConfig, isSensitive: sensitive,
                    readOnly: false, type: definition?.type ?? .string,
                    documentation: definition?.describedDocumentation ?? "",
                    synonyms: [.init(name: name, value: value, source: .dynamicBrokerConfig)]))
        }
        return out
    }
}
