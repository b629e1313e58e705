import NIOCore
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelWire

/// One broker of the replication simulation: a `LogManager` over its own `SimDisk` (kept across
/// crashes), the real `Partition`s, and the broker's drivers redone on the virtual clock, step
/// for step as the real ones: the lifecycle of `BrokerLifecycle` and `RunnelServer` (register,
/// heartbeat, serve once unfenced, periodic ISR checks and checkpoints), the metadata publisher
/// of `Broker.publish`, the follower fetchers of `ReplicaFetchers`, and the leader's answers of
/// `Broker+Fetch` and `Broker+Produce` with their purgatories.
final class SimBroker {
    let id: Int32
    unowned let world: ReplicationSimulation
    let disk = SimDisk()
    /// The broker's copy of the metadata log (Raft syncs it): replayed first at start-up.
    var durableImage = MetadataImage.empty

    // The current incarnation (reset by start).
    var up = false
    var incarnation: Int64 = 0
    /// Registered and unfenced once: listeners open, maintenance runs.
    var serving = false
    var brokerEpoch: Int64 = -1
    var logManager: LogManager?
    var image = MetadataImage.empty
    var partitions: [TopicPartition: Partition] = [:]
    var fetchers: [Int32: SimFetcher] = [:]
    var fetchWaiters: [FetchWaiter] = []
    var produceWaiters: [ProduceWaiter] = []

    let fetchSettings: ReplicaFetchSettings
    let logConfig: LogConfig
    static let fetchVersion: Int16 = 12
    static let produceVersion: Int16 = 9
    static let fetchMaxBytes = 57_671_680

    init(id: Int32, world: ReplicationSimulation) {
        self.id = id
        self.world = world
        var settings = ReplicaFetchSettings()
        // Kafka's defaults scaled to the simulation's clock.
        settings.waitMaxMs = 200
        settings.backoffMs = 200
        settings.socketTimeoutMs = 2_000
        settings.partitionMaxBytes = 8_192
        self.fetchSettings = settings
        var config = LogConfig()
        config.segmentBytes = world.options.segmentBytes
        config.retentionMs = -1
        config.retentionBytes = -1
        self.logConfig = config
    }

    var now: Int64 { world.now }
    var alive: () -> Bool { world.aliveCheck(id) }

    // MARK: lifecycle

    func start() {
        incarnation += 1
        up = true
        serving = false
        brokerEpoch = -1
        image = .empty
        partitions = [:]
        fetchers = [:]
        fetchWaiters = []
        produceWaiters = []
        do {
            logManager = try LogManager(logDirs: ["/data"], defaultConfig: logConfig, disk: disk, nowMs: now)
        } catch {
            world.fail("broker \(id) cannot open its logs: \(error)")
            return
        }
        let logs = logManager!.allLogs.sorted { $0.topicPartition < $1.topicPartition }
            .map { "\($0.topicPartition) \($0.logStartOffset)..<\($0.logEndOffset) epoch \($0.latestEpoch)" }
        world.note("start \(id) (incarnation \(incarnation)): \(logs.isEmpty ? "no logs" : logs.joined(separator: ", "))")
        // The local metadata log first (it may be stale), then the controller's.
        if durableImage.provenance.lastOffset >= 0 { publish(durableImage) }
        pollMetadata()
        register()
        every(300, jitter: 1_000) { [self] in disk.writeBack(rng: &world.rng, percent: 40) }
    }

    /// The process stops (crash): nothing is flushed; in-memory state is gone.
    func stop() {
        up = false
        serving = false
        for leader in fetchers.keys.sorted() { fetchers[leader]!.running = false }
        fetchers = [:]
        fetchWaiters = []
        produceWaiters = []
        partitions = [:]
        logManager = nil
    }

    /// Runs `work` every `interval` (plus up to `jitter`) ms while this incarnation lives.
    func every(_ interval: Int64, jitter: Int64 = 0, _ work: @escaping () -> Void) {
        let alive = self.alive
        func tick() {
            guard alive() else { return }
            work()
            world.after(interval + world.random(jitter)) { tick() }
        }
        world.after(interval + world.random(jitter)) { tick() }
    }

