import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelReplication
import RunnelSecurity
import RunnelWire

extension Broker {
    /// One partition of a fetch, resolved against the image.
    /// One partition a Fetch asks for: where its answer goes in the response, the partition
    /// (nil when its topic is unknown) and the topic-level error, if any.
    package struct FetchTarget {
        package var topicIndex: Int
        package var partitionIndex: Int
        package var topicPartition: TopicPartition?
        package var request: FetchRequest.FetchPartition
        package var error: ErrorCode?
    }

    /// The partitions a Fetch asks for, resolved against `image` (topic ids from v13, names
    /// before), with the response skeleton they fill. The simulator plans its fetches with it too.
    package static func fetchTargets(
        _ request: FetchRequest, version: Int16, image: MetadataImage, skeleton: inout FetchResponse
    ) -> [FetchTarget] {
        var targets: [FetchTarget] = []
        for (ti, topic) in request.topics.enumerated() {
            var name: String? = topic.topic
            var topicError: ErrorCode?
            if version >= 13 {
                name = image.topic(id: topic.topicId)?.name
                if name == nil { topicError = .unknownTopicId }
            } else if image.topic(named: topic.topic) == nil {
                topicError = .unknownTopicOrPartition
            }
            skeleton.responses.append(
                .init(topic: version >= 13 ? "" : topic.topic, topicId: version >= 13 ? topic.topicId : .zero))
            for (pi, p) in topic.partitions.enumerated() {
                skeleton.responses[ti].partitions.append(
                    .init(
                        partitionIndex: p.partition, errorCode: 0, highWatermark: -1, lastStableOffset: -1,
                        logStartOffset: -1, abortedTransactions: nil))
                targets.append(
                    FetchTarget(
                        topicIndex: ti, partitionIndex: pi,
                        topicPartition: name.map { TopicPartition($0, p.partition) }, request: p, error: topicError))
            }
        }
        return targets
    }

