import ArgumentParser
import Foundation
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelQuorum
import RunnelRaft
import RunnelSnapshotStore
import RunnelWire

/// `runnel bench metadata-scale`: the metadata plane at a million partitions (issue 21), in one
/// process, through the real code: the image is built by replaying RegisterBroker, Topic and
/// Partition records through `MetadataDelta`, written and read back by `SQLiteSnapshotStorage`,
/// and the new active controller's work runs on the loaded image.
struct MetadataScaleBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadata-scale",
        abstract: "Snapshot write and load, replay, controller failover and memory at N partitions.")

    @Option(help: "Topics to create.")
    var topics: Int = 10_000

    @Option(name: .customLong("partitions-per-topic"), help: "Partitions of each topic.")
    var partitionsPerTopic: Int = 100

    @Option(name: .customLong("replication-factor"), help: "Replicas of each partition.")
    var replicationFactor: Int = 3

    @Option(help: "Registered brokers.")
    var brokers: Int = 30

    @Option(name: .customLong("records-per-commit"), help: "Records per replayed commit (one delta each).")
    var recordsPerCommit: Int = 1000

    @Option(help: "Directory for the snapshot file (default: a new temp directory, removed after).")
    var directory: String?

    @Flag(help: "Keep the snapshot file.")
    var keep = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let report = try runCLI {
            guard topics > 0, partitionsPerTopic > 0, brokers > 0, recordsPerCommit > 0,
                (1...brokers).contains(replicationFactor)
            else {
                throw CLIError(
                    "--topics, --partitions-per-topic, --brokers and --records-per-commit must be positive and "
                        + "--replication-factor between 1 and --brokers")
            }
            let dir = directory ?? (NSTemporaryDirectory() + "runnel-metadata-scale-\(getpid())")
            defer { if !keep && directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
            var scale = MetadataScale(
                topics: topics, partitionsPerTopic: partitionsPerTopic, replicationFactor: replicationFactor,
                brokers: brokers)
            scale.recordsPerCommit = recordsPerCommit
            do {
                return try scale.measure(directory: dir, keepSnapshot: keep)
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("metadata-scale failed: \(error)")
            }
        }
        if json {
            printJSON(report)
        } else {
            for line in report.lines { print(line) }
        }
    }
}

/// The load: `brokers` registered brokers and `topics` topics of `partitionsPerTopic` partitions
/// with `replicationFactor` replicas placed as the controller places them (`ReplicaPlacement`),
/// every replica in the ISR, the first replica leading.
struct MetadataScale {
    var topics: Int
    var partitionsPerTopic: Int
    var replicationFactor: Int
    var brokers: Int
    var recordsPerCommit = 1000
    var clusterId = "metadata-scale-bench"
    /// The epoch every record is written in.
    var epoch: Int32 = 1

    var partitionCount: Int { topics * partitionsPerTopic }

    static func topicName(_ t: Int) -> String { "bench-topic-\(t)" }
    static func topicId(_ t: Int) -> KafkaUUID {
        KafkaUUID(high: 0x5CA1_E000_0000_0000 | UInt64(t), low: UInt64(t) + 1)
    }

    /// metadata.version, then one registration per broker (ids 1...brokers, unfenced).
    func brokerRecords() -> [MetadataRecord] {
        var out: [MetadataRecord] = [
            .featureLevel(
                FeatureLevelRecord(name: MetadataVersion.featureName, featureLevel: MetadataVersion.latest.featureLevel)
            )
        ]
        for id in 1...brokers {
            out.append(
                .registerBroker(
                    RegisterBrokerRecord(
                        brokerId: Int32(id), incarnationId: KafkaUUID(high: 0xB0, low: UInt64(id)),
                        brokerEpoch: Int64(id),
                        endPoints: [
                            .init(name: "PLAINTEXT", host: "broker\(id)", port: UInt16(9092), securityProtocol: 0)
                        ],
                        rack: nil, fenced: false)))
        }
        return out
    }

    /// Topic `t`'s TopicRecord and PartitionRecords, as CreateTopics writes them.
    func topicRecords(_ t: Int, placement brokerList: [ReplicaPlacement.Broker]) -> [MetadataRecord] {
        guard
            case .success(let assignment) = ReplicaPlacement.place(
                count: partitionsPerTopic, replicationFactor: replicationFactor, brokers: brokerList, start: t)
        else {
            preconditionFailure("the replication factor was checked against the broker count")
        }
        let id = Self.topicId(t)
        var out: [MetadataRecord] = [.topic(TopicRecord(name: Self.topicName(t), topicId: id))]
        out.reserveCapacity(partitionsPerTopic + 1)
        for (index, replicas) in assignment.enumerated() {
            out.append(
                .partition(
                    PartitionRecord(
                        partitionId: Int32(index), topicId: id, replicas: replicas, isr: replicas,
                        leader: replicas[0], leaderRecoveryState: 0, leaderEpoch: 0, partitionEpoch: 0)))
        }
        return out
    }

