import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RunnelWire

/// One outbound Kafka connection: sends requests, matches responses by correlation id, and
/// fails everything in flight when the connection drops.
final class KafkaResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    struct Waiting {
        var headerVersion: Int16
        var promise: EventLoopPromise<ByteBuffer>
    }

    private var waiting: [Int32: Waiting] = [:]
    private var closed = false

    func register(_ correlationId: Int32, headerVersion: Int16, promise: EventLoopPromise<ByteBuffer>) {
        if closed {
            promise.fail(ConnectionError("connection closed"))
            return
        }
        waiting[correlationId] = Waiting(headerVersion: headerVersion, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var reader = WireReader(unwrapInboundIn(data))
        guard let correlationId = try? reader.readInt32(), let entry = waiting.removeValue(forKey: correlationId) else {
            context.close(promise: nil)
            return
        }
        if entry.headerVersion >= 1 {
            guard (try? reader.readTaggedFieldList()) != nil else {
                entry.promise.fail(ConnectionError("malformed response header"))
                context.close(promise: nil)
                return
            }
        }
        entry.promise.succeed(reader.buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        for (_, entry) in waiting { entry.promise.fail(ConnectionError("connection closed")) }
        waiting = [:]
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A connection to one peer that reconnects on demand. Requests to a peer that cannot be reached
/// fail fast; callers (the Raft core, the controller channel) retry on their own timers.
public final class PeerClient: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let clientId: String
    private let group: any EventLoopGroup
    private let lock = NIOLock()
    private var channel: (any Channel)?
    private var handler: KafkaResponseHandler?
    private var connecting: EventLoopFuture<(any Channel, KafkaResponseHandler)>?
    private var nextCorrelation: Int32 = 0
    /// Set by `shutdown`: no new connection is made (the event loops may be going away).
    private var shutDown = false
    private let frameBytesMax: Int
    public var connectTimeoutMs: Int64 = 1000

    public init(host: String, port: Int, clientId: String, group: any EventLoopGroup, frameBytesMax: Int = 104_857_600) {
        self.host = host
        self.port = port
        self.clientId = clientId
        self.group = group
        self.frameBytesMax = frameBytesMax
    }

    private func connection() -> EventLoopFuture<(any Channel, KafkaResponseHandler)> {
        lock.withLock {
            if let channel, channel.isActive, let handler {
                return channel.eventLoop.makeSucceededFuture((channel, handler))
            }
            if let connecting { return connecting }
            if shutDown {
                // No connect on event loops that may be shutting down: NIO cannot complete it.
                return group.next().makeFailedFuture(ConnectionError("the connection to \(host):\(port) is shut down"))
            }
            let handler = KafkaResponseHandler()
            let frameBytesMax = self.frameBytesMax
            let future = ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(connectTimeoutMs))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                // Fetch answers run to megabytes (a follower's up to replica.fetch.response.max.bytes):
                // read them in large pieces, as the server reads produce requests.
                .channelOption(.maxMessagesPerRead, value: 16)
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: host, port: port)
                .map { ($0, handler) }
            connecting = future
            future.whenComplete { [self] result in
                lock.withLock {
                    connecting = nil
                    if case .success(let (channel, handler)) = result {
                        self.channel = channel
                        self.handler = handler
                    }
                }
            }
            return future
        }
    }

    /// Sends `request` at `version` and decodes the answer.
    public func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        connection().flatMap { [self] channel, handler in
            let correlationId: Int32 = lock.withLock {
                nextCorrelation = nextCorrelation == Int32.max ? 0 : nextCorrelation + 1
                return nextCorrelation
            }
            var writer = WireWriter(allocator: channel.allocator, capacity: 256)
            writer.writeInt32(0)  // size, set below
            RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId).write(to: &writer)
            request.write(to: &writer, version: version)
            var bytes = writer.bytes
            bytes.setInteger(Int32(bytes.readableBytes - 4), at: bytes.readerIndex)
            let frame = bytes
            let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
            let headerVersion = ResponseHeader.version(apiKey: R.apiKey, apiVersion: version)
            return channel.eventLoop.submit {
                handler.register(correlationId, headerVersion: headerVersion, promise: promise)
            }.flatMap {
                channel.writeAndFlush(frame).flatMap { promise.futureResult }
            }
        }.flatMapThrowing { body in
            var reader = WireReader(body)
            return try R.Response(from: &reader, version: version)
        }
    }

    /// Sends a request the broker does not answer (Produce with acks=0); the future completes
    /// once the frame is written.
    public func sendWithoutResponse<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<Void> {
        connection().flatMap { [self] channel, _ in
            let correlationId: Int32 = lock.withLock {
                nextCorrelation = nextCorrelation == Int32.max ? 0 : nextCorrelation + 1
                return nextCorrelation
            }
            var writer = WireWriter(allocator: channel.allocator, capacity: 256)
            writer.writeInt32(0)  // size, set below
            RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId).write(to: &writer)
            request.write(to: &writer, version: version)
            var frame = writer.bytes
            frame.setInteger(Int32(frame.readableBytes - 4), at: frame.readerIndex)
            return channel.writeAndFlush(frame)
        }
    }

    /// Closes the connection and makes no new one: later requests fail at once. For a node
    /// going down, before its event loops do.
    public func shutdown() {
        lock.withLock { shutDown = true }
        close()
    }

    public func close() {
        let channel = lock.withLock { () -> (any Channel)? in
            let c = self.channel
            self.channel = nil
            return c
        }
        channel?.close(promise: nil)
    }
}

extension PeerClient: PeerConnection {}

/// Connections over TCP with `PeerClient`.
public struct NIOPeerConnector: PeerConnector {
    public let group: any EventLoopGroup

    public init(group: any EventLoopGroup) { self.group = group }

    public func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection {
        PeerClient(host: host, port: port, clientId: clientId, group: eventLoop ?? group)
    }
}
