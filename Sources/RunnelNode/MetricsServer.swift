import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif
import Prometheus
import RunnelBroker
import RunnelNetwork
import RunnelQuorum

/// The node's metrics: swift-metrics bootstrapped once per process with a Prometheus registry,
/// served as Prometheus text on `GET /metrics` of `metrics.port`.
public enum NodeMetrics {
    private static let bootstrapped = NIOLockedValueBox<PrometheusCollectorRegistry?>(nil)

    /// The process's registry, bootstrapping swift-metrics with it on first use.
    public static func registry() -> PrometheusCollectorRegistry {
        bootstrapped.withLockedValue { existing in
            if let existing { return existing }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Request latencies from 100 µs to 10 s.
            factory.defaultDurationHistogramBuckets = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500),
                .seconds(1), .seconds(2), .seconds(5), .seconds(10),
            ]
            MetricsSystem.bootstrap(factory)
            existing = registry
            registerSeries()
            return registry
        }
    }

    // Gauges the node refreshes from its state (the maintenance loop, the quorum's loop).
    static let underReplicatedPartitions = Gauge(label: "runnel_under_replicated_partitions")
    static let leaderPartitions = Gauge(label: "runnel_leader_partitions")
    static let hostedPartitions = Gauge(label: "runnel_partitions")
    static let underMinIsrPartitions = Gauge(label: "runnel_under_min_isr_partitions")
    static let logFlushDuration = Timer(label: "runnel_log_flush_duration_seconds")
    static let metadataOffset = Gauge(label: "runnel_metadata_applied_offset")

    /// Every fixed series of the node, made at zero right after the bootstrap, so that a
    /// dashboard reads 0 rather than "no data" for what has not happened yet (an ISR shrink, an
    /// aborted transaction). Series with a topic or an API label appear with their first value.
    private static func registerSeries() {
        _ = [underReplicatedPartitions, leaderPartitions, hostedPartitions, underMinIsrPartitions, metadataOffset]
        _ = logFlushDuration
        RequestMetrics.registerSeries()
        BrokerMetrics.registerSeries()
        QuorumMetrics.registerSeries()
    }
}

/// A minimal HTTP/1.1 server for `GET /metrics` (Prometheus text format 0.0.4).
final class MetricsHTTPServer: Sendable {
    let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    var port: Int { channel.localAddress?.port ?? 0 }

    static func start(
        host: String, port: Int, group: any EventLoopGroup, registry: PrometheusCollectorRegistry
    ) async throws -> MetricsHTTPServer {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch let error as IOError {
            throw ConfigError(
                "metrics.port", "cannot bind \(host):\(port): \(String(cString: strerror(error.errnoCode)))")
        }
        return MetricsHTTPServer(channel: channel)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Answers `GET /metrics` (and `/`) with the registry's text; anything else gets 404 or 405.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            let status: HTTPResponseStatus
            var body = context.channel.allocator.buffer(capacity: 0)
            var contentType = "text/plain; charset=utf-8"
            let path = request.uri.split(separator: "?").first.map(String.init) ?? "/"
            if request.method != .GET && request.method != .HEAD {
                status = .methodNotAllowed
                body.writeString("only GET is served\n")
            } else if path == "/metrics" || path == "/" {
                status = .ok
                contentType = "text/plain; version=0.0.4; charset=utf-8"
                if request.method == .GET { body.writeBytes(registry.emitToBuffer()) }
            } else {
                status = .notFound
                body.writeString("metrics are at /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            let keepAlive = request.isKeepAlive
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
            if !keepAlive {
                let channel = context.channel
                done.futureResult.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