    /// Replays the whole load through `MetadataDelta` as a standby controller or broker does:
    /// one delta per commit of `recordsPerCommit` records, `apply()` after each. The records are
    /// made as they are replayed, so only the image stays in memory.
    func replay() -> MetadataImage {
        var image = MetadataImage.empty
        var offset: Int64 = 0
        var pending: [MetadataRecord] = brokerRecords()
        let brokerList = (1...brokers).map { ReplicaPlacement.Broker(id: Int32($0), rack: nil) }
        func commit(_ records: [MetadataRecord]) {
            var delta = MetadataDelta(image)
            for record in records {
                delta.replay(record, offset: offset, epoch: epoch)
                offset += 1
            }
            image = delta.apply()
        }
        for t in 0..<topics {
            pending += topicRecords(t, placement: brokerList)
            if pending.count >= recordsPerCommit {
                commit(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { commit(pending) }
        return image
    }

    /// The build configuration compiled into this binary: figures from a debug build are not
    /// comparable with a release build's.
    #if DEBUG
    static let buildConfiguration = "debug"
    #else
    static let buildConfiguration = "release"
    #endif

    /// The figures of one run.
    struct Report: Encodable {
        /// "release" or "debug" (`MetadataScale.buildConfiguration`).
        var buildConfiguration: String
        var partitions: Int
        var topics: Int
        var brokers: Int
        var replicationFactor: Int
        var records: Int64
        var replayMs: Double
        var replayRecordsPerSecond: Double
        var snapshotWriteMs: Double
        var snapshotLoadMs: Double
        var snapshotBytes: Int64
        var failoverMs: Double
        var failoverResetMs: Double
        var failoverSessionsMs: Double
        var failoverHeartbeatsMs: Double
        var fenceBrokerMs: Double
        var leadersMoved: Int
        var rssBaselineBytes: Int
        var rssAfterReplayBytes: Int
        var rssAfterLoadBytes: Int
        var replayedImageBytesPerPartition: Double
        var loadedImageBytesPerPartition: Double
        var verified: Bool

        var lines: [String] {
            func f(_ v: Double) -> String { String(format: "%.0f", v) }
            let mb = Double(snapshotBytes) / 1e6
            return [
                "metadata scale: \(partitions) partitions (\(topics) topics, RF \(replicationFactor), "
                    + "\(brokers) brokers), \(records) records, \(buildConfiguration) build",
                "  replay (standby/broker path)   \(f(replayMs)) ms  (\(f(replayRecordsPerSecond)) records/s)",
                "  snapshot write                 \(f(snapshotWriteMs)) ms  (target < 5000 ms)  "
                    + String(format: "%.1f MB file", mb),
                "  snapshot load                  \(f(snapshotLoadMs)) ms  (target < 5000 ms)",
                "  controller failover (image)    " + String(format: "%.1f", failoverMs) + " ms  (target < 1000 ms): "
                    + String(
                        format: "reset %.1f, sessions %.1f, first heartbeat of each broker %.1f",
                        failoverResetMs, failoverSessionsMs, failoverHeartbeatsMs),
                "  fence one broker               " + String(format: "%.1f", fenceBrokerMs)
                    + " ms  (\(leadersMoved) leaderships moved)",
                "  memory (VmRSS)                 " + f(loadedImageBytesPerPartition)
                    + " B/partition loaded, " + f(replayedImageBytesPerPartition)
                    + " B/partition replayed  (goal < 2048)",
                "  loaded image equals replayed   \(verified)",
            ]
        }
    }

    /// Runs every phase and verifies the loaded image against the replayed one.
    func measure(directory: String, keepSnapshot: Bool) throws -> Report {
        let rssBaseline = Self.residentBytes()
        var clock = Stopwatch()
        let replayed = replay()
        let replayMs = clock.lap()
        let rssAfterReplay = Self.residentBytes()
        let records = replayed.provenance.recordCount

        let storage = try SQLiteSnapshotStorage(directory: directory, clusterId: clusterId, voters: [1, 2, 3])
        let id = SnapshotId(endOffset: replayed.provenance.lastOffset + 1, epoch: epoch)
        _ = clock.lap()
        try storage.write(replayed, id: id)
        let writeMs = clock.lap()
        let bytes = try storage.size(id)
        let loaded = try storage.load(id)
        let loadMs = clock.lap()
        let rssAfterLoad = Self.residentBytes()
        let verified = loaded == replayed && loaded.topicsById.count == topics
        if !keepSnapshot {
            let file = directory + "/" + SQLiteSnapshot.fileName(endOffset: id.endOffset, epoch: id.epoch)
            try? FileManager.default.removeItem(atPath: file)
        }

        let failover = Self.failover(image: loaded, epoch: epoch + 1)
        _ = clock.lap()
        let fence = Self.fenceOneBroker(image: loaded)
        let fenceMs = clock.lap()

        let n = Double(partitionCount)
        return Report(
            buildConfiguration: Self.buildConfiguration, partitions: partitionCount, topics: topics, brokers: brokers,
            replicationFactor: replicationFactor,
            records: records, replayMs: replayMs, replayRecordsPerSecond: Double(records) / max(replayMs / 1000, 1e-9),
            snapshotWriteMs: writeMs, snapshotLoadMs: loadMs, snapshotBytes: bytes,
            failoverMs: failover.resetMs + failover.sessionsMs + failover.heartbeatsMs,
            failoverResetMs: failover.resetMs, failoverSessionsMs: failover.sessionsMs,
            failoverHeartbeatsMs: failover.heartbeatsMs, fenceBrokerMs: fenceMs, leadersMoved: fence,
            rssBaselineBytes: rssBaseline, rssAfterReplayBytes: rssAfterReplay, rssAfterLoadBytes: rssAfterLoad,
            replayedImageBytesPerPartition: Double(rssAfterReplay - rssBaseline) / n,
            loadedImageBytesPerPartition: Double(rssAfterLoad - rssAfterReplay) / n, verified: verified)
    }

    /// The image-dependent work of a standby that becomes the active controller, as
    /// `MetadataQuorum` does it: `leadershipChanged` resets the controller to the committed image;
    /// the commit of the new epoch's leader-change record is folded in and the working state
    /// rebuilt; `noteActivity` starts a session for every unfenced broker and the first session
    /// check looks for expired ones; then each broker's first heartbeat reaches the new leader.
    static func failover(
        image: MetadataImage, epoch: Int32
    ) -> (resetMs: Double, sessionsMs: Double, heartbeatsMs: Double) {
        var clock = Stopwatch()
        var controller = QuorumController(resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: -1))
        controller.reset(to: image)
        var delta = MetadataDelta(image)
        delta.advance(offset: image.provenance.lastOffset + 1, epoch: epoch)
        let committed = delta.apply()
        controller.reset(to: committed)
        let resetMs = clock.lap()
        var sessions = BrokerSessions()
        sessions.reset(image: committed, nowMs: 0)
        let expired = sessions.expired(image: controller.image, nowMs: 250, sessionTimeoutMs: 9000)
        precondition(expired.isEmpty, "no broker session expires 250 ms after a fresh start")
        let sessionsMs = clock.lap()
        for broker in committed.brokers.values.sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
            var request = BrokerHeartbeatRequest()
            request.brokerId = broker.id.rawValue
            request.brokerEpoch = broker.epoch
            request.currentMetadataOffset = committed.provenance.lastOffset
            sessions.touch(broker.id, nowMs: 250)
            let result = controller.brokerHeartbeat(request)
            precondition(
                result.response.errorCode == 0 && result.records.isEmpty,
                "a registered, caught-up broker's heartbeat changes nothing")
        }
        let heartbeatsMs = clock.lap()
        return (resetMs, sessionsMs, heartbeatsMs)
    }

    /// Broker 1's session expires: the controller's records that fence it and move its
    /// leaderships, replayed. Returns how many partitions changed leader.
    static func fenceOneBroker(image: MetadataImage) -> Int {
        var controller = QuorumController(resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: -1))
        controller.reset(to: image)
        let result = controller.fenceBrokers([NodeID(1)])
        controller.replay(
            result.records.enumerated().map { ($0.element, image.provenance.lastOffset + 1 + Int64($0.offset)) },
            epoch: image.provenance.lastEpoch)
        return result.records.reduce(0) { count, record in
            if case .partitionChange(let c) = record, c.leader != PartitionChange.noLeaderChange { return count + 1 }
            return count
        }
    }

    /// This process's resident set (VmRSS), after returning freed heap to the system.
    static func residentBytes() -> Int {
        // glibc's malloc_trim, which the Glibc module does not export.
        if let trim = dlsym(nil, "malloc_trim") {
            _ = unsafeBitCast(trim, to: (@convention(c) (Int) -> Int32).self)(0)
        }
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kib * 1024
        }
        return 0
    }
}

/// Milliseconds between laps, on the monotonic clock.
struct Stopwatch {
    private var last = DispatchTime.now().uptimeNanoseconds

    /// Milliseconds since the previous lap (or the start).
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) / 1e6
    }
}
