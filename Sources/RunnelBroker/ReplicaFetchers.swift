import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelReplication
import RunnelWire

/// How a follower reaches the broker that leads its partitions.
public protocol ReplicaTransport: Sendable {
    /// The loop fetchers run on.
    var eventLoop: any EventLoop { get }
    /// Sends a follower's Fetch to broker `leader`; fails when it cannot be reached or does not
    /// answer within `timeoutMs`.
    func fetch(
        from leader: Int32, _ request: FetchRequest, version: Int16, timeoutMs: Int64
    ) -> EventLoopFuture<FetchResponse>
}

/// Settings of the replica fetchers (Kafka's `replica.*` keys).
public struct ReplicaFetchSettings: Sendable {
    /// `replica.fetch.wait.max.ms`
    public var waitMaxMs: Int32 = 500
    /// `replica.fetch.min.bytes`
    public var minBytes: Int32 = 1
    /// `replica.fetch.max.bytes` (per partition)
    public var partitionMaxBytes: Int32 = 1_048_576
    /// `replica.fetch.response.max.bytes`
    public var responseMaxBytes: Int32 = 10_485_760
    /// `replica.fetch.backoff.ms`
    public var backoffMs: Int64 = 1000
    /// `replica.socket.timeout.ms`
    public var socketTimeoutMs: Int64 = 30_000
    /// `replica.lag.time.max.ms`
    public var lagTimeMaxMs: Int64 = 30_000
    public init() {}

    /// How long a follower waits for a fetch's answer before it drops the connection and fetches
    /// again on a new one: the leader's longest park (`replica.fetch.wait.max.ms`) plus
    /// `replica.socket.timeout.ms`, as Kafka's fetcher does, but no longer than
    /// `replica.lag.time.max.ms` past the park. A follower without an answer for that long is out
    /// of the ISR anyway, and an answer that slow was most likely lost with its connection (a
    /// healed network cut leaves it behind TCP's retransmission back-off, seconds by then): a new
    /// connection gets the follower back in sooner. With Kafka's defaults (30 s and 30 s) the two
    /// agree.
    public var answerTimeoutMs: Int64 { Int64(waitMaxMs) + min(socketTimeoutMs, lagTimeMaxMs) }
}

/// The replica fetchers of a broker: one per leader broker, each pulling every partition this
/// broker follows from that leader in one long-polling Fetch at a time (Kafka's
/// ReplicaFetcherThread, with `num.replica.fetchers=1`), in an incremental fetch session
/// (KIP-227) once the leader grants one.
final class ReplicaFetchers: @unchecked Sendable {
    private let transport: any ReplicaTransport
    private let blocking: BlockingRunner
    private let settings: ReplicaFetchSettings
    private let localId: Int32
    private let brokerEpoch: @Sendable () -> Int64
    private let clock: any Clock
    private let logger: Logger
    private let throttle: FollowerThrottleGate?
    private let lock = NIOLock()
    private var fetchers: [Int32: ReplicaFetcher] = [:]

    init(
        transport: any ReplicaTransport, blocking: @escaping BlockingRunner, settings: ReplicaFetchSettings,
        localId: Int32,
        brokerEpoch: @escaping @Sendable () -> Int64, clock: any Clock, logger: Logger,
        throttle: FollowerThrottleGate? = nil
    ) {
        self.throttle = throttle
        self.transport = transport
        self.blocking = blocking
        self.settings = settings
        self.localId = localId
        self.brokerEpoch = brokerEpoch
        self.clock = clock
        self.logger = logger
    }

    /// Points the fetchers at the partitions this broker now follows.
    func reconcile(_ partitions: [Partition]) {
        var byLeader: [Int32: [TopicPartition: Partition]] = [:]
        for p in partitions {
            guard let position = p.fetchPosition else { continue }
            byLeader[position.leader.rawValue, default: [:]][p.topicPartition] = p
        }
        let (started, stopped): ([ReplicaFetcher], [ReplicaFetcher]) = lock.withLock {
            var started: [ReplicaFetcher] = []
            var stopped: [ReplicaFetcher] = []
            for (leader, fetcher) in fetchers where byLeader[leader] == nil {
                stopped.append(fetcher)
                fetchers.removeValue(forKey: leader)
            }
            for (leader, set) in byLeader {
                if let fetcher = fetchers[leader] {
                    fetcher.assign(set)
                } else {
                    let fetcher = ReplicaFetcher(
                        leaderId: leader, localId: localId, brokerEpoch: brokerEpoch, transport: transport,
                        blocking: blocking, settings: settings, clock: clock, logger: logger, throttle: throttle)
                    fetcher.assign(set)
                    fetchers[leader] = fetcher
                    started.append(fetcher)
                }
            }
            return (started, stopped)
        }
        for f in stopped { f.stop() }
        for f in started { f.start() }
        for f in lock.withLock({ Array(fetchers.values) }) { f.wake() }
    }

