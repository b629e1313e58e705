import NIOConcurrencyHelpers
import NIOCore
import RunnelCore

/// All partition logs of a node across its `log.dirs`: creation, loading at start-up (with
/// recovery after an unclean stop), deletion, retention and flush passes, checkpoints and the
/// clean-shutdown marker.
public final class LogManager: @unchecked Sendable {
    public static let cleanShutdownFile = ".kafka_cleanshutdown"
    public static let recoveryPointFile = "recovery-point-offset-checkpoint"
    public static let logStartFile = "log-start-offset-checkpoint"
    public static let replicationFile = "replication-offset-checkpoint"
    public static let metadataTopic = "__cluster_metadata"
    /// A partition's topic id (Kafka's `PartitionMetadataFile`).
    static let partitionMetadataFile = "partition.metadata"

    public let logDirs: [String]
    private let disk: any Disk
    /// Drop-behind for every partition log (nil: off).
    private let dropBehind: DropBehind?
    private let onDiskFailure: (@Sendable (TopicPartition, DiskError) -> Void)?
    private let lock = NIOLock()
    private var logs: [TopicPartition: PartitionLog] = [:]
    /// Each partition's log dir, and how many partitions each dir holds (a new partition goes to
    /// the dir holding fewest, as Kafka places them), kept together by `place` and `unplace`.
    private var logDirOf: [TopicPartition: String] = [:]
    private var partitionsInDir: [String: Int] = [:]
    private var _defaultConfig: LogConfig
    /// High watermarks read from `replication-offset-checkpoint` at start-up.
    private var startupHighWatermarks: [TopicPartition: Int64] = [:]
    /// A log `getOrCreate` made and `syncNewLogs` has yet to make durable.
    private struct NewLog {
        var log: PartitionLog
        var logDir: String
    }
    private var unsyncedLogs: [NewLog] = []
    /// Serializes cleaning passes.
    private let cleanerLock = NIOLock()
    /// Serializes writes of `cleaner-offset-checkpoint` (by the cleaner and by deletions).
    private let cleanerCheckpointLock = NIOLock()

    /// What start-up found, for the log.
    public private(set) var recoveredUncleanly: [String] = []

    /// Opens every partition log under `logDirs`, recovering those of a dir without the
    /// clean-shutdown marker. `progress` hears of each log opened (done, of total, and whether it
    /// was recovered), so a long start-up can be reported.
    /// `onDiskFailure` hears of each disk error that fails a change to a partition log (an
    /// append, a roll, a truncation); the node stops on it.
    public init(
        logDirs: [String], defaultConfig: LogConfig, disk: any Disk, nowMs: Int64, dropBehind: DropBehind? = nil,
        onDiskFailure: (@Sendable (TopicPartition, DiskError) -> Void)? = nil,
        progress: (_ opened: Int, _ total: Int, _ recovering: Bool) -> Void = { _, _, _ in }
    ) throws {
        precondition(!logDirs.isEmpty, "at least one log dir")
        self.logDirs = logDirs
        self.disk = disk
        self.dropBehind = dropBehind
        self.onDiskFailure = onDiskFailure
        self._defaultConfig = defaultConfig
        for dir in logDirs {
            try disk.makeDirectory(dir)
            let marker = dir + "/" + Self.cleanShutdownFile
            // A fresh directory (no partition yet) has nothing to recover.
            let fresh = try !disk.list(dir).contains {
                disk.isDirectory(dir + "/" + $0) && Self.parse(directoryName: $0) != nil
            }
            let clean = fresh || disk.exists(marker)
            if !clean { recoveredUncleanly.append(dir) }
            let recoveryPoints = (try? OffsetCheckpoint.read(dir + "/" + Self.recoveryPointFile, disk: disk)) ?? [:]
            let logStarts = (try? OffsetCheckpoint.read(dir + "/" + Self.logStartFile, disk: disk)) ?? [:]
            let highWatermarks = (try? OffsetCheckpoint.read(dir + "/" + Self.replicationFile, disk: disk)) ?? [:]
            let cleanerCheckpoints =
                (try? OffsetCheckpoint.read(dir + "/" + LogCleaner.checkpointFile, disk: disk)) ?? [:]
            let names = try disk.list(dir).filter { disk.isDirectory(dir + "/" + $0) }
            let total = names.filter { Self.parse(directoryName: $0).map { $0.topic != Self.metadataTopic } ?? false }
                .count
            var opened = 0
            for name in names {
                if name.hasSuffix("-delete") {
                    try disk.removeTree(dir + "/" + name)
                    continue
                }
                guard let tp = Self.parse(directoryName: name), tp.topic != Self.metadataTopic else { continue }
                let log = try PartitionLog(
                    topicPartition: tp, directory: dir + "/" + name, config: defaultConfig, disk: disk, nowMs: nowMs,
                    recoveryPoint: recoveryPoints[tp] ?? 0, logStartOffset: logStarts[tp] ?? 0, cleanShutdown: clean,
                    cleanerCheckpoint: cleanerCheckpoints[tp])
                adopt(log)
                logs[tp] = log
                place(tp, in: dir)
                if let hw = highWatermarks[tp] { startupHighWatermarks[tp] = hw }
                opened += 1
                progress(opened, total, !clean)
            }
            // From now on a crash is an unclean stop.
            if disk.exists(marker) {
                try disk.remove(marker)
                try disk.syncDirectory(dir)
            }
        }
    }

