import Metrics

/// What a broker counts beyond its requests (RunnelNetwork counts those), through swift-metrics.
/// Kafka's names, in Prometheus style: messages and bytes appended by producers, ISR changes,
/// group rebalances, unclean elections this broker took over from.
enum BrokerMetrics {
    static let messagesIn = Counter(label: "runnel_messages_in_total")
    static let bytesIn = Counter(label: "runnel_produce_bytes_in_total")
    static let isrShrinks = Counter(label: "runnel_isr_shrinks_total")
    static let isrExpands = Counter(label: "runnel_isr_expands_total")
    static let isrChangesRefused = Counter(label: "runnel_isr_changes_refused_total")
    /// Times a leader cut off from the controller and an in-sync follower stepped aside.
    static let leaderStepAsides = Counter(label: "runnel_leader_step_asides_total")
    static let groupRebalances = Counter(label: "runnel_group_rebalances_total")
    static let uncleanElections = Counter(label: "runnel_unclean_leader_elections_total")
    /// The replica fetchers (Kafka's FetcherStats): Fetch requests sent to leaders, record bytes
    /// they brought, and each Fetch's time from send to answer (long polls included).
    static let replicaFetches = Counter(label: "runnel_replica_fetch_requests_total")
    static let replicaFetchBytes = Counter(label: "runnel_replica_fetch_bytes_total")
    static let replicaFetchTime = Timer(label: "runnel_replica_fetch_duration_seconds")
}
