import RunnelCore
import RunnelWire

/// Idempotent-producer state of one partition: per producer id, its epoch and the last five
/// batches it wrote (sequence range and offsets), so retries are answered with their original
/// offsets and gaps or stale epochs are refused, as Kafka's ProducerStateManager does.
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
        public var lastSequence: Int32 { batches.last?.lastSequence ?? -1 }
    }

    /// What to do with an incoming batch.
    public enum Verdict: Sendable, Equatable {
        case append
        /// A retry of a batch already in the log: answer with its offsets, write nothing.
        case duplicate(BatchMetadata)
        case reject(ErrorCode, String)
    }

    public private(set) var producers: [Int64: Entry] = [:]

    public init() {}

    static func lastSequence(_ header: RecordBatchHeader) -> Int32 {
        // Sequences wrap at Int32.max, as Kafka's do.
        let last = Int64(header.baseSequence) + Int64(header.lastOffsetDelta)
        return last > Int64(Int32.max) ? Int32(last - Int64(Int32.max) - 1) : Int32(last)
    }

    static func inSequence(last: Int32, next: Int32) -> Bool {
        next == (last == Int32.max ? 0 : last + 1)
    }

    /// Decides about a batch a client (not a replica) appends.
    public func check(_ header: RecordBatchHeader) -> Verdict {
        guard header.producerId >= 0 else { return .append }
        let firstSeq = header.baseSequence
        let lastSeq = Self.lastSequence(header)
        guard let entry = producers[header.producerId] else {
            // No state (new producer, or state gone with retention): accept any sequence.
            return .append
        }
        if header.producerEpoch < entry.epoch {
            return .reject(.invalidProducerEpoch, "Epoch \(header.producerEpoch) of producer \(header.producerId) is older than the current epoch \(entry.epoch).")
        }
        if header.producerEpoch > entry.epoch {
            if firstSeq != 0 {
                return .reject(.outOfOrderSequenceNumber, "Invalid sequence number \(firstSeq) for new epoch \(header.producerEpoch) of producer \(header.producerId); expected 0.")
            }
            return .append
        }
        if let duplicate = entry.batches.first(where: { $0.firstSequence == firstSeq && $0.lastSequence == lastSeq }) {
            return .duplicate(duplicate)
        }
        if entry.batches.isEmpty || Self.inSequence(last: entry.lastSequence, next: firstSeq) {
            return .append
        }
        return .reject(.outOfOrderSequenceNumber, "Out of order sequence number for producer \(header.producerId) at offset: expected \(entry.lastSequence == Int32.max ? 0 : entry.lastSequence + 1), got \(firstSeq).")
    }

    /// Records a batch written at `header.baseOffset ... lastOffset`.
    public mutating func update(_ header: RecordBatchHeader) {
        guard header.producerId >= 0, !header.isControl else { return }
        var entry = producers[header.producerId] ?? Entry(epoch: header.producerEpoch, batches: [], lastTimestamp: header.maxTimestamp)
        if header.producerEpoch > entry.epoch {
            entry = Entry(epoch: header.producerEpoch, batches: [], lastTimestamp: header.maxTimestamp)
        } else if header.producerEpoch < entry.epoch {
            return
        }
        if header.baseSequence >= 0 {
            entry.batches.append(BatchMetadata(
                firstSequence: header.baseSequence, lastSequence: Self.lastSequence(header),
                firstOffset: header.baseOffset, lastOffset: header.lastOffset, timestamp: header.maxTimestamp))
            if entry.batches.count > Self.batchesRememberedMax { entry.batches.removeFirst(entry.batches.count - Self.batchesRememberedMax) }
        }
        entry.lastTimestamp = max(entry.lastTimestamp, header.maxTimestamp)
        producers[header.producerId] = entry
    }

    /// Forgets producers idle since before `cutoff` (producer.id.expiration.ms).
    public mutating func expire(before cutoff: Int64) {
        producers = producers.filter { $0.value.lastTimestamp >= cutoff }
    }
}
