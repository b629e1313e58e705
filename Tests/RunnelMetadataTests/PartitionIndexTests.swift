// The image's partition indexes (partitions by each broker they name, partitions without a
// leader, and how many partitions each broker leads) are kept by every delta so fencing a broker looks at that broker's partitions only.
// A delta brings them up to date once, in apply(), for the partitions its records touched.
// These tests hold them to what a full scan of the partitions finds through topic creation,
// partition changes, reassignments and topic removal, within one delta and across many, in a
// small image (where a debug apply() scans everything) and a big one (where it checks the
// touched partitions, a check shown here to catch planted index errors); hold the indexed `electionChanges` to the
// full walk it replaced, on random histories and live sets; and pin the content checksum to its
// definition (FNV-1a over each canonical record's own encoding) now that it reuses one buffer.
import RunnelController
import RunnelCore
import RunnelWire
import Testing

@testable import RunnelMetadata

@Suite struct PartitionIndexTests {
    static let orders = KafkaUUID(high: 21, low: 1)
    static let audit = KafkaUUID(high: 21, low: 2)

    static func partition(
        _ topicId: KafkaUUID, _ index: Int32, replicas: [Int32], isr: [Int32]? = nil, leader: Int32? = nil
    ) -> MetadataRecord {
        .partition(
            PartitionRecord(
                partitionId: index, topicId: topicId, replicas: replicas, isr: isr ?? replicas,
                leader: leader ?? replicas[0], leaderEpoch: 0, partitionEpoch: 0))
    }

    static func replay(_ image: MetadataImage, _ records: [MetadataRecord]) -> MetadataImage {
        var delta = MetadataDelta(image)
        for (i, r) in records.enumerated() {
            delta.replay(r, offset: image.provenance.lastOffset + 1 + Int64(i), epoch: 1)
        }
        let next = delta.apply()
        #expect(next.partitionIndexesAreConsistent())
        return next
    }

    /// Broker `id`'s partitions as (topic, index) pairs, sorted.
    static func named(_ image: MetadataImage, _ id: Int32) -> [String] {
        image.partitions(namingBroker: id).flatMap { topicId, indexes in
            indexes.map { "\(topicId == orders ? "orders" : "audit")-\($0)" }
        }.sorted()
    }

    static func leaderless(_ image: MetadataImage) -> [String] {
        image.leaderlessPartitions.flatMap { topicId, indexes in
            indexes.map { "\(topicId == orders ? "orders" : "audit")-\($0)" }
        }.sorted()
    }

    @Test("creating topics indexes each partition under its replicas; removing a topic takes them out")
    func createAndRemove() {
        let created = Self.replay(
            .empty,
            [
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [1, 2, 3]),
                Self.partition(Self.orders, 1, replicas: [2, 3, 4]),
                .topic(TopicRecord(name: "audit", topicId: Self.audit)),
                Self.partition(Self.audit, 0, replicas: [4, 1], leader: -1),
            ])
        #expect(Self.named(created, 1) == ["audit-0", "orders-0"])
        #expect(Self.named(created, 2) == ["orders-0", "orders-1"])
        #expect(Self.named(created, 4) == ["audit-0", "orders-1"])
        #expect(Self.named(created, 5) == [])
        #expect(Self.leaderless(created) == ["audit-0"])
        #expect(created.leaderCounts == [1: 1, 2: 1], "leaders counted by broker; a leaderless partition by none")

        let removed = Self.replay(created, [.removeTopic(RemoveTopicRecord(topicId: Self.audit))])
        #expect(Self.named(removed, 1) == ["orders-0"])
        #expect(Self.named(removed, 4) == ["orders-1"])
        #expect(Self.leaderless(removed) == [])
        #expect(removed.leaderCounts == [1: 1, 2: 1])
        // The image before is untouched.
        #expect(Self.named(created, 4) == ["audit-0", "orders-1"])

