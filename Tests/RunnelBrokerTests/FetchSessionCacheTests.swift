// The incremental fetch session rules (KIP-227) as Kafka's FetchManager, FetchSessionCache and
// CachedPartition keep them, on the pure cache with the time passed in: what a request's session
// id and epoch mean, how an incremental request changes its session, which partitions an
// incremental answer carries, and which session a new one may evict.
import NIOCore
import RunnelCore
import RunnelWire
import Testing
@testable import RunnelBroker

private func part(_ partition: Int32, offset: Int64 = 0, topic: String = "t") -> FetchSessionCache.Entry {
    var request = FetchRequest.FetchPartition()
    request.partition = partition
    request.fetchOffset = offset
    request.partitionMaxBytes = 1_048_576
    return .init(FetchSessionPartition(topic: topic, partition: partition), request)
}

private func answer(
    hw: Int64 = 10, lso: Int64 = 10, logStart: Int64 = 0, bytes: Int = 0, error: ErrorCode = .none
) -> FetchResponse.PartitionData {
    var data = FetchResponse.PartitionData()
    data.highWatermark = hw
    data.lastStableOffset = lso
    data.logStartOffset = logStart
    data.errorCode = error.rawValue
    data.records = bytes == 0 ? .empty : Records(ByteBuffer(repeating: 1, count: bytes))
    return data
}

/// Opens a session over `entries` as an answered full fetch would, each answered with `answer()`.
private func open(
    _ cache: inout FetchSessionCache, _ entries: [FetchSessionCache.Entry], privileged: Bool = false, nowMs: Int64 = 0
) -> Int32 {
    #expect(
        cache.newContext(
            sessionId: 0, epoch: 0, usesTopicIds: false, partitions: [], forgotten: [], nowMs: nowMs) == .full)
    return cache.createSession(
        privileged: privileged, usesTopicIds: false, answers: entries.map { ($0.key, $0.request, answer()) },
        nowMs: nowMs)
}

private func incremental(
    _ cache: inout FetchSessionCache, _ id: Int32, epoch: Int32, _ entries: [FetchSessionCache.Entry] = [],
    forget: [FetchSessionPartition] = [], usesTopicIds: Bool = false, nowMs: Int64 = 0
) -> FetchSessionCache.Context {
    cache.newContext(
        sessionId: id, epoch: epoch, usesTopicIds: usesTopicIds, partitions: entries, forgotten: forget, nowMs: nowMs)
}

/// An incremental context's session id, epoch and what it fetches, comparable in tests.
private struct Fetched: Equatable {
    var id: Int32
    var epoch: Int32
    var entries: [FetchSessionCache.Entry]
}

extension FetchSessionCache.Context {
    fileprivate var fetched: Fetched? {
        guard case .incremental(let id, let epoch, let partitions) = self else { return nil }
        return Fetched(id: id, epoch: epoch, entries: partitions.map(\.entry))
    }
}

