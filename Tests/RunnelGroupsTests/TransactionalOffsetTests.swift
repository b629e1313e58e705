// Transactional offset commits (TxnOffsetCommit) in the pure GroupCoordinator, as Kafka's
// GroupMetadataManager and GroupMetadata keep them: written offsets wait per producer id,
// unseen by OffsetFetch, until the producer's marker commits them (only over a commit written
// earlier in the log) or aborts them; Kafka's validation of the request's generation and member;
// a group holding only such offsets is never expired, dropped or deleted; and a coordinator
// taking over replays transactional batches and markers from `__consumer_offsets`.
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelGroups

extension Harness {
    /// A TxnOffsetCommit of `offset` for `tp` whose batch was written at `at`.
    mutating func txnCommit(
        _ group: String = "g", producer: Int64, _ tp: TopicPartition, _ offset: Int64, at: Int64
    ) {
        coordinator.commitStarted(groupId: group, [tp])
        coordinator.transactionalOffsetsWritten(
            groupId: group, producerId: producer, [(tp, Self.offset(offset))], appendedBatchOffset: at)
    }

    /// A plain OffsetCommit of `offset` for `tp` whose batch was written at `at`.
    mutating func commit(member: String = "", _ tp: TopicPartition, _ offset: Int64, at: Int64, group: String = "g") {
        coordinator.commitStarted(groupId: group, [tp])
        coordinator.offsetsCommitted(
            groupId: group, memberId: member, [(tp, Self.offset(offset))], appendedBatchOffset: at, nowMs: now)
    }

    /// The marker of `producer`'s transaction, on a partition holding every group.
    @discardableResult
    mutating func marker(producer: Int64, committed: Bool) -> [String] {
        coordinator.completeTransaction(producerId: producer, committed: committed) { _ in true }
    }

    static func offset(_ offset: Int64) -> CommittedOffset {
        CommittedOffset(offset: offset, leaderEpoch: -1, metadata: "", commitTimestampMs: 1_000)
    }

    func committed(_ tp: TopicPartition, group: String = "g") -> Int64? {
        coordinator.group(group)?.offsets[tp]?.offset
    }
}

@Suite("Group coordinator: transactional offsets")
struct TransactionalOffsetTests {
    let tp = TopicPartition("t", 0)

    @Test(
        "a transaction's offsets are pending, unseen by OffsetFetch (unstable with require_stable), until its commit marker"
    )
    func pendingUntilCommit() {
        var h = Harness()
        h.commit(tp, 5, at: 0)
        h.coordinator.commitStarted(groupId: "g", [tp])
        #expect(h.coordinator.hasPendingCommit(groupId: "g", tp), "being written")
        h.coordinator.transactionalOffsetsWritten(
            groupId: "g", producerId: 7, [(tp, Harness.offset(9))], appendedBatchOffset: 1)
        #expect(h.committed(tp) == 5, "OffsetFetch still answers the last committed offset")
        #expect(h.coordinator.hasPendingCommit(groupId: "g", tp), "require_stable: UNSTABLE_OFFSET_COMMIT")
        #expect(!h.coordinator.hasPendingCommit(groupId: "g", TopicPartition("t", 1)))
        #expect(h.coordinator.openTransactions(groupId: "g") == [7])
        #expect(h.marker(producer: 7, committed: true) == ["g"])
        #expect(h.committed(tp) == 9)
        #expect(h.coordinator.group("g")!.appendedBatchOffsets[tp] == 1)
        #expect(!h.coordinator.hasPendingCommit(groupId: "g", tp))
        #expect(h.coordinator.openTransactions(groupId: "g").isEmpty)
        #expect(h.marker(producer: 7, committed: true).isEmpty, "a marker with nothing pending changes nothing")
    }

    @Test("an abort marker drops them; a group that existed only for them is forgotten")
    func abortDrops() {
        var h = Harness()
        h.txnCommit("solo", producer: 7, tp, 9, at: 0)
        let created = h.coordinator.group("solo")
        #expect(created?.state == .empty && created?.offsets.isEmpty == true, "created Empty, as Kafka does")
        h.marker(producer: 7, committed: false)
        #expect(h.coordinator.group("solo") == nil)

        h.commit(tp, 5, at: 1)
        h.txnCommit(producer: 7, tp, 9, at: 2)
        h.marker(producer: 7, committed: false)
        #expect(h.committed(tp) == 5 && h.coordinator.group("g")!.pendingTransactionalOffsets.isEmpty)
    }

