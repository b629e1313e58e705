import NIOCore

/// A connection from one node to another node's Kafka listener, as the node's drivers use it:
/// the Raft runtime to the other controllers, a broker to the active controller, replica
/// fetchers to partition leaders. In a process it is a TCP connection (`PeerClient`); in the
/// simulator, a connection over the simulated network to the peer's real request handler.
/// Requests on one connection are answered in order, as Kafka's are.
public protocol PeerConnection: AnyObject, Sendable {
    var host: String { get }
    var port: Int { get }
    /// Sends `request` at `version` and decodes the answer; fails when the peer cannot be
    /// reached or the connection breaks.
    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response>
    /// Drops the connection; the next request connects again.
    func close()
    /// Closes the connection and makes no new one: later requests fail at once.
    func shutdown()
}

/// Makes connections to other nodes (the process's over TCP, the simulator's over its network).
public protocol PeerConnector: Sendable {
    /// A connection to `host:port` identified as `clientId`, whose answers complete on
    /// `eventLoop` (or on a loop of the connector's choosing when nil).
    func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection
}

/// Why a request to a peer got no answer.
public struct ConnectionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A static voter of the controller quorum: `id@host:port` in `controller.quorum.voters`.
public struct VoterSpec: Sendable, Equatable {
    public var id: Int32
    public var host: String
    public var port: Int

    public init(id: Int32, host: String, port: Int) {
        self.id = id
        self.host = host
        self.port = port
    }
}

/// Runs work that may block (an fsync) off the event loop; the future completes on `eventLoop`.
/// A process runs it on a thread pool; the simulator runs it as a task of its own.
public typealias BlockingRunner =
    @Sendable (_ eventLoop: any EventLoop, _ work: @escaping @Sendable () throws -> Void) -> EventLoopFuture<Void>