@Suite("Fetch sessions")
struct FetchSessionCacheTests {
    @Test("session id 0 with epoch 0 is a full fetch that opens a session at epoch 1; with epoch -1 it opens none")
    func initialAndFinal() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        #expect(
            cache.newContext(sessionId: 0, epoch: -1, usesTopicIds: false, partitions: [], forgotten: [], nowMs: 0)
                == .sessionless)
        #expect(cache.count == 0)
        let id = open(&cache, [part(0), part(1)])
        #expect(id > 0)
        #expect(cache.session(id)?.epoch == 1)
        #expect(cache.partitionsCached == 2)
    }

    @Test("an incremental fetch must name a live session and its epoch; the epoch moves on with each one")
    func incrementalEpochs() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        let id = open(&cache, [part(0), part(1)])
        #expect(incremental(&cache, id &+ 1, epoch: 1) == .sessionError(.fetchSessionIdNotFound))
        #expect(incremental(&cache, id, epoch: 2) == .sessionError(.invalidFetchSessionEpoch))
        #expect(incremental(&cache, 0, epoch: 3) == .sessionError(.invalidFetchSessionEpoch))
        #expect(
            incremental(&cache, id, epoch: 1, usesTopicIds: true) == .sessionError(.fetchSessionTopicIdError),
            "a session opened by names is not used by a request naming topic ids")
        #expect(incremental(&cache, id, epoch: 1).fetched == Fetched(id: id, epoch: 2, entries: [part(0), part(1)]))
        #expect(incremental(&cache, id, epoch: 1) == .sessionError(.invalidFetchSessionEpoch), "a replayed request")
        guard case .incremental(_, 3, _) = incremental(&cache, id, epoch: 2) else {
            Issue.record("epoch 2 follows epoch 1")
            return
        }
    }

    @Test("the epoch after Int32.max is 1, never 0 (INITIAL) or negative")
    func epochWraps() {
        #expect(FetchSessionCache.nextEpoch(.max) == 1)
        #expect(FetchSessionCache.nextEpoch(0) == 1)
        #expect(FetchSessionCache.nextEpoch(-1) == -1)
    }

    @Test("a full fetch naming a session closes it: epoch -1 opens no other, epoch 0 opens a new one")
    func fullFetchClosesSession() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        let first = open(&cache, [part(0)])
        #expect(incremental(&cache, first, epoch: -1) == .sessionless)
        #expect(cache.session(first) == nil)
        #expect(cache.partitionsCached == 0)
        let second = open(&cache, [part(0)])
        #expect(incremental(&cache, second, epoch: 0) == .full)
        #expect(cache.session(second) == nil)
    }

    @Test("an incremental request adds and updates partitions, forgets others, and a session left empty closes")
    func addUpdateForget() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        let id = open(&cache, [part(0, offset: 5), part(1, offset: 7)])
        let context = incremental(&cache, id, epoch: 1, [part(2), part(0, offset: 9)], forget: [part(1).key])
        #expect(context.fetched == Fetched(id: id, epoch: 2, entries: [part(0, offset: 9), part(2)]))
        #expect(cache.partitionsCached == 2)
        #expect(
            incremental(&cache, id, epoch: 2).fetched
                == Fetched(id: id, epoch: 3, entries: [part(0, offset: 9), part(2)]),
            "a partition not sent again is fetched from its cached offset")
        #expect(incremental(&cache, id, epoch: 3, forget: [part(0).key, part(2).key]) == .sessionless)
        #expect(cache.session(id) == nil)
        #expect(cache.partitionsCached == 0)
    }

    @Test(
        "an incremental answer carries only partitions with records, errors, or a moved high watermark, LSO or log start"
    )
    func incrementalAnswerFiltering() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        let entries = (0..<6).map { part(Int32($0)) }
        let id = open(&cache, entries)
        _ = incremental(&cache, id, epoch: 1)
        let keep = cache.answerIncremental(
            id: id, epoch: 2,
            answers: [
                answer(hw: 11, lso: 10), answer(), answer(bytes: 100), answer(logStart: 4),
                answer(hw: -1, lso: -1, logStart: -1, error: .notLeaderOrFollower), answer(lso: 9),
            ])
        #expect(keep == [true, false, true, true, true, true])
        #expect(
            cache.session(id)!.order == [1, 0, 2, 3, 4, 5].map { entries[$0].key },
            "answered partitions move to the end of the session, as Kafka rotates them")
        _ = incremental(&cache, id, epoch: 2)
        let again = cache.answerIncremental(
            id: id, epoch: 3,
            // In session order now: 1, 0, 2, 3, 4, 5.
            answers: [
                answer(), answer(hw: 11, lso: 10), answer(), answer(logStart: 4), answer(), answer(lso: 9),
            ])
        #expect(
            again == [false, false, false, false, true, false],
            "nothing changed but the error clearing, which is answered again")
    }

    @Test("an answer whose session was closed or moved on meanwhile is refused with the matching error")
    func lostSession() {
        var cache = FetchSessionCache(maxSessions: 10, seed: 1)
        let id = open(&cache, [part(0)])
        _ = incremental(&cache, id, epoch: 1)
        _ = incremental(&cache, id, epoch: 2)
        #expect(cache.answerIncremental(id: id, epoch: 2, answers: [answer()]) == nil)
        #expect(cache.lostSessionError(id: id) == .invalidFetchSessionEpoch)
        cache.remove(id)
        #expect(cache.answerIncremental(id: id, epoch: 3, answers: [answer()]) == nil)
        #expect(cache.lostSessionError(id: id) == .fetchSessionIdNotFound)
    }

    @Test("session ids are positive, unique in the cache, and replay with the seed; zero slots open no session")
    func sessionIds() {
        var a = FetchSessionCache(maxSessions: 500, seed: 42)
        var b = FetchSessionCache(maxSessions: 500, seed: 42)
        var ids: [Int32] = []
        for _ in 0..<500 {
            let id = open(&a, [part(0)])
            #expect(id == open(&b, [part(0)]))
            ids.append(id)
        }
        #expect(ids.allSatisfy { $0 > 0 })
        #expect(Set(ids).count == 500)
        var none = FetchSessionCache(maxSessions: 0, seed: 1)
        #expect(open(&none, [part(0)]) == 0)
    }

    @Test("a full cache: a stale session is evicted first; else a new session with more partitions evicts an old one")
    func evictionBySize() {
        let eviction = FetchSessionCache.evictionMsDefault
        var cache = FetchSessionCache(maxSessions: 2, seed: 7)
        let small = open(&cache, [part(0)], nowMs: 0)
        let big = open(&cache, [part(0), part(1), part(2)], nowMs: 0)
        // Both young: nothing may go.
        #expect(open(&cache, (0..<10).map { part($0) }, nowMs: 1_000) == 0)
        // Both old but used lately: the new one must have more partitions than the smallest.
        _ = incremental(&cache, small, epoch: 1, nowMs: eviction + 1_000)
        _ = incremental(&cache, big, epoch: 1, nowMs: eviction + 1_000)
        #expect(open(&cache, [part(5)], nowMs: eviction + 2_000) == 0, "as many partitions is not more")
        let two = open(&cache, [part(5), part(6)], nowMs: eviction + 2_000)
        #expect(two != 0)
        #expect(cache.session(small) == nil && cache.session(big) != nil)
        #expect(cache.evictions == 1)
        // A stale session goes whatever its size.
        _ = incremental(&cache, two, epoch: 1, nowMs: 3 * eviction)
        #expect(open(&cache, [part(9)], nowMs: 3 * eviction) != 0)
        #expect(cache.session(big) == nil, "unused since \(eviction + 1_000) ms, so stale")
        #expect(cache.evictions == 2)
        #expect(cache.partitionsCached == 3)
    }

    @Test("a follower's session evicts a consumer's at any age; a consumer's never evicts a young follower's")
    func followersArePrivileged() {
        var cache = FetchSessionCache(maxSessions: 1, seed: 3)
        let consumer = open(&cache, (0..<50).map { part($0) }, nowMs: 0)
        let follower = open(&cache, [part(0)], privileged: true, nowMs: 10)
        #expect(follower != 0)
        #expect(cache.session(consumer) == nil)
        #expect(open(&cache, (0..<50).map { part($0) }, nowMs: 20) == 0)
        #expect(cache.session(follower) != nil)
    }
}
