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

    public init(clusterId: String, config: RaftConfig, runtime: Runtime, disk: any Disk, directory: String,
                controller: QuorumController, seed: UInt64, cleanShutdown: Bool, snapshots: (any SnapshotStorage)? = nil) throws {
        self.clusterId = clusterId
        self.runtime = runtime
        self.controller = controller
        self.rng = SeededRandom(seed: seed)
        self.driver = try RaftDriver(config: config, runtime: runtime, disk: disk, directory: directory, listener: nil,
                                     seed: rng.next(), cleanShutdown: cleanShutdown, snapshots: snapshots)
        driver.listener = self
    }

    /// Loads the newest snapshot and starts the driver. The log after the snapshot is replayed as
    /// the quorum confirms it committed (the high watermark is not known before).
    public func start() throws {
        try driver.start()
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
        var delta = MetadataDelta(committedImage)
        for entry in entries {
            if let record = entry.record {
                delta.replay(record, offset: entry.offset, epoch: entry.epoch)
            } else {
                delta.advance(offset: entry.offset, epoch: entry.epoch)
            }
        }
        committedImage = delta.apply()
        if !driver.isActiveLeader {
            // Standby: the working state is the committed state.
            controller.reset(to: committedImage)
        }
        for publish in publishers { publish(delta, committedImage) }
        maybeBootstrap()
    }

    /// Called when a snapshot replaced the committed state (`fetched`: from the leader).
    public var onSnapshotLoaded: ((MetadataImage, Bool) -> Void)?

    public func snapshotLoaded(_ image: MetadataImage, fetched: Bool) {
        onSnapshotLoaded?(image, fetched)
        committedImage = image
        controller.reset(to: image)
        for publish in publishers { publish(.everything(image), image) }
    }

    public func imageForSnapshot() -> MetadataImage? { committedImage }

    public func leadershipChanged(role: RaftRole, epoch: Int32, leaderId: NodeID?) {
        // A new or former leader starts from what is committed; its own uncommitted proposals are gone.
        controller.reset(to: committedImage)
        onLeadershipChange?(role, epoch, leaderId)
        maybeBootstrap()
    }

    /// A new cluster records its metadata version first, as Kafka's format does.
    private func maybeBootstrap() {
        guard !bootstrapped, driver.isActiveLeader else { return }
        bootstrapped = true
        if committedImage.features["metadata.version"] == nil {
            run({ _, _, _ in
                ControllerResult(records: [.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21))], response: 0)
            }, completion: { (_: Result<Int, ProposalError>) in })
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
        let nextOffset = driver.node.log.endOffset
        let result = command(controller, &rng, nextOffset)
        guard !result.records.isEmpty else {
            completion(.success(result.response))
            return
        }
        let values = result.records.map { MetadataRecordFrame.encode($0) }
        controller.replay(result.records.enumerated().map { ($0.element, nextOffset + Int64($0.offset)) }, epoch: driver.node.epoch)
        let response = result.response
        driver.propose(values) { outcome in
            switch outcome {
            case .success: completion(.success(response))
            case .failure(let error): completion(.failure(error))
            }
        }
    }
}

