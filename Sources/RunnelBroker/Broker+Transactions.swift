import NIOCore
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelReplication
import RunnelSecurity
import RunnelTransactions
import RunnelWire

/// The transaction APIs a producer sends (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn), checked
/// as Kafka's KafkaApis checks them and handed to the transaction coordinator, and the partition
/// leader's side of the markers (WriteTxnMarkers): serving them, and sending the coordinator's.
extension Broker {
    // MARK: a transactional producer's requests

    /// AddPartitionsToTxn (Kafka's handleAddPartitionsToTxnRequest). v0-3 come from a producer:
    /// WRITE on its transactional id, and each topic WRITE and known, or nothing is added (the
    /// failing partitions say why, the others OPERATION_NOT_ATTEMPTED). v4+ come from a partition
    /// leader and need CLUSTER_ACTION.
    func addPartitionsToTxn(_ r: AddPartitionsToTxnRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        guard version <= 3 else {
            guard auth.allows(.clusterAction, .cluster) else {
                var response = AddPartitionsToTxnResponse()
                response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
                return respond(response, version: version, context: context)
            }
            return transactions.addPartitionsToTxn(r, version: version, context: context)
        }
        let topics = r.v3AndBelowTopics
        func answer(_ error: @escaping (TopicPartition) -> ErrorCode) -> RequestOutcome {
            var response = AddPartitionsToTxnResponse()
            response.resultsByTopicV3AndBelow = TransactionHost.results(topics) { error($0) }
            return respond(response, version: version, context: context)
        }
        guard auth.allows(.write, .transactionalId(r.v3AndBelowTransactionalId)) else {
            return answer { _ in .transactionalIdAuthorizationFailed }
        }
        let writable = auth.allowedTopics(.write, topics.map(\.name))
        let image = self.image
        var refused: [TopicPartition: ErrorCode] = [:]
        for t in topics {
            for p in t.partitions {
                let tp = TopicPartition(t.name, p)
                if !writable.contains(t.name) {
                    refused[tp] = .topicAuthorizationFailed
                } else if image.partition(tp) == nil {
                    refused[tp] = .unknownTopicOrPartition
                }
            }
        }
        guard refused.isEmpty else { return answer { refused[$0] ?? .operationNotAttempted } }
        return transactions.addPartitionsToTxn(r, version: version, context: context)
    }

    /// AddOffsetsToTxn: WRITE on the transactional id and READ on the group; the group's
    /// `__consumer_offsets` partition joins the transaction.
    func addOffsetsToTxn(_ r: AddOffsetsToTxnRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        func fail(_ code: ErrorCode) -> RequestOutcome {
            respond(AddOffsetsToTxnResponse(errorCode: code.rawValue), version: version, context: context)
        }
        guard auth.allows(.write, .transactionalId(r.transactionalId)) else {
            return fail(.transactionalIdAuthorizationFailed)
        }
        guard auth.allows(.read, .group(r.groupId)) else { return fail(.groupAuthorizationFailed) }
        guard let offsets = image.topic(named: OffsetsTopic.name), offsets.partitionCount > 0 else {
            // No group has a coordinator yet; the producer looks again.
            return fail(.coordinatorNotAvailable)
        }
        let groupPartition = TopicPartition(
            OffsetsTopic.name, OffsetsTopic.partition(for: r.groupId, partitions: Int32(offsets.partitionCount)))
        return transactions.addOffsetsToTxn(r, groupPartition: groupPartition, version: version, context: context)
    }

    /// EndTxn: WRITE on the transactional id.
    func endTxn(_ r: EndTxnRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        guard authorization(context).allows(.write, .transactionalId(r.transactionalId)) else {
            return respond(
                EndTxnResponse(errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue), version: version,
                context: context)
        }
        return transactions.endTxn(r, version: version, context: context)
    }

