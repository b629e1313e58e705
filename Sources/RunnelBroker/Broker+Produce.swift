import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelReplication
import RunnelSecurity
import RunnelWire

/// One partition's answer to an append.
package struct PartitionAppendResult: Sendable {
    package var error: ErrorCode = .none
    /// Why it failed, for clients that read it (Produce v8+).
    package var message: String?
    /// The records at fault (KIP-467, Produce v8+).
    package var recordErrors: [ProduceResponse.BatchIndexAndErrorMessage] = []
    package var baseOffset: Int64 = -1
    package var logAppendTimeMs: Int64 = -1
    package var logStartOffset: Int64 = -1

    package init(error: ErrorCode = .none) { self.error = error }
}

/// What `appendRecords` gives back: every answer now, or once the acks=all waits are over.
package enum AppendOutcome {
    case done([PartitionAppendResult])
    case waiting(EventLoopFuture<[PartitionAppendResult]>)
}

extension Broker {
    /// The one append path (Kafka's ReplicaManager.appendRecords), for Produce and for the
    /// coordinators' writes to their internal topics: validates each partition's batches,
    /// appends them as leader, and with `requiredAcks` -1 parks the request in the produce
    /// purgatory until every partition's replication core says its append is replicated (or
    /// failed, or `timeoutMs` passed). Answers come in the order of `entries`.
    ///
    /// `verification` (by entry index): what the transaction coordinator said of a transactional
    /// produce's partitions (KIP-890 part 1); `refused` (by entry index): entries answered with
    /// that error and message without being appended.
    package func appendRecords(
        _ entries: [(TopicPartition, ByteBuffer?)], requiredAcks: Int16, timeoutMs: Int64, origin: AppendOrigin,
        produceVersion: Int16 = .max, verification: [Int: ProducerStateTable.Verification] = [:],
        refused: [Int: (ErrorCode, String?)] = [:], eventLoop: any EventLoop
    ) -> AppendOutcome {
        let now = clock.wallMs()
        let image = self.image
        var results = [PartitionAppendResult](repeating: PartitionAppendResult(), count: entries.count)
        var waiting: [(index: Int, id: ProduceID, partition: Partition, produce: PendingProduce)] = []
        let deadlineMs = clock.monotonicMs() + max(0, timeoutMs)
        for (index, (tp, records)) in entries.enumerated() {
            var result = PartitionAppendResult()
            defer { results[index] = result }
            func fail(_ code: ErrorCode, _ message: String? = nil) {
                result.error = code
                result.message = message
            }
            if let (code, message) = refused[index] {
                fail(code, message)
                continue
            }
            guard let partition = partition(tp) else {
                fail(image.topic(named: tp.topic) == nil ? .unknownTopicOrPartition : .notLeaderOrFollower)
                continue
            }
            guard var records, records.readableBytes > 0 else {
                fail(.invalidRecord, "The produce request carries no record batch.")
                continue
            }
            let config = partition.log.config
            var batches: [BatchInfo]
            switch RecordBatches.validate(records, maxBatchBytes: config.maxMessageBytes) {
            case .failure(let problem):
                fail(problem.code, problem.reason)
                if problem.code == .invalidRecord {
                    result.recordErrors = [.init(batchIndex: 0, batchIndexErrorMessage: problem.reason)]
                }
                continue
            case .success(let valid):
                batches = valid
            }
            if produceVersion < 7, batches.contains(where: { $0.header.compression == .zstd }) {
                fail(.unsupportedCompressionType, "zstd needs Produce v7 or later.")
                continue
            }
            if origin == .client,
                let rejection = Self.invalidRecords(records, batches: batches, tp: tp, config: config, nowMs: now)
            {
                fail(rejection.code, rejection.message)
                result.recordErrors = rejection.recordErrors
                continue
            }
            if origin == .client, let target = config.compression,
                batches.contains(where: { !$0.header.isControl && $0.header.compression != target })
            {
                do {
                    (records, batches) = try Self.recompressed(records, batches: batches, to: target, config: config)
                } catch let tooLarge as BatchValidationError {
                    fail(tooLarge.code, tooLarge.reason)
                    continue
                } catch {
                    fail(.corruptMessage, "The record batch of topic partition \(tp) cannot be recompressed: \(error).")
                    continue
                }
            }
            let minInsync = partition.minInsyncReplicas
            do {
                switch try partition.appendAsLeader(
                    records, batches: batches, requiredAcks: requiredAcks, minInsyncReplicas: minInsync, nowMs: now,
                    monotonicMs: clock.monotonicMs(), origin: origin,
                    verification: verification[index] ?? .notRequired)
                {
                case .success(let info):
                    if origin == .client {
                        BrokerMetrics.messagesIn.increment(by: Int(info.lastOffset - info.firstOffset + 1))
                        BrokerMetrics.bytesIn.increment(by: records.readableBytes)
                    }
                    result.baseOffset = info.firstOffset
                    result.logAppendTimeMs = info.logAppendTime
                    result.logStartOffset = partition.log.logStartOffset
                    if requiredAcks == -1 {
                        let id = delayedProduces.allocateId()
                        waiting.append(
                            (
                                index, id, partition,
                                PendingProduce(
                                    id: id, requiredOffset: Offset(info.lastOffset + 1), deadlineMs: deadlineMs,
                                    minInsyncReplicas: minInsync)
                            ))
                    }
                case .failure(let code):
                    fail(code)
                }
            } catch let error as ProducerStateError {
                fail(error.code, error.reason)
            } catch {
                logger.error("append to \(tp) failed: \(error)")
                fail(.kafkaStorageError, "The broker could not write to its log.")
            }
        }
        return awaitReplication(results, waiting: waiting, deadlineMs: deadlineMs, eventLoop: eventLoop)
    }

