// ConfigEffects.swift
// RunnelMetadata: which of the keys Runnel accepts change what Runnel does (project issue 20).
//
// Runnel accepts every key of ConfigDefinitions, so an operator's Kafka server.properties and
// topic configs load unchanged. Most keys take effect; the ones below are validated as Kafka
// validates them and then change nothing (or only part of what Kafka does with them). This table is
// the one place that says so: `runnel server` names each of them present in its file once at start-up,
// DescribeConfigs puts the reason at the head of the key's documentation, `runnel config no-effect`
// prints the table, and docs/configuration.md is checked against it by a test.
//
// A key belongs here only after reading the code that would have to honour it; a key that other work
// is about to make effective (compression.type, max.incremental.fetch.session.cache.slots) stays out.

/// Whether a config key Runnel accepts changes what Runnel does.
public enum ConfigEffect: Sendable, Equatable {
    /// Runnel acts on the key as Kafka does.
    case honoured
    /// Runnel acts on part of what the key means in Kafka; the reason says which part.
    case partial(reason: String)
    /// Accepted and validated, then ignored; the reason says why.
    case none(reason: String)
}

/// One row of the table: a key and why it has no effect (or only part of one).
public struct ConfigEffectEntry: Sendable, Equatable {
    public let name: String
    public let effect: ConfigEffect

    public var reason: String {
        switch effect {
        case .honoured: ""
        case .partial(let reason), .none(let reason): reason
        }
    }
}

extension ConfigDefinitions {
    private static let noRemoteStorage = "Runnel has no tiered (remote) storage."
    private static let threading =
        "Runnel's threads are its NIO event loops (one per core) and a few fixed workers, not configurable pools."
    private static let noKerberos = "Kerberos (GSSAPI) is not supported; Runnel offers PLAIN and SCRAM."
    private static let noOAuth = "OAUTHBEARER logins are not supported; Runnel offers PLAIN and SCRAM."
    private static let noJavaClasses = "Runnel cannot load Java plug-in classes."
    private static let socketBuffersWhenGiven =
        "Applied to client connections when given (-1 for the system's); unset, the kernel autotunes rather than Kafka's 100 KiB."
    private static let noConnectionLimits = "Runnel does not limit the rate of new connections."
    private static let noConsumerProtocol =
        "Runnel serves only the classic group protocol; KIP-848 consumer groups are not supported."
    private static let noPurgatoryPurge =
        "Runnel's purgatories drop an operation as soon as it completes, so there is nothing to purge."
    private static let javaMetrics =
        "Runnel's metrics are Prometheus counters and gauges on metrics.port, without Java metric sampling."
    private static let zookeeperShutdown =
        "A KRaft broker always shuts down through the controller, as Kafka's do; Runnel bounds the wait with controlled.shutdown.timeout.ms."
    private static let noJitter = "Runnel rolls segments at segment.ms exactly, without jitter."
    private static let noDelayedDelete = "Runnel removes a deleted segment's files at once."
    private static let noPreallocate = "Runnel does not preallocate segment files."
    private static let magicV2Only =
        "Runnel stores and serves record batch v2 only (Fetch v4 and up), so it never down-converts."
    private static let formatVersion =
        "Ignored by Kafka since 3.0; Runnel writes record batch v2 only."
    private static let staticMetadataLog =
        "Runnel's metadata log rolls 8 MiB segments and drops those below its newest snapshot, with no separate limits."
    private static let socketBuffers = "Runnel leaves socket buffer sizes to the kernel's autotuning."
    private static let loadsFromLog =
        "Runnel's coordinators load their state by reading the partition log directly, with no separate buffer."