    /// `topic-partition` → TopicPartition (the topic may contain dashes).
    public static func parse(directoryName name: String) -> TopicPartition? {
        guard let dash = name.lastIndex(of: "-"), let p = Int32(name[name.index(after: dash)...]), p >= 0 else {
            return nil
        }
        let topic = String(name[..<dash])
        return topic.isEmpty ? nil : TopicPartition(topic, p)
    }

    public var defaultConfig: LogConfig {
        get { lock.withLock { _defaultConfig } }
        set { lock.withLock { _defaultConfig = newValue } }
    }

    public func log(_ tp: TopicPartition) -> PartitionLog? { lock.withLock { logs[tp] } }
    public var allLogs: [PartitionLog] { lock.withLock { Array(logs.values) } }
    public var topicPartitions: [TopicPartition] { lock.withLock { Array(logs.keys) } }
    /// Every partition log with the log dir (of `logDirs`) that holds it.
    public var logsWithDirs: [(log: PartitionLog, dir: String)] {
        lock.withLock { logs.map { ($0.value, logDirOf[$0.key]!) } }
    }
    /// The size and free space of the file system under `dir`; nil when the disk cannot tell.
    public func space(ofLogDir dir: String) throws -> DiskSpace? { try disk.space(dir) }

    /// Returns the log for `tp`, creating its directory (in the log dir holding the fewest
    /// partitions) and `partition.metadata` when new. A new log's files are durable on return;
    /// with `deferSync`, once `syncNewLogs` runs or `newLogsPerSync` new logs wait, so that a
    /// batch of new logs costs a few syncs rather than three each.
    public func getOrCreate(
        _ tp: TopicPartition, topicId: KafkaUUID, config: LogConfig, nowMs: Int64, deferSync: Bool = false
    ) throws -> PartitionLog {
        let (log, due): (PartitionLog, [NewLog]) = try lock.withLock {
            if let log = logs[tp] {
                log.config = config
                return (log, [])
            }
            let dir = logDirs.min { partitionsInDir[$0, default: 0] < partitionsInDir[$1, default: 0] }!
            let path = dir + "/" + tp.description
            let log = try PartitionLog(topicPartition: tp, directory: path, config: config, disk: disk, nowMs: nowMs)
            adopt(log)
            try OffsetCheckpoint.writeAtomically(
                "version: 0\ntopic_id: \(topicId)\n", to: path + "/" + Self.partitionMetadataFile, disk: disk,
                durable: false)
            logs[tp] = log
            place(tp, in: dir)
            let created = NewLog(log: log, logDir: dir)
            guard deferSync else { return (log, [created]) }
            unsyncedLogs.append(created)
            guard unsyncedLogs.count >= Self.newLogsPerSync else { return (log, []) }
            defer { unsyncedLogs = [] }
            return (log, unsyncedLogs)
        }
        try sync(due)
        return log
    }

    /// The most new logs `getOrCreate(deferSync: true)` leaves unsynced: syncing many more at
    /// once makes one long journal commit, which every other writer's sync on the file system
    /// (the metadata log's among them) waits behind.
    static let newLogsPerSync = 64

    /// Makes durable the logs `getOrCreate(deferSync: true)` created since the last call: each
    /// one's `partition.metadata` and directory, then each log dir holding them.
    public func syncNewLogs() throws {
        let pending = lock.withLock {
            defer { unsyncedLogs = [] }
            return unsyncedLogs
        }
        try sync(pending)
    }

