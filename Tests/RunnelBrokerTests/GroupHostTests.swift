// The group coordinator's host on an embedded event loop over a real `__consumer_offsets`
// partition: a TxnOffsetCommit is written as one transactional batch of the request's producer
// (Kafka's layout: producer id and epoch, sequence 0), which the log takes as a coordinator's
// (its epoch checked, not its sequence) and holds as the producer's open transaction; its
// offsets stay pending until the broker reports the marker it wrote (`transactionCompleted`); a
// coordinator that loads the partition replays transactional batches and markers; and the
// request's errors come as Kafka gives them.
import Logging
import NIOCore
import NIOEmbedded
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker

final class GroupHostFixture: @unchecked Sendable {
    let loop = EmbeddedEventLoop()
    let offsets: Partition
    var host: GroupHost!
    static let producer: Int64 = 5000

    init() throws {
        offsets = try threeReplicaLeader(TopicPartition(OffsetsTopic.name, 0))
        _ = offsets.update(
            PartitionRegistration(replicas: [1], isr: [1], leader: 1, leaderEpoch: 0, partitionEpoch: 1), nowMs: 0)
        let partition = offsets
        host = GroupHost(
            settings: GroupSettings(), clock: FixedClock(), logger: Logger(label: "test"), partitionCount: { 1 },
            partition: { $0 == 0 ? partition : nil },
            appendRecords: { entries, acks, _, verification, _ in
                // The broker's append path as the coordinators use it: origin .coordinator.
                var result = PartitionAppendResult()
                do {
                    let batch = entries[0].1!
                    let infos = try RecordBatches.validate(batch, maxBatchBytes: 1 << 20).get()
                    switch try partition.appendAsLeader(
                        batch, batches: infos, requiredAcks: acks, minInsyncReplicas: 1, nowMs: 1_000,
                        monotonicMs: 1_000, origin: .coordinator, verification: verification)
                    {
                    case .success(let info): result.baseOffset = info.firstOffset
                    case .failure(let code): result.error = code
                    }
                } catch let error as ProducerStateError {
                    result.error = error.code
                } catch {
                    result.error = .unknownServerError
                }
                return .done([result])
            })
    }

    var context: RequestContext {
        RequestContext(
            connectionId: 1, remoteAddress: nil, listener: "PLAINTEXT", eventLoop: loop,
            allocator: ByteBufferAllocator())
    }

    func answer<M: ResponseMessage>(_ outcome: RequestOutcome, as: M.Type, version: Int16) throws -> M {
        let response: OutgoingResponse
        switch outcome {
        case .respondNow(let r): response = r
        case .respond(let future):
            let box = ResultBox()
            future.whenComplete { box.result = $0 }
            loop.run()
            response = try #require(box.result).get()
        default: fatalError("no answer")
        }
        var bytes = ByteBuffer()
        for part in response.parts { if case .byteBuffer(var b) = part { bytes.writeBuffer(&b) } }
        return try M.decode(bytes, version: version)
    }

    /// Leads `__consumer_offsets-0` and loads it.
    func lead() {
        host.leadershipChanged(leading: [0], on: loop)
        loop.run()
    }

    /// A TxnOffsetCommit of `t-0` (and `t-1` when `second` is given); the error per partition.
    func commit(
        _ offset: Int64, group: String = "g", epoch: Int16 = 0, second: String? = nil, generation: Int32 = -1,
        member: String = "", version: Int16 = 3, verification: ProducerStateTable.Verification = .notRequired
    ) throws -> [Int16] {
        var partitions: [TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition] = [
            .init(partitionIndex: 0, committedOffset: offset, committedLeaderEpoch: 2, committedMetadata: "m")
        ]
        if let second {
            partitions.append(.init(partitionIndex: 1, committedOffset: offset, committedMetadata: second))
        }
        let r = TxnOffsetCommitRequest(
            transactionalId: "tx", groupId: group, producerId: Self.producer, producerEpoch: epoch,
            generationId: generation, memberId: member, topics: [.init(name: "t", partitions: partitions)])
        let answer = try self.answer(
            host.txnOffsetCommit(r, version: version, context: context, verification: verification),
            as: TxnOffsetCommitResponse.self,
            version: version)
        return answer.topics.flatMap(\.partitions).map(\.errorCode)
    }

