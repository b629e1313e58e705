// The browsable tree of a metadata image (what `runnel metadata ls|cat|tree` and the metadata
// shell walk): an image built by replaying records gives /brokers, /topics/<name>/<partition>,
// /configs/<type>/<name>, /features, /producerIds, /acls, /scram/<mechanism>/<user>, /clientQuotas
// and /quorum; paths resolve with `.`, `..` and stray slashes; a directory lists its children in
// display order; a leaf carries the fields of what it names.
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

/// Two brokers, topic "orders" (3 partitions) and "audit" (1), a topic config, a cluster-wide
/// broker config, a feature level, a producer id block and one ACL.
private func treeImage() -> MetadataImage {
    var delta = MetadataDelta(.empty)
    var offset: Int64 = 0
    func replay(_ record: MetadataRecord) {
        delta.replay(record, offset: offset, epoch: 3)
        offset += 1
    }
    replay(.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21)))
    for id in [Int32(2), 1, 10] {
        replay(
            .registerBroker(
                RegisterBrokerRecord(
                    brokerId: id, incarnationId: KafkaUUID(high: 9, low: UInt64(id)), brokerEpoch: offset,
                    endPoints: [.init(name: "PLAINTEXT", host: "h\(id)", port: 9092, securityProtocol: 0)],
                    rack: id == 1 ? "r1" : nil,
                    fenced: id == 10)))
    }
    let orders = KafkaUUID(high: 1, low: 1)
    let audit = KafkaUUID(high: 1, low: 2)
    replay(.topic(TopicRecord(name: "orders", topicId: orders)))
    for p in Int32(0)..<3 {
        replay(
            .partition(
                PartitionRecord(
                    partitionId: p, topicId: orders, replicas: [1, 2], isr: [1, 2], leader: p % 2 == 0 ? 1 : 2,
                    leaderEpoch: 0, partitionEpoch: 0)))
    }
    replay(.topic(TopicRecord(name: "audit", topicId: audit)))
    replay(
        .partition(
            PartitionRecord(
                partitionId: 0, topicId: audit, replicas: [2], isr: [2], leader: 2, leaderEpoch: 0, partitionEpoch: 0)))
    replay(.partitionChange(PartitionChangeRecord(partitionId: 1, topicId: orders, isr: [2], leader: 2)))
    replay(
        .config(
            ConfigRecord(
                resourceType: ConfigResourceType.topic.rawValue, resourceName: "orders", name: "retention.ms",
                value: "1000")))
    replay(
        .config(
            ConfigRecord(
                resourceType: ConfigResourceType.broker.rawValue, resourceName: "", name: "log.retention.hours",
                value: "1")))
    replay(.producerIds(ProducerIdsRecord(brokerId: 1, brokerEpoch: 1, nextProducerId: 2000)))
    replay(
        .accessControlEntry(
            AccessControlEntryRecord(
                id: KafkaUUID(high: 5, low: 5), resourceType: 2, resourceName: "orders", patternType: 3,
                principal: "User:alice", host: "*",
                operation: 3, permissionType: 3)))
    return delta.apply()
}

@Suite("MetadataTree")
struct MetadataTreeTests {
    let root = MetadataTree.build(treeImage(), voters: [3, 1, 2], clusterId: "cluster-A")

