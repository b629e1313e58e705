import RunnelCore
import RunnelWire

/// The fetching side of an incremental fetch session (KIP-227, Kafka's FetchSessionHandler), as
/// a replica fetcher keeps it with one leader: a value with no locks, fed the request it would
/// send in full and each answer.
///
/// - With no session yet, or after any trouble, the next fetch is full with epoch 0 (INITIAL), so
///   the leader opens a session if it can (naming the old one, if any, closes it).
/// - Once the leader names a session, fetches are incremental: only partitions that are new to
///   the session or whose fetch fields changed (offset, epochs, log start, max bytes) are sent,
///   partitions no longer fetched are forgotten, and the epoch moves on with every answer.
/// - A session error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, ...), an answer
///   naming partitions the fetch did not ask for, or a failed round trip sends the next fetch in
///   full. The caller drops an answer `handleResponse` refuses and fetches again.
///
/// What the follower does with the partitions it gets back is unchanged: a partition missing
/// from an incremental answer had nothing new for it.
package struct FetchSessionHandler: Sendable {
    /// The session the leader named (0: none).
    package private(set) var sessionId: Int32 = 0
    /// The epoch the next fetch carries: 0 for a full fetch.
    package private(set) var nextEpoch: Int32 = FetchSessionCache.initialEpoch
    /// The session's partitions and their fetch fields, as the leader holds them once it has
    /// the last fetch sent.
    private var sessionPartitions: [FetchSessionPartition: FetchRequest.FetchPartition] = [:]

    package init() {}

    /// Whether the next fetch is full.
    package var nextIsFull: Bool { nextEpoch == FetchSessionCache.initialEpoch }

    private static func key(_ topic: FetchRequest.FetchTopic, _ partition: Int32) -> FetchSessionPartition {
        topic.topicId == .zero
            ? FetchSessionPartition(topic: topic.topic, partition: partition)
            : FetchSessionPartition(topicId: topic.topicId, partition: partition)
    }

    /// The request to send for `request`, which names every partition to fetch now: all of it
    /// with this session's id and epoch 0 when the next fetch is full; otherwise only the new and
    /// changed partitions, with the session's partitions no longer named as forgotten ones.
    package mutating func prepare(_ request: FetchRequest) -> FetchRequest {
        var out = request
        out.sessionId = sessionId
        out.sessionEpoch = nextEpoch
        var next: [FetchSessionPartition: FetchRequest.FetchPartition] = [:]
        for topic in request.topics {
            for p in topic.partitions { next[Self.key(topic, p.partition)] = p }
        }
        defer { sessionPartitions = next }
        guard !nextIsFull else {
            out.forgottenTopicsData = []
            return out
        }
        out.topics = request.topics.compactMap { topic in
            var changed = topic
            changed.partitions = topic.partitions.filter { sessionPartitions[Self.key(topic, $0.partition)] != $0 }
            return changed.partitions.isEmpty ? nil : changed
        }
        var forgotten: [FetchRequest.ForgottenTopic] = []
        var index: [FetchSessionPartition: Int] = [:]
        for key in sessionPartitions.keys.sorted(by: Self.order) where next[key] == nil {
            let topicKey = FetchSessionPartition(topicId: key.topicId, topic: key.topic, partition: 0)
            if let i = index[topicKey] {
                forgotten[i].partitions.append(key.partition)
            } else {
                index[topicKey] = forgotten.count
                forgotten.append(.init(topic: key.topic, topicId: key.topicId, partitions: [key.partition]))
            }
        }
        out.forgottenTopicsData = forgotten
        return out
    }

    /// A fixed order for the forgotten partitions, so a simulated run replays.
    private static func order(_ a: FetchSessionPartition, _ b: FetchSessionPartition) -> Bool {
        (a.topicId.high, a.topicId.low, a.topic, a.partition) < (b.topicId.high, b.topicId.low, b.topic, b.partition)
    }

    /// Learns from the answer to `sent` (what `prepare` returned). Returns false when the answer
    /// must not be used: a session error, or partitions the fetch did not cover.
    package mutating func handleResponse(_ response: FetchResponse, sent: FetchRequest) -> Bool {
        if response.errorCode != 0 {
            if ErrorCode(response.errorCode) == .fetchSessionIdNotFound { sessionId = 0 }
            nextEpoch = FetchSessionCache.initialEpoch
            return false
        }
        let sentFull = sent.sessionEpoch == FetchSessionCache.initialEpoch
        // Every partition answered must be in the session; a full answer must cover them all.
        var answered = 0
        for topic in response.responses {
            for p in topic.partitions {
                let key =
                    topic.topicId == .zero
                    ? FetchSessionPartition(topic: topic.topic, partition: p.partitionIndex)
                    : FetchSessionPartition(topicId: topic.topicId, partition: p.partitionIndex)
                guard sessionPartitions[key] != nil else {
                    nextEpoch = FetchSessionCache.initialEpoch
                    return false
                }
                answered += 1
            }
        }
        if sentFull && answered != sessionPartitions.count {
            nextEpoch = FetchSessionCache.initialEpoch
            return false
        }
        if response.sessionId == 0 {
            // No session (none could be opened, or the leader closed it): full fetches, each
            // asking for one again.
            sessionId = 0
            nextEpoch = FetchSessionCache.initialEpoch
        } else if sentFull {
            sessionId = response.sessionId
            nextEpoch = FetchSessionCache.nextEpoch(FetchSessionCache.initialEpoch)
        } else {
            nextEpoch = FetchSessionCache.nextEpoch(nextEpoch)
        }
        return true
    }

    /// The round trip failed: the next fetch is full (and closes the session, if the leader
    /// still has it).
    package mutating func handleError() {
        nextEpoch = FetchSessionCache.initialEpoch
    }
}
