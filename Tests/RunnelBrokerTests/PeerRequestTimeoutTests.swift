// A peer connection with a request timeout (the Raft connections, controller.quorum.request.timeout.ms)
// fails a request left unanswered and drops its connection, so the next request connects afresh:
// after a network fault heals, the new connection gets through at once, where the old one would
// wait for TCP's backed-off retransmission.
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RunnelNetwork
import RunnelWire
import Testing

/// Reads everything and answers nothing; counts the connections it accepted.
private final class SilentServer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let accepted: NIOLockedValueBox<Int>
    init(_ accepted: NIOLockedValueBox<Int>) { self.accepted = accepted }
    func channelActive(context: ChannelHandlerContext) { accepted.withLockedValue { $0 += 1 } }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@Suite("Peer request timeout")
struct PeerRequestTimeoutTests {
    @Test("an unanswered request fails after the timeout, and the next one uses a new connection")
    func unansweredRequestDropsTheConnection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = NIOLockedValueBox(0)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SilentServer(accepted))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        let client = PeerClient(
            host: "127.0.0.1", port: port, clientId: "test", group: group, requestTimeoutMs: 200)
        for attempt in 1...2 {
            let started = NIODeadline.now()
            do {
                _ = try await client.send(ApiVersionsRequest(), version: 0).get()
                Issue.record("a silent server answered")
            } catch {
                #expect("\(error)".contains("no answer from 127.0.0.1:\(port) within 200 ms"), "\(error)")
            }
            let waited = (NIODeadline.now() - started).nanoseconds / 1_000_000
            // At least the timeout; the upper bound is loose, as the unit tests' parallel load can
            // starve this event loop for seconds (without the timeout the request never ends).
            #expect(waited >= 190 && waited < 60_000, "attempt \(attempt) failed after \(waited) ms")
            #expect(accepted.withLockedValue { $0 } == attempt, "attempt \(attempt) connects afresh")
        }
        client.shutdown()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