    func stopAll() {
        let all = lock.withLock { () -> [ReplicaFetcher] in
            let all = Array(fetchers.values)
            fetchers = [:]
            return all
        }
        for f in all { f.stop() }
    }
}

/// Pulls the partitions one leader holds for this broker.
final class ReplicaFetcher: @unchecked Sendable {
    let leaderId: Int32
    private let localId: Int32
    private let brokerEpoch: @Sendable () -> Int64
    private let transport: any ReplicaTransport
    private let blocking: BlockingRunner
    private let settings: ReplicaFetchSettings
    private let clock: any Clock
    private let logger: Logger
    private let eventLoop: any EventLoop
    /// The follower side's replication throttle (nil: none).
    private let throttle: FollowerThrottleGate?

    private let lock = NIOLock()
    // Guarded by lock.
    private var partitions: [TopicPartition: Partition] = [:]
    /// Partitions held back after an error, until the monotonic time given.
    private var delayedUntil: [TopicPartition: Int64] = [:]
    private var running = false
    private var inFlight = false
    private var failures = 0
    /// The incremental fetch session with the leader (KIP-227).
    private var session = FetchSessionHandler()

    init(
        leaderId: Int32, localId: Int32, brokerEpoch: @escaping @Sendable () -> Int64, transport: any ReplicaTransport,
        blocking: @escaping BlockingRunner, settings: ReplicaFetchSettings, clock: any Clock, logger: Logger,
        throttle: FollowerThrottleGate? = nil
    ) {
        self.throttle = throttle
        self.leaderId = leaderId
        self.localId = localId
        self.brokerEpoch = brokerEpoch
        self.transport = transport
        self.blocking = blocking
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.eventLoop = transport.eventLoop
    }

    func assign(_ set: [TopicPartition: Partition]) {
        lock.withLock {
            partitions = set
            delayedUntil = delayedUntil.filter { set[$0.key] != nil }
        }
    }

    func start() {
        lock.withLock { running = true }
        wake()
    }

    func stop() { lock.withLock { running = false } }

    /// Starts a fetch unless one is in flight.
    func wake() {
        eventLoop.execute { [self] in fetchOnce() }
    }

    private func fetchOnce() {
        let now = clock.monotonicMs()
        let brokerEpoch = self.brokerEpoch()
        let plan: ReplicaFetchPlan? = lock.withLock {
            guard running, !inFlight else { return nil }
            var delays = delayedUntil
            if let throttle {
                // Over the follower throttle: its out-of-sync partitions sit this fetch out.
                for (tp, partition) in partitions where delays[tp] == nil && throttle.holdsBack(partition, nowMs: now) {
                    delays[tp] = now + FollowerThrottleGate.recheckMs
                }
            }
            var plan = ReplicaFetchPlan(
                leaderId: leaderId, localId: localId, brokerEpoch: brokerEpoch, partitions: partitions,
                delayedUntil: delays, nowMs: now, settings: settings)
            if !plan.positions.isEmpty {
                inFlight = true
                plan.request = session.prepare(plan.request)
            }
            return plan
        }
        guard let plan else { return }
        if plan.positions.isEmpty {
            if let wakeAt = plan.wakeAt {
                eventLoop.scheduleTask(in: .milliseconds(max(1, wakeAt - now))) { [self] in fetchOnce() }
            }
            return
        }
        let timeout = settings.answerTimeoutMs
        let sent = NIODeadline.now()  // for the metric only: decisions use `clock`
        BrokerMetrics.replicaFetches.increment()
        transport.fetch(from: leaderId, plan.request, version: ReplicaFetchPlan.version, timeoutMs: timeout).hop(
            to: eventLoop
        ).whenComplete { [self] result in
            BrokerMetrics.replicaFetchTime.recordNanoseconds((NIODeadline.now() - sent).nanoseconds)
            var backoff = false
            switch result {
            case .success(let response):
                let usable = lock.withLock { session.handleResponse(response, sent: plan.request) }
                if ReplicaFetchPlan.sessionErrorCodes.contains(ErrorCode(response.errorCode)) {
                    // The session is gone or out of step (the leader restarted, say): the next
                    // fetch, at once, is a full one.
                    logger.info(
                        "fetch session with broker \(leaderId): \(ErrorCode(response.errorCode)), fetching in full")
                } else if response.errorCode != 0 {
                    logger.warning("replica fetch from broker \(leaderId) failed: \(ErrorCode(response.errorCode))")
                    backoff = true
                } else if !usable {
                    logger.warning(
                        "replica fetch from broker \(leaderId): the answer does not match the fetch session, fetching in full"
                    )
                } else if Self.truncates(response) {
                    // A truncation syncs the log (it must be durable before the leader's records
                    // that follow it): off the event loop, and the next fetch waits for it.
                    blocking(eventLoop) { [self] in apply(response, plan: plan) }.whenComplete { [self] _ in
                        lock.withLock { inFlight = false }
                        fetchOnce()
                    }
                    return
                } else {
                    apply(response, plan: plan)
                }
            case .failure(let error):
                let n = lock.withLock {
                    session.handleError()
                    failures += 1
                    return failures
                }
                if n == 1 || n % 30 == 0 {
                    logger.warning("cannot fetch from broker \(leaderId): \(error)")
                }
                backoff = true
            }
            lock.withLock { inFlight = false }
            if backoff {
                eventLoop.scheduleTask(in: .milliseconds(settings.backoffMs)) { [self] in fetchOnce() }
            } else {
                fetchOnce()
            }
        }
    }

