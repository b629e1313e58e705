import Metrics
import NIOCore
import RunnelController
import RunnelLog
import RunnelCore
import RunnelMetadata
import RunnelRaft
import RunnelWire

/// The controller side of a quorum node: runs controller commands on the active controller (the
/// Raft leader), proposes their records, answers once they are committed; replays every committed
/// record into the image on active and standby alike, and publishes each delta. Confined to the
/// runtime's executor; generic over the runtime so the simulator runs this very code.
public final class MetadataQuorum<Runtime: RaftRuntime>: RaftListener, @unchecked Sendable {
    public typealias Publisher = (MetadataDelta, MetadataImage) -> Void

    public let clusterId: String
    public private(set) var driver: RaftDriver<Runtime>!
    let runtime: Runtime
    /// The committed image: what every node agrees on.
    public private(set) var committedImage: MetadataImage = .empty
    /// The active controller's working state: committed image plus its own proposals in flight.
    private var controller: QuorumController
    private var publishers: [Publisher] = []
    private var rng: SeededRandom
    private var bootstrapped = false
    /// Commands waiting for this node to become the active controller's ready state.
    public var onLeadershipChange: ((RaftRole, Int32, NodeID?) -> Void)?
    /// Brokers were fenced for lapsed sessions (`committed` false: found, the fencing proposed;
    /// true: the fencing committed, `elapsedMs` after it was found). The node logs both, as
    /// Kafka's controller logs the brokers it fences.
    public var onSessionsExpired: ((_ brokers: [NodeID], _ committed: Bool, _ elapsedMs: Int64) -> Void)?
    /// Broker sessions, kept by the active controller only.
    public private(set) var sessions = BrokerSessions()
    /// `broker.session.timeout.ms`
    public var sessionTimeoutMs: Int64 = 9000
    /// `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds` (in ms) and
    /// `leader.imbalance.per.broker.percentage`; nil when off.
    public var leaderRebalance: (intervalMs: Int64, percentage: Int)? = (300_000, 10)
    private var wasActive = false
    private var fencing = false
    private var lastRebalanceMs: Int64?
    /// Records this active controller proposed that are not committed yet, by offset.
    private var proposed: [(offset: Int64, record: MetadataRecord)] = []
    /// The working image after each in-flight command, by the command's last offset, with the
    /// delta that made it from the image before. Once a command is committed with all before it,
    /// the committed image is that one: it shares its storage with the working image instead of
    /// being a second copy built from the same records (which the active controller held beside
    /// it, and freed on its loop when it resigned). When that command alone is what committed,
    /// its delta is what the publishers get, rather than the same records replayed again (a
    /// second pass over every record, 0.9 s for a fencing that moves 33,000 leaderships).
    private var proposedImages: [(lastOffset: Int64, image: MetadataImage, delta: MetadataDelta)] = []

    public init(
        clusterId: String, config: RaftConfig, runtime: Runtime, disk: any Disk, directory: String,
        controller: QuorumController, seed: UInt64, cleanShutdown: Bool, snapshots: (any SnapshotStorage)? = nil
    ) throws {
        self.clusterId = clusterId
        self.runtime = runtime
        self.controller = controller
        self.rng = SeededRandom(seed: seed)
        self.driver = try RaftDriver(
            config: config, runtime: runtime, disk: disk, directory: directory, listener: nil,
            seed: rng.next(), cleanShutdown: cleanShutdown, snapshots: snapshots)
        driver.listener = self
    }

    /// Loads the newest snapshot and starts the driver. The log after the snapshot is replayed as
    /// the quorum confirms it committed (the high watermark is not known before).
    public func start() throws {
        try driver.start()
        scheduleSessionCheck()
    }

    /// Every 250 ms the active controller fences brokers whose heartbeats stopped.
    private func scheduleSessionCheck() {
        runtime.schedule(afterMs: 250) { [weak self] in
            guard let self else { return }
            self.checkSessions()
            self.scheduleSessionCheck()
        }
    }