    /// OffsetFetch v7 of `t-0`.
    func fetch(requireStable: Bool) throws -> OffsetFetchResponse.OffsetFetchResponsePartition {
        let r = OffsetFetchRequest(
            groupId: "g", topics: [.init(name: "t", partitionIndexes: [0])], requireStable: requireStable)
        let answer = try self.answer(
            host.offsetFetch(r, version: 7, context: context), as: OffsetFetchResponse.self, version: 7)
        return answer.topics[0].partitions[0]
    }

    /// What the broker does for a WriteTxnMarkers entry naming `__consumer_offsets-0`: appends the
    /// marker, then reports it.
    func marker(committed: Bool, epoch: Int16 = 0) throws {
        _ = try offsets.log.appendTransactionMarker(
            producerId: Self.producer, producerEpoch: epoch,
            EndTransactionMarker(committed: committed, coordinatorEpoch: 0), transactionVersion: 0, leaderEpoch: 0,
            nowMs: 1_000)
        host.transactionCompleted(offsetsPartition: 0, producerId: Self.producer, committed: committed)
    }
}

@Suite("Group coordinator host: transactional offsets")
struct GroupHostTests {
    static let unstable = ErrorCode.unstableOffsetCommit.rawValue

    @Test(
        "TxnOffsetCommit writes one transactional batch of the producer; its offset is pending until the marker; a reload replays the log"
    )
    func txnOffsetCommitThroughTheHost() throws {
        let f = try GroupHostFixture()
        f.lead()
        #expect(try f.commit(10) == [0])
        let batches = try RecordBatches.decode(f.offsets.log.readBytes(from: 0, maxBytes: 1 << 20))
        let header = try #require(batches.first?.header)
        #expect(batches.count == 1 && header.recordCount == 1)
        #expect(header.isTransactional && !header.isControl)
        #expect(header.producerId == GroupHostFixture.producer && header.producerEpoch == 0 && header.baseSequence == 0)
        #expect(
            f.offsets.log.producerStateTable.firstUndecidedOffset == 0,
            "the log holds the producer's transaction open: a marker may end it")
        #expect(try f.fetch(requireStable: true).errorCode == Self.unstable)
        #expect(try f.fetch(requireStable: false).committedOffset == -1, "not visible before its commit")

        try f.marker(committed: true)
        #expect(f.offsets.log.producerStateTable.firstUndecidedOffset == nil)
        let fetched = try f.fetch(requireStable: true)
        #expect(fetched.errorCode == 0 && fetched.committedOffset == 10 && fetched.committedLeaderEpoch == 2)
        #expect(fetched.metadata == "m")

        #expect(try f.commit(20) == [0])
        try f.marker(committed: false)
        #expect(try f.fetch(requireStable: true).committedOffset == 10, "aborted")

