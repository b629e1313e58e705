import Logging
import NIOCore
import RunnelCore
import RunnelRaft
import RunnelWire

/// The Raft runtime over the Kafka protocol: one event loop for the core and driver, a way to run
/// fsyncs off it, a clock, and Kafka connections to the other voters. Outbound Raft requests
/// become Kafka requests; the core's answers complete the inbound requests they answer (see
/// `QuorumEndpoint`). A process runs it over NIO and TCP; the simulator over its virtual loop and
/// network, so both run this code.
public final class KafkaRaftRuntime: RaftRuntime, @unchecked Sendable {
    public let eventLoop: any EventLoop
    let blocking: BlockingRunner
    /// Where long CPU-bound work runs (a snapshot write), at a low priority; else `blocking`.
    let background: BlockingRunner?
    let clock: any Clock
    public let clusterId: String
    let logger: Logger
    private var peers: [NodeID: any PeerConnection] = [:]
    /// Hands a message to the driver (set once the driver exists). Runs on the event loop.
    public var deliver: ((RaftMessage<MetadataPayload>, NodeID) -> Void)?
    /// Reports a peer that could not be reached (runs on the event loop).
    public var unreachable: ((NodeID) -> Void)?
    /// Answers the core has not given yet, per peer and request kind, oldest first.
    private var inbound: [NodeID: [String: [EventLoopPromise<RaftMessage<MetadataPayload>>]]] = [:]
    /// Last known state for answering superseded requests.
    public var currentEpoch: () -> (epoch: Int32, leaderId: Int32, highWatermark: Int64) = { (0, -1, -1) }
    let fetchBytesMax: Int32 = 8 * 1024 * 1024

    public init(
        eventLoop: any EventLoop, blocking: @escaping BlockingRunner, background: BlockingRunner? = nil,
        clock: any Clock, clusterId: String, voters: [VoterSpec],
        selfId: Int32, connector: any PeerConnector, logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.blocking = blocking
        self.background = background
        self.clock = clock
        self.clusterId = clusterId
        self.logger = logger
        // The connections to the other voters live on this loop: a Raft message goes out and its
        // answer comes in without a hop between threads (two wake-ups per fetch round).
        for voter in voters where voter.id != selfId {
            peers[NodeID(voter.id)] = connector.connect(
                host: voter.host, port: voter.port, clientId: "raft-\(selfId)", eventLoop: eventLoop)
        }
    }

    public var nowMs: Int64 { clock.monotonicMs() }
    public var nowNanos: UInt64 { clock.monotonicNanos() }
    public var wallMs: Int64 { clock.wallMs() }

    public func schedule(afterMs delayMs: Int64, _ work: @escaping () -> Void) {
        let box = UnsafeTransfer(work)
        eventLoop.scheduleTask(in: .milliseconds(delayMs)) { box.value() }
    }

    public func execute(_ work: @escaping () -> Void) {
        let box = UnsafeTransfer(work)
        eventLoop.execute { box.value() }
    }

    public func runBlocking(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void) {
        run(on: blocking, work, then: then)
    }

    public func runInBackground(_ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void) {
        run(on: background ?? blocking, work, then: then)
    }

    private func run(
        on runner: BlockingRunner, _ work: @escaping () throws -> Void, then: @escaping ((any Error)?) -> Void
    ) {
        let workBox = UnsafeTransfer(work)
        let thenBox = UnsafeTransfer(then)
        runner(eventLoop) { try workBox.value() }.whenComplete { result in
            switch result {
            case .success: thenBox.value(nil)
            case .failure(let error): thenBox.value(error)
            }
        }
    }

    public func send(_ message: RaftMessage<MetadataPayload>, to: NodeID) {
        switch message {
        case .vote(let r):
            request(to, RaftWire.request(r, clusterId: clusterId, to: to), version: RaftWire.voteVersion) { response in
                RaftWire.core(response, preVote: r.preVote).map { .voteResponse($0) }
            }
        case .beginQuorumEpoch(let r):
            request(to, RaftWire.request(r, clusterId: clusterId, to: to), version: RaftWire.beginEpochVersion) {
                response in
                RaftWire.core(response).map { .beginQuorumEpochResponse($0) }
            }
        case .endQuorumEpoch(let r):
            request(to, RaftWire.request(r, clusterId: clusterId), version: RaftWire.endEpochVersion) { response in
                RaftWire.core(response).map { .endQuorumEpochResponse($0) }
            }
        case .fetch(let r):
            let fetchOffset = r.fetchOffset, lastFetchedEpoch = r.lastFetchedEpoch
            request(
                to, RaftWire.request(r, clusterId: clusterId, maxBytes: fetchBytesMax), version: RaftWire.fetchVersion
            ) { response in
                // The connection pairs this answer with its request: say which fetch it answers.
                RaftWire.core(response).map {
                    var answer = $0
                    answer.fetchOffset = fetchOffset
                    answer.fetchLastEpoch = lastFetchedEpoch
                    return .fetchResponse(answer)
                }
            }
        case .voteResponse, .beginQuorumEpochResponse, .endQuorumEpochResponse, .fetchResponse:
            answer(message, to: to)
        }
    }

