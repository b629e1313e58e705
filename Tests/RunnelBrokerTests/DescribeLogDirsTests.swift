// DescribeLogDirs as Kafka's ReplicaManager.describeLogDirs answers it: every log dir of the
// broker, each with its space and the asked partitions it holds (all of them for a null topic
// list), offset lag max(HW - LEO, 0) for a hosted replica and -1 for a log no partition owns,
// KAFKA_STORAGE_ERROR for a dir whose space cannot be read; and each version's bytes on the wire.
import NIOCore
import RunnelCore
import RunnelLog
import RunnelWire
import Testing
@testable import RunnelBroker

@Suite("DescribeLogDirs")
struct DescribeLogDirsTests {
    typealias Replica = Broker.ReplicaState

    static let dirs: [Broker.LogDirState] = [
        .init(
            path: "/data/a", space: DiskSpace(totalBytes: 1000, usableBytes: 400),
            replicas: [
                Replica(
                    topicPartition: TopicPartition("orders", 2), sizeBytes: 300, logEndOffset: 10, highWatermark: 10),
                Replica(topicPartition: TopicPartition("orders", 0), sizeBytes: 100, logEndOffset: 7, highWatermark: 9),
                Replica(topicPartition: TopicPartition("audit", 1), sizeBytes: 50, logEndOffset: 3, highWatermark: nil),
            ]),
        .init(
            path: "/data/b", space: DiskSpace(totalBytes: 2000, usableBytes: 1500),
            replicas: [
                Replica(topicPartition: TopicPartition("orders", 1), sizeBytes: 0, logEndOffset: 0, highWatermark: 0)
            ]),
    ]

    @Test("a null topic list describes every partition of every dir, topics and partitions in order")
    func allPartitions() {
        let results = Broker.describeLogDirs(Self.dirs, requested: nil)
        #expect(results.map(\.logDir) == ["/data/a", "/data/b"])
        #expect(results.map(\.errorCode) == [0, 0])
        #expect(results.map(\.totalBytes) == [1000, 2000])
        #expect(results.map(\.usableBytes) == [400, 1500])
        #expect(results[0].topics.map(\.name) == ["audit", "orders"])
        let orders = results[0].topics[1].partitions
        #expect(orders.map(\.partitionIndex) == [0, 2])
        #expect(orders.map(\.partitionSize) == [100, 300])
        #expect(orders.map(\.isFutureKey) == [false, false])
        #expect(results[1].topics.map(\.name) == ["orders"])
        #expect(results[1].topics[0].partitions.map(\.partitionIndex) == [1])
    }

    @Test("offset lag is how far the log end is behind the high watermark, 0 at or past it, -1 for an unowned log")
    func offsetLag() {
        let results = Broker.describeLogDirs(Self.dirs, requested: nil)
        #expect(results[0].topics[0].partitions.map(\.offsetLag) == [-1], "audit-1: no hosted partition")
        #expect(
            results[0].topics[1].partitions.map(\.offsetLag) == [2, 0],
            "orders-0 a follower 2 behind; orders-2 a leader")
        #expect(
            Broker.offsetLag(
                Replica(topicPartition: TopicPartition("t", 0), sizeBytes: 0, logEndOffset: 12, highWatermark: 9))
                == 0, "a leader's end past the high watermark is no lag")
    }

    @Test("asked partitions only: every dir is still listed, topics without an asked partition are left out")
    func requestedPartitions() {
        let results = Broker.describeLogDirs(
            Self.dirs, requested: [TopicPartition("orders", 2), TopicPartition("orders", 1), TopicPartition("gone", 0)])
        #expect(results.map(\.logDir) == ["/data/a", "/data/b"])
        #expect(results[0].topics.map(\.name) == ["orders"])
        #expect(results[0].topics[0].partitions.map(\.partitionIndex) == [2])
        #expect(results[1].topics[0].partitions.map(\.partitionIndex) == [1])
        let none = Broker.describeLogDirs(Self.dirs, requested: [])
        #expect(none.map(\.topics.count) == [0, 0], "an empty list asks for nothing")
        #expect(none.map(\.totalBytes) == [1000, 2000], "but still reports the dirs")
    }

    @Test("a dir whose space cannot be read answers KAFKA_STORAGE_ERROR; unknown space is -1")
    func unreadableAndUnknownSpace() {
        var dirs = Self.dirs
        dirs[0].spaceUnreadable = true
        dirs[1].space = nil
        let results = Broker.describeLogDirs(dirs, requested: nil)
        #expect(results[0].errorCode == ErrorCode.kafkaStorageError.rawValue)
        #expect(results[0].topics.isEmpty)
        #expect(results[1].errorCode == 0)
        #expect(results[1].totalBytes == -1 && results[1].usableBytes == -1)
    }

    @Test("the response round-trips in every version; the error code is on the wire from v3, the space from v4")
    func wireVersions() throws {
        let response = DescribeLogDirsResponse(
            errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
            results: Broker.describeLogDirs(Self.dirs, requested: nil))
        for version in DescribeLogDirsResponse.versions {
            var writer = WireWriter()
            response.write(to: &writer, version: version)
            var reader = WireReader(writer.buffer)
            let back = try DescribeLogDirsResponse(from: &reader, version: version)
            #expect(back.errorCode == (version >= 3 ? response.errorCode : 0), "v\(version)")
            #expect(back.results.map(\.totalBytes) == (version >= 4 ? [1000, 2000] : [-1, -1]), "v\(version)")
            #expect(back.results.flatMap(\.topics).flatMap(\.partitions).map(\.offsetLag) == [-1, 2, 0, 0])
        }
    }
}
