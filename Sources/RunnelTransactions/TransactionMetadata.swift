import RunnelCore
import RunnelWire

/// What the coordinator knows of one transactional id: the value of its `__transaction_state`
/// record (Kafka's `TransactionMetadata`).
///
/// Changes go in two steps, as in Kafka: a `prepare...` function computes the next value (a
/// transition, checked against `TransactionState.validPreviousStates`), the coordinator writes
/// it to `__transaction_state`, and only once that write is replicated does `completeTransition`
/// make it current, after checking the relations Kafka's `completeTransitionTo` checks.
public struct TransactionMetadata: Sendable, Equatable, CustomStringConvertible {
    public let transactionalId: String
    public var producerId: Int64
    /// The producer id before the last transition (KIP-360 retries; TV2 overflow retries).
    public var previousProducerId: Int64
    /// Transactions v2: the id the producer moves to once this transaction completes, when its
    /// epochs ran out (-1 otherwise).
    public var nextProducerId: Int64
    public var producerEpoch: Int16
    /// The epoch before the last bump, so a retried InitProducerId or EndTxn is recognized
    /// (-1 when a new producer instance fenced the old one).
    public var lastProducerEpoch: Int16
    public var timeoutMs: Int32
    public var state: TransactionState
    public var partitions: Set<TopicPartition>
    /// When the open transaction started (its first partition added); -1 for none.
    public var startTimestampMs: Int64
    public var lastUpdateTimestampMs: Int64
    /// The protocol the client used when this state was entered.
    public var clientTransactionVersion: TransactionVersion