    func register() {
        var request = BrokerRegistrationRequest()
        request.brokerId = id
        request.clusterId = SimController.clusterId
        request.incarnationId = KafkaUUID(high: UInt64(id), low: UInt64(incarnation))
        request.listeners = [.init(name: "PLAINTEXT", host: "broker\(id)", port: 9092, securityProtocol: 0)]
        request.features = [.init(name: "metadata.version", minSupportedVersion: 1, maxSupportedVersion: 21)]
        guard let request = world.wire(request, version: 3) else { return }
        world.exchange(from: id, to: ReplicationSimulation.controllerId, label: "BrokerRegistration", timeoutMs: 1_000, senderAlive: alive,
                       handle: { [world] (reply: @escaping (BrokerRegistrationResponse) -> Void) in
                           guard let r = world.wire(world.controller.register(request), version: 3) else { return }
                           reply(r)
                       },
                       completion: { [self] answer in
                           guard let answer, answer.errorCode == 0 else {
                               // No answer, or the old incarnation's session still lives: retry.
                               world.after(100) { [self, alive] in if alive() { register() } }
                               return
                           }
                           brokerEpoch = answer.brokerEpoch
                           world.note("\(id) registered with broker epoch \(answer.brokerEpoch)")
                           publish(image)
                           heartbeat()
                           every(world.options.heartbeatIntervalMs) { [self] in heartbeat() }
                       })
    }

    func heartbeat() {
        var request = BrokerHeartbeatRequest()
        request.brokerId = id
        request.brokerEpoch = brokerEpoch
        request.currentMetadataOffset = image.provenance.lastOffset
        guard let request = world.wire(request, version: 1) else { return }
        world.exchange(from: id, to: ReplicationSimulation.controllerId, label: "BrokerHeartbeat", timeoutMs: 1_000, senderAlive: alive,
                       handle: { [world] (reply: @escaping (BrokerHeartbeatResponse) -> Void) in
                           guard let r = world.wire(world.controller.heartbeat(request), version: 1) else { return }
                           reply(r)
                       },
                       completion: { [self] answer in
                           guard let answer, answer.errorCode == 0 else { return }
                           if !answer.isFenced && !serving { becomeServing() }
                       })
    }

    /// Unfenced: the listeners open and the maintenance thread's periodic work starts.
    func becomeServing() {
        serving = true
        world.note("\(id) unfenced: serving")
        every(world.options.replicaLagTimeMaxMs / 2) { [self] in checkIsr() }
        every(1_000) { [self] in
            do { try logManager?.checkpointHighWatermarks(highWatermarks) } catch { world.fail("broker \(id) high watermark checkpoint: \(error)") }
        }
        every(3_000) { [self] in
            do { try logManager?.checkpoint() } catch { world.fail("broker \(id) checkpoint: \(error)") }
        }
    }

    var highWatermarks: [TopicPartition: Int64] { partitions.mapValues(\.highWatermark) }

    // MARK: metadata

    /// The broker follows the metadata log: a long-polling fetch of the controller's image.
    func pollMetadata() {
        let offset = image.provenance.lastOffset
        world.exchange(from: id, to: ReplicationSimulation.controllerId, label: "MetadataFetch after \(offset)", timeoutMs: 1_000, senderAlive: alive,
                       handle: { [world] (reply: @escaping (MetadataImage?) -> Void) in world.controller.metadataFetch(after: offset, reply: reply) },
                       completion: { [self] answer in
                           if let next = answer ?? nil, next.provenance.lastOffset > image.provenance.lastOffset { publish(next) }
                           if answer == nil {
                               world.after(50) { [self, alive] in if alive() { pollMetadata() } }
                           } else {
                               pollMetadata()
                           }
                       })
    }

    /// Broker.publish: creates and updates local replicas from the image, then points the
    /// fetchers at the partitions followed now.
    func publish(_ next: MetadataImage) {
        // Partitions follow the image once it holds this incarnation's registration (Broker.publish).
        guard brokerEpoch >= 0, Broker.holdsRegistration(next, brokerId: id, brokerEpoch: brokerEpoch) else {
            image = next
            durableImage = next
            return
        }
        for name in next.topicNames {
            guard let topic = next.topic(named: name) else { continue }
            for index in topic.partitions.keys.sorted() {
                let registration = topic.partitions[index]!
                let tp = TopicPartition(name, index)
                guard registration.replicas.contains(id) else { continue }
                if let existing = partitions[tp] {
                    let transition = existing.update(registration, nowMs: now)
                    if transition != .none { world.note("\(id) \(tp): \(transition) (leader \(registration.leader) epoch \(registration.leaderEpoch) isr \(registration.isr)) leo \(existing.log.logEndOffset) hw \(existing.highWatermark)") }
                    continue
                }
                do {
                    let log = try logManager!.getOrCreate(tp, topicId: topic.id, config: logConfig, nowMs: now)
                    let partition = Partition(
                        topicPartition: tp, topicId: topic.id, log: log, registration: registration, localId: id,
                        highWatermark: logManager!.checkpointedHighWatermark(tp) ?? 0, nowMs: now, onHighWatermark: { _ in })
                    partitions[tp] = partition
                    world.note("\(id) \(tp): opened as \(partition.isLeader ? "leader" : "follower") (leader \(registration.leader) epoch \(registration.leaderEpoch) isr \(registration.isr)) leo \(log.logEndOffset) hw \(partition.highWatermark)")
                } catch {
                    world.fail("broker \(id) cannot open the log of \(tp): \(error)")
                }
            }
        }
        image = next
        durableImage = next
        reconcileFetchers()
    }

