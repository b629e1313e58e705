import Logging
import NIOCore
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelTransactions
import RunnelWire

/// A rule the transaction simulation breaks on purpose, to prove its checkers catch it (a switch
/// in the real partition code: `TransactionFaults`, `ReplicationFaults`).
public enum TransactionBrokenRule: String, Sendable, CaseIterable {
    /// A partition writes transaction markers without checking their producer and coordinator
    /// epochs (`TransactionFaults.skipMarkerEpochCheck`).
    case skipMarkerEpochCheck
    /// A read_committed fetch reads up to the high watermark, past the last stable offset
    /// (`ReplicationFaults.fetchPastLastStableOffset`).
    case fetchPastLastStableOffset
}

/// Knobs of a transaction run. Times are virtual milliseconds.
public struct TransactionSimulationOptions: Sendable {
    /// Test-only broken rules (the simulation must catch them).
    public var broken: Set<TransactionBrokenRule> = []
    /// Events with faults on; then faults stop and every transaction must end.
    public var events = 3_000
    /// Transactional ids, each with one producer instance at a time (plus zombies).
    public var transactionalIds = 3
    /// Partitions of the data topic, each led by a broker of its own.
    public var partitions = 3
    /// read_committed readers.
    public var readers = 2
    public var lossPercent: UInt64 = 3
    public var maxDelayMs: Int64 = 30
    /// Chance per event (in tenths of a percent) that a fault is injected.
    public var faultPerMille: UInt64 = 12
    /// Chance (percent) that a marker is delayed by up to `markerDelayMaxMs`, past its request's
    /// timeout, and that a marker is delivered a second time later on.
    public var markerDelayPercent: UInt64 = 10
    public var markerDuplicatePercent: UInt64 = 5
    public var markerDelayMaxMs: Int64 = 3_000
    /// The producers' `transaction.timeout.ms`.
    public var transactionTimeoutMs: Int32 = 3_000
    /// How much longer than its timeout a transaction may stay open (on the coordinator or on a
    /// partition) under faults before the checker calls it hanging.
    public var openBoundMs: Int64 = 12_000
    /// How long a write to `__transaction_state` takes to be replicated (acks=all).
    public var writeDelayMs: Int64 = 40
    /// How long a new coordinator spends before loading `__transaction_state`.
    public var loadDelayMs: Int64 = 200
    /// How long a crashed data broker stays down.
    public var brokerDownMs: Int64 = 800
    /// A client (and the coordinator's marker sender) gives up on a request after this long.
    public var requestTimeoutMs: Int64 = 1_000
    public var trace = false
    public var streamTrace = false
    public init() {}
}

/// Counters for the summary.
public struct TransactionStats: Sendable {
    public var coordinatorFailovers = 0
    public var brokerCrashes = 0
    public var zombies = 0
    public var commitsAcknowledged = 0
    public var abortsAcknowledged = 0
    public var markersLost = 0
    public var markersDelayed = 0
    public var markersDuplicated = 0
    public var markersRefused = 0
    public var recordsRead = 0
    public init() {}

    public mutating func add(_ other: TransactionStats) {
        coordinatorFailovers += other.coordinatorFailovers
        brokerCrashes += other.brokerCrashes
        zombies += other.zombies
        commitsAcknowledged += other.commitsAcknowledged
        abortsAcknowledged += other.abortsAcknowledged
        markersLost += other.markersLost
        markersDelayed += other.markersDelayed
        markersDuplicated += other.markersDuplicated
        markersRefused += other.markersRefused
        recordsRead += other.recordsRead
    }
}

