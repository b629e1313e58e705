import RunnelCore
import RunnelWire

/// Who appends a batch as leader, which decides how much of it is checked (Kafka's AppendOrigin).
public enum AppendOrigin: Sendable, Equatable {
    /// A client's Produce.
    case client
    /// A coordinator writing its own records to an internal topic.
    case coordinator
}

/// Producer state of one partition, as Kafka's ProducerStateManager keeps it: per producer id,
/// its epoch, the last five batches it wrote (sequence range and offsets, so retries are answered
/// with their original offsets and gaps or stale epochs are refused), the coordinator epoch of
/// its last transaction marker and the first offset of its open transaction; and across
/// producers, the open transactions (by first offset) and the completed ones whose marker the
/// high watermark has not passed yet. The first unstable offset, the lower of the two first
/// offsets, bounds the last stable offset (LSO) that read_committed consumers read up to.
public struct ProducerStateTable: Sendable {
    /// How many recent batches per producer are remembered for duplicate detection (Kafka: 5).
    public static let batchesRememberedMax = 5

    public struct BatchMetadata: Sendable, Equatable {
        public var firstSequence: Int32
        public var lastSequence: Int32
        public var firstOffset: Int64
        public var lastOffset: Int64
        public var timestamp: Int64
    }

    public struct Entry: Sendable, Equatable {
        public var epoch: Int16
        public var batches: [BatchMetadata]
        public var lastTimestamp: Int64
        /// The coordinator epoch of the last marker (-1 before any).
        public var coordinatorEpoch: Int32 = -1
        /// The first offset of the producer's open transaction.
        public var currentTxnFirstOffset: Int64?
        public var lastSequence: Int32 { batches.last?.lastSequence ?? -1 }
    }

    /// A transaction whose marker was appended.
    public struct CompletedTransaction: Sendable, Equatable {
        public var producerId: Int64
        public var firstOffset: Int64
        /// The marker's offset.
        public var lastOffset: Int64
        public var isAborted: Bool
        /// The LSO when the marker was appended: the first offset of the earliest transaction of
        /// another producer still open, or the offset after the marker (what the aborted-
        /// transaction index keeps, so a fetch knows when it may stop looking).
        public var lastStableOffset: Int64
    }

    /// What to do with an incoming batch.
    public enum Verdict: Sendable, Equatable {
        case append
        /// A retry of a batch already in the log: answer with its offsets, write nothing.
        case duplicate(BatchMetadata)
        case reject(ErrorCode, String)
    }

