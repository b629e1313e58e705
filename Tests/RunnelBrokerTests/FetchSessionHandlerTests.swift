// The fetching side of a fetch session (Kafka's FetchSessionHandler), which the replica fetchers
// keep with each leader: a full fetch with epoch 0 first, then incremental fetches that send
// only new or changed partitions and forget dropped ones; any session error, a mismatched answer
// or a failed round trip makes the next fetch full again. Paired with the broker's cache, the
// partitions the leader fetches are always exactly those the follower asked for in full.
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelBroker

private let topicA = KafkaUUID(high: 1, low: 1)
private let topicB = KafkaUUID(high: 2, low: 2)

/// A follower's full request: `partitions` of topic A at the offsets given, plus `b` of topic B.
private func fullRequest(_ offsets: [Int32: Int64], b: [Int32: Int64] = [:]) -> FetchRequest {
    var request = FetchRequest()
    request.replicaState = .init(replicaId: 2, replicaEpoch: 5)
    for (id, set) in [(topicA, offsets), (topicB, b)] where !set.isEmpty {
        var topic = FetchRequest.FetchTopic()
        topic.topicId = id
        topic.topic = id == topicA ? "a" : "b"
        topic.partitions = set.keys.sorted().map { p in
            var part = FetchRequest.FetchPartition()
            part.partition = p
            part.fetchOffset = set[p]!
            part.partitionMaxBytes = 1_048_576
            return part
        }
        request.topics.append(topic)
    }
    return request
}

/// The leader's answer to `request` with every partition of `partitions` (id, partition).
private func answer(_ partitions: [(KafkaUUID, Int32)], sessionId: Int32, error: ErrorCode = .none) -> FetchResponse {
    var response = FetchResponse()
    response.errorCode = error.rawValue
    response.sessionId = sessionId
    for (id, p) in partitions {
        if let i = response.responses.firstIndex(where: { $0.topicId == id }) {
            response.responses[i].partitions.append(.init(partitionIndex: p))
        } else {
            response.responses.append(.init(topicId: id, partitions: [.init(partitionIndex: p)]))
        }
    }
    return response
}

private func sent(_ request: FetchRequest) -> Set<String> {
    Set(
        request.topics.flatMap { t in
            t.partitions.map { "\(t.topicId == topicA ? "a" : "b")\($0.partition)@\($0.fetchOffset)" }
        })
}

@Suite("Fetch session handler")
struct FetchSessionHandlerTests {
    @Test("full first with epoch 0; then only new or changed partitions, dropped ones forgotten, the epoch moving on")
    func incrementalRequests() {
        var handler = FetchSessionHandler()
        let first = handler.prepare(fullRequest([0: 0, 1: 0, 2: 0]))
        #expect((first.sessionId, first.sessionEpoch) == (0, 0))
        #expect(sent(first) == ["a0@0", "a1@0", "a2@0"])
        let used1 = handler.handleResponse(answer([(topicA, 0), (topicA, 1), (topicA, 2)], sessionId: 9), sent: first)
        #expect(used1)

        let second = handler.prepare(fullRequest([0: 0, 1: 5, 2: 0]))
        #expect((second.sessionId, second.sessionEpoch) == (9, 1))
        #expect(sent(second) == ["a1@5"], "only the partition whose offset moved")
        #expect(second.forgottenTopicsData.isEmpty)
        let used2 = handler.handleResponse(answer([(topicA, 1)], sessionId: 9), sent: second)
        #expect(used2)

        let third = handler.prepare(fullRequest([0: 0, 1: 5], b: [3: 7]))
        #expect(third.sessionEpoch == 2)
        #expect(sent(third) == ["b3@7"])
        #expect(third.forgottenTopicsData.map { ($0.topicId, $0.partitions) }.first! == (topicA, [2]))
        let used3 = handler.handleResponse(answer([], sessionId: 9), sent: third)
        #expect(used3)
        #expect(handler.nextEpoch == 3)
    }