    /// Every accepted key that has no effect, or only part of one, in Runnel, sorted by name.
    /// Topic keys and their broker synonyms are listed alike.
    public static let effects: [ConfigEffectEntry] = [
        none("alter.config.policy.class.name", noJavaClasses),
        none("background.threads", threading),
        none("controlled.shutdown.enable", zookeeperShutdown),
        none("controlled.shutdown.max.retries", zookeeperShutdown),
        none("controlled.shutdown.retry.backoff.ms", zookeeperShutdown),
        none(
            "controller.quorum.append.linger.ms",
            "Runnel's quorum leader does not linger to batch metadata appends."),
        none(
            "controller.quorum.bootstrap.servers",
            "Runnel's quorum is static and found through controller.quorum.voters; KIP-853 dynamic quorums are not supported."
        ),
        none(
            "controller.quorum.retry.backoff.ms",
            "Runnel's quorum retries on fixed internal timings, not on this backoff."),
        none("create.topic.policy.class.name", noJavaClasses),
        none("delete.records.purgatory.purge.interval.requests", noPurgatoryPurge),
        none(
            "early.start.listeners",
            "Runnel opens its listeners once the node has started, with no early-start phase."),
        none("fetch.purgatory.purge.interval.requests", noPurgatoryPurge),
        none("file.delete.delay.ms", noDelayedDelete),
        none("group.consumer.assignors", noConsumerProtocol),
        none("group.consumer.heartbeat.interval.ms", noConsumerProtocol),
        none("group.consumer.max.heartbeat.interval.ms", noConsumerProtocol),
        none("group.consumer.max.session.timeout.ms", noConsumerProtocol),
        none("group.consumer.max.size", noConsumerProtocol),
        none("group.consumer.min.heartbeat.interval.ms", noConsumerProtocol),
        none("group.consumer.min.session.timeout.ms", noConsumerProtocol),
        none("group.consumer.session.timeout.ms", noConsumerProtocol),
        none("group.coordinator.rebalance.protocols", noConsumerProtocol),
        none("group.coordinator.threads", threading),
        none(
            "inter.broker.protocol.version",
            "In KRaft mode the metadata.version feature sets the protocol, and Kafka ignores this key too."),
        none("local.retention.bytes", noRemoteStorage),
        none("local.retention.ms", noRemoteStorage),
        none(
            "log.cleaner.io.buffer.load.factor",
            "Runnel's cleaner sizes its key map by log.cleaner.dedupe.buffer.size alone."),
        none("log.cleaner.io.max.bytes.per.second", "Runnel's cleaner is not throttled."),
        none("log.cleaner.threads", "Runnel runs one cleaner thread."),
        none(
            "log.dir.failure.timeout.ms",
            "Runnel stops the node at once when a log dir fails, so there is no report to time out."),
        partial(
            "log.flush.scheduler.interval.ms",
            "Used as the default of log.flush.interval.ms, as in Kafka; the flush check itself runs on every maintenance tick (at most 500 ms)."
        ),
        none(
            "log.flush.start.offset.checkpoint.interval.ms",
            "Runnel writes the log start offsets with the recovery points, every log.flush.offset.checkpoint.interval.ms."
        ),
        none("log.local.retention.bytes", noRemoteStorage),
        none("log.local.retention.ms", noRemoteStorage),
        none("log.message.downconversion.enable", magicV2Only),
        none("log.message.format.version", formatVersion),
        none("log.preallocate", noPreallocate),
        none("log.roll.jitter.hours", noJitter),
        none("log.roll.jitter.ms", noJitter),
        none("log.segment.delete.delay.ms", noDelayedDelete),
        none("max.connection.creation.rate", noConnectionLimits),
        partial(
            "max.connections",
            "A connection past the limit (over every listener) is closed as it arrives; Kafka holds it in the accept queue until one frees and lets the inter-broker listener past it."
        ),
        none("message.downconversion.enable", magicV2Only),
        none("message.format.version", formatVersion),
        none("metadata.log.segment.bytes", staticMetadataLog),
        none("metadata.log.segment.ms", staticMetadataLog),
        none(
            "metadata.max.idle.interval.ms",
            "Runnel's active controller writes no NoOp records when the metadata log is idle."),
        none("metadata.max.retention.bytes", staticMetadataLog),
        none("metadata.max.retention.ms", staticMetadataLog),
        none("metric.reporters", javaMetrics),
        none("metrics.num.samples", javaMetrics),
        none("metrics.recording.level", javaMetrics),
        none("metrics.sample.window.ms", javaMetrics),
        none("num.io.threads", threading),
        none("num.network.threads", threading),
        none("num.recovery.threads.per.data.dir", threading),
        none(
            "num.replica.alter.log.dirs.threads",
            "Runnel does not move replicas between log dirs (AlterReplicaLogDirs)."),
        none("num.replica.fetchers", "Runnel runs one fetcher per source broker on its event loops."),
        none(
            "offsets.commit.required.acks",
            "Deprecated in Kafka; Runnel always waits for the offsets topic's in-sync replicas (acks=all)."),
        none("offsets.load.buffer.size", loadsFromLog),
        none("offsets.topic.compression.codec", "Runnel writes offset commits uncompressed."),
        none("preallocate", noPreallocate),
        none(
            "principal.builder.class",
            "Runnel builds principals as Kafka's default builder does (ssl.principal.mapping.rules for certificates)."),
        partial(
            "producer.id.expiration.ms",
            "Read from server.properties at start-up (checked every 10 minutes, or as often as it is if shorter); a dynamic change is refused."
        ),
        none("producer.purgatory.purge.interval.requests", noPurgatoryPurge),
        none("queued.max.request.bytes", "Runnel bounds waiting requests by queued.max.requests only."),
        none("remote.log.copy.disable", noRemoteStorage),
        none("remote.log.delete.on.disable", noRemoteStorage),
        none("remote.log.storage.system.enable", noRemoteStorage),
        none("remote.storage.enable", noRemoteStorage),
        none(
            "replica.selector.class",
            "Runnel does not pick a preferred read replica (KIP-392); consumers read from the leader."),
        none("replica.socket.receive.buffer.bytes", socketBuffers),
        none(
            "request.timeout.ms",
            "Runnel times its own requests with controller.quorum.request.timeout.ms, controller.socket.timeout.ms and replica.socket.timeout.ms."
        ),
        none("sasl.kerberos.kinit.cmd", noKerberos),
        none("sasl.kerberos.min.time.before.relogin", noKerberos),
        none("sasl.kerberos.principal.to.local.rules", noKerberos),
        none("sasl.kerberos.service.name", noKerberos),
        none("sasl.kerberos.ticket.renew.jitter", noKerberos),
        none("sasl.kerberos.ticket.renew.window.factor", noKerberos),
        none("sasl.login.callback.handler.class", noJavaClasses),
        none("sasl.login.class", noJavaClasses),
        none("sasl.login.refresh.buffer.seconds", noOAuth),
        none("sasl.login.refresh.min.period.seconds", noOAuth),
        none("sasl.login.refresh.window.factor", noOAuth),
        none("sasl.login.refresh.window.jitter", noOAuth),
        none("sasl.server.callback.handler.class", noJavaClasses),
        none(
            "sasl.server.max.receive.size",
            "Runnel bounds SASL frames, like every request, by socket.request.max.bytes."),
        none("security.providers", noJavaClasses),
        none("segment.jitter.ms", noJitter),
        none(
            "socket.connection.setup.timeout.max.ms",
            "Runnel's connections to other nodes use a fixed connect timeout."),
        none(
            "socket.connection.setup.timeout.ms",
            "Runnel's connections to other nodes use a fixed connect timeout."),
        partial(
            "socket.listen.backlog.size",
            "Applied when given; unset, Runnel's listeners keep a backlog of 1024 rather than Kafka's 50."),
        partial("socket.receive.buffer.bytes", socketBuffersWhenGiven),
        partial("socket.send.buffer.bytes", socketBuffersWhenGiven),
        none(
            "ssl.cipher.suites",
            "Runnel uses the TLS library's (BoringSSL's) default cipher suites."),
        none("ssl.engine.factory.class", noJavaClasses),
        none("ssl.keymanager.algorithm", "Java key manager algorithms do not apply to Runnel's TLS (BoringSSL)."),
        none(
            "ssl.protocol",
            "Runnel's TLS versions come from ssl.enabled.protocols alone."),
        none("ssl.provider", "Java security providers do not apply to Runnel's TLS (BoringSSL)."),
        none(
            "ssl.secure.random.implementation",
            "Java SecureRandom implementations do not apply to Runnel's TLS (BoringSSL)."),
        none(
            "ssl.trustmanager.algorithm", "Java trust manager algorithms do not apply to Runnel's TLS (BoringSSL)."),
        none("transaction.state.log.load.buffer.size", loadsFromLog),
    ]

