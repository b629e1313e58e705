import NIOCore
import RunnelCore
import RunnelWire

/// A request the coordinator answers later (after a write to `__transaction_state`). The driver
/// names it; the coordinator hands it back with the answer.
public typealias RequestToken = Int

/// Names one write the coordinator asked for; the driver reports its outcome under it.
public struct WriteID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: WriteID, b: WriteID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "write#\(rawValue)" }
}

/// The answer to a request the coordinator parked.
public enum TransactionAnswer: Sendable, Equatable, CustomStringConvertible {
    /// InitProducerId: the producer id and epoch to use (-1 and -1 with an error).
    case initProducerId(ErrorCode, producerId: Int64, producerEpoch: Int16)
    /// AddPartitionsToTxn or AddOffsetsToTxn: one error for every partition of the request.
    case addPartitions(ErrorCode)
    /// EndTxn: with transactions v2 (EndTxn v5), the producer id and epoch of the producer's next
    /// transaction; -1 and -1 otherwise.
    case endTxn(ErrorCode, producerId: Int64, producerEpoch: Int16)

    public var error: ErrorCode {
        switch self {
        case .initProducerId(let e, _, _), .addPartitions(let e), .endTxn(let e, _, _): return e
        }
    }

    public var description: String {
        switch self {
        case let .initProducerId(e, id, epoch): return "InitProducerId \(e) producer \(id) epoch \(epoch)"
        case let .addPartitions(e): return "AddPartitions \(e)"
        case let .endTxn(e, id, epoch): return "EndTxn \(e) producer \(id) epoch \(epoch)"
        }
    }
}

/// A write of one record to a `__transaction_state` partition: append it with acks=all (Kafka's
/// coordinator writes uncompressed, required acks -1), then report with `written(_:error:nowMs:)`.
/// Nothing it carries counts until then.
public struct TransactionLogWrite: Sendable, Equatable, CustomStringConvertible {
    public var id: WriteID
    /// The `__transaction_state` partition.
    public var partition: Int32
    /// The leader epoch of that partition the coordinator loaded it at: a write for an older
    /// epoch must not be appended by a newer leader.
    public var coordinatorEpoch: Int32
    public var transactionalId: String
    /// The new value; nil writes the id's tombstone.
    public var value: TransactionMetadata?
    /// `TransactionLogValue` version to write (by the `transaction.version` level).
    public var valueVersion: Int16
    /// How long the append may wait for replication (Kafka uses the transaction timeout).
    public var timeoutMs: Int64

    public var key: ByteBuffer { TransactionLog.encodeKey(transactionalId) }
    public var valueBytes: ByteBuffer? { value.map { TransactionLog.encodeValue($0, version: valueVersion) } }

    public var description: String {
        "\(id) \(TransactionLog.topicName)-\(partition)@\(coordinatorEpoch) \(value.map { "\($0)" } ?? "\(transactionalId): tombstone")"
    }
}

/// Markers to write for one ended transaction (WriteTxnMarkers to each partition's leader).
/// Report each partition's outcome with `markerWritten`.
public struct TransactionMarkers: Sendable, Equatable, CustomStringConvertible {
    public var transactionalId: String
    public var producerId: Int64
    /// The epoch the markers carry: the transaction's, bumped once with transactions v2.
    public var producerEpoch: Int16
    public var result: TransactionResult
    public var coordinatorEpoch: Int32
    /// KIP-1228: the transaction version of the marker, so a partition leader checks a TV2
    /// marker's epoch strictly (a delayed marker never ends a later transaction).
    public var transactionVersion: TransactionVersion
    /// The partitions to write to now, sorted.
    public var partitions: [TopicPartition]

    public var description: String {
        "\(result) \(transactionalId) producer \(producerId) epoch \(producerEpoch) coordinator-epoch \(coordinatorEpoch) \(transactionVersion) to [\(partitions.map(\.description).joined(separator: ","))]"
    }
}

/// What the coordinator tells its driver to do, in order.
public enum TransactionEffect: Sendable, Equatable, CustomStringConvertible {
    /// Answer a parked request.
    case respond(RequestToken, TransactionAnswer)
    /// Append a record to `__transaction_state` and report the outcome.
    case write(TransactionLogWrite)
    /// Write transaction markers and report each partition.
    case sendMarkers(TransactionMarkers)
    /// The producer ids are running out: ask the controller for a block (AllocateProducerIds)
    /// and hand it over with `producerIdsArrived`.
    case fetchProducerIds
    /// Something an operator wants in the log.
    case event(TransactionEvent)

    public var description: String {
        switch self {
        case let .respond(token, answer): return "respond #\(token): \(answer)"
        case let .write(w): return "write \(w)"
        case let .sendMarkers(m): return "send markers \(m)"
        case .fetchProducerIds: return "fetch producer ids"
        case let .event(e): return "event: \(e)"
        }
    }
}

/// A coordinator event worth a log line (Kafka's coordinator logs the same at INFO).
public enum TransactionEvent: Sendable, Equatable, CustomStringConvertible {
    case initialized(transactionalId: String, producerId: Int64, producerEpoch: Int16)
    case timedOut(transactionalId: String, producerId: Int64, producerEpoch: Int16)
    case completed(transactionalId: String, TransactionResult)
    case expired(transactionalId: String)
    case writeFailed(transactionalId: String, ErrorCode)
    /// A partition's leader refused the markers for good (the producer or the coordinator was
    /// fenced by a newer one): this coordinator stops sending them.
    case markersAbandoned(transactionalId: String, TopicPartition, ErrorCode)
    case loaded(partition: Int32, transactionalIds: Int, completing: Int)
    case unreadableRecord(partition: Int32, reason: String)

    public var description: String {
        switch self {
        case let .initialized(id, p, e): return "initialized \(id) with producer \(p) epoch \(e)"
        case let .timedOut(id, p, e): return "aborting the timed-out transaction of \(id) (producer \(p) epoch \(e))"
        case let .completed(id, r): return "completed \(r) of \(id)"
        case let .expired(id): return "transactional id \(id) expired"
        case let .writeFailed(id, e): return "writing the state of \(id) failed: \(e)"
        case let .markersAbandoned(id, tp, e): return "stopped writing markers of \(id): \(tp) answered \(e)"
        case let .loaded(p, n, c):
            return "loaded \(n) transactional ids from \(TransactionLog.topicName)-\(p), completing \(c)"
        case let .unreadableRecord(p, reason): return "skipped a record of \(TransactionLog.topicName)-\(p): \(reason)"
        }
    }
}