    /// A log deleted since it was made is passed over (its directory is gone). A failure is a
    /// failed change to the log it names (the node stops on it, as on a failed append).
    private func sync(_ created: [NewLog]) throws {
        for new in created where lock.withLock({ logs[new.log.topicPartition] === new.log }) {
            try failing(new) {
                let file = try disk.open(new.log.directory + "/" + Self.partitionMetadataFile, create: false)
                defer { file.close() }
                try file.sync()
                try disk.syncDirectory(new.log.directory)
            }
        }
        // A log dir's sync makes every new log in it durable: a failure names the first of them.
        let firstByDir = Dictionary(created.map { ($0.logDir, $0) }, uniquingKeysWith: { first, _ in first })
        for (dir, new) in firstByDir {
            try failing(new) { try disk.syncDirectory(dir) }
        }
    }

    private func failing(_ new: NewLog, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as DiskError {
            onDiskFailure?(new.log.topicPartition, error)
            throw error
        }
    }

    /// The topic id recorded in a partition's `partition.metadata`, if any.
    public func topicId(of tp: TopicPartition) -> KafkaUUID? {
        guard let log = log(tp),
            let text = try? OffsetCheckpoint.readText(log.directory + "/" + Self.partitionMetadataFile, disk: disk)
        else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("topic_id:") {
            return KafkaUUID(String(line.dropFirst("topic_id:".count).drop { $0 == " " }))
        }
        return nil
    }

    /// Removes a partition's log: renames its directory aside, then deletes it.
    public func delete(_ tp: TopicPartition) throws {
        let (log, dir): (PartitionLog?, String?) = lock.withLock {
            let log = logs.removeValue(forKey: tp)
            let dir = unplace(tp)
            return (log, dir)
        }
        guard let log, let dir else { return }
        let aside = "\(dir)/\(tp.description).\(UInt64.random(in: 0...UInt64.max))-delete"
        try disk.rename(log.directory, to: aside)
        try disk.syncDirectory(dir)
        log.forceClose()
        try disk.removeTree(aside)
        // A log made again under the same name must not inherit the old cleaner position.
        if log.cleanerCheckpoint != nil { try writeCleanerCheckpoints(dirs: [dir]) }
    }

    /// One cleaning pass over every compacted log whose high watermark is known (logs of
    /// partitions this broker no longer hosts are skipped), then `cleaner-offset-checkpoint` of
    /// the log dirs where something was cleaned. A failure on one log does not stop the others.
    public func runCleaner(
        nowMs: Int64, highWatermarks: [TopicPartition: Int64], settings: LogCleanerSettings,
        shouldStop: () -> Bool = { false }
    ) -> CleanerPass {
        cleanerLock.withLock {
            var pass = CleanerPass()
            let candidates: [(PartitionLog, String)] = lock.withLock {
                logs.compactMap { tp, log in log.config.compactEnabled ? (log, logDirOf[tp]!) : nil }
            }
            var touched = Set<String>()
            for (log, dir) in candidates.sorted(by: { $0.0.topicPartition < $1.0.topicPartition }) {
                if shouldStop() { break }
                guard let hw = highWatermarks[log.topicPartition] else { continue }
                do {
                    if let stats = try log.clean(uncleanableFrom: hw, nowMs: nowMs, settings: settings) {
                        pass.cleaned.append((log.topicPartition, stats))
                        touched.insert(dir)
                    }
                } catch {
                    pass.failures.append((log.topicPartition, error))
                }
            }
            if !touched.isEmpty {
                do { try writeCleanerCheckpoints(dirs: touched) } catch { pass.checkpointFailure = error }
            }
            return pass
        }
    }

    /// What a cleaning pass did.
    public struct CleanerPass: Sendable {
        /// The logs cleaned, with what each cleaning did.
        public var cleaned: [(TopicPartition, CleanerStats)] = []
        /// Logs whose cleaning failed (an I/O error, or a batch that does not parse).
        public var failures: [(TopicPartition, any Error)] = []
        /// Writing `cleaner-offset-checkpoint` failed (the next pass cleans the same range again).
        public var checkpointFailure: (any Error)?
    }

    /// Writes `cleaner-offset-checkpoint` of `dirs` from the logs' cleaner positions.
    private func writeCleanerCheckpoints(dirs: Set<String>) throws {
        try cleanerCheckpointLock.withLock { try writeCleanerCheckpointsLocked(dirs: dirs) }
    }

    private func writeCleanerCheckpointsLocked(dirs: Set<String>) throws {
        let snapshot: [(TopicPartition, String, PartitionLog)] = lock.withLock {
            logs.map { ($0.key, logDirOf[$0.key]!, $0.value) }
        }
        for dir in logDirs where dirs.contains(dir) {
            var positions: [TopicPartition: Int64] = [:]
            for (tp, d, log) in snapshot where d == dir {
                if let position = log.cleanerCheckpoint { positions[tp] = position }
            }
            try OffsetCheckpoint.write(positions, to: dir + "/" + LogCleaner.checkpointFile, disk: disk)
        }
    }

