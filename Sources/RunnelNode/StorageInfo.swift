import RunnelCore
import RunnelLog
import RunnelWire

/// `runnel storage info`, as `kafka-storage info`: what each log directory and the metadata log
/// directory of a config holds (its `meta.properties`, read with the reader `runnel server`
/// uses), and the problems that would stop the node from starting.
public struct StorageInfo: Sendable, Equatable {
    /// One directory of the config.
    public struct Directory: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            case missing
            case notDirectory
            case unformatted
            /// `meta.properties` exists but cannot be read (the reason, one sentence).
            case unreadable(String)
            case formatted(MetaProperties)
        }

        public var path: String
        /// Whether it is one of `log.dirs`, and whether it holds the metadata log.
        public var isLogDir: Bool
        public var isMetadataLogDir: Bool
        public var state: State

        public init(path: String, isLogDir: Bool, isMetadataLogDir: Bool, state: State) {
            self.path = path
            self.isLogDir = isLogDir
            self.isMetadataLogDir = isMetadataLogDir
            self.state = state
        }

        /// Its meta.properties when it is formatted.
        public var meta: MetaProperties? {
            if case .formatted(let meta) = state { return meta }
            return nil
        }
    }

    /// The directories: `log.dirs` in their order, then the metadata log dir if it is not one of them.
    public var directories: [Directory]
    /// What is wrong, one sentence each; empty when the node could start on these directories.
    public var problems: [String]

    /// Looks at the directories of `config` on `disk`; never writes.
    public static func inspect(config: ServerConfig, disk: any Disk = PosixDisk()) -> StorageInfo {
        var paths = config.logDirs
        if !paths.contains(config.metadataLogDir) { paths.append(config.metadataLogDir) }
        let directories = paths.map { path in
            Directory(
                path: path, isLogDir: config.logDirs.contains(path), isMetadataLogDir: path == config.metadataLogDir,
                state: state(of: path, disk: disk))
        }
        return StorageInfo(directories: directories, problems: findProblems(in: directories, nodeId: config.nodeId))
    }

    static func state(of path: String, disk: any Disk) -> Directory.State {
        if !disk.exists(path) { return .missing }
        if !disk.isDirectory(path) { return .notDirectory }
        do {
            guard let meta = try MetaProperties.read(directory: path, disk: disk) else { return .unformatted }
            return .formatted(meta)
        } catch let error as StorageError {
            return .unreadable(error.description)
        } catch {
            return .unreadable("\(path)/\(MetaProperties.fileName) cannot be read: \(error).")
        }
    }

    /// Kafka's checks (`MetaPropertiesEnsemble.verify`) and `runnel server`'s: every directory
    /// exists and is formatted, for this node, for one cluster, each with its own directory id.
    public static func findProblems(in directories: [Directory], nodeId: Int32) -> [String] {
        var problems: [String] = []
        var firstCluster: (path: String, id: String)?
        var directoryIds: [KafkaUUID: String] = [:]
        for dir in directories {
            switch dir.state {
            case .missing: problems.append("\(dir.path) does not exist.")
            case .notDirectory: problems.append("\(dir.path) is not a directory.")
            case .unformatted: problems.append("\(dir.path) is not formatted.")
            case .unreadable(let reason): problems.append(reason)
            case .formatted(let meta):
                if meta.nodeId != nodeId {
                    problems.append("\(dir.path) belongs to node \(meta.nodeId), but node.id is \(nodeId).")
                }
                if let first = firstCluster {
                    if first.id != meta.clusterId {
                        problems.append(
                            "\(dir.path) belongs to cluster \(meta.clusterId), but \(first.path) belongs to cluster \(first.id)."
                        )
                    }
                } else {
                    firstCluster = (dir.path, meta.clusterId)
                }
                if meta.directoryId != .zero {
                    if let other = directoryIds[meta.directoryId] {
                        problems.append(
                            "\(dir.path) has the same directory.id (\(meta.directoryId)) as \(other); format one of them again."
                        )
                    } else {
                        directoryIds[meta.directoryId] = dir.path
                    }
                }
            }
        }
        return problems
    }
}