/// Transactions under the simulator: the real `TransactionHost` (its request handlers, the
/// `TransactionCoordinator` it runs, its writes to `__transaction_state`, its markers and
/// timers) on a `SimEventLoop`, over a simulated `__transaction_state` partition (a real
/// `Partition` on a simulated disk) whose writes take time to replicate and are lost when the
/// coordinator fails over (the new one bumps the partition's leader epoch, which is the
/// coordinator epoch, and loads what was written); data partitions that are real `Partition`s
/// (producer state, KIP-890 verification, marker checks, last stable offset, aborted-transaction
/// index) each on a broker that crashes and recovers its log from disk; markers that are lost,
/// delayed past their request's timeout and duplicated; transactional producers (transactions
/// v2: AddPartitionsToTxn, verified produce, EndTxn v5), zombies fenced by a newer instance that
/// keep writing, and read_committed readers that filter aborted transactions as Kafka's consumer
/// does. Requests and answers go through the real codecs.
///
/// Checked from the history: a read_committed reader never sees a record of a transaction the
/// coordinator has not durably decided to commit (so neither aborted nor open ones); the last
/// stable offset readers are told never goes back; no transaction stays open (on the
/// coordinator or on a partition) past its timeout plus `openBoundMs`; after healing, a
/// transaction is visible on all its partitions or none, exactly the committed ones are, every
/// acknowledged commit is, and nothing a fenced producer sent after it was fenced is.
public final class TransactionSimulation: @unchecked Sendable {
    public let seed: UInt64
    public let options: TransactionSimulationOptions
    var rng: SeededRandom
    public internal(set) var events = 0
    public internal(set) var trace: [String] = []
    public internal(set) var stats = TransactionStats()
    var failure: SimulationFailure?
    let scheduler = SimScheduler()
    static let topic = "t"
    static let topicId = KafkaUUID(high: 0x7478_6e, low: 0x7478_6e)
    static let stateTopicId = KafkaUUID(high: 0x5453, low: 0x5453)

    // The coordinator (a new TransactionHost after each failover).
    var host: TransactionHost!
    var hostLoop: SimEventLoop!
    var coordinatorIncarnation = 0
    /// The leader epoch of `__transaction_state-0`: the coordinator epoch.
    var coordinatorEpoch: Int32 = 0
    var loaded = false
    let stateDisk = SimDisk()
    var statePartition: Partition!
    var lastWriteCompletesAt: Int64 = 0
    var nextProducerIdBlock: Int64 = 1_000
    var settings = TransactionSettings()

    var brokers: [SimTxnBroker] = []
    var producers: [SimTxnProducer] = []
    var readers: [SimTxnReader] = []
    var nextInstance = 0

    // What the checkers know.
    /// Transactions (producer instance and ordinal) whose PrepareCommit was durably written.
    var committedDecided: Set<String> = []
    /// Transactions whose commit the client was told of.
    var commitAcknowledged: Set<String> = []
    /// When each producer instance was fenced by a newer instance of its transactional id.
    var fencedAtMs: [String: Int64] = [:]
    /// The highest last stable offset readers were told, per partition.
    var lastStableSeen: [Int32: Int64] = [:]
    /// Per partition: the first unstable offset and since when.
    var unstableSince: [Int32: (offset: Int64, sinceMs: Int64)] = [:]

    public init(seed: UInt64, options: TransactionSimulationOptions = TransactionSimulationOptions()) {
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        settings.stateTopicPartitions = 1
        settings.abortTimedOutTransactionsIntervalMs = 200
        let tp = TopicPartition(TransactionLog.topicName, 0)
        do {
            let log = try PartitionLog(
                topicPartition: tp, directory: "/txnstate", config: LogConfig(), disk: stateDisk,
                nowMs: SimClock.wallEpochMs)
            statePartition = Partition(
                topicPartition: tp, topicId: Self.stateTopicId, log: log,
                registration: PartitionRegistration(
                    replicas: [100], isr: [100], leader: 100, leaderEpoch: 0, partitionEpoch: 0),
                localId: 100, highWatermark: 0, nowMs: 0, onActions: { _, _ in })
        } catch {
            fail("cannot open \(TransactionLog.topicName)-0: \(error)")
        }
        for p in 0..<Int32(options.partitions) {
            let broker = SimTxnBroker(partition: p, world: self)
            brokers.append(broker)
            broker.start()
        }
        startCoordinator(loadAfterMs: 0)
        for i in 0..<options.transactionalIds { startProducer(transactionalId: "tx-\(i)") }
        for i in 0..<options.readers {
            let r = SimTxnReader(name: "r\(i)", world: self)
            readers.append(r)
            r.start()
        }
    }

    public var now: Int64 { scheduler.nowMs }
    var clock: SimClock { SimClock(scheduler: scheduler) }
    var healing: Bool { events >= options.events }

