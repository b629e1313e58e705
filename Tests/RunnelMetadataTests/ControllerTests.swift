// The controller's topic commands are pure: they return records and a response and change
// nothing until the records are replayed. These tests drive them against images built by replay,
// and check Kafka's validation errors and the replica placement rules.
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

func imageWithBrokers(_ ids: [Int32], racks: [String?]? = nil, fenced: Set<Int32> = []) -> MetadataImage {
    var delta = MetadataDelta(.empty)
    for (i, id) in ids.enumerated() {
        let record = RegisterBrokerRecord(
            brokerId: id, incarnationId: KafkaUUID(high: 1, low: UInt64(id)), brokerEpoch: Int64(i),
            endPoints: [.init(name: "PLAINTEXT", host: "h\(id)", port: 9092, securityProtocol: 0)],
            rack: racks?[i], fenced: fenced.contains(id))
        delta.replay(.registerBroker(record), offset: Int64(i), epoch: 1)
    }
    return delta.apply()
}

func controller(_ image: MetadataImage) -> QuorumController {
    QuorumController(
        image: image, settings: ControllerSettings(), resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: 1))
}

func createTopic(
    _ c: inout QuorumController, _ name: String, partitions: Int32, rf: Int16, configs: [(String, String)] = []
) -> CreateTopicsResponse.CreatableTopicResult {
    var request = CreateTopicsRequest()
    request.topics = [
        .init(
            name: name, numPartitions: partitions, replicationFactor: rf,
            configs: configs.map { .init(name: $0.0, value: $0.1) })
    ]
    var counter: UInt64 = 100
    let result = c.createTopics(
        request, version: 7,
        newId: {
            counter += 1; return KafkaUUID(high: 7, low: counter)
        })
    let base = c.image.provenance.lastOffset + 1
    c.replay(result.records.enumerated().map { ($0.element, base + Int64($0.offset)) }, epoch: 1)
    return result.response.topics[0]
}

@Suite("Controller")
struct ControllerTests {
    @Test("CreateTopics writes Topic, Config and Partition records and spreads leaders")
    func createTopics() {
        var c = controller(imageWithBrokers([1, 2, 3]))
        let result = createTopic(&c, "orders", partitions: 6, rf: 3, configs: [("retention.ms", "1000")])
        #expect(result.errorCode == 0)
        #expect(result.numPartitions == 6 && result.replicationFactor == 3)
        let topic = c.image.topic(named: "orders")!
        #expect(topic.partitionCount == 6)
        var leaders: [Int32: Int] = [:]
        for (_, p) in topic.partitions {
            #expect(Set(p.replicas).count == 3)
            #expect(p.isr == p.replicas)
            #expect(p.leader == p.replicas[0])
            leaders[p.leader, default: 0] += 1
        }
        #expect(leaders.values.allSatisfy { $0 == 2 }, "6 partitions over 3 brokers: 2 leaders each")
        #expect(c.image.configs(of: ConfigResource(.topic, "orders"))["retention.ms"] == "1000")
        #expect(result.configs?.first { $0.name == "retention.ms" }?.value == "1000")
    }

