import RunnelWire
import Foundation
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelNetwork
import RunnelQuorum

/// A problem with the configuration: one sentence naming the key and what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var key: String
    public var problem: String
    public init(_ key: String, _ problem: String) {
        self.key = key
        self.problem = problem
    }
    public var description: String { "Invalid configuration \(key): \(problem)" }
}

/// A listener: `NAME://host:port`.
public struct ListenerSpec: Sendable, Equatable {
    public var name: String
    public var host: String
    public var port: Int

    /// Parses one `NAME://host:port` entry (`host` may be empty or `[v6]`).
    public static func parse(_ text: String, key: String) throws -> ListenerSpec {
        let t = text.trimmed()
        guard let sep = t.range(of: "://") else {
            throw ConfigError(key, "\"\(t)\" is not of the form NAME://host:port.")
        }
        let name = String(t[..<sep.lowerBound]).uppercased()
        let rest = String(t[sep.upperBound...])
        guard !name.isEmpty, let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ConfigError(key, "\"\(t)\" has no valid port; use NAME://host:port.")
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return ListenerSpec(name: name, host: host, port: port)
    }

    public static func parseList(_ text: String, key: String) throws -> [ListenerSpec] {
        let specs = try text.split(separator: ",").map { try parse(String($0), key: key) }
        var seen = Set<String>()
        for s in specs {
            if seen.contains(s.name) { throw ConfigError(key, "listener name \(s.name) appears twice.") }
            seen.insert(s.name)
        }
        return specs
    }
}

/// The node's configuration, read from a `server.properties` file with Kafka's key names.
public struct ServerConfig: Sendable {
    public enum Role: String, Sendable { case broker, controller }