    private func noteActivity() {
        let active = driver.isActiveLeader
        if active && !wasActive {
            // A new active controller gives every broker a fresh session.
            sessions.reset(image: committedImage, nowMs: runtime.nowMs)
        }
        wasActive = active
    }

    private func checkSessions() {
        noteActivity()
        guard driver.isActiveLeader, !fencing else { return }
        maybeRebalanceLeaders()
        let expired = sessions.expired(
            image: controller.image, nowMs: runtime.nowMs, sessionTimeoutMs: sessionTimeoutMs)
        guard !expired.isEmpty else { return }
        fencing = true
        let found = runtime.nowMs
        onSessionsExpired?(expired, false, 0)
        run(
            { c, _, _ in c.fenceBrokers(expired) },
            completion: { [weak self] (result: Result<Int, ProposalError>) in
                guard let self else { return }
                self.fencing = false
                if case .success = result { self.onSessionsExpired?(expired, true, self.runtime.nowMs - found) }
            })
    }

    /// Moves leadership back to preferred replicas every rebalance interval (as Kafka's controller).
    private func maybeRebalanceLeaders() {
        guard let rebalance = leaderRebalance else { return }
        let now = runtime.nowMs
        guard let last = lastRebalanceMs else {
            lastRebalanceMs = now
            return
        }
        guard now - last >= rebalance.intervalMs else { return }
        lastRebalanceMs = now
        run(
            { c, _, _ in c.preferredLeaderRebalance(imbalancePercentage: rebalance.percentage) },
            completion: { (_: Result<Int, ProposalError>) in })
    }

    /// A broker heartbeat: renews its session and runs the heartbeat command.
    public func heartbeat(
        _ request: BrokerHeartbeatRequest,
        completion: @escaping (Result<BrokerHeartbeatResponse, ProposalError>) -> Void
    ) {
        noteActivity()
        if driver.isActiveLeader, controller.image.brokers[NodeID(request.brokerId)]?.epoch == request.brokerEpoch {
            sessions.touch(NodeID(request.brokerId), nowMs: runtime.nowMs)
        }
        run({ c, _, _ in c.brokerHeartbeat(request) }, completion: completion)
    }

    /// A broker registration: refused with DUPLICATE_BROKER_REGISTRATION while another
    /// incarnation of the broker id still holds a live session (its heartbeats have not lapsed),
    /// as Kafka's controller does, so a late registration of an earlier incarnation cannot
    /// replace the live one.
    public func registerBroker(
        _ request: BrokerRegistrationRequest, unfenced: Bool,
        completion: @escaping (Result<BrokerRegistrationResponse, ProposalError>) -> Void
    ) {
        noteActivity()
        let sessions = self.sessions, now = runtime.nowMs, timeout = sessionTimeoutMs, clusterId = self.clusterId
        var accepted = false
        run(
            { c, _, next in
                let result = c.registerBroker(
                    request, clusterId: clusterId, nextOffset: next, unfenced: unfenced,
                    hasLiveSession: { sessions.isAlive($0, nowMs: now, sessionTimeoutMs: timeout) })
                accepted = result.response.errorCode == 0 && !result.records.isEmpty
                return result
            }, completion: completion)
        // A registration starts the new incarnation's session at once (as Kafka's heartbeat
        // manager does), so another incarnation cannot take the id over before its first heartbeat.
        if accepted { self.sessions.touch(NodeID(request.brokerId), nowMs: now) }
    }

    public func subscribe(_ publisher: @escaping Publisher) {
        publishers.append(publisher)
        if committedImage.provenance.lastOffset >= 0 { publisher(.everything(committedImage), committedImage) }
    }

    /// Whether commands can run here now.
    public var isActive: Bool { driver.isActiveLeader }
    public var leaderId: NodeID? { driver.node.leaderId }
    public var epoch: Int32 { driver.node.epoch }

    // MARK: RaftListener