    /// Answers a Fetch. From v7 the request's session id and epoch choose a full fetch (which
    /// may open an incremental fetch session), a full fetch without a session, or an incremental
    /// fetch of an open session (`FetchSessionCache` has the rules). An incremental fetch reads,
    /// authorizes and long-polls every partition of its session, as a full fetch of them would,
    /// and answers only the partitions whose answer changed.
    func fetch(_ request: FetchRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        var skeleton = FetchResponse()
        var request = request
        let usesTopicIds = version >= 13
        // A follower replica fetches with its broker id (KIP-903 moved it into ReplicaState).
        let replicaId = version >= 15 ? request.replicaState.replicaId : request.replicaId
        let replicaEpoch = version >= 15 ? request.replicaState.replicaEpoch : -1
        let session = fetchSessionContext(request, version: version)
        switch session {
        case .sessionError(let error):
            skeleton.errorCode = error.rawValue
            return respond(skeleton, version: version, context: context)
        case .incremental(_, _, let partitions):
            request.topics = Self.sessionTopics(partitions)
        case .sessionless, .full:
            break
        }
        let image = self.image
        var checkedTargets = Self.fetchTargets(request, version: version, image: image, skeleton: &skeleton)
        let maxWait = Int64(min(max(request.maxWaitMs, 0), Limits.fetchWaitMsMax))
        let minBytes = Int64(max(request.minBytes, 0))
        // consumer_byte_rate (KIP-13): a consumer's answer is no larger than its quota lets pass
        // at once; followers are not measured.
        let quota = replicaId < 0 ? clientQuota(.consumerByteRate, context: context) : nil
        let quotaBytes = quota.map { q in clientQuotaManager.withLockedValue { $0.maxValueInQuotaWindow(q) } }
        let maxBytes = Int(
            min(
                Int64(max(request.maxBytes, 0)), Int64(settings.fetchMaxBytes),
                Int64(min(quotaBytes ?? Double(Int64.max), Double(Int64.max / 2)))))
        let auth = authorization(context)
        let refusal = Self.fetchRefusal(auth, replicaId: replicaId, replicaEpoch: replicaEpoch, image: image)
        if let refusal {
            for i in checkedTargets.indices { checkedTargets[i].error = refusal }
        } else if replicaId < 0 && auth.enabled {
            let readable = auth.allowedTopics(.read, checkedTargets.compactMap { $0.topicPartition?.topic })
            for i in checkedTargets.indices {
                if let topic = checkedTargets[i].topicPartition?.topic, !readable.contains(topic) {
                    checkedTargets[i].error = .topicAuthorizationFailed
                }
            }
        }

        let targets = checkedTargets
        let topics = request.topics
        // Only a follower the broker accepts opens a session that outranks consumers' (Kafka
        // ranks any fetch with a replica id so; a client posing as a follower would evict theirs).
        let privileged = replicaId >= 0 && refusal == nil
        // First look: answer now if there is enough data, an error, or no wait.
        // read_committed (v4+): a consumer reads up to the last stable offset, with the aborted
        // transactions of what it reads.
        let readCommitted = replicaId < 0 && request.isolationLevel == 1
        let first = readFetch(
            skeleton, targets: targets, maxBytes: maxBytes, replicaId: replicaId, replicaEpoch: replicaEpoch,
            readCommitted: readCommitted, maxWaitMs: maxWait)
        if first.bytes >= minBytes || maxWait == 0 || first.hasError || targets.isEmpty {
            let answer = sessionAnswer(
                first.response, session: session, targets: targets, topics: topics, usesTopicIds: usesTopicIds,
                privileged: privileged)
            return .respondNow(
                Self.quotaCheckedFetch(
                    answer, version: version, allocator: context.allocator, quota: quota, broker: self))
        }
        Self.releaseRegions(first.response)
        let promise = context.eventLoop.makePromise(of: OutgoingResponse.self)
        let allocator = context.allocator
        let waiter = DelayedFetchPurgatory.Waiter(
            eventLoop: context.eventLoop,
            partitions: targets.filter { $0.error == nil }.compactMap(\.topicPartition),
            tryComplete: { [self] in
                fetchReady(targets, replicaId: replicaId, readCommitted: readCommitted, minBytes: minBytes)
            },
            complete: { [self] in
                let result = readFetch(
                    skeleton, targets: targets, maxBytes: maxBytes, replicaId: replicaId, replicaEpoch: replicaEpoch,
                    readCommitted: readCommitted, maxWaitMs: 0)
                let answer = sessionAnswer(
                    result.response, session: session, targets: targets, topics: topics, usesTopicIds: usesTopicIds,
                    privileged: privileged)
                promise.succeed(
                    Self.quotaCheckedFetch(answer, version: version, allocator: allocator, quota: quota, broker: self))
            })
        delayedFetches.watch(waiter, waitMs: maxWait)
        return .respond(promise.futureResult)
    }

    /// Reads the session fields of a Fetch (v7 and later; older ones have none) against the
    /// session cache: an incremental request's partitions join or update its session here.
    func fetchSessionContext(_ request: FetchRequest, version: Int16) -> FetchSessionCache.Context {
        guard version >= 7 else { return .sessionless }
        let epoch = request.sessionEpoch
        let isFull = epoch == FetchSessionCache.initialEpoch || epoch == FetchSessionCache.finalEpoch
        if isFull && request.sessionId == 0 { return epoch == FetchSessionCache.finalEpoch ? .sessionless : .full }
        let usesTopicIds = version >= 13
        var partitions: [FetchSessionCache.Entry] = []
        var forgotten: [FetchSessionPartition] = []
        if !isFull {
            for topic in request.topics {
                for p in topic.partitions {
                    partitions.append(.init(Self.sessionKey(topic.topic, topic.topicId, p.partition, usesTopicIds), p))
                }
            }
            for topic in request.forgottenTopicsData {
                for p in topic.partitions {
                    forgotten.append(Self.sessionKey(topic.topic, topic.topicId, p, usesTopicIds))
                }
            }
        }
        let nowMs = clock.monotonicMs()
        let context = fetchSessions.withLockedValue { cache in
            let context = cache.newContext(
                sessionId: request.sessionId, epoch: epoch, usesTopicIds: usesTopicIds, partitions: partitions,
                forgotten: forgotten, nowMs: nowMs)
            Self.recordSessionGauges(cache)
            return context
        }
        return context
    }

