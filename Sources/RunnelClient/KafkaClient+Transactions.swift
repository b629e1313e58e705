import NIOCore
import RunnelCore
import RunnelWire

/// A producer with state on a partition, as DescribeProducers reports it.
public struct ProducerStateInfo: Sendable, Equatable {
    public var producerId: Int64
    public var producerEpoch: Int32
    /// The last sequence number written, -1 when unknown.
    public var lastSequence: Int32
    /// The timestamp of its last write, -1 when unknown.
    public var lastTimestamp: Int64
    /// The coordinator epoch of the last marker written for it; nil before any.
    public var coordinatorEpoch: Int32?
    /// The first offset of its open transaction; nil when none is open.
    public var currentTransactionStartOffset: Int64?
}

/// A transactional id as its coordinator describes it (DescribeTransactions).
public struct TransactionInfo: Sendable, Equatable {
    /// The broker that coordinates it.
    public var coordinatorId: Int32
    public var transactionalId: String
    /// Kafka's state name (Empty, Ongoing, PrepareCommit, ...).
    public var state: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var timeoutMs: Int32
    /// When the current (or last) transaction started; nil when none has.
    public var startTimeMs: Int64?
    /// The partitions of the open transaction (while it ends, those still waiting for a marker).
    public var partitions: [TopicPartition]
}

/// A transactional id as ListTransactions reports it.
public struct ListedTransaction: Sendable, Equatable {
    public var transactionalId: String
    /// The broker that coordinates it.
    public var coordinatorId: Int32
    public var producerId: Int64
    public var state: String
}

extension KafkaClient {
    /// ListTransactions on every broker (each lists the ids it coordinates), with Kafka's filters:
    /// state names, producer ids and, from ListTransactions v1 (KIP-994), only transactions
    /// running longer than `durationMs` (negative: no duration filter). A broker still loading
    /// `__transaction_state` is asked again within the request timeout. Fails naming the state
    /// names a broker does not know.
    public func listTransactions(
        states: [String] = [], producerIds: [Int64] = [], durationMs: Int64 = -1
    ) async throws -> [ListedTransaction] {
        try await refreshMetadata(topics: [])
        var out: [ListedTransaction] = []
        for broker in metadata.brokers.values.sorted(by: { $0.id < $1.id }) {
            let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
            while true {
                let response: ListTransactionsResponse
                let version: Int16
                do {
                    (response, version) = try await send(to: broker.address) { _ in
                        ListTransactionsRequest(
                            stateFilters: states, producerIdFilters: producerIds, durationFilter: durationMs)
                    }
                } catch let error as ClientError {
                    throw ClientError("cannot list the transactions of broker \(broker.id): \(error)")
                }
                if durationMs >= 0 && version < 1 {
                    throw ClientError(
                        "broker \(broker.id) does not support the duration filter (ListTransactions v1, KIP-994)")
                }
                let code = ErrorCode(response.errorCode)
                if code == .coordinatorLoadInProgress && NIODeadline.now() < deadline {
                    try await Task.sleep(nanoseconds: 200_000_000)
                    continue
                }
                guard code == .none else {
                    throw ClientError(
                        "broker \(broker.id) answered ListTransactions with \(Self.reason(code, nil))")
                }
                if !response.unknownStateFilters.isEmpty {
                    throw ClientError(
                        "broker \(broker.id) knows no transaction state \(response.unknownStateFilters.joined(separator: ", ")) (states: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead)"
                    )
                }
                out += response.transactionStates.map {
                    ListedTransaction(
                        transactionalId: $0.transactionalId, coordinatorId: broker.id, producerId: $0.producerId,
                        state: $0.transactionState)
                }
                break
            }
        }
        return out.sorted { $0.transactionalId < $1.transactionalId }
    }

    /// DescribeTransactions at the id's transaction coordinator (found with FindCoordinator key
    /// type 1, and again when it moved). Fails when the coordinator does not know the id.
    public func describeTransaction(_ transactionalId: String) async throws -> TransactionInfo {
        guard let found = try await describeTransactionIfKnown(transactionalId) else {
            throw ClientError("transactional id \(transactionalId) does not exist (TRANSACTIONAL_ID_NOT_FOUND)")
        }
        return found
    }