    /// Parks appends made with acks=all in the produce purgatory: `results` as they are now, each
    /// `waiting` entry's error set once its partition's core says the append is replicated (or
    /// failed, or the deadline passed).
    func awaitReplication(
        _ results: [PartitionAppendResult],
        waiting: [(index: Int, id: ProduceID, partition: Partition, produce: PendingProduce)], deadlineMs: Int64,
        eventLoop: any EventLoop
    ) -> AppendOutcome {
        if waiting.isEmpty { return .done(results) }
        let promise = eventLoop.makePromise(of: [PartitionAppendResult].self)
        let indexById = Dictionary(uniqueKeysWithValues: waiting.map { ($0.id, $0.index) })
        let partial = results
        let operation = DelayedProducePurgatory.Operation(
            eventLoop: eventLoop, waiting: Dictionary(uniqueKeysWithValues: waiting.map { ($0.id, $0.partition) }),
            complete: { answers in
                var results = partial
                for (id, code) in answers {
                    if let index = indexById[id] { results[index].error = code }
                }
                promise.succeed(results)
            })
        delayedProduces.watch(
            operation, produces: Dictionary(uniqueKeysWithValues: waiting.map { ($0.id, $0.produce) }),
            deadlineMs: deadlineMs, nowMs: clock.monotonicMs())
        return .waiting(promise.futureResult)
    }

    /// The first Produce version whose transactional batches add their partition to the
    /// transaction (transactions v2, KIP-890 part 2); a client sends it only once the cluster
    /// finalized `transaction.version` 2.
    static let produceAddsPartitionsSince: Int16 = 12