    // MARK: ISR changes

    /// Broker.checkIsr: the periodic check of the partitions this broker leads.
    func checkIsr() {
        let image = self.image
        let live = Broker.isrEligibility(image)
        for tp in partitions.keys.sorted() {
            let partition = partitions[tp]!
            if let proposal = partition.isrCheck(nowMs: now, lagTimeMaxMs: world.options.replicaLagTimeMaxMs, eligibility: live) {
                proposeIsr(partition, proposal, image: image)
            }
        }
    }

    /// Broker.proposeIsr: AlterPartition to the controller; the answer (or its absence) goes to
    /// the partition.
    func proposeIsr(_ partition: Partition, _ proposal: IsrProposal, image: MetadataImage) {
        var data = AlterPartitionRequest.PartitionData()
        data.partitionIndex = partition.topicPartition.partition
        data.leaderEpoch = proposal.leaderEpoch
        data.partitionEpoch = proposal.partitionEpoch
        data.newIsrWithEpochs = zip(proposal.isr, proposal.brokerEpochs).map { member, epoch in
            .init(brokerId: member, brokerEpoch: member == id ? brokerEpoch : epoch)
        }
        var request = AlterPartitionRequest()
        request.brokerId = id
        request.brokerEpoch = brokerEpoch
        request.topics = [.init(topicName: partition.topicPartition.topic, topicId: partition.topicId, partitions: [data])]
        guard let request = world.wire(request, version: 3) else { return }
        let label = "AlterPartition \(partition.topicPartition) isr \(proposal.isr) epochs \(proposal.leaderEpoch)/\(proposal.partitionEpoch)"
        world.note("\(id) proposes \(label)")
        world.exchange(from: id, to: ReplicationSimulation.controllerId, label: label, timeoutMs: world.options.controllerRequestTimeoutMs, senderAlive: alive,
                       handle: { [world] (reply: @escaping (AlterPartitionResponse) -> Void) in
                           guard let r = world.wire(world.controller.alterPartition(request, version: 3), version: 3) else { return }
                           reply(r)
                       },
                       completion: { [self] response in
                           var answer: AlterPartitionResponse.PartitionData?
                           if let response {
                               answer = response.topics.first?.partitions.first
                               if response.errorCode != 0 { answer = nil }
                           }
                           world.note("\(id) \(label): \(response == nil ? "no answer" : "answer \(ErrorCode(answer?.errorCode ?? response!.errorCode)) isr \(answer?.isr ?? []) epoch \(answer?.partitionEpoch ?? -1)")")
                           partition.isrProposalAnswered(proposal, result: answer, nowMs: now)
                       })
    }

    // MARK: follower side (ReplicaFetchers)

    /// ReplicaFetchers.reconcile: one fetcher per leader broker.
    func reconcileFetchers() {
        var byLeader: [Int32: [TopicPartition: Partition]] = [:]
        for tp in partitions.keys.sorted() {
            guard let position = partitions[tp]!.fetchPosition else { continue }
            byLeader[position.leader, default: [:]][tp] = partitions[tp]!
        }
        var started: [SimFetcher] = []
        for leader in fetchers.keys.sorted() where byLeader[leader] == nil {
            fetchers[leader]!.running = false
            fetchers.removeValue(forKey: leader)
        }
        for leader in byLeader.keys.sorted() {
            if let fetcher = fetchers[leader] {
                fetcher.assign(byLeader[leader]!)
            } else {
                let fetcher = SimFetcher(leaderId: leader)
                fetcher.assign(byLeader[leader]!)
                fetchers[leader] = fetcher
                started.append(fetcher)
            }
        }
        for fetcher in started { fetcher.running = true }
        for leader in fetchers.keys.sorted() { wake(fetchers[leader]!) }
    }

