import NIOCore
import RunnelRaft
import RunnelWire

/// The newest batches of the metadata log, as appended, so that the leader answers fetches from
/// memory: every committed write is fetched by every other node moments after its append, and
/// reading it back from the file cost the leader one `pread` (and a copy) per fetcher per write.
/// It mirrors the log's tail: what a truncation or a snapshot install drops from the log, it
/// drops too, and a fetch it cannot answer exactly (an offset it no longer holds, or not at a
/// batch's start) is read from the file as before.
struct RecentBatches {
    private struct Entry {
        var batch: RaftBatch<MetadataPayload>
        var size: Int
        var nextOffset: Int64 { batch.nextOffset }
        var baseOffset: Int64 { batch.baseOffset }
    }

    private var batches = CircularBuffer<Entry>()
    private(set) var heldBytes = 0
    /// The bytes held at most; the oldest batches go first.
    let budgetBytes: Int

    init(budgetBytes: Int = 4 * 1024 * 1024) {
        self.budgetBytes = budgetBytes
    }

    var isEmpty: Bool { batches.isEmpty }

    /// `bytes`, one whole batch, was appended to the log.
    mutating func appended(_ bytes: ByteBuffer) {
        guard let header = RecordBatchHeader(bytes, at: bytes.readerIndex), header.lastOffsetDelta >= 0,
            header.totalBytes == bytes.readableBytes
        else {
            clear()  // not one batch: the file answers until the tail is rebuilt
            return
        }
        if let last = batches.last, last.nextOffset != header.baseOffset { clear() }
        let batch = RaftBatch<MetadataPayload>(
            baseOffset: header.baseOffset, recordCount: Int(header.lastOffsetDelta) + 1,
            epoch: header.partitionLeaderEpoch, payload: .data(.batch(bytes)))
        batches.append(Entry(batch: batch, size: bytes.readableBytes))
        heldBytes += bytes.readableBytes
        while heldBytes > budgetBytes, batches.count > 1 {
            heldBytes -= batches.removeFirst().size
        }
        assert(heldBytes >= 0)
    }

    /// The log was truncated to end at `offset`.
    mutating func truncate(to offset: Int64) {
        while let last = batches.last, last.nextOffset > offset {
            heldBytes -= batches.removeLast().size
        }
    }

    mutating func clear() {
        batches.removeAll()
        heldBytes = 0
    }

    /// The batches from `offset` (a batch's base offset) that end by `end`, up to `maxBytes` (at
    /// least one); nil when `offset` is not the start of a held batch.
    func read(from offset: Int64, upTo end: Int64, maxBytes: Int) -> [RaftBatch<MetadataPayload>]? {
        guard let first = batches.first, offset >= first.baseOffset, let last = batches.last, offset < last.nextOffset
        else { return nil }
        // Binary search: batches are contiguous and in offset order.
        var low = batches.startIndex
        var count = batches.count
        while count > 0 {
            let half = count / 2
            let mid = batches.index(low, offsetBy: half)
            if batches[mid].nextOffset <= offset {
                low = batches.index(after: mid)
                count -= half + 1
            } else {
                count = half
            }
        }
        guard low != batches.endIndex, batches[low].baseOffset == offset else { return nil }
        var out: [RaftBatch<MetadataPayload>] = []
        var total = 0
        var i = low
        while i != batches.endIndex {
            let entry = batches[i]
            if entry.nextOffset > end || (!out.isEmpty && total + entry.size > maxBytes) { break }
            out.append(entry.batch)
            total += entry.size
            i = batches.index(after: i)
        }
        return out
    }
}