    func produce(
        _ request: ProduceRequest, version: Int16, context: RequestContext, requestBytes: Int = 0
    )
        -> RequestOutcome
    {
        let acks = request.acks
        // producer_byte_rate (KIP-13): the request's size counts against the producer's quota.
        let throttleMs = produceThrottleMs(requestBytes: requestBytes, context: context)
        let acksValid = acks == 0 || acks == 1 || acks == -1
        var entries: [(TopicPartition, ByteBuffer?)] = []
        // What the answer is laid out as, without the records: a closure that held the request
        // would keep the connection's read buffer shared (its records are slices of it) for as
        // long as an acks=all answer waits, and NIO would copy the buffer on every read meanwhile.
        var layout: [(name: String, partitions: [Int32], refused: ErrorCode?)] = []
        // Kafka's handleProduceRequest: a transactional producer needs WRITE on its
        // transactional id, and each topic WRITE; refused partitions are not appended.
        let auth = authorization(context)
        let transactionRefused = request.transactionalId.map { !auth.allows(.write, .transactionalId($0)) } ?? false
        let writable = transactionRefused ? [] : auth.allowedTopics(.write, request.topicData.map(\.name))
        for topic in request.topicData {
            let refused: ErrorCode? =
                transactionRefused
                ? .transactionalIdAuthorizationFailed
                : writable.contains(topic.name) ? nil : .topicAuthorizationFailed
            layout.append((topic.name, topic.partitionData.map(\.index), refused))
            guard refused == nil else { continue }
            for data in topic.partitionData {
                entries.append((TopicPartition(topic.name, data.index), data.records?.bytes))
            }
        }
        let answer = layout
        @Sendable func response(_ results: [PartitionAppendResult]) -> ProduceResponse {
            var response = ProduceResponse()
            response.throttleTimeMs = throttleMs
            var i = 0
            for (name, partitions, refused) in answer {
                var out = ProduceResponse.TopicProduceResponse(name: name)
                for index in partitions {
                    let r: PartitionAppendResult
                    if !acksValid {
                        r = PartitionAppendResult(error: .invalidRequiredAcks)
                    } else if let refused {
                        r = PartitionAppendResult(error: refused)
                    } else {
                        r = results[i]
                        i += 1
                    }
                    var p = ProduceResponse.PartitionProduceResponse(
                        index: index, errorCode: r.error.rawValue, baseOffset: r.baseOffset,
                        logAppendTimeMs: r.logAppendTimeMs, logStartOffset: r.logStartOffset)
                    if version >= 8 {
                        p.errorMessage = r.message
                        p.recordErrors = r.recordErrors
                    }
                    out.partitionResponses.append(p)
                }
                response.responses.append(out)
            }
            return response
        }
        guard acksValid else {
            return acks == 0 ? .noResponse : respond(response([]), version: version, context: context)
        }
        if acks == 0, answer.contains(where: { $0.refused != nil }) {
            // Kafka closes an acks=0 producer's connection on an error it cannot answer.
            return .close(reason: "acks=0 produce refused by the authorizer")
        }
        let timeoutMs = Int64(max(0, request.timeoutMs))
        let eventLoop = context.eventLoop
        let allocator = context.allocator
        // Produce v6+ clients throttle themselves (KIP-219): the answer goes at once.
        @Sendable func encoded(_ results: [PartitionAppendResult]) -> OutgoingResponse {
            Self.throttled(
                OutgoingResponse(response(results), version: version, allocator: allocator), throttleMs: throttleMs,
                version: version, clientThrottlesFrom: 6)
        }
        let noAnswer: RequestOutcome = throttleMs > 0 ? .noResponseThrottled(throttleMs: throttleMs) : .noResponse
        @Sendable func answered(_ outcome: AppendOutcome) -> EventLoopFuture<OutgoingResponse> {
            switch outcome {
            case .done(let results):
                return eventLoop.makeSucceededFuture(encoded(results))
            case .waiting(let future):
                return future.map { encoded($0) }
            }
        }
        // KIP-890 part 1: a transactional batch that would open a transaction on a partition is
        // appended only once the coordinator confirms the partition is in the transaction. Part
        // 2: from Produce v12 (transactions v2) the coordinator adds the partition instead, whether
        // or not verification is enabled, as Kafka's ReplicaManager does for a client that
        // `supportsEpochBump`.
        let adding = version >= Self.produceAddsPartitionsSince
        if settings.transactionPartitionVerification || adding, let transactionalId = request.transactionalId,
            !transactionalId.isEmpty, let plan = verificationPlan(entries)
        {
            let pending = entries
            entries = []
            let future = addOrVerifyTransaction(
                transactionalId, producerId: plan.producerId, epoch: plan.epoch, Set(plan.toAsk.values),
                adding: adding, eventLoop: eventLoop
            ).flatMap { [self] errors in
                var refused: [Int: (ErrorCode, String?)] = [:]
                for (index, tp) in plan.toAsk {
                    if let error = errors[tp], error != .none {
                        BrokerMetrics.transactionVerificationFailures.increment()
                        refused[index] = Self.produceError(forVerification: error, produceVersion: version)
                    }
                }
                return answered(
                    appendRecords(
                        pending, requiredAcks: acks, timeoutMs: timeoutMs, origin: .client, produceVersion: version,
                        verification: plan.verification, refused: refused, eventLoop: eventLoop))
            }
            return acks == 0 ? noAnswer : .respond(future)
        }
        let outcome = appendRecords(
            entries, requiredAcks: acks, timeoutMs: timeoutMs, origin: .client, produceVersion: version,
            eventLoop: eventLoop)
        entries = []
        if acks == 0 { return noAnswer }
        switch outcome {
        case .done(let results):
            return .respondNow(encoded(results))
        case .waiting(let future):
            return .respond(future.map { encoded($0) })
        }
    }
}

extension Broker {
    /// `records` with every batch stored by `target` (a topic's `compression.type`), as Kafka's
    /// LogValidator rebuilds batches whose codec differs: control batches and batches already in
    /// `target` are kept as they are. Returns the new bytes and their batches.
    static func recompressed(
        _ records: ByteBuffer, batches: [BatchInfo], to target: CompressionCodec, config: LogConfig
    ) throws -> (ByteBuffer, [BatchInfo]) {
        var out = ByteBufferAllocator().buffer(capacity: records.readableBytes)
        for batch in batches {
            if batch.header.isControl || batch.header.compression == target {
                var same = records.getSlice(at: batch.position, length: batch.header.totalBytes)!
                out.writeBuffer(&same)
            } else {
                var rebuilt = try RecordBatches.recompress(
                    records, batchAt: batch.position, header: batch.header, to: target,
                    level: config.compressionLevels[target])
                out.writeBuffer(&rebuilt)
            }
        }
        // Past the size check already done on what the producer sent, as Kafka checks the
        // rebuilt batch too: a batch recompressed larger than message.max.bytes is refused.
        return (out, try RecordBatches.validate(out, maxBatchBytes: config.maxMessageBytes).get())
    }
}

