// The coordinator's read-only queries, DescribeTransactions and ListTransactions (KIP-664, with
// KIP-994's duration filter), one rule at a time, driven through CoordinatorHarness as the
// coordinator tests are. Each test name states the rule Kafka's TransactionCoordinator and
// TransactionStateManager follow.
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelTransactions

@Suite("Transaction coordinator queries")
struct TransactionQueryTests {
    let a0 = tp("a", 0), a1 = tp("a", 1), b0 = tp("b", 0)

    func description(_ h: CoordinatorHarness, _ id: String = "t") -> TransactionDescription? {
        try? h.coordinator.describe(id).get()
    }

    func error(_ h: CoordinatorHarness, _ id: String) -> ErrorCode? {
        if case .failure(let code) = h.coordinator.describe(id) { return code }
        return nil
    }

    // MARK: DescribeTransactions

    @Test(
        "describing an id answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS when not served here, INVALID_REQUEST when empty, TRANSACTIONAL_ID_NOT_FOUND when unknown"
    )
    func describeErrors() {
        var settings = CoordinatorHarness.defaultSettings
        settings.stateTopicPartitions = 50
        var h = CoordinatorHarness(settings: settings)
        // "t" hashes to partition 16 of 50.
        #expect(error(h, "t") == .notCoordinator)
        h.absorb(h.coordinator.loadStarted(partition: 16, coordinatorEpoch: 3))
        #expect(error(h, "t") == .coordinatorLoadInProgress)
        h.absorb(h.coordinator.load(partition: 16, coordinatorEpoch: 3, records: [], nowMs: h.now))
        #expect(error(h, "t") == .transactionalIdNotFound)
        #expect(error(h, "") == .invalidRequest)
    }

