import HashTreeCollections
import RunnelCore

/// Partition indexes a delta keeps as partitions change, so that work about one broker (fencing
/// it, moving its leaderships, asking whether it still leads) looks at the partitions that name
/// it and not at every partition of the cluster. They are derived from `topicsById`: a delta
/// brings them up to date once, in `apply()`, for the partitions its records touched, and a
/// debug build checks them there (`partitionIndexesHold`); an image built from a snapshot scans.
///
/// The broker index is kept by topic (topic id, then broker id, then the sorted indexes of the
/// topic's partitions that name that broker): a delta that creates or changes a topic updates
/// one entry of the persistent map, where a map by broker took one update per broker the topic
/// names (30 per topic of RF 3 over 30 brokers) and, with them, most of a million-partition
/// replay. A broker's partitions are then found by a walk over the topics (not the partitions).
extension MetadataImage {
    /// Partition indexes by topic id, as the indexes hold them.
    public typealias PartitionsByTopic = TreeDictionary<KafkaUUID, TreeSet<Int32>>

    /// One topic's entry of the broker index: broker id to the sorted indexes of the topic's
    /// partitions that name it.
    public typealias TopicBrokerIndex = [Int32: [Int32]]

    /// The brokers a partition names, each once: its replicas, then ISR members and the leader
    /// not among them (a well-formed partition names no broker outside its replicas, nor one
    /// twice, but the index must not depend on that). A well-formed partition's replica array
    /// is returned as it is, without a copy.
    static func namedBrokers(_ p: PartitionRegistration) -> [Int32] {
        let replicas = p.replicas
        var wellFormed = p.leader < 0 || replicas.contains(p.leader)
        for id in p.isr where !replicas.contains(id) { wellFormed = false }
        for (i, id) in replicas.enumerated() where replicas[..<i].contains(id) { wellFormed = false }
        if wellFormed { return replicas }
        var out: [Int32] = []
        for id in replicas + p.isr + (p.leader >= 0 ? [p.leader] : []) where !out.contains(id) { out.append(id) }
        return out
    }

