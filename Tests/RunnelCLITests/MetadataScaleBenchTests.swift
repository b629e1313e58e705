// `runnel bench metadata-scale` at a tiny size: the generator's image holds what it was asked
// for, the snapshot the bench writes loads back equal to it, and the failover and fence phases
// do what they claim, so the bench's figures are about a correct image.
import Foundation
import RunnelCore
import RunnelMetadata
import RunnelSnapshotStore
import Testing

@testable import runnel

@Suite struct MetadataScaleBenchTests {
    static let scale = MetadataScale(topics: 10, partitionsPerTopic: 100, replicationFactor: 3, brokers: 30)

    @Test("the replayed image has every broker, topic and partition, placed as the controller places them")
    func replayedImage() {
        var scale = Self.scale
        scale.recordsPerCommit = 77
        let image = scale.replay()
        #expect(image.brokers.count == 30)
        #expect(image.topicsById.count == 10)
        #expect(image.topicsById.values.reduce(0) { $0 + $1.partitionCount } == 1000)
        #expect(image.provenance.recordCount == 1 + 30 + 10 + 1000)
        #expect(image.offlinePartitionCount == 0)
        let p = image.partition(TopicPartition(MetadataScale.topicName(7), 42))
        #expect(p?.replicas.count == 3)
        #expect(p.map { Set($0.replicas).count } == 3)
        #expect(p?.isr == p?.replicas)
        #expect(p?.leader == p?.replicas.first)
        // Leaders spread over all brokers.
        var leaders = Set<Int32>()
        for topic in image.topicsById.values { for q in topic.partitions.values { leaders.insert(q.leader) } }
        #expect(leaders.count == 30)
    }

    @Test("the snapshot the bench writes loads back equal to the replayed image")
    func snapshotRoundTrip() throws {
        let directory = NSTemporaryDirectory() + "metadata-scale-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = try Self.scale.measure(directory: directory, keepSnapshot: true)
        #expect(report.verified)
        // The report says how the code was compiled, not where the binary lies.
        #if DEBUG
        let configuration = "debug"
        #else
        let configuration = "release"
        #endif
        #expect(report.buildConfiguration == configuration)
        #expect(report.lines[0].hasSuffix("\(configuration) build"))
        #expect(report.partitions == 1000)
        #expect(report.records == 1041)
        #expect(report.snapshotBytes > 0)
        let replayed = Self.scale.replay()
        // Fencing broker 1 moves every leadership it held, and no other.
        let ledByOne = replayed.topicsById.values.reduce(0) {
            $0 + $1.partitions.values.filter { $0.leader == 1 }.count
        }
        #expect(ledByOne > 0)
        #expect(report.leadersMoved == ledByOne)

        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
            SQLiteSnapshot.parse(fileName: $0) != nil
        }
        #expect(files.count == 1)
        let loaded = try SQLiteSnapshot.read(directory + "/" + files[0]).image
        #expect(loaded == replayed)
        let tp = TopicPartition(MetadataScale.topicName(3), 99)
        #expect(loaded.partition(tp) == replayed.partition(tp))
        #expect(loaded.partition(tp)?.leader == replayed.partition(tp)?.replicas.first)
        #expect(loaded.topicsById.values.reduce(0) { $0 + $1.partitionCount } == 1000)
    }

    @Test("a new active controller's work on the image leaves every broker's heartbeat without records")
    func failoverRuns() {
        let image = Self.scale.replay()
        let times = MetadataScale.failover(image: image, epoch: 2)
        #expect(times.resetMs >= 0 && times.sessionsMs >= 0 && times.heartbeatsMs >= 0)
    }
}
