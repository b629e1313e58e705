import RunnelWire
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A listening socket speaking the Kafka protocol, one per listener.
public final class KafkaServer: Sendable {
    public let listener: String
    public let channel: any Channel
    public let localAddress: SocketAddress
    /// The listener's security (its TLS context may be replaced while it runs).
    public let security: ListenerSecurity

    /// Binds `host:port` (port 0 picks a free one) and serves `handler`. With `accepting` false
    /// the port is bound (so a port in use fails here, and port 0 has its number) but connections
    /// wait in the backlog until `startAccepting()`.
    public static func start(
        listener: String,
        host: String,
        port: Int,
        group: any EventLoopGroup,
        handler: any RequestHandler,
        frameBytesMax: Int,
        requestsQueuedMax: Int,
        accepting: Bool = true,
        security: ListenerSecurity = .plaintext,
        quotas: ConnectionQuotas = ConnectionQuotas(limits: ConnectionLimits()),
        socketOptions: ListenerSocketOptions = ListenerSocketOptions(),
        logger: Logger
    ) async throws -> KafkaServer {
        let ids = ConnectionIds()
        let open = OpenConnections(listener: listener)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(clamping: socketOptions.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: accepting)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024)
            )
            .childChannelInitializer { channel in
                let address = channel.remoteAddress?.ipAddress ?? "?"
                if let refusal = quotas.admit(address) {
                    logger.info("refusing a connection on listener \(listener): \(refusal)")
                    return channel.eventLoop.makeFailedFuture(ConnectionRefused(reason: refusal))
                }
                channel.closeFuture.whenComplete { _ in quotas.release(address) }
                return channel.eventLoop.makeCompletedFuture {
                    let id = ids.next()
                    RequestMetrics.shared.connections.increment()
                    open.add(channel, id: id)
                    channel.closeFuture.whenComplete { _ in open.remove(id) }
                    if let bytes = socketOptions.sendBufferBytes {
                        try channel.syncOptions?.setOption(.socketOption(.so_sndbuf), value: bytes)
                    }
                    if let bytes = socketOptions.receiveBufferBytes {
                        try channel.syncOptions?.setOption(.socketOption(.so_rcvbuf), value: bytes)
                    }
                    if let idleMs = quotas.limits.idleMs {
                        try channel.pipeline.syncOperations.addHandler(
                            IdleStateHandler(allTimeout: .milliseconds(idleMs)))
                        try channel.pipeline.syncOperations.addHandler(IdleConnectionCloser(logger: logger))
                    }
                    if let tls = security.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.current))
                    }
                    try channel.pipeline.syncOperations.addKafkaFraming(
                        frameBytesMax: frameBytesMax, tls: security.tls != nil)
                    try channel.pipeline.syncOperations.addHandler(
                        KafkaConnectionHandler(
                            handler: handler, listener: listener, connectionId: id,
                            requestsQueuedMax: requestsQueuedMax, security: security,
                            logger: logger))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        return KafkaServer(
            listener: listener, channel: channel, localAddress: channel.localAddress!, security: security, open: open)
    }

    private let open: OpenConnections

    private init(
        listener: String, channel: any Channel, localAddress: SocketAddress, security: ListenerSecurity,
        open: OpenConnections
    ) {
        self.listener = listener
        self.channel = channel
        self.localAddress = localAddress
        self.security = security
        self.open = open
    }

    public var port: Int { localAddress.port ?? 0 }

    /// Begins taking connections, those waiting in the backlog first.
    public func startAccepting() async throws {
        try await channel.setOption(.autoRead, value: true).get()
    }

    /// Stops accepting and closes every connection, so no request reaches the node after it
    /// began shutting down the parts behind the handler.
    public func close() async throws {
        try await channel.close()
        for connection in open.all() {
            try? await connection.close()
        }
    }
}

/// A connection closed as it arrived because a connection limit was reached.
struct ConnectionRefused: Error {
    var reason: String
}

final class ConnectionIds: Sendable {
    private let counter = NIOLockedValueBox<UInt64>(0)
    func next() -> UInt64 {
        counter.withLockedValue {
            $0 += 1; return $0
        }
    }
}

/// The connections a server accepted and that are still open, counted in
/// `runnel_connections{listener}` (Kafka's per-listener connection-count).
final class OpenConnections: Sendable {
    private let channels = NIOLockedValueBox<[UInt64: any Channel]>([:])
    private let count: Gauge

    init(listener: String) {
        count = Gauge(label: "runnel_connections", dimensions: [("listener", listener)])
        count.record(0)
    }

    func add(_ channel: any Channel, id: UInt64) {
        channels.withLockedValue {
            $0[id] = channel
            count.record($0.count)
        }
    }

    func remove(_ id: UInt64) {
        channels.withLockedValue {
            $0.removeValue(forKey: id)
            count.record($0.count)
        }
    }

    func all() -> [any Channel] { channels.withLockedValue { Array($0.values) } }
}
