import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RunnelSecurity
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
    private var context: ChannelHandlerContext?
    private let flusher = FlushOncePerTurn()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes a request frame and waits for its answer. On the channel's event loop. The flush
    /// is queued behind the loop's current tasks, so the requests sent in one turn leave in one
    /// write: the forwards of many client requests, a follower's fetches to one leader.
    func send(_ frame: ByteBuffer, correlationId: Int32, headerVersion: Int16, promise: EventLoopPromise<ByteBuffer>) {
        guard !closed, let context else {
            promise.fail(ConnectionError("connection closed"))
            return
        }
        waiting[correlationId] = Waiting(headerVersion: headerVersion, promise: promise)
        // A write fails only on a closing channel, whose channelInactive fails what waits too.
        context.write(NIOAny(frame)).whenFailure { promise.fail($0) }
        flusher.schedule(context)
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
    /// TLS and SASL of the connection (the listener's protocol on the other side).
    public let security: ClientSecurity
    /// When set, a request unanswered this long fails and its connection is closed, so that the
    /// next request connects afresh, as Kafka's NetworkClient disconnects on a request timeout. A
    /// connection whose packets a network fault dropped otherwise recovers only at TCP's next
    /// retransmission, which backs off to seconds after the fault has healed.
    public let requestTimeoutMs: Int64?

    public init(
        host: String, port: Int, clientId: String, group: any EventLoopGroup, frameBytesMax: Int = 104_857_600,
        security: ClientSecurity = .plaintext, requestTimeoutMs: Int64? = nil
    ) {
        self.host = host
        self.port = port
        self.clientId = clientId
        self.group = group
        self.frameBytesMax = frameBytesMax
        self.security = security
        self.requestTimeoutMs = requestTimeoutMs
    }

    /// The connection when it is open. Under `lock`.
    private var openLocked: (any Channel, KafkaResponseHandler)? {
        guard let channel, channel.isActive, let handler else { return nil }
        return (channel, handler)
    }

    private func connection() -> EventLoopFuture<(any Channel, KafkaResponseHandler)> {
        lock.withLock {
            if let (channel, handler) = openLocked {
                return channel.eventLoop.makeSucceededFuture((channel, handler))
            }
            if let connecting { return connecting }
            if shutDown {
                // No connect on event loops that may be shutting down: NIO cannot complete it.
                return group.next().makeFailedFuture(ConnectionError("the connection to \(host):\(port) is shut down"))
            }
            let handler = KafkaResponseHandler()
            let frameBytesMax = self.frameBytesMax
            let tls = security.tls
            // SNI takes a name, not an address; NIOSSL checks an address against the certificate's IP names.
            let serverName = Self.isAddress(host) ? nil : host
            let future = ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(connectTimeoutMs))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                // Fetch answers run to megabytes (a follower's up to replica.fetch.response.max.bytes):
                // read them in large pieces, as the server reads produce requests.
                .channelOption(.maxMessagesPerRead, value: 16)
                .channelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024)
                )
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addKafkaFraming(
                            frameBytesMax: frameBytesMax, tls: tls != nil)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: host, port: port)
                .flatMap { [self] channel -> EventLoopFuture<(any Channel, KafkaResponseHandler)> in
                    guard let credentials = security.sasl else {
                        return channel.eventLoop.makeSucceededFuture((channel, handler))
                    }
                    return authenticate(channel, handler, credentials).map { (channel, handler) }
                        .flatMapErrorThrowing { error in
                            channel.close(promise: nil)
                            throw error
                        }
                }
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
        if let (channel, handler) = lock.withLock({ openLocked }) {
            return exchange(request, version: version, channel: channel, handler: handler)
        }
        return connection().flatMap { [self] channel, handler in
            exchange(request, version: version, channel: channel, handler: handler)
        }
    }

    /// Sends `request` on an open connection and decodes the answer.
    private func exchange<R: RequestMessage>(
        _ request: R, version: Int16, channel: any Channel, handler: KafkaResponseHandler
    ) -> EventLoopFuture<R.Response> {
        let correlationId: Int32 = lock.withLock {
            nextCorrelation = nextCorrelation == Int32.max ? 0 : nextCorrelation + 1
            return nextCorrelation
        }
        var writer = WireWriter(allocator: channel.allocator, capacity: 256)
        writer.writeInt32(0)  // size, set below
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId).write(
            to: &writer)
        request.write(to: &writer, version: version)
        var bytes = writer.bytes
        bytes.setInteger(Int32(bytes.readableBytes - 4), at: bytes.readerIndex)
        let frame = bytes
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let headerVersion = ResponseHeader.version(apiKey: R.apiKey, apiVersion: version)
        let timeoutMs = requestTimeoutMs
        // Everything below runs on the channel's loop: one hop there from another thread, none
        // from its own.
        let start: @Sendable () -> Void = { [self] in
            if let timeoutMs {
                let timeout = channel.eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) { [self] in
                    // Forget the connection before failing the request, so a retry connects afresh.
                    lock.withLock {
                        if self.channel === channel {
                            self.channel = nil
                            self.handler = nil
                        }
                    }
                    promise.fail(ConnectionError("no answer from \(host):\(port) within \(timeoutMs) ms"))
                    channel.close(promise: nil)
                }
                promise.futureResult.whenComplete { _ in timeout.cancel() }
            }
            handler.send(frame, correlationId: correlationId, headerVersion: headerVersion, promise: promise)
        }
        if channel.eventLoop.inEventLoop {
            start()
        } else {
            channel.eventLoop.execute(start)
        }
        return promise.futureResult.flatMapThrowing { body in
            var reader = WireReader(body)
            return try R.Response(from: &reader, version: version)
        }
    }

    // MARK: SASL

    /// Logs in on a new connection (SaslHandshake v1, then SaslAuthenticate until the mechanism
    /// completes) and, when the server gives the session a lifetime (KIP-368), logs in again on
    /// the same connection before it ends.
    private func authenticate(
        _ channel: any Channel, _ handler: KafkaResponseHandler, _ credentials: SaslCredentials
    ) -> EventLoopFuture<Void> {
        guard let client = credentials.makeClient() else {
            return channel.eventLoop.makeFailedFuture(
                AuthenticationError("SASL mechanism \(credentials.mechanism) is not supported by this client"))
        }
        let box = SaslClientBox(client)
        let mechanism = credentials.mechanism
        return exchange(SaslHandshakeRequest(mechanism: mechanism), version: 1, channel: channel, handler: handler)
            .flatMap { [self] response -> EventLoopFuture<Int64> in
                guard response.errorCode == 0 else {
                    return channel.eventLoop.makeFailedFuture(
                        AuthenticationError(
                            "\(host):\(port) refused SASL mechanism \(mechanism) (\(ErrorCode(response.errorCode).name)); it offers \(response.mechanisms.joined(separator: ", "))"
                        ))
                }
                return saslStep(box.client.initialResponse, box: box, channel: channel, handler: handler)
            }.map { [self] (lifetimeMs: Int64) -> Void in
                guard lifetimeMs > 0 else { return }
                // Kafka's clients log in again between 85% and 95% of the session's lifetime.
                let delayMs = lifetimeMs * Int64.random(in: 85...95) / 100
                channel.eventLoop.scheduleTask(in: .milliseconds(delayMs)) { [weak self] in
                    guard let self, channel.isActive else { return }
                    self.authenticate(channel, handler, credentials).whenFailure { _ in channel.close(promise: nil) }
                }
            }
    }

    /// Sends one SASL token and steps the mechanism with the answer; the future gives the
    /// session lifetime once the exchange completed.
    private func saslStep(
        _ token: [UInt8], box: SaslClientBox, channel: any Channel, handler: KafkaResponseHandler
    ) -> EventLoopFuture<Int64> {
        exchange(
            SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: token)), version: 1, channel: channel, handler: handler
        ).flatMap { [self] response in
            guard response.errorCode == 0 else {
                return channel.eventLoop.makeFailedFuture(
                    AuthenticationError(
                        "authentication failed (\(ErrorCode(response.errorCode).name)): \(response.errorMessage ?? "no reason given")"
                    ))
            }
            switch box.client.step(serverMessage: Array(response.authBytes.readableBytesView)) {
            case .send(let next):
                return saslStep(next, box: box, channel: channel, handler: handler)
            case .complete:
                return channel.eventLoop.makeSucceededFuture(response.sessionLifetimeMs)
            case .failure(let reason):
                return channel.eventLoop.makeFailedFuture(AuthenticationError("authentication failed: \(reason)"))
            }
        }
    }

    static func isAddress(_ host: String) -> Bool {
        host.contains(":") || (!host.isEmpty && host.allSatisfy { $0.isNumber || $0 == "." })
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
            RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
                .write(to: &writer)
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

/// A SASL client stepped on one connection's event loop, one message at a time.
final class SaslClientBox: @unchecked Sendable {
    var client: any SaslClient
    init(_ client: any SaslClient) { self.client = client }
}

/// Connections over TCP with `PeerClient`, secured as `security` says (the protocol of the
/// listener they connect to).
public struct NIOPeerConnector: PeerConnector {
    public let group: any EventLoopGroup
    public let security: ClientSecurity
    /// Each connection's `PeerClient.requestTimeoutMs`.
    public var requestTimeoutMs: Int64?

    public init(group: any EventLoopGroup, security: ClientSecurity = .plaintext, requestTimeoutMs: Int64? = nil) {
        self.group = group
        self.security = security
        self.requestTimeoutMs = requestTimeoutMs
    }

    public func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection {
        PeerClient(
            host: host, port: port, clientId: clientId, group: eventLoop ?? group, security: security,
            requestTimeoutMs: requestTimeoutMs)
    }
}