    @Test("a session error, a mismatched answer or a failed round trip makes the next fetch full")
    func fallBackToFull() {
        var handler = FetchSessionHandler()
        let full = handler.prepare(fullRequest([0: 0]))
        let used4 = handler.handleResponse(answer([(topicA, 0)], sessionId: 4), sent: full)
        #expect(used4)
        let incremental = handler.prepare(fullRequest([0: 1]))
        let used5 = handler.handleResponse(
            answer([], sessionId: 0, error: .invalidFetchSessionEpoch), sent: incremental)
        #expect(!used5)
        let retry = handler.prepare(fullRequest([0: 1]))
        #expect((retry.sessionId, retry.sessionEpoch) == (4, 0), "the full fetch names the old session, closing it")
        #expect(sent(retry) == ["a0@1"])
        let used6 = handler.handleResponse(answer([], sessionId: 0, error: .fetchSessionIdNotFound), sent: retry)
        #expect(!used6)
        let fresh = handler.prepare(fullRequest([0: 1]))
        #expect((fresh.sessionId, fresh.sessionEpoch) == (0, 0))
        let stray = handler.handleResponse(answer([(topicB, 0)], sessionId: 6), sent: fresh)
        #expect(!stray, "an answer for a partition not asked for is refused")
        let again = handler.prepare(fullRequest([0: 1]))
        #expect(again.sessionEpoch == 0)
        let used7 = handler.handleResponse(answer([(topicA, 0)], sessionId: 6), sent: again)
        #expect(used7)
        _ = handler.prepare(fullRequest([0: 2]))
        handler.handleError()
        #expect(handler.nextIsFull)
        let closing = handler.prepare(fullRequest([0: 2]))
        #expect(closing.sessionId == 6)
    }

    @Test("a leader that opens no session gets full fetches, each asking for one")
    func noSessionGranted() {
        var handler = FetchSessionHandler()
        for _ in 0..<3 {
            let request = handler.prepare(fullRequest([0: 0, 1: 0]))
            #expect((request.sessionId, request.sessionEpoch) == (0, 0))
            #expect(sent(request).count == 2)
            let used8 = handler.handleResponse(answer([(topicA, 0), (topicA, 1)], sessionId: 0), sent: request)
            #expect(used8)
        }
    }

    @Test("paired with the broker's cache, the leader fetches exactly the partitions and offsets the follower wants")
    func pairedWithCache() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 5)
        var handler = FetchSessionHandler()
        var rng = SeededRandom(seed: 11)
        var wanted: [Int32: Int64] = [0: 0, 1: 0, 2: 0, 3: 0]
        for round in 0..<200 {
            // The follower's positions move, and partitions come and go.
            for p in Array(wanted.keys) where Int.random(in: 0..<4, using: &rng) == 0 { wanted[p]! += 1 }
            let p = Int32.random(in: 0..<8, using: &rng)
            if wanted[p] == nil { wanted[p] = 0 } else if wanted.count > 1 && round % 5 == 0 { wanted[p] = nil }
            let full = fullRequest(wanted)
            let request = handler.prepare(full)
            let entries = request.topics.flatMap { t in
                t.partitions.map {
                    FetchSessionCache.Entry(FetchSessionPartition(topicId: t.topicId, partition: $0.partition), $0)
                }
            }
            let forgotten = request.forgottenTopicsData.flatMap { t in
                t.partitions.map { FetchSessionPartition(topicId: t.topicId, partition: $0) }
            }
            let context = cache.newContext(
                sessionId: request.sessionId, epoch: request.sessionEpoch, usesTopicIds: true, partitions: entries,
                forgotten: forgotten, nowMs: Int64(round))
            var fetched: [Int32: Int64] = [:]
            var response: FetchResponse
            switch context {
            case .full:
                for e in entries { fetched[e.key.partition] = e.request.fetchOffset }
                let data = entries.map {
                    ($0.key, $0.request, FetchResponse.PartitionData(partitionIndex: $0.key.partition))
                }
                let id = cache.createSession(privileged: true, usesTopicIds: true, answers: data, nowMs: Int64(round))
                response = answer(entries.map { (topicA, $0.key.partition) }, sessionId: id)
            case .incremental(let id, let epoch, let partitions):
                for e in partitions { fetched[e.key.partition] = e.request.fetchOffset }
                // Every partition's high watermark moves now and then, so some are answered.
                let data = partitions.map { e -> FetchResponse.PartitionData in
                    var d = FetchResponse.PartitionData(partitionIndex: e.key.partition)
                    d.highWatermark = Int64(round / 3)
                    return d
                }
                let keep = cache.answerIncremental(id: id, epoch: epoch, answers: data)!
                response = answer(zip(partitions, keep).filter(\.1).map { (topicA, $0.0.key.partition) }, sessionId: id)
            default:
                Issue.record("round \(round): \(context)")
                return
            }
            #expect(fetched == wanted, "round \(round)")
            let used9 = handler.handleResponse(response, sent: request)
            #expect(used9, "round \(round)")
        }
        #expect(cache.count == 1, "one session all along")
    }
}
