import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelWire

/// A broker's way to the active controller over the network: requests go to the controller the
/// broker believes is active (the leader its metadata fetches name); NOT_CONTROLLER or a dead
/// connection sends them on to the next voter, with a short backoff, until a deadline.
public final class RemoteControllerChannel: ControllerChannel, @unchecked Sendable {
    private let peers: [(id: Int32, client: any PeerConnection)]
    private let eventLoop: any EventLoop
    private let logger: Logger
    /// The active controller as the broker's metadata fetches report it (-1: unknown).
    let leaderHint: @Sendable () -> Int32
    /// How long a request may look for the active controller.
    public var retryDeadlineMs: Int64 = 30_000
    /// How long one attempt may go unanswered before its connection is dropped and the request
    /// goes to the next voter: across a network partition, or to a paused controller, a request
    /// would otherwise wait on its connection for as long as TCP keeps it. The broker's own
    /// requests (registration, heartbeats, AlterPartition, producer ids) use
    /// `controller.quorum.request.timeout.ms`, so a heartbeat finds a new active controller well
    /// within the session timeout; admin requests forwarded for clients use
    /// `controller.socket.timeout.ms`.
    public var requestTimeoutMs: Int64 = 30_000
    public var brokerRequestTimeoutMs: Int64 = 2_000
    public var backoffMs: Int64 = 50
    private let stopped = NIOLockedValueBox(false)

    public init(
        voters: [VoterSpec], brokerId: Int32, connector: any PeerConnector, eventLoop: any EventLoop, logger: Logger,
        leaderHint: @escaping @Sendable () -> Int32
    ) {
        self.peers = voters.map {
            ($0.id, connector.connect(host: $0.host, port: $0.port, clientId: "broker-\(brokerId)", eventLoop: nil))
        }
        self.eventLoop = eventLoop
        self.logger = logger
        self.leaderHint = leaderHint
    }

    public func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        let promise = eventLoop.makePromise(of: R.Response.self)
        let deadline = eventLoop.now + .milliseconds(retryDeadlineMs)
        attempt(request, version: version, index: nil, deadline: deadline, promise: promise)
        return promise.futureResult
    }

    private func attempt<R: RequestMessage>(
        _ request: R, version: Int16, index: Int?, deadline: NIODeadline, promise: EventLoopPromise<R.Response>
    ) {
        let hint = leaderHint()
        let i = index ?? (peers.firstIndex { $0.id == hint } ?? 0)
        let peer = peers[i % peers.count]
        let timeoutMs = Self.isBrokerRequest(request) ? brokerRequestTimeoutMs : requestTimeoutMs
        let timeout = eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { peer.client.close() }
        peer.client.send(request, version: version).whenComplete { [self] result in
            timeout.cancel()
            switch result {
            case .success(let response) where !Self.isNotController(response):
                promise.succeed(response)
            case .success(let response):
                retry(request, version: version, next: i + 1, deadline: deadline, promise: promise, last: response)
            case .failure(let error) where error is ConnectionError && !Self.isSafeToRepeat(request):
                // The request went out and its connection broke (or timed out) before an answer:
                // the controller may have applied it. A client's change is not sent again, or it
                // could apply twice (a create retried after a delete that followed it recreates
                // the topic); the client hears REQUEST_TIMED_OUT, as from Kafka's forwarding.
                promise.fail(ForwardOutcomeUnknown(reason: "\(error)"))
            case .failure:
                retry(request, version: version, next: i + 1, deadline: deadline, promise: promise, last: nil)
            }
        }
    }

    /// Stops: requests in flight and later ones fail instead of retrying, and no peer connects
    /// again. For a node going down, before its event loops do.
    public func shutdown() {
        stopped.withLockedValue { $0 = true }
        for peer in peers { peer.client.shutdown() }
    }

    private func retry<R: RequestMessage>(
        _ request: R, version: Int16, next: Int, deadline: NIODeadline, promise: EventLoopPromise<R.Response>,
        last: R.Response?
    ) {
        if stopped.withLockedValue({ $0 }) {
            promise.fail(ConnectionError("the node is shutting down"))
            return
        }
        if eventLoop.now > deadline {
            if let last {
                promise.succeed(last)
            } else {
                promise.fail(ConnectionError("no active controller answered within \(retryDeadlineMs) ms"))
            }
            return
        }
        // After a full round of voters, wait a little (an election may be under way).
        let delay: Int64 = next % peers.count == 0 ? backoffMs : 0
        eventLoop.scheduleTask(in: .milliseconds(delay)) { [self] in
            attempt(request, version: version, index: next, deadline: deadline, promise: promise)
        }
    }

    /// The requests a broker sends on its own behalf, which must not wait long on one controller.
    static func isBrokerRequest(_ request: any RequestMessage) -> Bool {
        request is BrokerHeartbeatRequest || request is BrokerRegistrationRequest || request is AlterPartitionRequest
            || request is AllocateProducerIdsRequest || request is UnregisterBrokerRequest
            || request is ControllerRegistrationRequest
    }

    /// Requests that may go to the controller again after a first attempt may have reached it:
    /// the broker's own (fenced by epochs, or idempotent) and the read-only ones. A client's
    /// changes are not among them.
    static func isSafeToRepeat(_ request: any RequestMessage) -> Bool {
        isBrokerRequest(request) || request is DescribeQuorumRequest || request is ListPartitionReassignmentsRequest
    }

    /// Whether a controller answered "not me".
    static func isNotController(_ response: any ResponseMessage) -> Bool {
        let code = ErrorCode.notController.rawValue
        switch response {
        case let r as CreateTopicsResponse: return !r.topics.isEmpty && r.topics.allSatisfy { $0.errorCode == code }
        case let r as DeleteTopicsResponse:
            return !r.responses.isEmpty && r.responses.allSatisfy { $0.errorCode == code }
        case let r as CreatePartitionsResponse:
            return !r.results.isEmpty && r.results.allSatisfy { $0.errorCode == code }
        case let r as IncrementalAlterConfigsResponse:
            return !r.responses.isEmpty && r.responses.allSatisfy { $0.errorCode == code }
        case let r as AlterConfigsResponse:
            return !r.responses.isEmpty && r.responses.allSatisfy { $0.errorCode == code }
        case let r as AllocateProducerIdsResponse: return r.errorCode == code
        case let r as BrokerRegistrationResponse: return r.errorCode == code
        case let r as BrokerHeartbeatResponse: return r.errorCode == code
        case let r as UnregisterBrokerResponse: return r.errorCode == code
        case let r as AlterPartitionResponse: return r.errorCode == code
        case let r as ElectLeadersResponse: return r.errorCode == code
        case let r as UpdateFeaturesResponse: return r.errorCode == code
        case let r as ControllerRegistrationResponse: return r.errorCode == code
        case let r as AlterPartitionReassignmentsResponse: return r.errorCode == code
        case let r as ListPartitionReassignmentsResponse: return r.errorCode == code
        case let r as DescribeQuorumResponse:
            // A voter that does not lead answers its partition NOT_LEADER_OR_FOLLOWER.
            return r.topics.first?.partitions.first?.errorCode == ErrorCode.notLeaderOrFollower.rawValue
        default: return false
        }
    }
}

/// A forwarded client request whose attempt broke after it was sent: whether the controller
/// applied it is not known, so it is not sent again (see `RemoteControllerChannel.send`).
public struct ForwardOutcomeUnknown: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { "the controller may or may not have applied the request: \(reason)" }
}