    @Test("the root lists the eight top-level nodes and carries the provenance")
    func rootNode() {
        #expect(
            root.children.map(\.name) == [
                "brokers", "topics", "configs", "features", "producerIds", "acls", "scram", "clientQuotas", "quorum",
            ])
        #expect(root.field("lastOffset") == .int(14))
        #expect(root.field("lastEpoch") == .int(3))
        #expect(root.field("recordCount") == .int(15))
        #expect(root.node(at: "/") == root)
        #expect(root.node(at: "") == root)
    }

    @Test("paths resolve, with ., .., repeated and trailing slashes; missing paths give nil")
    func paths() {
        #expect(root.node(at: "/topics/orders/1")?.field("leader") == .int(2))
        #expect(root.node(at: "topics//orders/./1/")?.name == "1")
        #expect(root.node(at: "/topics/audit/../orders/0")?.field("partition") == .int(0))
        #expect(root.node(at: "/../../brokers") == root.node(at: "/brokers"))
        #expect(root.node(at: "/topics/nope") == nil)
        #expect(root.node(at: "/topics/orders/7") == nil)
        #expect(root.node(at: "/brokers/1/epoch") == nil, "fields are not nodes")
        #expect(MetadataTree.normalize("../orders/./0", from: "/topics/audit") == "/topics/orders/0")
        #expect(MetadataTree.normalize("/", from: "/topics") == "/")
        #expect(MetadataTree.normalize("..", from: "/") == "/")
    }

    @Test("ls: directories list their children in display order")
    func listing() {
        #expect(root.node(at: "/brokers")?.children.map(\.name) == ["1", "2", "10"], "broker ids numerically")
        #expect(root.node(at: "/topics")?.children.map(\.name) == ["audit", "orders"])
        #expect(root.node(at: "/topics/orders")?.children.map(\.name) == ["0", "1", "2"])
        #expect(
            root.node(at: "/configs")?.children.map(\.name) == ["topic", "broker"],
            "resource types in Kafka's code order")
        #expect(root.node(at: "/configs/broker")?.children.map(\.name) == ["default"], "the cluster-wide broker config")
        #expect(root.node(at: "/acls")?.children.count == 1)
        #expect(root.node(at: "/topics")?.isDirectory == true)
        #expect(root.node(at: "/topics/orders/0")?.isDirectory == false)
        #expect(root.node(at: "/features")?.isDirectory == false)
    }

    @Test("an empty image still has every top-level directory")
    func emptyImage() {
        let empty = MetadataTree.build(.empty)
        #expect(empty.node(at: "/topics")?.children.isEmpty == true)
        #expect(empty.node(at: "/topics")?.isDirectory == true)
        #expect(empty.node(at: "/quorum")?.field("clusterId") == .null)
        #expect(empty.node(at: "/quorum")?.field("voters") == .ints([]))
    }

    @Test("cat: leaves carry the fields of what they name")
    func fields() {
        let partition = root.node(at: "/topics/orders/1")!
        #expect(
            partition.fields.map(\.name) == [
                "partition", "leader", "leaderEpoch", "partitionEpoch", "replicas", "isr", "removingReplicas",
                "addingReplicas", "leaderRecoveryState", "eligibleLeaderReplicas", "lastKnownElr",
            ])
        #expect(partition.field("isr") == .ints([2]))
        #expect(partition.field("replicas") == .ints([1, 2]))
        #expect(partition.field("leaderEpoch") == .int(1), "the PartitionChange moved the leader")
        #expect(partition.field("partitionEpoch") == .int(1))
        #expect(partition.field("isr")?.description == "[2]")

        let topic = root.node(at: "/topics/orders")!
        #expect(topic.field("id") == .string(KafkaUUID(high: 1, low: 1).description))
        #expect(topic.field("partitions") == .int(3))

        let broker = root.node(at: "/brokers/1")!
        #expect(broker.field("rack") == .string("r1"))
        #expect(broker.field("fenced") == .bool(false))
        #expect(broker.field("endpoints") == .strings(["PLAINTEXT://h1:9092"]))
        #expect(root.node(at: "/brokers/2")?.field("rack") == .null)
        #expect(root.node(at: "/brokers/10")?.field("fenced") == .bool(true))

        #expect(root.node(at: "/configs/topic/orders")?.field("retention.ms") == .string("1000"))
        #expect(root.node(at: "/configs/broker/default")?.field("log.retention.hours") == .string("1"))
        #expect(root.node(at: "/features")?.field("metadata.version") == .int(21))
        #expect(root.node(at: "/producerIds")?.field("nextProducerId") == .int(2000))
        #expect(root.node(at: "/producerIds")?.field("lastBrokerId") == .int(1))
        #expect(root.node(at: "/quorum")?.field("voters") == .ints([1, 2, 3]))
        #expect(root.node(at: "/quorum")?.field("clusterId") == .string("cluster-A"))

        let acl = root.node(at: "/acls")!.children[0]
        #expect(acl.field("resourceType") == .string("TOPIC"))
        #expect(acl.field("patternType") == .string("LITERAL"))
        #expect(acl.field("operation") == .string("READ"))
        #expect(acl.field("permissionType") == .string("ALLOW"))
        #expect(acl.field("principal") == .string("User:alice"))
    }

    @Test("walk visits every node with its path, depth first")
    func walk() {
        let paths = root.node(at: "/topics")!.walk(path: "/topics").map(\.path)
        #expect(
            paths == [
                "/topics", "/topics/audit", "/topics/audit/0", "/topics/orders", "/topics/orders/0", "/topics/orders/1",
                "/topics/orders/2",
            ])
    }

    @Test("a removed topic leaves the tree")
    func removedTopic() {
        var delta = MetadataDelta(treeImage())
        delta.replay(.removeTopic(RemoveTopicRecord(topicId: KafkaUUID(high: 1, low: 2))), offset: 100, epoch: 3)
        let tree = MetadataTree.build(delta.apply())
        #expect(tree.node(at: "/topics")?.children.map(\.name) == ["orders"])
        #expect(tree.node(at: "/topics/audit") == nil)
    }
}
