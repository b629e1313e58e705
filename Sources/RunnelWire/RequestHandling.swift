import NIOCore

/// Facts about the connection a request came on.
public struct RequestContext: Sendable {
    public var connectionId: UInt64
    public var remoteAddress: SocketAddress?
    /// The listener name (PLAINTEXT, CONTROLLER, ...).
    public var listener: String
    public var eventLoop: any EventLoop
    public var allocator: ByteBufferAllocator
    /// Who sent the request, as the listener authenticated the connection: Kafka's principal type
    /// and name (`User`, `ANONYMOUS` on a PLAINTEXT listener or an SSL one without a client
    /// certificate; the SASL user or the certificate's mapped name otherwise).
    public var principalType: String
    public var principalName: String
    /// The request header's client id (client quotas are per user and client id).
    public var clientId: String?
    /// Stops reading from the connection for the given ms (a client over its quota, muted as
    /// soon as its request is measured so the requests it has in flight wait in the socket).
    public var muteConnection: (@Sendable (Int32) -> Void)?

    public init(
        connectionId: UInt64, remoteAddress: SocketAddress?, listener: String, eventLoop: any EventLoop,
        allocator: ByteBufferAllocator,
        principalType: String = "User", principalName: String = "ANONYMOUS", clientId: String? = nil
    ) {
        self.clientId = clientId
        self.connectionId = connectionId
        self.remoteAddress = remoteAddress
        self.listener = listener
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.principalType = principalType
        self.principalName = principalName
    }

    /// The client's address as ACLs name hosts (`127.0.0.1`), or `*`-free empty text when unknown.
    public var clientHost: String { remoteAddress?.ipAddress ?? "" }
}

/// A parsed request: its header and the undecoded body.
public struct IncomingRequest: Sendable {
    public var header: RequestHeader
    public var body: ByteBuffer
    /// Size of the whole frame, for metrics and limits.
    public var frameBytes: Int

    public init(header: RequestHeader, body: ByteBuffer, frameBytes: Int) {
        self.header = header
        self.body = body
        self.frameBytes = frameBytes
    }
}

/// A response body, encoded; the shell adds the size prefix and the response header. Parts may be
/// file regions (zero-copy fetch).
public struct OutgoingResponse: Sendable {
    public var parts: [IOData]
    /// Client quota throttling (KIP-124, KIP-219): how long the connection reads nothing more
    /// once this answer is written, in ms.
    public var throttleMs: Int32 = 0
    /// Whether the answer itself waits out `throttleMs` before it is written: request versions
    /// older than KIP-219's, whose clients do not hold back on their own.
    public var delayedByThrottle = false

    public init(parts: [IOData]) { self.parts = parts }

    /// Encodes a response message at `version`.
    public init<M: ResponseMessage>(_ message: M, version: Int16, allocator: ByteBufferAllocator) {
        var writer = WireWriter(allocator: allocator, capacity: 256)
        message.write(to: &writer, version: version)
        self.parts = writer.finish()
    }

    public var byteCount: Int { parts.reduce(0) { $0 + $1.readableBytes } }
}

/// What the node decided to do with a request.
public enum RequestOutcome: Sendable {
    /// Answer now.
    case respondNow(OutgoingResponse)
    /// Answer when the future completes (long-polling fetches, acks=all produces, controller writes).
    case respond(EventLoopFuture<OutgoingResponse>)
    /// Send nothing (Produce with acks=0).
    case noResponse
    /// Send nothing, and read nothing more from the connection for `throttleMs` (a Produce with
    /// acks=0 over its client quota).
    case noResponseThrottled(throttleMs: Int32)
    /// Close the connection: the request cannot be answered in Kafka's protocol.
    case close(reason: String)
}

/// The node's side of a connection. Called on the connection's event loop, in arrival order;
/// anything order-sensitive (appends) must happen before it returns.
public protocol RequestHandler: Sendable {
    func handle(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome
    /// Called once when a connection closes.
    func connectionClosed(_ connectionId: UInt64)
}

extension RequestHandler {
    public func connectionClosed(_ connectionId: UInt64) {}
}