    func wake(_ fetcher: SimFetcher) {
        world.after(0) { [self, alive] in if alive() { fetchOnce(fetcher) } }
    }

    /// ReplicaFetcher.fetchOnce: one Fetch for every partition followed from this leader.
    func fetchOnce(_ fetcher: SimFetcher) {
        guard fetcher.running, !fetcher.inFlight else { return }
        let plan = ReplicaFetchPlan(leaderId: fetcher.leaderId, localId: id, brokerEpoch: brokerEpoch, partitions: fetcher.partitions,
                                    delayedUntil: fetcher.delayedUntil, nowMs: now, settings: fetchSettings)
        let positions = plan.positions
        if positions.isEmpty {
            if let wakeAt = plan.wakeAt {
                world.after(max(1, wakeAt - now)) { [self, alive] in if alive() { fetchOnce(fetcher) } }
            }
            return
        }
        fetcher.inFlight = true
        guard let request = world.wire(plan.request, version: ReplicaFetchPlan.version) else { return }
        let leaderId = fetcher.leaderId
        let label = world.options.streamTrace
            ? "Fetch " + positions.keys.sorted().map { "\($0) @\(positions[$0]!.1.fetchOffset) last epoch \(positions[$0]!.1.lastFetchedEpoch) epoch \(positions[$0]!.1.leaderEpoch)" }.joined(separator: ", ")
            : "Fetch"
        let timeout = Int64(fetchSettings.waitMaxMs) + fetchSettings.socketTimeoutMs
        world.exchange(from: id, to: leaderId, label: label, timeoutMs: timeout, senderAlive: alive,
                       handle: { [world] (reply: @escaping (FetchResponse) -> Void) in
                           world.brokers[leaderId]!.handleFetch(request, version: ReplicaFetchPlan.version, reply: reply)
                       },
                       completion: { [self] response in
                           var backoff = false
                           if let response {
                               if response.errorCode != 0 {
                                   backoff = true
                               } else {
                                   apply(response, plan: plan, fetcher: fetcher)
                               }
                           } else {
                               backoff = true
                           }
                           fetcher.inFlight = false
                           if backoff {
                               world.after(fetchSettings.backoffMs) { [self, alive] in if alive() { fetchOnce(fetcher) } }
                           } else {
                               fetchOnce(fetcher)
                           }
                       })
    }

    /// ReplicaFetcher.apply: each partition's answer to its `Partition`.
    func apply(_ response: FetchResponse, plan: ReplicaFetchPlan, fetcher: SimFetcher) {
        for (tp, partition, position, answer) in plan.answers(response) {
            var data = answer
            if world.options.broken.contains(.ignoreDivergingEpoch) {
                data.divergingEpoch = .init()
            }
            let before = partition.log.logEndOffset
            do {
                switch try partition.applyFetched(data, position: position, nowMs: now) {
                case .failed(let code):
                    world.note("\(id) \(tp) fetch from \(fetcher.leaderId): \(code)")
                    fetcher.delayedUntil[tp] = now + ReplicaFetchPlan.retryDelayMs(after: code, settings: fetchSettings)
                case .truncated:
                    world.stats.truncations += 1
                    world.note("\(id) \(tp) truncated \(before) -> \(partition.log.logStartOffset)..<\(partition.log.logEndOffset) to match leader \(fetcher.leaderId) (diverging \(data.divergingEpoch.epoch)@\(data.divergingEpoch.endOffset), error \(ErrorCode(data.errorCode)))")
                case .appended:
                    if world.options.streamTrace { world.note("\(id) \(tp) appended \(before)..<\(partition.log.logEndOffset) hw \(partition.highWatermark)") }
                case .idle, .stale:
                    break
                }
            } catch {
                world.note("\(id) \(tp) fetch from \(fetcher.leaderId) could not be written: \(error)")
                fetcher.delayedUntil[tp] = now + fetchSettings.backoffMs
            }
        }
    }

    // MARK: leader side (Broker+Fetch)

    typealias FetchTarget = Broker.FetchTarget

    /// A fetch parked until it can be answered (FetchPurgatory).
    struct FetchWaiter {
        var deadline: Int64
        var skeleton: FetchResponse
        var targets: [FetchTarget]
        var minBytes: Int64
        var maxBytes: Int
        var replicaId: Int32
        var replicaEpoch: Int64
        var reply: (FetchResponse) -> Void
    }