    @Test("CreateTopics refuses what Kafka refuses")
    func createTopicsErrors() {
        var c = controller(imageWithBrokers([1]))
        #expect(createTopic(&c, "a", partitions: 1, rf: 1).errorCode == 0)
        #expect(createTopic(&c, "a", partitions: 1, rf: 1).errorCode == ErrorCode.topicAlreadyExists.rawValue)
        #expect(createTopic(&c, "b", partitions: 0, rf: 1).errorCode == ErrorCode.invalidPartitions.rawValue)
        #expect(createTopic(&c, "c", partitions: 1, rf: 3).errorCode == ErrorCode.invalidReplicationFactor.rawValue)
        #expect(
            createTopic(&c, "bad name!", partitions: 1, rf: 1).errorCode == ErrorCode.invalidTopicException.rawValue)
        #expect(
            createTopic(&c, "d", partitions: 1, rf: 1, configs: [("retention.ms", "soon")]).errorCode
                == ErrorCode.invalidConfig.rawValue)
        #expect(
            createTopic(&c, "e", partitions: 1, rf: 1, configs: [("no.such.config", "1")]).errorCode
                == ErrorCode.invalidConfig.rawValue)
        _ = createTopic(&c, "x.y", partitions: 1, rf: 1)
        #expect(createTopic(&c, "x_y", partitions: 1, rf: 1).errorCode == ErrorCode.invalidTopicException.rawValue)
        #expect(c.image.topicNames == ["a", "x.y"])
    }

    @Test("commands change nothing until their records are replayed")
    func pure() {
        let c = controller(imageWithBrokers([1]))
        var request = CreateTopicsRequest()
        request.topics = [.init(name: "t", numPartitions: 2, replicationFactor: 1)]
        let result = c.createTopics(request, version: 7, newId: { KafkaUUID(high: 1, low: 1) })
        #expect(!result.records.isEmpty)
        #expect(c.image.topic(named: "t") == nil)
    }

    @Test("DeleteTopics and CreatePartitions")
    func deleteAndGrow() {
        var c = controller(imageWithBrokers([1, 2]))
        _ = createTopic(&c, "t", partitions: 2, rf: 2)
        var grow = CreatePartitionsRequest()
        grow.topics = [.init(name: "t", count: 5)]
        let grown = c.createPartitions(grow)
        #expect(grown.response.results[0].errorCode == 0)
        c.replay(grown.records.map { ($0, 100) }, epoch: 1)
        #expect(c.image.topic(named: "t")?.partitionCount == 5)
        grow.topics = [.init(name: "t", count: 3)]
        #expect(c.createPartitions(grow).response.results[0].errorCode == ErrorCode.invalidPartitions.rawValue)

        var delete = DeleteTopicsRequest()
        delete.topicNames = ["t", "missing"]
        let deleted = c.deleteTopics(delete, version: 5)
        #expect(deleted.response.responses.map(\.errorCode) == [0, ErrorCode.unknownTopicOrPartition.rawValue])
        c.replay(deleted.records.map { ($0, 200) }, epoch: 1)
        #expect(c.image.topic(named: "t") == nil)
    }

    @Test("IncrementalAlterConfigs SET, DELETE, APPEND and SUBTRACT")
    func incrementalAlter() {
        var c = controller(imageWithBrokers([1]))
        _ = createTopic(&c, "t", partitions: 1, rf: 1)
        func alter(_ ops: [(String, Int8, String?)]) -> Int16 {
            var request = IncrementalAlterConfigsRequest()
            request.resources = [
                .init(
                    resourceType: 2, resourceName: "t",
                    configs: ops.map { .init(name: $0.0, configOperation: $0.1, value: $0.2) })
            ]
            let result = c.incrementalAlterConfigs(request)
            c.replay(result.records.map { ($0, 300) }, epoch: 1)
            return result.response.responses[0].errorCode
        }
        #expect(alter([("retention.ms", 0, "5000")]) == 0)
        #expect(alter([("cleanup.policy", 2, "compact")]) == 0)
        #expect(c.image.configs(of: .init(.topic, "t"))["cleanup.policy"] == "delete,compact")
        #expect(alter([("cleanup.policy", 3, "delete")]) == 0)
        #expect(c.image.configs(of: .init(.topic, "t"))["cleanup.policy"] == "compact")
        #expect(alter([("retention.ms", 1, nil)]) == 0)
        #expect(c.image.configs(of: .init(.topic, "t"))["retention.ms"] == nil)
        #expect(alter([("retention.ms", 2, "1")]) == ErrorCode.invalidConfig.rawValue, "append needs a list config")
        #expect(alter([("segment.bytes", 0, "-4")]) == ErrorCode.invalidConfig.rawValue)
    }

    @Test("replica placement: first replica rotates, replicas distinct, racks spread")
    func placement() throws {
        let brokers = (1...4).map { ReplicaPlacement.Broker(id: Int32($0), rack: nil) }
        let placed = try ReplicaPlacement.place(count: 8, replicationFactor: 3, brokers: brokers, start: 0).get()
        #expect(placed.map { $0[0] } == [1, 2, 3, 4, 1, 2, 3, 4])
        #expect(placed.allSatisfy { Set($0).count == 3 })
        let racked = [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("c", 5), ("c", 6)].map {
            ReplicaPlacement.Broker(id: Int32($0.1), rack: $0.0)
        }
        let placedRacks = try ReplicaPlacement.place(count: 12, replicationFactor: 3, brokers: racked, start: 1).get()
        for replicas in placedRacks {
            let racks = Set(replicas.map { id in racked.first { $0.id == id }!.rack! })
            #expect(racks.count == 3, "every replica on its own rack: \(replicas)")
        }
        #expect(throws: ReplicaPlacement.Failure.self) {
            try ReplicaPlacement.place(count: 1, replicationFactor: 5, brokers: brokers, start: 0).get()
        }
    }
}

