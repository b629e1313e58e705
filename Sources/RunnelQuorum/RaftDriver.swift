import NIOCore
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelRaft
import RunnelWire

/// Where a Raft driver runs: one serial executor with timers, a way to run blocking work (fsync)
/// off it, a clock, and a way to send messages. The process implements it over a NIO event loop,
/// a thread pool and TCP; the simulator over a virtual clock, network and disk.
public protocol RaftRuntime: AnyObject {
    /// Monotonic time in ms (timeouts).
    var nowMs: Int64 { get }
    /// Monotonic time in ns, for the commit path's timers only (never for a decision).
    var nowNanos: UInt64 { get }
    /// Wall-clock time in ms (record timestamps).
    var wallMs: Int64 { get }
    /// Runs `work` on the executor after `delayMs`.
    func schedule(afterMs delayMs: Int64, _ work: @escaping () -> Void)
    /// Runs `work` on the executor once the work queued there now has run.
    func execute(_ work: @escaping () -> Void)
    /// Runs `work` off the executor, then `then` back on it.
    func runBlocking(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void)
    /// Runs long CPU-bound `work` (a snapshot write) off the executor at a lower priority than
    /// the executor and its fsyncs, then `then` back on the executor.
    func runInBackground(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void)
    /// Sends a Raft message (requests travel as Kafka requests, responses as their answers).
    func send(_ message: RaftMessage<MetadataPayload>, to: NodeID)
    /// Asks `node` for a piece of snapshot `id` from `position` (FetchSnapshot); the completion
    /// runs on the executor.
    func fetchSnapshotChunk(
        from node: NodeID, id: SnapshotId, position: Int64,
        completion: @escaping (Result<SnapshotChunk, any Error>) -> Void)
}

/// What a metadata-log batch carries through the core: record values proposed on this node
/// (encoded into a batch when appended), or a whole batch as fetched from the leader.
public enum MetadataPayload: Sendable, Equatable {
    case values([ByteBuffer])
    case batch(ByteBuffer)
}

extension RaftRuntime {
    public var nowNanos: UInt64 { UInt64(max(nowMs, 0)) * 1_000_000 }

    /// A runtime without a background priority runs background work as blocking work.
    public func runInBackground(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void) {
        runBlocking(work, then: then)
    }
}

/// Receives committed metadata-log entries, in offset order, exactly once per incarnation.
public protocol RaftListener: AnyObject {
    /// Records up to (excluding) `highWatermark` are committed; `entries` are the new ones.
    func committed(_ entries: [MetadataLog.Entry], highWatermark: Int64)
    /// This node's role, epoch or leader changed.
    func leadershipChanged(role: RaftRole, epoch: Int32, leaderId: NodeID?)
    /// The committed state was replaced by a snapshot: read at start-up, or `fetched` from the leader.
    func snapshotLoaded(_ image: MetadataImage, fetched: Bool)
    /// The committed image exactly at the last delivered offset, to write a snapshot of.
    func imageForSnapshot() -> MetadataImage?
}

/// When a node writes a snapshot (Kafka's `metadata.log.max.record.bytes.between.snapshots` and
/// `metadata.log.max.snapshot.interval.ms`).
public struct SnapshotPolicy: Sendable {
    public var maxBytesBetweenSnapshots: Int64 = 20 * 1024 * 1024
    public var maxIntervalMs: Int64 = 3_600_000
    /// Snapshots kept on disk.
    public var retained = 2
    public init() {}
}

/// The errors a proposal can end with.
public enum ProposalError: Error, Equatable, Sendable {
    case notLeader(leaderId: Int32, epoch: Int32)
    case storage(String)
}

/// The quorum-state file (`quorum-state` in the metadata log directory), written atomically and
/// fsynced before any vote is answered.
public enum QuorumStateFile {
    public static let name = "quorum-state"

    public static func read(directory: String, disk: any Disk) throws -> QuorumStateRecord {
        guard let text = try OffsetCheckpoint.readText(directory + "/" + name, disk: disk) else { return .initial }
        func field(_ key: String) -> Int32? {
            guard let range = text.firstRange(of: "\"\(key)\":") else { return nil }
            let rest = text[range.upperBound...].drop { $0 == " " }
            return Int32(rest.prefix { $0 == "-" || $0.isNumber })
        }
        guard let epoch = field("leaderEpoch"), let voted = field("votedId"), let leader = field("leaderId") else {
            throw QuorumStateError(path: directory + "/" + name)
        }
        return QuorumStateRecord(epoch: epoch, votedId: voted, leaderId: leader)
    }

