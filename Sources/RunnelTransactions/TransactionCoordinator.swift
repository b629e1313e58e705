import RunnelCore
import RunnelWire

/// The transaction coordinator's settings (Kafka's `transaction.*` broker keys).
public struct TransactionSettings: Sendable, Equatable {
    /// `transaction.max.timeout.ms`: the largest transaction timeout a producer may ask for.
    public var maxTimeoutMs: Int32 = 900_000
    /// `transactional.id.expiration.ms`: an id with no transaction open for this long is forgotten.
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    public var abortTimedOutTransactionsIntervalMs: Int64 = 10_000
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    public var removeExpiredTransactionalIdsIntervalMs: Int64 = 3_600_000
    /// The finalized `transaction.version` feature: the protocol of the coordinator's own aborts
    /// (timeouts, fencing), and which `TransactionLogValue` version it writes.
    public var transactionVersionLevel: TransactionVersion = .v2
    /// How long a marker or a completion write that failed waits before it is tried again.
    public var retryBackoffMs: Int64 = 100
    /// `transaction.state.log.num.partitions` (the partition count of `__transaction_state`).
    public var stateTopicPartitions: Int32 = 50

    public init() {}
}

/// Kafka's transaction coordinator as a value: InitProducerId (KIP-360 recovery, fencing),
/// AddPartitionsToTxn (and its KIP-890 verify-only form), AddOffsetsToTxn, EndTxn with
/// transactions v1 and v2, the markers, timeouts, id expiry and loading from
/// `__transaction_state`. Time is a parameter, producer ids arrive as blocks, and nothing here
/// does I/O: every change is a `.write` effect and counts only once the driver reports it
/// written (`written`); a request is answered after its write, never before.
///
/// Each transactional id has at most one change in flight (its `pending` state); a request that
/// meets one is answered CONCURRENT_TRANSACTIONS, as in Kafka.
public struct TransactionCoordinator: Sendable {
    /// One transactional id as the coordinator holds it.
    public struct Entry: Sendable, Equatable {
        public var metadata: TransactionMetadata
        /// The state a write in flight moves it to (Kafka's `pendingState`).
        public var pending: TransactionState?
        /// A TV1 fence's bumped epoch could not be written: the next fence does not bump again.
        public var previousFenceFailed = false
    }

    /// Where a `__transaction_state` partition stands here.
    public enum Ownership: Sendable, Equatable {
        case loading(coordinatorEpoch: Int32)
        case loaded(coordinatorEpoch: Int32)

        public var coordinatorEpoch: Int32 {
            switch self {
            case .loading(let e), .loaded(let e): return e
            }
        }
    }

    /// What a write is for: what happens once it is written.
    enum Purpose: Sendable, Equatable {
        case initProducerId(RequestToken)
        case addPartitions(RequestToken)
        /// PrepareCommit/PrepareAbort. `token`: a client's EndTxn; `initToken`: the InitProducerId
        /// whose fencing aborts the transaction; neither for a timeout.
        case endTransaction(token: RequestToken?, initToken: RequestToken?, fence: Bool, version: TransactionVersion)
        case complete
        case expire
    }

    struct PendingWrite: Sendable, Equatable {
        var write: TransactionLogWrite
        var purpose: Purpose
    }

    /// The markers of one ended transaction, and which partitions still need theirs.
    struct MarkerJob: Sendable, Equatable {
        var markers: TransactionMarkers
        /// The value written once every marker is (CompleteCommit or CompleteAbort).
        var completion: TransactionMetadata
        var waiting: Set<TopicPartition>
        var inFlight: Set<TopicPartition>
        var retryAtMs: Int64?
        /// The completion write failed and waits to be tried again.
        var completionRetryAtMs: Int64?
    }

    public var settings: TransactionSettings
    public private(set) var transactions: [String: Entry] = [:]
    public private(set) var ownership: [Int32: Ownership] = [:]
    public private(set) var producerIds = ProducerIdPool()
    private var writes: [WriteID: PendingWrite] = [:]
    private var markerJobs: [String: MarkerJob] = [:]
    private var nextWriteId: UInt64 = 0
    private var lastAbortCheckMs: Int64?
    private var lastExpiryCheckMs: Int64?

    public init(settings: TransactionSettings = TransactionSettings()) { self.settings = settings }

    public func transaction(_ transactionalId: String) -> Entry? { transactions[transactionalId] }

    /// The `__transaction_state` partition of an id.
    public func partition(for transactionalId: String) -> Int32 {
        TransactionLog.partition(for: transactionalId, partitions: settings.stateTopicPartitions)
    }