    /// A stable digest of the run (its trace when tracing), to show a seed replays exactly.
    public var fingerprint: String {
        "events \(events) t=\(now) committed \(committedDecided.count) acknowledged \(commitAcknowledged.count) "
            + brokers.map { "p\($0.partition)@\($0.partition_?.log.logEndOffset ?? -1)" }.joined(separator: " ")
    }

    // MARK: the coordinator

    /// A new coordinator: a real TransactionHost on a loop of its own, which becomes the leader of
    /// `__transaction_state-0` at the next epoch (and loads it) after `loadAfterMs`.
    func startCoordinator(loadAfterMs: Int64) {
        coordinatorIncarnation += 1
        coordinatorEpoch += 1
        loaded = false
        let incarnation = coordinatorIncarnation
        let epoch = coordinatorEpoch
        statePartition.update(
            PartitionRegistration(replicas: [100], isr: [100], leader: 100, leaderEpoch: epoch, partitionEpoch: epoch),
            nowMs: now)
        let loop = SimEventLoop(scheduler: scheduler, name: "coordinator#\(incarnation)")
        hostLoop = loop
        let logger = SimLogHandler.logger("coordinator", tracing: options.trace) { [unowned self] line in note(line) }
        let partition = statePartition!
        let host = TransactionHost(
            settings: settings, clock: clock, logger: logger, partition: { _ in partition },
            appendRecords: { [unowned self] entries, _, _, loop in
                writeState(entries, incarnation: incarnation, on: loop)
            },
            sendMarkers: { [unowned self] markers, loop in sendMarkers(markers, incarnation: incarnation, on: loop) },
            allocateProducerIds: { [unowned self] loop in
                let start = nextProducerIdBlock
                nextProducerIdBlock += 100
                return loop.makeSucceededFuture((start: start, count: 100))
            })
        host.stateTopicPartitionsChanged(1)
        self.host = host
        loop.schedule(afterMs: loadAfterMs) { [unowned self] in
            guard incarnation == coordinatorIncarnation else { return }
            host.leadershipChanged(leading: [0: epoch], on: loop)
            loop.schedule(afterMs: 0) { [unowned self] in
                guard incarnation == coordinatorIncarnation else { return }
                loaded = true
                note("coordinator #\(incarnation) loaded at coordinator epoch \(epoch)")
            }
        }
    }

    /// The coordinator's broker dies: writes in flight are lost, parked requests never
    /// answered, markers already on the network still arrive; a new coordinator loads what was
    /// replicated.
    func failover() {
        stats.coordinatorFailovers += 1
        hostLoop.kill()
        SimGraveyard.keep([host as Any, hostLoop as Any])
        startCoordinator(loadAfterMs: options.loadDelayMs)
        note(
            "coordinator fails over to #\(coordinatorIncarnation) at epoch \(coordinatorEpoch) (\(statePartition.log.logEndOffset) records written)"
        )
    }

    /// The TransactionHost's append path: a write to `__transaction_state` is replicated after a
    /// while (in log order), then appended; a coordinator that failed over meanwhile never hears
    /// back and its write is lost.
    func writeState(
        _ entries: [(TopicPartition, ByteBuffer?)], incarnation: Int, on loop: any EventLoop
    )
        -> AppendOutcome
    {
        let promise = loop.makePromise(of: [PartitionAppendResult].self)
        let delay =
            options.writeDelayMs / 2 + random(options.writeDelayMs)
            + (random(10) == 0 ? random(options.writeDelayMs * 10) : 0)
        let completes = max(now + delay, lastWriteCompletesAt)
        lastWriteCompletesAt = completes
        let box = UncheckedBox(promise)
        let epoch = coordinatorEpoch
        after(completes - now) { [self] in
            guard incarnation == coordinatorIncarnation else {
                SimGraveyard.keep(box)
                return
            }
            var results: [PartitionAppendResult] = []
            for (_, batch) in entries {
                guard let batch, case .success(let infos) = RecordBatches.validate(batch, maxBatchBytes: Int(Int32.max))
                else {
                    results.append(PartitionAppendResult(error: .corruptMessage))
                    continue
                }
                do {
                    let info = try statePartition.log.appendAsLeader(
                        batch, batches: infos, leaderEpoch: epoch, nowMs: clock.wallMs(), origin: .coordinator)
                    stateWritten(batch)
                    var result = PartitionAppendResult()
                    result.baseOffset = info.firstOffset
                    results.append(result)
                } catch {
                    fail("cannot write \(TransactionLog.topicName): \(error)")
                    results.append(PartitionAppendResult(error: .kafkaStorageError))
                }
            }
            hostLoop.schedule(afterMs: 0) { box.value.succeed(results) }
        }
        return .waiting(promise.futureResult)
    }

