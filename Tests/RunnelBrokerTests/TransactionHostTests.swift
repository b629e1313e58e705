// The transaction coordinator's host on an embedded event loop: it loads a `__transaction_state`
// partition it leads, writes the coordinator's records to it through the append path before
// answering, sends markers and feeds their answers back, and a new leader epoch reloads the
// partition from what was written. The wire requests go through the host's handlers as the
// broker will route them.
import Logging
import NIOCore
import NIOEmbedded
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelTransactions
import RunnelWire
import Testing
@testable import RunnelBroker

/// Where an embedded loop's future leaves its result (the loop runs on the test's thread).
final class ResultBox: @unchecked Sendable {
    var result: Result<OutgoingResponse, any Error>?
}

struct FixedClock: Clock {
    func wallMs() -> TimestampMs { 1_000 }
    func monotonicMs() -> Int64 { 1_000 }
}

final class TransactionHostFixture: @unchecked Sendable {
    let loop = EmbeddedEventLoop()
    let state: Partition
    var host: TransactionHost!
    var markers: [TransactionMarkers] = []

    init() throws {
        state = try threeReplicaLeader(TopicPartition(TransactionLog.topicName, 0))
        _ = state.update(
            PartitionRegistration(replicas: [1], isr: [1], leader: 1, leaderEpoch: 0, partitionEpoch: 1), nowMs: 0)
        var settings = TransactionSettings()
        settings.stateTopicPartitions = 1
        let partition = state
        host = TransactionHost(
            settings: settings, clock: FixedClock(), logger: Logger(label: "test"),
            partition: { $0 == 0 ? partition : nil },
            appendRecords: { records, _, _, _ in
                let (_, batch) = records[0]
                let infos = try! RecordBatches.validate(batch!, maxBatchBytes: 1 << 20).get()
                let result = try! partition.appendAsLeader(
                    batch!, batches: infos, requiredAcks: -1, minInsyncReplicas: 1, nowMs: 1_000, monotonicMs: 1_000)
                var r = PartitionAppendResult()
                if case .failure(let code) = result { r.error = code }
                return .done([r])
            },
            sendMarkers: { [unowned self] m, loop in
                markers.append(m)
                return loop.makeSucceededFuture(
                    Dictionary(uniqueKeysWithValues: m.partitions.map { ($0, ErrorCode.none) }))
            },
            allocateProducerIds: { loop in loop.makeSucceededFuture((start: 5000, count: 100)) })
    }

    var context: RequestContext {
        RequestContext(
            connectionId: 1, remoteAddress: nil, listener: "PLAINTEXT", eventLoop: loop,
            allocator: ByteBufferAllocator())
    }

    /// InitProducerId v4 for transactional id `id` with no producer id yet (a new producer, or
    /// one that fences the last).
    func initProducer(_ id: String) throws -> InitProducerIdResponse {
        var request = InitProducerIdRequest(transactionalId: id, transactionTimeoutMs: 60_000)
        request.producerId = -1
        request.producerEpoch = -1
        return try answer(
            host.initProducerId(request, version: 4, context: context), as: InitProducerIdResponse.self, version: 4)
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
}

@Suite("Transaction coordinator host")
struct TransactionHostTests {
    @Test(
        "a transaction through the host: every answer after its write to __transaction_state; markers sent; a reload finds the state"
    )
    func transactionThroughTheHost() throws {
        let f = try TransactionHostFixture()
        f.host.leadershipChanged(leading: [0: 0], on: f.loop)
        f.loop.run()
        #expect(f.host.check("t") == nil)

        // The first id needs a block from the controller: COORDINATOR_LOAD_IN_PROGRESS, then served.
        var init0 = InitProducerIdRequest(transactionalId: "t", transactionTimeoutMs: 60_000)
        init0.producerId = -1
        init0.producerEpoch = -1
        let first = try f.answer(
            f.host.initProducerId(init0, version: 4, context: f.context), as: InitProducerIdResponse.self, version: 4)
        #expect(first.errorCode == ErrorCode.coordinatorLoadInProgress.rawValue)
        let granted = try f.answer(
            f.host.initProducerId(init0, version: 4, context: f.context), as: InitProducerIdResponse.self, version: 4)
        #expect(granted.errorCode == 0 && granted.producerId == 5000 && granted.producerEpoch == 0)

        var add = AddPartitionsToTxnRequest()
        add.v3AndBelowTransactionalId = "t"
        add.v3AndBelowProducerId = 5000
        add.v3AndBelowProducerEpoch = 0
        add.v3AndBelowTopics = [.init(name: "a", partitions: [0, 1])]
        let added = try f.answer(
            f.host.addPartitionsToTxn(add, version: 3, context: f.context), as: AddPartitionsToTxnResponse.self,
            version: 3)
        #expect(added.resultsByTopicV3AndBelow.flatMap(\.resultsByPartition).map(\.partitionErrorCode) == [0, 0])

        let end = EndTxnRequest(transactionalId: "t", producerId: 5000, producerEpoch: 0, committed: true)
        let ended = try f.answer(
            f.host.endTxn(end, version: 5, context: f.context), as: EndTxnResponse.self, version: 5)
        #expect(
            ended.errorCode == 0 && ended.producerId == 5000 && ended.producerEpoch == 1, "EndTxn v5: the next epoch")
        f.loop.run()
        #expect(f.markers.map(\.partitions) == [[TopicPartition("a", 0), TopicPartition("a", 1)]])
        #expect(f.markers.first?.transactionVersion == .v2 && f.markers.first?.producerEpoch == 1)
        #expect(f.host.read { $0.transaction("t")?.metadata.state } == .completeCommit)

