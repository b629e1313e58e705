import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelSecurity
import RunnelTransactions
import RunnelWire

/// A broker: serves Kafka clients from the partitions it hosts and the metadata image it follows.
///
/// Request handlers run on the connection's event loop. Shared state sits behind small locks:
/// the image (swapped whole on each metadata publish) and the partition table; each partition
/// guards its own leadership and high watermark.
public final class Broker: RequestHandler, @unchecked Sendable {
    public let settings: BrokerSettings
    let logManager: LogManager
    let controller: any ControllerChannel
    let clock: any Clock
    let logger: Logger
    /// Fetches parked until their data arrives (Kafka's DelayedFetch).
    let delayedFetches = DelayedFetchPurgatory()
    /// acks=all appends parked until they are replicated (Kafka's DelayedProduce).
    let delayedProduces = DelayedProducePurgatory()
    /// Incremental fetch sessions (KIP-227), shared by every connection.
    let fetchSessions: NIOLockedValueBox<FetchSessionCache>
    /// The replication throttles (Kafka's leader and follower ReplicationQuotaManagers).
    let leaderThrottle: NIOLockedValueBox<ReplicationThrottle>
    let followerThrottle: NIOLockedValueBox<ReplicationThrottle>
    /// Client quota rates (KIP-13, KIP-124): what each user and client id produced, fetched and
    /// spent handling requests over the quota windows.
    let clientQuotaManager: NIOLockedValueBox<ClientQuotaManager>

    private let imageBox = NIOLockedValueBox<MetadataImage>(.empty)
    /// The last image the local replicas were brought in line with (see `publish`).
    private let appliedImage = NIOLockedValueBox<MetadataImage>(.empty)
    /// Published changes not yet applied to the local replicas, and whether a drain runs.
    private let published = NIOLockedValueBox<
        (pending: [(MetadataDelta, MetadataImage)], draining: Bool)
    >(([], false))
    /// Where `publish` applies changes to the local replicas, in order.
    private let publishExecutor: PublishExecutor
    private let partitionLock = NIOLock()
    private var partitions: [TopicPartition: Partition] = [:]
    /// Topics this broker asked the controller to create, so concurrent Metadata requests do not
    /// repeat the request.
    private let autoCreating = NIOLockedValueBox<Set<String>>([])
    /// Producer ids for idempotent producers.
    let producerIds: ProducerIdManager
    /// The consumer-group coordinator for the groups whose offsets partition this broker leads.
    let groups: GroupHost
    /// The transaction coordinator for the transactional ids whose `__transaction_state`
    /// partition this broker leads.
    let transactions: TransactionHost
    private let groupLoop = NIOLockedValueBox<(any EventLoop)?>(nil)
    private let uncleanElections = NIOLockedValueBox(0)
    /// Fetchers pulling the partitions this broker follows (nil until replication starts).
    private let fetchersBox = NIOLockedValueBox<ReplicaFetchers?>(nil)
    /// Connections to the other brokers for the transaction coordinator's markers.
    let markerPeers = NIOLockedValueBox<BrokerPeers?>(nil)
    /// The broker epoch of this process's registration (nil until registered), and whether the
    /// image has caught up with it so partitions follow the image (see `publish`).
    private let registration = NIOLockedValueBox<(epoch: Int64?, caughtUp: Bool)>((nil, false))
    /// The authorizer (nil without `authorizer.class.name`), in step with the image's ACLs.
    let authorizer: BrokerAuthorizer
    /// When the active controller last answered a heartbeat leaving this broker unfenced
    /// (monotonic ms; the broker's creation until then), for the isolation check.
    private let controllerAnsweredMs: NIOLockedValueBox<Int64>
    /// Requests waiting for the image to show a change the controller committed.
    private let imageWaiters = NIOLockedValueBox<
        [(check: @Sendable (MetadataImage) -> Bool, promise: EventLoopPromise<Void>)]
    >([])

    /// Runs a drain of published changes: serially, in submission order.
    public typealias PublishExecutor = @Sendable (@escaping @Sendable () -> Void) -> Void

