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
        let log = try PartitionLog(
            topicPartition: tp, directory: tempDirectory(), config: LogConfig(), disk: PosixDisk(), nowMs: 0)
        let follower = Partition(
            topicPartition: tp, topicId: KafkaUUID(high: 7, low: 7), log: log,
            registration: PartitionRegistration(
                replicas: [1, 2], isr: [1, 2], leader: 2, leaderEpoch: 0, partitionEpoch: 0),
            localId: 1, highWatermark: 0, nowMs: 0, onActions: { _, _ in })
        var settings = ReplicaFetchSettings()
        settings.backoffMs = 1000
        let fetchers = ReplicaFetchers(
            transport: transport, blocking: { loop, work in loop.submit(work) }, settings: settings, localId: 1,
            brokerEpoch: { 1 }, clock: clock,
            logger: Logger(label: "test"))
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
        try log.delete()
    }
}
