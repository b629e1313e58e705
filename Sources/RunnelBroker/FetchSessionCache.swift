import RunnelCore
import RunnelWire

/// A partition's name inside a fetch session: by topic id in sessions of Fetch v13 and later
/// (`topic` empty), by topic name before (`topicId` zero), as the client named it. The broker
/// resolves it against the image on every fetch, so a topic id unknown today answers
/// UNKNOWN_TOPIC_ID and a deleted topic stops being served.
package struct FetchSessionPartition: Hashable, Sendable, CustomStringConvertible {
    package var topicId: KafkaUUID
    package var topic: String
    package var partition: Int32

    package init(topicId: KafkaUUID = .zero, topic: String = "", partition: Int32) {
        self.topicId = topicId
        self.topic = topic
        self.partition = partition
    }

    package var description: String { topic.isEmpty ? "\(topicId)-\(partition)" : "\(topic)-\(partition)" }
}

/// What the client last asked of one partition of its session, and what the broker last told
/// it (Kafka's CachedPartition). An incremental fetch reads the partition from `request` unless
/// the client sends the partition again, and answers it only when the answer differs from the
/// last one.
package struct CachedFetchPartition: Sendable, Equatable {
    package var key: FetchSessionPartition
    /// The client's fetch offset, partition max bytes, current leader epoch, last fetched epoch
    /// and (a follower's) log start offset, as last sent.
    package var request: FetchRequest.FetchPartition
    /// The high watermark last answered; -1 after an error, so the partition is answered again
    /// once the error clears.
    package var highWatermark: Int64 = -1
    /// The last stable offset last answered.
    package var lastStableOffset: Int64 = -1
    /// The broker's log start offset last answered.
    package var logStartOffset: Int64 = -1

    package init(key: FetchSessionPartition, request: FetchRequest.FetchPartition) {
        self.key = key
        self.request = request
    }

    package var entry: FetchSessionCache.Entry { .init(key, request) }

    /// Whether `answer` must go to the client (Kafka's `maybeUpdateResponseData`): records, a
    /// moved high watermark, last stable offset or log start offset, a preferred read replica,
    /// a diverging epoch, or an error. With `update`, remembers what was answered.
    package mutating func mustAnswer(_ answer: FetchResponse.PartitionData, update: Bool) -> Bool {
        var must = (answer.records?.byteCount ?? 0) > 0
        if highWatermark != answer.highWatermark {
            must = true
            if update { highWatermark = answer.highWatermark }
        }
        if lastStableOffset != answer.lastStableOffset {
            must = true
            if update { lastStableOffset = answer.lastStableOffset }
        }
        if logStartOffset != answer.logStartOffset {
            must = true
            if update { logStartOffset = answer.logStartOffset }
        }
        if answer.preferredReadReplica >= 0 { must = true }
        if answer.divergingEpoch.epoch >= 0 || answer.divergingEpoch.endOffset >= 0 { must = true }
        if answer.errorCode != 0 {
            must = true
            if update { highWatermark = -1 }
        }
        return must
    }
}