    /// A `__transaction_state` record is durable: a PrepareCommit decides its transaction.
    func stateWritten(_ batch: ByteBuffer) {
        guard let decoded = try? RecordBatches.decode(batch) else { return fail("an unreadable state batch") }
        for b in decoded {
            for record in b.records {
                guard let key = record.key, let r = try? TransactionLog.decodeRecord(key: key, value: record.value),
                    let m = r.value
                else { continue }
                note("state: \(m)")
                guard m.state == .prepareCommit else { continue }
                // The producer that asked: the live instance of this id ending a transaction at
                // the epoch the record carries (TV2 bumps it by one at prepare).
                let asking = producers.filter {
                    $0.transactionalId == m.transactionalId && $0.producerId == m.producerId
                        && ($0.epoch == m.producerEpoch || $0.epoch + 1 == m.producerEpoch) && $0.ending == true
                }
                guard asking.count == 1 else {
                    return fail(
                        "PrepareCommit of \(m.transactionalId) epoch \(m.producerEpoch) matches \(asking.count) producers ending a commit"
                    )
                }
                let transaction = asking[0].transactionKey
                if !committedDecided.contains(transaction) { note("decided: commit \(transaction)") }
                committedDecided.insert(transaction)
            }
        }
    }

    // MARK: markers

    /// Sends each partition's marker over the network: it may be lost, delayed past the
    /// request's timeout (REQUEST_TIMED_OUT, and the coordinator sends it again while the first
    /// is still on its way), or delivered twice; the answer may be lost.
    func sendMarkers(
        _ markers: TransactionMarkers, incarnation: Int, on loop: any EventLoop
    )
        -> EventLoopFuture<[TopicPartition: ErrorCode]>
    {
        let promise = loop.makePromise(of: [TopicPartition: ErrorCode].self)
        let box = UncheckedBox(promise)
        var answers: [TopicPartition: ErrorCode] = [:]
        note("markers sent by coordinator #\(incarnation): \(markers)")
        for tp in markers.partitions {
            var answered = false
            func answer(_ code: ErrorCode) {
                guard !answered else { return }
                answered = true
                answers[tp] = code
                if answers.count == markers.partitions.count {
                    let all = answers
                    if let sim = loop as? SimEventLoop, !sim.alive {
                        SimGraveyard.keep(box)
                        return
                    }
                    loop.execute { box.value.succeed(all) }
                }
            }
            after(options.requestTimeoutMs) { answer(.requestTimedOut) }
            if !healing && rng.next() % 100 < options.lossPercent {
                stats.markersLost += 1
                continue
            }
            var delay = 1 + random(options.maxDelayMs)
            if !healing && rng.next() % 100 < options.markerDelayPercent {
                stats.markersDelayed += 1
                delay += random(options.markerDelayMaxMs)
            }
            after(delay) { [self] in
                let code = writeMarker(markers, tp)
                guard healing || rng.next() % 100 >= options.lossPercent else { return }
                after(1 + random(options.maxDelayMs)) { answer(code) }
            }
            if !healing && rng.next() % 100 < options.markerDuplicatePercent {
                stats.markersDuplicated += 1
                after(delay + random(options.markerDelayMaxMs)) { [self] in _ = writeMarker(markers, tp) }
            }
        }
        return promise.futureResult
    }