    /// DescribeTransactions at the id's transaction coordinator; nil when it does not know the id
    /// (TRANSACTIONAL_ID_NOT_FOUND).
    public func describeTransactionIfKnown(_ transactionalId: String) async throws -> TransactionInfo? {
        let key = CoordinatorKey(type: .transaction, key: transactionalId)
        let (response, _) = try await sendToCoordinator(
            of: key, lane: .general, errorOf: { ErrorCode($0.transactionStates.first?.errorCode ?? 0) }
        ) { _ in
            DescribeTransactionsRequest(transactionalIds: [transactionalId])
        }
        guard let s = response.transactionStates.first(where: { $0.transactionalId == transactionalId }) else {
            throw ClientError("the coordinator's answer left out transactional id \(transactionalId)")
        }
        let code = ErrorCode(s.errorCode)
        if code == .transactionalIdNotFound { return nil }
        guard code == .none else {
            throw ClientError("cannot describe transactional id \(transactionalId): \(Self.reason(code, nil))")
        }
        guard let coordinator = coordinators[key] else {
            throw ClientError("the coordinator of transactional id \(transactionalId) moved while it answered")
        }
        return TransactionInfo(
            coordinatorId: coordinator.id, transactionalId: transactionalId, state: s.transactionState,
            producerId: s.producerId, producerEpoch: s.producerEpoch, timeoutMs: s.transactionTimeoutMs,
            startTimeMs: s.transactionStartTimeMs >= 0 ? s.transactionStartTimeMs : nil,
            partitions: s.topics.flatMap { t in t.partitions.map { TopicPartition(t.topic, $0) } }.sorted())
    }

    /// The producers with state on a partition (DescribeProducers): at its leader, following it
    /// while it moves, or at the replica on broker `brokerId`.
    public func describeProducers(
        topic: String, partition: Int32, brokerId: Int32? = nil
    ) async throws -> [ProducerStateInfo] {
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        var refresh = false
        while true {
            let target: BrokerInfo
            if let brokerId {
                _ = try await leader(topic: topic, partition: partition)
                guard let broker = metadata.brokers[brokerId] else {
                    throw ClientError("broker \(brokerId) is not in the cluster's metadata")
                }
                target = broker
            } else {
                target = try await leader(topic: topic, partition: partition, refresh: refresh)
            }
            let response: DescribeProducersResponse
            do {
                response = try await send(to: target.address) { _ in
                    DescribeProducersRequest(topics: [.init(name: topic, partitionIndexes: [partition])])
                }.response
            } catch let error as ClientError {
                guard brokerId == nil, NIODeadline.now() < deadline else { throw error }
                refresh = true
                try await Task.sleep(nanoseconds: 200_000_000)
                continue
            }
            guard
                let answer = response.topics.first(where: { $0.name == topic })?.partitions.first(where: {
                    $0.partitionIndex == partition
                })
            else {
                throw ClientError("broker \(target.id) left partition \(partition) of topic \(topic) out of its answer")
            }
            let code = ErrorCode(answer.errorCode)
            if code != .none && brokerId == nil && Self.isStaleLeadership(code) && NIODeadline.now() < deadline {
                refresh = true
                try await Task.sleep(nanoseconds: 200_000_000)
                continue
            }
            guard code == .none else {
                throw ClientError(
                    "cannot describe the producers of partition \(partition) of topic \(topic) on broker \(target.id): \(Self.reason(code, answer.errorMessage))"
                )
            }
            return answer.activeProducers.map {
                ProducerStateInfo(
                    producerId: $0.producerId, producerEpoch: $0.producerEpoch, lastSequence: $0.lastSequence,
                    lastTimestamp: $0.lastTimestamp,
                    coordinatorEpoch: $0.coordinatorEpoch >= 0 ? $0.coordinatorEpoch : nil,
                    currentTransactionStartOffset: $0.currentTxnStartOffset >= 0 ? $0.currentTxnStartOffset : nil)
            }
        }
    }

    /// Aborts a producer's open transaction on one partition, as Kafka's `Admin.abortTransaction`
    /// does: WriteTxnMarkers with an abort marker (transaction version 0, so the producer's
    /// current epoch is accepted) straight to the partition's leader, which needs CLUSTER_ACTION.
    /// Follows the leader while it moves.
    public func abortTransaction(
        topic: String, partition: Int32, producerId: Int64, producerEpoch: Int16, coordinatorEpoch: Int32
    ) async throws {
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        var refresh = false
        while true {
            let leader = try await leader(topic: topic, partition: partition, refresh: refresh)
            var code = ErrorCode.unknownServerError
            do {
                let response = try await send(to: leader.address) { _ in
                    var marker = WriteTxnMarkersRequest.WritableTxnMarker(
                        producerId: producerId, producerEpoch: producerEpoch, transactionResult: false,
                        coordinatorEpoch: coordinatorEpoch, transactionVersion: 0)
                    marker.topics = [.init(name: topic, partitionIndexes: [partition])]
                    var r = WriteTxnMarkersRequest()
                    r.markers = [marker]
                    return r
                }.response
                let answer = response.markers.first { $0.producerId == producerId }?.topics.first { $0.name == topic }?
                    .partitions.first { $0.partitionIndex == partition }
                code = answer.map { ErrorCode($0.errorCode) } ?? .unknownServerError
            } catch let error as ClientError {
                guard NIODeadline.now() < deadline else { throw error }
                code = .networkException
            }
            if code == .none { return }
            guard (Self.isStaleLeadership(code) || code == .networkException) && NIODeadline.now() < deadline else {
                throw ClientError(
                    "cannot abort the transaction of producer \(producerId) on partition \(partition) of topic \(topic): \(Self.reason(code, nil))"
                )
            }
            refresh = true
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }
}