    public static func write(_ state: QuorumStateRecord, voters: [NodeID], directory: String, disk: any Disk) throws {
        let votersText = voters.map { "{\"voterId\":\($0.rawValue)}" }.joined(separator: ",")
        let text =
            "{\"leaderId\":\(state.leaderId),\"leaderEpoch\":\(state.epoch),\"votedId\":\(state.votedId),\"appliedOffset\":0,\"currentVoters\":[\(votersText)],\"data_version\":0}\n"
        try OffsetCheckpoint.writeAtomically(text, to: directory + "/" + name, disk: disk)
    }
}

struct SnapshotUnavailable: Error, CustomStringConvertible {
    var description: String { "this node keeps no snapshots" }
}

public struct QuorumStateError: Error, CustomStringConvertible {
    public var path: String
    public var description: String {
        "\(path) is not a valid quorum-state file; restore it or remove the node's metadata directory and let it catch up"
    }
}

/// Drives a `RaftNode` against a real log: persists the quorum state before sending, appends and
/// truncates `__cluster_metadata`, group-commits fsyncs off the executor, serves fetches from the
/// log, and delivers committed records. The same code runs in a process and in the simulator.
/// Confined to the runtime's executor.
public final class RaftDriver<Runtime: RaftRuntime>: @unchecked Sendable {
    public let config: RaftConfig
    public let directory: String
    let runtime: Runtime
    let disk: any Disk
    public let log: MetadataLog
    weak var listener: (any RaftListener)?
    public private(set) var node: RaftNode<MetadataPayload>

    /// Largest bytes of records sent in one fetch response.
    public var fetchResponseBytesMax = 1_048_576
    /// How often the core is ticked.
    public var tickIntervalMs: Int64 = 10

    private var appliedOffset: Int64 = 0
    /// Number of the snapshot download under way.
    private var snapshotDownload = 0
    private var syncInFlight = false
    /// The lowest offset truncated while a sync was in flight (that sync cannot vouch past it).
    private var truncatedDuringSync: Int64 = .max
    private var pending: [(lastOffset: Int64, completion: (Result<Int64, ProposalError>) -> Void)] = []
    private var stopped = false
    let snapshots: (any SnapshotStorage)?
    public var snapshotPolicy = SnapshotPolicy()
    private var bytesSinceSnapshot: Int64 = 0
    private var lastSnapshotMs: Int64 = 0
    private var snapshotInFlight = false
    private var startupSnapshot: SnapshotId?
    private var lastRole: RaftRole?
    private var lastLeader: NodeID?
    private var lastEpoch: Int32 = -1
    private var timeline = CommitTimeline()
    /// The log's newest batches, which fetches are answered from.
    private var recent = RecentBatches()
    /// What happens when the metadata log cannot be written or synced: the node must stop at once
    /// (no clean shutdown), since it may no longer acknowledge what is not durable. A process
    /// exits with status 1, as it does when a partition's log dir fails; by default (the
    /// simulator, tests) the program stops.
    public var onStorageFailure: (String) -> Never = { preconditionFailure($0) }

