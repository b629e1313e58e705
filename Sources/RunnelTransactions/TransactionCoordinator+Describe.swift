import RunnelCore
import RunnelWire

/// One transactional id as DescribeTransactions reports it (KIP-664).
public struct TransactionDescription: Sendable, Equatable {
    public var transactionalId: String
    public var state: TransactionState
    public var producerId: Int64
    public var producerEpoch: Int16
    public var timeoutMs: Int32
    /// When the current (or last) transaction started; -1 when none has.
    public var startTimestampMs: Int64
    /// The partitions of the open transaction; while it ends, those whose marker is not written yet.
    public var partitions: [TopicPartition]

    public init(
        transactionalId: String, state: TransactionState, producerId: Int64, producerEpoch: Int16, timeoutMs: Int32,
        startTimestampMs: Int64, partitions: [TopicPartition]
    ) {
        self.transactionalId = transactionalId
        self.state = state
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.timeoutMs = timeoutMs
        self.startTimestampMs = startTimestampMs
        self.partitions = partitions
    }
}

/// One transactional id as ListTransactions reports it.
public struct TransactionListing: Sendable, Equatable {
    public var transactionalId: String
    public var producerId: Int64
    public var state: TransactionState

    public init(transactionalId: String, producerId: Int64, state: TransactionState) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.state = state
    }
}

/// What ListTransactions finds: an error for the whole coordinator, or the matching ids.
public struct TransactionList: Sendable, Equatable {
    public var error: ErrorCode
    /// State names of the filter that name no state (Kafka answers them, and filters on the rest).
    public var unknownStateFilters: [String]
    /// The matching ids, by transactional id.
    public var transactions: [TransactionListing]
}

/// The read-only queries of KIP-664 and KIP-994 (DescribeTransactions, ListTransactions), as
/// Kafka's TransactionCoordinator and TransactionStateManager answer them. Nothing changes.
extension TransactionCoordinator {
    /// Whether an id is on its way out: its tombstone is being written (Kafka's Dead state,
    /// "in the process of expiration and removal"), so the queries no longer report it.
    private func isExpiring(_ entry: Entry) -> Bool {
        entry.metadata.state == .dead || entry.pending == .dead
    }

    /// DescribeTransactions for one id (Kafka's `handleDescribeTransactions`): NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS when this coordinator does not serve it now, INVALID_REQUEST
    /// for an empty id, TRANSACTIONAL_ID_NOT_FOUND for an id it does not know (or is expiring).
    /// The state is the one written to `__transaction_state`, not a change still in flight. While
    /// a transaction ends (PrepareCommit, PrepareAbort) its partitions are those still waiting for
    /// their marker, as Kafka removes each partition once its marker is written.
    public func describe(_ transactionalId: String) -> Result<TransactionDescription, ErrorCode> {
        guard !transactionalId.isEmpty else { return .failure(.invalidRequest) }
        if let code = check(transactionalId) { return .failure(code) }
        guard let entry = transactions[transactionalId], !isExpiring(entry) else {
            return .failure(.transactionalIdNotFound)
        }
        let m = entry.metadata
        var partitions = m.partitions
        if m.state == .prepareCommit || m.state == .prepareAbort, let remaining = markersInProgress[transactionalId] {
            partitions = remaining
        }
        return .success(
            TransactionDescription(
                transactionalId: transactionalId, state: m.state, producerId: m.producerId,
                producerEpoch: m.producerEpoch, timeoutMs: m.timeoutMs, startTimestampMs: m.startTimestampMs,
                partitions: partitions.sorted()))
    }

    /// ListTransactions (Kafka's `listTransactionStates`): COORDINATOR_LOAD_IN_PROGRESS while any
    /// partition of `__transaction_state` is loading here (the coordinator cannot tell which ids
    /// the filters would match there); otherwise every id it serves that matches all the filters
    /// given. `states`: state names as Kafka spells them (an empty list matches every state;
    /// names it does not know come back in `unknownStateFilters` and match nothing).
    /// `producerIds`: empty matches every producer. `durationMs` (KIP-994): when 0 or more, only
    /// ids whose transaction started more than that long before `nowMs`; an id that never
    /// started one (start time -1) passes, as in Kafka, whose check is the same subtraction.
    public func list(
        states: [String], producerIds: Set<Int64>, durationMs: Int64, nowMs: Int64
    ) -> TransactionList {
        if ownership.values.contains(where: { if case .loading = $0 { true } else { false } }) {
            return TransactionList(error: .coordinatorLoadInProgress, unknownStateFilters: [], transactions: [])
        }
        var unknown: [String] = []
        var wanted = Set<TransactionState>()
        for name in states {
            if let state = TransactionState(name: name) {
                wanted.insert(state)
            } else if !unknown.contains(name) {
                unknown.append(name)
            }
        }
        var out: [TransactionListing] = []
        for txnId in transactions.keys.sorted() {
            let entry = transactions[txnId]!
            let m = entry.metadata
            guard !isExpiring(entry) else { continue }
            if !producerIds.isEmpty && !producerIds.contains(m.producerId) { continue }
            if !states.isEmpty && !wanted.contains(m.state) { continue }
            if durationMs >= 0 && nowMs - m.startTimestampMs <= durationMs { continue }
            out.append(TransactionListing(transactionalId: txnId, producerId: m.producerId, state: m.state))
        }
        return TransactionList(error: .none, unknownStateFilters: unknown, transactions: out)
    }
}

extension TransactionState {
    /// The state Kafka names `name` (its `TransactionState.fromName`: exact spelling), or nil.
    public init?(name: String) {
        guard let state = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = state
    }
}