    @Test(
        "an ongoing transaction is described with its state name, producer, timeout, start time and partitions in order"
    )
    func describeOngoing() {
        var h = CoordinatorHarness()
        let p = h.initProducerId(timeoutMs: 45_000)!.producer!
        #expect(
            description(h)
                == TransactionDescription(
                    transactionalId: "t", state: .empty, producerId: p.id, producerEpoch: p.epoch, timeoutMs: 45_000,
                    startTimestampMs: -1, partitions: []))
        h.now = 5_000
        h.add(producer: p.id, epoch: p.epoch, [b0, a1])
        h.now = 6_000
        h.add(producer: p.id, epoch: p.epoch, [a0])
        let d = description(h)!
        #expect(d.state == .ongoing && d.state.description == "Ongoing")
        #expect(d.startTimestampMs == 5_000, "the first partition added starts the transaction")
        #expect(d.partitions == [a0, a1, b0])
    }

    @Test("the state described is the one written to __transaction_state, not a change still being written")
    func describeWrittenState() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.autoWrite = false
        h.add(producer: p.id, epoch: p.epoch, [a0])
        #expect(h.coordinator.transaction("t")?.pending == .ongoing)
        #expect(description(h)?.state == .empty && description(h)?.partitions == [])
        h.completeWrite()
        #expect(description(h)?.state == .ongoing)
    }

    @Test(
        "while a transaction ends, only the partitions still waiting for their marker are described; once complete, none"
    )
    func describeEnding() {
        var h = CoordinatorHarness()
        let p = h.initProducerId()!.producer!
        h.now = 2_000
        h.add(producer: p.id, epoch: p.epoch, [a0, a1, b0])
        h.autoMarkers = false
        h.end(producer: p.id, epoch: p.epoch, .commit)
        #expect(description(h)?.state == .prepareCommit && description(h)?.partitions == [a0, a1, b0])
        h.answerMarker(a1)
        #expect(description(h)?.partitions == [a0, b0])
        h.answerMarker(a0, error: .notLeaderOrFollower)
        #expect(description(h)?.partitions == [a0, b0], "a marker to be sent again still waits")
        h.answerMarker(b0)
        h.now += 100
        h.tick()
        h.answerMarker(a0)
        let d = description(h)!
        #expect(d.state == .completeCommit && d.partitions == [] && d.startTimestampMs == 2_000)
    }

    @Test("an id whose tombstone is being written (expiring) is TRANSACTIONAL_ID_NOT_FOUND and is not listed")
    func expiringIsGone() {
        var settings = CoordinatorHarness.defaultSettings
        settings.transactionalIdExpirationMs = 60_000
        var h = CoordinatorHarness(settings: settings)
        h.initProducerId("idle")
        h.now += 60_000
        h.initProducerId("kept")
        h.autoWrite = false
        h.absorb(h.coordinator.expireTransactionalIds(nowMs: h.now))
        #expect(h.coordinator.transaction("idle")?.pending == .dead)
        #expect(error(h, "idle") == .transactionalIdNotFound)
        let listed = h.coordinator.list(states: [], producerIds: [], durationMs: -1, nowMs: h.now)
        #expect(listed.transactions.map(\.transactionalId) == ["kept"])
        h.autoWrite = true
        h.absorb([])
        #expect(h.coordinator.transaction("idle") == nil)
    }

    // MARK: ListTransactions

    /// Three ids: "empty" (no transaction), "open" (ongoing since 10 000), "done" (committed, started at 20 000).
    func threeIds() -> (CoordinatorHarness, open: Int64, done: Int64) {
        var h = CoordinatorHarness()
        h.initProducerId("empty")
        let open = h.initProducerId("open")!.producer!
        let done = h.initProducerId("done")!.producer!
        h.now = 10_000
        h.add("open", producer: open.id, epoch: open.epoch, [a0])
        h.now = 20_000
        h.add("done", producer: done.id, epoch: done.epoch, [b0])
        h.end("done", producer: done.id, epoch: done.epoch, .commit)
        h.now = 30_000
        return (h, open.id, done.id)
    }

    @Test("without filters every id is listed, with its producer id and state")
    func listAll() {
        let (h, open, done) = threeIds()
        let listed = h.coordinator.list(states: [], producerIds: [], durationMs: -1, nowMs: h.now)
        #expect(listed.error == .none && listed.unknownStateFilters == [])
        #expect(
            listed.transactions == [
                TransactionListing(transactionalId: "done", producerId: done, state: .completeCommit),
                TransactionListing(
                    transactionalId: "empty", producerId: h.metadata("empty")!.producerId, state: .empty),
                TransactionListing(transactionalId: "open", producerId: open, state: .ongoing),
            ])
    }

    @Test("filters combine: state names, producer ids; a state name Kafka does not know comes back as unknown")
    func listFilters() {
        let (h, open, done) = threeIds()
        func ids(_ states: [String], _ producers: Set<Int64> = []) -> [String] {
            h.coordinator.list(states: states, producerIds: producers, durationMs: -1, nowMs: h.now).transactions.map(
                \.transactionalId)
        }
        #expect(ids(["Ongoing"]) == ["open"])
        #expect(ids(["Ongoing", "CompleteCommit"]) == ["done", "open"])
        #expect(ids([], [done]) == ["done"])
        #expect(ids(["Ongoing"], [done]) == [], "every filter must match")
        #expect(ids(["Ongoing"], [open, done]) == ["open"])
        let odd = h.coordinator.list(
            states: ["Ongoing", "Hanging", "ongoing"], producerIds: [], durationMs: -1, nowMs: 0)
        #expect(odd.unknownStateFilters == ["Hanging", "ongoing"], "names are matched exactly")
        #expect(odd.transactions.map(\.transactionalId) == ["open"])
        let onlyUnknown = h.coordinator.list(states: ["Hanging"], producerIds: [], durationMs: -1, nowMs: 0)
        #expect(onlyUnknown.transactions == [], "a filter of unknown names matches nothing")
    }

    @Test(
        "the duration filter (KIP-994) keeps transactions started more than that long ago; an id that never started one passes"
    )
    func listDuration() {
        let (h, _, _) = threeIds()
        func ids(_ durationMs: Int64) -> [String] {
            h.coordinator.list(states: [], producerIds: [], durationMs: durationMs, nowMs: h.now).transactions.map(
                \.transactionalId)
        }
        // now 30 000: "open" started 20 000 ms ago, "done" 10 000 ms ago, "empty" never (-1).
        #expect(ids(-1) == ["done", "empty", "open"])
        #expect(ids(9_999) == ["done", "empty", "open"])
        #expect(ids(10_000) == ["empty", "open"], "exactly the duration is not longer than it")
        #expect(ids(19_999) == ["empty", "open"])
        #expect(ids(20_000) == ["empty"])
    }

    @Test("while any partition of __transaction_state is loading, listing answers COORDINATOR_LOAD_IN_PROGRESS")
    func listWhileLoading() {
        var settings = CoordinatorHarness.defaultSettings
        settings.stateTopicPartitions = 2
        var h = CoordinatorHarness(settings: settings)
        h.absorb(h.coordinator.loadStarted(partition: 1, coordinatorEpoch: 1))
        let listed = h.coordinator.list(states: ["Ongoing"], producerIds: [], durationMs: -1, nowMs: h.now)
        #expect(listed == TransactionList(error: .coordinatorLoadInProgress, unknownStateFilters: [], transactions: []))
        h.absorb(h.coordinator.load(partition: 1, coordinatorEpoch: 1, records: [], nowMs: h.now))
        #expect(h.coordinator.list(states: [], producerIds: [], durationMs: -1, nowMs: h.now).error == .none)
    }

    @Test("every state is found by the name Kafka gives it")
    func stateNames() {
        let names = TransactionState.allCases.map(\.description)
        #expect(
            names == [
                "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
                "PrepareEpochFence",
            ])
        for state in TransactionState.allCases { #expect(TransactionState(name: state.description) == state) }
        #expect(TransactionState(name: "EMPTY") == nil && TransactionState(name: "") == nil)
    }
}