    /// Broker.fetch for a follower or a consumer.
    func handleFetch(_ request: FetchRequest, version: Int16, reply: @escaping (FetchResponse) -> Void) {
        let respond: (FetchResponse) -> Void = { [world] response in
            if let r = world.wire(response, version: version) { reply(r) }
        }
        var skeleton = FetchResponse()
        if request.sessionId != 0 {
            skeleton.errorCode = ErrorCode.fetchSessionIdNotFound.rawValue
            return respond(skeleton)
        }
        let targets = Broker.fetchTargets(request, version: version, image: image, skeleton: &skeleton)
        let maxWait = Int64(min(max(request.maxWaitMs, 0), Limits.fetchWaitMsMax))
        let minBytes = Int64(max(request.minBytes, 0))
        let maxBytes = Int(min(Int64(max(request.maxBytes, 0)), Int64(Self.fetchMaxBytes)))
        let replicaId = version >= 15 ? request.replicaState.replicaId : request.replicaId
        let replicaEpoch = version >= 15 ? request.replicaState.replicaEpoch : -1
        let first = readFetch(skeleton, targets: targets, maxBytes: maxBytes, replicaId: replicaId, replicaEpoch: replicaEpoch)
        if first.bytes >= minBytes || maxWait == 0 || first.hasError || targets.isEmpty {
            return respond(first.response)
        }
        fetchWaiters.append(FetchWaiter(deadline: now + maxWait, skeleton: skeleton, targets: targets,
                                        minBytes: minBytes, maxBytes: maxBytes, replicaId: replicaId, replicaEpoch: replicaEpoch, reply: respond))
        // An event at the deadline, so the waiter expires on time.
        world.after(maxWait) {}
    }

    /// Whether a parked fetch can answer now: the broker's own decision (Broker.fetchReady).
    func ready(_ waiter: FetchWaiter) -> Bool {
        Broker.fetchReady(waiter.targets, replicaId: waiter.replicaId, minBytes: waiter.minBytes) { partitions[$0] }
    }

    /// The broker's own fetch read (Broker.readFetch) on this broker's partitions, clock and
    /// image: every target read, the byte budget honoured; a follower's fetch also records its
    /// position at the leader (and may propose an ISR expansion).
    func readFetch(_ skeleton: FetchResponse, targets: [FetchTarget], maxBytes: Int, replicaId: Int32, replicaEpoch: Int64) -> (response: FetchResponse, bytes: Int64, hasError: Bool) {
        let environment = Broker.FetchReadEnvironment(
            localId: id, image: image, nowMs: now, replicaLagTimeMaxMs: world.options.replicaLagTimeMaxMs,
            partition: { [self] in partitions[$0] },
            proposeIsr: { [self] in proposeIsr($0, $1, image: $2) },
            readFailed: { [self] tp, error in world.note("\(id) fetch from \(tp) failed: \(error)") })
        return Broker.readFetch(skeleton, targets: targets, maxBytes: maxBytes, replicaId: replicaId, replicaEpoch: replicaEpoch,
                                environment: environment)
    }

    // MARK: leader side (Broker+Produce)

    /// An acks=all produce waiting for the high watermark (the produce purgatory).
    struct ProduceWaiter {
        var deadline: Int64
        var response: ProduceResponse
        var waits: [(topic: Int, partition: Int, partitionRef: Partition, required: Int64, minInsync: Int)]
        var reply: (ProduceResponse) -> Void
    }