        // A restarted producer (a new epoch) writes sequence 0 again: the log takes it; the old
        // epoch is fenced by the log.
        #expect(try f.commit(30, epoch: 1) == [0])
        #expect(try f.commit(25, epoch: 0) == [ErrorCode.invalidProducerEpoch.rawValue])
        // The coordinator moves away and back while the transaction is open: it is pending again.
        f.host.leadershipChanged(leading: [], on: f.loop)
        #expect(f.host.check("g") == .notCoordinator)
        f.lead()
        #expect(try f.fetch(requireStable: true).errorCode == Self.unstable)
        #expect(try f.fetch(requireStable: false).committedOffset == 10)
        try f.marker(committed: true, epoch: 1)
        #expect(try f.fetch(requireStable: true).committedOffset == 30)
        // A load of the whole log (plain records, transactions, markers) ends the same.
        f.host.leadershipChanged(leading: [], on: f.loop)
        f.lead()
        let reloaded = try f.fetch(requireStable: true)
        #expect(reloaded.errorCode == 0 && reloaded.committedOffset == 30)
    }

    @Test(
        "TxnOffsetCommit errors: NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS, the group's checks for all partitions, OFFSET_METADATA_TOO_LARGE for one"
    )
    func errors() throws {
        let f = try GroupHostFixture()
        #expect(try f.commit(1) == [ErrorCode.notCoordinator.rawValue])
        f.host.leadershipChanged(leading: [0], on: f.loop)
        #expect(try f.commit(1) == [ErrorCode.coordinatorLoadInProgress.rawValue])
        f.loop.run()
        #expect(try f.commit(1, group: "") == [ErrorCode.invalidGroupId.rawValue])
        let unknown = ErrorCode.unknownMemberId.rawValue
        #expect(
            try f.commit(1, second: "", generation: 3, member: "m") == [unknown, unknown],
            "v3 names a member the (new, Empty) group does not have")
        #expect(
            try f.commit(1, generation: 3, member: "m", version: 2) == [0],
            "v2 carries no member: generation and member id are not on the wire")
        let tooLarge = String(repeating: "x", count: GroupSettings().offsetMetadataMaxBytes + 1)
        #expect(try f.commit(2, second: tooLarge) == [0, ErrorCode.offsetMetadataTooLarge.rawValue])
        #expect(f.host.read { $0.group("g")?.pendingTransactionalOffsets[GroupHostFixture.producer]?.count } == 1)
    }

    @Test(
        "a transactional offset write under a verification guard: taken when a marker ended the producer's transaction since the guard, refused with INVALID_TXN_STATE, and nothing left open"
    )
    func verificationGuard() throws {
        let f = try GroupHostFixture()
        f.lead()
        let producer = GroupHostFixture.producer
        // The coordinator confirmed the partition under this guard, and nothing ended since.
        let held = try #require(
            f.offsets.log.startTransactionVerification(producerId: producer, epoch: 0, nowMs: 1_000))
        #expect(try f.commit(10, verification: .verified(held)) == [0])
        // The transaction is open here now: a later write asks nothing (no guard) and is taken.
        #expect(f.offsets.log.startTransactionVerification(producerId: producer, epoch: 0, nowMs: 1_000) == nil)
        #expect(try f.commit(11, verification: .verified(nil)) == [0])
        try f.marker(committed: true)
        #expect(try f.fetch(requireStable: true).committedOffset == 11)

        // A guard taken, then the coordinator's abort (a timed-out transaction) reaches the
        // partition before the write: the write would open a transaction nobody ends.
        let stale = try #require(
            f.offsets.log.startTransactionVerification(producerId: producer, epoch: 0, nowMs: 1_000))
        try f.marker(committed: false)
        #expect(try f.commit(12, verification: .verified(stale)) == [ErrorCode.invalidTxnState.rawValue])
        #expect(f.offsets.log.producerStateTable.firstUndecidedOffset == nil, "no transaction left open")
        #expect(try f.fetch(requireStable: true).committedOffset == 11)
        #expect(try f.fetch(requireStable: true).errorCode == 0, "nothing pending for the group")
    }

    @Test("a marker reported while the partition loads counts once: the load read it, or applies it when done")
    func markerDuringLoad() throws {
        let f = try GroupHostFixture()
        f.lead()
        #expect(try f.commit(10) == [0])
        f.host.leadershipChanged(leading: [], on: f.loop)
        f.host.leadershipChanged(leading: [0], on: f.loop)  // loading, not yet run
        try f.marker(committed: true)
        f.loop.run()
        #expect(try f.fetch(requireStable: true).committedOffset == 10)
        // The next transaction of the producer is not ended by that report.
        #expect(try f.commit(20) == [0])
        #expect(try f.fetch(requireStable: true).errorCode == Self.unstable)
        #expect(try f.fetch(requireStable: false).committedOffset == 10)
    }
}