    /// Whether applying `response` may truncate a log (a diverging epoch, or an offset out of range).
    static func truncates(_ response: FetchResponse) -> Bool {
        response.responses.contains { topic in
            topic.partitions.contains { p in
                p.divergingEpoch.epoch >= 0 || p.divergingEpoch.endOffset >= 0
                    || p.errorCode == ErrorCode.offsetOutOfRange.rawValue
            }
        }
    }

    private func apply(_ response: FetchResponse, plan: ReplicaFetchPlan) {
        lock.withLock { failures = 0 }
        let nowMono = clock.monotonicMs()
        let now = clock.wallMs()
        for (tp, partition, position, data) in plan.answers(response) {
            let bytes = data.records?.bytes?.readableBytes ?? 0
            BrokerMetrics.replicaFetchBytes.increment(by: bytes)
            throttle?.fetched(partition, bytes: bytes, nowMs: nowMono)
            do {
                switch try partition.applyFetched(data, position: position, nowMs: now) {
                case .failed(let code):
                    // The leader and this broker disagree on the partition's metadata: one of the
                    // two has not applied the latest records yet (a new topic reaches every broker
                    // within milliseconds, and the follower is often first). Try again soon
                    // rather than after the full backoff, which would stall a new topic's
                    // acks=all produce for a second.
                    if ReplicaFetchPlan.metadataLagCodes.contains(code) {
                        logger.debug("replica fetch of \(tp) from broker \(leaderId): \(code), retrying")
                    } else {
                        logger.warning("replica fetch of \(tp) from broker \(leaderId): \(code)")
                    }
                    let delay = ReplicaFetchPlan.retryDelayMs(after: code, settings: settings)
                    lock.withLock { delayedUntil[tp] = nowMono + delay }
                case .truncated(let from, let highWatermark):
                    let to = partition.log.logEndOffset
                    if to < highWatermark {
                        // Records this follower knew committed are gone: only an unclean election
                        // may do that, so say it loudly.
                        logger.warning(
                            "truncated \(tp) from \(from) to \(to), below its high watermark \(highWatermark), to match leader \(leaderId)"
                        )
                    } else if to < from {
                        logger.info("truncated \(tp) from \(from) to \(to) to match leader \(leaderId)")
                    }
                case .appended, .idle, .stale:
                    break
                }
            } catch {
                logger.error("replica fetch of \(tp) could not be written: \(error)")
                lock.withLock { delayedUntil[tp] = nowMono + settings.backoffMs }
            }
        }
    }

}

