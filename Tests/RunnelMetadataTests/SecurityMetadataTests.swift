// ACLs and SCRAM credentials in the metadata image: AccessControlEntry/RemoveAccessControlEntry
// and UserScramCredential/RemoveUserScramCredential records replayed through a delta (which says
// what changed), written out as canonical records, stored in and loaded from SQLite snapshots
// (schema version 2, and version 1 files still load), shown in the browsable tree, and followed
// by a StandardAuthorizer.
import Foundation
import GRDB
import NIOCore
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelSnapshotStore
import RunnelTestSupport
import RunnelWire
import Testing

func aclRecord(
    _ id: UInt64, _ name: String, _ pattern: PatternType = .literal, type: ResourceType = .topic,
    principal: String = "User:alice",
    operation: AclOperation = .read, permission: AclPermissionType = .allow
) -> MetadataRecord {
    .accessControlEntry(
        AclBinding(type, name, pattern, principal: principal, operation: operation, permission: permission)
            .record(id: KafkaUUID(high: 0xAC1, low: id)))
}

func scramRecord(
    _ user: String, _ mechanism: ScramMechanism = .scramSha256, iterations: Int32 = 4096, seed: UInt8 = 1
) -> MetadataRecord {
    .userScramCredential(
        UserScramCredentialRecord(
            name: user, mechanism: mechanism.rawValue, salt: ByteBuffer(bytes: [seed, 2, 3]),
            storedKey: ByteBuffer(bytes: [seed, 4]),
            serverKey: ByteBuffer(bytes: [seed, 5]), iterations: iterations))
}

func replayed(_ records: [MetadataRecord], on base: MetadataImage = .empty) -> MetadataDelta {
    var delta = MetadataDelta(base)
    for (offset, record) in records.enumerated() {
        delta.replay(record, offset: base.provenance.lastOffset + 1 + Int64(offset), epoch: 2)
    }
    return delta
}

@Suite("ACLs and SCRAM credentials in the metadata image")
struct SecurityMetadataTests {
    @Test(
        "AccessControlEntryRecords are kept by id; a RemoveAccessControlEntryRecord removes one; the delta names both")
    func aclReplay() {
        let first = replayed([aclRecord(1, "orders"), aclRecord(2, "pay", .prefixed)])
        let image = first.apply()
        #expect(image.acls.count == 2)
        #expect(first.changedAcls == [KafkaUUID(high: 0xAC1, low: 1), KafkaUUID(high: 0xAC1, low: 2)])
        #expect(image.provenance.lastOffset == 1)
        let second = replayed(
            [
                .removeAccessControlEntry(RemoveAccessControlEntryRecord(id: KafkaUUID(high: 0xAC1, low: 1))),
                .removeAccessControlEntry(RemoveAccessControlEntryRecord(id: KafkaUUID(high: 9, low: 9))),
            ], on: image)
        #expect(second.apply().acls.keys.map { $0 } == [KafkaUUID(high: 0xAC1, low: 2)])
        #expect(second.changedAcls == [KafkaUUID(high: 0xAC1, low: 1)], "removing an unknown id changes nothing")
        #expect(second.apply().provenance.recordCount == 4)
    }

    @Test(
        "UserScramCredentialRecords are kept by (user, mechanism), replaced by a later one and removed by RemoveUserScramCredentialRecord"
    )
    func scramReplay() {
        let first = replayed([scramRecord("alice"), scramRecord("alice", .scramSha512), scramRecord("bob")])
        var image = first.apply()
        #expect(image.scramCredentials.count == 3)
        #expect(first.changedScramCredentials.count == 3)
        let replaced = replayed([scramRecord("alice", iterations: 8192, seed: 9)], on: image)
        image = replaced.apply()
        #expect(image.scramCredential(user: "alice", mechanism: 1)?.iterations == 8192)
        #expect(image.scramCredential(user: "alice", mechanism: 1)?.storedKey == [9, 4])
        let removed = replayed(
            [
                .removeUserScramCredential(RemoveUserScramCredentialRecord(name: "alice", mechanism: 2)),
                .removeUserScramCredential(RemoveUserScramCredentialRecord(name: "carol", mechanism: 1)),
            ], on: image)
        image = removed.apply()
        #expect(image.scramCredential(user: "alice", mechanism: 2) == nil)
        #expect(image.scramCredential(user: "alice", mechanism: 1) != nil)
        #expect(removed.changedScramCredentials == [ScramCredentialKey(user: "alice", mechanism: 2)])
    }

