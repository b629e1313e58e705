// SQLite snapshots: for random sequences of metadata records, the image loaded from a snapshot
// equals the image replayed from the log at the same offset, and so does the image rebuilt from
// the canonical records. A tampered file is refused by its checksum.
import Foundation
import GRDB
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelSnapshotStore
import RunnelTestSupport
import RunnelWire
import Testing

/// A random but meaningful metadata history: brokers register and fence, topics come and go,
/// partitions change leaders and ISRs, configs are set and removed, producer ids advance, ACLs
/// and SCRAM credentials are created and removed.
func randomRecords(_ rng: inout SeededRandom, count: Int) -> [MetadataRecord] {
    var out: [MetadataRecord] = [.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21))]
    var topics: [(KafkaUUID, String, Int32)] = []
    var acls: [KafkaUUID] = []
    for i in 0..<count {
        switch rng.next() % 13 {
        case 0:
            let id = Int32(rng.next() % 5)
            out.append(
                .registerBroker(
                    RegisterBrokerRecord(
                        brokerId: id, incarnationId: KafkaUUID(high: rng.next(), low: rng.next()),
                        brokerEpoch: Int64(i),
                        endPoints: [
                            .init(name: "PLAINTEXT", host: "h\(id)", port: UInt16(9000 + id), securityProtocol: 0)
                        ],
                        rack: rng.next() % 2 == 0 ? nil : "r\(id % 2)", fenced: rng.next() % 2 == 0)))
        case 1:
            let id = KafkaUUID(high: rng.next(), low: rng.next())
            let name = "t\(i)"
            topics.append((id, name, 0))
            out.append(.topic(TopicRecord(name: name, topicId: id)))
        case 2, 3:
            guard !topics.isEmpty else { continue }
            let k = Int(rng.next() % UInt64(topics.count))
            let (id, _, n) = topics[k]
            out.append(
                .partition(
                    PartitionRecord(
                        partitionId: n, topicId: id, replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1, leaderEpoch: 0,
                        partitionEpoch: 0)))
            topics[k].2 += 1
        case 4:
            guard let t = topics.randomElement(using: &rng), t.2 > 0 else { continue }
            var change = PartitionChangeRecord(
                partitionId: Int32(rng.next() % UInt64(t.2)), topicId: t.0,
                isr: [Int32(rng.next() % 3 + 1)], leader: rng.next() % 2 == 0 ? -2 : Int32(rng.next() % 3 + 1))
            if rng.next() % 3 == 0 {
                // A reassignment in progress (KIP-455): its sets must survive a snapshot.
                change.replicas = [4, 1, 2, 3]
                change.addingReplicas = [4]
                change.removingReplicas = [3]
            }
            out.append(.partitionChange(change))
        case 5:
            guard let t = topics.randomElement(using: &rng) else { continue }
            out.append(
                .config(
                    ConfigRecord(
                        resourceType: 2, resourceName: t.1, name: "retention.ms",
                        value: rng.next() % 3 == 0 ? nil : "\(rng.next() % 1000)")))
        case 6:
            guard !topics.isEmpty, rng.next() % 3 == 0 else { continue }
            let t = topics.remove(at: Int(rng.next() % UInt64(topics.count)))
            out.append(.removeTopic(RemoveTopicRecord(topicId: t.0)))
        case 7:
            out.append(.producerIds(ProducerIdsRecord(brokerId: 1, brokerEpoch: 0, nextProducerId: Int64(i) * 1000)))
        case 9:
            let id = KafkaUUID(high: rng.next(), low: rng.next())
            acls.append(id)
            out.append(
                .accessControlEntry(
                    AccessControlEntryRecord(
                        id: id, resourceType: Int8(rng.next() % 6 + 2), resourceName: "r\(rng.next() % 5)",
                        patternType: Int8(rng.next() % 2 + 3),
                        principal: "User:u\(rng.next() % 3)",
                        host: rng.next() % 2 == 0 ? "*" : "10.0.0.\(rng.next() % 4)",
                        operation: Int8(rng.next() % 13 + 2), permissionType: Int8(rng.next() % 2 + 2))))
        case 10:
            guard !acls.isEmpty else { continue }
            out.append(
                .removeAccessControlEntry(
                    RemoveAccessControlEntryRecord(id: acls.remove(at: Int(rng.next() % UInt64(acls.count))))))
        case 11:
            let user = "user\(rng.next() % 4)", mechanism = Int8(rng.next() % 2 + 1)
            if rng.next() % 4 == 0 {
                out.append(
                    .removeUserScramCredential(RemoveUserScramCredentialRecord(name: user, mechanism: mechanism)))
            } else {
                func key() -> ByteBuffer {
                    ByteBuffer(bytes: (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                }
                out.append(
                    .userScramCredential(
                        UserScramCredentialRecord(
                            name: user, mechanism: mechanism, salt: key(), storedKey: key(), serverKey: key(),
                            iterations: Int32(4096 + rng.next() % 4096))))
            }
        case 12:
            // Client quotas: a user, a client id or both, each named or the default.
            func name(_ prefix: String) -> String? { rng.next() % 3 == 0 ? nil : "\(prefix)\(rng.next() % 3)" }
            var entity: [ClientQuotaRecord.EntityData] = []
            let shape = rng.next() % 3
            if shape != 1 { entity.append(.init(entityType: "client-id", entityName: name("app"))) }
            if shape != 0 { entity.append(.init(entityType: "user", entityName: name("user"))) }
            let key = ["producer_byte_rate", "consumer_byte_rate", "request_percentage"][Int(rng.next() % 3)]
            out.append(
                .clientQuota(
                    ClientQuotaRecord(
                        entity: entity, key: key, value: Double(1 + rng.next() % 1_000_000),
                        remove: rng.next() % 4 == 0)))
        default:
            out.append(
                .config(
                    ConfigRecord(
                        resourceType: 4, resourceName: "", name: "log.retention.ms", value: "\(rng.next() % 100000)")))
        }
    }
    return out
}

@Suite("SQLite snapshots")
struct SnapshotTests {
    func directory() -> String { scratchDirectory("snapshots") }

    @Test("the image loaded from a snapshot equals the image replayed from the log", arguments: 0..<12)
    func roundTrip(seed: Int) throws {
        var rng = SeededRandom(seed: UInt64(seed))
        let records = randomRecords(&rng, count: 40 + seed * 25)
        var delta = MetadataDelta(.empty)
        for (offset, record) in records.enumerated() { delta.replay(record, offset: Int64(offset), epoch: 3) }
        let image = delta.apply()
        let dir = directory()
        let path = try SQLiteSnapshot.write(
            image, clusterId: "c1", endOffset: Int64(records.count), epoch: 3, voters: [1, 2, 3],
            lastContainedTimestamp: 42, directory: dir)
        #expect(path.hasSuffix(SQLiteSnapshot.fileName(endOffset: Int64(records.count), epoch: 3)))
        let loaded = try SQLiteSnapshot.read(path)
        #expect(loaded.image == image)
        #expect(loaded.header.endOffset == Int64(records.count))
        #expect(loaded.voters == [1, 2, 3])
        // The canonical records rebuild the same image.
        #expect(MetadataImage.replaying(image.records(), provenance: image.provenance) == image)
        // SQL over the file sees the tables.
        let count = try SQLiteSnapshot.query(path, sql: "SELECT count(*) FROM partitions")
        #expect(count.rows.first?.first == String(image.topicsById.values.reduce(0) { $0 + $1.partitionCount }))
        #expect(throws: SnapshotError.self) { try SQLiteSnapshot.query(path, sql: "DELETE FROM topics") }
    }

    @Test("a snapshot's partitions sit in 64 KiB pages without a rowid, and a file of the older layout still loads")
    func layouts() throws {
        var rng = SeededRandom(seed: 7)
        var delta = MetadataDelta(.empty)
        for (offset, record) in randomRecords(&rng, count: 300).enumerated() {
            delta.replay(record, offset: Int64(offset), epoch: 2)
        }
        let image = delta.apply()
        #expect(image.partitionCount > 0)
        let dir = directory()
        let path = try SQLiteSnapshot.write(
            image, clusterId: "c", endOffset: 300, epoch: 2, voters: [1], lastContainedTimestamp: 0, directory: dir)
        let queue = try DatabaseQueue(path: path)
        let (pageSize, ddl) = try queue.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA page_size"),
                try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'partitions'")
            )
        }
        #expect(pageSize == 65536)
        #expect(ddl?.contains("WITHOUT ROWID") == true)
        // The layout written up to schema version 3's first release: a rowid table, 4 KiB pages.
        try queue.inDatabase { db in
            try db.execute(
                sql: """
                    CREATE TABLE old_partitions (
                        topic_id TEXT NOT NULL, topic_name TEXT NOT NULL, partition INTEGER NOT NULL,
                        leader INTEGER NOT NULL, leader_epoch INTEGER NOT NULL, partition_epoch INTEGER NOT NULL,
                        replicas TEXT NOT NULL, isr TEXT NOT NULL, removing_replicas TEXT NOT NULL,
                        adding_replicas TEXT NOT NULL, leader_recovery_state INTEGER NOT NULL,
                        eligible_leader_replicas TEXT NOT NULL, last_known_elr TEXT NOT NULL,
                        PRIMARY KEY (topic_id, partition));
                    INSERT INTO old_partitions SELECT * FROM partitions;
                    DROP TABLE partitions;
                    ALTER TABLE old_partitions RENAME TO partitions;
                    PRAGMA page_size = 4096;
                    VACUUM;
                    """)
        }
        try queue.close()
        let ddlAfter = try SQLiteSnapshot.query(path, sql: "SELECT sql FROM sqlite_master WHERE name = 'partitions'")
        #expect(ddlAfter.rows.first?.first??.contains("WITHOUT ROWID") == false)
        #expect(try SQLiteSnapshot.query(path, sql: "PRAGMA page_size").rows.first?.first == "4096")
        #expect(try SQLiteSnapshot.read(path).image == image)
    }

    @Test("a tampered snapshot is refused")
    func tampered() throws {
        var rng = SeededRandom(seed: 99)
        var delta = MetadataDelta(.empty)
        for (offset, record) in randomRecords(&rng, count: 60).enumerated() {
            delta.replay(record, offset: Int64(offset), epoch: 1)
        }
        let dir = directory()
        let path = try SQLiteSnapshot.write(
            delta.apply(), clusterId: "c", endOffset: 60, epoch: 1, voters: [1], lastContainedTimestamp: 0,
            directory: dir)
        // Change a row behind the checksum's back.
        let copy = dir + "/copy.sqlite"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [copy, "UPDATE features SET level = 7"]
        if FileManager.default.fileExists(atPath: "/usr/bin/sqlite3") {
            try process.run()
            process.waitUntilExit()
            #expect(throws: SnapshotError.self) { try SQLiteSnapshot.read(copy) }
        }
        try "not a database".write(toFile: dir + "/junk.sqlite", atomically: true, encoding: .utf8)
        #expect(throws: SnapshotError.self) { try SQLiteSnapshot.read(dir + "/junk.sqlite") }
        #expect(throws: SnapshotError.self) { try SQLiteSnapshot.read(dir + "/missing.sqlite") }
    }
}
