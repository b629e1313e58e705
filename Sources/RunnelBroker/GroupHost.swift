import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelWire

/// Runs the group coordinator for the groups whose `__consumer_offsets` partition this broker
/// leads: loads them from that partition when it becomes leader, drops them when it stops,
/// writes offsets and group metadata there with acks=all before they count (a TxnOffsetCommit's
/// as a transactional batch of its producer, settled by `transactionCompleted`), parks JoinGroup
/// and SyncGroup requests until the coordinator answers them, and ticks its timers.
package final class GroupHost: @unchecked Sendable {
    private let lock = NIOLock()
    // Guarded by lock.
    private var coordinator: GroupCoordinator
    /// `__consumer_offsets` partitions whose groups are loaded here.
    private var owned: Set<Int32> = []
    private var loading: Set<Int32> = []
    /// Transactions that ended on a partition while it was loading, in order: applied once its
    /// load is in, as the load may have read the log before their marker.
    private var completedWhileLoading: [Int32: [(producerId: Int64, committed: Bool)]] = [:]
    private var parked:
        [RequestToken: (promise: EventLoopPromise<OutgoingResponse>, version: Int16, allocator: ByteBufferAllocator)] =
            [:]
    private var nextToken: RequestToken = 0
    private var ticking = false

    let logger: Logger
    let clock: any Clock
    /// The partition count of `__consumer_offsets` (0 while it does not exist).
    let partitionCount: @Sendable () -> Int32
    /// The local replica of a `__consumer_offsets` partition.
    let partition: @Sendable (Int32) -> Partition?
    /// The broker's one append path (`Broker.appendRecords`), for writes to `__consumer_offsets`;
    /// the verification applies to the one entry a group write has (KIP-890, a transactional
    /// offset commit's guard).
    let appendRecords: AppendRecords
    package typealias AppendRecords =
        @Sendable (
            [(TopicPartition, ByteBuffer?)], _ requiredAcks: Int16, _ timeoutMs: Int64,
            ProducerStateTable.Verification, any EventLoop
        ) -> AppendOutcome
    /// `offsets.commit.timeout.ms`
    package var commitTimeoutMs: Int64 = 5000
    /// A new member's id from its client id (or group instance id): Kafka's `<client id>-<uuid>`.
    package var newMemberId: @Sendable (String) -> String = { prefix in
        var generator = SystemRandomNumberGenerator()
        return prefix + "-" + KafkaUUID.random(using: &generator).description
    }
    /// Rules broken on purpose (the group simulation's checks must catch them); none in a real run.
    package var faults = GroupFaults()

    package init(
        settings: GroupSettings, clock: any Clock, logger: Logger, partitionCount: @escaping @Sendable () -> Int32,
        partition: @escaping @Sendable (Int32) -> Partition?,
        appendRecords: @escaping AppendRecords
    ) {
        self.coordinator = GroupCoordinator(settings: settings)
        self.clock = clock
        self.logger = logger
        self.partitionCount = partitionCount
        self.partition = partition
        self.appendRecords = appendRecords
    }

    // MARK: ownership

    /// Where a request for `groupId` stands here: nil when this broker coordinates it.
    package func check(_ groupId: String) -> ErrorCode? {
        let count = partitionCount()
        guard count > 0 else { return .coordinatorNotAvailable }
        let p = OffsetsTopic.partition(for: groupId, partitions: count)
        return lock.withLock {
            if loading.contains(p) { return .coordinatorLoadInProgress }
            return owned.contains(p) ? nil : .notCoordinator
        }
    }

    package func owns(_ groupId: String) -> Bool { check(groupId) == nil }

    /// Follows leadership of the `__consumer_offsets` partitions: loads the ones this broker
    /// now leads, unloads the ones it no longer does.
    package func leadershipChanged(leading: Set<Int32>, on eventLoop: any EventLoop) {
        let (toLoad, toUnload): ([Int32], [Int32]) = lock.withLock {
            let current = owned.union(loading)
            return (leading.subtracting(current).sorted(), current.subtracting(leading).sorted())
        }
        if !toUnload.isEmpty {
            let count = partitionCount()
            let gone = Set(toUnload)
            let effects: [GroupEffect] = lock.withLock {
                owned.subtract(gone)
                loading.subtract(gone)
                for p in gone { completedWhileLoading.removeValue(forKey: p) }
                return coordinator.unload { gone.contains(OffsetsTopic.partition(for: $0, partitions: count)) }
            }
            dispatch(effects)
            logger.info("no longer coordinating groups of \(OffsetsTopic.name) partitions \(toUnload)")
        }
        guard !toLoad.isEmpty else { return }
        lock.withLock { loading.formUnion(toLoad) }
        for p in toLoad {
            eventLoop.execute { [self] in load(p) }
        }
        startTicking(on: eventLoop)
    }

    /// Replays a `__consumer_offsets` partition into the coordinator: its offset and group
    /// records, transactional ones by producer, and the markers that end their transactions.
    private func load(_ p: Int32) {
        guard let replica = partition(p) else {
            lock.withLock {
                _ = loading.remove(p)
                _ = completedWhileLoading.removeValue(forKey: p)
            }
            return
        }
        let log = replica.log
        let started = clock.monotonicMs()
        var offset = log.logStartOffset
        let end = log.logEndOffset
        var decoded: [OffsetsBatch] = []
        var recordCount = 0
        do {
            while offset < end {
                let bytes = try log.readBytes(from: offset, maxBytes: 4 << 20)
                let batches = try RecordBatches.decode(bytes)
                guard let last = batches.last else { break }
                for batch in batches {
                    if batch.header.isControl {
                        let record = batch.records.first
                        if let marker = EndTransactionMarker(key: record?.key, value: record?.value) {
                            decoded.append(.marker(producerId: batch.header.producerId, committed: marker.committed))
                        }
                        continue
                    }
                    let records = batch.records.compactMap { record in
                        record.key.flatMap { OffsetsTopic.decodeRecord(key: $0, value: record.value) }
                    }
                    recordCount += records.count
                    decoded.append(
                        .records(
                            records, baseOffset: batch.header.baseOffset,
                            transactionalProducerId: batch.header.isTransactional ? batch.header.producerId : nil))
                }
                offset = last.header.nextOffset
            }
        } catch {
            logger.error("loading groups from \(OffsetsTopic.name)-\(p) failed: \(error)")
        }
        let now = clock.wallMs()
        let count = partitionCount()
        let loaded: Bool = lock.withLock {
            guard loading.remove(p) != nil else { return false }  // unloaded meanwhile
            coordinator.load(decoded, nowMs: now)
            for ended in completedWhileLoading.removeValue(forKey: p) ?? [] {
                coordinator.completeTransaction(producerId: ended.producerId, committed: ended.committed) {
                    OffsetsTopic.partition(for: $0, partitions: count) == p
                }
            }
            owned.insert(p)
            return true
        }
        if loaded {
            logger.info(
                "coordinating groups of \(OffsetsTopic.name)-\(p)",
                metadata: ["records": "\(recordCount)", "ms": "\(clock.monotonicMs() - started)"])
        }
    }

    /// A COMMIT or ABORT marker of `producerId` was appended to `__consumer_offsets` partition
    /// `offsetsPartition` and replicated (Kafka's GroupCoordinator.onTransactionCompleted): the
    /// pending transactional offsets of that producer in the partition's groups become committed
    /// offsets or are dropped. The broker calls it for each such partition of a WriteTxnMarkers
    /// whose append succeeded, before it answers. A partition still loading applies it once loaded
    /// (its load may have read the log before the marker); one this broker does not coordinate
    /// ignores it (its coordinator reads the marker from the log).
    package func transactionCompleted(offsetsPartition: Int32, producerId: Int64, committed: Bool) {
        let count = partitionCount()
        let ended: [String] = lock.withLock {
            if loading.contains(offsetsPartition) {
                completedWhileLoading[offsetsPartition, default: []].append((producerId, committed))
                return []
            }
            guard owned.contains(offsetsPartition) else { return [] }
            return coordinator.completeTransaction(producerId: producerId, committed: committed) {
                OffsetsTopic.partition(for: $0, partitions: count) == offsetsPartition
            }
        }
        for groupId in ended {
            logger.debug(
                "group \(groupId): transactional offsets of producer \(producerId) \(committed ? "committed" : "aborted")"
            )
        }
    }

    // MARK: running commands

    /// Runs a coordinator command that may park a request: the answer comes through `effects`.
    func park(
        version: Int16, context: RequestContext, _ body: (inout GroupCoordinator, RequestToken, Int64) -> [GroupEffect]
    ) -> EventLoopFuture<OutgoingResponse> {
        let promise = context.eventLoop.makePromise(of: OutgoingResponse.self)
        let now = clock.wallMs()
        let effects: [GroupEffect] = lock.withLock {
            nextToken += 1
            parked[nextToken] = (promise, version, context.allocator)
            return body(&coordinator, nextToken, now)
        }
        dispatch(effects)
        return promise.futureResult
    }

    /// Runs a coordinator command that answers at once.
    func run<T>(_ body: (inout GroupCoordinator, Int64) -> (T, [GroupEffect])) -> T {
        let now = clock.wallMs()
        let (value, effects) = lock.withLock { body(&coordinator, now) }
        dispatch(effects)
        return value
    }

    package func read<T>(_ body: (GroupCoordinator) -> T) -> T { lock.withLock { body(coordinator) } }

    /// Runs a coordinator command for `groupId` only while this broker coordinates it, loaded: a
    /// write that completes after its group moved away changes nothing here (Kafka's group is Dead
    /// by then), as the group's new coordinator reads the record from the log.
    func runIfCoordinating(_ groupId: String, _ body: (inout GroupCoordinator) -> Void) {
        let p = OffsetsTopic.partition(for: groupId, partitions: partitionCount())
        lock.withLock { if owned.contains(p) { body(&coordinator) } }
    }

    private func dispatch(_ effects: [GroupEffect]) {
        for effect in effects {
            switch effect {
            case .join(let token, let response):
                if let p = lock.withLock({ parked.removeValue(forKey: token) }) {
                    p.promise.succeed(OutgoingResponse(response, version: p.version, allocator: p.allocator))
                }
            case .sync(let token, let response):
                if let p = lock.withLock({ parked.removeValue(forKey: token) }) {
                    p.promise.succeed(OutgoingResponse(response, version: p.version, allocator: p.allocator))
                }
            case .persist(let groupId):
                persistGroup(groupId)
            case .storeAssignment(let groupId, let generation):
                storeAssignment(groupId, generation: generation)
            case .event(let groupId, let event):
                if case .stabilized = event { BrokerMetrics.groupRebalances.increment() }
                logger.info("group \(groupId) \(event)")
            }
        }
    }

    private func persistGroup(_ groupId: String) {
        let value: GroupMetadataValue? = lock.withLock { coordinator.metadataRecord(groupId) }
        guard let value else { return }
        guard let loop = tickLoop else { return }
        append([(.group(groupId), OffsetsTopic.encode(value))], groupId: groupId, on: loop).whenFailure {
            [logger] error in
            logger.info("could not write the metadata of group \(groupId): \(error)")
        }
    }

    private func storeAssignment(_ groupId: String, generation: Int32) {
        let value: GroupMetadataValue? = lock.withLock { coordinator.metadataRecord(groupId) }
        if faults.answerSyncBeforeStore, let value, let loop = tickLoop {
            let now = clock.wallMs()
            dispatch(
                lock.withLock {
                    coordinator.assignmentStored(groupId: groupId, generation: generation, error: nil, nowMs: now)
                })
            append([(.group(groupId), OffsetsTopic.encode(value))], groupId: groupId, on: loop).whenFailure { _ in }
            return
        }
        guard let value, let loop = tickLoop else {
            let now = clock.wallMs()
            dispatch(
                lock.withLock {
                    coordinator.assignmentStored(
                        groupId: groupId, generation: generation, error: .coordinatorNotAvailable, nowMs: now)
                })
            return
        }
        append([(.group(groupId), OffsetsTopic.encode(value))], groupId: groupId, on: loop).whenComplete {
            [self] result in
            var error: ErrorCode?
            if case .failure(let failure) = result {
                error = (failure as? GroupWriteError)?.code ?? .unknownServerError
                logger.info("could not store the assignment of group \(groupId) generation \(generation): \(error!)")
            }
            let now = clock.wallMs()
            let effects = lock.withLock {
                coordinator.assignmentStored(groupId: groupId, generation: generation, error: error, nowMs: now)
            }
            dispatch(effects)
        }
    }

    // MARK: writing to __consumer_offsets

    /// Appends records for `groupId` to its `__consumer_offsets` partition through the broker's
    /// append path with acks=all, as one batch, and completes with the batch's log offset once
    /// they are replicated, or fails with the error a group client should see. With `producer`
    /// the batch is transactional, carries that producer id and epoch and sequence 0, as Kafka's
    /// GroupMetadataManager writes a TxnOffsetCommit (the log checks only its epoch: see
    /// `ProducerStateTable.check`), under `verification`: the guard the broker took on the
    /// partition before asking the transaction coordinator (KIP-890).
    func append(
        _ records: [(OffsetsTopic.Key, ByteBuffer?)], groupId: String, producer: (id: Int64, epoch: Int16)? = nil,
        verification: ProducerStateTable.Verification = .notRequired, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Int64> {
        let count = partitionCount()
        guard count > 0 else { return eventLoop.makeFailedFuture(GroupWriteError(code: .notCoordinator)) }
        let tp = TopicPartition(OffsetsTopic.name, OffsetsTopic.partition(for: groupId, partitions: count))
        let now = clock.wallMs()
        let batch = RecordBatches.build(
            records: records.enumerated().map { i, r in
                Record(offset: Int64(i), timestamp: now, key: OffsetsTopic.encode(r.0), value: r.1)
            },
            attributes: producer == nil ? 0 : Self.transactionalAttribute,
            producerId: producer?.id ?? -1, producerEpoch: producer?.epoch ?? -1,
            baseSequence: producer == nil ? -1 : 0)
        @Sendable func settle(_ results: [PartitionAppendResult]) throws -> Int64 {
            let result = results.first ?? PartitionAppendResult(error: .unknownServerError)
            if result.error != .none { throw GroupWriteError(code: Self.clientCode(result.error)) }
            precondition(result.baseOffset >= 0, "a successful append reports the offset it wrote at")
            return result.baseOffset
        }
        switch appendRecords([(tp, batch)], -1, commitTimeoutMs, verification, eventLoop) {
        case .done(let results):
            do {
                return eventLoop.makeSucceededFuture(try settle(results))
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        case .waiting(let future):
            return future.flatMapThrowing(settle)
        }
    }

    /// Attributes bit 4: the batch belongs to its producer's transaction.
    static let transactionalAttribute: Int16 = 0x10

    /// Kafka's mapping of a failed offsets write to what a group client understands.
    static func clientCode(_ code: ErrorCode) -> ErrorCode {
        switch code {
        case .notLeaderOrFollower, .kafkaStorageError: return .notCoordinator
        case .notEnoughReplicas, .notEnoughReplicasAfterAppend, .requestTimedOut, .unknownTopicOrPartition:
            return .coordinatorNotAvailable
        case .messageTooLarge, .recordListTooLarge, .invalidFetchSize, .corruptMessage, .invalidRecord:
            return .invalidCommitOffsetSize
        default: return code
        }
    }

    // MARK: timers

    private var tickLoop: (any EventLoop)?
    /// `offsets.retention.minutes`, in ms.
    var offsetsRetentionMs: Int64 = 7 * 24 * 60 * 60 * 1000
    /// `offsets.retention.check.interval.ms`
    var offsetsRetentionCheckIntervalMs: Int64 = 600_000
    private var lastExpiryMs: Int64 = 0

    /// Removes expired offsets (and groups left with nothing) with tombstones in
    /// `__consumer_offsets`, as Kafka's offsets-retention task does. The tombstones are
    /// appended without waiting for replication: losing one only delays the expiry.
    private func expireOffsets(nowMs: Int64) {
        let expired = lock.withLock { coordinator.expireOffsets(nowMs: nowMs, retentionMs: offsetsRetentionMs) }
        guard let loop = tickLoop else { return }
        for e in expired {
            var tombstones: [(OffsetsTopic.Key, ByteBuffer?)] = e.offsets.map { (.offset(group: e.groupId, $0), nil) }
            if e.groupRemoved { tombstones.append((.group(e.groupId), nil)) }
            logger.info(
                "group \(e.groupId): removed \(e.offsets.count) expired offsets\(e.groupRemoved ? "; the group is gone" : "")"
            )
            append(tombstones, groupId: e.groupId, on: loop).whenFailure { [logger] error in
                logger.info("could not write the tombstones of group \(e.groupId): \(error)")
            }
        }
    }

    private func startTicking(on eventLoop: any EventLoop) {
        let start: Bool = lock.withLock {
            if ticking { return false }
            ticking = true
            tickLoop = eventLoop
            return true
        }
        guard start else { return }
        eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [weak self] task in
            guard let self else {
                task.cancel()
                return
            }
            let now = clock.wallMs()
            let effects: [GroupEffect] = lock.withLock {
                guard let next = coordinator.nextDeadlineMs, next <= now else { return [] }
                return coordinator.tick(nowMs: now)
            }
            dispatch(effects)
            if now - lastExpiryMs >= offsetsRetentionCheckIntervalMs {
                lastExpiryMs = now
                expireOffsets(nowMs: now)
            }
        }
    }
}

struct GroupWriteError: Error {
    var code: ErrorCode
}