    /// Brings the indexes, the partition counts and the leader counts of the partitions in `touched` from what
    /// `indexedTopics` (the topics the indexes describe now) says of them to what `topicsById`
    /// says. A partition listed more than once is moved once. Each touched topic costs at most
    /// one update of the broker index and of the leaderless index, however many records touched it.
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
                let wasLeader = was?.leader ?? -1
                let nowLeader = now?.leader ?? -1
                if wasLeader != nowLeader {
                    if wasLeader >= 0 {
                        let left = leaderCounts[wasLeader, default: 0] - 1
                        assert(left >= 0, "broker \(wasLeader) leads fewer than no partitions")
                        leaderCounts[wasLeader] = left > 0 ? left : nil
                    }
                    if nowLeader >= 0 { leaderCounts[nowLeader, default: 0] += 1 }
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
            if !removing.isEmpty || !adding.isEmpty {
                var entry = brokerIndexByTopic[topicId] ?? [:]
                for (broker, indexes) in removing {
                    let left = Self.sortedSubtracting(entry[broker] ?? [], indexes)
                    entry[broker] = left.isEmpty ? nil : left
                }
                for (broker, indexes) in adding { entry[broker] = Self.sortedUnion(entry[broker] ?? [], indexes) }
                brokerIndexByTopic[topicId] = entry.isEmpty ? nil : entry
            }
            Self.remove(noLongerLeaderless, topicId: topicId, from: &leaderlessPartitions)
            Self.add(nowLeaderless, topicId: topicId, to: &leaderlessPartitions)
        }
        assert(partitionCount >= 0 && offlinePartitionCount >= 0, "partition counts never go below zero")
    }

    /// Adds partitions to an index entry. The entry is changed where it stands (the subscript
    /// yields it in place): taking it out and putting it back walked and copied its path twice.
    private static func add(_ indexes: [Int32], topicId: KafkaUUID, to topics: inout PartitionsByTopic) {
        guard !indexes.isEmpty else { return }
        if topics[topicId] == nil {
            topics[topicId] = TreeSet(indexes)
        } else {
            topics[topicId]!.formUnion(indexes)
        }
    }

    /// Removes partitions from an index entry, dropping the topic once it has none (the indexes
    /// hold nothing empty, so equal images have equal indexes).
    private static func remove(_ indexes: [Int32], topicId: KafkaUUID, from topics: inout PartitionsByTopic) {
        guard !indexes.isEmpty, topics[topicId] != nil else { return }
        topics[topicId]!.subtract(indexes)
        if topics[topicId]!.isEmpty { topics[topicId] = nil }
    }

    /// The union of two ascending index lists, ascending and without repeats.
    static func sortedUnion(_ a: [Int32], _ b: [Int32]) -> [Int32] {
        if a.isEmpty { return b }
        var out: [Int32] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            let next: Int32
            if j == b.count || (i < a.count && a[i] < b[j]) {
                next = a[i]
                i += 1
            } else {
                if i < a.count && a[i] == b[j] { i += 1 }
                next = b[j]
                j += 1
            }
            out.append(next)
        }
        return out
    }

    /// `a` without the indexes in `b` (both ascending).
    static func sortedSubtracting(_ a: [Int32], _ b: [Int32]) -> [Int32] {
        var out: [Int32] = []
        var j = 0
        for x in a {
            while j < b.count && b[j] < x { j += 1 }
            if j < b.count && b[j] == x { continue }
            out.append(x)
        }
        return out
    }

    /// One topic's broker index by a walk over its partitions.
    static func brokerIndex(of partitions: [Int32: PartitionRegistration]) -> TopicBrokerIndex {
        var gathered: TopicBrokerIndex = [:]
        for (index, p) in partitions {
            for broker in namedBrokers(p) { gathered[broker, default: []].append(index) }
        }
        for broker in gathered.keys { gathered[broker]!.sort() }
        return gathered
    }

    /// Both indexes by a walk over every partition: for an image built from a snapshot, and to
    /// check the kept ones. One broker-index entry per topic (this scan is part of loading a
    /// snapshot).
    func scanPartitionIndexes() -> (byTopic: TreeDictionary<KafkaUUID, TopicBrokerIndex>, leaderless: PartitionsByTopic)
    {
        var byTopic: TreeDictionary<KafkaUUID, TopicBrokerIndex> = [:]
        var leaderless: PartitionsByTopic = [:]
        var withoutLeader: [Int32] = []
        for topic in topicsById.values {
            withoutLeader.removeAll(keepingCapacity: true)
            for (index, p) in topic.partitions where p.leader < 0 { withoutLeader.append(index) }
            let entry = Self.brokerIndex(of: topic.partitions)
            if !entry.isEmpty { byTopic[topic.id] = entry }
            if !withoutLeader.isEmpty { leaderless[topic.id] = TreeSet(withoutLeader) }
        }
        return (byTopic, leaderless)
    }

    /// Whether the kept indexes and counts are what a full scan finds.
    func partitionIndexesAreConsistent() -> Bool {
        let scanned = scanPartitionIndexes()
        return scanned.byTopic == brokerIndexByTopic && scanned.leaderless == leaderlessPartitions
            && partitionCount == countPartitions() && offlinePartitionCount == countOfflinePartitions()
            && leaderCounts == countLeaders()
    }

    /// Up to this many partitions, a delta's debug check scans them all; above it, it looks at
    /// the partitions the delta touched (a scan per delta put a debug broker with thousands of
    /// partitions behind on its metadata).
    static let indexFullCheckPartitionsMax = 2_000

    /// The debug check of `MetadataDelta.apply()`: in a small image, a full scan
    /// (`partitionIndexesAreConsistent`); in a big one, each touched topic's broker index is what
    /// a walk over its partitions finds, each touched partition is in the leaderless index
    /// exactly when it has no leader, the offline count is the leaderless index's size, the
    /// partition count the topics', and the leader counts add up to the partitions with a
    /// leader. Topics not touched are not looked at: the delta did not change their entries.
    func partitionIndexesHold(touched: [KafkaUUID: [Int32]]) -> Bool {
        if partitionCount <= Self.indexFullCheckPartitionsMax { return partitionIndexesAreConsistent() }
        guard partitionCount == countPartitions(),
            offlinePartitionCount == leaderlessPartitions.values.reduce(0, { $0 + $1.count }),
            leaderCounts.values.reduce(0, +) == partitionCount - offlinePartitionCount
        else { return false }
        for (topicId, indexes) in touched {
            let partitions = topicsById[topicId]?.partitions ?? [:]
            let expected = Self.brokerIndex(of: partitions)
            if (brokerIndexByTopic[topicId] ?? [:]) != expected { return false }
            for index in indexes {
                let leaderless = leaderlessPartitions[topicId]?.contains(index) ?? false
                if leaderless != (partitions[index].map { $0.leader < 0 } ?? false) { return false }
            }
        }
        return true
    }

    /// Partitions that name `broker` (as a replica, ISR member or leader), by topic id: a walk
    /// over the topics' broker index.
    public func partitions(namingBroker broker: Int32) -> PartitionsByTopic {
        var out: PartitionsByTopic = [:]
        for (topicId, entry) in brokerIndexByTopic {
            if let indexes = entry[broker] { out[topicId] = TreeSet(indexes) }
        }
        return out
    }

    /// Every partition by each broker it names: broker id, then topic id, then partition
    /// indexes. Built from the broker index on each call (a walk over all of it), for tools and
    /// tests; `partitions(namingBroker:)` and `brokerIndexByTopic` are what code should use.
    public var partitionsByBroker: TreeDictionary<Int32, PartitionsByTopic> {
        var out: TreeDictionary<Int32, PartitionsByTopic> = [:]
        for (topicId, entry) in brokerIndexByTopic {
            for (broker, indexes) in entry { out[broker, default: [:]][topicId] = TreeSet(indexes) }
        }
        return out
    }

    /// Whether `broker` leads any partition: a look at the partitions that name it only.
    public func leadsAnyPartition(_ broker: Int32) -> Bool {
        for (topicId, entry) in brokerIndexByTopic {
            guard let indexes = entry[broker], let topic = topicsById[topicId] else { continue }
            for index in indexes where topic.partitions[index]?.leader == broker { return true }
        }
        return false
    }
}
