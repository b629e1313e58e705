import Logging
import NIOConcurrencyHelpers
import RunnelMetadata
import RunnelNetwork

/// Reloads a broker's TLS listeners' key and trust stores from its dynamic per-broker configs,
/// `listener.name.<listener>.ssl.*` (Kafka's reconfigurable SslFactory), so certificates rotate
/// without a restart. Every ConfigRecord for this broker reloads the listeners that have such
/// configs, even one that sets the same value again: a key store rewritten in place at the same
/// path is picked up that way (KAFKA-14136). Connections accepted afterwards get the new context;
/// open ones keep theirs. A dynamic config removed falls back to `server.properties`.
///
/// The broker that receives the change for itself checks it first (`problem`), so a store that
/// does not load is refused with INVALID_REQUEST rather than committed; should one still fail
/// here (a file removed since), the listener keeps its context and the error is logged.
final class ListenerTLSReloader: Sendable {
    private let config: ServerConfig
    private let logger: Logger
    private let resource: ConfigResource
    private let state = NIOLockedValueBox(State())

    private struct State {
        var contexts: [String: ServerTLSContext] = [:]
        /// This broker's dynamic listener TLS configs as last published.
        var dynamic: [String: String] = [:]
    }

    init(config: ServerConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        resource = ConfigResource(.broker, String(config.nodeId))
    }

    /// `listener`'s TLS settings with `dynamic` over `server.properties`.
    private func settings(_ listener: String, dynamic: [String: String]) throws -> TLSSettings {
        let prefix = "listener.name.\(listener.lowercased())."
        return try TLSSettings.parse { key in
            dynamic[prefix + key] ?? config.properties[prefix + key] ?? config.properties[key]
        }
    }

    private func hasDynamicConfigs(_ listener: String, in dynamic: [String: String]) -> Bool {
        let prefix = "listener.name.\(listener.lowercased())."
        return dynamic.keys.contains { $0.hasPrefix(prefix) }
    }

    /// Why these dynamic configs (the broker's whole set after a change) cannot be applied, in
    /// one sentence; nil when every TLS listener's stores load with them.
    func problem(with dynamic: [String: String]) -> String? {
        let dynamic = dynamic.filter { ConfigDefinitions.isListenerTLSStoreKey($0.key) }
        for listener in config.brokerListeners where hasDynamicConfigs(listener.name, in: dynamic) {
            guard config.security.listeners[listener.name]?.tls != nil else {
                return "Listener \(listener.name) does not use TLS, so it takes no ssl.* config."
            }
            do {
                let new = try settings(listener.name, dynamic: dynamic)
                _ = try new.serverContext()
                let existing = try? settings(listener.name, dynamic: state.withLockedValue { $0.dynamic })
                func allowed(_ key: String) -> Bool {
                    (config.properties["listener.name.\(listener.name.lowercased()).\(key)"] ?? config.properties[key])?
                        .lowercased() == "true"
                }
                if let existing,
                    let mismatch = try existing.certificateMismatch(
                        new, allowDNChanges: allowed("ssl.allow.dn.changes"),
                        allowSANChanges: allowed("ssl.allow.san.changes"))
                {
                    return mismatch
                }
            } catch {
                return
                    "Validation of dynamic config update of the SSL key or trust store of listener \(listener.name) failed: \(error)"
            }
        }
        return nil
    }

    /// A TLS listener bound with its context from `server.properties`: the dynamic configs
    /// published so far apply to it at once.
    func register(_ listener: String, _ context: ServerTLSContext) {
        let dynamic = state.withLockedValue {
            $0.contexts[listener] = context
            return $0.dynamic
        }
        if hasDynamicConfigs(listener, in: dynamic) { reload(listener, context, dynamic: dynamic) }
    }

    /// The quorum published: reload when this broker's configs were written.
    func published(_ delta: MetadataDelta, image: MetadataImage) {
        guard delta.changedConfigs.contains(resource) else { return }
        let dynamic = image.configs(of: resource).filter { ConfigDefinitions.isListenerTLSStoreKey($0.key) }
        let (contexts, before) = state.withLockedValue {
            let before = $0.dynamic
            $0.dynamic = dynamic
            return ($0.contexts, before)
        }
        for (listener, context) in contexts
        where hasDynamicConfigs(listener, in: dynamic) || hasDynamicConfigs(listener, in: before) {
            reload(listener, context, dynamic: dynamic)
        }
    }

    private func reload(_ listener: String, _ context: ServerTLSContext, dynamic: [String: String]) {
        do {
            context.replace(with: try settings(listener, dynamic: dynamic).serverContext())
            logger.info("listener \(listener): key and trust stores reloaded from its dynamic configs")
        } catch {
            logger.error("listener \(listener): keeps its TLS context; the dynamic configs do not load: \(error)")
        }
    }
}
