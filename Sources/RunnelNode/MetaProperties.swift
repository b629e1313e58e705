import Foundation
import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelWire

/// `meta.properties` in each log directory, as `kafka-storage format` writes it (version 1):
/// node id, directory id, cluster id.
public struct MetaProperties: Sendable, Equatable {
    public static let fileName = "meta.properties"
    public var nodeId: Int32
    public var clusterId: String
    public var directoryId: KafkaUUID

    public init(nodeId: Int32, clusterId: String, directoryId: KafkaUUID) {
        self.nodeId = nodeId
        self.clusterId = clusterId
        self.directoryId = directoryId
    }

    /// Reads a log directory's `meta.properties`; nil when the directory is not formatted.
    public static func read(directory: String, disk: any Disk) throws -> MetaProperties? {
        let path = directory + "/" + fileName
        guard let text = try OffsetCheckpoint.readText(path, disk: disk) else { return nil }
        let p = Properties(parsing: text)
        guard p["version"] == "1" else {
            throw StorageError("\(path) has version \(p["version"] ?? "(none)"); only version 1 (KRaft) is supported.")
        }
        guard let nodeText = p["node.id"], let nodeId = Int32(nodeText) else {
            throw StorageError("\(path) has no valid node.id.")
        }
        guard let clusterId = p["cluster.id"], !clusterId.isEmpty else {
            throw StorageError("\(path) has no cluster.id.")
        }
        let directoryId = p["directory.id"].flatMap { KafkaUUID($0) } ?? .zero
        return MetaProperties(nodeId: nodeId, clusterId: clusterId, directoryId: directoryId)
    }

    public func write(directory: String, disk: any Disk) throws {
        var p = Properties()
        p["node.id"] = String(nodeId)
        p["directory.id"] = directoryId.description
        p["version"] = "1"
        p["cluster.id"] = clusterId
        try disk.makeDirectory(directory)
        try OffsetCheckpoint.writeAtomically(
            p.rendered(header: ["", "\(Date())"]), to: directory + "/" + Self.fileName, disk: disk)
    }
}

/// A storage problem an operator must fix: one sentence saying what and how.
public struct StorageError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `runnel format`: writes `meta.properties` into every log directory (and the metadata log
/// directory), as `kafka-storage format` does.
public enum StorageFormatter {
    /// Formats the directories of `config` for `clusterId`. Already formatted directories are an
    /// error unless `ignoreFormatted`. Returns the directories written.
    public static func format(
        config: ServerConfig, clusterId: String, ignoreFormatted: Bool, bootstrapRecords: [MetadataRecord] = [],
        disk: any Disk = PosixDisk()
    ) throws -> [String] {
        guard KafkaUUID(clusterId) != nil else {
            throw StorageError(
                "Cluster id \(clusterId) is not a Kafka uuid (22 characters of URL-safe base64); make one with `runnel random-uuid`."
            )
        }
        var directories = config.logDirs
        if !directories.contains(config.metadataLogDir) { directories.append(config.metadataLogDir) }
        var written: [String] = []
        var generator = SystemRandomNumberGenerator()
        for dir in directories {
            if let existing = try MetaProperties.read(directory: dir, disk: disk) {
                if ignoreFormatted { continue }
                throw StorageError(
                    "Log directory \(dir) is already formatted (cluster \(existing.clusterId), node \(existing.nodeId)). Use --ignore-formatted to skip it and format the others."
                )
            }
            let meta = MetaProperties(
                nodeId: config.nodeId, clusterId: clusterId, directoryId: KafkaUUID.random(using: &generator))
            try meta.write(directory: dir, disk: disk)
            if dir == config.metadataLogDir { try writeBootstrap(bootstrapRecords, directory: dir, disk: disk) }
            written.append(dir)
        }
        return written
    }

    /// The file of records the first active controller writes for a new cluster (the
    /// `metadata.version` of `runnel format --release-version`, SCRAM credentials from
    /// `--add-scram`), in the metadata log directory: Runnel's own
    /// format, each record a 4-byte size and its metadata record frame.
    public static let bootstrapFile = "bootstrap.records"

    static func writeBootstrap(_ records: [MetadataRecord], directory: String, disk: any Disk) throws {
        let path = directory + "/" + bootstrapFile
        guard !records.isEmpty else {
            if disk.exists(path) { try disk.remove(path) }
            return
        }
        var bytes = ByteBuffer()
        for record in records {
            var frame = MetadataRecordFrame.encode(record)
            bytes.writeInteger(Int32(frame.readableBytes))
            bytes.writeBuffer(&frame)
        }
        let temp = path + ".tmp"
        let file = try disk.open(temp, create: true)
        try file.truncate(to: 0)
        try file.write(bytes, at: 0)
        try file.sync()
        file.close()
        try disk.rename(temp, to: path)
        try disk.syncDirectory(directory)
    }

    /// The bootstrap records `runnel format` wrote for this node (none when it wrote none).
    public static func bootstrapRecords(config: ServerConfig, disk: any Disk = PosixDisk()) throws -> [MetadataRecord] {
        let path = config.metadataLogDir + "/" + bootstrapFile
        guard disk.exists(path) else { return [] }
        let file = try disk.open(path, create: false)
        defer { file.close() }
        var bytes = try file.read(at: 0, count: Int(try file.size()))
        var records: [MetadataRecord] = []
        while bytes.readableBytes > 0 {
            guard let size = bytes.readInteger(as: Int32.self), size >= 0,
                let frame = bytes.readSlice(length: Int(size))
            else {
                throw StorageError("\(path) is damaged; format the node again.")
            }
            do {
                records.append(try MetadataRecordFrame.decode(frame).record)
            } catch {
                throw StorageError("\(path) holds a record that cannot be read (\(error)); format the node again.")
            }
            if case .featureLevel(let r) = records.last!, r.name == MetadataVersion.featureName,
                !MetadataVersion.supportedLevels.contains(r.featureLevel)
            {
                throw StorageError(
                    "\(path) starts the cluster at metadata.version \(r.featureLevel), which this build does not run (\(MetadataVersion.supportedLevels.lowerBound) to \(MetadataVersion.supportedLevels.upperBound)); format the node again with a supported --release-version."
                )
            }
        }
        return records
    }

    /// Checks every directory is formatted for this node and one cluster; returns the cluster id.
    public static func check(config: ServerConfig, disk: any Disk = PosixDisk()) throws -> String {
        var directories = config.logDirs
        if !directories.contains(config.metadataLogDir) { directories.append(config.metadataLogDir) }
        var clusterId: String?
        for dir in directories {
            guard let meta = try MetaProperties.read(directory: dir, disk: disk) else {
                throw StorageError(
                    "Log directory \(dir) is not formatted; run `runnel format --config <server.properties> --cluster-id <id>` first (make an id with `runnel random-uuid`)."
                )
            }
            if meta.nodeId != config.nodeId {
                throw StorageError(
                    "Log directory \(dir) belongs to node \(meta.nodeId), but node.id is \(config.nodeId).")
            }
            if let known = clusterId, known != meta.clusterId {
                throw StorageError(
                    "Log directory \(dir) belongs to cluster \(meta.clusterId), but another directory belongs to \(known)."
                )
            }
            clusterId = meta.clusterId
        }
        return clusterId!
    }
}