    /// Broker.produce.
    func handleProduce(_ request: ProduceRequest, version: Int16, reply: @escaping (ProduceResponse) -> Void) {
        let respond: (ProduceResponse) -> Void = { [world] response in
            if let r = world.wire(response, version: version) { reply(r) }
        }
        let acks = request.acks
        var response = ProduceResponse()
        var waits: [(topic: Int, partition: Int, partitionRef: Partition, required: Int64, minInsync: Int)] = []
        let minInsync = 1
        for topicData in request.topicData {
            var topicResponse = ProduceResponse.TopicProduceResponse(name: topicData.name)
            for data in topicData.partitionData {
                var p = ProduceResponse.PartitionProduceResponse(index: data.index, errorCode: 0, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1)
                func fail(_ code: ErrorCode, _ message: String? = nil) {
                    p.errorCode = code.rawValue
                    if version >= 8 { p.errorMessage = message }
                }
                let tp = TopicPartition(topicData.name, data.index)
                guard acks == 0 || acks == 1 || acks == -1 else {
                    fail(.invalidRequiredAcks)
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                guard let partition = partitions[tp] else {
                    fail(image.topic(named: tp.topic) == nil ? .unknownTopicOrPartition : .notLeaderOrFollower)
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                guard let records = data.records?.bytes, records.readableBytes > 0 else {
                    fail(.invalidRecord, "The produce request carries no record batch.")
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                switch RecordBatches.validate(records, maxBatchBytes: partition.log.config.maxMessageBytes) {
                case .failure(let problem):
                    fail(problem.code, problem.reason)
                case .success(let batches):
                    do {
                        let minISR = Int(image.configs(of: .init(.topic, tp.topic))["min.insync.replicas"].flatMap { Int($0) } ?? minInsync)
                        switch try partition.appendAsLeader(records, batches: batches, requiredAcks: acks, minInsyncReplicas: minISR, nowMs: now) {
                        case .success(let info):
                            p.baseOffset = info.firstOffset
                            p.logAppendTimeMs = info.logAppendTime
                            p.logStartOffset = partition.log.logStartOffset
                            world.note("\(id) \(tp) appended \(info.firstOffset)...\(info.lastOffset)\(info.duplicate ? " (retry: already in the log)" : "") for producer \(batches[0].header.producerId) seq \(batches[0].header.baseSequence), isr \(partition.isr) hw \(partition.highWatermark)")
                            if acks == -1 && !world.options.broken.contains(.ackBeforeHighWatermark) {
                                switch partition.acksAllStatus(requiredOffset: info.lastOffset + 1, minInsyncReplicas: minISR) {
                                case nil:
                                    waits.append((response.responses.count, topicResponse.partitionResponses.count, partition, info.lastOffset + 1, minISR))
                                case let code? where code != .none:
                                    fail(code)
                                default:
                                    break
                                }
                            }
                        case .failure(let code):
                            fail(code)
                        }
                    } catch let error as ProducerStateError {
                        fail(error.code, error.reason)
                    } catch {
                        world.note("\(id) append to \(tp) failed: \(error)")
                        fail(.kafkaStorageError, "The broker could not write to its log.")
                    }
                }
                topicResponse.partitionResponses.append(p)
            }
            response.responses.append(topicResponse)
        }
        if acks == 0 { return }
        if waits.isEmpty { return respond(response) }
        let timeout = Int64(max(0, request.timeoutMs))
        produceWaiters.append(ProduceWaiter(deadline: now + timeout, response: response, waits: waits, reply: respond))
        world.after(timeout) {}
    }

    /// The purgatories' check after an event: completes waiters that can be answered or expired.
    func completeWaiters() {
        guard up else { return }
        if !fetchWaiters.isEmpty {
            var keep: [FetchWaiter] = []
            var done: [FetchWaiter] = []
            for waiter in fetchWaiters {
                if now >= waiter.deadline || ready(waiter) { done.append(waiter) } else { keep.append(waiter) }
            }
            fetchWaiters = keep
            for waiter in done {
                let result = readFetch(waiter.skeleton, targets: waiter.targets, maxBytes: waiter.maxBytes, replicaId: waiter.replicaId,
                                       replicaEpoch: waiter.replicaEpoch)
                waiter.reply(result.response)
            }
        }
        if !produceWaiters.isEmpty {
            var keep: [ProduceWaiter] = []
            var done: [ProduceWaiter] = []
            for waiter in produceWaiters {
                let ready = waiter.waits.allSatisfy { $0.partitionRef.acksAllStatus(requiredOffset: $0.required, minInsyncReplicas: $0.minInsync) != nil }
                if now >= waiter.deadline || ready { done.append(waiter) } else { keep.append(waiter) }
            }
            produceWaiters = keep
            for var waiter in done {
                for w in waiter.waits {
                    let code = w.partitionRef.acksAllStatus(requiredOffset: w.required, minInsyncReplicas: w.minInsync) ?? .requestTimedOut
                    waiter.response.responses[w.topic].partitionResponses[w.partition].errorCode = code.rawValue
                }
                waiter.reply(waiter.response)
            }
        }
    }
}

/// ReplicaFetcher's state: the partitions one leader holds for this broker.
final class SimFetcher {
    let leaderId: Int32
    var partitions: [TopicPartition: Partition] = [:]
    var delayedUntil: [TopicPartition: Int64] = [:]
    var running = false
    var inFlight = false

    init(leaderId: Int32) { self.leaderId = leaderId }

    func assign(_ set: [TopicPartition: Partition]) {
        partitions = set
        delayedUntil = delayedUntil.filter { set[$0.key] != nil }
    }
}
