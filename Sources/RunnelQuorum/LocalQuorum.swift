import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RunnelController
import RunnelCore
import RunnelLog
import RunnelMetadata
import RunnelWire

/// The metadata quorum of a single combined node (one voter): the node is always the active
/// controller, and a record is committed once it is fsynced. Commands run one at a time on a
/// dedicated event loop; fsyncs run on a thread pool and cover every append waiting for them
/// (group commit), so the loop never blocks on the disk.
public final class LocalQuorum: @unchecked Sendable {
    public typealias Publisher = @Sendable (MetadataDelta, MetadataImage) -> Void

    public let clusterId: String
    public let nodeId: Int32
    public let eventLoop: any EventLoop
    private let pool: NIOThreadPool
    private let log: MetadataLog
    private let clock: any Clock
    private let logger: Logger
    /// The epoch this node writes with.
    public let epoch: Int32 = 1

    // Confined to eventLoop.
    private var controller: QuorumController
    private var committedImage: MetadataImage = .empty
    private var publishers: [Publisher] = []
    private var syncedOffset: Int64 = -1
    private var syncInFlight = false
    private var waiting: [(offset: Int64, action: () -> Void)] = []
    private var rng: SeededRandom

    public init(clusterId: String, nodeId: Int32, log: MetadataLog, controller: QuorumController, eventLoop: any EventLoop,
                pool: NIOThreadPool, clock: any Clock, logger: Logger, seed: UInt64) {
        self.clusterId = clusterId
        self.nodeId = nodeId
        self.log = log
        self.controller = controller
        self.eventLoop = eventLoop
        self.pool = pool
        self.clock = clock
        self.logger = logger
        self.rng = SeededRandom(seed: seed)
    }

    /// Replays the whole metadata log into the controller, bootstraps an empty log, and returns the image.
    public func start() -> EventLoopFuture<MetadataImage> {
        eventLoop.submit { [self] in
            var delta = MetadataDelta(.empty)
            let entries = try log.read(from: 0)
            for entry in entries {
                if let record = entry.record {
                    delta.replay(record, offset: entry.offset, epoch: entry.epoch)
                } else {
                    delta.advance(offset: entry.offset, epoch: entry.epoch)
                }
            }
            committedImage = delta.apply()
            controller.reset(to: committedImage)
            syncedOffset = log.endOffset - 1
            logger.info("metadata log loaded", metadata: ["records": "\(entries.count)", "end": "\(log.endOffset)"])
            return committedImage
        }.flatMap { [self] image in
            if image.features["metadata.version"] == nil {
                // A new cluster: record the metadata version first, as Kafka's format does.
                return write([.featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: 21))]).map { _ in self.committedImage }
            }
            return eventLoop.makeSucceededFuture(image)
        }
    }

    /// Registers a publisher for committed changes; it is called on the quorum's loop.
    public func subscribe(_ publisher: @escaping Publisher) {
        eventLoop.execute { self.publishers.append(publisher) }
    }

    /// The committed image.
    public func image() -> EventLoopFuture<MetadataImage> {
        eventLoop.submit { self.committedImage }
    }

    /// Runs a controller command: its records are appended, fsynced and published before the
    /// response is returned.
    public func run<Response: Sendable>(
        _ command: @escaping @Sendable (QuorumController, inout SeededRandom, Int64) -> ControllerResult<Response>
    ) -> EventLoopFuture<Response> {
        eventLoop.flatSubmit { [self] in
            let result = command(controller, &rng, log.endOffset)
            if result.records.isEmpty { return eventLoop.makeSucceededFuture(result.response) }
            return write(result.records).map { _ in result.response }
        }
    }

    /// Appends records as one batch, replays them into the controller at once (this node is
    /// the only writer), and completes once they are durable and published.
    private func write(_ records: [MetadataRecord]) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        let promise = eventLoop.makePromise(of: Void.self)
        do {
            let base = try log.append(records, epoch: epoch, nowMs: clock.wallMs())
            let withOffsets = records.enumerated().map { (record: $0.element, offset: base + Int64($0.offset)) }
            controller.replay(withOffsets, epoch: epoch)
            let last = base + Int64(records.count) - 1
            waiting.append((last, { [self] in
                var delta = MetadataDelta(committedImage)
                for (record, offset) in withOffsets { delta.replay(record, offset: offset, epoch: epoch) }
                committedImage = delta.apply()
                for publish in publishers { publish(delta, committedImage) }
                promise.succeed(())
            }))
            startSyncIfNeeded()
        } catch {
            logger.error("metadata log append failed: \(error)")
            promise.fail(error)
        }
        return promise.futureResult
    }

    private func startSyncIfNeeded() {
        guard !syncInFlight, let target = waiting.last?.offset, target > syncedOffset else { return }
        syncInFlight = true
        let log = self.log
        let now = clock.wallMs()
        pool.runIfActive(eventLoop: eventLoop) { try log.sync(nowMs: now) }.whenComplete { [self] result in
            syncInFlight = false
            switch result {
            case .success:
                syncedOffset = max(syncedOffset, target)
                while let first = waiting.first, first.offset <= syncedOffset {
                    waiting.removeFirst()
                    first.action()
                }
                startSyncIfNeeded()
            case .failure(let error):
                // A metadata log that cannot be made durable must not acknowledge anything.
                logger.critical("metadata log fsync failed: \(error); stopping")
                fatalError("metadata log fsync failed: \(error)")
            }
        }
    }
}