/// A batch refused because of some of its records (KIP-467): the partition's error, its
/// `error_message`, and the records at fault.
struct RecordRejection: Equatable {
    var code: ErrorCode
    var message: String
    var recordErrors: [ProduceResponse.BatchIndexAndErrorMessage]
}

extension Broker {
    /// The records a client may not append, checked as Kafka's LogValidator does: a record
    /// without a key on a compacted topic (INVALID_RECORD), a CreateTime timestamp outside
    /// `message.timestamp.before.max.ms` / `after.max.ms` of now, or a producer setting
    /// LogAppendTime itself (INVALID_TIMESTAMP). Every record at fault is named by its index
    /// (counted over the request's batches), and the batch fails whole. Uncompressed records are
    /// read in place; a compressed batch is decompressed only when a check needs its records
    /// (a compacted topic, or a timestamp bound set), where Kafka decompresses every one.
    static func invalidRecords(
        _ records: ByteBuffer, batches: [BatchInfo], tp: TopicPartition, config: LogConfig, nowMs: Int64
    ) -> RecordRejection? {
        let checkTimes =
            !config.logAppendTime && (config.timestampBeforeMaxMs < .max || config.timestampAfterMaxMs < .max)
        guard config.compactEnabled || checkTimes || batches.contains(where: { $0.header.isLogAppendTime }) else {
            return nil
        }
        let earliest = config.timestampBeforeMaxMs == .max ? Int64.min : nowMs &- config.timestampBeforeMaxMs
        let latest = config.timestampAfterMaxMs == .max ? Int64.max : nowMs &+ config.timestampAfterMaxMs
        func outOfRange(_ timestamp: Int64, offset: Int64) -> String? {
            guard checkTimes, timestamp != -1, timestamp < earliest || timestamp > latest else { return nil }
            return "Timestamp \(timestamp) of message with offset \(offset) is out of range. "
                + "The timestamp should be within [\(earliest), \(latest)]"
        }
        var errors: [ProduceResponse.BatchIndexAndErrorMessage] = []
        var badTimestamp = false
        var counted = 0
        for batch in batches where !batch.header.isControl {
            let header = batch.header
            defer { counted += Int(max(0, header.recordCount)) }
            if header.isLogAppendTime {
                badTimestamp = true
                errors.append(
                    .init(
                        batchIndex: Int32(counted),
                        batchIndexErrorMessage:
                            "Invalid timestamp type in message of \(tp). Producer should not set timestamp type to LogAppendTime."
                    ))
                continue
            }
            // (hasKey, timestamp, offset) of each record: read in place, or decompressed.
            let fields: [(hasKey: Bool, timestamp: Int64, offset: Int64)]
            do {
                if header.compression == CompressionCodec.none {
                    fields = try RecordBatches.recordViews(records, batchAt: batch.position, header: header).map {
                        (
                            $0.hasKey, header.baseTimestamp &+ $0.timestampDelta,
                            header.baseOffset + Int64($0.offsetDelta)
                        )
                    }
                } else {
                    fields = try RecordBatches.records(records, batchAt: batch.position, header: header).map {
                        ($0.key != nil, $0.timestamp, $0.offset)
                    }
                }
            } catch {
                return RecordRejection(
                    code: .corruptMessage,
                    message: "The record batch of topic partition \(tp) does not parse: \(error).",
                    recordErrors: [])
            }
            for (i, record) in fields.enumerated() {
                if config.compactEnabled && !record.hasKey {
                    errors.append(
                        .init(
                            batchIndex: Int32(counted + i),
                            batchIndexErrorMessage:
                                "Compacted topic cannot accept message without key in topic partition \(tp)."))
                }
                if let problem = outOfRange(record.timestamp, offset: record.offset) {
                    badTimestamp = true
                    errors.append(.init(batchIndex: Int32(counted + i), batchIndexErrorMessage: problem))
                }
            }
        }
        if badTimestamp {
            return RecordRejection(
                code: .invalidTimestamp, message: "One or more records have been rejected due to invalid timestamp",
                recordErrors: errors)
        }
        guard !errors.isEmpty else { return nil }
        let shown = errors.prefix(3).map {
            "RecordError(batchIndex=\($0.batchIndex), message='\($0.batchIndexErrorMessage ?? "")')"
        }
        return RecordRejection(
            code: .invalidRecord,
            message: "One or more records have been rejected due to \(errors.count) record errors in total, "
                + "and only showing the first three errors at most: [\(shown.joined(separator: ", "))]",
            recordErrors: errors)
    }
}