    public init(
        transactionalId: String, producerId: Int64, previousProducerId: Int64 = ProducerIds.none,
        nextProducerId: Int64 = ProducerIds.none, producerEpoch: Int16, lastProducerEpoch: Int16 = ProducerIds.noEpoch,
        timeoutMs: Int32, state: TransactionState, partitions: Set<TopicPartition> = [], startTimestampMs: Int64 = -1,
        lastUpdateTimestampMs: Int64, clientTransactionVersion: TransactionVersion = .v0
    ) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.previousProducerId = previousProducerId
        self.nextProducerId = nextProducerId
        self.producerEpoch = producerEpoch
        self.lastProducerEpoch = lastProducerEpoch
        self.timeoutMs = timeoutMs
        self.state = state
        self.partitions = partitions
        self.startTimestampMs = startTimestampMs
        self.lastUpdateTimestampMs = lastUpdateTimestampMs
        self.clientTransactionVersion = clientTransactionVersion
    }

    public var isProducerEpochExhausted: Bool { ProducerIds.isEpochExhausted(producerEpoch) }

    public var description: String {
        "\(transactionalId): \(state) producer \(producerId) epoch \(producerEpoch) last \(lastProducerEpoch)"
            + (previousProducerId >= 0 ? " previous \(previousProducerId)" : "")
            + (nextProducerId >= 0 ? " next \(nextProducerId)" : "")
            + " timeout \(timeoutMs) \(clientTransactionVersion) partitions [\(partitions.sorted().map(\.description).joined(separator: ","))]"
            + " start \(startTimestampMs) updated \(lastUpdateTimestampMs)"
    }

    // MARK: transitions (each returns the value to write; nothing changes until it is written)

    /// The value `next` may take from this one: Kafka's `prepareTransitionTo`, whose checks are
    /// invariants here (a coordinator that breaks them has a bug, not a client).
    private func transition(
        to state: TransactionState, _ change: (inout TransactionMetadata) -> Void
    ) -> TransactionMetadata {
        precondition(
            state.validPreviousStates.contains(self.state),
            "\(transactionalId): \(state) cannot follow \(self.state) (valid: \(state.validPreviousStates.map(\.description).sorted()))"
        )
        var next = self
        next.state = state
        next.previousProducerId = producerId
        change(&next)
        precondition(next.producerId >= 0, "\(transactionalId): producer id \(next.producerId) is negative")
        precondition(
            state == .dead || next.producerEpoch >= 0,
            "\(transactionalId): producer epoch \(next.producerEpoch) is negative")
        return next
    }

    /// Fences the producer of an ongoing transaction (a new instance's InitProducerId, or a
    /// timeout): the epoch goes up by one, unless a previous fence failed to be written (that
    /// bumped epoch was never handed out) or it is already at `Int16.max`.
    public func prepareFenceProducerEpoch(previousFenceFailed: Bool) -> TransactionMetadata {
        transition(to: .prepareEpochFence) { next in
            if !previousFenceFailed && producerEpoch < Int16.max { next.producerEpoch = producerEpoch + 1 }
        }
    }

    /// InitProducerId for an id with no open transaction: the epoch goes up by one. With the
    /// epoch the client holds (KIP-360, InitProducerId v3+): equal to the current epoch (or no
    /// epoch yet), the client recovers and the last epoch is kept; equal to the last epoch, it
    /// retries a bump it did not hear of, and gets the current epoch again; otherwise it is a
    /// fenced instance (PRODUCER_FENCED).
    public func prepareIncrementProducerEpoch(
        timeoutMs: Int32, expectedEpoch: Int16?, nowMs: Int64
    ) -> Result<TransactionMetadata, ErrorCode> {
        precondition(
            !isProducerEpochExhausted,
            "\(transactionalId): no epoch left for producer \(producerId): rotate the producer id")
        let bumped = producerEpoch + 1
        var epoch = bumped
        var last = ProducerIds.noEpoch
        if let expected = expectedEpoch {
            if producerEpoch == ProducerIds.noEpoch || expected == producerEpoch {
                last = producerEpoch
            } else if expected == lastProducerEpoch {
                epoch = producerEpoch
                last = lastProducerEpoch
            } else {
                return .failure(.producerFenced)
            }
        }
        return .success(
            transition(to: .empty) { next in
                next.producerEpoch = epoch
                next.lastProducerEpoch = last
                next.timeoutMs = timeoutMs
                next.partitions = []
                next.startTimestampMs = -1
                next.lastUpdateTimestampMs = nowMs
            })
    }

    /// InitProducerId when the epochs of the producer id ran out: a new producer id at epoch 0.
    /// `recordLastEpoch`: the client named its epoch (so a retry can be recognized).
    public func prepareProducerIdRotation(
        newProducerId: Int64, timeoutMs: Int32, nowMs: Int64, recordLastEpoch: Bool
    ) -> TransactionMetadata {
        precondition(
            !state.hasPendingTransaction,
            "\(transactionalId): cannot rotate producer ids while a transaction is \(state)")
        return transition(to: .empty) { next in
            next.producerId = newProducerId
            next.producerEpoch = 0
            next.lastProducerEpoch = recordLastEpoch ? producerEpoch : ProducerIds.noEpoch
            next.timeoutMs = timeoutMs
            next.partitions = []
            next.startTimestampMs = -1
            next.lastUpdateTimestampMs = nowMs
        }
    }

    /// Partitions join the transaction (AddPartitionsToTxn, AddOffsetsToTxn, or a TV2 produce);
    /// the first one starts it.
    public func prepareAddPartitions(
        _ added: Set<TopicPartition>, nowMs: Int64, clientTransactionVersion: TransactionVersion
    ) -> TransactionMetadata {
        transition(to: .ongoing) { next in
            next.partitions.formUnion(added)
            if state == .empty || state == .completeAbort || state == .completeCommit { next.startTimestampMs = nowMs }
            next.lastUpdateTimestampMs = nowMs
            next.clientTransactionVersion = clientTransactionVersion
        }
    }

    /// EndTxn (or a server abort) is accepted: PrepareCommit or PrepareAbort. Transactions v2
    /// bump the epoch here (the markers carry the bumped epoch, which the next transaction uses);
    /// `nextProducerId` is the new id when this bump uses the last epoch. `noPartitionAdded`: a
    /// TV2 abort with nothing open, whose start time is now.
    public func prepareAbortOrCommit(
        _ state: TransactionState, clientTransactionVersion: TransactionVersion, nextProducerId: Int64,
        nowMs: Int64, noPartitionAdded: Bool
    ) -> TransactionMetadata {
        precondition(
            state == .prepareCommit || state == .prepareAbort,
            "\(transactionalId): \(state) is not an end of a transaction")
        return transition(to: state) { next in
            if clientTransactionVersion.supportsEpochBump {
                // An epoch already at the maximum (a broken state) aborts without overflowing.
                if !(producerEpoch == Int16.max && state == .prepareAbort) { next.producerEpoch = producerEpoch + 1 }
                next.lastProducerEpoch = producerEpoch
            }
            next.startTimestampMs = noPartitionAdded ? nowMs : startTimestampMs
            next.nextProducerId = nextProducerId
            next.lastUpdateTimestampMs = nowMs
            next.clientTransactionVersion = clientTransactionVersion
        }
    }

    /// Every marker is written: CompleteCommit or CompleteAbort. A TV2 producer whose epochs ran
    /// out moves to its next producer id at epoch 0 (the client saw the last epoch, then 0).
    public func prepareComplete(nowMs: Int64) -> TransactionMetadata {
        precondition(
            state == .prepareCommit || state == .prepareAbort,
            "\(transactionalId): only a prepared transaction completes, not \(state)")
        return transition(to: state == .prepareCommit ? .completeCommit : .completeAbort) { next in
            if clientTransactionVersion.supportsEpochBump && nextProducerId != ProducerIds.none {
                next.producerId = nextProducerId
                next.producerEpoch = 0
            }
            next.nextProducerId = ProducerIds.none
            next.partitions = []
            next.lastUpdateTimestampMs = nowMs
        }
    }

    /// The id expires: its tombstone is written, then it is forgotten.
    public func prepareDead() -> TransactionMetadata {
        transition(to: .dead) { next in next.partitions = [] }
    }

    /// Checks that `next`, now written, may follow this value (Kafka's `completeTransitionTo`):
    /// the epoch stays or goes up by one (or restarts at 0 with a new id), the start time and
    /// timeout hold within a transaction, no partition leaves an open one. (Update times are
    /// wall-clock times, which may go back: not checked.)
    public func checkCompletion(to next: TransactionMetadata) {
        // Formatted only when a check fails: this runs on every transaction state write.
        func why() -> String { "\(transactionalId): \(self) -> \(next)" }
        switch next.state {
        case .empty:
            precondition(
                producerEpoch == next.producerEpoch || next.producerEpoch == producerEpoch &+ 1
                    || (next.producerEpoch == 0 && next.producerId != producerId),
                "InitProducerId bumps the epoch by one: \(why())")
            precondition(
                next.partitions.isEmpty && next.startTimestampMs == -1, "an Empty transaction holds nothing: \(why())")
        case .ongoing:
            precondition(validProducerEpoch(next), "adding partitions keeps the producer: \(why())")
            precondition(
                next.partitions.isSuperset(of: partitions), "no partition leaves an open transaction: \(why())")
            precondition(timeoutMs == next.timeoutMs, "the timeout holds within a transaction: \(why())")
        case .prepareCommit, .prepareAbort:
            let emptyAbort =
                next.state == .prepareAbort && next.clientTransactionVersion.supportsEpochBump
                && (state == .empty || state == .completeCommit || state == .completeAbort)
            precondition(validProducerEpoch(next), "ending a transaction keeps the producer: \(why())")
            precondition(partitions == next.partitions, "the partitions of an ending transaction hold: \(why())")
            precondition(timeoutMs == next.timeoutMs, "the timeout holds within a transaction: \(why())")
            precondition(
                startTimestampMs == next.startTimestampMs || emptyAbort,
                "the start time holds within a transaction: \(why())")
        case .completeCommit, .completeAbort:
            precondition(validProducerEpoch(next), "completing keeps the producer: \(why())")
            precondition(
                timeoutMs == next.timeoutMs && next.startTimestampMs != -1,
                "a completed transaction had a start: \(why())")
        case .prepareEpochFence, .dead:
            preconditionFailure("\(next.state) is never written as the current state: \(why())")
        }
    }

    /// Kafka's `validProducerEpoch`: TV2 overflow completion moves to the next id at epoch 0;
    /// a TV2 end of transaction bumps the epoch by one; otherwise producer and epoch hold.
    private func validProducerEpoch(_ next: TransactionMetadata) -> Bool {
        let v2 = next.clientTransactionVersion.supportsEpochBump
        if v2 && (next.state == .completeCommit || next.state == .completeAbort) && next.producerEpoch == 0
            && next.producerId != producerId
        {
            return next.lastProducerEpoch == lastProducerEpoch && next.previousProducerId == producerId
        }
        if v2 && (next.state == .prepareCommit || next.state == .prepareAbort) {
            return next.lastProducerEpoch == producerEpoch && next.producerId == producerId
        }
        return next.producerEpoch == producerEpoch && next.producerId == producerId
    }
}