    /// TxnOffsetCommit (Kafka's handleTxnOffsetCommitRequest): WRITE on the transactional id,
    /// READ on the group, and per topic READ and existence; the group coordinator keeps the
    /// offsets pending until the transaction's marker reaches the group's partition.
    func txnOffsetCommit(_ r: TxnOffsetCommitRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        let whole: ErrorCode? =
            !auth.allows(.write, .transactionalId(r.transactionalId))
            ? .transactionalIdAuthorizationFailed
            : !auth.allows(.read, .group(r.groupId)) ? .groupAuthorizationFailed : nil
        if let whole {
            var response = TxnOffsetCommitResponse()
            response.topics = r.topics.map { t in
                .init(
                    name: t.name,
                    partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: whole.rawValue) }
                )
            }
            return respond(response, version: version, context: context)
        }
        let readable = auth.allowedTopics(.read, r.topics.map(\.name))
        let image = self.image
        var refused: [TopicPartition: ErrorCode] = [:]
        for t in r.topics {
            for p in t.partitions {
                let tp = TopicPartition(t.name, p.partitionIndex)
                if !readable.contains(t.name) {
                    refused[tp] = .topicAuthorizationFailed
                } else if image.partition(tp) == nil {
                    refused[tp] = .unknownTopicOrPartition
                }
            }
        }
        let adding = version >= Self.txnOffsetCommitAddsPartitionSince
        guard adding || settings.transactionPartitionVerification, groups.check(r.groupId) == nil,
            let offsets = image.topic(named: OffsetsTopic.name), offsets.partitionCount > 0,
            r.topics.contains(where: { t in
                t.partitions.contains { refused[TopicPartition(t.name, $0.partitionIndex)] == nil }
            })
        else {
            return groups.txnOffsetCommit(r, version: version, context: context, refused: refused)
        }
        // KIP-890: the group's `__consumer_offsets` partition must be in the producer's
        // transaction before the offsets are written. Transactions v2 (part 2): the producer sent
        // no AddOffsetsToTxn, so the partition joins the transaction here (AddPartitionsToTxn v5
        // without verify-only, as Kafka's group coordinator does through its transactional
        // write's verification). Before v2 (part 1): the coordinator is asked whether
        // AddOffsetsToTxn added it. Either way the write goes under the guard taken here first, so
        // a marker that ends the transaction meanwhile (a timed-out transaction aborted) refuses
        // the write instead of leaving a transaction open that nobody would end.
        let groupPartition = TopicPartition(
            OffsetsTopic.name, OffsetsTopic.partition(for: r.groupId, partitions: Int32(offsets.partitionCount)))
        guard let local = partition(groupPartition) else {
            return groups.txnOffsetCommit(r, version: version, context: context, refused: refused)
        }
        guard
            let verificationGuard = local.log.startTransactionVerification(
                producerId: r.producerId, epoch: r.producerEpoch, nowMs: clock.wallMs())
        else {
            // The producer's transaction is open on the partition already: nothing to ask.
            return groups.txnOffsetCommit(
                r, version: version, context: context, refused: refused, verification: .verified(nil))
        }
        let allocator = context.allocator
        let refusedPartitions = refused
        let future = addOrVerifyTransaction(
            r.transactionalId, producerId: r.producerId, epoch: r.producerEpoch, [groupPartition], adding: adding,
            eventLoop: context.eventLoop
        ).flatMap { [self] errors -> EventLoopFuture<OutgoingResponse> in
            let error = errors[groupPartition] ?? .unknownServerError
            guard error == .none else {
                BrokerMetrics.transactionVerificationFailures.increment()
                // TRANSACTION_ABORTABLE is TxnOffsetCommit v4's (KIP-890); older versions get
                // INVALID_TXN_STATE, as Produce before v11 does.
                let asProduce: Int16 = version >= 4 ? 12 : 10
                let code = GroupHost.clientCode(Self.produceError(forVerification: error, produceVersion: asProduce).0)
                var response = TxnOffsetCommitResponse()
                response.topics = r.topics.map { t in
                    .init(
                        name: t.name,
                        partitions: t.partitions.map {
                            .init(
                                partitionIndex: $0.partitionIndex,
                                errorCode: (refusedPartitions[TopicPartition(t.name, $0.partitionIndex)] ?? code)
                                    .rawValue)
                        })
                }
                return context.eventLoop.makeSucceededFuture(
                    OutgoingResponse(response, version: version, allocator: allocator))
            }
            switch groups.txnOffsetCommit(
                r, version: version, context: context, refused: refusedPartitions,
                verification: .verified(verificationGuard))
            {
            case .respondNow(let response): return context.eventLoop.makeSucceededFuture(response)
            case .respond(let answer): return answer
            case .noResponse, .noResponseThrottled, .close:
                preconditionFailure("TxnOffsetCommit always answers")
            }
        }
        return .respond(future)
    }

    /// The first TxnOffsetCommit version that adds the group's partition to the transaction
    /// itself (transactions v2, KIP-890 part 2), with no AddOffsetsToTxn before it.
    static let txnOffsetCommitAddsPartitionSince: Int16 = 5

    // MARK: verification of a transactional produce (KIP-890 part 1)

    /// Which partitions of a transactional produce need the coordinator's word (KIP-890 part 1):
    /// those whose first batch is transactional and whose producer has no transaction open there
    /// at its epoch. Each gets a verification guard from its log now. Nil when none needs asking.
    func verificationPlan(_ entries: [(TopicPartition, ByteBuffer?)]) -> TransactionVerificationPlan? {
        let now = clock.wallMs()
        var toAsk: [Int: TopicPartition] = [:]
        var verification: [Int: ProducerStateTable.Verification] = [:]
        var producer: (id: Int64, epoch: Int16)?
        for (index, (tp, records)) in entries.enumerated() {
            guard let records, let header = RecordBatchHeader(records, at: records.readerIndex),
                header.isTransactional, header.producerId >= 0, let partition = partition(tp)
            else { continue }
            producer = producer ?? (header.producerId, header.producerEpoch)
            let guardToken = partition.log.startTransactionVerification(
                producerId: header.producerId, epoch: header.producerEpoch, nowMs: now)
            verification[index] = .verified(guardToken)
            if guardToken != nil { toAsk[index] = tp }
        }
        guard let producer, !toAsk.isEmpty else { return nil }
        return TransactionVerificationPlan(
            producerId: producer.id, epoch: producer.epoch, toAsk: toAsk, verification: verification)
    }

    /// What a producer is told when the coordinator did not confirm a partition (Kafka's
    /// ReplicaManager and AddPartitionsToTxnManager): a fenced epoch as INVALID_PRODUCER_EPOCH,
    /// TRANSACTION_ABORTABLE only to Produce v11+ clients (INVALID_TXN_STATE before), and a
    /// coordinator that cannot answer yet as NOT_ENOUGH_REPLICAS, which producers retry.
    static func produceError(forVerification error: ErrorCode, produceVersion: Int16) -> (ErrorCode, String?) {
        switch error {
        case .producerFenced:
            return (.invalidProducerEpoch, nil)
        case .transactionAbortable where produceVersion < 11, .invalidTxnState:
            return (.invalidTxnState, "Partition was not added to the transaction")
        case .concurrentTransactions, .coordinatorLoadInProgress, .coordinatorNotAvailable, .notCoordinator:
            return (
                .notEnoughReplicas,
                "Unable to verify the partition has been added to the transaction. Underlying error: \(error)"
            )
        case .clusterAuthorizationFailed:
            return (.invalidTxnState, nil)
        default:
            return (error, nil)
        }
    }

    /// Asks the transaction coordinator of `transactionalId` (Kafka's AddPartitionsToTxnManager
    /// `addOrVerifyTransaction`, or the local coordinator directly) either whether `partitions`
    /// are in the producer's open transaction (AddPartitionsToTxn v4, verify-only, KIP-890 part
    /// 1), or, when `adding` (a Produce v12 or TxnOffsetCommit v5 of transactions v2, KIP-890
    /// part 2), to add them to it (v5, verify-only false): each partition's error, `.none` when
    /// it is in the transaction.
    func addOrVerifyTransaction(
        _ transactionalId: String, producerId: Int64, epoch: Int16, _ partitions: Set<TopicPartition>,
        adding: Bool, eventLoop: any EventLoop
    ) -> EventLoopFuture<[TopicPartition: ErrorCode]> {
        @Sendable func all(_ code: ErrorCode) -> [TopicPartition: ErrorCode] {
            Dictionary(uniqueKeysWithValues: partitions.map { ($0, code) })
        }
        let image = self.image
        guard let topic = image.topic(named: TransactionLog.topicName), topic.partitionCount > 0 else {
            return eventLoop.makeSucceededFuture(all(.coordinatorNotAvailable))
        }
        let p = TransactionLog.partition(for: transactionalId, partitions: Int32(topic.partitionCount))
        guard let leader = topic.partitions[p]?.leader, leader >= 0 else {
            return eventLoop.makeSucceededFuture(all(.coordinatorNotAvailable))
        }
        if leader == settings.nodeId, adding {
            return transactions.addPartitionsForLeader(
                transactionalId, producerId: producerId, epoch: epoch, partitions, on: eventLoop
            ).map { all($0) }
        }
        if leader == settings.nodeId {
            return eventLoop.makeSucceededFuture(
                transactions.read {
                    $0.verifyPartitions(
                        transactionalId: transactionalId, producerId: producerId, producerEpoch: epoch, partitions)
                })
        }
        guard let peers = markerPeers.withLockedValue({ $0 }) else {
            return eventLoop.makeSucceededFuture(all(.coordinatorNotAvailable))
        }
        var topics: [String: [Int32]] = [:]
        for tp in partitions { topics[tp.topic, default: []].append(tp.partition) }
        var request = AddPartitionsToTxnRequest()
        request.transactions = [
            .init(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: epoch, verifyOnly: !adding,
                topics: topics.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitions: $0.value.sorted()) })
        ]
        return peers.send(request, version: adding ? 5 : 4, to: leader, timeoutMs: Self.markerTimeoutMs).hop(
            to: eventLoop
        ).map {
            response in
            if response.errorCode != 0 { return all(ErrorCode(response.errorCode)) }
            var out: [TopicPartition: ErrorCode] = [:]
            for result in response.resultsByTransaction {
                for t in result.topicResults {
                    for r in t.resultsByPartition {
                        out[TopicPartition(t.name, r.partitionIndex)] = ErrorCode(r.partitionErrorCode)
                    }
                }
            }
            for tp in partitions where out[tp] == nil { out[tp] = .unknownServerError }
            return out
        }.recover { _ in all(.networkException) }
    }

    // MARK: markers, the partition leader's side

    /// WriteTxnMarkers from a transaction coordinator (CLUSTER_ACTION): each marker is appended
    /// to each of its partitions led here and answered once replicated (Kafka's
    /// handleWriteTxnMarkersRequest).
    func writeTxnMarkers(_ r: WriteTxnMarkersRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let allowed = authorization(context).allows(.clusterAction, .cluster)
        let allocator = context.allocator
        return .respond(
            writeTransactionMarkers(r.markers, authorized: allowed, eventLoop: context.eventLoop).map {
                OutgoingResponse($0, version: version, allocator: allocator)
            })
    }

    /// Appends each marker to each of its partitions (which must be led here) and answers once
    /// the high watermark passed each one, or with the partition's error. A marker written to a
    /// `__consumer_offsets` partition completes the group's transactional offset commits.
    func writeTransactionMarkers(
        _ markers: [WriteTxnMarkersRequest.WritableTxnMarker], authorized: Bool, eventLoop: any EventLoop
    ) -> EventLoopFuture<WriteTxnMarkersResponse> {
        let image = self.image
        let now = clock.wallMs()
        let deadlineMs = clock.monotonicMs() + Self.markerTimeoutMs
        var perMarker: [EventLoopFuture<WriteTxnMarkersResponse.WritableTxnMarkerResult>] = []
        for marker in markers {
            let targets = marker.topics.flatMap { t in t.partitionIndexes.map { TopicPartition(t.name, $0) } }
            var results = [PartitionAppendResult](repeating: PartitionAppendResult(), count: targets.count)
            var waiting: [(index: Int, id: ProduceID, partition: Partition, produce: PendingProduce)] = []
            let control = EndTransactionMarker(
                committed: marker.transactionResult, coordinatorEpoch: marker.coordinatorEpoch)
            for (index, tp) in targets.enumerated() {
                guard authorized else {
                    results[index].error = .clusterAuthorizationFailed
                    continue
                }
                guard let partition = partition(tp) else {
                    results[index].error = image.partition(tp) == nil ? .unknownTopicOrPartition : .notLeaderOrFollower
                    continue
                }
                do {
                    switch try partition.appendTransactionMarker(
                        producerId: marker.producerId, producerEpoch: marker.producerEpoch, control,
                        transactionVersion: Int16(marker.transactionVersion), nowMs: now,
                        monotonicMs: clock.monotonicMs())
                    {
                    case .failure(let code):
                        results[index].error = code
                    case .success(let info):
                        if info.recordCount > 0 { BrokerMetrics.transactionMarkersWritten.increment() }
                        let id = delayedProduces.allocateId()
                        waiting.append(
                            (
                                index, id, partition,
                                PendingProduce(
                                    id: id, requiredOffset: Offset(info.lastOffset + 1), deadlineMs: deadlineMs,
                                    minInsyncReplicas: 1)
                            ))
                    }
                } catch let error as ProducerStateError {
                    logger.info("marker for producer \(marker.producerId) refused by \(tp): \(error.reason)")
                    results[index].error = error.code
                } catch {
                    logger.error("writing a transaction marker to \(tp) failed: \(error)")
                    results[index].error = .kafkaStorageError
                }
            }
            let appended: EventLoopFuture<[PartitionAppendResult]>
            switch awaitReplication(results, waiting: waiting, deadlineMs: deadlineMs, eventLoop: eventLoop) {
            case .done(let r): appended = eventLoop.makeSucceededFuture(r)
            case .waiting(let future): appended = future
            }
            let groups = self.groups
            perMarker.append(
                appended.map { results in
                    var out = WriteTxnMarkersResponse.WritableTxnMarkerResult(producerId: marker.producerId)
                    for (tp, result) in zip(targets, results) {
                        if result.error == .none && tp.topic == OffsetsTopic.name {
                            groups.transactionCompleted(
                                offsetsPartition: tp.partition, producerId: marker.producerId,
                                committed: marker.transactionResult)
                        }
                        let entry = WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult(
                            partitionIndex: tp.partition, errorCode: result.error.rawValue)
                        if let i = out.topics.firstIndex(where: { $0.name == tp.topic }) {
                            out.topics[i].partitions.append(entry)
                        } else {
                            out.topics.append(.init(name: tp.topic, partitions: [entry]))
                        }
                    }
                    return out
                })
        }
        return EventLoopFuture.whenAllSucceed(perMarker, on: eventLoop).map {
            WriteTxnMarkersResponse(markers: $0)
        }
    }

    /// How long a marker may wait for replication, and a marker request for its answer (Kafka
    /// uses `request.timeout.ms`).
    static let markerTimeoutMs: Int64 = 30_000

    // MARK: markers, the coordinator's side

    /// Writes the coordinator's markers to every partition of the transaction: to the partitions
    /// led here directly, to the others with WriteTxnMarkers to their leaders. Answers each
    /// partition's error; a partition whose topic is gone answers `.none` (it needs no marker),
    /// one without a leader NOT_LEADER_OR_FOLLOWER (the coordinator tries again).
    func sendTransactionMarkers(
        _ markers: TransactionMarkers, eventLoop: any EventLoop
    ) -> EventLoopFuture<[TopicPartition: ErrorCode]> {
        let image = self.image
        var answers: [TopicPartition: ErrorCode] = [:]
        var byLeader: [Int32: [TopicPartition]] = [:]
        for tp in markers.partitions {
            guard let registration = image.partition(tp) else {
                answers[tp] = ErrorCode.none
                continue
            }
            guard registration.leader >= 0 else {
                answers[tp] = .notLeaderOrFollower
                continue
            }
            byLeader[registration.leader, default: []].append(tp)
        }
        func request(_ partitions: [TopicPartition]) -> WriteTxnMarkersRequest.WritableTxnMarker {
            var marker = WriteTxnMarkersRequest.WritableTxnMarker(
                producerId: markers.producerId, producerEpoch: markers.producerEpoch,
                transactionResult: markers.result == .commit, coordinatorEpoch: markers.coordinatorEpoch,
                transactionVersion: Int8(markers.transactionVersion.rawValue))
            for tp in partitions {
                if let i = marker.topics.firstIndex(where: { $0.name == tp.topic }) {
                    marker.topics[i].partitionIndexes.append(tp.partition)
                } else {
                    marker.topics.append(.init(name: tp.topic, partitionIndexes: [tp.partition]))
                }
            }
            return marker
        }
        let peers = markerPeers.withLockedValue { $0 }
        var sent: [EventLoopFuture<[TopicPartition: ErrorCode]>] = []
        for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
            let answer: EventLoopFuture<WriteTxnMarkersResponse>
            if leader == settings.nodeId {
                answer = writeTransactionMarkers([request(partitions)], authorized: true, eventLoop: eventLoop)
            } else if let peers {
                var r = WriteTxnMarkersRequest()
                r.markers = [request(partitions)]
                answer = peers.send(r, version: 2, to: leader, timeoutMs: Self.markerTimeoutMs).hop(to: eventLoop)
            } else {
                answer = eventLoop.makeFailedFuture(ConnectionError("no connections to other brokers yet"))
            }
            sent.append(
                answer.map { response in
                    var out: [TopicPartition: ErrorCode] = [:]
                    for marker in response.markers {
                        for t in marker.topics {
                            for p in t.partitions {
                                out[TopicPartition(t.name, p.partitionIndex)] = ErrorCode(p.errorCode)
                            }
                        }
                    }
                    // A partition the answer leaves out was not written.
                    for tp in partitions where out[tp] == nil { out[tp] = .unknownServerError }
                    return out
                }.recover { _ in Dictionary(uniqueKeysWithValues: partitions.map { ($0, ErrorCode.requestTimedOut) }) }
            )
        }
        let known = answers
        return EventLoopFuture.whenAllSucceed(sent, on: eventLoop).map { parts in
            parts.reduce(into: known) { all, part in all.merge(part) { $1 } }
        }
    }

    /// Starts sending transaction markers to the other brokers over `peers` (connections of
    /// their own, apart from the replica fetchers').
    public func startTransactionMarkers(peers: BrokerPeers) {
        markerPeers.withLockedValue { $0 = peers }
    }
}

/// The partitions of a transactional produce that wait for the coordinator's word, and what
/// each entry of the produce carries to its log.
struct TransactionVerificationPlan: Sendable {
    var producerId: Int64
    var epoch: Int16
    /// Entry index to partition, for the partitions to ask about.
    var toAsk: [Int: TopicPartition]
    var verification: [Int: ProducerStateTable.Verification]
}