    public init(
        settings: BrokerSettings, logManager: LogManager, controller: any ControllerChannel, clock: any Clock,
        logger: Logger, publishExecutor: @escaping PublishExecutor = { $0() }
    ) {
        self.settings = settings
        self.publishExecutor = publishExecutor
        self.logManager = logManager
        self.controller = controller
        self.clock = clock
        self.logger = logger
        self.authorizer = BrokerAuthorizer(settings.authorizer)
        self.controllerAnsweredMs = NIOLockedValueBox(clock.monotonicMs())
        self.leaderThrottle = NIOLockedValueBox(ReplicationThrottle(.leader, settings: settings))
        self.followerThrottle = NIOLockedValueBox(ReplicationThrottle(.follower, settings: settings))
        var seedSource = SystemRandomNumberGenerator()
        self.clientQuotaManager = NIOLockedValueBox(ClientQuotaManager(settings: settings.clientQuotaWindows))
        self.fetchSessions = NIOLockedValueBox(
            FetchSessionCache(
                maxSessions: settings.maxIncrementalFetchSessionCacheSlots,
                seed: settings.fetchSessionIdSeed ?? seedSource.next()))
        let box = imageBox, applied = appliedImage
        let nodeId = NodeID(settings.nodeId)
        self.producerIds = ProducerIdManager(
            brokerId: settings.nodeId,
            brokerEpoch: { box.withLockedValue { $0.brokers[nodeId]?.epoch ?? -1 } },
            controller: controller)
        var groupSettings = GroupSettings()
        let config = settings.staticConfig
        if let v = config["group.min.session.timeout.ms"].flatMap({ Int32($0) }) {
            groupSettings.minSessionTimeoutMs = v
        }
        if let v = config["group.max.session.timeout.ms"].flatMap({ Int32($0) }) {
            groupSettings.maxSessionTimeoutMs = v
        }
        if let v = config["group.initial.rebalance.delay.ms"].flatMap({ Int64($0) }) {
            groupSettings.initialRebalanceDelayMs = v
        }
        if let v = config["group.max.size"].flatMap({ Int($0) }) { groupSettings.maxSize = v }
        if let v = config["offset.metadata.max.bytes"].flatMap({ Int($0) }) { groupSettings.offsetMetadataMaxBytes = v }
        let groupsRef = GroupHostRefs()
        self.groups = GroupHost(
            settings: groupSettings, clock: clock, logger: logger,
            partitionCount: {
                Int32(applied.withLockedValue { $0.topic(named: OffsetsTopic.name)?.partitionCount ?? 0 })
            },
            partition: { groupsRef.broker?.partition(TopicPartition(OffsetsTopic.name, $0)) },
            appendRecords: { entries, acks, timeoutMs, verification, loop in
                guard let broker = groupsRef.broker else {
                    return .done(entries.map { _ in PartitionAppendResult(error: .notCoordinator) })
                }
                return broker.appendRecords(
                    entries, requiredAcks: acks, timeoutMs: timeoutMs, origin: .coordinator,
                    verification: [0: verification], eventLoop: loop)
            })
        var transactionSettings = TransactionSettings()
        if let v = config["transaction.max.timeout.ms"].flatMap({ Int32($0) }) { transactionSettings.maxTimeoutMs = v }
        if let v = config["transactional.id.expiration.ms"].flatMap({ Int64($0) }) {
            transactionSettings.transactionalIdExpirationMs = v
        }
        if let v = config["transaction.abort.timed.out.transaction.cleanup.interval.ms"].flatMap({ Int64($0) }) {
            transactionSettings.abortTimedOutTransactionsIntervalMs = v
        }
        if let v = config["transaction.remove.expired.transaction.cleanup.interval.ms"].flatMap({ Int64($0) }) {
            transactionSettings.removeExpiredTransactionalIdsIntervalMs = v
        }
        if let v = config["transaction.state.log.num.partitions"].flatMap({ Int32($0) }), v > 0 {
            transactionSettings.stateTopicPartitions = v
        }
        let producerIds = self.producerIds
        self.transactions = TransactionHost(
            settings: transactionSettings, clock: clock, logger: logger,
            partition: { groupsRef.broker?.partition(TopicPartition(TransactionLog.topicName, $0)) },
            appendRecords: { entries, acks, timeoutMs, loop in
                guard let broker = groupsRef.broker else {
                    return .done(entries.map { _ in PartitionAppendResult(error: .notCoordinator) })
                }
                return broker.appendRecords(
                    entries, requiredAcks: acks, timeoutMs: timeoutMs, origin: .coordinator, eventLoop: loop)
            },
            sendMarkers: { markers, loop in
                guard let broker = groupsRef.broker else {
                    return loop.makeSucceededFuture(
                        Dictionary(uniqueKeysWithValues: markers.partitions.map { ($0, ErrorCode.notCoordinator) }))
                }
                return broker.sendTransactionMarkers(markers, eventLoop: loop)
            },
            allocateProducerIds: { loop in producerIds.allocateBlock(on: loop) })
        if let v = config["offsets.commit.timeout.ms"].flatMap({ Int64($0) }) { groups.commitTimeoutMs = v }
        if let v = config["offsets.retention.minutes"].flatMap({ Int64($0) }) { groups.offsetsRetentionMs = v * 60_000 }
        if let v = config["offsets.retention.check.interval.ms"].flatMap({ Int64($0) }) {
            groups.offsetsRetentionCheckIntervalMs = v
        }
        groupsRef.broker = self
    }

    /// The metadata image this broker serves from.
    public var image: MetadataImage { imageBox.withLockedValue { $0 } }
    /// The image the local replicas were last brought in line with: `image`, or one a little
    /// older while `publish` applies the newest to them.
    package var replicaImage: MetadataImage { appliedImage.withLockedValue { $0 } }
    /// The offset of the last metadata change the local replicas follow, which heartbeats report:
    /// the controller unfences this broker (and the server lets clients in) only once the
    /// replicas of its registration's image are open, as Kafka's broker reports the offset its
    /// publishers have applied.
    public var appliedMetadataOffset: Int64 { appliedImage.withLockedValue { $0.provenance.lastOffset } }

    public func partition(_ tp: TopicPartition) -> Partition? {
        partitionLock.withLock { partitions[tp] }
    }

    public var hostedPartitions: [Partition] { partitionLock.withLock { Array(partitions.values) } }

    // MARK: replication

    /// Starts pulling followed partitions from their leaders.
    /// A follower's truncation (which syncs its log) runs through `blocking`, off the fetchers' loop.
    public func startReplication(
        transport: any ReplicaTransport, settings: ReplicaFetchSettings, blocking: @escaping BlockingRunner
    ) {
        let fetchers = ReplicaFetchers(
            transport: transport, blocking: blocking, settings: settings, localId: self.settings.nodeId,
            brokerEpoch: { [weak self] in self?.ownBrokerEpoch ?? -1 }, clock: clock, logger: logger,
            throttle: FollowerThrottleGate(box: followerThrottle, localId: self.settings.nodeId))
        fetchersBox.withLockedValue { $0 = fetchers }
        fetchers.reconcile(hostedPartitions)
    }

    /// Starts coordinating consumer groups and transactions (timers run on `eventLoop`).
    public func startGroups(on eventLoop: any EventLoop) {
        groupLoop.withLockedValue { $0 = eventLoop }
        groupLeadershipChanged()
        transactionLeadershipChanged()
    }