    /// KIP-890 part 1: names one verification a leader started for a producer before it asked
    /// the transaction coordinator whether a partition is in the producer's transaction.
    public struct VerificationGuard: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt64
        public var description: String { "guard#\(rawValue)" }
    }

    /// What a client's append carries about the coordinator's verification.
    public enum Verification: Sendable, Equatable {
        /// Not checked: verification is off, or the append is not a client's transactional one.
        case notRequired
        /// Verified with the coordinator under this guard; nil when the producer's transaction
        /// was already open here, so no question was asked.
        case verified(VerificationGuard?)
    }

    public private(set) var producers: [Int64: Entry] = [:]
    /// Verifications in progress, by producer: cleared when the producer's transaction opens
    /// here or a marker for it is written, so an append verified before a marker ended the
    /// transaction cannot open a new one nobody would end (a hanging transaction).
    public private(set) var verifications: [Int64: (guard: VerificationGuard, epoch: Int16, startedMs: Int64)] = [:]
    private var nextGuard: UInt64 = 0
    /// Open transactions, (first offset, producer id), ascending by first offset.
    public private(set) var ongoing: [(firstOffset: Int64, producerId: Int64)] = []
    /// Completed transactions whose marker is at or above the high watermark, ascending by first offset.
    public private(set) var unreplicated: [CompletedTransaction] = []

    public init() {}

    static func lastSequence(_ header: RecordBatchHeader) -> Int32 {
        // Sequences wrap at Int32.max, as Kafka's do.
        let last = Int64(header.baseSequence) + Int64(header.lastOffsetDelta)
        return last > Int64(Int32.max) ? Int32(last - Int64(Int32.max) - 1) : Int32(last)
    }

    static func inSequence(last: Int32, next: Int32) -> Bool {
        next == (last == Int32.max ? 0 : last + 1)
    }

    // MARK: verification (KIP-890 part 1)

    /// Whether `producerId` has a transaction open here at `epoch` (Kafka's hasOngoingTransaction).
    public func hasOngoingTransaction(producerId: Int64, epoch: Int16) -> Bool {
        guard let entry = producers[producerId] else { return false }
        return entry.currentTxnFirstOffset != nil && entry.epoch == epoch
    }

    /// Starts (or joins) a verification for a transactional append of `producerId` at `epoch`:
    /// nil when its transaction is open here already and nothing needs asking.
    public mutating func startVerification(producerId: Int64, epoch: Int16, nowMs: Int64) -> VerificationGuard? {
        if hasOngoingTransaction(producerId: producerId, epoch: epoch) { return nil }
        if let existing = verifications[producerId], existing.epoch >= epoch { return existing.guard }
        nextGuard += 1
        let fresh = VerificationGuard(rawValue: nextGuard)
        verifications[producerId] = (fresh, epoch, nowMs)
        return fresh
    }

    // MARK: checks (appends from clients and coordinators)

    /// Decides about a data batch appended as leader (not a replica's). A client's batch has its
    /// epoch, transaction state and sequence checked; a coordinator's (the group coordinator's
    /// transactional offset commits, which Kafka writes with sequence 0 every time) only its epoch
    /// and transaction state, as Kafka's ProducerAppendInfo does for AppendOrigin.COORDINATOR. A
    /// transactional batch that would open a transaction needs the verification guard still in
    /// force for its producer (`verification`, KIP-890 part 1).
    public func check(
        _ header: RecordBatchHeader, origin: AppendOrigin, verification: Verification = .notRequired
    ) -> Verdict {
        // Markers are checked by `checkMarker`.
        guard header.producerId >= 0, !header.isControl else { return .append }
        if case .verified(let verified) = verification, header.isTransactional,
            !hasOngoingTransaction(producerId: header.producerId, epoch: header.producerEpoch),
            verified == nil || verifications[header.producerId]?.guard != verified
        {
            return .reject(
                .invalidTxnState,
                "The transaction of producer \(header.producerId) at epoch \(header.producerEpoch) is not open on this partition: it was not added to the transaction, or the transaction ended since it was verified."
            )
        }
        let firstSeq = header.baseSequence
        let lastSeq = Self.lastSequence(header)
        guard let entry = producers[header.producerId] else {
            // No state (new producer, or state gone with retention): accept any sequence.
            return .append
        }
        if header.producerEpoch < entry.epoch {
            return .reject(
                .invalidProducerEpoch,
                "Epoch \(header.producerEpoch) of producer \(header.producerId) is older than the current epoch \(entry.epoch)."
            )
        }
        if entry.currentTxnFirstOffset != nil && !header.isTransactional {
            return .reject(
                .invalidTxnState,
                "Producer \(header.producerId) wrote a non-transactional batch while its transaction is open.")
        }
        guard origin == .client else { return .append }
        if header.producerEpoch > entry.epoch {
            if firstSeq != 0 && entry.epoch >= 0 {
                return .reject(
                    .outOfOrderSequenceNumber,
                    "Invalid sequence number \(firstSeq) for new epoch \(header.producerEpoch) of producer \(header.producerId); expected 0."
                )
            }
            return .append
        }
        if let duplicate = entry.batches.first(where: { $0.firstSequence == firstSeq && $0.lastSequence == lastSeq }) {
            return .duplicate(duplicate)
        }
        if entry.batches.isEmpty || Self.inSequence(last: entry.lastSequence, next: firstSeq) {
            return .append
        }
        return .reject(
            .outOfOrderSequenceNumber,
            "Out of order sequence number for producer \(header.producerId) at offset: expected \(entry.lastSequence == Int32.max ? 0 : entry.lastSequence + 1), got \(firstSeq)."
        )
    }

    /// What to do with a transaction marker the coordinator writes.
    public enum MarkerVerdict: Sendable, Equatable {
        case append
        /// A TV2 marker repeated after it took effect (its epoch is the producer's and no
        /// transaction is open): success, nothing written (KAFKA-19999).
        case alreadyWritten
        case reject(ErrorCode, String)
    }

    /// Decides about a marker (WriteTxnMarkers). A marker from an older coordinator epoch is
    /// TRANSACTION_COORDINATOR_FENCED. Its producer epoch must be at least the producer's; with
    /// transactions v2 strictly above it (KIP-1228): a TV2 transaction's markers carry its epoch
    /// plus one, which the next transaction's data then carries, so a delayed marker of the
    /// previous transaction has an epoch no higher than the open one's and is refused
    /// (INVALID_PRODUCER_EPOCH) rather than ending it.
    public func checkMarker(
        producerId: Int64, producerEpoch: Int16, _ marker: EndTransactionMarker, transactionVersion: Int16
    ) -> MarkerVerdict {
        guard let entry = producers[producerId] else { return .append }
        if transactionVersion >= 2 {
            if producerEpoch == entry.epoch && entry.currentTxnFirstOffset == nil { return .alreadyWritten }
            if producerEpoch <= entry.epoch {
                return .reject(
                    .invalidProducerEpoch,
                    "Transaction marker epoch \(producerEpoch) of producer \(producerId) is not above the current epoch \(entry.epoch) (transactions v2)."
                )
            }
        } else if producerEpoch < entry.epoch {
            return .reject(
                .invalidProducerEpoch,
                "Transaction marker epoch \(producerEpoch) of producer \(producerId) is older than the current epoch \(entry.epoch)."
            )
        }
        if marker.coordinatorEpoch < entry.coordinatorEpoch {
            return .reject(
                .transactionCoordinatorFenced,
                "Coordinator epoch \(marker.coordinatorEpoch) of the marker for producer \(producerId) is older than \(entry.coordinatorEpoch)."
            )
        }
        return .append
    }

    // MARK: updates (every append: leader, follower, recovery)

    /// Records a batch written at `header.baseOffset ... lastOffset`; `marker` is the marker of a
    /// control batch. Returns the transaction the marker completed (it is then unreplicated
    /// until `highWatermarkUpdated` passes the marker), if one was open.
    @discardableResult
    public mutating func update(
        _ header: RecordBatchHeader, marker: EndTransactionMarker? = nil
    ) -> CompletedTransaction? {
        guard header.producerId >= 0 else { return nil }
        if header.isControl {
            guard let marker else { return nil }  // an empty control batch the cleaner left
            return appendMarker(header, marker)
        }
        var entry =
            producers[header.producerId]
            ?? Entry(epoch: header.producerEpoch, batches: [], lastTimestamp: header.maxTimestamp)
        if header.producerEpoch > entry.epoch {
            entry.epoch = header.producerEpoch
            entry.batches = []
        } else if header.producerEpoch < entry.epoch {
            return nil
        }
        if header.baseSequence >= 0 {
            entry.batches.append(
                BatchMetadata(
                    firstSequence: header.baseSequence, lastSequence: Self.lastSequence(header),
                    firstOffset: header.baseOffset, lastOffset: header.lastOffset, timestamp: header.maxTimestamp))
            if entry.batches.count > Self.batchesRememberedMax {
                entry.batches.removeFirst(entry.batches.count - Self.batchesRememberedMax)
            }
        }
        entry.lastTimestamp = max(entry.lastTimestamp, header.maxTimestamp)
        if header.isTransactional && entry.currentTxnFirstOffset == nil {
            verifications[header.producerId] = nil
            entry.currentTxnFirstOffset = header.baseOffset
            precondition(
                ongoing.last.map { $0.firstOffset < header.baseOffset } ?? true,
                "transactions open in offset order (\(header.baseOffset) after \(ongoing.last!.firstOffset))")
            ongoing.append((header.baseOffset, header.producerId))
        }
        producers[header.producerId] = entry
        return nil
    }

    private mutating func appendMarker(
        _ header: RecordBatchHeader, _ marker: EndTransactionMarker
    ) -> CompletedTransaction? {
        var entry =
            producers[header.producerId]
            ?? Entry(epoch: header.producerEpoch, batches: [], lastTimestamp: header.maxTimestamp)
        var completed: CompletedTransaction?
        if let first = entry.currentTxnFirstOffset {
            let next = ongoing.first { $0.producerId != header.producerId }?.firstOffset
            completed = CompletedTransaction(
                producerId: header.producerId, firstOffset: first, lastOffset: header.baseOffset,
                isAborted: !marker.committed, lastStableOffset: next ?? header.baseOffset + 1)
            ongoing.removeAll { $0.producerId == header.producerId }
            let at = unreplicated.firstIndex { $0.firstOffset > first } ?? unreplicated.count
            unreplicated.insert(completed!, at: at)
        }
        if header.producerEpoch > entry.epoch { entry.batches = [] }
        verifications[header.producerId] = nil
        entry.epoch = max(entry.epoch, header.producerEpoch)
        entry.coordinatorEpoch = marker.coordinatorEpoch
        entry.currentTxnFirstOffset = nil
        entry.lastTimestamp = max(entry.lastTimestamp, header.maxTimestamp)
        producers[header.producerId] = entry
        return completed
    }

    // MARK: the last stable offset

    /// The first offset that is not stable: of the earliest open transaction, or of a completed
    /// one whose marker the high watermark has not passed. nil: everything is stable.
    public var firstUnstableOffset: Int64? {
        switch (ongoing.first?.firstOffset, unreplicated.first?.firstOffset) {
        case let (a?, b?): return min(a, b)
        case let (a, b): return a ?? b
        }
    }

    /// The first offset of the earliest open transaction (whatever the replication).
    public var firstUndecidedOffset: Int64? { ongoing.first?.firstOffset }

    /// The high watermark moved: completed transactions whose marker lies below it are stable.
    public mutating func highWatermarkUpdated(_ highWatermark: Int64) {
        unreplicated.removeAll { $0.lastOffset < highWatermark }
    }

    // MARK: expiry

    /// Forgets producers with no open transaction idle since before `nowMs - expirationMs`
    /// (`producer.id.expiration.ms`).
    public mutating func removeExpired(nowMs: Int64, expirationMs: Int64) {
        producers = producers.filter {
            $0.value.currentTxnFirstOffset != nil || nowMs - $0.value.lastTimestamp < expirationMs
        }
        verifications = verifications.filter { nowMs - $0.value.startedMs < expirationMs }
    }

    /// Forgets producers idle since before `cutoff`, keeping those with an open transaction.
    public mutating func expire(before cutoff: Int64) {
        producers = producers.filter { $0.value.currentTxnFirstOffset != nil || $0.value.lastTimestamp >= cutoff }
    }

    // MARK: snapshots

    /// The table as a snapshot would hold it (one entry per producer; the open transactions come
    /// back from the entries; unreplicated ones are not kept, as in Kafka).
    public init(snapshot entries: [ProducerSnapshot.Entry]) {
        for e in entries {
            var batches: [BatchMetadata] = []
            if e.lastOffset >= 0 {
                let firstSeq = Int64(e.lastSequence) - Int64(e.offsetDelta)
                batches = [
                    BatchMetadata(
                        firstSequence: Int32(firstSeq < 0 ? firstSeq + Int64(Int32.max) + 1 : firstSeq),
                        lastSequence: e.lastSequence,
                        firstOffset: e.lastOffset - Int64(e.offsetDelta), lastOffset: e.lastOffset,
                        timestamp: e.timestamp)
                ]
            }
            producers[e.producerId] = Entry(
                epoch: e.producerEpoch, batches: batches, lastTimestamp: e.timestamp,
                coordinatorEpoch: e.coordinatorEpoch,
                currentTxnFirstOffset: e.currentTxnFirstOffset >= 0 ? e.currentTxnFirstOffset : nil)
            if e.currentTxnFirstOffset >= 0 { ongoing.append((e.currentTxnFirstOffset, e.producerId)) }
        }
        ongoing.sort { $0.firstOffset < $1.firstOffset }
    }

    /// The entries of a snapshot of this table, by producer id.
    public var snapshotEntries: [ProducerSnapshot.Entry] {
        producers.keys.sorted().map { id in
            let e = producers[id]!
            let last = e.batches.last
            return ProducerSnapshot.Entry(
                producerId: id, producerEpoch: e.epoch, lastSequence: last?.lastSequence ?? -1,
                lastOffset: last?.lastOffset ?? -1,
                offsetDelta: last.map { Int32($0.lastOffset - $0.firstOffset) } ?? 0, timestamp: e.lastTimestamp,
                coordinatorEpoch: e.coordinatorEpoch, currentTxnFirstOffset: e.currentTxnFirstOffset ?? -1)
        }
    }
}

extension AbortedTransaction {
    /// The index entry of an aborted transaction.
    public init(_ completed: ProducerStateTable.CompletedTransaction) {
        precondition(completed.isAborted, "only aborted transactions are indexed")
        self.init(
            producerId: completed.producerId, firstOffset: completed.firstOffset, lastOffset: completed.lastOffset,
            lastStableOffset: completed.lastStableOffset)
    }
}