    public init(
        config: RaftConfig, runtime: Runtime, disk: any Disk, directory: String, listener: (any RaftListener)?,
        seed: UInt64,
        cleanShutdown: Bool, snapshots: (any SnapshotStorage)? = nil
    ) throws {
        self.config = config
        self.runtime = runtime
        self.disk = disk
        self.directory = directory
        self.listener = listener
        self.snapshots = snapshots
        try disk.makeDirectory(directory)
        let state = try QuorumStateFile.read(directory: directory, disk: disk)
        self.log = try MetadataLog(
            directory: directory + "/" + MetadataLog.topicPartition.description, disk: disk, nowMs: runtime.wallMs,
            cleanShutdown: cleanShutdown)
        // The log starts where the newest snapshot ends; a log that ends before it is replaced.
        let snapshot = snapshots?.latest()
        if let snapshot {
            if log.endOffset < snapshot.endOffset {
                try log.log.truncateFullyAndStart(at: snapshot.endOffset, nowMs: runtime.wallMs)
            } else if log.log.logStartOffset < snapshot.endOffset {
                _ = try log.log.advanceLogStartOffset(to: snapshot.endOffset)
            }
        }
        self.startupSnapshot = snapshot
        // A batch's leader epoch lies outside its CRC. No batch can carry an epoch above the one
        // in quorum-state (fsynced before any append of that epoch), and epochs never go down:
        // a log that says otherwise has a damaged tail, which is dropped (it was never acknowledged).
        if let bad = try Self.firstBadEpoch(log, maxEpoch: state.epoch) {
            try log.log.truncate(to: bad)
        }
        let view = try Self.logView(log, snapshot: snapshot)
        self.node = RaftNode(config: config, state: state, log: view, nowMs: runtime.nowMs, seed: seed)
        self.lastSnapshotMs = runtime.nowMs
    }

    /// The offset of the first batch whose epoch is above `maxEpoch` or below its predecessor's.
    static func firstBadEpoch(_ log: MetadataLog, maxEpoch: Int32) throws -> Int64? {
        var offset = log.log.logStartOffset
        let end = log.endOffset
        var previous: Int32 = -1
        while offset < end {
            let bytes = try log.log.readBytes(from: offset, maxBytes: 4 * 1024 * 1024)
            var index = bytes.readerIndex
            var advanced = false
            while let header = RecordBatchHeader(bytes, at: index), header.totalBytes <= bytes.writerIndex - index {
                if header.partitionLeaderEpoch > maxEpoch || header.partitionLeaderEpoch < previous {
                    return header.baseOffset
                }
                previous = header.partitionLeaderEpoch
                offset = header.nextOffset
                index += header.totalBytes
                advanced = true
            }
            if !advanced { break }
        }
        return nil
    }

    /// Builds the core's view of the log by reading every batch header.
    static func logView(_ log: MetadataLog, snapshot: SnapshotId? = nil) throws -> RaftLogView {
        var epochs: [(Int32, Int64)] = []
        var offset = log.log.logStartOffset
        let end = log.endOffset
        while offset < end {
            let bytes = try log.log.readBytes(from: offset, maxBytes: 4 * 1024 * 1024)
            var index = bytes.readerIndex
            var advanced = false
            while let header = RecordBatchHeader(bytes, at: index), header.totalBytes <= bytes.writerIndex - index {
                if epochs.last?.0 != header.partitionLeaderEpoch {
                    epochs.append((header.partitionLeaderEpoch, header.baseOffset))
                }
                offset = header.nextOffset
                index += header.totalBytes
                advanced = true
            }
            if !advanced { break }
        }
        let startEpoch = snapshot.map { $0.endOffset == log.log.logStartOffset ? $0.epoch : -1 } ?? -1
        return RaftLogView(
            startOffset: log.log.logStartOffset, startEpoch: startEpoch, endOffset: end, epochStarts: epochs)
    }

    // MARK: inputs

    /// Loads the newest snapshot (if any) into the listener, then starts ticking. Call once, on
    /// the executor.
    public func start() throws {
        if let id = startupSnapshot, let snapshots {
            let image = try snapshots.load(id)
            appliedOffset = id.endOffset
            listener?.snapshotLoaded(image, fetched: false)
        }
        process()
        scheduleTick()
    }

    private func scheduleTick() {
        runtime.schedule(afterMs: tickIntervalMs) { [weak self] in
            guard let self, !self.stopped else { return }
            self.node.tick(nowMs: self.runtime.nowMs)
            self.process()
            self.scheduleTick()
        }
    }

    public func receive(_ message: RaftMessage<MetadataPayload>, from: NodeID) {
        guard !stopped else { return }
        let endBefore = node.log.endOffset
        node.step(message, from: from, nowMs: runtime.nowMs)
        process()
        if node.role != .leader, node.log.endOffset > endBefore {
            timeline.fetched(upTo: node.log.endOffset, nowNs: runtime.nowNanos)
        }
    }

    /// A request to `node` failed at the transport.
    public func unreachable(_ node: NodeID) {
        guard !stopped else { return }
        if node != config.nodeId { self.node.unreachable(node, nowMs: runtime.nowMs) }
        process()
    }

