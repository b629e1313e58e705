// The replica fetcher's retry timing, on an embedded event loop with a hand-moved clock: an
// answer that means the leader has not applied the partition's metadata yet (a new topic's
// UNKNOWN_TOPIC_ID) is fetched again after milliseconds, while other partition errors wait out
// replica.fetch.backoff.ms.
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker
@testable import RunnelLog

/// Monotonic time the test moves together with the embedded loop's.
final class HandClock: Clock, @unchecked Sendable {
    private let now = NIOLockedValueBox<Int64>(0)
    func wallMs() -> TimestampMs { now.withLockedValue { $0 } }
    func monotonicMs() -> Int64 { now.withLockedValue { $0 } }
    func advance(_ ms: Int64) { now.withLockedValue { $0 += ms } }
}

/// Answers every partition of every fetch with the error code the test sets.
final class ScriptedTransport: ReplicaTransport, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    var eventLoop: any EventLoop { loop }
    private let state = NIOLockedValueBox<(requests: Int, error: ErrorCode)>((0, .none))

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    var requests: Int { state.withLockedValue { $0.requests } }
    func answer(with error: ErrorCode) { state.withLockedValue { $0.error = error } }

    func fetch(
        from leader: Int32, _ request: FetchRequest, version: Int16, timeoutMs: Int64
    ) -> EventLoopFuture<FetchResponse> {
        let error = state.withLockedValue { s -> ErrorCode in
            s.requests += 1
            return s.error
        }
        var response = FetchResponse()
        for topic in request.topics {
            var answer = FetchResponse.FetchableTopicResponse(topic: "", topicId: topic.topicId)
            for p in topic.partitions {
                answer.partitions.append(
                    .init(
                        partitionIndex: p.partition, errorCode: error.rawValue, highWatermark: -1,
                        lastStableOffset: -1, logStartOffset: -1, abortedTransactions: nil))
            }
            response.responses.append(answer)
        }
        return loop.makeSucceededFuture(response)
    }
}

/// Broker 1 following `tp` from leader 2 (epoch 0, ISR [1, 2]) with a fetcher over `transport`,
/// stepped on an embedded loop; a failed fetch backs off 1 s.
func followerOfBroker2(
    _ tp: TopicPartition, topicId: KafkaUUID, _ transport: any ReplicaTransport, _ clock: HandClock,
    configure: (inout ReplicaFetchSettings) -> Void = { _ in }
) throws -> (Partition, ReplicaFetchers) {
    let log = try PartitionLog(
        topicPartition: tp, directory: tempDirectory(), config: LogConfig(), disk: PosixDisk(), nowMs: 0)
    let follower = Partition(
        topicPartition: tp, topicId: topicId, log: log,
        registration: PartitionRegistration(
            replicas: [1, 2], isr: [1, 2], leader: 2, leaderEpoch: 0, partitionEpoch: 0),
        localId: 1, highWatermark: 0, nowMs: 0, onActions: { _, _ in })
    var settings = ReplicaFetchSettings()
    settings.backoffMs = 1000
    configure(&settings)
    let fetchers = ReplicaFetchers(
        transport: transport, blocking: { loop, work in loop.submit(work) }, settings: settings, localId: 1,
        brokerEpoch: { 1 }, clock: clock, logger: Logger(label: "test"))
    return (follower, fetchers)
}

@Suite("Replica fetcher")
struct ReplicaFetcherTests {
    @Test(
        "a leader that does not know the partition yet is asked again within milliseconds; other errors wait the backoff"
    )
    func metadataLagRetry() throws {
        let loop = EmbeddedEventLoop()
        let clock = HandClock()
        let transport = ScriptedTransport(loop: loop)
        let tp = TopicPartition("fresh", 0)
        let (follower, fetchers) = try followerOfBroker2(tp, topicId: KafkaUUID(high: 7, low: 7), transport, clock)
        func advance(_ ms: Int64) {
            clock.advance(ms)
            loop.advanceTime(by: .milliseconds(ms))
        }

        transport.answer(with: .unknownTopicId)
        fetchers.reconcile([follower])
        loop.run()
        #expect(transport.requests == 1)
        advance(25)
        #expect(
            transport.requests == 2,
            "UNKNOWN_TOPIC_ID is retried after \(ReplicaFetchPlan.metadataLagRetryMs) ms, not the 1 s backoff")

        transport.answer(with: .kafkaStorageError)
        advance(25)
        #expect(transport.requests == 3)
        advance(500)
        #expect(transport.requests == 3, "a storage error holds the partition back for replica.fetch.backoff.ms")
        advance(500)
        #expect(transport.requests == 4)
        fetchers.stopAll()
        try follower.log.delete()
    }
}