    /// Tells the transaction coordinator which `__transaction_state` partitions this broker leads
    /// (and has not stepped aside from) and at which leader epoch (its coordinator epoch), once
    /// coordinators started.
    private func transactionLeadershipChanged() {
        guard let loop = groupLoop.withLockedValue({ $0 }) else { return }
        if let topic = replicaImage.topic(named: TransactionLog.topicName) {
            transactions.stateTopicPartitionsChanged(Int32(topic.partitionCount))
        }
        var leading: [Int32: Int32] = [:]
        for p in hostedPartitions where p.topicPartition.topic == TransactionLog.topicName && p.servesClients {
            leading[p.topicPartition.partition] = p.leaderEpoch
        }
        transactions.leadershipChanged(leading: leading, on: loop)
    }

    /// Tells the group coordinator which `__consumer_offsets` partitions this broker leads (and
    /// has not stepped aside from), once groups started.
    private func groupLeadershipChanged() {
        guard let loop = groupLoop.withLockedValue({ $0 }) else { return }
        let leading = hostedPartitions.filter { $0.topicPartition.topic == OffsetsTopic.name && $0.servesClients }
        groups.leadershipChanged(leading: Set(leading.map(\.topicPartition.partition)), on: loop)
    }

    public func stopReplication() {
        fetchersBox.withLockedValue { $0 }?.stopAll()
    }

    /// Which brokers may join an ISR, by `image`: registered, unfenced, not shutting down, and
    /// fetching as the incarnation registered now.
    package static func isrEligibility(_ image: MetadataImage) -> IsrEligibility {
        IsrEligibility(
            isLive: { id in image.brokers[id].map { !$0.fenced && !$0.inControlledShutdown } ?? false },
            registeredEpoch: { id in image.brokers[id].flatMap { BrokerEpoch.known($0.epoch) } })
    }

    /// Carries out what a partition's replication core asked for beyond the partition's own log:
    /// wakes the fetches parked on it, answers the produces waiting on it, proposes ISR changes.
    func carryOut(_ actions: [ReplicationAction], for partition: Partition) {
        for action in actions {
            switch action {
            case .highWatermarkMoved, .logEndMoved, .lastStableOffsetMoved:
                delayedFetches.notify(partition.topicPartition)
            case .completeProduce(let id, let code):
                delayedProduces.completed(id, code: code)
            case .proposeIsr(let proposal):
                proposeIsr(partition, proposal, image: image)
            case .steppedAside(let aside):
                if aside {
                    BrokerMetrics.leaderStepAsides.increment()
                    logger.warning(
                        "stepping aside as leader of \(partition.topicPartition): no word from the controller for over broker.session.timeout.ms (\(settings.brokerSessionTimeoutMs) ms) and an in-sync follower stopped fetching; clients are sent to look for the new leader"
                    )
                } else {
                    logger.info("leading \(partition.topicPartition) for clients again")
                }
                // Parked client fetches hear of it now, and so do the groups it coordinates.
                delayedFetches.notify(partition.topicPartition)
                if partition.topicPartition.topic == OffsetsTopic.name { groupLeadershipChanged() }
                if partition.topicPartition.topic == TransactionLog.topicName { transactionLeadershipChanged() }
            case .beginLeaderEpoch, .follow, .leaderless:
                // Done by the partition (the epoch) and by `publish` (the fetchers).
                break
            }
        }
    }

    /// The broker epoch of this process's registration, -1 before it registered.
    var ownBrokerEpoch: Int64 { registration.withLockedValue { $0.epoch } ?? -1 }

    /// The active controller answered this broker's heartbeat (`fenced`: it holds the broker
    /// fenced, as after its session expired).
    public func controllerAnswered(fenced: Bool) {
        guard !fenced else { return }
        let now = clock.monotonicMs()
        controllerAnsweredMs.withLockedValue { $0 = max($0, now) }
    }

    /// Whether this broker leads `tp` but stepped aside (Metadata reports it leaderless). The
    /// partition's core is the one place that knows: it also forgets a step aside when a new
    /// leader epoch begins.
    func steppedAside(_ tp: TopicPartition) -> Bool { partition(tp)?.steppedAside ?? false }

    /// The periodic checks of the partitions this broker leads: the ISR (followers that lag more
    /// than `replica.lag.time.max.ms` are proposed out, caught-up ones back in) and isolation
    /// (a leader cut off from the controller and from an in-sync follower steps aside).
    public func checkIsr() {
        let image = self.image
        let live = Self.isrEligibility(image)
        let now = clock.monotonicMs()
        let silent = now - controllerAnsweredMs.withLockedValue { $0 }
        for partition in hostedPartitions {
            partition.checkIsr(nowMs: now, lagTimeMaxMs: settings.replicaLagTimeMaxMs, eligibility: live)
            partition.checkIsolation(
                nowMs: now, controllerSilentMs: silent, sessionTimeoutMs: settings.brokerSessionTimeoutMs)
        }
    }

    /// How often `checkIsr` runs: every `replica.lag.time.max.ms` / 2 as Kafka's isr-expiration
    /// task, but at least every 250 ms, so a follower leaves the ISR close to the lag time and a
    /// cut-off leader steps aside soon after its followers move on.
    static func replicaCheckIntervalMs(lagTimeMaxMs: Int64) -> Int64 { max(1, min(lagTimeMaxMs / 2, 250)) }