    /// Proposes metadata record values; completes with the offset of the last of them once
    /// committed, or with `notLeader`. The values take the offsets from `nextProposalOffset` on.
    /// Proposals made while the executor works through what is queued on it are appended
    /// together, as one batch, once that work has run (or once they reach
    /// `proposalBatchBytesMax`): one log write and one round of fetch answers for all of them,
    /// as Kafka's controller accumulates its records into batches.
    public func propose(_ values: [ByteBuffer], completion: @escaping (Result<Int64, ProposalError>) -> Void) {
        guard !stopped, !values.isEmpty else {
            completion(.failure(.notLeader(leaderId: -1, epoch: node.epoch)))
            return
        }
        guard node.role == .leader else {
            completion(.failure(.notLeader(leaderId: node.leaderId?.rawValue ?? -1, epoch: node.epoch)))
            return
        }
        if buffered == nil {
            buffered = BufferedProposals(baseOffset: node.log.endOffset, epoch: node.epoch)
            runtime.execute { [weak self] in self?.appendBuffered() }
        }
        buffered!.add(values, completion: completion)
        if buffered!.bytes >= proposalBatchBytesMax { appendBuffered() }
    }

    /// The offset the first value of the next proposal will have.
    public var nextProposalOffset: Int64 { buffered?.nextOffset ?? node.log.endOffset }

    /// Proposals waiting to be appended together.
    private struct BufferedProposals {
        let baseOffset: Int64
        let epoch: Int32
        var values: [ByteBuffer] = []
        var bytes = 0
        var completions: [(lastOffset: Int64, completion: (Result<Int64, ProposalError>) -> Void)] = []

        init(baseOffset: Int64, epoch: Int32) {
            self.baseOffset = baseOffset
            self.epoch = epoch
        }

        var nextOffset: Int64 { baseOffset + Int64(values.count) }

        mutating func add(_ more: [ByteBuffer], completion: @escaping (Result<Int64, ProposalError>) -> Void) {
            values += more
            bytes += more.reduce(0) { $0 + $1.readableBytes }
            completions.append((nextOffset - 1, completion))
        }
    }
    private var buffered: BufferedProposals?
    /// Bytes of record values past which buffered proposals are appended at once.
    public var proposalBatchBytesMax = 256 * 1024

    /// Appends the buffered proposals as one batch. They fail with `notLeader` if this node lost
    /// the leadership since (its log may then hold other records at their offsets).
    private func appendBuffered() {
        guard let batch = buffered else { return }
        buffered = nil
        let failure: ProposalError
        if !stopped, node.role == .leader, node.epoch == batch.epoch, node.log.endOffset == batch.baseOffset {
            switch node.propose(.values(batch.values), recordCount: batch.values.count) {
            case .success(let range):
                precondition(
                    range.lowerBound == batch.baseOffset && range.upperBound == batch.nextOffset - 1,
                    "buffered proposals for \(batch.baseOffset)..<\(batch.nextOffset) were appended at \(range)")
                pending += batch.completions
                timeline.appended(lastOffset: range.upperBound, nowNs: runtime.nowNanos)
                process()
                return
            case .failure(.notLeader(let leader, let epoch)):
                failure = .notLeader(leaderId: leader, epoch: epoch)
            }
        } else {
            failure = .notLeader(leaderId: node.leaderId?.rawValue ?? -1, epoch: node.epoch)
        }
        for proposal in batch.completions { proposal.completion(.failure(failure)) }
    }

    /// Test-only rule switches of the core (the simulation proves it catches them).
    public var faults: RaftNode<MetadataPayload>.Faults {
        get { node.faults }
        set { node.faults = newValue }
    }

    /// Whether this node leads and its own epoch's first record is committed, so its image is complete.
    public var isActiveLeader: Bool { node.role == .leader && node.highWatermark > node.epochStartOffset }

    /// The runtime's clocks (for reports such as DescribeQuorum).
    public var wallClockMs: Int64 { runtime.wallMs }
    public var monotonicMs: Int64 { runtime.nowMs }

    public func resign() {
        node.resign()
        process()
    }

    public func stop() {
        stopped = true
        let unappended = buffered?.completions ?? []
        buffered = nil
        for p in pending + unappended { p.completion(.failure(.notLeader(leaderId: -1, epoch: node.epoch))) }
        pending = []
    }

