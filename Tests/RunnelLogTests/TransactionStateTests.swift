// The partition side of transactions, on the real disk: transactional batches open a
// transaction at their first offset, markers (control batches) end it, abort markers go to the
// segment's `.txnindex` in Kafka's 34-byte layout, the first unstable offset bounds the last
// stable offset, aborted transactions are collected for a read_committed fetch, the KIP-1228
// marker epoch rules, producer-state snapshots (`<offset>.snapshot`, Kafka's layout) at roll and
// close so a reopen replays only from the newest, recovery after an unclean stop, truncation,
// and producer expiry.
import Foundation
import NIOCore
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelLog
import RunnelTestSupport

/// A batch of `count` records from a producer (transactional unless told otherwise).
func producerBatch(
    _ producer: Int64, epoch: Int16, sequence: Int32, count: Int = 2, transactional: Bool = true,
    timestamp: Int64 = 1_000
) -> (ByteBuffer, [BatchInfo]) {
    let records = (0..<count).map { i in
        Record(
            offset: Int64(i), timestamp: timestamp, key: ByteBuffer(string: "k\(i)"),
            value: ByteBuffer(string: "p\(producer)-\(sequence + Int32(i))"))
    }
    let batch = RecordBatches.build(
        records: records, attributes: transactional ? 0x10 : 0, producerId: producer, producerEpoch: epoch,
        baseSequence: sequence)
    return (batch, try! RecordBatches.validate(batch, maxBatchBytes: 1_000_000).get())
}

struct TxnLog {
    let log: PartitionLog
    let dir: String

    init(
        dir: String = scratchDirectory("txn"), segmentBytes: Int = 1 << 30, recoveryPoint: Int64 = 0,
        cleanShutdown: Bool = true
    ) throws {
        var config = LogConfig()
        config.segmentBytes = segmentBytes
        self.dir = dir
        log = try PartitionLog(
            topicPartition: TopicPartition("t", 0), directory: dir, config: config, disk: PosixDisk(), nowMs: 0,
            recoveryPoint: recoveryPoint, cleanShutdown: cleanShutdown)
    }

    @discardableResult
    func data(
        _ producer: Int64, epoch: Int16 = 0, sequence: Int32, count: Int = 2, transactional: Bool = true,
        timestamp: Int64 = 1_000
    ) throws -> AppendInfo {
        let (payload, infos) = producerBatch(
            producer, epoch: epoch, sequence: sequence, count: count, transactional: transactional, timestamp: timestamp
        )
        return try log.appendAsLeader(payload, batches: infos, leaderEpoch: 0, nowMs: timestamp)
    }

    /// A producer's batch appended with what the leader learned from the coordinator.
    @discardableResult
    func verified(
        _ producer: Int64, epoch: Int16 = 0, sequence: Int32, _ verification: ProducerStateTable.Verification
    ) throws -> AppendInfo {
        let (payload, infos) = producerBatch(producer, epoch: epoch, sequence: sequence)
        return try log.appendAsLeader(payload, batches: infos, leaderEpoch: 0, nowMs: 1_000, verification: verification)
    }

    @discardableResult
    func marker(
        _ producer: Int64, epoch: Int16 = 0, commit: Bool, coordinatorEpoch: Int32 = 0, version: Int16 = 0
    ) throws -> AppendInfo {
        try log.appendTransactionMarker(
            producerId: producer, producerEpoch: epoch,
            EndTransactionMarker(committed: commit, coordinatorEpoch: coordinatorEpoch),
            transactionVersion: version, leaderEpoch: 0, nowMs: 2_000)
    }
}

func txnIndexBytes(_ dir: String, _ base: Int64) -> [UInt8] {
    (FileManager.default.contents(atPath: dir + "/" + LogSegment.fileName(base, ".txnindex")).map { [UInt8]($0) }) ?? []
}