    /// A partition's name in a session: by topic id from Fetch v13, by topic name before.
    static func sessionKey(
        _ topic: String, _ topicId: KafkaUUID, _ partition: Int32, _ usesTopicIds: Bool
    ) -> FetchSessionPartition {
        usesTopicIds
            ? FetchSessionPartition(topicId: topicId, partition: partition)
            : FetchSessionPartition(topic: topic, partition: partition)
    }

    /// The topics of a request that fetches a session's partitions, in session order: a topic
    /// appears once per run of its partitions, as in Kafka's answers (clients take a topic
    /// named twice), so the answer's partitions stand in the session's order.
    static func sessionTopics(_ partitions: [CachedFetchPartition]) -> [FetchRequest.FetchTopic] {
        var topics: [FetchRequest.FetchTopic] = []
        for cached in partitions {
            if let last = topics.last, last.topicId == cached.key.topicId, last.topic == cached.key.topic {
                topics[topics.count - 1].partitions.append(cached.request)
            } else {
                var topic = FetchRequest.FetchTopic()
                topic.topic = cached.key.topic
                topic.topicId = cached.key.topicId
                topic.partitions = [cached.request]
                topics.append(topic)
            }
        }
        return topics
    }

    /// Carries out the session part of an answer that is ready to go: a full fetch caches its
    /// partitions as a new session if it can and names it; an incremental fetch drops the
    /// partitions whose answer did not change (closing their file regions), or, when its
    /// session went away or another request moved its epoch meanwhile, answers only that error.
    func sessionAnswer(
        _ response: FetchResponse, session: FetchSessionCache.Context, targets: [FetchTarget],
        topics: [FetchRequest.FetchTopic], usesTopicIds: Bool, privileged: Bool
    ) -> FetchResponse {
        var response = response
        func key(_ target: FetchTarget) -> FetchSessionPartition {
            let topic = topics[target.topicIndex]
            return Self.sessionKey(topic.topic, topic.topicId, target.request.partition, usesTopicIds)
        }
        switch session {
        case .sessionError, .sessionless:
            response.sessionId = 0
        case .full:
            let answers = targets.map { target in
                (key(target), target.request, response.responses[target.topicIndex].partitions[target.partitionIndex])
            }
            let nowMs = clock.monotonicMs()
            let (id, evicted) = fetchSessions.withLockedValue { cache -> (Int32, Int) in
                let before = cache.evictions
                let id = cache.createSession(
                    privileged: privileged, usesTopicIds: usesTopicIds, answers: answers, nowMs: nowMs)
                Self.recordSessionGauges(cache)
                return (id, cache.evictions - before)
            }
            if evicted > 0 { BrokerMetrics.fetchSessionEvictions.increment(by: evicted) }
            response.sessionId = id
        case .incremental(let id, let epoch, _):
            // The answer lists the session's partitions in session order (`sessionTopics`).
            let outcome = fetchSessions.withLockedValue { cache -> Result<[Bool], FetchSessionLost> in
                if let keep = cache.answerIncremental(
                    id: id, epoch: epoch, answers: response.responses.lazy.flatMap(\.partitions))
                {
                    return .success(keep)
                }
                return .failure(FetchSessionLost(error: cache.lostSessionError(id: id)))
            }
            switch outcome {
            case .failure(let lost):
                Self.releaseRegions(response)
                var refusal = FetchResponse()
                refusal.errorCode = lost.error.rawValue
                return refusal
            case .success(let keep):
                var dropped = FetchResponse()
                var responses: [FetchResponse.FetchableTopicResponse] = []
                var next = 0
                for topic in response.responses {
                    let flags = keep[next..<next + topic.partitions.count]
                    next += topic.partitions.count
                    guard flags.contains(true) else {
                        dropped.responses.append(topic)
                        continue
                    }
                    var out = topic
                    out.partitions = []
                    for (data, kept) in zip(topic.partitions, flags) {
                        if kept {
                            out.partitions.append(data)
                        } else {
                            dropped.responses.append(.init(partitions: [data]))
                        }
                    }
                    responses.append(out)
                }
                Self.releaseRegions(dropped)
                response.responses = responses
                response.sessionId = id
            }
        }
        return response
    }

    /// Why an incremental fetch's answer cannot use its session any more.
    struct FetchSessionLost: Error {
        var error: ErrorCode
    }