        // The records are in the log: a new leader epoch reloads them.
        let records = try RecordBatches.decode(f.state.log.readBytes(from: 0, maxBytes: 1 << 20)).flatMap(\.records)
        #expect(records.count == 4, "Empty, Ongoing, PrepareCommit, CompleteCommit")
        f.host.leadershipChanged(leading: [0: 1], on: f.loop)
        f.loop.run()
        #expect(f.host.read { $0.transaction("t")?.metadata.state } == .completeCommit)
        #expect(f.host.read { $0.ownership[0] } == .loaded(coordinatorEpoch: 1))
        f.host.leadershipChanged(leading: [:], on: f.loop)
        #expect(f.host.check("t") == .notCoordinator)
    }

    @Test(
        "a fenced producer is told PRODUCER_FENCED from the versions of KIP-588 on, INVALID_PRODUCER_EPOCH before them")
    func fencedByVersion() throws {
        let f = try TransactionHostFixture()
        f.host.leadershipChanged(leading: [0: 0], on: f.loop)
        f.loop.run()
        _ = try f.initProducer("t")
        let old = try f.initProducer("t")
        let new = try f.initProducer("t")
        #expect(
            old.errorCode == 0 && new.errorCode == 0 && new.producerId == old.producerId
                && new.producerEpoch == old.producerEpoch + 1,
            "the second instance fences the first")

        func addPartitions(version: Int16) throws -> [Int16] {
            var add = AddPartitionsToTxnRequest()
            add.v3AndBelowTransactionalId = "t"
            add.v3AndBelowProducerId = old.producerId
            add.v3AndBelowProducerEpoch = old.producerEpoch
            add.v3AndBelowTopics = [.init(name: "a", partitions: [0])]
            let answer = try f.answer(
                f.host.addPartitionsToTxn(add, version: version, context: f.context),
                as: AddPartitionsToTxnResponse.self, version: version)
            return answer.resultsByTopicV3AndBelow.flatMap(\.resultsByPartition).map(\.partitionErrorCode)
        }
        #expect(try addPartitions(version: 1) == [ErrorCode.invalidProducerEpoch.rawValue])
        #expect(try addPartitions(version: 2) == [ErrorCode.producerFenced.rawValue])

        func addOffsets(version: Int16) throws -> Int16 {
            let add = AddOffsetsToTxnRequest(
                transactionalId: "t", producerId: old.producerId, producerEpoch: old.producerEpoch, groupId: "g")
            return try f.answer(
                f.host.addOffsetsToTxn(
                    add, groupPartition: TopicPartition("__consumer_offsets", 0), version: version, context: f.context),
                as: AddOffsetsToTxnResponse.self, version: version
            ).errorCode
        }
        #expect(try addOffsets(version: 1) == ErrorCode.invalidProducerEpoch.rawValue)
        #expect(try addOffsets(version: 2) == ErrorCode.producerFenced.rawValue)

