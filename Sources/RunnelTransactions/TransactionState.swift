import RunnelCore

/// The states of a transactional id at its coordinator, with Kafka's ids (the `TransactionStatus`
/// byte of `__transaction_state`) and names (what DescribeTransactions reports).
public enum TransactionState: Int8, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// No transaction open: after InitProducerId, or once a transaction's markers are written
    /// and the id has not started another.
    case empty = 0
    /// A transaction is open: partitions (or a group's offsets) were added to it.
    case ongoing = 1
    /// EndTxn(commit) is durable; the commit markers are being written.
    case prepareCommit = 2
    /// EndTxn(abort), a timeout or a fencing InitProducerId is durable; the abort markers are being written.
    case prepareAbort = 3
    /// Every commit marker is written.
    case completeCommit = 4
    /// Every abort marker is written.
    case completeAbort = 5
    /// The id expired (`transactional.id.expiration.ms`): its tombstone is being written.
    case dead = 6
    /// An ongoing transaction is being aborted to fence its producer (never written as such).
    case prepareEpochFence = 7

    /// Kafka's state name.
    public var description: String {
        switch self {
        case .empty: return "Empty"
        case .ongoing: return "Ongoing"
        case .prepareCommit: return "PrepareCommit"
        case .prepareAbort: return "PrepareAbort"
        case .completeCommit: return "CompleteCommit"
        case .completeAbort: return "CompleteAbort"
        case .dead: return "Dead"
        case .prepareEpochFence: return "PrepareEpochFence"
        }
    }

    /// The states this one may be entered from (Kafka's `TransactionState.validPreviousStates`).
    /// Transactions v2 lets a client abort from Empty and the Complete states, since it cannot
    /// always know whether the previous transaction ended.
    public var validPreviousStates: Set<TransactionState> {
        switch self {
        case .empty: return [.empty, .completeCommit, .completeAbort]
        case .ongoing: return [.ongoing, .empty, .completeCommit, .completeAbort]
        case .prepareCommit: return [.ongoing]
        case .prepareAbort: return [.ongoing, .prepareEpochFence, .empty, .completeCommit, .completeAbort]
        case .completeCommit: return [.prepareCommit]
        case .completeAbort: return [.prepareAbort]
        case .dead: return [.empty, .completeAbort, .completeCommit]
        case .prepareEpochFence: return [.ongoing]
        }
    }

    /// Whether an id in this state may expire (`transactional.id.expiration.ms`).
    public var expirationAllowed: Bool {
        switch self {
        case .empty, .completeCommit, .completeAbort: return true
        default: return false
        }
    }

    /// A transaction is open or ending: Ongoing, PrepareCommit, PrepareAbort.
    public var hasPendingTransaction: Bool { self == .ongoing || self == .prepareCommit || self == .prepareAbort }
}

/// Which transaction protocol a client speaks (Kafka's `transaction.version` feature levels).
/// Version 2 (KIP-890 part 2) bumps the producer epoch at the end of every transaction and adds
/// partitions implicitly with the produce; its markers are checked strictly (KIP-1228).
public enum TransactionVersion: Int16, Sendable, Equatable, Comparable, CaseIterable, CustomStringConvertible {
    case v0 = 0
    case v1 = 1
    case v2 = 2

    public static func < (a: TransactionVersion, b: TransactionVersion) -> Bool { a.rawValue < b.rawValue }

    /// Transactions v2: the epoch is bumped when each transaction ends.
    public var supportsEpochBump: Bool { self >= .v2 }

    /// The version of `TransactionLogValue` this level writes: 1 (flexible, with the tagged
    /// previous and next producer ids and the client's transaction version) from level 1 on.
    public var transactionLogValueVersion: Int16 { self >= .v1 ? 1 : 0 }

    /// The level a stored feature level names; levels above the ones known read as the highest.
    public init(featureLevel: Int16) {
        self = TransactionVersion(rawValue: max(0, min(featureLevel, TransactionVersion.v2.rawValue)))!
    }

    public var description: String { "TV\(rawValue)" }
}

/// How a transaction ends.
public enum TransactionResult: Sendable, Equatable, CustomStringConvertible {
    case commit
    case abort

    public var description: String { self == .commit ? "COMMIT" : "ABORT" }
}

/// The producer-id and epoch markers Kafka uses.
public enum ProducerIds {
    /// No producer id (-1).
    public static let none: Int64 = -1
    /// No producer epoch (-1).
    public static let noEpoch: Int16 = -1

    /// Kafka's rule: epochs stop at `Int16.max - 1`, so the coordinator can always bump once more
    /// to fence the producer holding the last one.
    public static func isEpochExhausted(_ epoch: Int16) -> Bool { epoch >= Int16.max - 1 }
}