    /// Whether this coordinator serves `transactionalId` now (nil), or the error to answer.
    public func check(_ transactionalId: String) -> ErrorCode? {
        switch ownership[partition(for: transactionalId)] {
        case .loaded: return nil
        case .loading: return .coordinatorLoadInProgress
        case nil: return .notCoordinator
        }
    }

    /// The markers this coordinator is writing, by transactional id (tests and DescribeTransactions).
    public var markersInProgress: [String: Set<TopicPartition>] {
        markerJobs.mapValues { $0.waiting.union($0.inFlight) }
    }

    // MARK: InitProducerId

    /// InitProducerId with a transactional id. `expected`: the producer id and epoch the client
    /// holds (v3+), to recover after an error without being fenced (KIP-360).
    public mutating func initProducerId(
        transactionalId: String, timeoutMs: Int32, expected: (producerId: Int64, epoch: Int16)?,
        token: RequestToken, nowMs: Int64
    ) -> [TransactionEffect] {
        func fail(_ code: ErrorCode) -> [TransactionEffect] {
            [.respond(token, .initProducerId(code, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch))]
        }
        guard !transactionalId.isEmpty else { return fail(.invalidRequest) }
        guard timeoutMs > 0 && timeoutMs <= settings.maxTimeoutMs else { return fail(.invalidTransactionTimeout) }
        if let code = check(transactionalId) { return fail(code) }
        var effects: [TransactionEffect] = []
        if transactions[transactionalId] == nil {
            let (id, fetch) = producerIds.take()
            if fetch { effects.append(.fetchProducerIds) }
            guard let id else { return effects + fail(.coordinatorLoadInProgress) }
            transactions[transactionalId] = Entry(
                metadata: TransactionMetadata(
                    transactionalId: transactionalId, producerId: id, producerEpoch: ProducerIds.noEpoch,
                    timeoutMs: timeoutMs, state: .empty,
                    lastUpdateTimestampMs: nowMs))
        }
        var entry = transactions[transactionalId]!
        let m = entry.metadata
        if entry.pending != nil { return effects + fail(.concurrentTransactions) }
        if let expected {
            // A named producer is fenced unless the id was just created, it is the current one,
            // or it is the previous one retrying a rotation it did not hear of.
            let valid =
                m.producerEpoch == ProducerIds.noEpoch || expected.producerId == m.producerId
                || (expected.producerId == m.previousProducerId && ProducerIds.isEpochExhausted(expected.epoch))
            if !valid { return effects + fail(.producerFenced) }
        }
        switch m.state {
        case .prepareAbort, .prepareCommit:
            return effects + fail(.concurrentTransactions)
        case .completeAbort, .completeCommit, .empty:
            let next: TransactionMetadata
            if m.isProducerEpochExhausted && (expected == nil || expected!.epoch == m.producerEpoch) {
                let (id, fetch) = producerIds.take()
                if fetch { effects.append(.fetchProducerIds) }
                guard let id else { return effects + fail(.coordinatorLoadInProgress) }
                next = m.prepareProducerIdRotation(
                    newProducerId: id, timeoutMs: timeoutMs, nowMs: nowMs, recordLastEpoch: expected != nil)
            } else {
                switch m.prepareIncrementProducerEpoch(
                    timeoutMs: timeoutMs, expectedEpoch: expected?.epoch, nowMs: nowMs)
                {
                case .success(let value): next = value
                case .failure(let code): return effects + fail(code)
                }
            }
            entry.pending = next.state
            transactions[transactionalId] = entry
            return effects + [.write(makeWrite(next, purpose: .initProducerId(token)))]
        case .ongoing:
            // Abort the open transaction first, fencing its producer; the client hears
            // CONCURRENT_TRANSACTIONS once the abort is prepared and retries, which bumps the
            // epoch once more (or rotates the id if this exhausted it).
            return effects + fenceAndAbort(transactionalId, initToken: token, nowMs: nowMs)
        case .dead, .prepareEpochFence:
            preconditionFailure("\(transactionalId) is \(m.state), which is never a current state")
        }
    }

    // MARK: AddPartitionsToTxn, AddOffsetsToTxn