    // MARK: carrying out Ready

    private func process() {
        var rounds = 0
        while !stopped {
            let ready = node.ready()
            if ready.isEmpty { break }
            rounds += 1
            precondition(rounds < 10_000, "the Raft core keeps producing output")
            carryOut(ready)
        }
        notifyLeadership()
        if node.role == .leader, timeline.awaitingAcknowledgement {
            timeline.acknowledged(below: node.furthestFollowerEndOffset, nowNs: runtime.nowNanos)
        }
    }

    private func carryOut(_ ready: Ready<MetadataPayload>) {
        do {
            if let state = ready.quorumState {
                // Durable before any message of this Ready is sent (votes, candidacy).
                try QuorumStateFile.write(state, voters: config.voters, directory: directory, disk: disk)
            }
            if let offset = ready.truncateTo {
                try log.log.truncate(to: offset)
                recent.truncate(to: offset)
                truncatedDuringSync = min(truncatedDuringSync, offset)
            }
            for batch in ready.appends {
                try append(batch)
            }
        } catch {
            // The log cannot be trusted any more: stop rather than acknowledge what is not durable.
            onStorageFailure("metadata log write failed: \(error)")
        }
        for out in ready.messages {
            runtime.send(materialize(out.message), to: out.to)
        }
        if let from = ready.abandonedFrom {
            failPending(from: from)
        }
        if let hw = ready.highWatermark {
            deliverCommitted(upTo: hw)
        }
        if let fetch = ready.fetchSnapshot {
            if snapshots == nil {
                node.snapshotFailed(nowMs: runtime.nowMs)
            } else {
                snapshotDownload += 1
                fetchSnapshot(from: fetch.leader, id: fetch.id, position: 0, download: snapshotDownload)
            }
        }
        maybeSync()
    }

    private func append(_ batch: RaftBatch<MetadataPayload>) throws {
        let bytes: ByteBuffer
        switch batch.payload {
        case .data(.batch(let fetched)):
            bytes = fetched
        case .data(.values(let values)):
            bytes = RecordBatches.build(
                records: values.enumerated().map {
                    Record(
                        offset: batch.baseOffset + Int64($0.offset), timestamp: runtime.wallMs, key: nil,
                        value: $0.element)
                },
                partitionLeaderEpoch: batch.epoch)
        case .leaderChange(let leaderId, let voters):
            bytes = Self.leaderChangeBatch(
                baseOffset: batch.baseOffset, epoch: batch.epoch, leaderId: leaderId, voters: voters,
                timestamp: runtime.wallMs)
        }
        _ = try log.log.appendAsFollower(bytes, nowMs: runtime.wallMs)
        recent.appended(bytes)
    }

    /// A control batch holding Kafka's LeaderChangeMessage.
    static func leaderChangeBatch(
        baseOffset: Int64, epoch: Int32, leaderId: NodeID, voters: [NodeID], timestamp: Int64
    ) -> ByteBuffer {
        var key = ByteBuffer()
        key.writeInteger(Int16(0))
        key.writeInteger(ControlRecordType.leaderChange)
        var message = LeaderChangeMessage()
        message.leaderId = leaderId.rawValue
        message.voters = voters.map { .init(voterId: $0.rawValue) }
        message.grantingVoters = message.voters
        let value = message.encoded(version: 0)
        return RecordBatches.build(
            records: [Record(offset: baseOffset, timestamp: timestamp, key: key, value: value)],
            attributes: 0x20, partitionLeaderEpoch: epoch)
    }

    /// Fills a fetch response's records from the log.
    private func materialize(_ message: RaftMessage<MetadataPayload>) -> RaftMessage<MetadataPayload> {
        guard case .fetchResponse(var response) = message, response.readFrom >= 0, response.readFrom < response.readUpTo
        else { return message }
        if let held = recent.read(from: response.readFrom, upTo: response.readUpTo, maxBytes: fetchResponseBytesMax) {
            response.batches = held
            return .fetchResponse(response)
        }
        do {
            let bytes = try log.log.readBytes(
                from: response.readFrom, maxBytes: fetchResponseBytesMax, maxOffset: response.readUpTo)
            response.batches = RaftWire.splitBatches(bytes)
        } catch {
            response.batches = []
        }
        return .fetchResponse(response)
    }