    @Test(
        "a commit marker makes an offset committed only over a commit written before it in the log (Kafka's completePendingTxnOffsetCommit)"
    )
    func logOrderWins() {
        var h = Harness()
        let early = TopicPartition("t", 0), late = TopicPartition("t", 1)
        // The transaction writes both partitions at offset 10; a plain commit of `early` follows at
        // 11 and is materialized before the marker; one of `late` came before, at 3.
        h.txnCommit(producer: 7, early, 100, at: 10)
        h.coordinator.transactionalOffsetsWritten(
            groupId: "g", producerId: 7, [(late, Harness.offset(200))], appendedBatchOffset: 10)
        h.commit(early, 50, at: 11)
        h.commit(late, 20, at: 3)
        h.marker(producer: 7, committed: true)
        #expect(h.committed(early) == 50, "the plain commit written after the transaction's stays")
        #expect(h.committed(late) == 200, "the transaction's replaces the plain commit written before it")
        // A plain commit whose write ends after a later one's does not replace it either.
        h.commit(late, 1, at: 9)
        #expect(h.committed(late) == 200)
    }

    @Test("of two writes of a partition in one transaction, the later in the log stays, whichever finished first")
    func laterWriteWins() {
        var h = Harness()
        h.txnCommit(producer: 7, tp, 30, at: 20)
        h.txnCommit(producer: 7, tp, 10, at: 12)
        h.marker(producer: 7, committed: true)
        #expect(h.committed(tp) == 30)
    }

    @Test("a marker ends only its producer's transaction, only in the groups of the partition it is on")
    func markerScope() {
        var h = Harness()
        h.txnCommit("a", producer: 7, tp, 1, at: 0)
        h.txnCommit("b", producer: 7, tp, 2, at: 1)
        h.txnCommit("a", producer: 8, TopicPartition("t", 1), 3, at: 2)
        let ended = h.coordinator.completeTransaction(producerId: 7, committed: true) { $0 == "a" }
        #expect(ended == ["a"])
        #expect(h.committed(tp, group: "a") == 1)
        #expect(h.committed(tp, group: "b") == nil && h.coordinator.openTransactions(groupId: "b") == [7])
        #expect(h.coordinator.openTransactions(groupId: "a") == [8], "another producer's stays pending")
        h.coordinator.completeTransaction(producerId: 7, committed: true) { $0 == "b" }
        #expect(h.committed(tp, group: "b") == 2)
    }

    @Test("a failed write leaves what the transaction wrote before in place")
    func failedWrite() {
        var h = Harness()
        h.txnCommit(producer: 7, tp, 1, at: 0)
        h.coordinator.commitStarted(groupId: "g", [tp])
        h.coordinator.commitFailed(groupId: "g", [tp])
        #expect(h.coordinator.group("g")!.pendingTransactionalOffsets[7]?[tp]?.offset.offset == 1)
        h.marker(producer: 7, committed: true)
        #expect(h.committed(tp) == 1)
    }

