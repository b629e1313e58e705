import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelMetadata
import RunnelTestSupport
import RunnelWire
import Testing

@testable import RunnelBroker

/// A controller channel these tests never reach.
private struct UnreachableController: ControllerChannel {
    let loop = EmbeddedEventLoop()
    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        loop.makeFailedFuture(CancellationError())
    }
}

private struct StillClock: Clock {
    func wallMs() -> TimestampMs { 1_000_000 }
    func monotonicMs() -> Int64 { 1_000 }
}

/// The broker's publish executor, run when the test says.
private final class HeldExecutor: Sendable {
    private let work = NIOLockedValueBox<[@Sendable () -> Void]>([])
    func submit(_ item: @escaping @Sendable () -> Void) { work.withLockedValue { $0.append(item) } }
    /// Runs what was submitted; gives how many items that was.
    func run() -> Int {
        let items = work.withLockedValue { items in
            defer { items.removeAll() }
            return items
        }
        for item in items { item() }
        return items.count
    }
}

/// Broker 1 on a fresh log dir, its replicas applied by `executor`, and the image it was given.
private final class PublishFixture {
    let logs: LogManager
    let executor = HeldExecutor()
    let broker: Broker
    var image = MetadataImage.empty
    var offset: Int64 = 0

    init() throws {
        logs = try LogManager(
            logDirs: [scratchDirectory("publish")], defaultConfig: LogConfig(), disk: PosixDisk(), nowMs: 0)
        let settings = BrokerSettings(
            nodeId: 1, clusterId: "c", advertisedListeners: [.init(name: "PLAINTEXT", host: "h", port: 9092)],
            interBrokerListener: "PLAINTEXT", staticConfig: [:])
        let executor = self.executor
        broker = Broker(
            settings: settings, logManager: logs, controller: UnreachableController(), clock: StillClock(),
            logger: Logger(label: "test"), publishExecutor: { executor.submit($0) })
    }

    /// Commits `records` as one delta and publishes it, as the metadata log does.
    func publish(_ records: [MetadataRecord]) {
        var delta = MetadataDelta(image)
        for record in records {
            delta.replay(record, offset: offset, epoch: 1)
            offset += 1
        }
        image = delta.apply()
        broker.publish(delta: delta, image: image)
    }

    /// Broker 1 registered at epoch 5, its registration committed and applied.
    func register() {
        broker.registered(brokerEpoch: 5)
        publish([
            .registerBroker(
                RegisterBrokerRecord(
                    brokerId: 1, incarnationId: KafkaUUID(high: 1, low: 1), brokerEpoch: 5,
                    endPoints: [.init(name: "PLAINTEXT", host: "h", port: 9092, securityProtocol: 0)], rack: nil,
                    fenced: false))
        ])
        _ = executor.run()
    }

    static func partition(_ index: Int32, of topic: KafkaUUID) -> MetadataRecord {
        .partition(
            PartitionRecord(
                partitionId: index, topicId: topic, replicas: [1], isr: [1], leader: 1, leaderEpoch: 0,
                partitionEpoch: 0))
    }
}

@Suite("Metadata publishing")
struct MetadataPublishTests {
    @Test("a published image answers at once; the local replicas follow it on the publish executor")
    func imageBeforeReplicas() throws {
        let f = try PublishFixture()
        f.register()
        let a = KafkaUUID(high: 7, low: 1)
        f.publish([.topic(TopicRecord(name: "a", topicId: a)), PublishFixture.partition(0, of: a)])
        // Metadata answers with the new image before the replica is open (Kafka's order).
        #expect(f.broker.image.topic(named: "a")?.partitions[0]?.leader == 1)
        #expect(f.broker.partition(TopicPartition("a", 0)) == nil)
        // Heartbeats report the offset the replicas follow, so the controller does not unfence
        // (and the server does not let clients in) before the replicas are open.
        #expect(f.broker.appliedMetadataOffset < f.broker.image.provenance.lastOffset)
        // A forwarded change is answered only once the replicas follow the image.
        let loop = EmbeddedEventLoop()
        let waited = NIOLockedValueBox(false)
        f.broker.awaitImage(on: loop, timeoutMs: 60_000) { $0.topic(named: "a") != nil }.whenSuccess {
            waited.withLockedValue { $0 = true }
        }
        loop.run()
        #expect(!waited.withLockedValue { $0 })
        #expect(f.executor.run() == 1)
        loop.run()
        #expect(waited.withLockedValue { $0 })
        #expect(f.broker.appliedMetadataOffset == f.broker.image.provenance.lastOffset)
        #expect(f.broker.partition(TopicPartition("a", 0))?.isLeader == true)
        #expect(f.logs.topicId(of: TopicPartition("a", 0)) == a)
    }

