import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelTransactions
import RunnelWire

/// Runs the transaction coordinator for the transactional ids whose `__transaction_state`
/// partition this broker leads, as `GroupHost` runs the group coordinator: loads a partition when
/// it becomes leader (its leader epoch is the coordinator epoch), drops it when it stops, writes
/// what the coordinator asks to `__transaction_state` with acks=all and reports the outcome, sends
/// the markers the coordinator asks for and reports each partition's answer, fetches producer-id
/// blocks from the controller, parks requests until the coordinator answers them, and ticks its
/// timers. It makes no decision of its own.
///
/// The request handlers are in `TransactionHost+Requests.swift`; the broker checks each request's
/// authorization and routes it to them (`Broker+Transactions.swift`), and sends the markers.
package final class TransactionHost: @unchecked Sendable {
    private let lock = NIOLock()
    // Guarded by lock.
    private var coordinator: TransactionCoordinator
    private var parked: [RequestToken: EventLoopPromise<TransactionAnswer>] = [:]
    private var nextToken: RequestToken = 0
    private var ticking = false
    private var tickLoop: (any EventLoop)?

    let logger: Logger
    let clock: any Clock
    /// The local replica of a `__transaction_state` partition.
    let partition: @Sendable (Int32) -> Partition?
    /// The broker's one append path, for writes to `__transaction_state`.
    let appendRecords:
        @Sendable ([(TopicPartition, ByteBuffer?)], _ requiredAcks: Int16, _ timeoutMs: Int64, any EventLoop) ->
            AppendOutcome
    /// Writes markers (WriteTxnMarkers to each partition's leader) and answers each partition's
    /// error; a partition whose topic is gone answers `.none`.
    let sendMarkers: @Sendable (TransactionMarkers, any EventLoop) -> EventLoopFuture<[TopicPartition: ErrorCode]>
    /// Asks the controller for a block of producer ids (AllocateProducerIds): its start and size.
    let allocateProducerIds: @Sendable (any EventLoop) -> EventLoopFuture<(start: Int64, count: Int32)>

    package init(
        settings: TransactionSettings, clock: any Clock, logger: Logger,
        partition: @escaping @Sendable (Int32) -> Partition?,
        appendRecords:
            @escaping @Sendable ([(TopicPartition, ByteBuffer?)], Int16, Int64, any EventLoop) -> AppendOutcome,
        sendMarkers:
            @escaping @Sendable (TransactionMarkers, any EventLoop) -> EventLoopFuture<[TopicPartition: ErrorCode]>,
        allocateProducerIds: @escaping @Sendable (any EventLoop) -> EventLoopFuture<(start: Int64, count: Int32)>
    ) {
        self.coordinator = TransactionCoordinator(settings: settings)
        self.clock = clock
        self.logger = logger
        self.partition = partition
        self.appendRecords = appendRecords
        self.sendMarkers = sendMarkers
        self.allocateProducerIds = allocateProducerIds
    }

    /// Where a request for `transactionalId` stands here: nil when this broker coordinates it.
    package func check(_ transactionalId: String) -> ErrorCode? { lock.withLock { coordinator.check(transactionalId) } }

    package func read<T>(_ body: (TransactionCoordinator) -> T) -> T { lock.withLock { body(coordinator) } }

    /// The partition count of `__transaction_state` changed (it was created, or found at start).
    package func stateTopicPartitionsChanged(_ count: Int32) {
        lock.withLock { if count > 0 { coordinator.settings.stateTopicPartitions = count } }
    }

    /// The finalized `transaction.version` changed (or was first seen): the coordinator's own
    /// aborts and the `__transaction_state` values it writes follow it, as Kafka's coordinator
    /// reads the level from the metadata cache. A client's requests keep the version their API
    /// version says (EndTxn v5, AddPartitionsToTxn v4+: transactions v2).
    package func transactionVersionChanged(featureLevel: Int16) {
        let level = TransactionVersion(featureLevel: featureLevel)
        lock.withLock { coordinator.settings.transactionVersionLevel = level }
    }

    /// The finalized `transaction.version` the coordinator runs at.
    package var transactionVersionLevel: TransactionVersion {
        lock.withLock { coordinator.settings.transactionVersionLevel }
    }

    // MARK: ownership

    /// Follows leadership of the `__transaction_state` partitions (partition to leader epoch):
    /// loads the ones led now (or led at a new epoch), unloads the others.
    package func leadershipChanged(leading: [Int32: Int32], on eventLoop: any EventLoop) {
        let (toLoad, toUnload): ([(Int32, Int32)], [Int32]) = lock.withLock {
            let owned = coordinator.ownership
            let load = leading.filter { owned[$0.key]?.coordinatorEpoch != $0.value }.sorted { $0.key < $1.key }.map {
                ($0.key, $0.value)
            }
            let unload = owned.keys.filter { leading[$0] == nil }.sorted()
            return (load, unload)
        }
        var effects: [TransactionEffect] = []
        lock.withLock {
            for p in toUnload { effects += coordinator.unload(partition: p) }
            for (p, epoch) in toLoad { effects += coordinator.loadStarted(partition: p, coordinatorEpoch: epoch) }
        }
        dispatch(effects, on: eventLoop)
        if !toUnload.isEmpty {
            logger.info("no longer coordinating transactions of \(TransactionLog.topicName) partitions \(toUnload)")
        }
        for (p, epoch) in toLoad { eventLoop.execute { [self] in load(p, coordinatorEpoch: epoch, on: eventLoop) } }
        if !toLoad.isEmpty { startTicking(on: eventLoop) }
    }

    /// Replays a `__transaction_state` partition into the coordinator.
    private func load(_ p: Int32, coordinatorEpoch: Int32, on eventLoop: any EventLoop) {
        guard let replica = partition(p) else { return }
        let log = replica.log
        var records: [TransactionLog.Record] = []
        var offset = log.logStartOffset
        let end = log.logEndOffset
        do {
            while offset < end {
                let batches = try RecordBatches.decode(try log.readBytes(from: offset, maxBytes: 4 << 20))
                guard let last = batches.last else { break }
                for batch in batches where !batch.header.isControl {
                    for record in batch.records {
                        guard let key = record.key else { continue }
                        do {
                            if let r = try TransactionLog.decodeRecord(key: key, value: record.value) {
                                records.append(r)
                            }
                        } catch {
                            logger.warning("\(error)")
                        }
                    }
                }
                offset = last.header.nextOffset
            }
        } catch {
            logger.error("loading transactions from \(TransactionLog.topicName)-\(p) failed: \(error)")
        }
        let now = clock.wallMs()
        let effects = lock.withLock {
            coordinator.load(partition: p, coordinatorEpoch: coordinatorEpoch, records: records, nowMs: now)
        }
        dispatch(effects, on: eventLoop)
    }

    // MARK: running commands

    /// Runs a coordinator command that answers through a parked request.
    func park(
        context: RequestContext, _ body: (inout TransactionCoordinator, RequestToken, Int64) -> [TransactionEffect]
    ) -> EventLoopFuture<TransactionAnswer> {
        park(on: context.eventLoop, body)
    }

    /// Runs a coordinator command that answers through a parked request, on `eventLoop`.
    func park(
        on eventLoop: any EventLoop, _ body: (inout TransactionCoordinator, RequestToken, Int64) -> [TransactionEffect]
    ) -> EventLoopFuture<TransactionAnswer> {
        let promise = eventLoop.makePromise(of: TransactionAnswer.self)
        let now = clock.wallMs()
        let effects: [TransactionEffect] = lock.withLock {
            nextToken += 1
            parked[nextToken] = promise
            return body(&coordinator, nextToken, now)
        }
        dispatch(effects, on: eventLoop)
        return promise.futureResult
    }

    /// Carries out the coordinator's effects, in order.
    func dispatch(_ effects: [TransactionEffect], on eventLoop: any EventLoop) {
        for effect in effects {
            switch effect {
            case .respond(let token, let answer):
                lock.withLock { parked.removeValue(forKey: token) }?.succeed(answer)
            case .write(let write):
                self.write(write, on: eventLoop)
            case .sendMarkers(let markers):
                sendMarkers(markers, eventLoop).whenComplete { [self] result in
                    let answers: [TopicPartition: ErrorCode]
                    switch result {
                    case .success(let a): answers = a
                    case .failure:
                        answers = Dictionary(
                            uniqueKeysWithValues: markers.partitions.map { ($0, ErrorCode.requestTimedOut) })
                    }
                    let now = clock.wallMs()
                    var effects: [TransactionEffect] = []
                    lock.withLock {
                        for tp in markers.partitions {
                            effects += coordinator.markerWritten(
                                markers, partition: tp, error: answers[tp] ?? .unknownServerError, nowMs: now)
                        }
                    }
                    dispatch(effects, on: eventLoop)
                }
            case .fetchProducerIds:
                allocateProducerIds(eventLoop).whenComplete { [self] result in
                    lock.withLock {
                        switch result {
                        case .success(let block): coordinator.producerIdsArrived(start: block.start, count: block.count)
                        case .failure: coordinator.producerIdFetchFailed()
                        }
                    }
                }
            case .event(let event):
                note(event)
            }
        }
    }

    /// Counts an event and logs it: the frequent ones (every transaction's end, every producer's
    /// start) at debug, as Kafka's coordinator does, the rest at info or warning.
    private func note(_ event: TransactionEvent) {
        switch event {
        case .completed(_, .commit):
            BrokerMetrics.transactionsCommitted.increment()
            logger.debug("\(event)")
        case .completed(_, .abort):
            BrokerMetrics.transactionsAborted.increment()
            logger.debug("\(event)")
        case .initialized:
            logger.debug("\(event)")
        case .timedOut:
            BrokerMetrics.transactionsTimedOut.increment()
            logger.info("\(event)")
        case .markersAbandoned:
            BrokerMetrics.transactionMarkersAbandoned.increment()
            logger.warning("\(event)")
        case .writeFailed, .unreadableRecord:
            logger.warning("\(event)")
        case .expired, .loaded:
            logger.info("\(event)")
        }
    }

    /// Appends a record to `__transaction_state` with acks=all and reports the outcome.
    private func write(_ write: TransactionLogWrite, on eventLoop: any EventLoop) {
        let tp = TopicPartition(TransactionLog.topicName, write.partition)
        // A write for an older coordinator epoch is not appended by a newer leader.
        guard let replica = partition(write.partition), replica.isLeader, replica.leaderEpoch == write.coordinatorEpoch
        else {
            report(write.id, error: .notLeaderOrFollower, on: eventLoop)
            return
        }
        let batch = RecordBatches.build(records: [
            Record(offset: 0, timestamp: clock.wallMs(), key: write.key, value: write.valueBytes)
        ])
        switch appendRecords([(tp, batch)], -1, write.timeoutMs, eventLoop) {
        case .done(let results):
            report(write.id, error: results.first?.error ?? .unknownServerError, on: eventLoop)
        case .waiting(let future):
            future.whenComplete { [self] result in
                switch result {
                case .success(let results):
                    report(write.id, error: results.first?.error ?? .unknownServerError, on: eventLoop)
                case .failure: report(write.id, error: .requestTimedOut, on: eventLoop)
                }
            }
        }
    }

    private func report(_ id: WriteID, error: ErrorCode, on eventLoop: any EventLoop) {
        let now = clock.wallMs()
        let effects = lock.withLock { coordinator.written(id, error: error == .none ? nil : error, nowMs: now) }
        dispatch(effects, on: eventLoop)
    }

    // MARK: timers

    private func startTicking(on eventLoop: any EventLoop) {
        let start: Bool = lock.withLock {
            if ticking { return false }
            ticking = true
            tickLoop = eventLoop
            return true
        }
        guard start else { return }
        eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) {
            [weak self] task in
            guard let self else {
                task.cancel()
                return
            }
            let now = clock.wallMs()
            let effects: [TransactionEffect] = lock.withLock {
                guard let next = coordinator.nextDeadlineMs, next > now else { return coordinator.tick(nowMs: now) }
                return []
            }
            dispatch(effects, on: eventLoop)
        }
    }
}