    public func committed(_ entries: [MetadataLog.Entry], highWatermark: Int64) {
        // The working state is what is committed plus this controller's own proposals still in
        // flight (a new leader also learns here what earlier epochs committed). When what
        // committed is the oldest of those proposals, record for record, the working state
        // already holds it: it is kept, rather than rebuilt by replaying every proposal still in
        // flight at each commit.
        let ownProposals =
            driver.node.role == .leader && entries.count <= proposed.count
            && zip(entries, proposed).allSatisfy { $0.record != nil && $0.offset == $1.offset }
        let last = entries.last?.offset
        let delta: MetadataDelta
        if ownProposals, let oldest = proposedImages.first, oldest.lastOffset == last,
            oldest.delta.base.provenance == committedImage.provenance  // not after part of it committed
        {
            assert(
                oldest.delta.base == committedImage && oldest.image == replayed(entries).apply(),
                "the working image at offset \(oldest.lastOffset) is not the committed one")
            delta = oldest.delta
            committedImage = oldest.image
        } else if ownProposals, let adopted = proposedImages.first(where: { $0.lastOffset == last })?.image {
            delta = replayed(entries)
            assert(adopted == delta.apply(), "the working image at offset \(last ?? -1) is not the committed one")
            committedImage = adopted
        } else {
            delta = replayed(entries)
            committedImage = delta.apply()
        }
        let committedUpTo = committedImage.provenance.lastOffset
        proposed.removeAll { $0.offset <= committedUpTo }
        proposedImages.removeAll { $0.lastOffset <= committedUpTo }
        if !ownProposals { rebuildWorkingState() }
        for publish in publishers { publish(delta, committedImage) }
        QuorumMetrics.highWatermark.record(highWatermark)
        QuorumMetrics.offlinePartitions.record(committedImage.offlinePartitionCount)
        noteActivity()
        maybeBootstrap()
    }

    /// The committed image with `entries` replayed on it.
    private func replayed(_ entries: [MetadataLog.Entry]) -> MetadataDelta {
        var delta = MetadataDelta(committedImage)
        for entry in entries {
            if let record = entry.record {
                delta.replay(record, offset: entry.offset, epoch: entry.epoch)
            } else {
                delta.advance(offset: entry.offset, epoch: entry.epoch)
            }
        }
        return delta
    }

    /// Called when a snapshot replaced the committed state (`fetched`: from the leader).
    public var onSnapshotLoaded: ((MetadataImage, Bool) -> Void)?

    public func snapshotLoaded(_ image: MetadataImage, fetched: Bool) {
        onSnapshotLoaded?(image, fetched)
        committedImage = image
        proposed = []
        proposedImages = []
        controller.reset(to: image)
        for publish in publishers { publish(.everything(image), image) }
    }

    public func imageForSnapshot() -> MetadataImage? { committedImage }

    private func rebuildWorkingState() {
        // The images of in-flight commands were built on the state before: they are dropped (the
        // next commits build theirs by replay).
        proposedImages = []
        controller.reset(to: committedImage)
        if driver.node.role == .leader && !proposed.isEmpty {
            controller.replay(proposed.map { ($0.record, $0.offset) }, epoch: driver.node.epoch)
        }
    }

    public func leadershipChanged(role: RaftRole, epoch: Int32, leaderId: NodeID?) {
        // A new or former leader starts from what is committed; its own uncommitted proposals are gone.
        proposed = []
        proposedImages = []
        controller.reset(to: committedImage)
        QuorumMetrics.epoch.record(epoch)
        QuorumMetrics.isActive.record(role == .leader ? 1 : 0)
        QuorumMetrics.leaderChanges.increment()
        onLeadershipChange?(role, epoch, leaderId)
        maybeBootstrap()
    }

    /// Records `runnel format` gave this node for a new cluster (its `--release-version`'s
    /// metadata.version, SCRAM credentials of `--add-scram`), written by the first active controller.
    public var bootstrapRecords: [MetadataRecord] = []