    public var properties: Properties
    public var roles: Set<Role>
    public var nodeId: Int32
    public var voters: [VoterSpec]
    public var controllerListenerNames: [String]
    public var listeners: [ListenerSpec]
    public var advertisedListeners: [ListenerSpec]
    public var securityProtocols: [String: String]
    public var interBrokerListenerName: String
    public var logDirs: [String]
    public var metadataLogDir: String
    public var numPartitions: Int32
    public var defaultReplicationFactor: Int16
    public var minInsyncReplicas: Int
    public var messageMaxBytes: Int
    public var autoCreateTopics: Bool
    public var deleteTopicEnable: Bool
    public var socketRequestMaxBytes: Int
    /// `max.connections`, `max.connections.per.ip`, `max.connections.per.ip.overrides`,
    /// `connections.max.idle.ms`.
    public var connectionLimits: ConnectionLimits
    /// `socket.listen.backlog.size`, `socket.send.buffer.bytes`, `socket.receive.buffer.bytes`.
    public var listenerSocketOptions: ListenerSocketOptions
    public var queuedMaxRequests: Int
    public var logDefaults: LogConfig
    /// `log.cleaner.enable`, `log.cleaner.backoff.ms`, `log.cleaner.dedupe.buffer.size`,
    /// `log.cleaner.io.buffer.size`
    public var logCleaner: LogCleanerSettings
    public var logRetentionCheckIntervalMs: Int64
    /// `producer.id.expiration.ms`: a producer id idle this long (and with no open transaction)
    /// is forgotten by each partition.
    public var producerIdExpirationMs: Int64
    public var logFlushOffsetCheckpointIntervalMs: Int64
    public var rack: String?
    public var quorumElectionTimeoutMs: Int64
    public var quorumFetchTimeoutMs: Int64
    public var quorumElectionBackoffMaxMs: Int64
    public var quorumRequestTimeoutMs: Int64
    /// `controller.socket.timeout.ms`: how long a client request forwarded to the controller waits on one controller.
    public var controllerSocketTimeoutMs: Int64
    public var initialBrokerRegistrationTimeoutMs: Int64
    public var snapshotPolicy: SnapshotPolicy
    public var brokerSessionTimeoutMs: Int64
    public var brokerHeartbeatIntervalMs: Int64
    public var controlledShutdownTimeoutMs: Int64
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`,
    /// `leader.imbalance.per.broker.percentage` (nil when off)
    public var leaderRebalance: (intervalMs: Int64, percentage: Int)?
    /// `replica.lag.time.max.ms`
    public var replicaLagTimeMaxMs: Int64
    /// `metrics.port`: the HTTP port of `GET /metrics` (Prometheus); nil (unset) serves none.
    public var metricsPort: Int?
    /// `metrics.host`: the address that port binds (default all interfaces).
    public var metricsHost: String
    /// `replica.fetch.*`, `replica.socket.timeout.ms`
    public var replicaFetch: ReplicaFetchSettings
    /// `max.incremental.fetch.session.cache.slots`: incremental fetch sessions (KIP-227) a
    /// broker keeps; 0 answers every fetch without one.
    public var maxIncrementalFetchSessionCacheSlots: Int
    /// `replica.high.watermark.checkpoint.interval.ms`
    public var highWatermarkCheckpointIntervalMs: Int64
    /// `log.drop.cache.behind.bytes` (Runnel's own key): bytes behind each partition's log end
    /// kept in the page cache; older written bytes are written back and dropped. -1: off.
    public var dropCacheBehindBytes: Int64
    /// Keys this build does not know (warned about, not fatal).
    public var unknownKeys: [String]
    /// TLS, SASL and the authorizer.
    public var security: SecurityConfig
    /// Keys set in the file that change nothing in Runnel, or only part of what they do in Kafka,
    /// in file order, each with `ConfigDefinitions.effects`' reason (named once at start-up).
    public var keysWithoutEffect: [(key: String, effect: ConfigEffect)]
    /// `fetch.max.bytes`: the most bytes one Fetch response carries.
    public var fetchMaxBytes: Int
    /// `quota.window.num`: samples a client quota rate is measured over.
    public var quotaWindowNum: Int
    /// `quota.window.size.seconds`: length of one of those samples.
    public var quotaWindowSizeSeconds: Int

    /// Reads and checks every key. Throws the first problem found.
    public init(_ p: Properties) throws {
        properties = p
        func string(_ key: String) -> String? {
            guard let v = p[key]?.trimmed(), !v.isEmpty else { return nil }
            return v
        }
        func required(_ key: String) throws -> String {
            guard let v = string(key) else { throw ConfigError(key, "is required but missing.") }
            return v
        }
        func int64(_ key: String, default value: Int64, min: Int64? = nil) throws -> Int64 {
            guard let text = string(key) else { return value }
            guard let n = Int64(text) else { throw ConfigError(key, "\"\(text)\" is not an integer.") }
            if let min, n < min { throw ConfigError(key, "\(n) is below the minimum of \(min).") }
            return n
        }
        func int(_ key: String, default value: Int, min: Int? = nil, max: Int? = nil) throws -> Int {
            guard let text = string(key) else { return value }
            guard let n = Int(text), n >= Int(Int32.min), n <= Int(Int32.max) else {
                throw ConfigError(key, "\"\(text)\" is not a 32-bit integer.")
            }
            if let min, n < min { throw ConfigError(key, "\(n) is below the minimum of \(min).") }
            if let max, n > max { throw ConfigError(key, "\(n) is above the maximum of \(max).") }
            return n
        }
        func bool(_ key: String, default value: Bool) throws -> Bool {
            guard let text = string(key) else { return value }
            switch text.lowercased() {
            case "true": return true
            case "false": return false
            default: throw ConfigError(key, "\"\(text)\" is not true or false.")
            }
        }

        let roleText = try required("process.roles")
        var roles = Set<Role>()
        for part in roleText.split(separator: ",") {
            guard let role = Role(rawValue: part.trimmed()) else {
                throw ConfigError(
                    "process.roles", "\"\(part.trimmed())\" is not a role; use broker, controller, or both.")
            }
            roles.insert(role)
        }
        self.roles = roles
        // As in Kafka, broker.id and node.id are one setting: either may be given, and both must agree.
        let brokerIdText = string("broker.id")
        guard let nodeText = string("node.id") ?? brokerIdText else {
            throw ConfigError("node.id", "is required but missing.")
        }
        guard let nodeId = Int32(nodeText), nodeId >= 0 else {
            throw ConfigError("node.id", "\"\(nodeText)\" is not a non-negative integer.")
        }
        if let brokerIdText, Int32(brokerIdText) != nodeId {
            throw ConfigError(
                "broker.id", "\(brokerIdText) differs from node.id \(nodeId); set one of them, or both alike.")
        }
        self.nodeId = nodeId

        let voterText = try required("controller.quorum.voters")
        var voters: [VoterSpec] = []
        for entry in voterText.split(separator: ",") {
            let e = entry.trimmed()
            guard let at = e.firstIndex(of: "@"), let id = Int32(e[..<at]), let colon = e.lastIndex(of: ":"),
                colon > at,
                let port = Int(e[e.index(after: colon)...]), (1...65535).contains(port)
            else {
                throw ConfigError("controller.quorum.voters", "\"\(e)\" is not of the form id@host:port.")
            }
            var host = String(e[e.index(after: at)..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            voters.append(VoterSpec(id: id, host: host, port: port))
        }
        if Set(voters.map(\.id)).count != voters.count {
            throw ConfigError("controller.quorum.voters", "a voter id appears twice.")
        }
        self.voters = voters
        if roles.contains(.controller) && !voters.contains(where: { $0.id == nodeId }) {
            throw ConfigError(
                "controller.quorum.voters",
                "this node (node.id=\(nodeId)) has the controller role but is not among the voters.")
        }

        let controllerNames = (string("controller.listener.names") ?? "").split(separator: ",").map {
            $0.trimmed().uppercased()
        }
        if roles.contains(.controller) && controllerNames.isEmpty {
            throw ConfigError("controller.listener.names", "is required on a controller.")
        }
        self.controllerListenerNames = controllerNames

        let listeners = try ListenerSpec.parseList(string("listeners") ?? "PLAINTEXT://:9092", key: "listeners")
        self.listeners = listeners
        if roles.contains(.controller), let first = controllerNames.first,
            !listeners.contains(where: { $0.name == first })
        {
            throw ConfigError("listeners", "has no listener named \(first) (from controller.listener.names).")
        }
        var protocols: [String: String] = [:]
        if let map = string("listener.security.protocol.map") {
            for pair in map.split(separator: ",") {
                let kv = pair.split(separator: ":", maxSplits: 1).map { $0.trimmed() }
                guard kv.count == 2, !kv[0].isEmpty else {
                    throw ConfigError("listener.security.protocol.map", "\"\(pair)\" is not of the form NAME:PROTOCOL.")
                }
                let proto = kv[1].uppercased()
                guard ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(proto) else {
                    throw ConfigError("listener.security.protocol.map", "\(proto) is not a security protocol.")
                }
                protocols[kv[0].uppercased()] = proto
            }
        }
        for l in listeners where protocols[l.name] == nil {
            if ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(l.name) {
                protocols[l.name] = l.name
            } else if controllerNames.contains(l.name) {
                protocols[l.name] = "PLAINTEXT"
            } else {
                throw ConfigError("listener.security.protocol.map", "has no security protocol for listener \(l.name).")
            }
        }
        self.securityProtocols = protocols

        let brokerListeners = listeners.filter { !controllerNames.contains($0.name) }
        if roles.contains(.broker) && brokerListeners.isEmpty {
            throw ConfigError("listeners", "a broker needs at least one listener that is not a controller listener.")
        }
        var advertised =
            try string("advertised.listeners").map { try ListenerSpec.parseList($0, key: "advertised.listeners") }
            ?? brokerListeners
        advertised = advertised.map { spec in
            var s = spec
            if s.host.isEmpty || s.host == "0.0.0.0" { s.host = "localhost" }
            return s
        }
        self.advertisedListeners = advertised
        // As in Kafka, security.inter.broker.protocol names the listener of that name, and the two
        // keys may not both be set.
        if string("inter.broker.listener.name") != nil, string("security.inter.broker.protocol") != nil {
            throw ConfigError(
                "security.inter.broker.protocol", "cannot be set together with inter.broker.listener.name; keep one.")
        }
        let interBroker =
            (string("inter.broker.listener.name") ?? string("security.inter.broker.protocol"))?.uppercased()
            ?? brokerListeners.first?.name ?? "PLAINTEXT"
        if roles.contains(.broker) && !listeners.contains(where: { $0.name == interBroker }) {
            throw ConfigError("inter.broker.listener.name", "names \(interBroker), which is not in listeners.")
        }
        self.interBrokerListenerName = interBroker
        security = try SecurityConfig.parse(
            { p[$0] }, keys: p.keys, listeners: listeners, protocols: protocols,
            controllerListenerNames: controllerNames, interBrokerListenerName: interBroker)

        let dirsText = string("log.dirs") ?? string("log.dir") ?? "/tmp/kafka-logs"
        let dirs = dirsText.split(separator: ",").map { $0.trimmed() }.filter { !$0.isEmpty }
        if dirs.isEmpty { throw ConfigError("log.dirs", "names no directory.") }
        if let relative = dirs.first(where: { !$0.hasPrefix("/") }) {
            throw ConfigError("log.dirs", "\"\(relative)\" is not an absolute path.")
        }
        self.logDirs = dirs
        self.metadataLogDir = string("metadata.log.dir") ?? dirs[0]

        numPartitions = Int32(try int("num.partitions", default: 1, min: 1))
        defaultReplicationFactor = Int16(try int("default.replication.factor", default: 1, min: 1, max: Int(Int16.max)))
        minInsyncReplicas = try int("min.insync.replicas", default: 1, min: 1)
        messageMaxBytes = try int("message.max.bytes", default: 1_048_588, min: 0)
        fetchMaxBytes = try int("fetch.max.bytes", default: 57_671_680, min: 1024)
        quotaWindowNum = try int("quota.window.num", default: 11, min: 1)
        quotaWindowSizeSeconds = try int("quota.window.size.seconds", default: 1, min: 1)
        autoCreateTopics = try bool("auto.create.topics.enable", default: true)
        deleteTopicEnable = try bool("delete.topic.enable", default: true)
        socketRequestMaxBytes = try int("socket.request.max.bytes", default: 104_857_600, min: 1)
        var limits = ConnectionLimits()
        limits.maxConnections = try int("max.connections", default: Int(Int32.max), min: 0)
        limits.maxConnectionsPerIp = try int("max.connections.per.ip", default: Int(Int32.max), min: 0)
        switch ConnectionLimits.parseOverrides(string("max.connections.per.ip.overrides") ?? "") {
        case .success(let overrides): limits.perIpOverrides = overrides
        case .failure(let problem): throw ConfigError("max.connections.per.ip.overrides", "\(problem).")
        }
        // Kafka: -1 (or any negative) never closes idle connections.
        let idle = try int64("connections.max.idle.ms", default: 600_000, min: Int64.min)
        limits.idleMs = idle < 0 ? nil : max(idle, 1)
        connectionLimits = limits
        var sockets = ListenerSocketOptions()
        // Set only when given: Kafka's defaults (a backlog of 50, 100 KiB buffers) would turn off
        // the kernel's buffer autotuning and shorten the accept queue Runnel keeps by default.
        if string("socket.listen.backlog.size") != nil {
            sockets.backlog = try int("socket.listen.backlog.size", default: 50, min: 1)
        }
        if string("socket.send.buffer.bytes") != nil {
            let bytes = try int("socket.send.buffer.bytes", default: -1, min: -1)
            sockets.sendBufferBytes = bytes > 0 ? bytes : nil
        }
        if string("socket.receive.buffer.bytes") != nil {
            let bytes = try int("socket.receive.buffer.bytes", default: -1, min: -1)
            sockets.receiveBufferBytes = bytes > 0 ? bytes : nil
        }
        listenerSocketOptions = sockets
        queuedMaxRequests = try int("queued.max.requests", default: 500, min: 1)
        rack = string("broker.rack")
        quorumElectionTimeoutMs = try int64("controller.quorum.election.timeout.ms", default: 1000, min: 1)
        quorumFetchTimeoutMs = try int64("controller.quorum.fetch.timeout.ms", default: 2000, min: 1)
        quorumElectionBackoffMaxMs = try int64("controller.quorum.election.backoff.max.ms", default: 1000, min: 1)
        quorumRequestTimeoutMs = try int64("controller.quorum.request.timeout.ms", default: 2000, min: 1)
        controllerSocketTimeoutMs = try int64("controller.socket.timeout.ms", default: 30000, min: 1)
        initialBrokerRegistrationTimeoutMs = try int64("initial.broker.registration.timeout.ms", default: 60000, min: 1)
        brokerSessionTimeoutMs = try int64("broker.session.timeout.ms", default: 9000, min: 1)
        brokerHeartbeatIntervalMs = try int64("broker.heartbeat.interval.ms", default: 2000, min: 1)
        controlledShutdownTimeoutMs = try int64("controlled.shutdown.timeout.ms", default: 30000, min: 0)
        replicaLagTimeMaxMs = try int64("replica.lag.time.max.ms", default: 30000, min: 1)
        metricsPort = string("metrics.port") == nil ? nil : try int("metrics.port", default: 0, min: 0, max: 65535)
        metricsHost = string("metrics.host") ?? "0.0.0.0"
        leaderRebalance =
            try bool("auto.leader.rebalance.enable", default: true)
            ? (
                try int64("leader.imbalance.check.interval.seconds", default: 300, min: 1) * 1000,
                try int("leader.imbalance.per.broker.percentage", default: 10, min: 0, max: 100)
            )
            : nil
        var fetch = ReplicaFetchSettings()
        fetch.waitMaxMs = Int32(try int("replica.fetch.wait.max.ms", default: 500, min: 0, max: Int(Int32.max)))
        fetch.minBytes = Int32(try int("replica.fetch.min.bytes", default: 1, min: 1, max: Int(Int32.max)))
        fetch.partitionMaxBytes = Int32(
            try int("replica.fetch.max.bytes", default: 1_048_576, min: 0, max: Int(Int32.max)))
        fetch.responseMaxBytes = Int32(
            try int("replica.fetch.response.max.bytes", default: 10_485_760, min: 0, max: Int(Int32.max)))
        fetch.backoffMs = try int64("replica.fetch.backoff.ms", default: 1000, min: 0)
        fetch.socketTimeoutMs = try int64("replica.socket.timeout.ms", default: 30000, min: 1)
        fetch.lagTimeMaxMs = replicaLagTimeMaxMs
        replicaFetch = fetch
        maxIncrementalFetchSessionCacheSlots = try int(
            "max.incremental.fetch.session.cache.slots", default: 1000, min: 0, max: 1_000_000)
        highWatermarkCheckpointIntervalMs = try int64(
            "replica.high.watermark.checkpoint.interval.ms", default: 5000, min: 1)
        dropCacheBehindBytes = try int64("log.drop.cache.behind.bytes", default: -1, min: -1)
        var policy = SnapshotPolicy()
        policy.maxBytesBetweenSnapshots = try int64(
            "metadata.log.max.record.bytes.between.snapshots", default: 20_971_520, min: 1)
        policy.maxIntervalMs = try int64("metadata.log.max.snapshot.interval.ms", default: 3_600_000, min: 0)
        if policy.maxIntervalMs == 0 { policy.maxIntervalMs = .max }
        snapshotPolicy = policy

        var log = LogConfig()
        log.segmentBytes = try int("log.segment.bytes", default: 1_073_741_824, min: 14)
        if let ms = string("log.roll.ms") {
            log.segmentMs = try int64("log.roll.ms", default: 0, min: 1)
            _ = ms
        } else {
            log.segmentMs = try int64("log.roll.hours", default: 168, min: 1) * 3_600_000
        }
        if string("log.retention.ms") != nil {
            log.retentionMs = try int64("log.retention.ms", default: 0, min: -1)
        } else if string("log.retention.minutes") != nil {
            log.retentionMs = try int64("log.retention.minutes", default: 0, min: -1) * 60_000
        } else {
            log.retentionMs = try int64("log.retention.hours", default: 168, min: -1) * 3_600_000
        }
        if log.retentionMs < -1 { log.retentionMs = -1 }
        log.retentionBytes = try int64("log.retention.bytes", default: -1, min: -1)
        log.segmentIndexBytes = try int("log.index.size.max.bytes", default: 10_485_760, min: 4)
        log.indexIntervalBytes = try int("log.index.interval.bytes", default: 4096, min: 0)
        log.flushMessages = try int64("log.flush.interval.messages", default: Int64.max, min: 1)
        // As in Kafka, log.flush.interval.ms falls back to log.flush.scheduler.interval.ms.
        log.flushMs = try int64(
            "log.flush.interval.ms",
            default: try int64("log.flush.scheduler.interval.ms", default: Int64.max, min: 1), min: 0)
        log.maxMessageBytes = messageMaxBytes
        if let type = string("log.message.timestamp.type") {
            guard type == "CreateTime" || type == "LogAppendTime" else {
                throw ConfigError("log.message.timestamp.type", "\"\(type)\" is not CreateTime or LogAppendTime.")
            }
            log.logAppendTime = type == "LogAppendTime"
        }
        if let policy = string("log.cleanup.policy") {
            let parts = policy.split(separator: ",").map { $0.trimmed() }
            guard parts.allSatisfy({ $0 == "delete" || $0 == "compact" }) else {
                throw ConfigError("log.cleanup.policy", "\"\(policy)\" must be delete, compact, or both.")
            }
            log.deleteEnabled = parts.contains("delete")
            log.compactEnabled = parts.contains("compact")
        }
        log.deleteRetentionMs = try int64("log.cleaner.delete.retention.ms", default: 86_400_000, min: 0)
        log.minCompactionLagMs = try int64("log.cleaner.min.compaction.lag.ms", default: 0, min: 0)
        if let text = string("log.cleaner.min.cleanable.ratio") {
            guard let ratio = Double(text), ratio >= 0, ratio <= 1 else {
                throw ConfigError("log.cleaner.min.cleanable.ratio", "\"\(text)\" is not a number from 0 to 1.")
            }
            log.minCleanableDirtyRatio = ratio
        }
        logDefaults = log
        var cleaner = LogCleanerSettings()
        cleaner.enabled = try bool("log.cleaner.enable", default: true)
        cleaner.backoffMs = try int64("log.cleaner.backoff.ms", default: 15_000, min: 0)
        cleaner.dedupeBufferBytes = Int(try int64("log.cleaner.dedupe.buffer.size", default: 134_217_728, min: 1))
        cleaner.ioBufferBytes = try int("log.cleaner.io.buffer.size", default: 524_288, min: 1)
        logCleaner = cleaner
        logRetentionCheckIntervalMs = try int64("log.retention.check.interval.ms", default: 300_000, min: 1)
        producerIdExpirationMs = try int64("producer.id.expiration.ms", default: 86_400_000, min: 1)
        logFlushOffsetCheckpointIntervalMs = try int64(
            "log.flush.offset.checkpoint.interval.ms", default: 60_000, min: 0)

        // Every remaining key must at least be a number or boolean where Kafka says so.
        var unknown: [String] = []
        var withoutEffect: [(key: String, effect: ConfigEffect)] = []
        for key in p.keys {
            let base = Self.listenerKeyBase(key)
            let effect = ConfigDefinitions.effect(of: base)
            if effect != .honoured {
                withoutEffect.append((key, effect))
            }
            if key.hasPrefix("listener.name."),
                ConfigDefinitions.brokerConfig(base) != nil || Self.listenerSaslKey(base)
            {
                continue
            }
            if let definition = ConfigDefinitions.brokerConfig(key) {
                if let value = p[key],
                    let problem = ConfigDefinitions.validateBrokerConfig(name: definition.name, value: value.trimmed())
                {
                    throw ConfigError(key, problem)
                }
            } else if !Self.extraKeys.contains(key) {
                unknown.append(key)
            }
        }
        unknownKeys = unknown
        keysWithoutEffect = withoutEffect
    }

    /// `listener.name.<listener>.<key>` without its prefix (and without a mechanism before
    /// `sasl.jaas.config`); other keys as they are.
    static func listenerKeyBase(_ key: String) -> String {
        guard key.hasPrefix("listener.name.") else { return key }
        let rest = key.dropFirst("listener.name.".count)
        guard let dot = rest.firstIndex(of: ".") else { return key }
        return String(rest[rest.index(after: dot)...])
    }

    /// A per-listener SASL key: `<mechanism>.sasl.jaas.config` and the like.
    static func listenerSaslKey(_ base: String) -> Bool {
        [
            "plain.sasl.jaas.config", "scram-sha-256.sasl.jaas.config", "scram-sha-512.sasl.jaas.config",
            "sasl.jaas.config",
            "sasl.enabled.mechanisms",
        ].contains(base.lowercased())
    }

    /// Keys this build reads that are not in the broker config table (the authorizer's own keys
    /// are not broker configs in Kafka either).
    static let extraKeys: Set<String> = [
        "metrics.port", "metrics.host", "controlled.shutdown.timeout.ms", "super.users",
        "allow.everyone.if.no.acl.found",
    ]

    public var isBroker: Bool { roles.contains(.broker) }
    public var isController: Bool { roles.contains(.controller) }

    /// The listeners a broker serves clients on.
    public var brokerListeners: [ListenerSpec] { listeners.filter { !controllerListenerNames.contains($0.name) } }
    public var controllerListeners: [ListenerSpec] { listeners.filter { controllerListenerNames.contains($0.name) } }
}

extension StringProtocol {
    func trimmed() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
