import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelReplication

/// The leader side of Kafka's replication throttle (ReplicationQuotaManager, KIP-73): the bytes
/// this broker sends to followers of throttled replicas (`leader.replication.throttled.replicas`
/// entries naming this broker, or "*") are held to `leader.replication.throttled.rate`, a
/// dynamic config of this broker (or of every broker). As in Kafka, only followers outside the
/// ISR are throttled, so the throttle slows a move's catching up, never acks=all produces.
struct LeaderReplicationThrottle: Sendable {
    var quota: ReplicationQuota
    /// Throttled replicas on this broker, by topic.
    var throttled: [String: ThrottledReplicas] = [:]

    init(settings: BrokerSettings) {
        let windowSeconds = settings.staticConfig["replication.quota.window.size.seconds"].flatMap { Int64($0) } ?? 1
        let windows = settings.staticConfig["replication.quota.window.num"].flatMap { Int($0) } ?? 11
        quota = ReplicationQuota(windowMs: max(1, windowSeconds) * 1000, windowCount: max(1, windows))
    }

    /// Whether the throttle covers `tp`'s replica on this broker.
    func covers(_ tp: TopicPartition) -> Bool {
        guard quota.bytesPerSecond != nil, let replicas = throttled[tp.topic] else { return false }
        return replicas.contains(tp.partition)
    }

    /// Takes the rate and the throttled replicas from the image's configs.
    mutating func refresh(image: MetadataImage, brokerId: Int32, resolver: ConfigResolver) {
        let own = image.configs(of: ConfigResource(.broker, String(brokerId)))
        let cluster = image.configs(of: ConfigResource(.broker, ""))
        let rate = (own["leader.replication.throttled.rate"] ?? cluster["leader.replication.throttled.rate"])
            .flatMap { Int64($0) }
        // Long.MAX_VALUE, the default, means no throttle.
        quota.bytesPerSecond = rate.flatMap { $0 > 0 && $0 < Int64.max ? $0 : nil }
        var throttled: [String: ThrottledReplicas] = [:]
        for name in image.topicNames {
            let value = resolver.topicValue("leader.replication.throttled.replicas", topic: name, image: image)
            if let replicas = ThrottledReplicas.parse(value, brokerId: brokerId) { throttled[name] = replicas }
        }
        self.throttled = throttled
    }
}

extension Broker {
    /// Whether a fetch by follower `replica` of `partition` must wait for the throttle: the
    /// replica is throttled here, out of the ISR, and the rate is over the bound.
    func leaderThrottles(_ partition: Partition, replica: Int32) -> Bool {
        let nowMs = clock.monotonicMs()
        let over = leaderThrottle.withLockedValue {
            $0.covers(partition.topicPartition) && $0.quota.isExceeded(nowMs: nowMs)
        }
        return over && !partition.state.isr.contains(replica)
    }
}