    /// The partition leader's side of WriteTxnMarkers: the real marker append.
    func writeMarker(_ markers: TransactionMarkers, _ tp: TopicPartition) -> ErrorCode {
        guard let partition = brokers[Int(tp.partition)].partition_ else { return .notLeaderOrFollower }
        let marker = EndTransactionMarker(
            committed: markers.result == .commit, coordinatorEpoch: markers.coordinatorEpoch)
        let code: ErrorCode
        do {
            switch try partition.appendTransactionMarker(
                producerId: markers.producerId, producerEpoch: markers.producerEpoch, marker,
                transactionVersion: markers.transactionVersion.rawValue, nowMs: clock.wallMs(), monotonicMs: now)
            {
            case .failure(let c): code = c
            case .success: code = .none
            }
        } catch let error as ProducerStateError {
            stats.markersRefused += 1
            code = error.code
        } catch {
            fail("writing a marker to \(tp) failed: \(error)")
            code = .kafkaStorageError
        }
        note(
            "\(tp) marker \(markers.result) producer \(markers.producerId) epoch \(markers.producerEpoch) coordinator-epoch \(markers.coordinatorEpoch): \(code)"
        )
        return code
    }

    // MARK: producers

    @discardableResult
    func startProducer(transactionalId: String) -> SimTxnProducer {
        nextInstance += 1
        let p = SimTxnProducer(name: "p\(nextInstance)", transactionalId: transactionalId, world: self)
        producers.append(p)
        note("\(p.name) starts as \(transactionalId)")
        p.start()
        return p
    }

    /// An InitProducerId was answered: every older instance of the id is fenced from now on.
    func initialized(_ producer: SimTxnProducer) {
        for other in producers
        where other !== producer && other.transactionalId == producer.transactionalId
            && fencedAtMs[other.name] == nil && other.instance < producer.instance
        {
            fencedAtMs[other.name] = now
            note("\(other.name) is fenced by \(producer.name)")
        }
    }

    /// A produce reaches partition `p`'s leader: the broker's transactional produce path
    /// (KIP-890 part 1: a batch that would open a transaction here is appended only once the
    /// coordinator confirms the partition is in it) over the real partition and coordinator.
    func produce(
        _ batch: ByteBuffer, to p: Int32, transactionalId: String, answer: @escaping (ErrorCode) -> Void
    ) {
        guard let partition = brokers[Int(p)].partition_,
            let header = RecordBatchHeader(batch, at: batch.readerIndex),
            case .success(let infos) = RecordBatches.validate(batch, maxBatchBytes: Int(Int32.max))
        else { return answer(.notLeaderOrFollower) }
        let tp = TopicPartition(Self.topic, p)
        let guardToken = partition.log.startTransactionVerification(
            producerId: header.producerId, epoch: header.producerEpoch, nowMs: clock.wallMs())
        func append() {
            // The broker may have crashed while the coordinator was asked.
            guard let current = brokers[Int(p)].partition_, current === partition else {
                return answer(.notLeaderOrFollower)
            }
            do {
                switch try partition.appendAsLeader(
                    batch, batches: infos, requiredAcks: -1, minInsyncReplicas: 1, nowMs: clock.wallMs(),
                    monotonicMs: now, origin: .client, verification: .verified(guardToken))
                {
                case .failure(let code): answer(code)
                case .success(let info):
                    note(
                        "\(tp) appended producer \(header.producerId) epoch \(header.producerEpoch) at \(info.firstOffset)"
                    )
                    answer(.none)
                }
            } catch let error as ProducerStateError {
                answer(error.code)
            } catch {
                fail("appending to \(tp) failed: \(error)")
            }
        }
        guard guardToken != nil else { return append() }
        // Ask the coordinator (AddPartitionsToTxn v4, verify only) over the network.
        after(1 + random(options.maxDelayMs)) { [self] in
            hostLoop.schedule(afterMs: 0) { [self] in
                let verdict =
                    host.read {
                        $0.verifyPartitions(
                            transactionalId: transactionalId, producerId: header.producerId,
                            producerEpoch: header.producerEpoch, [tp])
                    }[tp] ?? .unknownServerError
                after(1 + random(options.maxDelayMs)) {
                    if verdict == .none {
                        append()
                    } else {
                        answer(verdict == .producerFenced ? .invalidProducerEpoch : verdict)
                    }
                }
            }
        }
    }

    // MARK: run