@Suite("Metadata image")
struct MetadataImageTests {
    @Test("partition changes bump epochs; removal drops the topic and its configs")
    func replay() {
        var delta = MetadataDelta(imageWithBrokers([1, 2]))
        let id = KafkaUUID(high: 9, low: 9)
        delta.replay(.topic(TopicRecord(name: "t", topicId: id)), offset: 10, epoch: 1)
        delta.replay(
            .partition(
                PartitionRecord(
                    partitionId: 0, topicId: id, replicas: [1, 2], isr: [1, 2], leader: 1, leaderEpoch: 0,
                    partitionEpoch: 0)), offset: 11, epoch: 1)
        delta.replay(
            .config(ConfigRecord(resourceType: 2, resourceName: "t", name: "retention.ms", value: "1")), offset: 12,
            epoch: 1)
        delta.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: id, isr: [2], leader: 2)), offset: 13,
            epoch: 1)
        var image = delta.apply()
        let p = image.partition(TopicPartition("t", 0))!
        #expect(p.leader == 2 && p.leaderEpoch == 1 && p.partitionEpoch == 1 && p.isr == [2])
        #expect(image.provenance.lastOffset == 13)
        var delta2 = MetadataDelta(image)
        delta2.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: id, isr: [1, 2])), offset: 14, epoch: 1)
        image = delta2.apply()
        #expect(image.partition(TopicPartition("t", 0))!.leaderEpoch == 1, "an ISR-only change keeps the leader epoch")
        #expect(image.partition(TopicPartition("t", 0))!.partitionEpoch == 2)
        var delta3 = MetadataDelta(image)
        delta3.replay(.removeTopic(RemoveTopicRecord(topicId: id)), offset: 15, epoch: 1)
        #expect(delta3.deletedTopics[id]?.name == "t")
        image = delta3.apply()
        #expect(image.topic(named: "t") == nil)
        #expect(image.configs(of: .init(.topic, "t")).isEmpty)
    }
}

@Suite("Offline partition count")
struct OfflinePartitionCountTests {
    @Test(
        "the image keeps the count of leaderless partitions through partition records, leader changes and topic removal"
    )
    func kept() {
        let topicId = KafkaUUID(high: 9, low: 9)
        var delta = MetadataDelta(imageWithBrokers([1, 2]))
        delta.replay(.topic(TopicRecord(name: "t", topicId: topicId)), offset: 10, epoch: 1)
        for (p, leader) in [(0, 1), (1, -1), (2, -1)] as [(Int32, Int32)] {
            delta.replay(
                .partition(
                    PartitionRecord(partitionId: p, topicId: topicId, replicas: [1, 2], isr: [1, 2], leader: leader)),
                offset: 11 + Int64(p), epoch: 1)
        }
        var image = delta.apply()
        #expect(image.offlinePartitionCount == 2)
        var change = PartitionChangeRecord(partitionId: 1, topicId: topicId)
        change.leader = 2
        var lost = PartitionChangeRecord(partitionId: 0, topicId: topicId)
        lost.leader = -1
        var delta2 = MetadataDelta(image)
        delta2.replay(.partitionChange(change), offset: 20, epoch: 1)
        delta2.replay(.partitionChange(change), offset: 21, epoch: 1)  // again: still one partition back
        delta2.replay(.partitionChange(lost), offset: 22, epoch: 1)
        image = delta2.apply()
        #expect(image.offlinePartitionCount == 2)
        var delta3 = MetadataDelta(image)
        delta3.replay(.removeTopic(RemoveTopicRecord(topicId: topicId)), offset: 30, epoch: 1)
        #expect(delta3.apply().offlinePartitionCount == 0)
        // An image built as a snapshot load builds it (from its topics) counts them too.
        let loaded = MetadataImage(
            provenance: image.provenance, features: [:], brokers: Array(image.brokers.values),
            topics: Array(image.topicsById.values), configs: [:], nextProducerId: 0, producerIdsBroker: -1, acls: [])
        #expect(loaded.offlinePartitionCount == 2)
    }
}