/// One incremental fetch session (KIP-227): its partitions in the order they joined (a partition
/// answered moves to the end, as in Kafka, so a few busy partitions cannot starve the rest of
/// the response's byte budget), and the epoch the next request must carry.
package struct FetchSession: Sendable {
    package let id: Int32
    /// Created by a follower: such a session may evict a consumer's.
    package let privileged: Bool
    /// Created by Fetch v13 or later: partitions are named by topic id, and only such requests
    /// may use the session.
    package let usesTopicIds: Bool
    package let creationMs: Int64
    package var lastUsedMs: Int64
    /// The epoch the next incremental request must carry.
    package var epoch: Int32
    /// The partitions in session order: the order an incremental fetch reads and answers them.
    package private(set) var partitions: [CachedFetchPartition] = []
    /// Where each partition stands in `partitions`.
    private var index: [FetchSessionPartition: Int] = [:]

    init(id: Int32, privileged: Bool, usesTopicIds: Bool, nowMs: Int64) {
        self.id = id
        self.privileged = privileged
        self.usesTopicIds = usesTopicIds
        self.creationMs = nowMs
        self.lastUsedMs = nowMs
        self.epoch = FetchSessionCache.nextEpoch(FetchSessionCache.initialEpoch)
    }

    package var count: Int { partitions.count }

    /// The partitions' names in session order.
    package var order: [FetchSessionPartition] { partitions.map(\.key) }

    /// Adds a partition or updates what the client asks of it (Kafka's `updateRequestParams`).
    mutating func put(_ key: FetchSessionPartition, _ request: FetchRequest.FetchPartition) {
        if let i = index[key] {
            partitions[i].request = request
        } else {
            index[key] = partitions.count
            partitions.append(CachedFetchPartition(key: key, request: request))
        }
        precondition(index.count == partitions.count, "a session lists each of its partitions once")
    }

    mutating func forget(_ keys: Set<FetchSessionPartition>) {
        guard keys.contains(where: { index[$0] != nil }) else { return }
        partitions.removeAll { keys.contains($0.key) }
        reindex()
    }

    private mutating func reindex() {
        index.removeAll(keepingCapacity: true)
        for (i, p) in partitions.enumerated() { index[p.key] = i }
        precondition(index.count == partitions.count, "a session lists each of its partitions once")
    }

    /// Remembers `answers`, one per partition in session order, and says which of them go to
    /// the client; those move to the end.
    mutating func filter(_ answers: some Collection<FetchResponse.PartitionData>) -> [Bool] {
        precondition(answers.count == partitions.count, "an incremental answer covers the session's partitions")
        var keep: [Bool] = []
        keep.reserveCapacity(partitions.count)
        var answered = 0
        for (i, answer) in zip(partitions.indices, answers) {
            let must = partitions[i].mustAnswer(answer, update: true)
            keep.append(must)
            if must { answered += 1 }
        }
        if answered > 0 {
            var rotated: [CachedFetchPartition] = []
            rotated.reserveCapacity(partitions.count)
            for (p, kept) in zip(partitions, keep) where !kept { rotated.append(p) }
            for (p, kept) in zip(partitions, keep) where kept { rotated.append(p) }
            partitions = rotated
            reindex()
        }
        return keep
    }
}

