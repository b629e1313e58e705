import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelReplication

/// One side of Kafka's replication throttle (ReplicationQuotaManager, KIP-73). The leader side
/// holds the bytes this broker sends to followers of the replicas `leader.replication.throttled.replicas`
/// names on it to `leader.replication.throttled.rate`; the follower side holds the bytes this
/// broker fetches for the replicas `follower.replication.throttled.replicas` names on it to
/// `follower.replication.throttled.rate`. The rates are dynamic configs of this broker (or of
/// every broker). As in Kafka, only replicas outside the ISR are throttled, so a throttle slows a
/// move's catching up, never acks=all produces.
struct ReplicationThrottle: Sendable {
    enum Side: Sendable {
        case leader, follower
        var rateKey: String {
            self == .leader ? "leader.replication.throttled.rate" : "follower.replication.throttled.rate"
        }
        var replicasKey: String {
            self == .leader ? "leader.replication.throttled.replicas" : "follower.replication.throttled.replicas"
        }
    }

    let side: Side
    var quota: ReplicationQuota
    /// Throttled replicas on this broker, by topic.
    var throttled: [String: ThrottledReplicas] = [:]

    init(_ side: Side, settings: BrokerSettings) {
        self.side = side
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
        let rate = (own[side.rateKey] ?? cluster[side.rateKey]).flatMap { Int64($0) }
        // Long.MAX_VALUE, the default, means no throttle.
        quota.bytesPerSecond = rate.flatMap { $0 > 0 && $0 < Int64.max ? $0 : nil }
        var throttled: [String: ThrottledReplicas] = [:]
        if quota.bytesPerSecond != nil {
            for name in image.topicNames {
                let value = resolver.topicValue(side.replicasKey, topic: name, image: image)
                if let replicas = ThrottledReplicas.parse(value, brokerId: brokerId) { throttled[name] = replicas }
            }
        }
        self.throttled = throttled
    }
}

/// The follower side's throttle as the replica fetchers use it.
struct FollowerThrottleGate: Sendable {
    let box: NIOLockedValueBox<ReplicationThrottle>
    let localId: Int32

    /// Whether `partition` must not be fetched now: throttled here, this replica out of the ISR,
    /// and the rate over the bound.
    func holdsBack(_ partition: Partition, nowMs: Int64) -> Bool {
        let over = box.withLockedValue { $0.covers(partition.topicPartition) && $0.quota.isExceeded(nowMs: nowMs) }
        return over && !partition.state.isr.contains(localId)
    }

    /// Counts bytes fetched for `partition` when the throttle covers it.
    func fetched(_ partition: Partition, bytes: Int, nowMs: Int64) {
        guard bytes > 0, !partition.state.isr.contains(localId) else { return }
        box.withLockedValue {
            if $0.covers(partition.topicPartition) { $0.quota.record(Int64(bytes), nowMs: nowMs) }
        }
    }

    /// How soon a held-back partition is looked at again.
    static let recheckMs: Int64 = 100
}

extension Broker {
    /// Whether a fetch by follower `replica` of `partition` must wait for the leader-side
    /// throttle: the replica is throttled here, out of the ISR, and the rate is over the bound.
    func leaderThrottles(_ partition: Partition, replica: Int32) -> Bool {
        let nowMs = clock.monotonicMs()
        let over = leaderThrottle.withLockedValue {
            $0.covers(partition.topicPartition) && $0.quota.isExceeded(nowMs: nowMs)
        }
        return over && !partition.state.isr.contains(replica)
    }
}
