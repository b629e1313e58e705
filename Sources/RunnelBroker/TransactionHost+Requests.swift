import NIOCore
import RunnelCore
import RunnelTransactions
import RunnelWire

/// The transaction coordinator's request handlers (Kafka's TransactionCoordinator APIs): each
/// checks that this broker coordinates the transactional id, runs the coordinator's command, and
/// answers once the coordinator does (after its write to `__transaction_state`). Authorization
/// (TRANSACTIONAL_ID WRITE, topic WRITE, group READ) is the caller's: these run for what it let
/// through (`Broker+Transactions.swift`).
extension TransactionHost {
    /// The per-partition results of AddPartitionsToTxn, each partition's error by `error`.
    @Sendable static func results(
        _ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], _ error: (TopicPartition) -> ErrorCode
    )
        -> [AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult]
    {
        topics.map { t in
            .init(
                name: t.name,
                resultsByPartition: t.partitions.map {
                    .init(partitionIndex: $0, partitionErrorCode: error(TopicPartition(t.name, $0)).rawValue)
                })
        }
    }

    /// The error a client of `version` understands: PRODUCER_FENCED came with KIP-588
    /// (InitProducerId v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2); an older client
    /// is told INVALID_PRODUCER_EPOCH instead, which it handles the same way, as Kafka's KafkaApis does.
    static func clientError(_ code: ErrorCode, version: Int16, producerFencedSince: Int16) -> ErrorCode {
        code == .producerFenced && version < producerFencedSince ? .invalidProducerEpoch : code
    }

    private func respond<M: ResponseMessage>(_ message: M, version: Int16, context: RequestContext) -> RequestOutcome {
        .respondNow(OutgoingResponse(message, version: version, allocator: context.allocator))
    }

    /// InitProducerId with a transactional id (a null one is the broker's idempotent path).
    package func initProducerId(_ r: InitProducerIdRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let transactionalId = r.transactionalId ?? ""
        if !transactionalId.isEmpty, let code = check(transactionalId) {
            return respond(
                InitProducerIdResponse(errorCode: code.rawValue, producerId: -1, producerEpoch: -1), version: version,
                context: context)
        }
        let expected = version >= 3 && r.producerId >= 0 ? (producerId: r.producerId, epoch: r.producerEpoch) : nil
        let allocator = context.allocator
        let answer = park(context: context) { c, token, now in
            c.initProducerId(
                transactionalId: transactionalId, timeoutMs: r.transactionTimeoutMs, expected: expected, token: token,
                nowMs: now)
        }
        return .respond(
            answer.map { answer in
                var response = InitProducerIdResponse(
                    errorCode: Self.clientError(answer.error, version: version, producerFencedSince: 4).rawValue,
                    producerId: -1, producerEpoch: -1)
                if case let .initProducerId(code, id, epoch) = answer {
                    response.errorCode = Self.clientError(code, version: version, producerFencedSince: 4).rawValue
                    response.producerId = id
                    response.producerEpoch = epoch
                }
                return OutgoingResponse(response, version: version, allocator: allocator)
            })
    }

    /// AddPartitionsToTxn: v0-3 from a client (transactions v1), one transaction, one error for
    /// every partition; v4+ from a partition leader, several transactions, each either
    /// verify-only (KIP-890 part 1) or adding the partition of a TV2 produce (KIP-890 part 2).
    package func addPartitionsToTxn(
        _ r: AddPartitionsToTxnRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        let allocator = context.allocator
        let results = Self.results
        func partitions(_ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic]) -> Set<TopicPartition> {
            Set(topics.flatMap { t in t.partitions.map { TopicPartition(t.name, $0) } })
        }
        if version <= 3 {
            let topics = r.v3AndBelowTopics
            let answer: EventLoopFuture<TransactionAnswer>
            if let code = check(r.v3AndBelowTransactionalId), !r.v3AndBelowTransactionalId.isEmpty {
                answer = context.eventLoop.makeSucceededFuture(.addPartitions(code))
            } else {
                answer = park(context: context) { c, token, now in
                    c.addPartitions(
                        transactionalId: r.v3AndBelowTransactionalId, producerId: r.v3AndBelowProducerId,
                        producerEpoch: r.v3AndBelowProducerEpoch, partitions(topics), clientTransactionVersion: .v1,
                        token: token, nowMs: now)
                }
            }
            return .respond(
                answer.map { answer in
                    var response = AddPartitionsToTxnResponse()
                    let error = Self.clientError(answer.error, version: version, producerFencedSince: 2)
                    response.resultsByTopicV3AndBelow = results(topics) { _ in error }
                    return OutgoingResponse(response, version: version, allocator: allocator)
                })
        }
        var perTransaction: [EventLoopFuture<AddPartitionsToTxnResponse.AddPartitionsToTxnResult>] = []
        for txn in r.transactions {
            let id = txn.transactionalId
            if txn.verifyOnly {
                let verified = read {
                    $0.verifyPartitions(
                        transactionalId: id, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                        partitions(txn.topics))
                }
                perTransaction.append(
                    context.eventLoop.makeSucceededFuture(
                        .init(
                            transactionalId: id,
                            topicResults: results(txn.topics) { verified[$0] ?? .unknownServerError })))
                continue
            }
            let answer: EventLoopFuture<TransactionAnswer>
            if let code = check(id), !id.isEmpty {
                answer = context.eventLoop.makeSucceededFuture(.addPartitions(code))
            } else {
                answer = park(context: context) { c, token, now in
                    c.addPartitions(
                        transactionalId: id, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                        partitions(txn.topics),
                        clientTransactionVersion: .v2, token: token, nowMs: now)
                }
            }
            perTransaction.append(
                answer.map { answer in
                    .init(transactionalId: id, topicResults: results(txn.topics) { _ in answer.error })
                })
        }
        return .respond(
            EventLoopFuture.whenAllSucceed(perTransaction, on: context.eventLoop).map { results in
                var response = AddPartitionsToTxnResponse()
                response.resultsByTransaction = results
                return OutgoingResponse(response, version: version, allocator: allocator)
            })
    }

    /// A partition leader on this broker adds `partitions` to a transaction of transactions v2
    /// (its Produce v12 or TxnOffsetCommit v5) with the coordinator here, as AddPartitionsToTxn
    /// v5 without verify-only would: the coordinator's answer, once written.
    package func addPartitionsForLeader(
        _ transactionalId: String, producerId: Int64, epoch: Int16, _ partitions: Set<TopicPartition>,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<ErrorCode> {
        if let code = check(transactionalId) { return eventLoop.makeSucceededFuture(code) }
        return park(on: eventLoop) { c, token, now in
            c.addPartitions(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: epoch, partitions,
                clientTransactionVersion: .v2, token: token, nowMs: now)
        }.map(\.error)
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    package func addOffsetsToTxn(
        _ r: AddOffsetsToTxnRequest, groupPartition: TopicPartition, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        if let code = check(r.transactionalId), !r.transactionalId.isEmpty {
            return respond(AddOffsetsToTxnResponse(errorCode: code.rawValue), version: version, context: context)
        }
        let allocator = context.allocator
        let answer = park(context: context) { c, token, now in
            c.addPartitions(
                transactionalId: r.transactionalId, producerId: r.producerId, producerEpoch: r.producerEpoch,
                [groupPartition],
                clientTransactionVersion: .v1, token: token, nowMs: now)
        }
        return .respond(
            answer.map {
                OutgoingResponse(
                    AddOffsetsToTxnResponse(
                        errorCode: Self.clientError($0.error, version: version, producerFencedSince: 2).rawValue),
                    version: version, allocator: allocator)
            })
    }

    /// EndTxn: v5 ends a transaction of transactions v2 and answers the next producer id and epoch.
    package func endTxn(_ r: EndTxnRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let allocator = context.allocator
        let answer = park(context: context) { c, token, now in
            c.endTransaction(
                transactionalId: r.transactionalId, producerId: r.producerId, producerEpoch: r.producerEpoch,
                result: r.committed ? .commit : .abort, clientTransactionVersion: version >= 5 ? .v2 : .v1,
                token: token, nowMs: now)
        }
        return .respond(
            answer.map { answer in
                var response = EndTxnResponse(
                    errorCode: Self.clientError(answer.error, version: version, producerFencedSince: 2).rawValue)
                if case let .endTxn(_, id, epoch) = answer {
                    response.producerId = id
                    response.producerEpoch = epoch
                }
                return OutgoingResponse(response, version: version, allocator: allocator)
            })
    }
}