/// The broker's incremental fetch sessions (KIP-227, Kafka's FetchSessionCache and
/// FetchManager): a value with no locks and no clock; the broker holds it under a lock and
/// passes the time in. Session ids come from a seeded generator, so a simulation replays.
///
/// Request rules (Kafka's FetchMetadata), by session id and epoch:
/// - 0 and 0 (INITIAL): a full fetch that creates a session when the answer is ready; the answer
///   names it, or 0 when no slot could be had.
/// - 0 and -1 (FINAL): a full fetch without a session.
/// - X and 0: closes session X, then as 0 and 0. X and -1: closes session X, then as 0 and -1.
/// - X and N > 0: an incremental fetch of session X: FETCH_SESSION_ID_NOT_FOUND when there is no
///   such session, INVALID_FETCH_SESSION_EPOCH unless N is the session's epoch,
///   FETCH_SESSION_TOPIC_ID_ERROR when the request's version names topics the other way from the
///   session's; otherwise the request's partitions join or update the session, its forgotten
///   ones leave it, and the epoch moves on. A session left with no partitions closes, and the
///   fetch goes on without one.
/// - 0 and N > 0: INVALID_FETCH_SESSION_EPOCH (there is no session that epoch could belong to).
///
/// Eviction (Kafka's `tryEvict`): with every slot taken, a new session may take the slot of
/// the least recently used session if that one is stale (unused for more than `evictionMs`);
/// otherwise of the least valuable session it outranks: a follower's session outranks any
/// consumer's, and among equals the one with more partitions wins, but a session younger than
/// `evictionMs` is safe from its own kind (a follower's from everyone).
package struct FetchSessionCache: Sendable {
    /// `FetchMetadata.INITIAL_EPOCH`: create a session.
    package static let initialEpoch: Int32 = 0
    /// `FetchMetadata.FINAL_EPOCH`: no session.
    package static let finalEpoch: Int32 = -1
    /// Kafka's `min.incremental.fetch.session.eviction.ms`, an internal constant there too.
    package static let evictionMsDefault: Int64 = 120_000

    /// The epoch after `epoch` (Kafka's `FetchMetadata.nextEpoch`): wraps to 1, never to 0.
    package static func nextEpoch(_ epoch: Int32) -> Int32 {
        if epoch < 0 { return finalEpoch }
        return epoch == .max ? 1 : epoch + 1
    }

    /// One partition of a session and what it is fetched with.
    package struct Entry: Sendable, Equatable {
        package var key: FetchSessionPartition
        package var request: FetchRequest.FetchPartition
        package init(_ key: FetchSessionPartition, _ request: FetchRequest.FetchPartition) {
            self.key = key
            self.request = request
        }
    }

    /// What one Fetch request is, once its session fields are read (Kafka's FetchContext kinds).
    package enum Context: Sendable, Equatable {
        /// The request's session fields are wrong: answer only this top-level error.
        case sessionError(ErrorCode)
        /// A full fetch, answered with session id 0.
        case sessionless
        /// A full fetch; once answered, try to cache its partitions as a new session.
        case full
        /// An incremental fetch of session `id`, whose epoch is now `epoch`: fetch the session's
        /// `partitions` (in this order) and answer only those that changed.
        case incremental(id: Int32, epoch: Int32, partitions: [CachedFetchPartition])
    }

    /// `max.incremental.fetch.session.cache.slots`
    package let maxSessions: Int
    /// `min.incremental.fetch.session.eviction.ms`
    package let evictionMs: Int64
    private var random: SeededRandom
    package private(set) var sessions: [Int32: FetchSession] = [:]
    /// Partitions held by all sessions (Kafka's NumIncrementalFetchPartitionsCached).
    package private(set) var partitionsCached = 0
    /// Sessions evicted to make room for new ones, since the start.
    package private(set) var evictions = 0

    package init(maxSessions: Int, evictionMs: Int64 = evictionMsDefault, seed: UInt64) {
        precondition(maxSessions >= 0 && maxSessions < Int(Int32.max) / 2, "the session slots leave ids to spare")
        precondition(evictionMs >= 0, "the eviction time is not negative")
        self.maxSessions = maxSessions
        self.evictionMs = evictionMs
        self.random = SeededRandom(seed: seed)
    }

    package var count: Int { sessions.count }

    package func session(_ id: Int32) -> FetchSession? { sessions[id] }

    /// Reads a request's session id and epoch (Kafka's `FetchManager.newContext`). An
    /// incremental request's `partitions` (what it fetches, in its order) join or update the
    /// session and its `forgotten` ones leave it here; `usesTopicIds` is whether the request is
    /// Fetch v13 or later.
    package mutating func newContext(
        sessionId: Int32, epoch: Int32, usesTopicIds: Bool,
        partitions: [Entry], forgotten: [FetchSessionPartition], nowMs: Int64
    ) -> Context {
        if epoch == Self.initialEpoch || epoch == Self.finalEpoch {
            if sessionId != 0 { remove(sessionId) }
            return epoch == Self.finalEpoch ? .sessionless : .full
        }
        guard sessionId != 0 else { return .sessionError(.invalidFetchSessionEpoch) }
        guard let held = sessions[sessionId] else { return .sessionError(.fetchSessionIdNotFound) }
        guard held.epoch == epoch else { return .sessionError(.invalidFetchSessionEpoch) }
        guard held.usesTopicIds == usesTopicIds else { return .sessionError(.fetchSessionTopicIdError) }
        // Taken out of the table, so the session's storage is changed in place, not copied.
        var session = sessions.removeValue(forKey: sessionId)!
        let before = session.count
        for entry in partitions { session.put(entry.key, entry.request) }
        session.forget(Set(forgotten))
        partitionsCached += session.count - before
        session.lastUsedMs = nowMs
        session.epoch = Self.nextEpoch(session.epoch)
        sessions[sessionId] = session
        if session.count == 0 {
            remove(sessionId)
            return .sessionless
        }
        return .incremental(id: sessionId, epoch: session.epoch, partitions: session.partitions)
    }

    /// Caches the partitions of an answered full fetch as a new session if a slot is free or
    /// can be freed (Kafka's `maybeCreateSession`); `answers` pairs each partition with what
    /// was asked and answered. Returns the new session's id, or 0.
    package mutating func createSession(
        privileged: Bool, usesTopicIds: Bool,
        answers: [(FetchSessionPartition, FetchRequest.FetchPartition, FetchResponse.PartitionData)], nowMs: Int64
    ) -> Int32 {
        guard sessions.count < maxSessions || evictOne(privileged: privileged, size: answers.count, nowMs: nowMs)
        else { return 0 }
        precondition(sessions.count < maxSessions, "a new session has a free slot")
        var session = FetchSession(
            id: newSessionId(), privileged: privileged, usesTopicIds: usesTopicIds, nowMs: nowMs)
        for (key, request, _) in answers { session.put(key, request) }
        if session.count == answers.count {
            _ = session.filter(answers.map(\.2))
        } else {
            // A partition named twice: remember the last answer for each.
            var last: [FetchSessionPartition: FetchResponse.PartitionData] = [:]
            for (key, _, data) in answers { last[key] = data }
            _ = session.filter(session.order.map { last[$0]! })
        }
        sessions[session.id] = session
        partitionsCached += session.count
        return session.id
    }

    /// Remembers the answer to an incremental fetch of session `id` made at `epoch` (one answer
    /// per partition, in the order the context listed them) and says which partitions go to the
    /// client. Nil when the session is gone (evicted or closed) or another request moved its
    /// epoch on meanwhile (a duplicate): the client gets the error `lostSessionError(id:)`
    /// names, and starts again with a full fetch. With the epoch unchanged, no other request
    /// changed the session since, so its partitions stand in the order the answers come in.
    package mutating func answerIncremental(
        id: Int32, epoch: Int32, answers: some Collection<FetchResponse.PartitionData>
    ) -> [Bool]? {
        guard sessions[id]?.epoch == epoch else { return nil }
        // Taken out of the table, so the session's storage is changed in place, not copied.
        var session = sessions.removeValue(forKey: id)!
        let keep = session.filter(answers)
        sessions[id] = session
        return keep
    }

    /// The error for an incremental fetch whose session `answerIncremental` no longer found.
    package func lostSessionError(id: Int32) -> ErrorCode {
        sessions[id] == nil ? .fetchSessionIdNotFound : .invalidFetchSessionEpoch
    }

    /// Closes session `id`, if there is one.
    package mutating func remove(_ id: Int32) {
        guard let session = sessions.removeValue(forKey: id) else { return }
        partitionsCached -= session.count
        precondition(partitionsCached >= 0, "the cached partition count covers the sessions held")
    }

    /// Frees one slot for a new session of `size` partitions, by Kafka's rules (see the type's
    /// comment). Returns whether it did.
    private mutating func evictOne(privileged: Bool, size: Int, nowMs: Int64) -> Bool {
        guard
            let leastRecent = sessions.values.min(by: { ($0.lastUsedMs, $0.id) < ($1.lastUsedMs, $1.id) })
        else { return false }
        if nowMs - leastRecent.lastUsedMs > evictionMs {
            remove(leastRecent.id)
            evictions += 1
            return true
        }
        // Only sessions older than evictionMs may go, except that a follower's new session may
        // take a consumer's slot at any age.
        let candidates = sessions.values.filter { old in
            nowMs - old.creationMs > evictionMs || (privileged && !old.privileged)
        }
        func rank(_ s: FetchSession) -> (Int, Int, Int32) { (s.privileged ? 1 : 0, s.count, s.id) }
        guard let weakest = candidates.min(by: { rank($0) < rank($1) }) else { return false }
        // The new session, with id 0 below any real one, must rank at or above the weakest:
        // a higher privilege, or the same with more partitions.
        let newRank = (privileged ? 1 : 0, size, Int32(0))
        guard newRank >= rank(weakest) else { return false }
        remove(weakest.id)
        evictions += 1
        return true
    }

    /// A random positive id no session holds (Kafka draws from 1 to Int32.max - 1).
    private mutating func newSessionId() -> Int32 {
        while true {
            let id = Int32.random(in: 1..<Int32.max, using: &random)
            if sessions[id] == nil { return id }
        }
    }
}