    /// Publishes the cache's size (Kafka's FetchSessionCache gauges).
    static func recordSessionGauges(_ cache: FetchSessionCache) {
        BrokerMetrics.fetchSessions.record(cache.count)
        BrokerMetrics.fetchSessionPartitions.record(cache.partitionsCached)
    }

    /// Who may fetch (Kafka's handleFetchRequest): a follower fetch (`replicaId` >= 0) needs
    /// CLUSTER_ACTION on the cluster, or every partition answers TOPIC_AUTHORIZATION_FAILED; and,
    /// with or without an authorizer, it must come from the broker's current registration (the
    /// broker epoch of the registration the image holds for that id), or every partition answers
    /// NOT_LEADER_OR_FOLLOWER, so that nothing but a registered broker moves a high watermark. A
    /// consumer fetch needs READ on each topic (`readable`, checked per target by the caller).
    static func fetchRefusal(
        _ auth: RequestAuthorization, replicaId: Int32, replicaEpoch: Int64, image: MetadataImage
    ) -> ErrorCode? {
        guard replicaId >= 0 else { return nil }
        guard auth.allows(.clusterAction, .cluster) else { return .topicAuthorizationFailed }
        guard let registered = image.brokers[NodeID(replicaId)], replicaEpoch >= 0, registered.epoch == replicaEpoch
        else { return .notLeaderOrFollower }
        return nil
    }

    /// Whether a parked fetch can answer now: a leadership change or a partition gone, which it
    /// must report; for a consumer, at least `minBytes` below the high watermark past its fetch
    /// offsets; for a follower (`replicaId` >= 0), any data past its fetch offset. A follower is
    /// not woken by the high watermark alone, as in Kafka's DelayedFetch: it learns the new one
    /// with its next data (or when its wait ends), which spares a round trip per follower for
    /// every move of the high watermark. Each partition's core decides its part. A
    /// `read_committed` consumer counts only what lies below the last stable offset.
    func fetchReady(_ targets: [FetchTarget], replicaId: Int32, readCommitted: Bool, minBytes: Int64) -> Bool {
        var bytes: Int64 = 0
        for target in targets {
            guard let tp = target.topicPartition, let partition = partition(tp) else { return true }
            let offset = target.request.fetchOffset
            guard partition.fetchReady(replica: replicaId, fetchOffset: offset, readCommitted: readCommitted) else {
                continue
            }
            if replicaId >= 0 && leaderThrottles(partition, replica: replicaId) { continue }
            if replicaId >= 0 || minBytes <= 1 || !partition.isLeader { return true }
            let limit = readCommitted ? partition.lastStableOffset : partition.highWatermark
            bytes += (try? partition.log.availableBytes(from: offset, upTo: limit)) ?? 0
            if bytes >= minBytes { return true }
        }
        return false
    }