    /// AddPartitionsToTxn (v0-3 from a client, or v4+ without verify-only from a broker adding
    /// a TV2 produce's partition), or AddOffsetsToTxn with the group's `__consumer_offsets`
    /// partition.
    public mutating func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, _ partitions: Set<TopicPartition>,
        clientTransactionVersion: TransactionVersion, token: RequestToken, nowMs: Int64
    ) -> [TransactionEffect] {
        func answer(_ code: ErrorCode) -> [TransactionEffect] { [.respond(token, .addPartitions(code))] }
        guard !transactionalId.isEmpty else { return answer(.invalidRequest) }
        if let code = check(transactionalId) { return answer(code) }
        guard var entry = transactions[transactionalId], entry.metadata.producerId == producerId else {
            return answer(.invalidProducerIdMapping)
        }
        let m = entry.metadata
        guard m.producerEpoch == producerEpoch else { return answer(.producerFenced) }
        if entry.pending != nil || m.state == .prepareCommit || m.state == .prepareAbort {
            return answer(.concurrentTransactions)
        }
        // Nothing new: answered at once.
        if m.state == .ongoing && partitions.isSubset(of: m.partitions) { return answer(.none) }
        let next = m.prepareAddPartitions(partitions, nowMs: nowMs, clientTransactionVersion: clientTransactionVersion)
        entry.pending = .ongoing
        transactions[transactionalId] = entry
        return [.write(makeWrite(next, purpose: .addPartitions(token)))]
    }

    /// AddPartitionsToTxn v4+ with verify-only (KIP-890 part 1): a partition leader asks whether
    /// partitions are in the open transaction before it appends a transactional produce. Nothing
    /// changes; a partition not in the transaction answers TRANSACTION_ABORTABLE.
    public func verifyPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16,
        _ partitions: Set<TopicPartition>
    ) -> [TopicPartition: ErrorCode] {
        func all(_ code: ErrorCode) -> [TopicPartition: ErrorCode] {
            Dictionary(uniqueKeysWithValues: partitions.map { ($0, code) })
        }
        guard !transactionalId.isEmpty else { return all(.invalidRequest) }
        if let code = check(transactionalId) { return all(code) }
        guard let entry = transactions[transactionalId], entry.metadata.producerId == producerId else {
            return all(.invalidProducerIdMapping)
        }
        let m = entry.metadata
        guard m.producerEpoch == producerEpoch else { return all(.producerFenced) }
        if m.state == .prepareCommit || m.state == .prepareAbort { return all(.concurrentTransactions) }
        return Dictionary(
            uniqueKeysWithValues: partitions.map {
                ($0, m.partitions.contains($0) ? ErrorCode.none : .transactionAbortable)
            })
    }

    // MARK: EndTxn

    /// EndTxn from a client: commit or abort under `clientTransactionVersion` (TV2 from EndTxn v5).
    public mutating func endTransaction(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, result: TransactionResult,
        clientTransactionVersion: TransactionVersion, token: RequestToken, nowMs: Int64
    ) -> [TransactionEffect] {
        if let code = check(transactionalId), !transactionalId.isEmpty {
            return [.respond(token, .endTxn(code, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch))]
        }
        return endTransaction(
            transactionalId, producerId: producerId, producerEpoch: producerEpoch, result: result, fromClient: true,
            version: clientTransactionVersion, token: token, initToken: nil, nowMs: nowMs)
    }

    /// Fences the producer of an ongoing transaction and aborts it (InitProducerId from a new
    /// instance, or a timeout), with the coordinator's own transaction version.
    private mutating func fenceAndAbort(
        _ transactionalId: String, initToken: RequestToken?, nowMs: Int64
    ) -> [TransactionEffect] {
        var entry = transactions[transactionalId]!
        precondition(
            entry.metadata.state == .ongoing && entry.pending == nil,
            "only an idle ongoing transaction is fenced: \(entry.metadata)")
        let fenced = entry.metadata.prepareFenceProducerEpoch(previousFenceFailed: entry.previousFenceFailed)
        entry.pending = .prepareEpochFence
        transactions[transactionalId] = entry
        return endTransaction(
            transactionalId, producerId: fenced.producerId, producerEpoch: fenced.producerEpoch, result: .abort,
            fromClient: false,
            version: settings.transactionVersionLevel, token: nil, initToken: initToken, nowMs: nowMs)
    }

    private mutating func endTransaction(
        _ transactionalId: String, producerId: Int64, producerEpoch: Int16, result: TransactionResult,
        fromClient: Bool, version: TransactionVersion, token: RequestToken?, initToken: RequestToken?,
        nowMs: Int64
    ) -> [TransactionEffect] {
        func fail(
            _ code: ErrorCode, producerId: Int64 = ProducerIds.none, epoch: Int16 = ProducerIds.noEpoch
        ) -> [TransactionEffect] {
            var effects: [TransactionEffect] = []
            if let token {
                effects.append(.respond(token, .endTxn(code, producerId: producerId, producerEpoch: epoch)))
            }
            if let initToken {
                effects.append(
                    .respond(
                        initToken,
                        .initProducerId(code, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch)))
            }
            // A fence that goes no further leaves the transaction as it was.
            if var entry = transactions[transactionalId], entry.pending == .prepareEpochFence {
                entry.pending = nil
                transactions[transactionalId] = entry
            }
            return effects
        }
        guard !transactionalId.isEmpty else { return fail(.invalidRequest) }
        guard var entry = transactions[transactionalId] else { return fail(.invalidProducerIdMapping) }
        var m = entry.metadata
        let isEpochFence = entry.pending == .prepareEpochFence
        let nextState: TransactionState = result == .commit ? .prepareCommit : .prepareAbort
        func invalidState() -> [TransactionEffect] { fail(.invalidTxnState) }

        if !version.supportsEpochBump {
            // Transactions v1: the epoch must be the current one (a server abort may carry the fenced one).
            guard m.producerId == producerId else { return fail(.invalidProducerIdMapping) }
            if (fromClient && producerEpoch != m.producerEpoch) || producerEpoch < m.producerEpoch {
                return fail(.producerFenced)
            }
            if entry.pending != nil && !isEpochFence { return fail(.concurrentTransactions) }
            switch m.state {
            case .ongoing:
                if isEpochFence {
                    // The fence's epoch holds from now on, written or not (the client never
                    // hears it unless the write succeeds).
                    entry.pending = nil
                    m.producerEpoch = producerEpoch
                    m.lastProducerEpoch = ProducerIds.noEpoch
                    entry.metadata = m
                }
                let next = m.prepareAbortOrCommit(
                    nextState, clientTransactionVersion: .v0, nextProducerId: ProducerIds.none,
                    nowMs: nowMs, noPartitionAdded: false)
                entry.pending = nextState
                transactions[transactionalId] = entry
                return [
                    .write(
                        makeWrite(
                            next,
                            purpose: .endTransaction(
                                token: token, initToken: initToken, fence: isEpochFence, version: .v0)))
                ]
            case .completeCommit:
                return result == .commit ? fail(.none) : invalidState()
            case .completeAbort:
                return result == .abort ? fail(.none) : invalidState()
            case .prepareCommit:
                return result == .commit ? fail(.concurrentTransactions) : invalidState()
            case .prepareAbort:
                return result == .abort ? fail(.concurrentTransactions) : invalidState()
            case .empty:
                return invalidState()
            case .dead, .prepareEpochFence:
                preconditionFailure("\(transactionalId) is \(m.state), which is never a current state")
            }
        }

        // Transactions v2: every end bumps the epoch, so "same epoch" means the next EndTxn and a
        // retry carries the epoch before the bump (or the last one before an id rotation).
        let retryOnOverflow =
            !isEpochFence && m.previousProducerId == producerId && producerEpoch == Int16.max - 1
            && m.producerEpoch == 0
        let retryOnEpochBump = !isEpochFence && Int32(m.producerEpoch) == Int32(producerEpoch) + 1
        let isRetry = retryOnEpochBump || retryOnOverflow
        let validEpoch: Bool
        if isEpochFence {
            validEpoch = (!fromClient || producerEpoch == m.producerEpoch) && producerEpoch >= m.producerEpoch
        } else {
            switch m.state {
            case .ongoing, .empty, .dead, .prepareEpochFence: validEpoch = producerEpoch == m.producerEpoch
            case .prepareCommit, .prepareAbort: validEpoch = retryOnEpochBump
            case .completeCommit, .completeAbort: validEpoch = isRetry || producerEpoch == m.producerEpoch
            }
        }
        if m.producerId != producerId && !retryOnOverflow { return fail(.invalidProducerIdMapping) }
        if !validEpoch { return fail(.producerFenced) }
        if entry.pending != nil && !isEpochFence { return fail(.concurrentTransactions) }

        func prepare(_ state: TransactionState, noPartitionAdded: Bool) -> [TransactionEffect] {
            var effects: [TransactionEffect] = []
            var nextProducerId = ProducerIds.none
            if !isEpochFence && m.isProducerEpochExhausted {
                let (id, fetch) = producerIds.take()
                if fetch { effects.append(.fetchProducerIds) }
                guard let id else { return effects + fail(.coordinatorLoadInProgress) }
                nextProducerId = id
            }
            if isEpochFence {
                // The abort's own bump fences the producer: the fence does not bump again
                // (KAFKA-19367), so the epoch cannot pass Int16.max.
                entry.pending = nil
            }
            let next = m.prepareAbortOrCommit(
                state, clientTransactionVersion: version, nextProducerId: nextProducerId, nowMs: nowMs,
                noPartitionAdded: noPartitionAdded)
            entry.pending = state
            transactions[transactionalId] = entry
            return effects + [
                .write(
                    makeWrite(
                        next,
                        purpose: .endTransaction(
                            token: token, initToken: initToken, fence: isEpochFence, version: version)))
            ]
        }
        // A retry of an EndTxn that took effect gets the producer's current id and epoch.
        func done() -> [TransactionEffect] { fail(.none, producerId: m.producerId, epoch: m.producerEpoch) }
        switch m.state {
        case .ongoing:
            return prepare(nextState, noPartitionAdded: false)
        case .completeCommit:
            if result == .commit { return isRetry ? done() : invalidState() }
            return isRetry ? invalidState() : prepare(.prepareAbort, noPartitionAdded: true)
        case .completeAbort:
            if result == .abort { return isRetry ? done() : prepare(.prepareAbort, noPartitionAdded: true) }
            return invalidState()
        case .prepareCommit:
            return result == .commit ? fail(.concurrentTransactions) : invalidState()
        case .prepareAbort:
            return result == .abort ? fail(.concurrentTransactions) : invalidState()
        case .empty:
            return result == .abort ? prepare(.prepareAbort, noPartitionAdded: true) : invalidState()
        case .dead, .prepareEpochFence:
            preconditionFailure("\(transactionalId) is \(m.state), which is never a current state")
        }
    }

    // MARK: writes

    private mutating func makeWrite(
        _ value: TransactionMetadata?, transactionalId: String? = nil, purpose: Purpose
    ) -> TransactionLogWrite {
        let id = transactionalId ?? value!.transactionalId
        let p = partition(for: id)
        guard let owner = ownership[p] else {
            preconditionFailure("a write for \(id) on \(TransactionLog.topicName)-\(p), which is not loaded here")
        }
        nextWriteId += 1
        let write = TransactionLogWrite(
            id: WriteID(rawValue: nextWriteId), partition: p, coordinatorEpoch: owner.coordinatorEpoch,
            transactionalId: id, value: value,
            valueVersion: settings.transactionVersionLevel.transactionLogValueVersion,
            timeoutMs: Int64(value?.timeoutMs ?? transactions[id]?.metadata.timeoutMs ?? 60_000))
        writes[write.id] = PendingWrite(write: write, purpose: purpose)
        return write
    }

    /// Kafka's mapping of a failed `__transaction_state` append to what a client understands.
    public static func clientCode(forAppendError code: ErrorCode) -> ErrorCode {
        switch code {
        case .unknownTopicOrPartition, .notEnoughReplicas, .notEnoughReplicasAfterAppend, .requestTimedOut:
            return .coordinatorNotAvailable
        case .notLeaderOrFollower, .kafkaStorageError: return .notCoordinator
        case .messageTooLarge, .recordListTooLarge: return .unknownServerError
        default: return code
        }
    }

    /// The driver's report of a write: appended and replicated (`error` nil), or failed.
    public mutating func written(_ id: WriteID, error appendError: ErrorCode?, nowMs: Int64) -> [TransactionEffect] {
        guard let pending = writes.removeValue(forKey: id) else { return [] }  // its partition was unloaded meanwhile
        let w = pending.write
        let txnId = w.transactionalId
        var error = appendError.map(Self.clientCode(forAppendError:))
        // The coordinator moved (or moved away and back) while the write was in flight.
        let stillOwned =
            ownership[w.partition] == .loaded(coordinatorEpoch: w.coordinatorEpoch) && transactions[txnId] != nil
        if error == nil && !stillOwned { error = .notCoordinator }
        if let error {
            return writeFailed(pending, error: error, stillOwned: stillOwned, nowMs: nowMs)
        }
        var entry = transactions[txnId]!
        guard let value = w.value else {
            // A tombstone: the id is gone.
            precondition(
                pending.purpose == .expire && entry.pending == .dead,
                "only an expiring id writes its tombstone: \(entry.metadata)")
            transactions.removeValue(forKey: txnId)
            return [.event(.expired(transactionalId: txnId))]
        }
        precondition(
            entry.pending == value.state,
            "\(txnId): wrote \(value.state) while \(entry.pending.map { "\($0)" } ?? "no change") was pending")
        entry.metadata.checkCompletion(to: value)
        entry.metadata = value
        entry.pending = nil
        // A prepared end is written: a failed fence before it no longer matters (Kafka clears the
        // flag in prepareComplete).
        if case .endTransaction = pending.purpose { entry.previousFenceFailed = false }
        transactions[txnId] = entry

        switch pending.purpose {
        case .initProducerId(let token):
            return [
                .respond(
                    token, .initProducerId(.none, producerId: value.producerId, producerEpoch: value.producerEpoch)),
                .event(
                    .initialized(
                        transactionalId: txnId, producerId: value.producerId, producerEpoch: value.producerEpoch)),
            ]
        case .addPartitions(let token):
            return [.respond(token, .addPartitions(.none))]
        case .endTransaction(let token, let initToken, _, let version):
            let result: TransactionResult = value.state == .prepareCommit ? .commit : .abort
            var effects: [TransactionEffect] = []
            if let token {
                // TV2 answers with the producer's next id and epoch (EndTxn v5): the bumped epoch,
                // or epoch 0 of the next id when this bump used the last one.
                let (nextId, nextEpoch): (Int64, Int16) =
                    !version.supportsEpochBump
                    ? (ProducerIds.none, ProducerIds.noEpoch)
                    : value.nextProducerId != ProducerIds.none
                        ? (value.nextProducerId, 0) : (value.producerId, value.producerEpoch)
                effects.append(.respond(token, .endTxn(.none, producerId: nextId, producerEpoch: nextEpoch)))
            }
            if let initToken {
                effects.append(
                    .respond(
                        initToken,
                        .initProducerId(
                            .concurrentTransactions, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch)))
            }
            return effects + startMarkers(txnId, result: result, coordinatorEpoch: w.coordinatorEpoch, nowMs: nowMs)
        case .complete:
            markerJobs.removeValue(forKey: txnId)
            return [.event(.completed(transactionalId: txnId, value.state == .completeCommit ? .commit : .abort))]
        case .expire:
            preconditionFailure("an expiry writes a tombstone")
        }
    }

    private mutating func writeFailed(
        _ pending: PendingWrite, error: ErrorCode, stillOwned: Bool, nowMs: Int64
    ) -> [TransactionEffect] {
        let txnId = pending.write.transactionalId
        var effects: [TransactionEffect] = [.event(.writeFailed(transactionalId: txnId, error))]
        if pending.purpose == .complete {
            // The markers are all written: the completion is retried while this coordinator owns
            // the id (a new coordinator completes it from the prepared state it loads).
            if stillOwned && error != .notCoordinator && error != .coordinatorLoadInProgress,
                var job = markerJobs[txnId]
            {
                job.completionRetryAtMs = nowMs + settings.retryBackoffMs
                markerJobs[txnId] = job
            } else {
                markerJobs.removeValue(forKey: txnId)
            }
            return effects
        }
        if stillOwned, var entry = transactions[txnId] {
            entry.pending = nil
            if case .endTransaction(_, _, true, let version) = pending.purpose, !version.supportsEpochBump {
                // The fenced epoch stays in memory without being written: do not bump it again.
                entry.previousFenceFailed = true
            }
            transactions[txnId] = entry
        }
        switch pending.purpose {
        case .initProducerId(let token):
            effects.append(
                .respond(
                    token, .initProducerId(error, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch)))
        case .addPartitions(let token):
            effects.append(.respond(token, .addPartitions(error)))
        case .endTransaction(let token, let initToken, _, _):
            if let token {
                effects.append(
                    .respond(token, .endTxn(error, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch)))
            }
            if let initToken {
                effects.append(
                    .respond(
                        initToken,
                        .initProducerId(error, producerId: ProducerIds.none, producerEpoch: ProducerIds.noEpoch)))
            }
        case .expire, .complete:
            break
        }
        return effects
    }

    // MARK: markers

    /// The prepared transaction's markers go out; with no partition (a TV2 abort of nothing) it
    /// completes at once.
    private mutating func startMarkers(
        _ txnId: String, result: TransactionResult, coordinatorEpoch: Int32, nowMs: Int64
    ) -> [TransactionEffect] {
        var entry = transactions[txnId]!
        let m = entry.metadata
        precondition(
            m.state == (result == .commit ? .prepareCommit : .prepareAbort), "markers follow a prepared \(result): \(m)"
        )
        let completion = m.prepareComplete(nowMs: nowMs)
        entry.pending = completion.state
        transactions[txnId] = entry
        let markers = TransactionMarkers(
            transactionalId: txnId, producerId: m.producerId, producerEpoch: m.producerEpoch, result: result,
            coordinatorEpoch: coordinatorEpoch, transactionVersion: m.clientTransactionVersion,
            partitions: m.partitions.sorted())
        markerJobs[txnId] = MarkerJob(
            markers: markers, completion: completion, waiting: [], inFlight: m.partitions, retryAtMs: nil)
        return m.partitions.isEmpty ? completeIfDone(txnId) : [.sendMarkers(markers)]
    }

    /// A partition leader's answer to a marker (WriteTxnMarkers), by Kafka's
    /// `TransactionMarkerRequestCompletionHandler`: written, retried later (leadership or
    /// replication trouble), or given up for good when the leader says this coordinator or
    /// producer epoch was fenced. A deleted topic's partition counts as written: report `.none`.
    public mutating func markerWritten(
        _ markers: TransactionMarkers, partition: TopicPartition, error: ErrorCode, nowMs: Int64
    ) -> [TransactionEffect] {
        guard var job = markerJobs[markers.transactionalId], job.markers.producerId == markers.producerId,
            job.markers.producerEpoch == markers.producerEpoch,
            job.markers.coordinatorEpoch == markers.coordinatorEpoch,
            job.inFlight.contains(partition)
        else { return [] }
        job.inFlight.remove(partition)
        switch error {
        case .none:
            break
        case .invalidProducerEpoch, .transactionCoordinatorFenced:
            markerJobs.removeValue(forKey: markers.transactionalId)
            return [.event(.markersAbandoned(transactionalId: markers.transactionalId, partition, error))]
        default:
            // NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
            // REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR and anything unexpected: try again.
            job.waiting.insert(partition)
            if job.retryAtMs == nil { job.retryAtMs = nowMs + settings.retryBackoffMs }
        }
        markerJobs[markers.transactionalId] = job
        return completeIfDone(markers.transactionalId)
    }

    private mutating func completeIfDone(_ txnId: String) -> [TransactionEffect] {
        guard let job = markerJobs[txnId], job.waiting.isEmpty, job.inFlight.isEmpty, job.completionRetryAtMs == nil
        else { return [] }
        return [.write(makeWrite(job.completion, purpose: .complete))]
    }

    // MARK: producer ids

    /// The controller allocated `count` producer ids from `start`.
    public mutating func producerIdsArrived(start: Int64, count: Int32) {
        producerIds.arrived(start: start, count: count)
    }

    /// The block could not be fetched; the next id request asks again.
    public mutating func producerIdFetchFailed() { producerIds.fetchFailed() }

    // MARK: time

    /// Aborts transactions open past their timeout, expires idle ids, and retries markers and
    /// completions that failed. Call it periodically; it keeps Kafka's check intervals itself.
    public mutating func tick(nowMs: Int64) -> [TransactionEffect] {
        var effects: [TransactionEffect] = []
        for txnId in markerJobs.keys.sorted() {
            guard var job = markerJobs[txnId] else { continue }
            if let at = job.completionRetryAtMs, at <= nowMs {
                job.completionRetryAtMs = nil
                markerJobs[txnId] = job
                effects += completeIfDone(txnId)
                continue
            }
            if let at = job.retryAtMs, at <= nowMs, !job.waiting.isEmpty {
                var markers = job.markers
                markers.partitions = job.waiting.sorted()
                job.inFlight.formUnion(job.waiting)
                job.waiting = []
                job.retryAtMs = nil
                markerJobs[txnId] = job
                effects.append(.sendMarkers(markers))
            }
        }
        if nowMs - (lastAbortCheckMs ?? .min / 2) >= settings.abortTimedOutTransactionsIntervalMs {
            lastAbortCheckMs = nowMs
            effects += abortTimedOutTransactions(nowMs: nowMs)
        }
        if nowMs - (lastExpiryCheckMs ?? .min / 2) >= settings.removeExpiredTransactionalIdsIntervalMs {
            lastExpiryCheckMs = nowMs
            effects += expireTransactionalIds(nowMs: nowMs)
        }
        return effects
    }

    /// Aborts every idle ongoing transaction older than its timeout (Kafka's
    /// `abortTimedOutTransactions`): its producer is fenced and the abort markers written.
    public mutating func abortTimedOutTransactions(nowMs: Int64) -> [TransactionEffect] {
        var effects: [TransactionEffect] = []
        for txnId in transactions.keys.sorted() {
            let entry = transactions[txnId]!
            guard entry.pending == nil, entry.metadata.state == .ongoing, check(txnId) == nil,
                entry.metadata.startTimestampMs + Int64(entry.metadata.timeoutMs) < nowMs
            else { continue }
            effects.append(
                .event(
                    .timedOut(
                        transactionalId: txnId, producerId: entry.metadata.producerId,
                        producerEpoch: entry.metadata.producerEpoch)))
            effects += fenceAndAbort(txnId, initToken: nil, nowMs: nowMs)
        }
        return effects
    }

    /// Expires ids with no transaction open and no change for `transactional.id.expiration.ms`:
    /// their tombstones are written, and they are forgotten once those are.
    public mutating func expireTransactionalIds(nowMs: Int64) -> [TransactionEffect] {
        var effects: [TransactionEffect] = []
        for txnId in transactions.keys.sorted() {
            var entry = transactions[txnId]!
            guard entry.pending == nil, entry.metadata.state.expirationAllowed, check(txnId) == nil,
                entry.metadata.lastUpdateTimestampMs <= nowMs - settings.transactionalIdExpirationMs
            else { continue }
            _ = entry.metadata.prepareDead()
            entry.pending = .dead
            transactions[txnId] = entry
            effects.append(.write(makeWrite(nil, transactionalId: txnId, purpose: .expire)))
        }
        return effects
    }

    /// The earliest time `tick` has something to do.
    public var nextDeadlineMs: Int64? {
        var next: Int64?
        func note(_ t: Int64?) { if let t { next = min(next ?? t, t) } }
        for job in markerJobs.values {
            note(job.completionRetryAtMs)
            if !job.waiting.isEmpty { note(job.retryAtMs) }
        }
        note(lastAbortCheckMs.map { $0 + settings.abortTimedOutTransactionsIntervalMs })
        note(lastExpiryCheckMs.map { $0 + settings.removeExpiredTransactionalIdsIntervalMs })
        return next
    }

    // MARK: loading and unloading

    /// This broker became leader of a `__transaction_state` partition at `coordinatorEpoch`
    /// (its leader epoch): requests for its ids answer COORDINATOR_LOAD_IN_PROGRESS until `load`.
    public mutating func loadStarted(partition: Int32, coordinatorEpoch: Int32) -> [TransactionEffect] {
        let effects = unload(partition: partition)
        ownership[partition] = .loading(coordinatorEpoch: coordinatorEpoch)
        return effects
    }

    /// Takes over the ids of a partition from its records in log order (the latest per id wins,
    /// a tombstone removes). A transaction found prepared has its markers written again and then
    /// completes, as Kafka's loader does. Ignored unless the partition is loading at this epoch.
    public mutating func load(
        partition: Int32, coordinatorEpoch: Int32, records: [TransactionLog.Record], nowMs: Int64
    ) -> [TransactionEffect] {
        guard ownership[partition] == .loading(coordinatorEpoch: coordinatorEpoch) else { return [] }
        var latest: [String: TransactionMetadata] = [:]
        for record in records {
            precondition(
                self.partition(for: record.transactionalId) == partition,
                "\(record.transactionalId) belongs to partition \(self.partition(for: record.transactionalId)), not \(partition)"
            )
            precondition(
                record.value.map { $0.transactionalId == record.transactionalId } ?? true,
                "the value of \(record.transactionalId) names \(record.value!.transactionalId)")
            latest[record.transactionalId] = record.value
        }
        ownership[partition] = .loaded(coordinatorEpoch: coordinatorEpoch)
        var effects: [TransactionEffect] = []
        var completing = 0
        for txnId in latest.keys.sorted() {
            transactions[txnId] = Entry(metadata: latest[txnId]!)
        }
        for txnId in latest.keys.sorted() {
            switch latest[txnId]!.state {
            case .prepareCommit:
                completing += 1
                effects += startMarkers(txnId, result: .commit, coordinatorEpoch: coordinatorEpoch, nowMs: nowMs)
            case .prepareAbort:
                completing += 1
                effects += startMarkers(txnId, result: .abort, coordinatorEpoch: coordinatorEpoch, nowMs: nowMs)
            default:
                break
            }
        }
        return [.event(.loaded(partition: partition, transactionalIds: latest.count, completing: completing))] + effects
    }

    /// This broker no longer leads the partition: its ids, writes and markers are dropped here;
    /// requests waiting on a write learn NOT_COORDINATOR.
    public mutating func unload(partition: Int32) -> [TransactionEffect] {
        ownership.removeValue(forKey: partition)
        var effects: [TransactionEffect] = []
        for id in writes.keys.sorted() where writes[id]!.write.partition == partition {
            let pending = writes.removeValue(forKey: id)!
            effects += writeFailed(pending, error: .notCoordinator, stillOwned: false, nowMs: 0).filter {
                if case .respond = $0 { return true } else { return false }
            }
        }
        for txnId in transactions.keys where self.partition(for: txnId) == partition {
            transactions.removeValue(forKey: txnId)
            markerJobs.removeValue(forKey: txnId)
        }
        return effects
    }
}