    @Test("heartbeats report no applied offset until the replicas of the broker's registration are open")
    func fencedUntilReplicasOpen() throws {
        let f = try PublishFixture()
        // The local log replayed at start-up: broker 1 leads "a".
        let a = KafkaUUID(high: 7, low: 2)
        f.publish([.topic(TopicRecord(name: "a", topicId: a)), PublishFixture.partition(0, of: a)])
        _ = f.executor.run()
        // Its new registration commits (and is published) before the server learns its epoch,
        // as when the commit outruns the registration's answer.
        let epoch = f.offset
        f.publish([
            .registerBroker(
                RegisterBrokerRecord(
                    brokerId: 1, incarnationId: KafkaUUID(high: 1, low: 2), brokerEpoch: epoch,
                    endPoints: [.init(name: "PLAINTEXT", host: "h", port: 9092, securityProtocol: 0)], rack: nil,
                    fenced: true))
        ])
        _ = f.executor.run()
        #expect(f.broker.partition(TopicPartition("a", 0)) == nil)
        // The controller unfences once the reported offset reaches the epoch: not yet.
        #expect(f.broker.appliedMetadataOffset < epoch)
        f.broker.registered(brokerEpoch: epoch)
        #expect(f.broker.appliedMetadataOffset < epoch)
        #expect(f.executor.run() == 1)
        #expect(f.broker.appliedMetadataOffset >= epoch)
        #expect(f.broker.partition(TopicPartition("a", 0))?.isLeader == true)

        // Clients are let in once the replicas follow the image that unfences the broker.
        let loop = EmbeddedEventLoop()
        let unfenced = NIOLockedValueBox(false)
        f.broker.awaitReplicasUnfenced(brokerEpoch: epoch, on: loop, timeoutMs: 60_000).whenSuccess {
            unfenced.withLockedValue { $0 = true }
        }
        var change = BrokerRegistrationChangeRecord(brokerId: 1, brokerEpoch: epoch)
        change.fenced = -1
        f.publish([.brokerRegistrationChange(change)])
        loop.run()
        #expect(f.broker.image.brokers[NodeID(1)]?.fenced == false)
        #expect(!unfenced.withLockedValue { $0 })
        #expect(f.executor.run() == 1)
        loop.run()
        #expect(unfenced.withLockedValue { $0 })
    }

    @Test("a group's coordinator is not named before the broker's replicas and group host follow the image")
    func coordinatorAfterReplicas() throws {
        let f = try PublishFixture()
        let loop = EmbeddedEventLoop()
        f.broker.startGroups(on: loop)
        f.register()
        let offsets = KafkaUUID(high: 9, low: 1)
        f.publish([
            .topic(TopicRecord(name: OffsetsTopic.name, topicId: offsets)), PublishFixture.partition(0, of: offsets),
        ])
        // Shown, not yet taken up here: a client is told to come back, not NOT_COORDINATOR
        // (which librdkafka's OffsetFetch for an assign() does not retry).
        #expect(f.broker.image.topic(named: OffsetsTopic.name) != nil)
        #expect(f.broker.groups.check("g") == .coordinatorNotAvailable)
        #expect(f.executor.run() == 1)
        loop.run()
        #expect(f.broker.groups.check("g") == nil)
    }

    @Test("changes published while the replicas lag are applied in one pass, in the log's order")
    func changesInARow() throws {
        let f = try PublishFixture()
        f.register()
        let a = KafkaUUID(high: 7, low: 1), b = KafkaUUID(high: 7, low: 2)
        f.publish([.topic(TopicRecord(name: "a", topicId: a)), PublishFixture.partition(0, of: a)])
        f.publish([PublishFixture.partition(1, of: a)])
        #expect(f.executor.run() == 1)
        #expect(f.broker.partition(TopicPartition("a", 0)) != nil)
        #expect(f.broker.partition(TopicPartition("a", 1)) != nil)
        // Deleted and made again under the same name before the replicas caught up: the new
        // topic's replica, on a fresh log; the old one's second partition gone.
        f.publish([.removeTopic(RemoveTopicRecord(topicId: a))])
        f.publish([.topic(TopicRecord(name: "a", topicId: b)), PublishFixture.partition(0, of: b)])
        #expect(f.broker.image.topic(named: "a")?.id == b)
        #expect(f.broker.partition(TopicPartition("a", 0))?.topicId == a)
        #expect(f.executor.run() == 1)
        #expect(f.broker.partition(TopicPartition("a", 0))?.topicId == b)
        #expect(f.broker.partition(TopicPartition("a", 1)) == nil)
        #expect(f.logs.topicId(of: TopicPartition("a", 0)) == b)
        #expect(f.logs.topicPartitions.count == 1)
        // Made and deleted before the replicas caught up: nothing is opened.
        let c = KafkaUUID(high: 7, low: 3)
        f.publish([.topic(TopicRecord(name: "c", topicId: c)), PublishFixture.partition(0, of: c)])
        f.publish([.removeTopic(RemoveTopicRecord(topicId: c))])
        #expect(f.executor.run() == 1)
        #expect(f.broker.partition(TopicPartition("c", 0)) == nil)
        #expect(f.logs.topicPartitions.count == 1)
    }
}