/// Holds each fetch until the test answers it, like a leader with fetch sessions: with a session
/// id, or with a top-level error and no partitions.
final class HeldTransport: ReplicaTransport, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    var eventLoop: any EventLoop { loop }
    private let state = NIOLockedValueBox<
        (requests: [FetchRequest], pending: [EventLoopPromise<FetchResponse>], timeouts: [Int64])
    >(([], [], []))

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    var requests: [FetchRequest] { state.withLockedValue { $0.requests } }
    /// The answer timeout each fetch was sent with.
    var timeouts: [Int64] { state.withLockedValue { $0.timeouts } }

    func fetch(
        from leader: Int32, _ request: FetchRequest, version: Int16, timeoutMs: Int64
    ) -> EventLoopFuture<FetchResponse> {
        let promise = loop.makePromise(of: FetchResponse.self)
        state.withLockedValue {
            $0.requests.append(request)
            $0.pending.append(promise)
            $0.timeouts.append(timeoutMs)
        }
        return promise.futureResult
    }

    /// Answers the oldest fetch: every partition it names, idle, under `sessionId`; or `error` alone.
    func answer(sessionId: Int32 = 0, error: ErrorCode = .none) {
        let (request, promise) = state.withLockedValue { s in
            (s.requests[s.requests.count - s.pending.count], s.pending.removeFirst())
        }
        var response = FetchResponse()
        response.sessionId = sessionId
        response.errorCode = error.rawValue
        if error == .none {
            for topic in request.topics {
                response.responses.append(
                    .init(
                        topicId: topic.topicId,
                        partitions: topic.partitions.map {
                            .init(
                                partitionIndex: $0.partition, errorCode: 0, highWatermark: 0, lastStableOffset: 0,
                                logStartOffset: 0, abortedTransactions: nil, records: .empty)
                        }))
            }
        }
        promise.succeed(response)
    }
}

@Suite("Replica fetcher sessions")
struct ReplicaFetcherSessionTests {
    @Test(
        "a fetch waits for its answer the leader's park plus replica.socket.timeout.ms, but no longer than replica.lag.time.max.ms past the park"
    )
    func answerTimeout() throws {
        for (lagMs, expected) in [(30_000, 30_500), (5_000, 5_500)] as [(Int64, Int64)] {
            let loop = EmbeddedEventLoop()
            let transport = HeldTransport(loop: loop)
            let (follower, fetchers) = try followerOfBroker2(
                TopicPartition("timeouts", 0), topicId: KafkaUUID(high: 8, low: 8), transport, HandClock()
            ) {
                $0.waitMaxMs = 500
                $0.socketTimeoutMs = 30_000
                $0.lagTimeMaxMs = lagMs
            }
            fetchers.reconcile([follower])
            loop.run()
            #expect(transport.timeouts == [expected])
            fetchers.stopAll()
            try follower.log.delete()
        }
    }

    @Test(
        "a follower fetches in full with epoch 0, then incrementally; a session error makes the next fetch full, at once"
    )
    func sessionFallBack() throws {
        let loop = EmbeddedEventLoop()
        let clock = HandClock()
        let transport = HeldTransport(loop: loop)
        let tp = TopicPartition("sessions", 0)
        let (follower, fetchers) = try followerOfBroker2(tp, topicId: KafkaUUID(high: 9, low: 9), transport, clock)
        func session(_ i: Int) -> (Int32, Int32, Int) {
            let r = transport.requests[i]
            return (r.sessionId, r.sessionEpoch, r.topics.reduce(0) { $0 + $1.partitions.count })
        }

        fetchers.reconcile([follower])
        loop.run()
        #expect(transport.requests.count == 1)
        #expect(session(0) == (0, 0, 1), "the first fetch is full and asks for a session")
        transport.answer(sessionId: 7)
        loop.run()
        #expect(session(1) == (7, 1, 0), "nothing changed: an incremental fetch naming no partition")
        transport.answer(error: .fetchSessionIdNotFound)
        loop.run()
        #expect(transport.requests.count == 3, "a session error is not backed off")
        #expect(session(2) == (0, 0, 1), "the leader lost the session: a full fetch asking for a new one")
        transport.answer(sessionId: 8)
        loop.run()
        #expect(session(3) == (8, 1, 0))
        transport.answer(error: .invalidFetchSessionEpoch)
        loop.run()
        #expect(session(4) == (8, 0, 1), "out of step: a full fetch closing session 8 and asking for a new one")
        transport.answer(error: .notLeaderOrFollower)
        loop.run()
        #expect(transport.requests.count == 5, "another top-level error waits out replica.fetch.backoff.ms")
        clock.advance(1000)
        loop.advanceTime(by: .milliseconds(1000))
        #expect(session(5) == (8, 0, 1))
        fetchers.stopAll()
        transport.answer(sessionId: 9)
        loop.run()
        try follower.log.delete()
    }
}
