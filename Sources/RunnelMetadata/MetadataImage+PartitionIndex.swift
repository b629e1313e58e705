import HashTreeCollections
import RunnelCore

/// Partition indexes a delta keeps as partitions change, so that work about one broker (fencing
/// it, moving its leaderships, asking whether it still leads) touches that broker's partitions
/// and not every partition of the cluster. They are derived from `topicsById`: a delta brings
/// them up to date once, in `apply()`, for the partitions its records touched, and a debug
/// build checks them there (`partitionIndexesHold`); an image built from a snapshot scans.
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

    /// Brings the indexes and the partition counts of the partitions in `touched` from what
    /// `indexedTopics` (the topics the indexes describe now) says of them to what `topicsById`
    /// says. A partition listed more than once is moved once. Each touched topic costs one
    /// index update per broker whose partitions of it changed, however many records touched it.
    mutating func reindex(_ touched: [KafkaUUID: [Int32]], indexedTopics: TreeDictionary<KafkaUUID, TopicImage>) {
        var adding: [Int32: [Int32]] = [:]
        var removing: [Int32: [Int32]] = [:]
        var nowLeaderless: [Int32] = []
        var noLongerLeaderless: [Int32] = []
        for (topicId, listed) in touched {
            adding.removeAll(keepingCapacity: true)
            removing.removeAll(keepingCapacity: true)
            nowLeaderless.removeAll(keepingCapacity: true)
            noLongerLeaderless.removeAll(keepingCapacity: true)
            let before = indexedTopics[topicId]?.partitions
            let after = topicsById[topicId]?.partitions
            var previous: Int32?
            for index in listed.sorted() where index != previous {
                previous = index
                let was = before?[index]
                let now = after?[index]
                partitionCount += (now == nil ? 0 : 1) - (was == nil ? 0 : 1)
                let wasLeaderless = was.map { $0.leader < 0 } ?? false
                let isLeaderless = now.map { $0.leader < 0 } ?? false
                if isLeaderless != wasLeaderless {
                    if isLeaderless { nowLeaderless.append(index) } else { noLongerLeaderless.append(index) }
                    offlinePartitionCount += isLeaderless ? 1 : -1
                }
                if let was, let now, was.replicas == now.replicas, was.isr == now.isr, was.leader == now.leader {
                    continue
                }
                let namedBefore = was.map(Self.namedBrokers) ?? []
                let namedAfter = now.map(Self.namedBrokers) ?? []
                for broker in namedBefore where !namedAfter.contains(broker) {
                    removing[broker, default: []].append(index)
                }
                for broker in namedAfter where !namedBefore.contains(broker) {
                    adding[broker, default: []].append(index)
                }
            }
            for (broker, indexes) in removing {
                guard var topics = partitionsByBroker.removeValue(forKey: broker) else { continue }
                Self.remove(indexes, topicId: topicId, from: &topics)
                if !topics.isEmpty { partitionsByBroker[broker] = topics }
            }
            for (broker, indexes) in adding {
                Self.add(indexes, topicId: topicId, to: &partitionsByBroker[broker, default: [:]])
            }
            Self.remove(noLongerLeaderless, topicId: topicId, from: &leaderlessPartitions)
            Self.add(nowLeaderless, topicId: topicId, to: &leaderlessPartitions)
        }
        assert(partitionCount >= 0 && offlinePartitionCount >= 0, "partition counts never go below zero")
    }

    /// Adds partitions to an index entry.
    private static func add(_ indexes: [Int32], topicId: KafkaUUID, to topics: inout PartitionsByTopic) {
        guard !indexes.isEmpty else { return }
        if var partitions = topics.removeValue(forKey: topicId) {
            partitions.formUnion(indexes)
            topics[topicId] = partitions
        } else {
            topics[topicId] = TreeSet(indexes)
        }
    }

    /// Removes partitions from an index entry, dropping the topic once it has none (the indexes
    /// hold nothing empty, so equal images have equal indexes).
    private static func remove(_ indexes: [Int32], topicId: KafkaUUID, from topics: inout PartitionsByTopic) {
        guard !indexes.isEmpty, var partitions = topics.removeValue(forKey: topicId) else { return }
        partitions.subtract(indexes)
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

    /// Whether the kept indexes and counts are what a full scan finds.
    func partitionIndexesAreConsistent() -> Bool {
        let scanned = scanPartitionIndexes()
        return scanned.byBroker == partitionsByBroker && scanned.leaderless == leaderlessPartitions
            && partitionCount == countPartitions() && offlinePartitionCount == countOfflinePartitions()
    }

    /// Up to this many partitions, a delta's debug check scans them all; above it, it looks at
    /// the partitions the delta touched (a scan per delta put a debug broker with thousands of
    /// partitions behind on its metadata).
    static let indexFullCheckPartitionsMax = 2_000

    /// The debug check of `MetadataDelta.apply()`: in a small image, a full scan
    /// (`partitionIndexesAreConsistent`); in a big one, every partition in `touched` is under
    /// exactly the brokers it names and in the leaderless index exactly when it has no leader,
    /// the offline count is the leaderless index's size, and the partition count the topics'.
    /// Partitions not touched are not looked at: the delta did not change their entries.
    func partitionIndexesHold(touched: [KafkaUUID: [Int32]]) -> Bool {
        if partitionCount <= Self.indexFullCheckPartitionsMax { return partitionIndexesAreConsistent() }
        guard partitionCount == countPartitions(),
            offlinePartitionCount == leaderlessPartitions.values.reduce(0, { $0 + $1.count })
        else { return false }
        for (topicId, indexes) in touched {
            let partitions = topicsById[topicId]?.partitions
            for index in indexes {
                let p = partitions?[index]
                let named = p.map(Self.namedBrokers) ?? []
                for (broker, topics) in partitionsByBroker
                where (topics[topicId]?.contains(index) ?? false) != named.contains(broker) {
                    return false
                }
                for broker in named where partitionsByBroker[broker] == nil { return false }
                let leaderless = leaderlessPartitions[topicId]?.contains(index) ?? false
                if leaderless != (p.map { $0.leader < 0 } ?? false) { return false }
            }
        }
        return true
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