    /// A new cluster records its metadata version first, as Kafka's format does, then the
    /// bootstrap records.
    private func maybeBootstrap() {
        guard !bootstrapped, driver.isActiveLeader else { return }
        bootstrapped = true
        if committedImage.features[MetadataVersion.featureName] == nil {
            let records = BootstrapMetadata.firstRecords(bootstrapRecords)
            run(
                { _, _, _ in ControllerResult(records: records, response: 0) },
                completion: { (_: Result<Int, ProposalError>) in })
        }
    }

    // MARK: commands

    /// Runs a controller command on the active controller. Its records are replayed into the
    /// working state at once (so the next command sees them) and the completion runs once they are
    /// committed. On a standby, or before this leader's epoch is committed, fails with `notLeader`.
    public func run<Response>(
        _ command: (QuorumController, inout SeededRandom, Int64) -> ControllerResult<Response>,
        completion: @escaping (Result<Response, ProposalError>) -> Void
    ) {
        guard driver.isActiveLeader else {
            completion(.failure(.notLeader(leaderId: driver.node.leaderId?.rawValue ?? -1, epoch: driver.node.epoch)))
            return
        }
        let nextOffset = driver.nextProposalOffset
        let result = command(controller, &rng, nextOffset)
        guard !result.records.isEmpty else {
            completion(.success(result.response))
            return
        }
        let values = result.records.map { MetadataRecordFrame.encode($0) }
        let withOffsets = result.records.enumerated().map {
            (offset: nextOffset + Int64($0.offset), record: $0.element)
        }
        proposed += withOffsets
        let delta = controller.replay(withOffsets.map { ($0.record, $0.offset) }, epoch: driver.node.epoch)
        proposedImages.append(
            (lastOffset: nextOffset + Int64(result.records.count - 1), image: controller.image, delta: delta))
        let response = result.response
        let proposedAtNs = runtime.nowNanos
        driver.propose(values) { [runtime] outcome in
            switch outcome {
            case .success:
                QuorumMetrics.commitLatency.recordNanoseconds(Int64(runtime.nowNanos &- proposedAtNs))
                completion(.success(response))
            case .failure(let error): completion(.failure(error))
            }
        }
    }
}

/// The quorum's metrics through swift-metrics (a no-op backend in the simulator): Kafka's
/// raft-metrics and controller metrics, Prometheus-style names.
public enum QuorumMetrics {
    static let epoch = Gauge(label: "runnel_raft_epoch")
    static let highWatermark = Gauge(label: "runnel_raft_high_watermark")
    /// 1 on the active controller.
    static let isActive = Gauge(label: "runnel_controller_active")
    static let leaderChanges = Counter(label: "runnel_raft_leadership_changes_total")
    /// From a proposal to its commit (the high watermark passing it).
    static let commitLatency = Timer(label: "runnel_raft_commit_latency_seconds")
    /// The commit path's stages (see `CommitTimeline`): on the leader, from a proposal's append to
    /// the fsync covering it and to the first acknowledgement by another voter; on a follower,
    /// from fetched records' arrival to their fsync.
    static let appendToFsync = Timer(label: "runnel_raft_append_to_fsync_seconds")
    static let appendToFollowerAck = Timer(label: "runnel_raft_append_to_follower_ack_seconds")
    static let followerFetchToFsync = Timer(label: "runnel_raft_follower_fetch_to_fsync_seconds")
    /// Partitions with no leader in the committed image (Kafka's OfflinePartitionsCount).
    static let offlinePartitions = Gauge(label: "runnel_offline_partitions")
    /// How long a controller request waited for the quorum's event loop, and how long it ran there.
    static let controllerQueueTime = Timer(label: "runnel_controller_event_queue_time_seconds")
    static let controllerProcessingTime = Timer(label: "runnel_controller_event_processing_time_seconds")

    /// Makes every series above, so that a scrape shows each from the start rather than from its
    /// first event. Call it once the metrics backend is bootstrapped.
    public static func registerSeries() {
        _ = [epoch, highWatermark, isActive, offlinePartitions]
        _ = [commitLatency, controllerQueueTime, controllerProcessingTime]
        _ = [appendToFsync, appendToFollowerAck, followerFetchToFsync]
        _ = leaderChanges
    }
}
