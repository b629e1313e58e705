// The transaction coordinator, one rule at a time: each test drives the pure
// TransactionCoordinator through CoordinatorHarness (writes and markers answered at once unless
// the test holds them) and checks the answers and states Kafka's TransactionCoordinator gives
// for the same steps. Test names state the rule.
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelTransactions

@Suite("Transaction coordinator")
struct TransactionCoordinatorTests {
    let a0 = tp("a", 0), a1 = tp("a", 1), b0 = tp("b", 0)

    // MARK: InitProducerId

    @Test("InitProducerId gives a new transactional id a producer id at epoch 0, after its Empty record is written")
    func initNew() {
        var h = CoordinatorHarness()
        h.autoWrite = false
        let t = h.token()
        h.absorb(
            h.coordinator.initProducerId(transactionalId: "t", timeoutMs: 60_000, expected: nil, token: t, nowMs: h.now)
        )
        #expect(h.answers[t] == nil, "no answer before the write")
        #expect(
            h.pendingWrites.count == 1 && h.pendingWrites[0].value?.state == .empty
                && h.pendingWrites[0].value?.producerEpoch == 0)
        h.completeWrite()
        #expect(h.answers[t] == .initProducerId(.none, producerId: 1000, producerEpoch: 0))
        #expect(h.state() == .empty)
    }

    @Test(
        "an empty transactional id is INVALID_REQUEST; a timeout above transaction.max.timeout.ms or not positive is INVALID_TRANSACTION_TIMEOUT"
    )
    func initValidation() {
        var h = CoordinatorHarness()
        #expect(h.initProducerId("")?.error == .invalidRequest)
        #expect(h.initProducerId("t", timeoutMs: 900_001)?.error == .invalidTransactionTimeout)
        #expect(h.initProducerId("t", timeoutMs: 0)?.error == .invalidTransactionTimeout)
        #expect(h.state() == nil)
    }

    @Test("an id of a partition not loaded here is NOT_COORDINATOR; of one being loaded COORDINATOR_LOAD_IN_PROGRESS")
    func ownership() {
        var settings = CoordinatorHarness.defaultSettings
        settings.stateTopicPartitions = 50
        var h = CoordinatorHarness(settings: settings)
        // "t" hashes to partition 16 of 50.
        #expect(h.coordinator.partition(for: "t") == 16)
        #expect(h.initProducerId("t")?.error == .notCoordinator)
        h.absorb(h.coordinator.loadStarted(partition: 16, coordinatorEpoch: 3))
        #expect(h.initProducerId("t")?.error == .coordinatorLoadInProgress)
        h.absorb(h.coordinator.load(partition: 16, coordinatorEpoch: 3, records: [], nowMs: h.now))
        #expect(h.initProducerId("t")?.error == ErrorCode.none)
    }

    @Test("a second InitProducerId bumps the epoch and fences the previous instance (PRODUCER_FENCED)")
    func initFences() {
        var h = CoordinatorHarness()
        let first = h.initProducerId()!.producer!
        let second = h.initProducerId()!.producer!
        #expect(second.id == first.id && second.epoch == first.epoch + 1)
        #expect(h.add(producer: first.id, epoch: first.epoch, [a0]) == .addPartitions(.producerFenced))
        #expect(h.add(producer: second.id, epoch: second.epoch, [a0]) == .addPartitions(.none))
    }

    @Test(
        "InitProducerId on an ongoing transaction aborts it, fencing its producer, and answers CONCURRENT_TRANSACTIONS; the retry bumps again"
    )
    func initAbortsOngoing() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.autoMarkers = false
        #expect(h.initProducerId() == .initProducerId(.concurrentTransactions, producerId: -1, producerEpoch: -1))
        #expect(h.state() == .prepareAbort)
        // TV2 coordinator: the abort's own bump fences (one bump, KAFKA-19367).
        #expect(h.metadata()!.producerEpoch == p.epoch + 1)
        #expect(h.markerBatches.last?.result == .abort && h.markerBatches.last?.producerEpoch == p.epoch + 1)
        #expect(h.initProducerId()?.error == .concurrentTransactions, "markers still being written")
        h.answerMarker(a0)
        #expect(h.state() == .completeAbort)
        #expect(h.initProducerId()?.producer?.epoch == p.epoch + 2)
    }

    @Test("with transactions v1 the fence bumps the epoch and the abort keeps it")
    func initAbortsOngoingV1() {
        var settings = CoordinatorHarness.defaultSettings
        settings.transactionVersionLevel = .v1
        var h = CoordinatorHarness(settings: settings)
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.autoMarkers = false
        h.initProducerId()
        #expect(h.metadata()!.producerEpoch == p.epoch + 1 && h.markerBatches.last?.producerEpoch == p.epoch + 1)
        #expect(h.markerBatches.last?.transactionVersion == .v0)
    }

    @Test("a fence whose abort could not be written does not bump the epoch again (KAFKA-9666)")
    func failedFenceDoesNotBumpTwice() {
        var settings = CoordinatorHarness.defaultSettings
        settings.transactionVersionLevel = .v1
        var h = CoordinatorHarness(settings: settings)
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.autoWrite = false
        let t = h.token()
        h.absorb(
            h.coordinator.initProducerId(transactionalId: "t", timeoutMs: 60_000, expected: nil, token: t, nowMs: h.now)
        )
        h.completeWrite(error: .notEnoughReplicas)
        #expect(h.answers[t]?.error == .coordinatorNotAvailable)
        #expect(
            h.state() == .ongoing && h.metadata()!.producerEpoch == p.epoch + 1
                && h.coordinator.transaction("t")!.previousFenceFailed)
        let t2 = h.token()
        h.absorb(
            h.coordinator.initProducerId(
                transactionalId: "t", timeoutMs: 60_000, expected: nil, token: t2, nowMs: h.now))
        #expect(h.pendingWrites.last?.value?.producerEpoch == p.epoch + 1, "the failed fence's epoch is reused")
    }

    @Test(
        "KIP-360: InitProducerId with the current epoch recovers (epoch bumped); with the previous epoch it is a retry (same answer); another epoch is PRODUCER_FENCED"
    )
    func kip360() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        let recovered = h.initProducerId(expected: (p.id, p.epoch))!.producer!
        #expect(recovered.id == p.id && recovered.epoch == p.epoch + 1)
        #expect(h.metadata()!.lastProducerEpoch == p.epoch)
        let retried = h.initProducerId(expected: (p.id, p.epoch))!.producer!
        #expect(retried.epoch == recovered.epoch, "a retry of a bump it did not hear of gets the bumped epoch again")
        #expect(h.initProducerId(expected: (p.id, 7))?.error == .producerFenced)
        #expect(h.initProducerId(expected: (4242, recovered.epoch))?.error == .producerFenced, "another producer id")
    }

    @Test("no producer id at hand answers COORDINATOR_LOAD_IN_PROGRESS and asks for a block; the block then serves")
    func producerIdsRunOut() {
        var h = CoordinatorHarness(idStart: 1000, idCount: 1)
        #expect(h.initProducerId("t1")?.producer?.id == 1000)
        #expect(h.fetches == 1, "the last id of a block asks for the next")
        #expect(h.initProducerId("t2")?.error == .coordinatorLoadInProgress)
        h.coordinator.producerIdsArrived(start: 2000, count: 10)
        #expect(h.initProducerId("t2")?.producer?.id == 2000)
    }

    @Test("an exhausted epoch rotates the producer id at epoch 0")
    func epochExhaustionRotates() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        // A record with the last epoch, as if the producer had used them all.
        var m = h.metadata()!
        m.producerEpoch = Int16.max - 1
        h.log[0]!.append(TransactionLog.Record(transactionalId: "t", value: m))
        h.reload(epoch: 2)
        let rotated = h.initProducerId()!.producer!
        #expect(rotated.id != p.id && rotated.epoch == 0)
        #expect(h.metadata()!.previousProducerId == p.id)
    }

    // MARK: AddPartitionsToTxn

    @Test(
        "AddPartitions: an unknown id or another producer id is INVALID_PRODUCER_ID_MAPPING, an old epoch PRODUCER_FENCED"
    )
    func addValidation() {
        var h = CoordinatorHarness()
        #expect(h.add("nobody", producer: 1, epoch: 0, [a0]) == .addPartitions(.invalidProducerIdMapping))
        let p = h.initProducerId()!.producer!
        #expect(h.add(producer: p.id + 1, epoch: p.epoch, [a0]) == .addPartitions(.invalidProducerIdMapping))
        #expect(h.add(producer: p.id, epoch: p.epoch + 1, [a0]) == .addPartitions(.producerFenced))
    }

    @Test(
        "AddPartitions starts the transaction once written; partitions already in it are answered at once, without a write"
    )
    func addStartsTransaction() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.now = 5_000
        #expect(h.add(producer: p.id, epoch: p.epoch, [a0, a1]) == .addPartitions(.none))
        #expect(
            h.state() == .ongoing && h.metadata()!.partitions == [a0, a1] && h.metadata()!.startTimestampMs == 5_000)
        h.autoWrite = false
        #expect(h.add(producer: p.id, epoch: p.epoch, [a1]) == .addPartitions(.none))
        #expect(h.pendingWrites.isEmpty)
        h.now = 6_000
        h.add(producer: p.id, epoch: p.epoch, [b0])
        #expect(h.pendingWrites.count == 1)
        #expect(
            h.add(producer: p.id, epoch: p.epoch, [a0]) == .addPartitions(.concurrentTransactions),
            "a change is in flight")
        h.completeWrite()
        #expect(
            h.metadata()!.partitions == [a0, a1, b0] && h.metadata()!.startTimestampMs == 5_000, "the start time holds")
    }

    @Test("a failed write answers Kafka's client error for it and changes nothing")
    func failedWrite() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.autoWrite = false
        let t = h.token()
        h.absorb(
            h.coordinator.addPartitions(
                transactionalId: "t", producerId: p.id, producerEpoch: p.epoch, [a0],
                clientTransactionVersion: .v1, token: t, nowMs: h.now))
        h.completeWrite(error: .notLeaderOrFollower)
        #expect(h.answers[t] == .addPartitions(.notCoordinator))
        #expect(h.state() == .empty && h.coordinator.transaction("t")!.pending == nil)
        #expect(TransactionCoordinator.clientCode(forAppendError: .requestTimedOut) == .coordinatorNotAvailable)
        #expect(TransactionCoordinator.clientCode(forAppendError: .recordListTooLarge) == .unknownServerError)
    }

    @Test(
        "KIP-890 verify-only: partitions in the transaction are NONE, others TRANSACTION_ABORTABLE; a prepared transaction CONCURRENT_TRANSACTIONS"
    )
    func verifyOnly() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        #expect(
            h.coordinator.verifyPartitions(transactionalId: "t", producerId: p.id, producerEpoch: p.epoch, [a0, b0])
                == [a0: .none, b0: .transactionAbortable])
        #expect(
            h.coordinator.verifyPartitions(transactionalId: "t", producerId: p.id, producerEpoch: p.epoch + 1, [a0])
                == [a0: .producerFenced])
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .commit)
        #expect(
            h.coordinator.verifyPartitions(transactionalId: "t", producerId: p.id, producerEpoch: p.epoch, [a0]) == [
                a0: .concurrentTransactions
            ])
    }

    // MARK: EndTxn, transactions v1

    @Test(
        "EndTxn commit (v1): PrepareCommit is written, answered, then the markers; CompleteCommit once every marker is written"
    )
    func commitV1() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0, b0])
        h.autoMarkers = false
        #expect(h.end(producer: p.id, epoch: p.epoch, .commit) == .endTxn(.none, producerId: -1, producerEpoch: -1))
        #expect(h.state() == .prepareCommit)
        let m = h.markerBatches.last!
        #expect(
            m.result == .commit && m.producerEpoch == p.epoch && m.partitions == [a0, b0] && m.coordinatorEpoch == 1)
        h.answerMarker(a0)
        #expect(h.state() == .prepareCommit)
        h.answerMarker(b0)
        #expect(h.state() == .completeCommit && h.metadata()!.partitions.isEmpty)
        #expect(h.metadata()!.producerEpoch == p.epoch, "v1 keeps the epoch")
    }

    @Test(
        "v1: a retried commit of a committed transaction is NONE, an abort of it INVALID_TXN_STATE; EndTxn on Empty INVALID_TXN_STATE"
    )
    func endV1States() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        #expect(h.end(producer: p.id, epoch: p.epoch, .commit)?.error == .invalidTxnState)
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.end(producer: p.id, epoch: p.epoch, .commit)
        #expect(h.end(producer: p.id, epoch: p.epoch, .commit)?.error == ErrorCode.none)
        #expect(h.end(producer: p.id, epoch: p.epoch, .abort)?.error == .invalidTxnState)
        #expect(h.end(producer: p.id, epoch: p.epoch + 1, .commit)?.error == .producerFenced)
    }

    @Test(
        "any EndTxn while the markers are written is CONCURRENT_TRANSACTIONS (the completion is pending, checked before the state)"
    )
    func endWhilePrepared() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .abort)
        #expect(h.end(producer: p.id, epoch: p.epoch, .abort)?.error == .concurrentTransactions)
        #expect(h.end(producer: p.id, epoch: p.epoch, .commit)?.error == .concurrentTransactions)
    }

    // MARK: transactions v2

    @Test(
        "TV2: each end bumps the epoch; EndTxn answers the producer's next id and epoch; the next transaction uses it")
    func v2EpochBump() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0], version: .v2)
        let answer = h.end(producer: p.id, epoch: p.epoch, .commit, version: .v2)!
        #expect(answer == .endTxn(.none, producerId: p.id, producerEpoch: p.epoch + 1))
        #expect(h.markerBatches.last?.producerEpoch == p.epoch + 1 && h.markerBatches.last?.transactionVersion == .v2)
        #expect(
            h.add(producer: p.id, epoch: p.epoch, [a0], version: .v2) == .addPartitions(.producerFenced),
            "the old epoch is done")
        #expect(h.add(producer: p.id, epoch: p.epoch + 1, [a0], version: .v2) == .addPartitions(.none))
    }

    @Test(
        "TV2: a retried EndTxn (the epoch before the bump) is NONE with the current epoch; the same epoch again is the next EndTxn"
    )
    func v2Retry() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0], version: .v2)
        h.end(producer: p.id, epoch: p.epoch, .commit, version: .v2)
        #expect(
            h.end(producer: p.id, epoch: p.epoch, .commit, version: .v2)
                == .endTxn(.none, producerId: p.id, producerEpoch: p.epoch + 1))
        #expect(h.end(producer: p.id, epoch: p.epoch, .abort, version: .v2)?.error == .invalidTxnState)
        // With the current epoch an abort of nothing is a new (empty) transaction: it bumps.
        #expect(
            h.end(producer: p.id, epoch: p.epoch + 1, .abort, version: .v2)
                == .endTxn(.none, producerId: p.id, producerEpoch: p.epoch + 2))
        #expect(
            h.end(producer: p.id, epoch: p.epoch + 2, .commit, version: .v2)?.error == .invalidTxnState,
            "a commit of nothing")
    }

    @Test("TV2: the end that uses the last epoch moves the producer to a new id at epoch 0; its retry is recognized")
    func v2Overflow() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        var m = h.metadata()!
        m.producerEpoch = Int16.max - 1
        h.log[0]!.append(TransactionLog.Record(transactionalId: "t", value: m))
        h.reload(epoch: 2)
        h.add(producer: p.id, epoch: Int16.max - 1, [a0], version: .v2)
        let answer = h.end(producer: p.id, epoch: Int16.max - 1, .commit, version: .v2)!
        let next = answer.producer!
        #expect(next.id != p.id && next.epoch == 0)
        #expect(
            h.markerBatches.last?.producerId == p.id && h.markerBatches.last?.producerEpoch == Int16.max,
            "markers end the old id's transaction")
        #expect(
            h.metadata()!.producerId == next.id && h.metadata()!.producerEpoch == 0
                && h.metadata()!.previousProducerId == p.id)
        #expect(
            h.end(producer: p.id, epoch: Int16.max - 1, .commit, version: .v2)
                == .endTxn(.none, producerId: next.id, producerEpoch: 0))
    }

    // MARK: markers

    @Test(
        "a marker refused for leadership or replication is sent again after the backoff; INVALID_PRODUCER_EPOCH stops the markers"
    )
    func markerRetries() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0, b0])
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .commit)
        h.answerMarker(a0, error: .notLeaderOrFollower)
        h.answerMarker(b0)
        #expect(h.state() == .prepareCommit && h.markers.isEmpty)
        h.tick()
        #expect(h.markers.isEmpty, "not before the backoff")
        h.now += 100
        h.tick()
        #expect(h.markers.keys.sorted() == [a0])
        h.answerMarker(a0)
        #expect(h.state() == .completeCommit)

        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.end(producer: p.id, epoch: p.epoch, .abort)
        h.answerMarker(a0, error: .transactionCoordinatorFenced)
        #expect(h.state() == .prepareAbort && h.coordinator.markersInProgress["t"] == nil)
        #expect(h.events.contains(.markersAbandoned(transactionalId: "t", a0, .transactionCoordinatorFenced)))
    }

    @Test("an answer for markers of an earlier epoch is ignored")
    func staleMarkerAnswer() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0], version: .v2)
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .commit, version: .v2)
        var stale = h.markers[a0]!
        h.answerMarker(a0)
        h.add(producer: p.id, epoch: p.epoch + 1, [a0], version: .v2)
        h.end(producer: p.id, epoch: p.epoch + 1, .abort, version: .v2)
        stale.partitions = [a0]
        h.absorb(h.coordinator.markerWritten(stale, partition: a0, error: .none, nowMs: h.now))
        #expect(h.state() == .prepareAbort, "the first transaction's late answer does not complete the second")
    }

    @Test("a completion write that fails is tried again after the backoff")
    func completionRetried() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.autoWrite = false
        h.end(producer: p.id, epoch: p.epoch, .commit)
        h.completeWrite()  // PrepareCommit; the marker is answered at once, asking for CompleteCommit
        #expect(h.pendingWrites.first?.value?.state == .completeCommit)
        h.completeWrite(error: .notEnoughReplicas)
        #expect(h.state() == .prepareCommit && h.pendingWrites.isEmpty)
        h.now += 100
        h.tick()
        h.completeWrite()
        #expect(h.state() == .completeCommit)
    }

    // MARK: timeouts and expiry

    @Test("a transaction open longer than its timeout is aborted and its producer fenced")
    func timeoutAbort() {
        var h = CoordinatorHarness()
        let p = h.initProducerId(timeoutMs: 1_000)!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0])
        h.now += 1_000
        h.tick()
        #expect(h.state() == .ongoing, "not past the timeout yet")
        h.now += 10_001
        h.tick()
        #expect(h.state() == .completeAbort)
        #expect(h.markerBatches.last?.result == .abort && h.markerBatches.last?.producerEpoch == p.epoch + 1)
        #expect(h.add(producer: p.id, epoch: p.epoch, [a0]) == .addPartitions(.producerFenced))
        #expect(h.events.contains(.timedOut(transactionalId: "t", producerId: p.id, producerEpoch: p.epoch)))
    }

    @Test(
        "an id idle past transactional.id.expiration.ms is tombstoned and forgotten once that is written; an open transaction never expires"
    )
    func expiry() {
        var settings = CoordinatorHarness.defaultSettings
        settings.transactionalIdExpirationMs = 60_000
        settings.transactionVersionLevel = .v2
        var h = CoordinatorHarness(settings: settings)
        let p = h.initProducerId("idle")!.producer!
        let q = h.initProducerId("busy", timeoutMs: 900_000)!.producer!
        h.add("busy", producer: q.id, epoch: q.epoch, [a0])
        h.now += 3_600_001
        h.autoWrite = false
        h.tick()
        #expect(h.pendingWrites.contains { $0.transactionalId == "idle" && $0.value == nil })
        #expect(!h.pendingWrites.contains { $0.transactionalId == "busy" && $0.value == nil })
        #expect(h.state("idle") == .empty && h.coordinator.transaction("idle")?.pending == .dead)
        #expect(h.initProducerId("idle")?.error == .concurrentTransactions)
        while let i = h.pendingWrites.firstIndex(where: { $0.transactionalId == "idle" }) {
            h.pendingWrites.swapAt(0, i)
            h.completeWrite()
        }
        #expect(h.state("idle") == nil)
        #expect(h.log[0]!.last == TransactionLog.Record(transactionalId: "idle", value: nil))
        _ = p
    }

    // MARK: loading

    @Test("a new coordinator completes a transaction it loads prepared: the markers again, then the completion")
    func loadCompletesPrepared() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.add(producer: p.id, epoch: p.epoch, [a0, b0])
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .commit)
        h.answerMarker(a0)
        h.reload(epoch: 2)
        #expect(h.state() == .prepareCommit)
        let resent = h.markerBatches.last!
        #expect(resent.coordinatorEpoch == 2 && resent.partitions == [a0, b0] && resent.result == .commit)
        h.answerMarker(a0)
        h.answerMarker(b0)
        #expect(h.state() == .completeCommit)
    }

    @Test("a write from an earlier coordinator epoch completes as NOT_COORDINATOR and changes nothing")
    func staleWrite() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.autoWrite = false
        let t = h.token()
        h.absorb(
            h.coordinator.addPartitions(
                transactionalId: "t", producerId: p.id, producerEpoch: p.epoch, [a0],
                clientTransactionVersion: .v1, token: t, nowMs: h.now))
        let write = h.pendingWrites.removeFirst()
        h.reload(epoch: 2)
        #expect(h.answers[t] == .addPartitions(.notCoordinator), "unloading answers the parked request")
        h.absorb(h.coordinator.written(write.id, error: nil, nowMs: h.now))
        #expect(h.state() == .empty)
    }

    @Test("loading replays the latest record per id; a tombstone removes it")
    func loadReplays() {
        var h = CoordinatorHarness()
        let base = TransactionMetadata(
            transactionalId: "x", producerId: 5, producerEpoch: 3, timeoutMs: 1000, state: .completeCommit,
            startTimestampMs: 10, lastUpdateTimestampMs: 20)
        var later = base
        later.producerEpoch = 4
        let gone = TransactionMetadata(
            transactionalId: "gone", producerId: 6, producerEpoch: 0, timeoutMs: 1000, state: .empty,
            lastUpdateTimestampMs: 20)
        h.log[0] = [
            .init(transactionalId: "x", value: base), .init(transactionalId: "gone", value: gone),
            .init(transactionalId: "x", value: later), .init(transactionalId: "gone", value: nil),
        ]
        h.reload(epoch: 2)
        #expect(h.metadata("x")?.producerEpoch == 4)
        #expect(h.metadata("gone") == nil)
    }
}
