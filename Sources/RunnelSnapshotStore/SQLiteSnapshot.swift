import Foundation
import GRDB
import GRDBSQLite
import RunnelCore
import RunnelMetadata
import RunnelWire

/// A metadata snapshot as an SQLite file: one table per kind of metadata, plus a `snapshot` row
/// naming the cluster, the offset and epoch it covers, the record count and a checksum of the
/// logical content. Any SQLite tool can open it. Written to a temp file, synced, renamed, and the
/// directory synced, so a crash leaves either the old set of snapshots or the new one.
public enum SQLiteSnapshot {
    /// Bumped when the tables change; readers refuse newer versions and read older ones.
    /// Version 2 added `scram_credentials`; version 3 `broker_features` (the feature ranges each
    /// broker registered with, which UpdateFeatures is checked against), the controllers'
    /// registrations (`controllers`, `controller_endpoints`, `controller_features`, KIP-919) and
    /// `client_quotas`.
    public static let schemaVersion = 3
    public static let suffix = ".checkpoint.sqlite"

    /// `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint.sqlite`, as Kafka names snapshots.
    public static func fileName(endOffset: Int64, epoch: Int32) -> String {
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(endOffset, 20))-\(pad(Int64(epoch), 10))\(suffix)"
    }

    /// Parses a snapshot file name; nil for other files.
    public static func parse(fileName name: String) -> (endOffset: Int64, epoch: Int32)? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        let parts = stem.split(separator: "-")
        guard parts.count == 2, let offset = Int64(parts[0]), let epoch = Int32(parts[1]) else { return nil }
        return (offset, epoch)
    }

    /// The tables. `partitions` is WITHOUT ROWID: its rows live in its primary key's B-tree
    /// instead of a rowid table plus an index, so a million partitions make a file 28% smaller
    /// (82 MB against 114 MB) and a write about 10% faster; a full scan still comes in key order,
    /// grouped by topic. Readers of older files are unaffected (same columns).
    static let schema = """
        CREATE TABLE snapshot (
            schema_version INTEGER NOT NULL, cluster_id TEXT NOT NULL, end_offset INTEGER NOT NULL, epoch INTEGER NOT NULL,
            last_offset INTEGER NOT NULL, last_epoch INTEGER NOT NULL, record_count INTEGER NOT NULL,
            last_contained_timestamp INTEGER NOT NULL, checksum TEXT NOT NULL);
        CREATE TABLE features (name TEXT PRIMARY KEY, level INTEGER NOT NULL);
        CREATE TABLE brokers (
            id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, incarnation_id TEXT NOT NULL, rack TEXT,
            fenced INTEGER NOT NULL, in_controlled_shutdown INTEGER NOT NULL, log_dirs TEXT NOT NULL);
        CREATE TABLE broker_endpoints (
            broker_id INTEGER NOT NULL, listener TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
            security_protocol INTEGER NOT NULL, PRIMARY KEY (broker_id, listener));
        CREATE TABLE broker_features (
            broker_id INTEGER NOT NULL, name TEXT NOT NULL, min_version INTEGER NOT NULL, max_version INTEGER NOT NULL,
            PRIMARY KEY (broker_id, name));
        CREATE TABLE controllers (id INTEGER PRIMARY KEY, incarnation_id TEXT NOT NULL);
        CREATE TABLE controller_endpoints (
            controller_id INTEGER NOT NULL, listener TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
            security_protocol INTEGER NOT NULL, PRIMARY KEY (controller_id, listener));
        CREATE TABLE controller_features (
            controller_id INTEGER NOT NULL, name TEXT NOT NULL, min_version INTEGER NOT NULL,
            max_version INTEGER NOT NULL, PRIMARY KEY (controller_id, name));
        CREATE TABLE topics (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE partitions (
            topic_id TEXT NOT NULL, topic_name TEXT NOT NULL, partition INTEGER NOT NULL, leader INTEGER NOT NULL,
            leader_epoch INTEGER NOT NULL, partition_epoch INTEGER NOT NULL, replicas TEXT NOT NULL, isr TEXT NOT NULL,
            removing_replicas TEXT NOT NULL, adding_replicas TEXT NOT NULL, leader_recovery_state INTEGER NOT NULL,
            eligible_leader_replicas TEXT NOT NULL, last_known_elr TEXT NOT NULL,
            PRIMARY KEY (topic_id, partition)) WITHOUT ROWID;
        CREATE TABLE configs (
            resource_type INTEGER NOT NULL, resource_name TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (resource_type, resource_name, name));
        CREATE TABLE producer_ids (next_producer_id INTEGER NOT NULL, broker_id INTEGER NOT NULL);
        CREATE TABLE acls (
            id TEXT PRIMARY KEY, resource_type INTEGER NOT NULL, resource_name TEXT NOT NULL, pattern_type INTEGER NOT NULL,
            principal TEXT NOT NULL, host TEXT NOT NULL, operation INTEGER NOT NULL, permission_type INTEGER NOT NULL);
        CREATE TABLE voters (node_id INTEGER PRIMARY KEY);
        CREATE TABLE scram_credentials (
            name TEXT NOT NULL, mechanism INTEGER NOT NULL, salt BLOB NOT NULL, stored_key BLOB NOT NULL, server_key BLOB NOT NULL,
            iterations INTEGER NOT NULL, PRIMARY KEY (name, mechanism));
        CREATE TABLE client_quotas (
            entity TEXT NOT NULL, has_user INTEGER NOT NULL, user TEXT, has_client_id INTEGER NOT NULL, client_id TEXT,
            key TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (entity, key));
        """

    /// A list column's text: the integers in decimal, joined by commas ("" for none).
    static func list(_ values: [Int32]) -> String {
        var bytes: [UInt8] = []
        appendList(values, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `list(values)`'s UTF-8 to `out`, digit by digit, with no String in between.
    static func appendList(_ values: [Int32], to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        )
        for (position, value) in values.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            if value < 0 { out.append(UInt8(ascii: "-")) }
            // The magnitude as UInt32, so Int32.min has one too.
            var magnitude = value.magnitude
            var count = 0
            withUnsafeMutableBytes(of: &digits) { buffer in
                repeat {
                    buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                    magnitude /= 10
                    count += 1
                } while magnitude > 0
                while count > 0 {
                    count -= 1
                    out.append(buffer[count])
                }
            }
        }
    }
    /// The integers of a `list` column. Digits are read straight from the UTF-8 bytes (a
    /// million partitions have four such columns each); anything but digits, one leading minus
    /// and commas takes the general parse.
    static func ints(_ text: String) -> [Int32] {
        var out: [Int32] = []
        var utf8 = text
        let parsed: Bool = utf8.withUTF8 { bytes in
            var value: Int64 = 0
            var digits = 0
            var negative = false
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                    digits += 1
                    guard digits <= 10 else { return false }
                case UInt8(ascii: "-") where digits == 0 && !negative:
                    negative = true
                case UInt8(ascii: ","):
                    guard digits > 0, let v = Int32(exactly: negative ? -value : value) else { return false }
                    out.append(v)
                    (value, digits, negative) = (0, 0, false)
                default:
                    return false
                }
            }
            // Empty text is the empty list; a trailing comma or minus takes the general parse.
            if digits == 0 { return bytes.isEmpty }
            guard let v = Int32(exactly: negative ? -value : value) else { return false }
            out.append(v)
            return true
        }
        return parsed ? out : text.split(separator: ",").compactMap { Int32($0) }
    }

    /// Writes `image` as the snapshot ending at `endOffset` (exclusive) in `epoch`, atomically.
    /// Returns the file's path.
    @discardableResult
    public static func write(
        _ image: MetadataImage, clusterId: String, endOffset: Int64, epoch: Int32, voters: [Int32],
        lastContainedTimestamp: Int64, directory: String
    ) throws -> String {
        let final = directory + "/" + fileName(endOffset: endOffset, epoch: epoch)
        let temp = final + ".tmp"
        try? FileManager.default.removeItem(atPath: temp)
        do {
            // The file is private until the rename below, which comes after its fsync: a crash
            // mid-write leaves only a `.tmp` that start-up removes. So SQLite needs no rollback
            // journal and no syncs of its own (at a million partitions they made the write about
            // twice as slow), and a large page cache keeps the partitions' primary-key index in
            // memory while it grows.
            var config = Configuration()
            config.journalMode = .default
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA page_size = 65536")
                try db.execute(sql: "PRAGMA journal_mode = OFF")
                try db.execute(sql: "PRAGMA synchronous = OFF")
                try db.execute(sql: "PRAGMA cache_size = -262144")
            }
            // The checksum walks every record on a thread of its own while SQLite takes the rows;
            // the snapshot row that holds it goes in last.
            let checksum = BackgroundChecksum(image)
            let queue = try DatabaseQueue(path: temp, configuration: config)
            try queue.write { db in
                try db.execute(sql: schema)
                for name in image.features.keys.sorted() {
                    try db.execute(sql: "INSERT INTO features VALUES (?, ?)", arguments: [name, image.features[name]!])
                }
                for id in image.brokers.keys.sorted() {
                    let b = image.brokers[id]!
                    try db.execute(
                        sql: "INSERT INTO brokers VALUES (?, ?, ?, ?, ?, ?, ?)",
                        arguments: [
                            b.id.rawValue, b.epoch, b.incarnationId.description, b.rack, b.fenced,
                            b.inControlledShutdown,
                            b.logDirs.map(\.description).joined(separator: ","),
                        ])
                    for e in b.endpoints {
                        try db.execute(
                            sql: "INSERT INTO broker_endpoints VALUES (?, ?, ?, ?, ?)",
                            arguments: [
                                b.id.rawValue, e.listener, e.host, e.port, e.securityProtocol,
                            ])
                    }
                    for name in b.supportedFeatures.keys.sorted() {
                        let range = b.supportedFeatures[name]!
                        try db.execute(
                            sql: "INSERT INTO broker_features VALUES (?, ?, ?, ?)",
                            arguments: [b.id.rawValue, name, range.lowerBound, range.upperBound])
                    }
                }
                for id in image.controllers.keys.sorted() {
                    let c = image.controllers[id]!
                    try db.execute(
                        sql: "INSERT INTO controllers VALUES (?, ?)",
                        arguments: [c.id.rawValue, c.incarnationId.description])
                    for e in c.endpoints {
                        try db.execute(
                            sql: "INSERT INTO controller_endpoints VALUES (?, ?, ?, ?, ?)",
                            arguments: [c.id.rawValue, e.listener, e.host, e.port, e.securityProtocol])
                    }
                    for name in c.supportedFeatures.keys.sorted() {
                        let range = c.supportedFeatures[name]!
                        try db.execute(
                            sql: "INSERT INTO controller_features VALUES (?, ?, ?, ?)",
                            arguments: [c.id.rawValue, name, range.lowerBound, range.upperBound])
                    }
                }
                // One prepared statement per table of many rows, its parameters bound straight
                // through SQLite's C API (GRDB's per-row argument boxing was a fifth of the write
                // at a million partitions). Topics go in by id, the first column of the
                // partitions' primary key, so that index grows at its end instead of splitting
                // pages all over (rows of one topic stay together, which the loader relies on).
                let insertTopic = try RawInsert(db, sql: "INSERT INTO topics VALUES (?, ?)")
                let insertPartition = try RawInsert(
                    db, sql: "INSERT INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                var text: [UInt8] = []
                text.reserveCapacity(256)
                let topics = image.topicsById.values.map { ($0.id.description, $0) }.sorted { $0.0 < $1.0 }
                for (topicId, t) in topics {
                    try insertTopic.bind(1, text: topicId)
                    try insertTopic.bind(2, text: t.name)
                    try insertTopic.step()
                    // Bindings stay across steps: the topic's columns are bound once.
                    try insertPartition.bind(1, text: topicId)
                    try insertPartition.bind(2, text: t.name)
                    for index in t.partitions.keys.sorted() {
                        let p = t.partitions[index]!
                        try insertPartition.bind(3, Int64(index))
                        try insertPartition.bind(4, Int64(p.leader))
                        try insertPartition.bind(5, Int64(p.leaderEpoch))
                        try insertPartition.bind(6, Int64(p.partitionEpoch))
                        try insertPartition.bind(7, list: p.replicas, scratch: &text)
                        try insertPartition.bind(8, list: p.isr, scratch: &text)
                        try insertPartition.bind(9, list: p.removingReplicas, scratch: &text)
                        try insertPartition.bind(10, list: p.addingReplicas, scratch: &text)
                        try insertPartition.bind(11, Int64(p.leaderRecoveryState))
                        try insertPartition.bind(12, list: p.eligibleLeaderReplicas, scratch: &text)
                        try insertPartition.bind(13, list: p.lastKnownElr, scratch: &text)
                        try insertPartition.step()
                    }
                }
                for resource in image.configs.keys.sorted() {
                    for (name, value) in image.configs(of: resource).sorted(by: { $0.key < $1.key }) {
                        try db.execute(
                            sql: "INSERT INTO configs VALUES (?, ?, ?, ?)",
                            arguments: [resource.type.rawValue, resource.name, name, value])
                    }
                }
                try db.execute(
                    sql: "INSERT INTO producer_ids VALUES (?, ?)",
                    arguments: [image.nextProducerId, image.producerIdsBroker])
                for id in image.acls.keys.sorted() {
                    let a = image.acls[id]!
                    try db.execute(
                        sql: "INSERT INTO acls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        arguments: [
                            a.id.description, a.resourceType, a.resourceName, a.patternType, a.principal, a.host,
                            a.operation, a.permissionType,
                        ])
                }
                for v in voters.sorted() { try db.execute(sql: "INSERT INTO voters VALUES (?)", arguments: [v]) }
                for key in image.scramCredentials.keys.sorted() {
                    let c = image.scramCredentials[key]!
                    try db.execute(
                        sql: "INSERT INTO scram_credentials VALUES (?, ?, ?, ?, ?, ?)",
                        arguments: [
                            c.user, c.mechanism, Data(c.salt), Data(c.storedKey), Data(c.serverKey), c.iterations,
                        ])
                }
                // One row per quota key; a NULL user or client_id where has_* is 1 is the default entity.
                for entity in image.clientQuotas.keys.sorted() {
                    let values = image.clientQuotas[entity]!
                    let user = entity.parts[ClientQuotaEntity.user]
                    let clientId = entity.parts[ClientQuotaEntity.clientId]
                    for key in values.keys.sorted() {
                        try db.execute(
                            sql: "INSERT INTO client_quotas VALUES (?, ?, ?, ?, ?, ?, ?)",
                            arguments: [
                                entity.description, user != nil, user ?? nil, clientId != nil, clientId ?? nil, key,
                                values[key]!,
                            ])
                    }
                }
                try db.execute(
                    sql: "INSERT INTO snapshot VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        schemaVersion, clusterId, endOffset, epoch, image.provenance.lastOffset,
                        image.provenance.lastEpoch,
                        image.provenance.recordCount, lastContainedTimestamp, String(checksum.wait(), radix: 16),
                    ])
            }
            try queue.close()
            try syncFile(temp)
            if rename(temp, final) != 0 {
                throw SnapshotError("cannot rename \(temp) to \(final): \(String(cString: strerror(errno)))")
            }
            try syncFile(directory)
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw error
        }
        return final
    }

    static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SnapshotError("cannot open \(path) to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw SnapshotError("fsync of \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// What a snapshot file says about itself.
    public struct Header: Sendable, Equatable {
        public var schemaVersion: Int
        public var clusterId: String
        public var endOffset: Int64
        public var epoch: Int32
        public var recordCount: Int64
        public var lastContainedTimestamp: Int64
        public var checksum: String
    }

    static func openReadOnly(_ path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else { throw SnapshotError("\(path) does not exist") }
        var config = Configuration()
        config.readonly = true
        do {
            return try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw SnapshotError("\(path) is not an SQLite snapshot: \(error)")
        }
    }

    public static func header(_ path: String) throws -> Header {
        let queue = try openReadOnly(path)
        defer { try? queue.close() }
        do {
            return try queue.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM snapshot") else {
                    throw SnapshotError("\(path) has no snapshot row")
                }
                return Header(
                    schemaVersion: row["schema_version"], clusterId: row["cluster_id"], endOffset: row["end_offset"],
                    epoch: row["epoch"], recordCount: row["record_count"],
                    lastContainedTimestamp: row["last_contained_timestamp"], checksum: row["checksum"])
            }
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError("\(path) is not a Runnel snapshot (\(error))")
        }
    }

    /// Reads a snapshot and verifies it: the schema version is known and the checksum of the
    /// loaded content matches the one recorded.
    public static func read(_ path: String) throws -> (header: Header, image: MetadataImage, voters: [Int32]) {
        let queue = try openReadOnly(path)
        defer { try? queue.close() }
        let result: (Header, MetadataImage, [Int32])
        do {
            result = try queue.read { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM snapshot") else {
                    throw SnapshotError("\(path) has no snapshot row")
                }
                let header = Header(
                    schemaVersion: row["schema_version"], clusterId: row["cluster_id"], endOffset: row["end_offset"],
                    epoch: row["epoch"], recordCount: row["record_count"],
                    lastContainedTimestamp: row["last_contained_timestamp"], checksum: row["checksum"])
                guard header.schemaVersion <= schemaVersion else {
                    throw SnapshotError(
                        "\(path) has schema version \(header.schemaVersion); this build reads up to \(schemaVersion)")
                }
                let provenance = MetadataProvenance(
                    lastOffset: row["last_offset"], lastEpoch: row["last_epoch"], recordCount: header.recordCount)
                var features: [String: Int16] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM features") { features[r["name"]] = r["level"] }
                var endpoints: [Int32: [BrokerRegistration.Endpoint]] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM broker_endpoints ORDER BY broker_id, listener") {
                    endpoints[r["broker_id"], default: []].append(
                        .init(
                            listener: r["listener"], host: r["host"], port: r["port"],
                            securityProtocol: r["security_protocol"]))
                }
                var brokerFeatures: [Int32: [String: ClosedRange<Int16>]] = [:]
                if header.schemaVersion >= 3 {
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM broker_features") {
                        let low: Int16 = r["min_version"]
                        let high: Int16 = r["max_version"]
                        guard low <= high else {
                            throw SnapshotError("\(path) has a broker feature range \(low)-\(high)")
                        }
                        brokerFeatures[r["broker_id"], default: [:]][r["name"]] = low...high
                    }
                }
                var brokers: [BrokerRegistration] = []
                for r in try Row.fetchAll(db, sql: "SELECT * FROM brokers") {
                    let id: Int32 = r["id"]
                    let dirs: String = r["log_dirs"]
                    brokers.append(
                        BrokerRegistration(
                            id: NodeID(id), epoch: r["epoch"],
                            incarnationId: KafkaUUID(r["incarnation_id"] as String) ?? .zero,
                            endpoints: endpoints[id] ?? [], rack: r["rack"], fenced: r["fenced"],
                            inControlledShutdown: r["in_controlled_shutdown"],
                            logDirs: dirs.split(separator: ",").compactMap { KafkaUUID(String($0)) },
                            supportedFeatures: brokerFeatures[id] ?? [:]))
                }
                var topics: [KafkaUUID: TopicImage] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM topics") {
                    guard let id = KafkaUUID(r["id"] as String) else {
                        throw SnapshotError("\(path) has a bad topic id")
                    }
                    topics[id] = TopicImage(id: id, name: r["name"])
                }
                // A million rows: columns by position from a cursor (a lookup by name costs a
                // lowercased copy of the name per column per row), and a topic's partitions
                // gathered apart and stored once, as rows come grouped by topic.
                let partitionRows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT topic_id, partition, leader, leader_epoch, partition_epoch, replicas, isr,
                        removing_replicas, adding_replicas, leader_recovery_state, eligible_leader_replicas,
                        last_known_elr FROM partitions
                        """)
                var current: (text: String, id: KafkaUUID, partitions: [Int32: PartitionRegistration])?
                func store() {
                    guard let current else { return }
                    // Moved in whole when the topic has none yet (always, as rows come grouped).
                    if topics[current.id]!.partitions.isEmpty {
                        topics[current.id]!.partitions = current.partitions
                    } else {
                        topics[current.id]!.partitions.merge(current.partitions) { $1 }
                    }
                }
                while let r = try partitionRows.next() {
                    let idText: String = r[0]
                    if idText != current?.text {
                        store()
                        guard let id = KafkaUUID(idText), topics[id] != nil else {
                            throw SnapshotError("\(path) has a partition of an unknown topic")
                        }
                        current = (idText, id, [:])
                    }
                    let p = PartitionRegistration(
                        replicas: ints(r[5]), isr: ints(r[6]), leader: r[2], leaderEpoch: r[3],
                        partitionEpoch: r[4], removingReplicas: ints(r[7]), addingReplicas: ints(r[8]),
                        leaderRecoveryState: r[9], eligibleLeaderReplicas: ints(r[10]), lastKnownElr: ints(r[11]))
                    current!.partitions[r[1]] = p
                }
                store()
                var configs: [ConfigResource: [String: String]] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM configs") {
                    let type = ConfigResourceType(rawValue: r["resource_type"]) ?? .unknown
                    configs[ConfigResource(type, r["resource_name"]), default: [:]][r["name"]] = r["value"]
                }
                let producer = try Row.fetchOne(db, sql: "SELECT * FROM producer_ids")
                var acls: [AclEntry] = []
                for r in try Row.fetchAll(db, sql: "SELECT * FROM acls") {
                    acls.append(
                        AclEntry(
                            id: KafkaUUID(r["id"] as String) ?? .zero, resourceType: r["resource_type"],
                            resourceName: r["resource_name"],
                            patternType: r["pattern_type"], principal: r["principal"], host: r["host"],
                            operation: r["operation"],
                            permissionType: r["permission_type"]))
                }
                let voters = try Int32.fetchAll(db, sql: "SELECT node_id FROM voters ORDER BY node_id")
                var scram: [ScramCredentialEntry] = []
                if header.schemaVersion >= 2 {
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM scram_credentials") {
                        let salt: Data = r["salt"], storedKey: Data = r["stored_key"], serverKey: Data = r["server_key"]
                        scram.append(
                            ScramCredentialEntry(
                                user: r["name"], mechanism: r["mechanism"], salt: Array(salt),
                                storedKey: Array(storedKey), serverKey: Array(serverKey), iterations: r["iterations"]))
                    }
                }
                var controllers: [ControllerRegistration] = []
                if header.schemaVersion >= 3 {
                    var endpoints: [Int32: [BrokerRegistration.Endpoint]] = [:]
                    for r in try Row.fetchAll(
                        db, sql: "SELECT * FROM controller_endpoints ORDER BY controller_id, listener")
                    {
                        endpoints[r["controller_id"], default: []].append(
                            .init(
                                listener: r["listener"], host: r["host"], port: r["port"],
                                securityProtocol: r["security_protocol"]))
                    }
                    var ranges: [Int32: [String: ClosedRange<Int16>]] = [:]
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM controller_features") {
                        let low: Int16 = r["min_version"]
                        let high: Int16 = r["max_version"]
                        guard low <= high else {
                            throw SnapshotError("\(path) has a controller feature range \(low)-\(high)")
                        }
                        ranges[r["controller_id"], default: [:]][r["name"]] = low...high
                    }
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM controllers") {
                        let id: Int32 = r["id"]
                        controllers.append(
                            ControllerRegistration(
                                id: NodeID(id), incarnationId: KafkaUUID(r["incarnation_id"] as String) ?? .zero,
                                endpoints: endpoints[id] ?? [], supportedFeatures: ranges[id] ?? [:]))
                    }
                }
                var quotas: [ClientQuotaEntity: [String: Double]] = [:]
                if header.schemaVersion >= 3 {
                    for r in try Row.fetchAll(db, sql: "SELECT * FROM client_quotas") {
                        let hasUser: Bool = r["has_user"], hasClientId: Bool = r["has_client_id"]
                        guard hasUser || hasClientId else {
                            throw SnapshotError("\(path) has a client quota of no entity")
                        }
                        let user: String?? = hasUser ? .some(r["user"] as String?) : .none
                        let clientId: String?? = hasClientId ? .some(r["client_id"] as String?) : .none
                        quotas[ClientQuotaEntity(user: user, clientId: clientId), default: [:]][r["key"]] = r["value"]
                    }
                }
                let image = MetadataImage(
                    provenance: provenance, features: features, brokers: brokers, topics: Array(topics.values),
                    configs: configs,
                    nextProducerId: producer?["next_producer_id"] ?? 0, producerIdsBroker: producer?["broker_id"] ?? -1,
                    acls: acls,
                    scramCredentials: scram, controllers: controllers, clientQuotas: quotas)
                return (header, image, voters)
            }
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError("\(path) is not a valid Runnel snapshot (\(error))")
        }
        guard String(result.1.contentChecksum, radix: 16) == result.0.checksum else {
            throw SnapshotError("\(path) is corrupt: its content does not match its checksum")
        }
        return result
    }

    /// Runs a read-only SQL query over a snapshot: column names and rows as text.
    public static func query(_ path: String, sql: String) throws -> (columns: [String], rows: [[String?]]) {
        let queue = try openReadOnly(path)
        defer { try? queue.close() }
        do {
            return try queue.read { db in
                let statement = try db.makeStatement(sql: sql)
                guard statement.isReadonly else { throw SnapshotError("only read-only SQL is allowed on a snapshot") }
                let columns = statement.columnNames
                var rows: [[String?]] = []
                let cursor = try Row.fetchCursor(statement)
                while let row = try cursor.next() {
                    rows.append(
                        (0..<row.count).map { i in
                            let value = row[i] as DatabaseValue
                            switch value.storage {
                            case .null: return nil
                            case .int64(let v): return String(v)
                            case .double(let v): return String(v)
                            case .string(let v): return v
                            case .blob(let d): return "x'" + d.map { String(format: "%02x", $0) }.joined() + "'"
                            }
                        })
                }
                return (columns, rows)
            }
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw SnapshotError("SQL error: \(error)")
        }
    }
}

/// An image's content checksum computed on a thread of its own. `wait()` blocks until it is
/// done; the semaphore orders the thread's write of `value` before the read.
final class BackgroundChecksum: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: UInt64 = 0

    init(_ image: MetadataImage) {
        Thread.detachNewThread { [self] in
            BackgroundPriority.enter()
            value = image.contentChecksum
            done.signal()
        }
    }

    /// The checksum, once computed. Call once.
    func wait() -> UInt64 {
        done.wait()
        return value
    }
}

/// A prepared INSERT whose parameters are bound through SQLite's C API on GRDB's statement
/// handle: no boxed argument array per row. Bindings stay from one `step` to the next, as
/// SQLite keeps them across a reset.
struct RawInsert {
    let statement: Statement
    let connection: SQLiteConnection?

    init(_ db: Database, sql: String) throws {
        statement = try db.makeStatement(sql: sql)
        connection = db.sqliteConnection
    }

    private var handle: SQLiteStatement { statement.sqliteStatement }

    /// `what` is built only on failure: a million partitions bind eleven columns each.
    private func check(_ code: CInt, _ what: @autoclosure () -> String) throws {
        guard code == SQLITE_OK else {
            throw SnapshotError(
                "SQLite could not \(what()) for `\(statement.sql)`: \(String(cString: sqlite3_errmsg(connection)))")
        }
    }

    /// Binds an integer to parameter `index` (from 1).
    func bind(_ index: CInt, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value), "bind parameter \(index)")
    }

    /// Binds `bytes` as UTF-8 text; SQLite copies them, so the buffer may change after.
    func bind(_ index: CInt, utf8 bytes: UnsafeBufferPointer<UInt8>) throws {
        // SQLITE_TRANSIENT: SQLite takes its own copy before returning.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        // A nil pointer would bind NULL; empty text needs a real (empty) string.
        let code: CInt =
            if let base = bytes.baseAddress {
                base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    sqlite3_bind_text(handle, index, $0, CInt(bytes.count), transient)
                }
            } else {
                sqlite3_bind_text(handle, index, "", 0, transient)
            }
        try check(code, "bind parameter \(index)")
    }

    /// Binds a string as text.
    func bind(_ index: CInt, text: String) throws {
        var text = text
        try text.withUTF8 { try bind(index, utf8: $0) }
    }

    /// Binds a list column's text (`SQLiteSnapshot.list`), built in `scratch`.
    func bind(_ index: CInt, list values: [Int32], scratch: inout [UInt8]) throws {
        scratch.removeAll(keepingCapacity: true)
        SQLiteSnapshot.appendList(values, to: &scratch)
        try scratch.withUnsafeBufferPointer { try bind(index, utf8: $0) }
    }

    /// Inserts the row as bound.
    func step() throws {
        let code = sqlite3_step(handle)
        let reset = sqlite3_reset(handle)
        guard code == SQLITE_DONE else {
            throw SnapshotError(
                "SQLite could not run `\(statement.sql)` (code \(code), reset \(reset)): "
                    + String(cString: sqlite3_errmsg(connection)))
        }
    }
}

/// A snapshot problem: one sentence.
public struct SnapshotError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