    /// Retention and flush passes over every log, then checkpoints. Called periodically from a
    /// background thread; a failure on one log does not stop the others.
    public func runRetention(nowMs: Int64) -> [(TopicPartition, any Error)] {
        var failures: [(TopicPartition, any Error)] = []
        for log in allLogs {
            do { try log.enforceRetention(nowMs: nowMs) } catch { failures.append((log.topicPartition, error)) }
        }
        return failures
    }

    /// Forgets, in every log, the producers idle longer than `expirationMs` with no open
    /// transaction (Kafka's periodic removeExpiredProducers).
    public func removeExpiredProducers(nowMs: Int64, expirationMs: Int64) {
        for log in allLogs { log.removeExpiredProducers(nowMs: nowMs, expirationMs: expirationMs) }
    }

    /// Gives a log this manager opened or created its policies.
    /// Records `tp`'s log dir. Called under `lock`.
    private func place(_ tp: TopicPartition, in dir: String) {
        if let old = logDirOf.updateValue(dir, forKey: tp) { partitionsInDir[old, default: 1] -= 1 }
        partitionsInDir[dir, default: 0] += 1
    }

    /// Forgets `tp`'s log dir and gives it. Called under `lock`.
    private func unplace(_ tp: TopicPartition) -> String? {
        guard let dir = logDirOf.removeValue(forKey: tp) else { return nil }
        partitionsInDir[dir, default: 1] -= 1
        return dir
    }

    private func adopt(_ log: PartitionLog) {
        log.setDropBehind(dropBehind)
        if let onDiskFailure {
            let tp = log.topicPartition
            log.setDiskFailureHandler { onDiskFailure(tp, $0) }
        }
    }

    /// Syncs every log that has rolled segments past its recovery point or whose flush policy says
    /// a sync is due (`PartitionLog.flushIfDue`); `flushed` is called after each sync (the node
    /// times them).
    public func runFlush(nowMs: Int64, flushed: (TopicPartition) -> Void = { _ in }) -> [(TopicPartition, any Error)] {
        var failures: [(TopicPartition, any Error)] = []
        for log in allLogs {
            do {
                if try log.flushIfDue(nowMs: nowMs) { flushed(log.topicPartition) }
            } catch { failures.append((log.topicPartition, error)) }
        }
        return failures
    }

    /// The high watermark a partition had when this node last checkpointed it.
    public func checkpointedHighWatermark(_ tp: TopicPartition) -> Int64? {
        lock.withLock { startupHighWatermarks[tp] }
    }

    /// Writes `replication-offset-checkpoint` of every log dir (high watermarks of hosted replicas).
    public func checkpointHighWatermarks(_ highWatermarks: [TopicPartition: Int64]) throws {
        let dirs: [TopicPartition: String] = lock.withLock { logDirOf }
        for dir in logDirs {
            let here = highWatermarks.filter { dirs[$0.key] == dir }
            try OffsetCheckpoint.write(here, to: dir + "/" + Self.replicationFile, disk: disk)
        }
    }

    /// Writes the recovery-point and log-start checkpoints of every log dir.
    public func checkpoint() throws {
        let snapshot: [(TopicPartition, String, PartitionLog)] = lock.withLock {
            logs.map { ($0.key, logDirOf[$0.key]!, $0.value) }
        }
        for dir in logDirs {
            var recovery: [TopicPartition: Int64] = [:]
            var starts: [TopicPartition: Int64] = [:]
            for (tp, d, log) in snapshot where d == dir {
                recovery[tp] = log.recoveryPoint
                starts[tp] = log.logStartOffset
            }
            try OffsetCheckpoint.write(recovery, to: dir + "/" + Self.recoveryPointFile, disk: disk)
            try OffsetCheckpoint.write(starts, to: dir + "/" + Self.logStartFile, disk: disk)
        }
    }

    /// Flushes and closes every log, writes checkpoints and the clean-shutdown marker.
    public func shutdown() throws {
        for log in allLogs { try log.close() }
        try checkpoint()
        for dir in logDirs {
            try OffsetCheckpoint.writeAtomically("", to: dir + "/" + Self.cleanShutdownFile, disk: disk)
        }
    }
}

extension PartitionLog {
    /// Closes files without syncing (the log is being deleted).
    func forceClose() {
        _ = try? delete()
    }
}
