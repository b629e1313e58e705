import RunnelCore
import RunnelMetadata
import RunnelReplication
import RunnelSecurity

/// What a broker needs from its `server.properties`.
public struct BrokerSettings: Sendable {
    /// An advertised listener: where clients reach this broker.
    public struct Listener: Sendable, Equatable {
        public var name: String
        public var host: String
        public var port: Int
        public var securityProtocol: Int16
        public init(name: String, host: String, port: Int, securityProtocol: Int16 = 0) {
            self.name = name
            self.host = host
            self.port = port
            self.securityProtocol = securityProtocol
        }
    }

    public var nodeId: Int32
    public var clusterId: String
    public var rack: String?
    public var advertisedListeners: [Listener]
    /// `inter.broker.listener.name`
    public var interBrokerListener: String
    /// `auto.create.topics.enable`
    public var autoCreateTopics: Bool = true
    /// `message.max.bytes` (the broker default of `max.message.bytes`)
    public var messageMaxBytes: Int = 1_048_588
    /// `replica.lag.time.max.ms`
    public var replicaLagTimeMaxMs: Int64 = 30_000
    /// `broker.session.timeout.ms`: how long the controller waits for a heartbeat before it
    /// fences a broker; a leader that long without an answer steps aside when it also lost an
    /// in-sync follower (`PartitionReplica.checkIsolation`).
    public var brokerSessionTimeoutMs: Int64 = 9_000
    /// `transaction.partition.verification.enable` (KIP-890 part 1): a leader asks the
    /// transaction coordinator before a transactional produce opens a transaction on a partition.
    public var transactionPartitionVerification = true
    /// `fetch.max.bytes`: cap on one Fetch response.
    public var fetchMaxBytes: Int = 57_671_680
    /// `quota.window.num` and `quota.window.size.seconds`: the samples client quota rates are
    /// measured over.
    public var clientQuotaWindows = ClientQuotaManager.Settings()
    /// `max.incremental.fetch.session.cache.slots`: how many incremental fetch sessions
    /// (KIP-227) the broker keeps; 0 turns them off (every fetch is answered without one).
    public var maxIncrementalFetchSessionCacheSlots: Int = 1000
    /// Seeds the fetch session ids; nil draws the seed from the system's generator. The
    /// simulation sets it so that a seed replays exactly.
    public var fetchSessionIdSeed: UInt64?
    /// Replication rules broken on purpose (tests only: the simulation, and `tools/chaos` through
    /// `RUNNEL_TEST_BROKEN_RULES`); none in any real run.
    public var replicationFaults = ReplicationFaults()
    /// `authorizer.class.name` (Kafka's StandardAuthorizer) with `super.users` and
    /// `allow.everyone.if.no.acl.found`, holding no bindings yet (the image brings them); nil
    /// without an authorizer: every request is allowed.
    public var authorizer: StandardAuthorizer?
    /// Why this broker's dynamic configs, as a change would leave them, cannot be applied to its
    /// TLS listeners (a key or trust store that does not load): checked on the broker a change
    /// names before it goes to the controller, as Kafka's DynamicBrokerConfig validates its
    /// reconfigurables. Nil: nothing to check.
    public var dynamicTLSProblem: (@Sendable ([String: String]) -> String?)?
    /// Every key of `server.properties`, for DescribeConfigs and topic defaults.
    public var staticConfig: [String: String]

    public init(
        nodeId: Int32, clusterId: String, advertisedListeners: [Listener], interBrokerListener: String,
        staticConfig: [String: String]
    ) {
        self.nodeId = nodeId
        self.clusterId = clusterId
        self.advertisedListeners = advertisedListeners
        self.interBrokerListener = interBrokerListener
        self.staticConfig = staticConfig
    }

    public var resolver: ConfigResolver { ConfigResolver(staticBrokerConfig: staticConfig, brokerId: nodeId) }
}