    @Test("user names are keys byte for byte: canonically equivalent names are two users")
    func exactUserNames() {
        let image = replayed([scramRecord("caf\u{E9}"), scramRecord("cafe\u{301}", seed: 7)]).apply()
        #expect(image.scramCredentials.count == 2)
        #expect(image.scramCredential(user: "cafe\u{301}", mechanism: 1)?.storedKey == [7, 4])
        #expect(MetadataImage.replaying(image.records(), provenance: image.provenance) == image)
    }

    @Test("the canonical records hold the ACLs and credentials, and replaying them gives the image back")
    func canonicalRecords() {
        let image = replayed([
            aclRecord(2, "b"), aclRecord(1, "a"), scramRecord("bob"), scramRecord("alice", .scramSha512),
        ]).apply()
        let records = image.records()
        #expect(records.filter { if case .accessControlEntry = $0 { true } else { false } }.count == 2)
        let users = records.compactMap { if case .userScramCredential(let r) = $0 { r.name } else { nil } }
        #expect(users == ["alice", "bob"])
        #expect(MetadataImage.replaying(records, provenance: image.provenance) == image)
    }

    @Test("a delta of everything names every ACL and credential")
    func everything() {
        let image = replayed([aclRecord(1, "a"), scramRecord("alice")]).apply()
        let delta = MetadataDelta.everything(image)
        #expect(delta.changedAcls == [KafkaUUID(high: 0xAC1, low: 1)])
        #expect(delta.changedScramCredentials == [ScramCredentialKey(user: "alice", mechanism: 1)])
    }