@Suite("Transactions in the log")
struct TransactionStateTests {
    @Test(
        "KIP-890 part 1: a batch opens a transaction only under the verification guard still in force; a marker or the opening batch ends the guard"
    )
    func verificationGuards() throws {
        let t = try TxnLog()
        func refused(_ body: () throws -> Void) -> ErrorCode? {
            do {
                try body()
                return nil
            } catch let error as ProducerStateError {
                return error.code
            } catch {
                return .unknownServerError
            }
        }
        // No guard at all (the partition was not verified): refused.
        #expect(refused { try t.verified(7, sequence: 0, .verified(nil)) } == .invalidTxnState)
        // Verified, then the transaction ended (a marker) before the append: refused.
        let stale = try #require(t.log.startTransactionVerification(producerId: 7, epoch: 0, nowMs: 0))
        try t.marker(7, commit: false)
        #expect(refused { try t.verified(7, sequence: 0, .verified(stale)) } == .invalidTxnState)
        // A fresh verification opens the transaction; the next batches need none.
        let fresh = try #require(t.log.startTransactionVerification(producerId: 7, epoch: 0, nowMs: 0))
        #expect(fresh != stale)
        try t.verified(7, sequence: 0, .verified(fresh))
        #expect(t.log.startTransactionVerification(producerId: 7, epoch: 0, nowMs: 0) == nil, "open: nothing to ask")
        try t.verified(7, sequence: 2, .verified(nil))
        // The guard went with the opening batch: after the commit it cannot open another one.
        try t.marker(7, commit: true)
        #expect(refused { try t.verified(7, sequence: 4, .verified(fresh)) } == .invalidTxnState)
        // Appends that do not ask (replicas, verification off) are not checked.
        try t.verified(7, sequence: 4, .notRequired)
        #expect(t.log.firstUnstableOffset != nil)
    }

    @Test(
        "a transactional batch opens a transaction at its first offset; its marker ends it, stable once the high watermark passes the marker"
    )
    func firstUnstableOffset() throws {
        let t = try TxnLog()
        try t.data(7, sequence: 0, transactional: false)  // 0-1
        try t.data(9, sequence: 0)  // 2-3
        try t.data(9, sequence: 2)  // 4-5
        #expect(t.log.firstUnstableOffset == 2)
        #expect(t.log.lastStableOffset(highWatermark: 6) == 2)
        #expect(t.log.lastStableOffset(highWatermark: 1) == 1, "never above the high watermark")
        let m = try t.marker(9, commit: true)  // 6
        #expect(m.firstOffset == 6)
        #expect(t.log.firstUnstableOffset == 2, "decided but the marker is not replicated yet")
        t.log.highWatermarkUpdated(6)
        #expect(t.log.firstUnstableOffset == 2)
        t.log.highWatermarkUpdated(7)
        #expect(t.log.firstUnstableOffset == nil)
        #expect(t.log.lastStableOffset(highWatermark: 7) == 7)
    }