    @Test(
        "TxnOffsetCommit is checked as Kafka's validateOffsetCommit does for a transactional commit"
    )
    func validation() {
        var h = Harness()
        func check(
            _ group: String = "g", generation: Int32 = -1, member: String = "", instance: String? = nil
        )
            -> ErrorCode?
        {
            h.coordinator.checkTransactionalCommit(
                groupId: group, generationId: generation, memberId: member, instanceId: instance)
        }
        #expect(check("") == .invalidGroupId)
        #expect(check("unknown") == nil, "an unknown group is an Empty one: a commit from outside it goes")
        #expect(check("unknown", generation: 1, member: "m") == .unknownMemberId)
        let a = h.joinNew()
        h.join(instance: "i-1")  // a static member: the group rebalances
        h.join(member: a.member)  // everyone is in: the next generation
        let generation = h.generation()
        let staticMember = h.coordinator.group("g")!.member(instance: "i-1")!.memberId
        #expect(h.state() == .completingRebalance)
        #expect(
            check(generation: generation, member: a.member) == nil,
            "unlike OffsetCommit, no REBALANCE_IN_PROGRESS while the group completes its rebalance")
        h.sync(member: a.member, generation: generation, assignments: [:])
        #expect(check() == nil, "v0-2 name no member: taken from outside a non-empty group")
        #expect(check(generation: generation, member: a.member) == nil)
        #expect(check(generation: generation - 1, member: a.member) == .illegalGeneration)
        #expect(check(generation: generation, member: "ghost") == .unknownMemberId)
        #expect(check(member: a.member) == .illegalGeneration, "a member naming generation -1 in a live group")
        #expect(check(generation: generation, member: staticMember, instance: "i-1") == nil)
        #expect(check(generation: generation, member: a.member, instance: "i-1") == .fencedInstanceId)
        #expect(check(generation: generation, member: a.member, instance: "i-9") == .unknownMemberId)
        _ = h.coordinator.leave(groupId: "g", members: [(a.member, nil), (staticMember, "i-1")], nowMs: h.now)
        #expect(h.state() == .empty)
        #expect(check(member: a.member) == nil, "generation -1 on an Empty group goes whatever it names")
        #expect(check(generation: generation, member: a.member) == .unknownMemberId)
    }

    @Test("a group holding only a transaction's offsets is not expired, dropped or deleted while they are pending")
    func pendingKeepsGroup() {
        var h = Harness()
        let retention: Int64 = 60_000
        h.txnCommit("solo", producer: 7, tp, 9, at: 0)
        h.coordinator.offsetsDeleted(groupId: "solo", [tp])
        #expect(h.coordinator.group("solo") != nil)
        #expect(h.coordinator.expireOffsets(nowMs: h.now + 10 * retention, retentionMs: retention).isEmpty)
        #expect(h.coordinator.deleteGroup("solo") == .nonEmptyGroup)
        // A consumer group emptied long ago whose offsets all expire stays while a transaction holds one.
        let a = h.joinNew()
        h.sync(member: a.member, generation: 1, assignments: [:])
        h.commit(member: a.member, TopicPartition("t", 1), 3, at: 1)
        h.txnCommit(producer: 8, tp, 4, at: 2)
        h.absorb(h.coordinator.leave(groupId: "g", members: [(a.member, nil)], nowMs: h.now).effects)
        let expired = h.coordinator.expireOffsets(nowMs: h.now + retention, retentionMs: retention)
        #expect(expired.count == 1 && expired[0].offsets == [TopicPartition("t", 1)] && !expired[0].groupRemoved)
        #expect(h.coordinator.group("g") != nil)
        h.marker(producer: 8, committed: false)
        #expect(h.coordinator.deleteGroup("g") == .none)
        h.marker(producer: 7, committed: true)
        #expect(h.committed(tp, group: "solo") == 9)
        let later = h.coordinator.expireOffsets(nowMs: h.now + 20 * retention, retentionMs: retention)
        #expect(later.map(\.groupId) == ["solo"] && later[0].groupRemoved)
    }

    @Test(
        "a new coordinator replays transactional batches: a commit marker commits them (unless a plain commit followed), an abort drops them, open ones stay pending"
    )
    func load() {
        let a = TopicPartition("t", 0), b = TopicPartition("t", 1), c = TopicPartition("t", 2)
        func offset(_ group: String, _ tp: TopicPartition, _ value: Int64?) -> OffsetsRecord {
            .offset(group: group, tp, value.map(Harness.offset))
        }
        var coordinator = GroupCoordinator()
        coordinator.load(
            [
                .records([offset("g", a, 1), offset("g", b, 1)], baseOffset: 0, transactionalProducerId: nil),
                .records([offset("g", a, 10), offset("g", b, 10)], baseOffset: 2, transactionalProducerId: 7),
                .records([offset("g", c, 30)], baseOffset: 4, transactionalProducerId: 8),
                .records([offset("g", b, 5)], baseOffset: 5, transactionalProducerId: nil),
                .records([offset("solo", a, 40)], baseOffset: 6, transactionalProducerId: 9),
                .marker(producerId: 7, committed: true),
                .marker(producerId: 8, committed: false),
                .records([offset("g", c, 50), offset("g", a, nil)], baseOffset: 9, transactionalProducerId: 7),
                .records([offset("g", a, 60)], baseOffset: 11, transactionalProducerId: 7),
            ], nowMs: 1_000)
        let g = coordinator.group("g")!
        #expect(g.offsets[a]?.offset == 10, "committed over the plain commit before it")
        #expect(g.offsets[b]?.offset == 5, "the plain commit written after the transaction's stays")
        #expect(g.offsets[c] == nil, "aborted")
        #expect(g.pendingTransactionalOffsets[7]?[c]?.offset.offset == 50, "a second transaction of 7, still open")
        #expect(g.pendingTransactionalOffsets[7]?[a]?.offset.offset == 60)
        #expect(g.pendingTransactionalOffsets[7]?[a]?.appendedBatchOffset == 11)
        #expect(coordinator.hasPendingCommit(groupId: "g", c))
        let solo = coordinator.group("solo")!
        #expect(solo.state == .empty && solo.offsets.isEmpty && coordinator.openTransactions(groupId: "solo") == [9])
        // The open transactions end after the load, as markers reported by the broker.
        coordinator.completeTransaction(producerId: 7, committed: true) { _ in true }
        coordinator.completeTransaction(producerId: 9, committed: false) { _ in true }
        #expect(coordinator.group("g")!.offsets[c]?.offset == 50 && coordinator.group("g")!.offsets[a]?.offset == 60)
        #expect(coordinator.group("solo") == nil)
    }

    @Test("a coordinator moving away forgets the pending offsets; a marker for them afterwards changes nothing")
    func unload() {
        var h = Harness()
        h.txnCommit(producer: 7, tp, 9, at: 0)
        h.absorb(h.coordinator.unload { $0 == "g" })
        #expect(h.coordinator.group("g") == nil)
        #expect(h.marker(producer: 7, committed: true).isEmpty)
        #expect(h.coordinator.group("g") == nil)
    }
}