    /// Group commit: one fsync covers every append made before it starts.
    private func maybeSync() {
        guard !syncInFlight, node.log.persistedEndOffset < node.log.endOffset else { return }
        guard config.isVoter else {
            syncAsObserver()
            return
        }
        syncInFlight = true
        truncatedDuringSync = .max
        let target = node.log.endOffset
        let log = self.log
        let now = runtime.wallMs
        runtime.runBlocking(
            { try log.sync(nowMs: now) },
            then: { [weak self] error in
                guard let self else { return }
                self.syncInFlight = false
                guard !self.stopped else { return }
                if let error { onStorageFailure("metadata log fsync failed: \(error)") }
                let durable = min(target, self.truncatedDuringSync)
                self.node.persisted(upTo: durable, nowMs: self.runtime.nowMs)
                if self.node.role == .leader {
                    self.timeline.synced(below: durable, nowNs: self.runtime.nowNanos)
                } else {
                    self.timeline.followerSynced(below: durable, nowNs: self.runtime.nowNanos)
                }
                self.process()
            })
    }

    /// An observer does not sync on append, as Kafka's KafkaRaftClient flushes only a voter's
    /// log: a voter's fetch offset counts toward the high watermark, an observer's toward
    /// nothing (the voters are static), and after a crash it fetches again what its log lost (a
    /// log that ends before the newest snapshot is replaced at start-up). Rolled segments are
    /// synced in the background, as Kafka flushes a log up to a new segment when it rolls. This
    /// spares every broker a thread hop and an fsync per metadata write.
    private func syncAsObserver() {
        node.persisted(upTo: node.log.endOffset, nowMs: runtime.nowMs)
        guard log.log.recoveryPoint < log.log.activeSegmentBaseOffset else { return }
        syncInFlight = true
        let log = self.log
        let now = runtime.wallMs
        runtime.runBlocking(
            { try log.log.flushIfDue(nowMs: now) },
            then: { [weak self] error in
                guard let self else { return }
                self.syncInFlight = false
                guard !self.stopped else { return }
                if let error { onStorageFailure("metadata log fsync failed: \(error)") }
                self.process()
            })
    }

    private func deliverCommitted(upTo highWatermark: Int64) {
        guard highWatermark > appliedOffset else { return }
        do {
            // The newest batches are still held as appended (every node appends a record moments
            // before it commits): decode them from memory, and read from the file only what they
            // no longer hold (after a restart or a snapshot, or past the memory budget).
            var entries: [MetadataLog.Entry] = []
            var next = appliedOffset
            for batch in recent.read(from: next, upTo: highWatermark, maxBytes: .max) ?? [] {
                guard case .data(.batch(let bytes)) = batch.payload else { break }
                next = try MetadataLog.decode(bytes, from: next, into: &entries)
            }
            if next < highWatermark {
                entries += try log.read(from: next, upTo: highWatermark)
            }
            appliedOffset = highWatermark
            listener?.committed(entries, highWatermark: highWatermark)
            for entry in entries {
                bytesSinceSnapshot += Int64(entry.record.map { MetadataRecordFrame.encode($0).readableBytes } ?? 16)
            }
        } catch {
            preconditionFailure("cannot read committed metadata records: \(error)")
        }
        while let first = pending.first, first.lastOffset < highWatermark {
            pending.removeFirst()
            first.completion(.success(first.lastOffset))
        }
        // A commit can follow the acknowledgement that made it in the same round: stamp that first.
        if node.role == .leader {
            timeline.acknowledged(below: node.furthestFollowerEndOffset, nowNs: runtime.nowNanos)
        }
        timeline.committed(below: highWatermark)
        maybeTakeSnapshot()
    }

    // MARK: snapshots

