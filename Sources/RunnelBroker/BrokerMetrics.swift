import Metrics
import NIOConcurrencyHelpers
import RunnelWire

/// What a broker counts beyond its requests (RunnelNetwork counts those), through swift-metrics.
/// Kafka's names, in Prometheus style: messages and bytes appended by producers, ISR changes,
/// group rebalances, unclean elections this broker took over from.
public enum BrokerMetrics {
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
    /// The transaction coordinator: transactions it completed by outcome, those it aborted for
    /// running past their timeout, and markers it gave up on (fenced).
    static let transactionsCommitted = Counter(label: "runnel_transactions_committed_total")
    static let transactionsAborted = Counter(label: "runnel_transactions_aborted_total")
    static let transactionsTimedOut = Counter(label: "runnel_transactions_timed_out_total")
    static let transactionMarkersAbandoned = Counter(label: "runnel_transaction_markers_abandoned_total")
    /// The partition side: markers appended as leader, and transactional produces refused
    /// because the coordinator did not confirm the partition (KIP-890 part 1).
    static let transactionMarkersWritten = Counter(label: "runnel_transaction_markers_written_total")
    static let transactionVerificationFailures = Counter(label: "runnel_transaction_verification_failures_total")
    /// Incremental fetch sessions (KIP-227; Kafka's FetchSessionCache NumIncrementalFetchSessions,
    /// NumIncrementalFetchPartitionsCached, IncrementalFetchSessionEvictionsPerSec): sessions
    /// held, the partitions they cache, and sessions evicted to make room for new ones.
    static let fetchSessions = Gauge(label: "runnel_incremental_fetch_sessions")
    static let fetchSessionPartitions = Gauge(label: "runnel_incremental_fetch_partitions_cached")
    static let fetchSessionEvictions = Counter(label: "runnel_incremental_fetch_session_evictions_total")
    /// A client's admin request forwarded to the active controller: from sending it to the
    /// controller's answer (Kafka's ForwardingManager RemoteTimeMs), per API.
    static func controllerForwardTime(_ api: ApiKey) -> Timer {
        forwardTimers.withLockedValue { timers in
            if let timer = timers[api.rawValue] { return timer }
            let timer = Timer(label: "runnel_controller_forward_duration_seconds", dimensions: [("api", api.name)])
            timers[api.rawValue] = timer
            return timer
        }
    }
    /// Made once per API, on its first forward (only admin APIs the broker knows are forwarded).
    private static let forwardTimers = NIOLockedValueBox<[Int16: Timer]>([:])

    /// Makes every series above, so that a scrape shows each from the start (at zero) rather
    /// than from its first event: a dashboard's `rate()` then reads 0, not "no data". Call it
    /// once the metrics backend is bootstrapped (a handle made before binds to the no-op one).
    public static func registerSeries() {
        _ = [messagesIn, bytesIn, isrShrinks, isrExpands, isrChangesRefused, leaderStepAsides, groupRebalances]
        _ = [uncleanElections, replicaFetches, replicaFetchBytes, fetchSessionEvictions]
        _ = [transactionsCommitted, transactionsAborted, transactionsTimedOut, transactionMarkersAbandoned]
        _ = [transactionMarkersWritten, transactionVerificationFailures]
        _ = [fetchSessions, fetchSessionPartitions]
        _ = replicaFetchTime
    }
}