    public func run() throws {
        while events < options.events {
            step(faults: true)
            if let failure { throw failure }
        }
        note("healing: no more faults or loss")
        let deadline = now + 120_000
        while now < deadline {
            step(faults: false)
            if let failure { throw failure }
            if settled() {
                checkFinal()
                if let failure { throw failure }
                return
            }
        }
        throw SimulationFailure(
            seed: seed, event: events, property: "transactions did not settle 120 s after healing: \(summary())",
            replayFlags: "--transactions")
    }

    func step(faults: Bool) {
        events += 1
        if faults && rng.next() % 1000 < options.faultPerMille { injectFault() }
        if !scheduler.runNext() { fail("nothing left to run") }
        if events % 16 == 0 { checkOpenTransactions() }
    }

    /// Every broker is up, the coordinator loaded and idle, no producer is in a transaction and
    /// no partition has an unstable offset.
    func settled() -> Bool {
        guard loaded, brokers.allSatisfy({ $0.partition_ != nil }) else { return false }
        guard producers.allSatisfy({ !$0.alive || $0.idle }) else { return false }
        let busy = host.read { c in
            c.transactions.values.contains {
                [.ongoing, .prepareCommit, .prepareAbort, .prepareEpochFence].contains($0.metadata.state)
                    || $0.pending != nil
            }
        }
        guard !busy else { return false }
        return brokers.allSatisfy {
            guard let p = $0.partition_ else { return false }
            return p.log.firstUnstableOffset == nil && p.highWatermark == p.log.logEndOffset
        }
    }

    public func summary() -> String {
        let states = host.read { c in
            c.transactions.keys.sorted().map { "\($0) \(c.transactions[$0]!.metadata.state)" }.joined(separator: ", ")
        }
        return
            "coordinator #\(coordinatorIncarnation) epoch \(coordinatorEpoch) \(loaded ? "loaded" : "loading"): [\(states)]; "
            + brokers.map {
                "p\($0.partition): "
                    + ($0.partition_.map { "end \($0.log.logEndOffset) LSO \($0.lastStableOffset)" } ?? "down")
            }.joined(separator: ", ") + "; "
            + producers.filter(\.alive).map { "\($0.name)(\($0.transactionalId)) \($0.phase)" }.joined(separator: ", ")
    }

    // MARK: faults

    func injectFault() {
        let roll = rng.next() % 100
        switch roll {
        case 0..<25:
            failover()
        case 25..<50:
            let b = brokers[Int(rng.next() % UInt64(brokers.count))]
            if b.partition_ != nil { b.crash() }
        case 50..<70:
            // A new instance of an id whose producer is still running: the old one is a zombie.
            let live = producers.filter { $0.alive && !$0.zombie && fencedAtMs[$0.name] == nil }
            guard !live.isEmpty, producers.filter(\.alive).count < options.transactionalIds * 3 else { return }
            let old = live[Int(rng.next() % UInt64(live.count))]
            old.zombie = true
            stats.zombies += 1
            note("\(old.name) becomes a zombie")
            startProducer(transactionalId: old.transactionalId)
        case 70..<85:
            // A producer stalls past its transaction timeout (the coordinator aborts it).
            let live = producers.filter { $0.alive && !$0.zombie }
            guard !live.isEmpty else { return }
            live[Int(rng.next() % UInt64(live.count))].stall()
        default:
            break
        }
    }

    // MARK: helpers

    func note(_ text: @autoclosure () -> String) {
        guard options.trace else { return }
        let line = "t=\(now) #\(events) \(text())"
        if options.streamTrace { print(line) }
        trace.append(line)
    }

    func fail(_ property: String) {
        if failure == nil {
            note("FAILED: \(property)")
            failure = SimulationFailure(
                seed: seed, event: events, property: property,
                replayFlags: (["--transactions"] + options.broken.map { "--broken \($0.rawValue)" }.sorted())
                    .joined(separator: " "))
        }
    }

    func after(_ delayMs: Int64, _ work: @escaping () -> Void) { scheduler.push(atMs: now + max(delayMs, 0), work) }
    func random(_ bound: Int64) -> Int64 { bound <= 0 ? 0 : Int64(rng.next() % UInt64(bound)) }

    var context: RequestContext {
        RequestContext(
            connectionId: 0, remoteAddress: nil, listener: "PLAINTEXT", eventLoop: hostLoop,
            allocator: ByteBufferAllocator())
    }