    private func request<R: RequestMessage>(
        _ to: NodeID, _ request: R, version: Int16,
        convert: @escaping @Sendable (R.Response) -> RaftMessage<MetadataPayload>?
    ) {
        guard let peer = peers[to] else { return }
        peer.send(request, version: version).hop(to: eventLoop).whenComplete { [self] result in
            switch result {
            case .success(let response):
                if let message = convert(response) { deliver?(message, to) }
            case .failure:
                unreachable?(to)
            }
        }
    }

    public func fetchSnapshotChunk(
        from node: NodeID, id: SnapshotId, position: Int64,
        completion: @escaping (Result<SnapshotChunk, any Error>) -> Void
    ) {
        guard let peer = peers[node] else {
            completion(.failure(ConnectionError("no connection to node \(node)")))
            return
        }
        var request = FetchSnapshotRequest()
        request.clusterId = clusterId
        request.maxBytes = 1_048_576
        request.topics = [
            .init(
                name: RaftWire.topicName,
                partitions: [
                    .init(
                        partition: 0, currentLeaderEpoch: currentEpoch().epoch,
                        snapshotId: .init(endOffset: id.endOffset, epoch: id.epoch), position: position)
                ])
        ]
        let box = UnsafeTransfer(completion)
        peer.send(request, version: 1).hop(to: eventLoop).whenComplete { result in
            switch result {
            case .failure(let error):
                box.value(.failure(error))
            case .success(let response):
                guard response.errorCode == 0, let p = response.topics.first?.partitions.first, p.errorCode == 0 else {
                    box.value(
                        .failure(
                            ConnectionError(
                                "FetchSnapshot refused: \(ErrorCode(response.errorCode != 0 ? response.errorCode : response.topics.first?.partitions.first?.errorCode ?? -1))"
                            )))
                    return
                }
                box.value(
                    .success(
                        SnapshotChunk(
                            id: id, totalBytes: p.size, position: p.position,
                            bytes: p.unalignedRecords?.bytes ?? ByteBuffer())))
            }
        }
    }

    // MARK: inbound

    /// Registers an inbound request from `from` and hands it to the driver; the future completes
    /// with the core's answer.
    public func receive(
        _ message: RaftMessage<MetadataPayload>, from: NodeID
    ) -> EventLoopFuture<RaftMessage<MetadataPayload>> {
        eventLoop.flatSubmit { [self] in
            let promise = eventLoop.makePromise(of: RaftMessage<MetadataPayload>.self)
            let kind = Self.answerKind(of: message)
            var waiting = inbound[from, default: [:]][kind, default: []]
            if kind == "FetchResponse", !waiting.isEmpty {
                // A newer fetch supersedes an older parked one: release the old with an empty answer.
                let state = currentEpoch()
                for old in waiting {
                    old.succeed(
                        .fetchResponse(
                            FetchResponse(
                                error: .none, epoch: state.epoch, leaderId: state.leaderId,
                                highWatermark: state.highWatermark)))
                }
                waiting = []
            }
            waiting.append(promise)
            inbound[from, default: [:]][kind] = waiting
            deliver?(message, from)
            return promise.futureResult
        }
    }

    private func answer(_ message: RaftMessage<MetadataPayload>, to: NodeID) {
        let kind = message.kind == "PreVoteResponse" ? "VoteResponse" : message.kind
        guard var waiting = inbound[to]?[kind], !waiting.isEmpty else { return }
        let promise = waiting.removeFirst()
        inbound[to]?[kind] = waiting
        promise.succeed(message)
    }

    static func answerKind(of request: RaftMessage<MetadataPayload>) -> String {
        switch request {
        case .vote: "VoteResponse"
        case .beginQuorumEpoch: "BeginQuorumEpochResponse"
        case .endQuorumEpoch: "EndQuorumEpochResponse"
        case .fetch: "FetchResponse"
        default: "none"
        }
    }

    public func closePeers() {
        for peer in peers.values { peer.shutdown() }
    }
}

/// Carries a non-Sendable value to the event loop that owns it.
public struct UnsafeTransfer<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