    /// Writes a snapshot of the committed image when enough bytes or time have passed, off the
    /// executor; then the log may drop what the snapshot covers.
    private func maybeTakeSnapshot() {
        guard let snapshots, !snapshotInFlight, bytesSinceSnapshot > 0 else { return }
        let due =
            bytesSinceSnapshot >= snapshotPolicy.maxBytesBetweenSnapshots
            || runtime.nowMs - lastSnapshotMs >= snapshotPolicy.maxIntervalMs
        guard due, appliedOffset > node.log.startOffset, let image = listener?.imageForSnapshot(),
            image.provenance.lastOffset == appliedOffset - 1
        else { return }
        let id = SnapshotId(endOffset: appliedOffset, epoch: node.log.epoch(at: appliedOffset - 1))
        snapshotInFlight = true
        bytesSinceSnapshot = 0
        lastSnapshotMs = runtime.nowMs
        let retained = snapshotPolicy.retained
        runtime.runInBackground(
            {
                try snapshots.write(image, id: id)
                snapshots.retain(newest: retained)
            },
            then: { [weak self] error in
                guard let self else { return }
                self.snapshotInFlight = false
                guard error == nil, !self.stopped else { return }
                // Drop log segments wholly below the snapshot.
                if id.endOffset > self.node.log.startOffset, id.endOffset <= max(self.node.highWatermark, 0) {
                    self.node.snapshotTaken(id)
                    _ = try? self.log.log.advanceLogStartOffset(to: id.endOffset)
                }
            })
    }

    /// Serves a piece of a local snapshot (FetchSnapshot).
    public func snapshotChunk(_ id: SnapshotId, position: Int64, maxBytes: Int) -> Result<SnapshotChunk, any Error> {
        guard let snapshots else { return .failure(SnapshotUnavailable()) }
        return Result {
            let size = try snapshots.size(id)
            let bytes = try snapshots.read(id, position: position, maxBytes: maxBytes)
            return SnapshotChunk(id: id, totalBytes: size, position: position, bytes: bytes)
        }
    }

    /// Downloads snapshot `id` from `leader` piece by piece, verifies and loads it.
    /// Each download has a number: chunks of an abandoned one (a late answer after a retry
    /// started another) are dropped rather than loaded over newer state.
    private func fetchSnapshot(from leader: NodeID, id: SnapshotId, position: Int64, download: Int) {
        runtime.fetchSnapshotChunk(from: leader, id: id, position: position) { [weak self] result in
            guard let self, !self.stopped, let snapshots = self.snapshots, download == self.snapshotDownload else {
                return
            }
            switch result {
            case .failure:
                self.node.snapshotFailed(nowMs: self.runtime.nowMs)
                self.process()
            case .success(let chunk):
                self.runtime.runBlocking(
                    { _ = try snapshots.receive(chunk) },
                    then: { error in
                        guard !self.stopped, download == self.snapshotDownload else { return }
                        if error != nil {
                            self.node.snapshotFailed(nowMs: self.runtime.nowMs)
                            self.process()
                            return
                        }
                        let next = chunk.position + Int64(chunk.bytes.readableBytes)
                        if next < chunk.totalBytes && chunk.bytes.readableBytes > 0 {
                            self.fetchSnapshot(from: leader, id: id, position: next, download: download)
                        } else {
                            self.installSnapshot(id)
                        }
                    })
            }
        }
    }

    private func installSnapshot(_ id: SnapshotId) {
        guard let snapshots, node.snapshotBeingFetched == id else { return }
        do {
            let image = try snapshots.load(id)
            try log.log.truncateFullyAndStart(at: id.endOffset, nowMs: runtime.wallMs)
            recent.clear()
            appliedOffset = id.endOffset
            bytesSinceSnapshot = 0
            node.snapshotLoaded(id, nowMs: runtime.nowMs)
            listener?.snapshotLoaded(image, fetched: true)
        } catch {
            node.snapshotFailed(nowMs: runtime.nowMs)
        }
        process()
    }

    private func failPending(from offset: Int64) {
        let failed = pending.filter { $0.lastOffset >= offset }
        pending.removeAll { $0.lastOffset >= offset }
        for p in failed {
            p.completion(.failure(.notLeader(leaderId: node.leaderId?.rawValue ?? -1, epoch: node.epoch)))
        }
    }

    private func notifyLeadership() {
        if node.role != lastRole || node.leaderId != lastLeader || node.epoch != lastEpoch {
            if node.role != .leader { failPending(from: 0) }
            timeline.reset()
            lastRole = node.role
            lastLeader = node.leaderId
            lastEpoch = node.epoch
            listener?.leadershipChanged(role: node.role, epoch: node.epoch, leaderId: node.leaderId)
        }
    }
}
