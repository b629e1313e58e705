import NIOCore
import RunnelCore
import RunnelLog
import RunnelSecurity
import RunnelTransactions
import RunnelWire

/// The APIs of KIP-664 that find and explain hanging transactions: DescribeProducers, answered
/// by a partition's replica from its log's producer state, and DescribeTransactions and
/// ListTransactions, answered by the transaction coordinator from its state. Each is checked as
/// Kafka's KafkaApis checks it. Aborting a hanging transaction needs no API of its own: a tool
/// sends WriteTxnMarkers (CLUSTER_ACTION) to the partition's leader.
extension Broker {
    /// DescribeProducers (Kafka's handleDescribeProducersRequest): per topic, INVALID_TOPIC_EXCEPTION
    /// for a bad name, TOPIC_AUTHORIZATION_FAILED without READ on it, UNKNOWN_TOPIC_OR_PARTITION
    /// when the cluster has no such topic; then per partition, the active producers of the replica
    /// hosted here, leader or follower, as Kafka's `ReplicaManager.activeProducerState` answers
    /// (a tool may ask a follower to compare its state); NOT_LEADER_OR_FOLLOWER when this broker
    /// hosts no replica of it, UNKNOWN_TOPIC_OR_PARTITION when the partition does not exist.
    func describeProducers(_ r: DescribeProducersRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        let image = self.image
        var response = DescribeProducersResponse()
        for topic in r.topics {
            var out = DescribeProducersResponse.TopicResponse(name: topic.name)
            let topicError: ErrorCode? =
                !QuorumNames.isValidTopicName(topic.name)
                ? .invalidTopicException
                : !auth.allows(.read, .topic(topic.name))
                    ? .topicAuthorizationFailed : image.topic(named: topic.name) == nil ? .unknownTopicOrPartition : nil
            for index in topic.partitionIndexes {
                let tp = TopicPartition(topic.name, index)
                var answer = DescribeProducersResponse.PartitionResponse(partitionIndex: index)
                if let topicError {
                    answer.errorCode = topicError.rawValue
                } else if let replica = partition(tp) {
                    answer.activeProducers = Self.activeProducers(replica.log.producerStateTable)
                } else {
                    answer.errorCode =
                        (image.partition(tp) == nil ? ErrorCode.unknownTopicOrPartition : .notLeaderOrFollower).rawValue
                }
                out.partitions.append(answer)
            }
            response.topics.append(out)
        }
        return respond(response, version: version, context: context)
    }

    /// A log's producers as DescribeProducers reports them (Kafka's `UnifiedLog.activeProducers`),
    /// by producer id: the latest epoch, the last sequence written (-1 when its batches are
    /// forgotten), the last timestamp, the coordinator epoch of its last marker (-1 before any)
    /// and the first offset of its open transaction (-1 when none is open).
    static func activeProducers(_ table: ProducerStateTable) -> [DescribeProducersResponse.ProducerState] {
        table.producers.keys.sorted().map { id in
            let entry = table.producers[id]!
            return .init(
                producerId: id, producerEpoch: Int32(entry.epoch), lastSequence: entry.lastSequence,
                lastTimestamp: entry.lastTimestamp, coordinatorEpoch: entry.coordinatorEpoch,
                currentTxnStartOffset: entry.currentTxnFirstOffset ?? -1)
        }
    }

    /// DescribeTransactions (Kafka's handleDescribeTransactionsRequest): each id needs DESCRIBE on
    /// it (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and is described by this broker's
    /// coordinator; of its partitions, only those of topics the caller may DESCRIBE are shown.
    func describeTransactions(
        _ r: DescribeTransactionsRequest, version: Int16, context: RequestContext
    ) -> RequestOutcome {
        let auth = authorization(context)
        var response = DescribeTransactionsResponse()
        for transactionalId in r.transactionalIds {
            guard auth.allows(.describe, .transactionalId(transactionalId)) else {
                response.transactionStates.append(
                    .init(
                        errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue,
                        transactionalId: transactionalId))
                continue
            }
            switch transactions.read({ $0.describe(transactionalId) }) {
            case .failure(let code):
                response.transactionStates.append(.init(errorCode: code.rawValue, transactionalId: transactionalId))
            case .success(let d):
                var state = DescribeTransactionsResponse.TransactionState(
                    transactionalId: transactionalId, transactionState: d.state.description,
                    transactionTimeoutMs: d.timeoutMs, transactionStartTimeMs: d.startTimestampMs,
                    producerId: d.producerId, producerEpoch: d.producerEpoch)
                let visible = auth.allowedTopics(.describe, d.partitions.map(\.topic))
                for tp in d.partitions where visible.contains(tp.topic) {
                    if let i = state.topics.firstIndex(where: { $0.topic == tp.topic }) {
                        state.topics[i].partitions.append(tp.partition)
                    } else {
                        state.topics.append(.init(topic: tp.topic, partitions: [tp.partition]))
                    }
                }
                response.transactionStates.append(state)
            }
        }
        return respond(response, version: version, context: context)
    }

    /// ListTransactions (Kafka's handleListTransactionsRequest): the ids this broker coordinates
    /// that match the filters (v1 adds the duration filter, KIP-994), leaving out those the
    /// caller may not DESCRIBE.
    func listTransactions(_ r: ListTransactionsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let auth = authorization(context)
        let now = clock.wallMs()
        let found = transactions.read {
            $0.list(
                states: r.stateFilters, producerIds: Set(r.producerIdFilters),
                durationMs: version >= 1 ? r.durationFilter : -1, nowMs: now)
        }
        var response = ListTransactionsResponse(
            errorCode: found.error.rawValue, unknownStateFilters: found.unknownStateFilters)
        response.transactionStates = found.transactions.filter {
            auth.allows(.describe, .transactionalId($0.transactionalId))
        }.map {
            .init(
                transactionalId: $0.transactionalId, producerId: $0.producerId, transactionState: $0.state.description)
        }
        return respond(response, version: version, context: context)
    }
}
