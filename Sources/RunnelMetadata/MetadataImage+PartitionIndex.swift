import HashTreeCollections
import RunnelCore

/// Partition indexes a delta keeps as partitions change, so that work about one broker (fencing
/// it, moving its leaderships, asking whether it still leads) touches that broker's partitions
/// and not every partition of the cluster. They are derived from `topicsById`: every `apply()`
/// of a debug build checks them against a full scan, and an image built from a snapshot scans.
extension MetadataImage {
    /// Partition indexes by topic id, as the indexes hold them.
    public typealias PartitionsByTopic = TreeDictionary<KafkaUUID, TreeSet<Int32>>

    /// The brokers a partition names: its replicas, then ISR members and the leader not among
    /// them (a well-formed partition names no broker outside its replicas, but the index must
    /// not depend on that).
    static func namedBrokers(_ p: PartitionRegistration) -> [Int32] {
        var out = p.replicas
        for id in p.isr where !out.contains(id) { out.append(id) }
        if p.leader >= 0 && !out.contains(p.leader) { out.append(p.leader) }
        return out
    }

    /// Moves partition `index` of topic `topicId` in the indexes from what `was` named to what
    /// `now` names (nil: the partition did not exist, or no longer exists).
    mutating func reindex(
        topicId: KafkaUUID, index: Int32, was: PartitionRegistration?, now: PartitionRegistration?
    ) {
        let before = was.map(Self.namedBrokers) ?? []
        let after = now.map(Self.namedBrokers) ?? []
        if before != after {
            for broker in before where !after.contains(broker) {
                guard var topics = partitionsByBroker.removeValue(forKey: broker) else { continue }
                Self.remove(index, topicId: topicId, from: &topics)
                if !topics.isEmpty { partitionsByBroker[broker] = topics }
            }
            for broker in after where !before.contains(broker) {
                partitionsByBroker[broker, default: [:]][topicId, default: []].insert(index)
            }
        }
        let wasLeaderless = was.map { $0.leader < 0 } ?? false
        let nowLeaderless = now.map { $0.leader < 0 } ?? false
        if wasLeaderless && !nowLeaderless {
            Self.remove(index, topicId: topicId, from: &leaderlessPartitions)
        } else if nowLeaderless && !wasLeaderless {
            leaderlessPartitions[topicId, default: []].insert(index)
        }
    }

    /// Removes one partition from an index entry, dropping the topic once it has none (the
    /// indexes hold nothing empty, so equal images have equal indexes).
    private static func remove(_ index: Int32, topicId: KafkaUUID, from topics: inout PartitionsByTopic) {
        guard var partitions = topics.removeValue(forKey: topicId) else { return }
        partitions.remove(index)
        if !partitions.isEmpty { topics[topicId] = partitions }
    }

    /// Both indexes by a walk over every partition: for an image built from a snapshot, and to
    /// check the kept ones.
    func scanPartitionIndexes() -> (byBroker: TreeDictionary<Int32, PartitionsByTopic>, leaderless: PartitionsByTopic) {
        var byBroker: TreeDictionary<Int32, PartitionsByTopic> = [:]
        var leaderless: PartitionsByTopic = [:]
        // A topic's partitions are gathered by broker first and stored once per broker: a
        // million partitions of RF 3 make a few hundred thousand index entries, not three
        // million insertions (this scan is part of loading a snapshot).
        var gathered: [Int32: [Int32]] = [:]
        var withoutLeader: [Int32] = []
        for topic in topicsById.values {
            gathered.removeAll(keepingCapacity: true)
            withoutLeader.removeAll(keepingCapacity: true)
            for (index, p) in topic.partitions {
                for broker in Self.namedBrokers(p) { gathered[broker, default: []].append(index) }
                if p.leader < 0 { withoutLeader.append(index) }
            }
            for (broker, indexes) in gathered { byBroker[broker, default: [:]][topic.id] = TreeSet(indexes) }
            if !withoutLeader.isEmpty { leaderless[topic.id] = TreeSet(withoutLeader) }
        }
        return (byBroker, leaderless)
    }

    /// Whether the kept indexes are what a full scan finds.
    func partitionIndexesAreConsistent() -> Bool {
        let scanned = scanPartitionIndexes()
        return scanned.byBroker == partitionsByBroker && scanned.leaderless == leaderlessPartitions
    }

    /// Partitions that name `broker` (as a replica, ISR member or leader), by topic id.
    public func partitions(namingBroker broker: Int32) -> PartitionsByTopic {
        partitionsByBroker[broker] ?? [:]
    }

    /// Whether `broker` leads any partition: a look at its own partitions only.
    public func leadsAnyPartition(_ broker: Int32) -> Bool {
        for (topicId, indexes) in partitions(namingBroker: broker) {
            guard let topic = topicsById[topicId] else { continue }
            for index in indexes where topic.partitions[index]?.leader == broker { return true }
        }
        return false
    }
}