    /// Runs `checkIsr` on `eventLoop`, on a timer of its own so that no disk work delays it.
    @discardableResult
    public func startIsrChecks(on eventLoop: any EventLoop) -> RepeatedTask {
        let interval = TimeAmount.milliseconds(Self.replicaCheckIntervalMs(lagTimeMaxMs: settings.replicaLagTimeMaxMs))
        return eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] task in
            guard let self else {
                task.cancel()
                return
            }
            self.checkIsr()
        }
    }

    /// Sends an ISR change to the controller (AlterPartition); it holds once committed.
    func proposeIsr(_ partition: Partition, _ proposal: IsrProposal, image: MetadataImage) {
        var data = AlterPartitionRequest.PartitionData()
        data.partitionIndex = partition.topicPartition.partition
        data.leaderEpoch = proposal.leaderEpoch.rawValue
        data.partitionEpoch = proposal.partitionEpoch.rawValue
        let own = ownBrokerEpoch
        data.newIsrWithEpochs = zip(proposal.isr, proposal.brokerEpochs).map { id, epoch in
            .init(brokerId: id.rawValue, brokerEpoch: id.rawValue == settings.nodeId ? own : epoch?.rawValue ?? -1)
        }
        var request = AlterPartitionRequest()
        request.brokerId = settings.nodeId
        request.brokerEpoch = own
        request.topics = [
            .init(topicName: partition.topicPartition.topic, topicId: partition.topicId, partitions: [data])
        ]
        logger.info(
            "proposing ISR \(proposal.isr.map(\.rawValue)) for \(partition.topicPartition) (partition epoch \(proposal.partitionEpoch))"
        )
        let clock = self.clock
        let logger = self.logger
        controller.send(request, version: 3).whenComplete { result in
            var answer: AlterPartitionResponse.PartitionData?
            switch result {
            case .success(let response):
                answer = response.topics.first?.partitions.first
                if response.errorCode != 0 { answer = nil }
                let code = ErrorCode(response.errorCode != 0 ? response.errorCode : answer?.errorCode ?? 0)
                if code != .none { logger.info("AlterPartition for \(partition.topicPartition) refused: \(code)") }
            case .failure(let error):
                logger.info("AlterPartition for \(partition.topicPartition) failed: \(error)")
            }
            if let answer, answer.errorCode == 0 {
                let before = Set(partition.state.isr), after = Set(answer.isr)
                if after.count < before.count { BrokerMetrics.isrShrinks.increment() }
                if after.count > before.count { BrokerMetrics.isrExpands.increment() }
            } else {
                BrokerMetrics.isrChangesRefused.increment()
            }
            partition.isrProposalAnswered(proposal, result: answer, nowMs: clock.monotonicMs())
        }
    }

    /// High watermarks of hosted partitions, for `replication-offset-checkpoint`.
    public var highWatermarks: [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        for p in hostedPartitions { out[p.topicPartition] = p.highWatermark }
        return out
    }

    // MARK: metadata publishing

    /// Takes a committed metadata change, in the metadata log's order. As Kafka's
    /// BrokerMetadataPublisher does, the new image (and its ACLs) answers requests at once; the
    /// local replicas follow it afterwards on the publish executor (a thread of its own in the
    /// server, so opening logs never holds up the metadata log's event loop; at once in the
    /// simulation). A request for a partition whose replica is not open yet gets
    /// NOT_LEADER_OR_FOLLOWER and is retried, as in Kafka.
    public func publish(delta: MetadataDelta, image: MetadataImage) {
        let drain = published.withLockedValue { queue -> Bool in
            authorizer.publish(delta, image: image)
            transactions.transactionVersionChanged(
                featureLevel: image.features[TransactionVersionFeature.featureName] ?? 0)
            imageBox.withLockedValue { $0 = image }
            queue.pending.append((delta, image))
            guard !queue.draining else { return false }
            queue.draining = true
            return true
        }
        guard drain else { return }
        publishExecutor { [self] in
            // Changes published while the last pass ran are applied together, in one pass over
            // the newest image.
            while let (deltas, image) = published.withLockedValue({ queue -> ([MetadataDelta], MetadataImage)? in
                guard let newest = queue.pending.last?.1 else {
                    queue.draining = false
                    return nil
                }
                defer { queue.pending.removeAll() }
                return (queue.pending.map(\.0), newest)
            }) {
                applyToReplicas(PublishedChanges(deltas), image: image)
            }
        }
    }

    /// What one or more published deltas in a row changed, for `applyToReplicas`.
    struct PublishedChanges {
        var changedTopics: Set<KafkaUUID> = []
        var deletedTopics: [TopicImage] = []
        var changedTopicConfigs: Set<String> = []
        var brokerConfigsChanged = false
        var any = false

        init(_ deltas: [MetadataDelta]) {
            for delta in deltas {
                changedTopics.formUnion(delta.changedTopics)
                deletedTopics.append(contentsOf: delta.deletedTopics.values)
                for resource in delta.changedConfigs {
                    if resource.type == .topic { changedTopicConfigs.insert(resource.name) }
                    if resource.type == .broker { brokerConfigsChanged = true }
                }
                any = any || !delta.changedConfigs.isEmpty || !delta.changedTopics.isEmpty
            }
        }
    }

    /// Creates, updates and deletes local replicas for published changes (removals first, then
    /// every touched topic as `image` has it), applies topic configs to their logs, then answers
    /// the requests waiting for the changes.
    private func applyToReplicas(_ changes: PublishedChanges, image: MetadataImage) {
        // Partitions follow the image only once it holds this process's own registration: the
        // local metadata log replayed at start-up may still name this broker leader of
        // partitions the controller moves away when it re-registers (it may have lost its page
        // cache). Kafka's broker likewise waits for its initial catch-up before ReplicaManager
        // sees any metadata.
        let opened: Bool? = registration.withLockedValue { state in
            guard !state.caughtUp else { return false }
            guard let epoch = state.epoch, Self.holdsRegistration(image, brokerId: settings.nodeId, brokerEpoch: epoch)
            else { return nil }
            state.caughtUp = true
            return true
        }
        guard let opened else {
            // The replicas follow no image yet (so heartbeats keep this broker fenced); requests
            // waiting for one are answered, as nothing here will open for them.
            completeImageWaiters(image)
            return
        }
        let now = clock.wallMs()
        let resolver = settings.resolver
        var touchedTopics = changes.changedTopics
        for name in changes.changedTopicConfigs {
            if let id = image.topic(named: name)?.id { touchedTopics.insert(id) }
        }
        if changes.brokerConfigsChanged || opened { touchedTopics.formUnion(image.topicsById.keys) }
        for topic in changes.deletedTopics {
            for (index, _) in topic.partitions {
                removePartition(TopicPartition(topic.name, index))
            }
        }
        for id in touchedTopics {
            guard let topic = image.topic(id: id) else { continue }
            let config = Self.logConfig(topic: topic.name, image: image, resolver: resolver)
            let minInsync =
                resolver.topicValue("min.insync.replicas", topic: topic.name, image: image).flatMap { Int($0) } ?? 1
            for (index, registration) in topic.partitions {
                let tp = TopicPartition(topic.name, index)
                if registration.replicas.contains(settings.nodeId) {
                    do {
                        try ensurePartition(
                            tp, topicId: topic.id, registration: registration, config: config, minInsync: minInsync,
                            nowMs: now)
                    } catch {
                        logger.error("cannot open the log of \(tp): \(error)")
                    }
                } else {
                    removePartition(tp)
                }
            }
        }
        // The new logs' files are made durable together: one journal commit for the pass.
        do { try logManager.syncNewLogs() } catch { logger.error("cannot sync new partition logs: \(error)") }
        if changes.any || opened {
            for box in [leaderThrottle, followerThrottle] {
                box.withLockedValue { $0.refresh(image: image, brokerId: settings.nodeId, resolver: resolver) }
            }
        }
        appliedImage.withLockedValue { $0 = image }
        fetchersBox.withLockedValue { $0 }?.reconcile(hostedPartitions)
        groupLeadershipChanged()
        transactionLeadershipChanged()
        completeImageWaiters(image)
    }

    /// Whether `image` holds the registration of broker `brokerId` at `brokerEpoch` (or a later
    /// one): from then on its partition leadership reflects that registration.
    public static func holdsRegistration(_ image: MetadataImage, brokerId: Int32, brokerEpoch: Int64) -> Bool {
        guard let registered = image.brokers[NodeID(brokerId)] else { return false }
        return registered.epoch >= brokerEpoch
    }

    /// This process registered with the controller at `brokerEpoch`: partitions follow the image
    /// once it holds that registration (at once if it already does).
    public func registered(brokerEpoch: Int64) {
        registration.withLockedValue { $0 = (brokerEpoch, false) }
        let image = self.image
        if Self.holdsRegistration(image, brokerId: settings.nodeId, brokerEpoch: brokerEpoch) {
            publish(delta: MetadataDelta(image), image: image)
        }
    }

    private func completeImageWaiters(_ image: MetadataImage) {
        let ready = imageWaiters.withLockedValue { waiters -> [EventLoopPromise<Void>] in
            let done = waiters.filter { $0.check(image) }.map(\.promise)
            waiters.removeAll { w in done.contains { $0.futureResult === w.promise.futureResult } }
            return done
        }
        for promise in ready { promise.succeed(()) }
    }

    /// Completes once the image the local replicas follow satisfies `check` (so a client's next
    /// request here finds the change, its new replicas open), or after `timeoutMs` (then it
    /// completes anyway: the caller answers with what the controller said).
    func awaitImage(
        on eventLoop: any EventLoop, timeoutMs: Int64, _ check: @escaping @Sendable (MetadataImage) -> Bool
    ) -> EventLoopFuture<Void> {
        if check(replicaImage) { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        imageWaiters.withLockedValue { $0.append((check, promise)) }
        if check(replicaImage) {
            imageWaiters.withLockedValue { $0.removeAll { $0.promise.futureResult === promise.futureResult } }
            promise.succeed(())
        }
        eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { [imageWaiters] in
            let pending = imageWaiters.withLockedValue { waiters -> Bool in
                let had = waiters.contains { $0.promise.futureResult === promise.futureResult }
                waiters.removeAll { $0.promise.futureResult === promise.futureResult }
                return had
            }
            if pending { promise.succeed(()) }
        }
        return promise.futureResult
    }

    /// Completes once the local replicas follow an image in which this broker, at `brokerEpoch`,
    /// is unfenced (so the leaderships its unfencing brought are taken up), or after `timeoutMs`.
    /// The server lets clients in after it: a client sent here by this broker's own Metadata
    /// then finds its replicas leading, not NOT_LEADER_OR_FOLLOWER.
    public func awaitReplicasUnfenced(
        brokerEpoch: Int64, on eventLoop: any EventLoop, timeoutMs: Int64
    ) -> EventLoopFuture<Void> {
        let id = NodeID(settings.nodeId)
        return awaitImage(on: eventLoop, timeoutMs: timeoutMs) { image in
            guard let registered = image.brokers[id] else { return false }
            return registered.epoch >= brokerEpoch && !registered.fenced
        }
    }

    /// Loads logs found on disk that the image no longer has (deleted while this broker was down),
    /// or whose topic id differs (deleted and recreated), and removes them: on the publish
    /// executor, after the changes published so far have reached the local replicas.
    public func removeStrayLogs() {
        publishExecutor { [self] in removeStrayLogsNow() }
    }

    private func removeStrayLogsNow() {
        let image = replicaImage
        for tp in logManager.topicPartitions {
            let topic = image.topic(named: tp.topic)
            let stray =
                topic == nil || topic!.partitions[tp.partition]?.replicas.contains(settings.nodeId) != true
                || (logManager.topicId(of: tp).map { $0 != topic!.id } ?? false)
            if stray {
                logger.info("deleting stray log \(tp): not in the metadata image")
                removePartition(tp, force: true)
            }
        }
    }

    private func ensurePartition(
        _ tp: TopicPartition, topicId: KafkaUUID, registration: PartitionRegistration, config: LogConfig,
        minInsync: Int, nowMs: Int64
    ) throws {
        if let existing = partition(tp), existing.topicId == topicId {
            existing.log.config = config
            existing.minInsyncReplicas = minInsync
            if existing.update(registration, nowMs: clock.monotonicMs()) == .becameLeader {
                noteLeadership(existing, registration)
            }
            return
        }
        if partition(tp) != nil { removePartition(tp) }
        let log = try logManager.getOrCreate(tp, topicId: topicId, config: config, nowMs: nowMs, deferSync: true)
        let partition = Partition(
            topicPartition: tp, topicId: topicId, log: log, registration: registration, localId: settings.nodeId,
            highWatermark: logManager.checkpointedHighWatermark(tp) ?? 0, nowMs: clock.monotonicMs(),
            faults: settings.replicationFaults,
            onActions: { [weak self] partition, actions in self?.carryOut(actions, for: partition) })
        partition.minInsyncReplicas = minInsync
        partitionLock.withLock { partitions[tp] = partition }
        if partition.isLeader { noteLeadership(partition, registration) }
    }

    /// Unclean leader elections this broker took part in (it became leader from outside the ISR).
    public var uncleanLeaderElections: Int { uncleanElections.withLockedValue { $0 } }

    private func noteLeadership(_ partition: Partition, _ registration: PartitionRegistration) {
        guard registration.leaderRecoveryState == 1 else { return }
        uncleanElections.withLockedValue { $0 += 1 }
        BrokerMetrics.uncleanElections.increment()
        logger.warning(
            "unclean leader election: this broker leads \(partition.topicPartition) from outside the ISR (unclean.leader.election.enable); records only the old ISR had are lost",
            metadata: ["leaderEpoch": "\(registration.leaderEpoch)", "logEndOffset": "\(partition.log.logEndOffset)"])
    }

    private func removePartition(_ tp: TopicPartition, force: Bool = false) {
        let removed = partitionLock.withLock { partitions.removeValue(forKey: tp) }
        removed?.markRemoved()
        if removed != nil || force {
            do { try logManager.delete(tp) } catch { logger.error("cannot delete the log of \(tp): \(error)") }
            delayedFetches.notify(tp)
        }
    }

    /// The log settings of a topic: its overrides over the broker's defaults.
    static func logConfig(topic: String, image: MetadataImage, resolver: ConfigResolver) -> LogConfig {
        func value(_ name: String) -> String? { resolver.topicValue(name, topic: topic, image: image) }
        func int64(_ name: String) -> Int64? { value(name).flatMap { Int64($0) } }
        var c = LogConfig()
        if let v = int64("segment.bytes") { c.segmentBytes = Int(v) }
        if let v = int64("segment.ms") { c.segmentMs = v }
        if let v = int64("retention.ms") { c.retentionMs = v }
        if let v = int64("retention.bytes") { c.retentionBytes = v }
        if let v = int64("segment.index.bytes") { c.segmentIndexBytes = Int(v) }
        if let v = int64("index.interval.bytes") { c.indexIntervalBytes = Int(v) }
        if let v = int64("flush.messages") { c.flushMessages = v }
        if let v = int64("flush.ms") { c.flushMs = v }
        if let v = int64("max.message.bytes") { c.maxMessageBytes = Int(v) }
        c.logAppendTime = value("message.timestamp.type") == "LogAppendTime"
        switch value("compression.type") {
        case "uncompressed": c.compression = CompressionCodec.none
        case "gzip": c.compression = .gzip
        case "snappy": c.compression = .snappy
        case "lz4": c.compression = .lz4
        case "zstd": c.compression = .zstd
        default: c.compression = nil  // producer
        }
        // gzip's -1 is zlib's default level.
        if let v = int64("compression.gzip.level"), v != -1 { c.compressionLevels[.gzip] = Int32(v) }
        if let v = int64("compression.lz4.level") { c.compressionLevels[.lz4] = Int32(v) }
        if let v = int64("compression.zstd.level") { c.compressionLevels[.zstd] = Int32(v) }
        // Kafka's LogConfig: each bound left at its default falls back to the deprecated
        // difference key.
        let difference = int64("message.timestamp.difference.max.ms") ?? .max
        c.timestampBeforeMaxMs =
            int64("message.timestamp.before.max.ms").flatMap { $0 == .max ? nil : $0 } ?? difference
        c.timestampAfterMaxMs = int64("message.timestamp.after.max.ms").flatMap { $0 == .max ? nil : $0 } ?? difference
        let policy = (value("cleanup.policy") ?? "delete").split(separator: ",").map { $0.trimmingPrefixSpaces() }
        c.deleteEnabled = policy.contains("delete")
        c.compactEnabled = policy.contains("compact")
        if let v = int64("delete.retention.ms") { c.deleteRetentionMs = v }
        if let v = int64("min.compaction.lag.ms") { c.minCompactionLagMs = v }
        if let v = int64("max.compaction.lag.ms") { c.maxCompactionLagMs = v }
        if let v = value("min.cleanable.dirty.ratio").flatMap({ Double($0) }) { c.minCleanableDirtyRatio = v }
        return c
    }

    // MARK: dispatch

    public func handle(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome {
        measuringRequestQuota(request, context: context) { dispatch(request, context: context) }
    }

    func dispatch(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome {
        let key = request.header.apiKey
        let version = request.header.apiVersion
        if key == .apiVersions {
            return apiVersions(request, context: context)
        }
        guard let range = Self.supportedVersions[key], range.contains(version) else {
            return .close(reason: "unsupported request \(key.name) v\(version)")
        }
        do {
            switch key {
            case .produce:
                return try produce(
                    decode(ProduceRequest.self, request), version: version, context: context,
                    requestBytes: request.frameBytes)
            case .fetch: return try fetch(decode(FetchRequest.self, request), version: version, context: context)
            case .listOffsets:
                return try listOffsets(decode(ListOffsetsRequest.self, request), version: version, context: context)
            case .metadata:
                return try metadata(decode(MetadataRequest.self, request), version: version, context: context)
            case .describeTopicPartitions:
                return try describeTopicPartitions(
                    decode(DescribeTopicPartitionsRequest.self, request), version: version, context: context)
            case .createTopics:
                return try createTopics(decode(CreateTopicsRequest.self, request), version: version, context: context)
            case .deleteTopics:
                return try deleteTopics(decode(DeleteTopicsRequest.self, request), version: version, context: context)
            case .createPartitions:
                return try createPartitions(
                    decode(CreatePartitionsRequest.self, request), version: version, context: context)
            case .incrementalAlterConfigs:
                return try incrementalAlterConfigs(
                    decode(IncrementalAlterConfigsRequest.self, request), version: version, context: context)
            case .alterConfigs:
                return try alterConfigs(decode(AlterConfigsRequest.self, request), version: version, context: context)
            case .electLeaders:
                return try electLeaders(decode(ElectLeadersRequest.self, request), version: version, context: context)
            case .alterPartitionReassignments:
                return try alterPartitionReassignments(
                    decode(AlterPartitionReassignmentsRequest.self, request), version: version, context: context)
            case .listPartitionReassignments:
                return try listPartitionReassignments(
                    decode(ListPartitionReassignmentsRequest.self, request), version: version, context: context)
            case .deleteRecords:
                return try deleteRecords(decode(DeleteRecordsRequest.self, request), version: version, context: context)
            case .describeConfigs:
                return try describeConfigs(
                    decode(DescribeConfigsRequest.self, request), version: version, context: context)
            case .describeQuorum:
                // Kafka's brokers forward DescribeQuorum to the active controller (KIP-595), so
                // kafka-metadata-quorum --bootstrap-server and Admin.describeMetadataQuorum work.
                let r = try decode(DescribeQuorumRequest.self, request)
                guard authorization(context).allows(.describe, .cluster) else {
                    return respond(
                        DescribeQuorumResponse(errorCode: ErrorCode.clusterAuthorizationFailed.rawValue),
                        version: version, context: context)
                }
                return forward(r, version: version, context: context)
            case .describeCluster:
                return try describeCluster(
                    decode(DescribeClusterRequest.self, request), version: version, context: context)
            case .offsetForLeaderEpoch:
                return try offsetForLeaderEpoch(
                    decode(OffsetForLeaderEpochRequest.self, request), version: version, context: context)
            case .findCoordinator:
                return try findCoordinator(
                    decode(FindCoordinatorRequest.self, request), version: version, context: context)
            case .joinGroup, .syncGroup, .heartbeat, .leaveGroup, .offsetCommit, .offsetFetch, .offsetDelete,
                .listGroups, .describeGroups, .deleteGroups:
                return try handleGroupRequest(key, request, version: version, context: context)
            case .initProducerId:
                return try initProducerId(
                    decode(InitProducerIdRequest.self, request), version: version, context: context)
            case .addPartitionsToTxn:
                return try addPartitionsToTxn(
                    decode(AddPartitionsToTxnRequest.self, request), version: version, context: context)
            case .addOffsetsToTxn:
                return try addOffsetsToTxn(
                    decode(AddOffsetsToTxnRequest.self, request), version: version, context: context)
            case .endTxn:
                return try endTxn(decode(EndTxnRequest.self, request), version: version, context: context)
            case .txnOffsetCommit:
                return try txnOffsetCommit(
                    decode(TxnOffsetCommitRequest.self, request), version: version, context: context)
            case .writeTxnMarkers:
                return try writeTxnMarkers(
                    decode(WriteTxnMarkersRequest.self, request), version: version, context: context)
            case .describeProducers:
                return try describeProducers(
                    decode(DescribeProducersRequest.self, request), version: version, context: context)
            case .describeTransactions:
                return try describeTransactions(
                    decode(DescribeTransactionsRequest.self, request), version: version, context: context)
            case .listTransactions:
                return try listTransactions(
                    decode(ListTransactionsRequest.self, request), version: version, context: context)
            case .describeLogDirs:
                return try describeLogDirs(
                    decode(DescribeLogDirsRequest.self, request), version: version, context: context)
            case .describeAcls:
                return try describeAcls(decode(DescribeAclsRequest.self, request), version: version, context: context)
            case .createAcls:
                return try createAcls(decode(CreateAclsRequest.self, request), version: version, context: context)
            case .deleteAcls:
                return try deleteAcls(decode(DeleteAclsRequest.self, request), version: version, context: context)
            case .describeUserScramCredentials:
                return try describeUserScramCredentials(
                    decode(DescribeUserScramCredentialsRequest.self, request), version: version, context: context)
            case .alterUserScramCredentials:
                return try alterUserScramCredentials(
                    decode(AlterUserScramCredentialsRequest.self, request), version: version, context: context)
            case .updateFeatures:
                return try updateFeatures(
                    decode(UpdateFeaturesRequest.self, request), version: version, context: context)
            case .unregisterBroker:
                return try unregisterBroker(
                    decode(UnregisterBrokerRequest.self, request), version: version, context: context)
            case .describeClientQuotas:
                return try describeClientQuotas(
                    decode(DescribeClientQuotasRequest.self, request), version: version, context: context)
            case .alterClientQuotas:
                return try alterClientQuotas(
                    decode(AlterClientQuotasRequest.self, request), version: version, context: context)
            default:
                return .close(reason: "no handler for \(key.name)")
            }
        } catch {
            return .close(reason: "malformed \(key.name) v\(version) request: \(error)")
        }
    }

    /// Decodes a request body. Bytes after the message are ignored, as Kafka ignores them
    /// (librdkafka's Metadata v12 "all topics" request carries three extra bytes).
    func decode<R: RequestMessage>(_ type: R.Type, _ request: IncomingRequest) throws -> R {
        var reader = WireReader(request.body)
        return try R(from: &reader, version: request.header.apiVersion)
    }

    func respond<M: ResponseMessage>(_ message: M, version: Int16, context: RequestContext) -> RequestOutcome {
        .respondNow(OutgoingResponse(message, version: version, allocator: context.allocator))
    }

    /// Forwards an admin request to the active controller and relays its answer. When the
    /// controller cannot be reached or is not active, every item gets NOT_CONTROLLER (retriable),
    /// as Kafka answers, instead of a dropped connection.
    func forward<R: RequestMessage>(_ request: R, version: Int16, context: RequestContext) -> RequestOutcome {
        .respond(
            forwarded(request, version: version, context: context).map {
                OutgoingResponse($0, version: version, allocator: context.allocator)
            })
    }

    /// Forwards `request` to the active controller and gives its answer (NOT_CONTROLLER on every
    /// item when it cannot be reached), once this broker's image shows what it committed.
    func forwarded<R: RequestMessage>(
        _ request: R, version: Int16, context: RequestContext
    ) -> EventLoopFuture<R.Response> {
        let logger = self.logger
        let eventLoop = context.eventLoop
        let requestVisibility = Self.visibility(of: request)
        let sentAt = NIODeadline.now()
        return controller.send(request, version: version)
            .flatMap { [self] response -> EventLoopFuture<R.Response> in
                BrokerMetrics.controllerForwardTime(R.apiKey).recordNanoseconds(
                    (NIODeadline.now() - sentAt).nanoseconds)
                // Answer once this broker's own metadata shows the change, so a client's next
                // request here sees it.
                guard let check = Self.visibility(of: response) ?? requestVisibility?(response) else {
                    return eventLoop.makeSucceededFuture(response)
                }
                return awaitImage(on: eventLoop, timeoutMs: 5_000, check).map { response }
            }
            .flatMapErrorThrowing { error in
                logger.info("controller request \(R.apiKey.name) failed: \(error)")
                // NOT_CONTROLLER makes clients send again; a request the controller may have
                // applied is REQUEST_TIMED_OUT instead, which they report.
                let code: ErrorCode = error is ForwardOutcomeUnknown ? .requestTimedOut : .notController
                guard let response = ControllerRequests.failure(request, code: code) else { throw error }
                return response
            }
    }

    /// What the image must show before a successful controller answer is relayed.
    static func visibility(of response: any ResponseMessage) -> (@Sendable (MetadataImage) -> Bool)? {
        switch response {
        case let r as CreateTopicsResponse:
            let created = r.topics.filter { $0.errorCode == 0 }.map { ($0.name, Int($0.numPartitions)) }
            if created.isEmpty { return nil }
            return { image in
                created.allSatisfy { name, n in
                    image.topic(named: name).map { n < 0 || $0.partitionCount >= n } ?? false
                }
            }
        case let r as DeleteTopicsResponse:
            let deleted = r.responses.filter { $0.errorCode == 0 }.compactMap(\.name)
            if deleted.isEmpty { return nil }
            return { image in deleted.allSatisfy { image.topic(named: $0) == nil } }
        default:
            return nil
        }
    }

    // MARK: auto-creation

    /// Asks the controller for an internal topic once (concurrent requests do not repeat it).
    func createInternalTopic(_ request: CreateTopicsRequest) {
        let names = request.topics.map(\.name)
        let fresh: Bool = autoCreating.withLockedValue { creating in
            guard names.allSatisfy({ !creating.contains($0) }) else { return false }
            creating.formUnion(names)
            return true
        }
        guard fresh else { return }
        let logger = self.logger
        controller.send(request, version: 7).whenComplete { [autoCreating] result in
            autoCreating.withLockedValue { $0.subtract(names) }
            if case .success(let response) = result {
                for t in response.topics where t.errorCode != 0 && t.errorCode != ErrorCode.topicAlreadyExists.rawValue
                {
                    logger.warning("creating \(t.name) failed: \(ErrorCode(t.errorCode)) \(t.errorMessage ?? "")")
                }
            } else if case .failure(let error) = result {
                logger.warning("creating \(names) failed: \(error)")
            }
        }
    }

    /// Asks the controller to create `names` with default settings (auto.create.topics.enable).
    func autoCreate(_ names: [String]) {
        let fresh: [String] = autoCreating.withLockedValue { creating in
            let new = names.filter { !creating.contains($0) }
            creating.formUnion(new)
            return new
        }
        guard !fresh.isEmpty else { return }
        var request = CreateTopicsRequest()
        request.topics = fresh.map {
            CreateTopicsRequest.CreatableTopic(name: $0, numPartitions: -1, replicationFactor: -1)
        }
        request.timeoutMs = 30_000
        let logger = self.logger
        controller.send(request, version: 7).whenComplete { [autoCreating] result in
            autoCreating.withLockedValue { $0.subtract(fresh) }
            switch result {
            case .success(let response):
                for t in response.topics where t.errorCode != 0 && t.errorCode != ErrorCode.topicAlreadyExists.rawValue
                {
                    logger.warning(
                        "auto-creating topic \(t.name) failed: \(ErrorCode(t.errorCode)) \(t.errorMessage ?? "")")
                }
            case .failure(let error):
                logger.warning("auto-creating topics \(fresh) failed: \(error)")
            }
        }
    }
}

extension Substring {
    func trimmingPrefixSpaces() -> String {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// Lets the group host reach its broker without a reference cycle at construction.
final class GroupHostRefs: @unchecked Sendable {
    weak var broker: Broker?
}