    /// Reads every target, honouring the response byte budget (at least one batch overall).
    /// A follower (`replicaId` >= 0) reads up to the log end and reports its position; a
    /// consumer reads up to the high watermark (`readCommitted`: the last stable offset, with the
    /// aborted transactions overlapping what it reads, as Kafka's `collectAbortedTransactions`).
    /// `maxWaitMs` is how long the fetch may yet wait here (0 once it answers).
    func readFetch(
        _ skeleton: FetchResponse, targets: [FetchTarget], maxBytes: Int, replicaId: Int32,
        replicaEpoch: Int64, readCommitted: Bool, maxWaitMs: Int64
    ) -> (response: FetchResponse, bytes: Int64, hasError: Bool) {
        let image = self.image
        let nowMs = clock.monotonicMs()
        let eligibility = Self.isrEligibility(image)
        var response = skeleton
        var remaining = maxBytes
        var total: Int64 = 0
        var hasError = false
        var gotData = false
        for target in targets {
            var out = response.responses[target.topicIndex].partitions[target.partitionIndex]
            defer { response.responses[target.topicIndex].partitions[target.partitionIndex] = out }
            if let error = target.error {
                out.errorCode = error.rawValue
                hasError = true
                continue
            }
            guard let tp = target.topicPartition, let partition = partition(tp) else {
                out.errorCode =
                    (target.topicPartition.map { image.partition($0) == nil } ?? true)
                    ? ErrorCode.unknownTopicOrPartition.rawValue : ErrorCode.notLeaderOrFollower.rawValue
                hasError = true
                continue
            }
            let state = partition.state
            guard state.leader == settings.nodeId else {
                out.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                out.currentLeader = .init(leaderId: state.leader, leaderEpoch: state.leaderEpoch)
                hasError = true
                continue
            }
            if let epochError = partition.checkLeaderEpoch(target.request.currentLeaderEpoch) {
                out.errorCode = epochError.rawValue
                hasError = true
                continue
            }
            var readLimit = partition.highWatermark
            if replicaId >= 0 {
                let answer = partition.followerFetch(
                    replica: replicaId, brokerEpoch: replicaEpoch, fetchOffset: target.request.fetchOffset,
                    lastFetchedEpoch: target.request.lastFetchedEpoch, maxWaitMs: maxWaitMs, nowMs: nowMs,
                    lagTimeMaxMs: settings.replicaLagTimeMaxMs, eligibility: eligibility)
                out.highWatermark = partition.highWatermark
                out.lastStableOffset = partition.lastStableOffset
                out.logStartOffset = partition.log.logStartOffset
                switch answer {
                case .error(let code):
                    out.errorCode = code.rawValue
                    hasError = true
                    continue
                case .diverging(let epoch, let endOffset):
                    out.divergingEpoch = .init(epoch: epoch, endOffset: endOffset)
                    hasError = true  // answer at once
                    continue
                case .read(let hw, let logEnd):
                    out.highWatermark = hw
                    out.lastStableOffset = min(hw, partition.lastStableOffset)
                    readLimit = logEnd
                }
            }
            if replicaId < 0 && !partition.servesClients {
                // This leader stepped aside: the client looks for the new one.
                out.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                hasError = true
                continue
            }
            if replicaId < 0 {
                let bounds = partition.consumerReadBounds(readCommitted: readCommitted)
                out.highWatermark = bounds.highWatermark
                out.lastStableOffset = bounds.lastStableOffset
                out.logStartOffset = partition.log.logStartOffset
                readLimit = bounds.readLimit
            }
            let throttled =
                replicaId >= 0 && leaderThrottle.withLockedValue { $0.covers(tp) }
                && !partition.state.isr.contains(replicaId)
            if throttled && leaderThrottle.withLockedValue({ $0.quota.isExceeded(nowMs: nowMs) }) {
                // Over the replication throttle: this out-of-sync follower gets no data this time.
                out.records = .empty
                continue
            }
            let budget = min(Int(max(target.request.partitionMaxBytes, 0)), remaining)
            do {
                let read = try partition.log.read(
                    from: target.request.fetchOffset, maxBytes: budget, maxOffset: readLimit, minOneBatch: !gotData)
                out.records = read.records
                if readCommitted {
                    out.abortedTransactions =
                        read.byteCount == 0
                        ? []
                        : partition.log.collectAbortedTransactions(
                            fetchOffset: target.request.fetchOffset, upperBoundOffset: read.nextOffset
                        ).map { .init(producerId: $0.producerId, firstOffset: $0.firstOffset) }
                }
                let n = read.byteCount
                if n > 0 { gotData = true }
                if throttled && n > 0 {
                    leaderThrottle.withLockedValue { $0.quota.record(Int64(n), nowMs: nowMs) }
                }
                remaining = max(0, remaining - n)
                total += Int64(n)
            } catch LogError.offsetOutOfRange {
                out.errorCode = ErrorCode.offsetOutOfRange.rawValue
                out.records = nil
                hasError = true
            } catch {
                logger.error("fetch from \(tp) failed: \(error)")
                out.errorCode = ErrorCode.kafkaStorageError.rawValue
                hasError = true
            }
            if out.records == nil { out.records = .empty }
        }
        for t in response.responses.indices {
            for p in response.responses[t].partitions.indices where response.responses[t].partitions[p].records == nil {
                response.responses[t].partitions[p].records = .empty
            }
        }
        return (response, total, hasError)
    }

    /// Closes the descriptors of a response that will not be sent.
    static func releaseRegions(_ response: FetchResponse) {
        for t in response.responses {
            for p in t.partitions {
                for chunk in p.records?.chunks ?? [] {
                    if case .region(let region) = chunk { try? region.fileHandle.close() }
                }
            }
        }
    }
}