    /// Delivers a request to the coordinator after a network delay (or loses it).
    func send(_ body: @escaping () -> Void) {
        guard healing || rng.next() % 100 >= options.lossPercent else { return }
        after(1 + random(options.maxDelayMs)) { [self] in
            hostLoop.schedule(afterMs: 0, body)
        }
    }

    /// Delivers an answer after a network delay (or loses it).
    func reply(_ body: @escaping () -> Void) {
        guard healing || rng.next() % 100 >= options.lossPercent else { return }
        after(1 + random(options.maxDelayMs), body)
    }

    /// Runs one of the coordinator's request handlers and hands the decoded answer to
    /// `answered` when it answers, through the real codecs.
    func request<Response: ResponseMessage>(
        _ outcome: RequestOutcome, as: Response.Type, version: Int16, answered: @escaping (Response) -> Void
    ) {
        func decode(_ response: OutgoingResponse) {
            var bytes = ByteBuffer()
            for part in response.parts {
                guard case .byteBuffer(var b) = part else { return fail("the coordinator answered with a file region") }
                bytes.writeBuffer(&b)
            }
            var reader = WireReader(bytes)
            do { answered(try Response(from: &reader, version: version)) } catch {
                fail("the coordinator's \(Response.self) does not decode: \(error)")
            }
        }
        switch outcome {
        case .respondNow(let response): decode(response)
        case .respond(let future):
            let box = UncheckedBox(decode)
            future.whenSuccess { box.value($0) }
        case .noResponse, .noResponseThrottled, .close: break
        }
    }
}

/// The broker leading one data partition: crashes drop the process (the log's bytes stay in the
/// page cache) and a restart recovers the log from disk at the next leader epoch.
final class SimTxnBroker: @unchecked Sendable {
    let partition: Int32
    unowned let world: TransactionSimulation
    let disk = SimDisk()
    /// The replica while the broker runs (nil while it is down).
    var partition_: Partition?
    var leaderEpoch: Int32 = -1
    var highWatermark: Int64 = 0
    var cleanShutdown = true

    init(partition: Int32, world: TransactionSimulation) {
        self.partition = partition
        self.world = world
    }

    var topicPartition: TopicPartition { TopicPartition(TransactionSimulation.topic, partition) }

    func start() {
        leaderEpoch += 1
        let nodeId = partition + 1
        do {
            let log = try PartitionLog(
                topicPartition: topicPartition, directory: "/data/\(topicPartition)", config: LogConfig(), disk: disk,
                nowMs: world.clock.wallMs(), recoveryPoint: 0, cleanShutdown: cleanShutdown)
            var transactionFaults = TransactionFaults()
            transactionFaults.skipMarkerEpochCheck = world.options.broken.contains(.skipMarkerEpochCheck)
            log.transactionFaults = transactionFaults
            var faults = ReplicationFaults()
            faults.fetchPastLastStableOffset = world.options.broken.contains(.fetchPastLastStableOffset)
            partition_ = Partition(
                topicPartition: topicPartition, topicId: TransactionSimulation.topicId, log: log,
                registration: PartitionRegistration(
                    replicas: [nodeId], isr: [nodeId], leader: nodeId, leaderEpoch: leaderEpoch,
                    partitionEpoch: leaderEpoch),
                localId: nodeId, highWatermark: min(highWatermark, log.logEndOffset), nowMs: world.now, faults: faults,
                onActions: { _, _ in })
            world.note(
                "broker of \(topicPartition) starts at leader epoch \(leaderEpoch), log end \(log.logEndOffset), first unstable offset \(log.firstUnstableOffset.map(String.init) ?? "none"), last stable offset \(partition_!.lastStableOffset)"
            )
        } catch {
            world.fail("cannot open \(topicPartition): \(error)")
        }
    }

    /// kill -9: the replica is gone until the restart.
    func crash() {
        guard let p = partition_ else { return }
        world.stats.brokerCrashes += 1
        highWatermark = p.highWatermark
        cleanShutdown = false
        SimGraveyard.keep(p)
        partition_ = nil
        world.note("broker of \(topicPartition) crashes")
        world.after(world.options.brokerDownMs / 2 + world.random(world.options.brokerDownMs)) { [self] in start() }
    }
}