    @Test("ACLs and credentials survive an SQLite snapshot, in tables of their own, salted keys only")
    func snapshotRoundTrip() throws {
        let image = replayed([
            .featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21)), aclRecord(1, "orders"),
            aclRecord(2, "g-", .prefixed, type: .group, operation: .all, permission: .deny), scramRecord("alice"),
            scramRecord("bob", .scramSha512, iterations: 8192),
        ]).apply()
        let dir = scratchDirectory("security-snapshots")
        let path = try SQLiteSnapshot.write(
            image, clusterId: "c", endOffset: 5, epoch: 2, voters: [1], lastContainedTimestamp: 0, directory: dir)
        let loaded = try SQLiteSnapshot.read(path)
        #expect(loaded.header.schemaVersion == SQLiteSnapshot.schemaVersion)
        #expect(loaded.image == image)
        let rows = try SQLiteSnapshot.query(
            path, sql: "SELECT name, mechanism, hex(salt), iterations FROM scram_credentials ORDER BY name")
        #expect(rows.columns == ["name", "mechanism", "hex(salt)", "iterations"])
        #expect(rows.rows == [["alice", "1", "010203", "4096"], ["bob", "2", "010203", "8192"]])
        let columns = try SQLiteSnapshot.query(path, sql: "SELECT name FROM pragma_table_info('scram_credentials')")
            .rows.map { $0[0]! }
        #expect(columns == ["name", "mechanism", "salt", "stored_key", "server_key", "iterations"])
        #expect(try SQLiteSnapshot.query(path, sql: "SELECT count(*) FROM acls").rows == [["2"]])
    }

    @Test("a snapshot of schema version 1 (before SCRAM credentials had a table) still loads")
    func schemaVersion1() throws {
        let image = replayed([
            .featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21)), aclRecord(1, "orders"),
        ]).apply()
        let dir = scratchDirectory("security-snapshots-v1")
        let current = try SQLiteSnapshot.write(
            image, clusterId: "c", endOffset: 2, epoch: 2, voters: [1], lastContainedTimestamp: 0, directory: dir)
        // Make it what a version 1 build wrote: no scram_credentials table, schema_version 1.
        let old = dir + "/" + SQLiteSnapshot.fileName(endOffset: 1, epoch: 2)
        try FileManager.default.copyItem(atPath: current, toPath: old)
        let queue = try DatabaseQueue(path: old)
        try queue.write { db in
            try db.execute(sql: "DROP TABLE scram_credentials")
            try db.execute(sql: "DROP TABLE broker_features")
            try db.execute(sql: "DROP TABLE controllers")
            try db.execute(sql: "DROP TABLE controller_endpoints")
            try db.execute(sql: "DROP TABLE controller_features")
            try db.execute(sql: "UPDATE snapshot SET schema_version = 1")
        }
        try queue.close()
        let loaded = try SQLiteSnapshot.read(old)
        #expect(loaded.header.schemaVersion == 1)
        #expect(loaded.image == image)
        #expect(loaded.image.scramCredentials.isEmpty)
    }

    @Test("a snapshot of a newer schema version is refused")
    func newerSchema() throws {
        let dir = scratchDirectory("security-snapshots-newer")
        let path = try SQLiteSnapshot.write(
            .empty, clusterId: "c", endOffset: 0, epoch: 0, voters: [], lastContainedTimestamp: 0, directory: dir)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(
                sql: "UPDATE snapshot SET schema_version = ?", arguments: [SQLiteSnapshot.schemaVersion + 1])
        }
        try queue.close()
        #expect(throws: SnapshotError.self) { try SQLiteSnapshot.read(path) }
    }

    @Test("the tree shows /scram/<mechanism>/<user> with salt and iterations, the keys redacted")
    func tree() {
        let image = replayed([scramRecord("alice"), scramRecord("alice", .scramSha512), scramRecord("ops/team")])
            .apply()
        let root = MetadataTree.build(image)
        #expect(root.node(at: "/scram")?.children.map(\.name) == ["SCRAM-SHA-256", "SCRAM-SHA-512"])
        #expect(root.node(at: "/scram/SCRAM-SHA-256")?.children.map(\.name) == ["alice", "ops%2Fteam"])
        let alice = root.node(at: "/scram/SCRAM-SHA-512/alice")!
        #expect(alice.fields.map(\.name) == ["user", "mechanism", "iterations", "salt", "storedKey", "serverKey"])
        #expect(alice.field("iterations") == .int(4096))
        #expect(alice.field("salt") == .string("010203"))
        #expect(alice.field("storedKey") == .string("[redacted]"))
        #expect(alice.field("serverKey") == .string("[redacted]"))
        #expect(root.node(at: "/scram/SCRAM-SHA-256/ops%2Fteam")?.field("user") == .string("ops/team"))
        #expect(MetadataTree.build(.empty).node(at: "/scram")?.isDirectory == true)
    }

    @Test("a StandardAuthorizer built from an image follows its deltas")
    func authorizerFollowsDeltas() {
        let image = replayed([aclRecord(1, "orders"), aclRecord(2, "orders", principal: "User:bob", permission: .deny)])
            .apply()
        var authorizer = StandardAuthorizer(image: image)
        #expect(authorizer.authorize(.user("alice"), host: "h", operation: .read, resource: .topic("orders")))
        let delta = replayed(
            [
                .removeAccessControlEntry(RemoveAccessControlEntryRecord(id: KafkaUUID(high: 0xAC1, low: 1))),
                aclRecord(3, "orders", principal: "User:carol"),
            ], on: image)
        authorizer.apply(delta)
        #expect(authorizer.aclCount == 2)
        #expect(!authorizer.authorize(.user("alice"), host: "h", operation: .read, resource: .topic("orders")))
        #expect(authorizer.authorize(.user("carol"), host: "h", operation: .read, resource: .topic("orders")))
        var rebuilt = StandardAuthorizer()
        rebuilt.apply(MetadataDelta.everything(delta.apply()))
        #expect(rebuilt.acls.map(\.id) == authorizer.acls.map(\.id))
    }
}