        // A broker named by nothing has no entry at all, so an image that got there by deltas
        // equals one built by a scan.
        let gone = Self.replay(removed, [.removeTopic(RemoveTopicRecord(topicId: Self.orders))])
        #expect(gone.partitionsByBroker.isEmpty)
        #expect(gone.leaderCounts.isEmpty, "a broker leading nothing has no entry")
        #expect(gone.brokerIndexByTopic.isEmpty)
        #expect(gone.leaderlessPartitions.isEmpty)
    }

    @Test("a partition change moves the partition between brokers and in and out of the leaderless set")
    func partitionChanges() {
        let base = Self.replay(
            .empty,
            [
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [1, 2, 3]),
            ])
        // ISR shrinks to 1 and the leader goes: still named by 2 and 3 as replicas.
        let shrunk = Self.replay(
            base,
            [.partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [1], leader: -1))])
        #expect(Self.named(shrunk, 2) == ["orders-0"])
        #expect(Self.leaderless(shrunk) == ["orders-0"])
        let back = Self.replay(
            shrunk, [.partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, leader: 1))])
        #expect(Self.leaderless(back) == [])

        // A reassignment from [1, 2, 3] to [4, 5, 6] (KIP-455): all six while it runs, then the new three.
        var adding = PartitionChangeRecord(partitionId: 0, topicId: Self.orders)
        adding.replicas = [4, 5, 6, 1, 2, 3]
        adding.addingReplicas = [4, 5, 6]
        adding.removingReplicas = [1, 2, 3]
        let moving = Self.replay(back, [.partitionChange(adding)])
        for id: Int32 in 1...6 { #expect(Self.named(moving, id) == ["orders-0"]) }
        var done = PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [4, 5, 6], leader: 4)
        done.replicas = [4, 5, 6]
        done.addingReplicas = []
        done.removingReplicas = []
        let moved = Self.replay(moving, [.partitionChange(done)])
        for id: Int32 in 1...3 { #expect(Self.named(moved, id) == []) }
        for id: Int32 in 4...6 { #expect(Self.named(moved, id) == ["orders-0"]) }
        #expect(moved.partitionsByBroker.count == 3)

        // A leader or ISR member outside the replicas (not well formed, but replayed) is named too.
        let odd = Self.replay(
            moved,
            [.partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [4, 9], leader: 8))])
        #expect(Self.named(odd, 8) == ["orders-0"])
        #expect(Self.named(odd, 9) == ["orders-0"])
        #expect(Self.named(odd, 5) == ["orders-0"])
    }

    @Test("a TopicRecord for a topic id already present drops its partitions from the indexes")
    func topicRecreated() {
        let base = Self.replay(
            .empty,
            [
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [1, 2], leader: -1),
            ])
        let again = Self.replay(base, [.topic(TopicRecord(name: "orders", topicId: Self.orders))])
        #expect(again.partitionsByBroker.isEmpty)
        #expect(again.leaderlessPartitions.isEmpty)
        #expect(again.offlinePartitionCount == 0)
    }

    @Test(
        "one delta that changes a partition's leader, then its ISR, then removes its topic leaves the indexes where the partition ends"
    )
    func samePartitionSeveralTimesInOneDelta() {
        let base = Self.replay(
            .empty,
            [
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [1, 2, 3]),
                Self.partition(Self.orders, 1, replicas: [2, 3, 4]),
                .topic(TopicRecord(name: "audit", topicId: Self.audit)),
                Self.partition(Self.audit, 0, replicas: [4, 1]),
            ])
        let changes: [MetadataRecord] = [
            // The leader goes, an ISR member outside the replicas comes and leads, then goes.
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, leader: -1)),
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [1, 9])),
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, leader: 9)),
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [2], leader: -1)),
        ]
        let changed = Self.replay(base, changes)
        #expect(Self.named(changed, 9) == [], "9 left the ISR and the leadership within the delta")
        #expect(Self.named(changed, 1) == ["audit-0", "orders-0"])
        #expect(Self.leaderless(changed) == ["orders-0"])
        #expect(changed.offlinePartitionCount == 1)
        #expect(changed.partitionCount == 3)

        // The same changes, then the topic's removal: nothing of it is left in any index.
        let removed = Self.replay(base, changes + [.removeTopic(RemoveTopicRecord(topicId: Self.orders))])
        for id: Int32 in [2, 3, 9] { #expect(Self.named(removed, id) == []) }
        #expect(Self.named(removed, 1) == ["audit-0"])
        #expect(Self.named(removed, 4) == ["audit-0"])
        #expect(Self.leaderless(removed) == [])
        #expect(removed.offlinePartitionCount == 0)
        #expect(removed.partitionCount == 1)

        // Removed and created again with the same id in that delta: only the new partition.
        let recreated = Self.replay(
            base,
            changes + [
                .removeTopic(RemoveTopicRecord(topicId: Self.orders)),
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [5, 6], leader: -1),
            ])
        #expect(Self.named(recreated, 5) == ["orders-0"])
        #expect(Self.named(recreated, 2) == [])
        #expect(Self.named(recreated, 1) == ["audit-0"])
        #expect(Self.leaderless(recreated) == ["orders-0"])
        #expect(recreated.partitionCount == 2)
    }

    @Test(
        "an image read mid-delta has its indexes up to date, and a second apply() moves partitions from where the first left them"
    )
    func readMidDeltaAndApplyAgain() {
        let base = Self.replay(
            .empty,
            [
                .topic(TopicRecord(name: "orders", topicId: Self.orders)),
                Self.partition(Self.orders, 0, replicas: [1, 2, 3]),
            ])
        var delta = MetadataDelta(base)
        delta.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [1], leader: -1)),
            offset: 10, epoch: 1)
        let middle = delta.image
        #expect(middle.partitionIndexesAreConsistent())
        #expect(Self.leaderless(middle) == ["orders-0"])
        let first = delta.apply()
        #expect(first == middle)
        delta.replay(
            .partitionChange(PartitionChangeRecord(partitionId: 0, topicId: Self.orders, isr: [1, 7], leader: 7)),
            offset: 11, epoch: 1)
        let second = delta.apply()
        #expect(second.partitionIndexesAreConsistent())
        #expect(Self.leaderless(second) == [])
        #expect(Self.named(second, 7) == ["orders-0"])
        #expect(Self.leaderless(first) == ["orders-0"], "the first image keeps its value")
    }

    /// 30 topics of 100 partitions, RF 3 over brokers 1-5: above the size a debug `apply()`
    /// checks by a full scan, so it checks the partitions each delta touched.
    static func bigImage() -> MetadataImage {
        var records: [MetadataRecord] = []
        for t in 0..<30 {
            let id = KafkaUUID(high: 22, low: UInt64(t))
            records.append(.topic(TopicRecord(name: "big\(t)", topicId: id)))
            for i in 0..<100 {
                let first = Int32((t + i) % 5)
                records.append(
                    Self.partition(id, Int32(i), replicas: [first + 1, (first + 1) % 5 + 1, (first + 2) % 5 + 1]))
            }
        }
        let image = Self.replay(.empty, records)
        #expect(image.partitionCount == 3_000)
        #expect(image.partitionCount > MetadataImage.indexFullCheckPartitionsMax)
        return image
    }

    @Test("random deltas on an image above the full-check size keep the indexes equal to a scan")
    func bigImageRandomDeltas() {
        var image = Self.bigImage()
        var rng = SeededRandom(seed: 21)
        var removed: Set<UInt64> = []
        for _ in 0..<30 {
            var records: [MetadataRecord] = []
            for _ in 0..<40 {
                var t = rng.next() % 30
                var id = KafkaUUID(high: 22, low: t)
                // The first 20 partitions of each topic: each is changed again and again, so
                // partitions lose leaders and get them back across deltas.
                let index = Int32(rng.next() % 20)
                switch rng.next() % 10 {
                case 0:
                    // One of the first five topics is removed, or created again with fewer
                    // partitions (the image stays above the full-check size).
                    t %= 5
                    id = KafkaUUID(high: 22, low: t)
                    if removed.contains(t) {
                        records.append(.topic(TopicRecord(name: "big\(t)", topicId: id)))
                        for i in Int32(0)..<10 { records.append(Self.partition(id, i, replicas: [6, 7, 1])) }
                        removed.remove(t)
                    } else {
                        records.append(.removeTopic(RemoveTopicRecord(topicId: id)))
                        removed.insert(t)
                    }
                case 1, 2:
                    records.append(
                        .partitionChange(PartitionChangeRecord(partitionId: index, topicId: id, leader: -1)))
                case 3, 4:
                    let leader = Int32(rng.next() % 8)
                    records.append(
                        .partitionChange(
                            PartitionChangeRecord(
                                partitionId: index, topicId: id, isr: [leader, Int32(rng.next() % 8)], leader: leader)))
                case 5:
                    var move = PartitionChangeRecord(partitionId: index, topicId: id, isr: [4, 5], leader: 4)
                    move.replicas = [4, 5, Int32(rng.next() % 8)]
                    records.append(.partitionChange(move))
                default:
                    records.append(
                        .partitionChange(
                            PartitionChangeRecord(
                                partitionId: index, topicId: id, isr: [Int32(rng.next() % 5 + 1)])))
                }
            }
            image = Self.replay(image, records)
        }
        #expect(image.partitionCount > MetadataImage.indexFullCheckPartitionsMax)
        #expect(!image.leaderlessPartitions.isEmpty)
    }

    @Test(
        "the touched-partition check of a big image finds a partition left out, one under a broker it does not name, a wrong leaderless entry and a wrong count"
    )
    func touchedCheckFindsPlantedErrors() {
        let image = Self.bigImage()
        let id = KafkaUUID(high: 22, low: 3)
        let touched: [KafkaUUID: [Int32]] = [id: [7]]
        let replicas = image.topic(id: id)!.partitions[7]!.replicas
        #expect(image.partitionIndexesHold(touched: touched))

        var leftOut = image
        leftOut.brokerIndexByTopic[id]![replicas[1]]!.removeAll { $0 == 7 }
        #expect(!leftOut.partitionIndexesHold(touched: touched))
        var underAnother = image
        underAnother.brokerIndexByTopic[id]![42, default: []].append(7)
        #expect(!underAnother.partitionIndexesHold(touched: touched))
        var leaderless = image
        leaderless.leaderlessPartitions[id, default: []].insert(7)
        leaderless.offlinePartitionCount += 1
        #expect(!leaderless.partitionIndexesHold(touched: touched))
        var miscounted = image
        miscounted.partitionCount -= 1
        #expect(!miscounted.partitionIndexesHold(touched: touched))
        // An error in a topic the delta did not touch is not looked for.
        #expect(leftOut.partitionIndexesHold(touched: [KafkaUUID(high: 22, low: 4): [8]]))
    }

    /// `randomRecords` never takes a leader away; this adds changes that leave some partitions
    /// without one (and some that give it back), so the leaderless index has work.
    static func withLeaderless(_ records: [MetadataRecord], _ rng: inout SeededRandom) -> [MetadataRecord] {
        var out = records
        for case .partition(let p) in records where rng.next() % 3 == 0 {
            out.append(
                .partitionChange(PartitionChangeRecord(partitionId: p.partitionId, topicId: p.topicId, leader: -1)))
            if rng.next() % 4 == 0 {
                out.append(
                    .partitionChange(
                        PartitionChangeRecord(partitionId: p.partitionId, topicId: p.topicId, isr: [2], leader: 2)))
            }
        }
        return out
    }

    @Test("random histories keep the indexes equal to a scan, in every delta size", arguments: [1, 7, 1000])
    func randomHistories(recordsPerDelta: Int) {
        for seed: UInt64 in 1...20 {
            var rng = SeededRandom(seed: seed)
            let records = Self.withLeaderless(randomRecords(&rng, count: 300), &rng)
            var image = MetadataImage.empty
            for start in stride(from: 0, to: records.count, by: recordsPerDelta) {
                image = Self.replay(image, Array(records[start..<min(start + recordsPerDelta, records.count)]))
            }
            let scanned = image.scanPartitionIndexes()
            #expect(!image.leaderlessPartitions.isEmpty || seed > 3, "seed \(seed) leaves some partition leaderless")
            #expect(image.brokerIndexByTopic == scanned.byTopic, "seed \(seed)")
            #expect(image.leaderlessPartitions == scanned.leaderless, "seed \(seed)")
        }
    }

    /// `electionChanges` as it was before the indexes: every partition of every topic, in topic
    /// name order, each decided by the same rule.
    static func electionChangesByFullWalk(
        _ c: QuorumController, image: MetadataImage, live: Set<Int32>
    ) -> [PartitionChangeRecord] {
        var changes: [PartitionChangeRecord] = []
        for name in image.topicNames {
            let topic = image.topic(named: name)!
            let unclean = c.resolver.topicValue("unclean.leader.election.enable", topic: name, image: image) == "true"
            for index in topic.partitions.keys.sorted() {
                if let change = QuorumController.electionChange(
                    topic.partitions[index]!, partitionId: index, topicId: topic.id, live: live, unclean: unclean)
                {
                    changes.append(change)
                }
            }
        }
        return changes
    }

    @Test("electionChanges through the indexes equals the full walk, on random images and live sets")
    func electionChangesMatchFullWalk() {
        var compared = 0
        for seed: UInt64 in 1...40 {
            var rng = SeededRandom(seed: seed)
            var records = Self.withLeaderless(randomRecords(&rng, count: 200), &rng)
            // Some topics elect uncleanly.
            for case .topic(let t) in records where rng.next() % 3 == 0 {
                records.append(
                    .config(
                        ConfigRecord(
                            resourceType: ConfigResourceType.topic.rawValue, resourceName: t.name,
                            name: "unclean.leader.election.enable", value: "true")))
            }
            let image = Self.replay(.empty, records)
            let c = controller(image)
            for _ in 0..<5 {
                let live = Set((Int32(0)...6).filter { _ in rng.next() % 3 != 0 })
                let indexed = c.electionChanges(image: image, live: live)
                #expect(indexed == Self.electionChangesByFullWalk(c, image: image, live: live), "seed \(seed)")
                compared += indexed.count
            }
        }
        #expect(compared > 100, "the random images give elections to compare")
    }

    @Test("the content checksum is FNV-1a 64 over each canonical record's own encoding")
    func checksumDefinition() {
        var rng = SeededRandom(seed: 7)
        let image = Self.replay(.empty, randomRecords(&rng, count: 400))
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for record in image.records() {
            for byte in MetadataRecordFrame.encode(record).readableBytesView {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
        }
        #expect(image.records().count > 50)
        #expect(image.contentChecksum == hash)
    }
}