        func endTxn(version: Int16) throws -> Int16 {
            let end = EndTxnRequest(
                transactionalId: "t", producerId: old.producerId, producerEpoch: old.producerEpoch, committed: true)
            return try f.answer(
                f.host.endTxn(end, version: version, context: f.context), as: EndTxnResponse.self, version: version
            ).errorCode
        }
        #expect(try endTxn(version: 1) == ErrorCode.invalidProducerEpoch.rawValue)
        #expect(try endTxn(version: 2) == ErrorCode.producerFenced.rawValue)

        // KIP-360 recovery with an epoch that is neither the current nor the previous one.
        func recover(version: Int16) throws -> Int16 {
            var request = InitProducerIdRequest(transactionalId: "t", transactionTimeoutMs: 60_000)
            request.producerId = new.producerId
            request.producerEpoch = new.producerEpoch + 5
            return try f.answer(
                f.host.initProducerId(request, version: version, context: f.context), as: InitProducerIdResponse.self,
                version: version
            ).errorCode
        }
        #expect(try recover(version: 3) == ErrorCode.invalidProducerEpoch.rawValue)
        #expect(try recover(version: 4) == ErrorCode.producerFenced.rawValue)
    }

    @Test("the coordinator runs at the finalized transaction.version; an unknown higher level reads as 2")
    func followsTheFinalizedLevel() throws {
        let f = try TransactionHostFixture()
        for (level, expected): (Int16, TransactionVersion) in [(0, .v0), (1, .v1), (2, .v2), (7, .v2), (0, .v0)] {
            f.host.transactionVersionChanged(featureLevel: level)
            #expect(f.host.transactionVersionLevel == expected)
        }
    }

    @Test(
        "a leader's implicit add (Produce v12, TxnOffsetCommit v5) opens the transaction under the v2 protocol; an ended epoch is fenced"
    )
    func leaderAddsPartitions() throws {
        let f = try TransactionHostFixture()
        f.host.leadershipChanged(leading: [0: 0], on: f.loop)
        f.loop.run()
        _ = try f.initProducer("t")
        let granted = try f.initProducer("t")
        #expect(granted.errorCode == 0)
        final class Answer: @unchecked Sendable { var code: ErrorCode? }
        func add(_ id: String, epoch: Int16, _ partitions: Set<TopicPartition>) -> ErrorCode? {
            let answer = Answer()
            f.host.addPartitionsForLeader(id, producerId: granted.producerId, epoch: epoch, partitions, on: f.loop)
                .whenSuccess { answer.code = $0 }
            f.loop.run()
            return answer.code
        }
        let a0 = TopicPartition("a", 0)
        #expect(add("t", epoch: granted.producerEpoch, [a0]) == ErrorCode.none)
        let open = try #require(f.host.read { $0.transaction("t")?.metadata })
        #expect(open.state == .ongoing && open.partitions == [a0] && open.clientTransactionVersion == .v2)
        #expect(add("t", epoch: granted.producerEpoch, [a0]) == ErrorCode.none, "already in: answered at once")
        #expect(add("unknown-id", epoch: 0, [a0]) == .invalidProducerIdMapping)

        let end = EndTxnRequest(
            transactionalId: "t", producerId: granted.producerId, producerEpoch: granted.producerEpoch, committed: true)
        let ended = try f.answer(
            f.host.endTxn(end, version: 5, context: f.context), as: EndTxnResponse.self, version: 5)
        #expect(ended.errorCode == 0 && ended.producerEpoch == granted.producerEpoch + 1)
        #expect(add("t", epoch: granted.producerEpoch, [a0]) == .producerFenced, "the ended epoch")

        f.host.leadershipChanged(leading: [:], on: f.loop)
        #expect(add("t", epoch: ended.producerEpoch, [a0]) == .notCoordinator)
    }

    @Test("ApiVersions advertises the transactions v2 versions; Produce v12 and TxnOffsetCommit v5 add partitions")
    func advertisedVersions() {
        #expect(Broker.supportedVersions[.produce]?.upperBound == 12)
        #expect(Broker.supportedVersions[.endTxn]?.upperBound == 5)
        #expect(Broker.supportedVersions[.txnOffsetCommit]?.upperBound == 5)
        #expect(Broker.produceAddsPartitionsSince == 12)
        #expect(Broker.txnOffsetCommitAddsPartitionSince == 5)
    }
}