    @Test(
        "an abort marker adds Kafka's 34-byte entry to its segment's .txnindex, with the LSO of another producer's open transaction; a commit adds none"
    )
    func abortedIndexEntry() throws {
        let t = try TxnLog()
        try t.data(9, sequence: 0)  // 0-1
        try t.data(5, sequence: 0)  // 2-3: another producer's transaction
        try t.marker(9, commit: false)  // 4
        var expected = ByteBuffer()
        AbortedTransaction(producerId: 9, firstOffset: 0, lastOffset: 4, lastStableOffset: 2).write(to: &expected)
        #expect(expected.readableBytes == 34)
        #expect(txnIndexBytes(t.dir, 0) == Array(expected.readableBytesView))
        #expect(
            Array(expected.readableBytesView.prefix(10)) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            "version 0, then the producer id")
        try t.marker(5, commit: true)  // 5
        #expect(txnIndexBytes(t.dir, 0).count == 34)
        try t.data(5, sequence: 2)  // 6-7
        try t.marker(5, commit: false)  // 8
        #expect(
            t.log.collectAbortedTransactions(fetchOffset: 0, upperBoundOffset: 9).map(\.lastStableOffset) == [2, 9])
    }

    @Test(
        "collectAbortedTransactions: the aborted transactions overlapping the fetch range, across segments, until an entry's LSO reaches the bound"
    )
    func collectAcrossSegments() throws {
        let t = try TxnLog(segmentBytes: 300)
        var aborted: [(Int64, Int64)] = []
        for i in 0..<12 {
            let producer = Int64(100 + i)
            let first = try t.data(producer, sequence: 0).firstOffset
            let last = try t.marker(producer, commit: i % 2 == 1).firstOffset
            if i % 2 == 0 { aborted.append((first, last)) }
        }
        #expect(t.log.segmentCount > 3)
        let all = t.log.collectAbortedTransactions(fetchOffset: 0, upperBoundOffset: t.log.logEndOffset)
        #expect(all.map(\.firstOffset) == aborted.map(\.0) && all.map(\.lastOffset) == aborted.map(\.1))
        // A range in the middle: only what overlaps it.
        let (from, to) = (aborted[2].0 + 1, aborted[4].0 + 1)
        let some = t.log.collectAbortedTransactions(fetchOffset: from, upperBoundOffset: to)
        #expect(some.map(\.firstOffset) == [aborted[2].0, aborted[3].0, aborted[4].0])
    }

    @Test(
        "KIP-1228: a TV2 marker needs an epoch above the producer's, so a delayed marker of the previous transaction never ends the open one"
    )
    func delayedMarkerRejected() throws {
        let t = try TxnLog()
        try t.data(9, epoch: 0, sequence: 0)  // transaction 1 at epoch 0
        try t.marker(9, epoch: 1, commit: true, version: 2)  // its markers carry epoch 1
        try t.data(9, epoch: 1, sequence: 0)  // transaction 2 at epoch 1
        let open = t.log.firstUnstableOffset
        #expect(
            throws: ProducerStateError(
                code: .invalidProducerEpoch,
                reason: "Transaction marker epoch 1 of producer 9 is not above the current epoch 1 (transactions v2).")
        ) {
            try t.marker(9, epoch: 1, commit: false, version: 2)  // transaction 1's marker again, late
        }
        #expect(t.log.firstUnstableOffset == open, "transaction 2 stays open")
        // A legacy (TV0/1) marker is checked with >=, which is why TV2 needs the strict rule.
        #expect(throws: Never.self) { try t.marker(9, epoch: 1, commit: false, version: 0) }
    }

    @Test("a TV2 marker repeated after its transaction ended is a success that writes nothing (KAFKA-19999)")
    func repeatedMarkerIsNoOp() throws {
        let t = try TxnLog()
        try t.data(9, epoch: 0, sequence: 0)
        try t.marker(9, epoch: 1, commit: true, version: 2)
        let end = t.log.logEndOffset
        let again = try t.marker(9, epoch: 1, commit: true, version: 2)
        #expect(again.duplicate && t.log.logEndOffset == end)
    }

    @Test(
        "a marker from an older coordinator epoch is TRANSACTION_COORDINATOR_FENCED; a non-transactional batch inside a transaction INVALID_TXN_STATE"
    )
    func markerAndDataChecks() throws {
        let t = try TxnLog()
        try t.data(9, sequence: 0)
        try t.marker(9, commit: true, coordinatorEpoch: 5)
        try t.data(9, sequence: 2)
        #expect(throws: ProducerStateError.self) { try t.marker(9, commit: true, coordinatorEpoch: 4) }
        #expect(throws: ProducerStateError.self) { try t.data(9, sequence: 4, transactional: false) }
    }

    @Test(
        "a coordinator's transactional batches (sequence 0 every time, as Kafka's group coordinator writes a TxnOffsetCommit) are checked by epoch only"
    )
    func coordinatorOrigin() throws {
        let t = try TxnLog()
        func offsets(epoch: Int16) throws -> AppendInfo {
            let (payload, infos) = producerBatch(9, epoch: epoch, sequence: 0)
            return try t.log.appendAsLeader(
                payload, batches: infos, leaderEpoch: 0, nowMs: 1_000, origin: .coordinator)
        }
        _ = try offsets(epoch: 0)  // 0-1
        let again = try offsets(epoch: 0)  // 2-3
        #expect(!again.duplicate && again.firstOffset == 2, "from a client, the same sequences again are a retry")
        #expect(t.log.firstUnstableOffset == 0, "the first batch opened the producer's transaction")
        try t.marker(9, commit: true)  // 4
        #expect(t.log.firstUnstableOffset == 0 && t.log.producerStateTable.ongoing.isEmpty)
        let next = try offsets(epoch: 1)  // 5-6: a new epoch (a restarted producer)
        #expect(next.firstOffset == 5 && t.log.producerStateTable.firstUndecidedOffset == 5)
        #expect(throws: ProducerStateError(code: .invalidProducerEpoch, reason: "")) {
            do { _ = try offsets(epoch: 0) } catch var e as ProducerStateError {
                e.reason = ""
                throw e
            }
        }
        let (payload, infos) = producerBatch(9, epoch: 1, sequence: 0)
        let retry = try t.log.appendAsLeader(payload, batches: infos, leaderEpoch: 0, nowMs: 1_000)
        #expect(retry.duplicate, "a client's batch is checked by sequence")
    }

    @Test(
        "producer snapshots are written at roll and close in Kafka's layout, and a clean reopen loads the newest instead of replaying the log"
    )
    func snapshots() throws {
        let dir = scratchDirectory("txn")
        let t = try TxnLog(dir: dir, segmentBytes: 300)
        for i in 0..<6 { try t.data(200 + Int64(i), sequence: 0, transactional: false) }
        try t.data(9, sequence: 0)
        #expect(t.log.segmentCount > 1)
        #expect(
            !t.log.producerSnapshotOffsets.isEmpty
                && t.log.producerSnapshotOffsets.allSatisfy { t.log.segmentBaseOffsets.contains($0) })
        let before = t.log.producerStateTable
        try t.log.close()
        let end = t.log.logEndOffset
        #expect(t.log.producerSnapshotOffsets.last == end)
        let file = try #require(FileManager.default.contents(atPath: dir + "/" + ProducerSnapshot.fileName(end)))
        #expect(file.count == 10 + 46 * before.producers.count)
        #expect([UInt8](file.prefix(2)) == [0, 1], "version 1")
        #expect(try ProducerSnapshot.decode(ByteBuffer(bytes: file), path: "x") == before.snapshotEntries)

        // A snapshot naming a producer the log does not hold: a clean reopen trusts it.
        var entries = before.snapshotEntries
        entries.append(
            ProducerSnapshot.Entry(
                producerId: 4242, producerEpoch: 3, lastSequence: 9, lastOffset: 1, offsetDelta: 0, timestamp: 1_000,
                coordinatorEpoch: -1, currentTxnFirstOffset: -1))
        try ProducerSnapshot.write(entries, offset: end, directory: dir, disk: PosixDisk(), durable: true)
        let reopened = try TxnLog(dir: dir, segmentBytes: 300, recoveryPoint: end)
        #expect(reopened.log.producerStateTable.producers[4242]?.epoch == 3)
        #expect(reopened.log.firstUnstableOffset == before.firstUnstableOffset)
    }

    @Test("a clean open that finds no snapshot (a log from before snapshots) replays only the last two segments")
    func upgradeWithoutSnapshots() throws {
        let dir = scratchDirectory("txn")
        let t = try TxnLog(dir: dir, segmentBytes: 300)
        for i in 0..<12 { try t.data(Int64(100 + i), sequence: 0, transactional: false) }
        try t.log.close()
        let bases = t.log.segmentBaseOffsets
        #expect(bases.count > 3)
        for offset in t.log.producerSnapshotOffsets {
            try FileManager.default.removeItem(atPath: dir + "/" + ProducerSnapshot.fileName(offset))
        }
        let reopened = try TxnLog(dir: dir, segmentBytes: 300, recoveryPoint: t.log.logEndOffset)
        let kept = reopened.log.producerStateTable.producers.values.flatMap(\.batches).map(\.firstOffset)
        #expect(!kept.isEmpty && kept.allSatisfy { $0 >= bases[bases.count - 2] })
    }

    @Test("a snapshot with a bad CRC is deleted and an older one (or a replay) serves")
    func tornSnapshot() throws {
        let dir = scratchDirectory("txn")
        let t = try TxnLog(dir: dir)
        try t.data(9, sequence: 0)
        try t.log.close()
        let path = dir + "/" + ProducerSnapshot.fileName(t.log.logEndOffset)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 1] ^= 0xff
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let reopened = try TxnLog(dir: dir, recoveryPoint: t.log.logEndOffset)
        #expect(reopened.log.firstUnstableOffset == 0, "replayed from the log")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test(
        "after an unclean stop the producer state and the .txnindex of re-validated segments are rebuilt from a snapshot at or below them"
    )
    func crashRecovery() throws {
        let dir = scratchDirectory("txn")
        let t = try TxnLog(dir: dir, segmentBytes: 300)
        try t.data(1, sequence: 0)  // a long transaction, open across segments
        var abortedLast: [Int64] = []
        for i in 0..<8 {
            let producer = Int64(10 + i)
            try t.data(producer, sequence: 0)
            let m = try t.marker(producer, commit: i % 2 == 1)
            if i % 2 == 0 { abortedLast.append(m.firstOffset) }
        }
        let bases = t.log.segmentBaseOffsets
        #expect(bases.count > 3)
        let expected = t.log.collectAbortedTransactions(fetchOffset: 0, upperBoundOffset: t.log.logEndOffset)
        #expect(expected.map(\.lastOffset) == abortedLast && expected.allSatisfy { $0.lastStableOffset == 0 })
        // The process dies: no close, no snapshot at the end. The last two segments' indexes are lost too.
        for base in bases.suffix(2) {
            try? FileManager.default.removeItem(atPath: dir + "/" + LogSegment.fileName(base, ".txnindex"))
        }
        let recovered = try TxnLog(
            dir: dir, segmentBytes: 300, recoveryPoint: bases[bases.count - 2], cleanShutdown: false)
        #expect(
            recovered.log.collectAbortedTransactions(fetchOffset: 0, upperBoundOffset: recovered.log.logEndOffset)
                == expected)
        #expect(recovered.log.firstUnstableOffset == 0, "the open transaction survived")
        #expect(recovered.log.producerStateTable.producers.count == 9)
    }

    @Test("truncation drops the .txnindex entries and snapshots past the new end and rebuilds the producer state")
    func truncation() throws {
        let t = try TxnLog(segmentBytes: 300)
        for i in 0..<6 {
            try t.data(Int64(10 + i), sequence: 0)
            try t.marker(Int64(10 + i), commit: false)
        }
        let cut = t.log.segmentBaseOffsets[1] + 1
        try t.data(99, sequence: 0)
        try t.log.truncate(to: cut)
        #expect(t.log.producerSnapshotOffsets.allSatisfy { $0 <= cut })
        #expect(
            t.log.collectAbortedTransactions(fetchOffset: 0, upperBoundOffset: .max).allSatisfy { $0.lastOffset < cut })
        #expect(t.log.producerStateTable.producers[99] == nil)
        #expect(t.log.firstUnstableOffset.map { $0 < cut } ?? true)
    }

    @Test("producer.id.expiration.ms forgets idle producers, but never one with an open transaction")
    func expiry() throws {
        let t = try TxnLog()
        try t.data(1, sequence: 0, transactional: false, timestamp: 1_000)
        try t.data(2, sequence: 0, transactional: true, timestamp: 1_000)
        try t.data(3, sequence: 0, transactional: false, timestamp: 50_000)
        t.log.removeExpiredProducers(nowMs: 61_000, expirationMs: 60_000)
        #expect(Set(t.log.producerStateTable.producers.keys) == [2, 3])
    }

    @Test("the snapshot layout: version, CRC32C of what follows, count, 46-byte entries")
    func snapshotLayout() throws {
        let entry = ProducerSnapshot.Entry(
            producerId: 1, producerEpoch: 2, lastSequence: 3, lastOffset: 4, offsetDelta: 5, timestamp: 6,
            coordinatorEpoch: 7, currentTxnFirstOffset: -1)
        let bytes = ProducerSnapshot.encode([entry])
        var expected = ByteBuffer()
        expected.writeInteger(Int16(1))
        expected.writeInteger(UInt32(0))
        expected.writeInteger(Int32(1))
        expected.writeInteger(Int64(1)); expected.writeInteger(Int16(2)); expected.writeInteger(Int32(3));
        expected.writeInteger(Int64(4))
        expected.writeInteger(Int32(5)); expected.writeInteger(Int64(6)); expected.writeInteger(Int32(7));
        expected.writeInteger(Int64(-1))
        expected.setInteger(RecordBatches.crc32c(expected, at: 6, length: expected.readableBytes - 6), at: 2)
        #expect(bytes == expected)
        #expect(try ProducerSnapshot.decode(bytes, path: "x") == [entry])
    }
}
