// A broker's channel to the controller, once shut down (the node going down, before its event
// loops), fails requests at once instead of retrying and reconnecting until its deadline: a
// connect started on event loops that are shutting down can never complete (NIO's debug builds
// stop the process on the promise it leaks).
import Foundation
import Logging
import NIOCore
import NIOPosix
import RunnelWire
import Testing
import RunnelBroker
import RunnelNetwork

@Suite("Controller channel shutdown")
struct ControllerChannelShutdownTests {
    @Test("after shutdown, a request fails as shut down rather than retrying until the deadline")
    func failsFastAfterShutdown() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Port 1 on loopback: nothing listens, so every attempt fails and would be retried.
        let channel = RemoteControllerChannel(
            voters: [VoterSpec(id: 1, host: "127.0.0.1", port: 1)], brokerId: 4,
            connector: NIOPeerConnector(group: group), eventLoop: group.next(),
            logger: Logger(label: "test"), leaderHint: { -1 })
        channel.retryDeadlineMs = 60_000
        channel.shutdown()
        // Without the shutdown, every attempt would be retried until the deadline and the
        // request would end with "no active controller answered".
        do {
            _ = try await channel.send(BrokerHeartbeatRequest(), version: 0).get()
            Issue.record("a request after shutdown succeeded")
        } catch {
            #expect("\(error)".contains("shutting down"), "\(error)")
        }
        try await group.shutdownGracefully()
    }
}
