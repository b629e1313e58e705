import NIOCore
import RunnelWire

/// Record batches as a consumer reads them: each batch's CRC32C is checked, compressed batches
/// (gzip, snappy, lz4, zstd) are inflated, and records of log-append-time batches carry the
/// batch's timestamp.
public enum FetchedRecords {
    /// One batch that could not be read, with where it starts.
    public struct BatchError: Error, CustomStringConvertible, Sendable {
        public var baseOffset: Int64
        public var reason: String
        public var description: String { "the record batch at offset \(baseOffset) \(reason)" }
    }

    /// Decodes every whole batch in `buffer`; a trailing partial batch (Fetch may end with one) is
    /// left out. Control batches are returned with their header and no records. Stops at the
    /// first batch that cannot be read and returns what came before it with the failure.
    public static func decode(_ buffer: ByteBuffer) -> (batches: [DecodedBatch], failure: BatchError?) {
        var batches: [DecodedBatch] = []
        var index = buffer.readerIndex
        while let header = RecordBatchHeader(buffer, at: index), header.totalBytes <= buffer.writerIndex - index {
            do {
                batches.append(try decodeBatch(buffer, at: index, header: header))
            } catch let error as BatchError {
                return (batches, error)
            } catch {
                return (batches, BatchError(baseOffset: header.baseOffset, reason: "cannot be read (\(error))"))
            }
            index += header.totalBytes
        }
        return (batches, nil)
    }

    static func decodeBatch(_ buffer: ByteBuffer, at index: Int, header: RecordBatchHeader) throws -> DecodedBatch {
        guard header.magic == 2 else {
            throw BatchError(
                baseOffset: header.baseOffset, reason: "has magic \(header.magic) (only v2 batches are read)")
        }
        guard header.batchLength >= Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead) else {
            throw BatchError(baseOffset: header.baseOffset, reason: "is shorter than its header")
        }
        let crc = RecordBatches.crc32c(
            buffer, at: index + RecordBatchHeader.crcStart, length: header.totalBytes - RecordBatchHeader.crcStart)
        guard crc == header.crc else {
            throw BatchError(baseOffset: header.baseOffset, reason: "fails its CRC32C check")
        }
        var records: [Record] = []
        if !header.isControl {
            let body: ByteBuffer
            do {
                body = try RecordBatches.recordBytes(buffer, batchAt: index, header: header)
            } catch {
                throw BatchError(baseOffset: header.baseOffset, reason: "cannot be decompressed: \(error)")
            }
            do {
                records = try RecordBatches.decodeRecords(body, header: header)
            } catch {
                throw BatchError(baseOffset: header.baseOffset, reason: "holds malformed records (\(error))")
            }
            if header.isLogAppendTime {
                for i in records.indices { records[i].timestamp = header.maxTimestamp }
            }
        }
        return DecodedBatch(header: header, records: records)
    }

    /// What a read_committed consumer keeps of `batches` (decoded from `buffer`), as Kafka's
    /// consumer does: a fetch answer lists the aborted transactions it covers (producer and first
    /// offset); from a transaction's first offset on, that producer's transactional batches are
    /// aborted until its abort marker. Their records are dropped; the batches stay, empty, so the
    /// position still moves past them.
    public static func withoutAborted(
        _ batches: [DecodedBatch], in buffer: ByteBuffer, aborted: [(producerId: Int64, firstOffset: Int64)]
    ) -> [DecodedBatch] {
        var upcoming = aborted.sorted { $0.firstOffset < $1.firstOffset }[...]
        var abortedProducers = Set<Int64>()
        var index = buffer.readerIndex
        var out: [DecodedBatch] = []
        for batch in batches {
            let header = batch.header
            precondition(
                RecordBatchHeader(buffer, at: index)?.baseOffset == header.baseOffset,
                "the batches are the ones decoded from the buffer, in order")
            defer { index += header.totalBytes }
            guard header.hasProducerId else {
                out.append(batch)
                continue
            }
            while let next = upcoming.first, next.firstOffset <= header.lastOffset {
                abortedProducers.insert(next.producerId)
                upcoming = upcoming.dropFirst()
            }
            if header.isControl {
                if let whole = buffer.getSlice(at: index, length: header.totalBytes),
                    let marker = EndTransactionMarker.read(batch: whole, header: header), !marker.committed
                {
                    abortedProducers.remove(header.producerId)
                }
                out.append(batch)
            } else if header.isTransactional && abortedProducers.contains(header.producerId) {
                out.append(DecodedBatch(header: header, records: []))
            } else {
                out.append(batch)
            }
        }
        return out
    }
}
