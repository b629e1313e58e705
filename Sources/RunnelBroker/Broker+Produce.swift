import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelLog
import RunnelWire

extension Broker {
    func produce(_ request: ProduceRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let acks = request.acks
        let now = clock.wallMs()
        var response = ProduceResponse()
        /// Partitions whose acks=all answer waits for the high watermark to pass `required`.
        var waits: [(topic: Int, partition: Int, partitionRef: Partition, required: Int64, minInsync: Int)] = []
        let minInsync = Int(settings.staticConfig["min.insync.replicas"].flatMap { Int($0) } ?? 1)
        for topicData in request.topicData {
            var topicResponse = ProduceResponse.TopicProduceResponse(name: topicData.name)
            for data in topicData.partitionData {
                var p = ProduceResponse.PartitionProduceResponse(index: data.index, errorCode: 0, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1)
                func fail(_ code: ErrorCode, _ message: String? = nil) {
                    p.errorCode = code.rawValue
                    if version >= 8 { p.errorMessage = message }
                }
                let tp = TopicPartition(topicData.name, data.index)
                guard acks == 0 || acks == 1 || acks == -1 else {
                    fail(.invalidRequiredAcks)
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                guard let partition = partition(tp) else {
                    fail(image.topic(named: tp.topic) == nil ? .unknownTopicOrPartition : .notLeaderOrFollower)
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                guard let records = data.records?.bytes, records.readableBytes > 0 else {
                    fail(.invalidRecord, "The produce request carries no record batch.")
                    topicResponse.partitionResponses.append(p)
                    continue
                }
                let config = partition.log.config
                switch RecordBatches.validate(records, maxBatchBytes: config.maxMessageBytes) {
                case .failure(let problem):
                    fail(problem.code, problem.reason)
                    if problem.code == .invalidRecord && version >= 8 {
                        p.recordErrors = [.init(batchIndex: 0, batchIndexErrorMessage: problem.reason)]
                    }
                case .success(let batches):
                    if version < 7, batches.contains(where: { $0.header.compression == .zstd }) {
                        fail(.unsupportedCompressionType, "zstd needs Produce v7 or later.")
                        break
                    }
                    if config.compactEnabled, let problem = Self.keylessRecord(records, batches: batches, tp: tp) {
                        fail(.invalidRecord, problem.batchIndexErrorMessage)
                        if version >= 8 { p.recordErrors = [problem] }
                        break
                    }
                    do {
                        let minISR = Int(image.configs(of: .init(.topic, tp.topic))["min.insync.replicas"].flatMap { Int($0) } ?? minInsync)
                        switch try partition.appendAsLeader(records, batches: batches, requiredAcks: acks, minInsyncReplicas: minISR, nowMs: now) {
                        case .success(let info):
                            BrokerMetrics.messagesIn.increment(by: Int(info.lastOffset - info.firstOffset + 1))
                            BrokerMetrics.bytesIn.increment(by: records.readableBytes)
                            p.baseOffset = info.firstOffset
                            p.logAppendTimeMs = info.logAppendTime
                            p.logStartOffset = partition.log.logStartOffset
                            if acks == -1 {
                                switch partition.acksAllStatus(requiredOffset: info.lastOffset + 1, minInsyncReplicas: minISR) {
                                case nil:
                                    waits.append((response.responses.count, topicResponse.partitionResponses.count, partition, info.lastOffset + 1, minISR))
                                case let code? where code != .none:
                                    fail(code)
                                default:
                                    break
                                }
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
                topicResponse.partitionResponses.append(p)
            }
            response.responses.append(topicResponse)
        }
        if acks == 0 { return .noResponse }
        if waits.isEmpty { return respond(response, version: version, context: context) }

        // acks=all: answer once every partition's high watermark covers its append.
        let promise = context.eventLoop.makePromise(of: OutgoingResponse.self)
        let state = NIOLoopBoundBox(response, eventLoop: context.eventLoop)
        let allocator = context.allocator
        let waiter = FetchPurgatory.Waiter(
            eventLoop: context.eventLoop,
            partitions: waits.map(\.partitionRef.topicPartition),
            tryComplete: { waits.allSatisfy { $0.partitionRef.acksAllStatus(requiredOffset: $0.required, minInsyncReplicas: $0.minInsync) != nil } },
            complete: {
                for w in waits {
                    let code = w.partitionRef.acksAllStatus(requiredOffset: w.required, minInsyncReplicas: w.minInsync) ?? .requestTimedOut
                    state.value.responses[w.topic].partitionResponses[w.partition].errorCode = code.rawValue
                }
                promise.succeed(OutgoingResponse(state.value, version: version, allocator: allocator))
            })
        purgatory.watch(waiter, waitMs: Int64(max(0, request.timeoutMs)))
        return .respond(promise.futureResult)
    }
}

extension Broker {
    /// A compacted topic keeps the latest record per key, so a record without one is refused
    /// with INVALID_RECORD, as Kafka's LogValidator does. Only uncompressed batches can be
    /// checked: the produce path never decompresses (compressed batches pass unchecked, and the
    /// cleaner keeps them whole).
    static func keylessRecord(_ records: ByteBuffer, batches: [BatchInfo], tp: TopicPartition) -> ProduceResponse.BatchIndexAndErrorMessage? {
        let index: Int
        do {
            guard let found = try RecordBatches.firstRecordWithoutKey(records, batches: batches) else { return nil }
            index = found
        } catch {
            return .init(batchIndex: 0, batchIndexErrorMessage: "The record batch of topic partition \(tp) does not parse: \(error).")
        }
        return .init(batchIndex: Int32(index),
                     batchIndexErrorMessage: "Compacted topic cannot accept message without key in topic partition \(tp).")
    }
}