/// One Fetch a follower sends to one leader, and where each partition in it stood: built and
/// read the same way by the broker's fetchers and by the simulation's.
package struct ReplicaFetchPlan {
    /// Fetch v15: topic ids, the last fetched epoch, the diverging-epoch answer, and the
    /// follower's broker epoch (KIP-903), so the leader adds to an ISR only the incarnation that
    /// did the fetching.
    package static let version: Int16 = 15

    /// Answers meaning the leader's metadata and ours differ for the partition, which the next
    /// metadata records settle.
    package static let metadataLagCodes: Set<ErrorCode> = [
        .unknownTopicId, .unknownTopicOrPartition, .notLeaderOrFollower,
        .unknownLeaderEpoch, .fencedLeaderEpoch,
    ]
    /// How soon a partition is fetched again after such an answer.
    package static let metadataLagRetryMs: Int64 = 20
    /// Top-level answers meaning the fetch session is lost or out of step: the next fetch is full
    /// and goes at once.
    package static let sessionErrorCodes: Set<ErrorCode> = [
        .fetchSessionIdNotFound, .invalidFetchSessionEpoch, .fetchSessionTopicIdError,
    ]

    /// How long a partition whose answer carried `code` is held back: briefly while the two
    /// brokers' metadata disagree, `replica.fetch.backoff.ms` for anything else.
    package static func retryDelayMs(after code: ErrorCode, settings: ReplicaFetchSettings) -> Int64 {
        metadataLagCodes.contains(code) ? min(settings.backoffMs, metadataLagRetryMs) : settings.backoffMs
    }

    package var request: FetchRequest
    package var positions: [TopicPartition: (Partition, FetchPosition)]
    /// When the first partition held back after an error may go again (nil: none held back).
    package var wakeAt: Int64?

    package init(
        leaderId: Int32, localId: Int32, brokerEpoch: Int64, partitions: [TopicPartition: Partition],
        delayedUntil: [TopicPartition: Int64], nowMs: Int64, settings: ReplicaFetchSettings
    ) {
        var request = FetchRequest()
        request.replicaState = .init(replicaId: localId, replicaEpoch: brokerEpoch)
        request.maxWaitMs = settings.waitMaxMs
        request.minBytes = settings.minBytes
        request.maxBytes = settings.responseMaxBytes
        // A full fetch without a session; the fetcher's FetchSessionHandler sets the session
        // fields and trims the partitions to an incremental fetch's.
        request.sessionId = 0
        request.sessionEpoch = FetchSessionCache.finalEpoch
        var positions: [TopicPartition: (Partition, FetchPosition)] = [:]
        var byTopic: [String: (KafkaUUID, [FetchRequest.FetchPartition])] = [:]
        var wakeAt: Int64?
        for tp in partitions.keys.sorted() {
            let partition = partitions[tp]!
            if let until = delayedUntil[tp], until > nowMs {
                wakeAt = min(wakeAt ?? until, until)
                continue
            }
            guard let position = partition.fetchPosition, position.leader.rawValue == leaderId else { continue }
            positions[tp] = (partition, position)
            byTopic[tp.topic, default: (partition.topicId, [])].1.append(
                .init(
                    partition: tp.partition, currentLeaderEpoch: position.leaderEpoch.rawValue,
                    fetchOffset: position.fetchOffset.rawValue,
                    lastFetchedEpoch: position.lastFetchedEpoch.rawValue,
                    logStartOffset: position.logStartOffset.rawValue,
                    partitionMaxBytes: settings.partitionMaxBytes))
        }
        request.topics = byTopic.keys.sorted().map { name in
            var topic = FetchRequest.FetchTopic()
            topic.topic = name
            topic.topicId = byTopic[name]!.0
            topic.partitions = byTopic[name]!.1
            return topic
        }
        self.request = request
        self.positions = positions
        self.wakeAt = wakeAt
    }

    /// Each partition's answer in `response` (topics are named by id from v13), with the
    /// partition and the position it was fetched from.
    package func answers(
        _ response: FetchResponse
    ) -> [(TopicPartition, Partition, FetchPosition, FetchResponse.PartitionData)] {
        var names: [KafkaUUID: String] = [:]
        for (tp, (partition, _)) in positions { names[partition.topicId] = tp.topic }
        var out: [(TopicPartition, Partition, FetchPosition, FetchResponse.PartitionData)] = []
        for topic in response.responses {
            guard let name = topic.topicId == .zero ? topic.topic : names[topic.topicId] else { continue }
            for data in topic.partitions {
                let tp = TopicPartition(name, data.partitionIndex)
                guard let (partition, position) = positions[tp] else { continue }
                out.append((tp, partition, position, data))
            }
        }
        return out
    }
}