    private static let effectByName: [String: ConfigEffect] = {
        var byName: [String: ConfigEffect] = [:]
        for entry in effects {
            precondition(byName[entry.name] == nil, "config effect listed twice: \(entry.name)")
            byName[entry.name] = entry.effect
        }
        return byName
    }()

    /// What the key does in Runnel; `.honoured` for every key not in `effects`.
    public static func effect(of name: String) -> ConfigEffect {
        effectByName[name] ?? .honoured
    }

    private static func none(_ name: String, _ reason: String) -> ConfigEffectEntry {
        ConfigEffectEntry(name: name, effect: .none(reason: reason))
    }

    private static func partial(_ name: String, _ reason: String) -> ConfigEffectEntry {
        ConfigEffectEntry(name: name, effect: .partial(reason: reason))
    }
}

extension ConfigDefinition {
    /// What this key does in Runnel.
    public var effect: ConfigEffect { ConfigDefinitions.effect(of: name) }

    /// The documentation DescribeConfigs (v3+) returns: Kafka's sense of the key, headed by
    /// "Accepted without effect in Runnel: <reason>" or "Partly honoured in Runnel: <reason>" when
    /// Runnel does not do what the rest of the sentence says.
    public var describedDocumentation: String {
        switch effect {
        case .honoured: documentation
        case .partial(let reason): "Partly honoured in Runnel: \(reason) \(documentation)"
        case .none(let reason): "Accepted without effect in Runnel: \(reason) \(documentation)"
        }
    }
}
