// What a broker's channel to the controller sends again after an attempt broke: a client's change
// (CreateTopics) that went out and got no answer may have been applied, so it is not sent again
// and fails as of unknown outcome (the broker answers REQUEST_TIMED_OUT); the broker's own
// requests (a heartbeat) go to the next voter, and so does any request answered NOT_CONTROLLER.
// Found by tools/chaos (seed 1842): a forwarded create sent again after the delete that followed
// it had committed made the topic again.
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RunnelBroker
import RunnelWire
import Testing

/// Connections whose every request is delivered (counted) and then broken, or answered
/// NOT_CONTROLLER.
final class BreakingConnector: PeerConnector, @unchecked Sendable {
    let eventLoop: any EventLoop
    let notController: Bool
    let delivered = NIOLockedValueBox(0)

    init(eventLoop: any EventLoop, notController: Bool) {
        self.eventLoop = eventLoop
        self.notController = notController
    }

    func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection {
        Connection(connector: self, host: host, port: port)
    }

    final class Connection: PeerConnection, @unchecked Sendable {
        let connector: BreakingConnector
        let host: String
        let port: Int
        init(connector: BreakingConnector, host: String, port: Int) {
            self.connector = connector
            self.host = host
            self.port = port
        }
        func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
            connector.delivered.withLockedValue { $0 += 1 }
            if connector.notController, R.self == CreateTopicsRequest.self {
                var refusal = CreateTopicsResponse()
                refusal.topics = [.init(name: "t", errorCode: ErrorCode.notController.rawValue)]
                return connector.eventLoop.makeSucceededFuture(refusal as! R.Response)
            }
            return connector.eventLoop.makeFailedFuture(ConnectionError("connection closed"))
        }
        func close() {}
        func shutdown() {}
    }
}

@Suite("Controller channel retries")
struct ControllerChannelRetryTests {
    func channel(_ connector: BreakingConnector, group: any EventLoopGroup) -> RemoteControllerChannel {
        let channel = RemoteControllerChannel(
            voters: [VoterSpec(id: 1, host: "c1", port: 1), VoterSpec(id: 2, host: "c2", port: 1)], brokerId: 4,
            connector: connector, eventLoop: group.next(), logger: Logger(label: "test"), leaderHint: { 1 })
        channel.retryDeadlineMs = 300
        channel.backoffMs = 10
        return channel
    }

    func createTopics() -> CreateTopicsRequest {
        var request = CreateTopicsRequest()
        request.topics = [.init(name: "t", numPartitions: 1, replicationFactor: 1)]
        return request
    }

    @Test("a client's change that went out and broke is not sent again: its outcome is unknown")
    func clientChangeNotRepeated() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connector = BreakingConnector(eventLoop: group.next(), notController: false)
        do {
            _ = try await channel(connector, group: group).send(createTopics(), version: 7).get()
            Issue.record("a broken attempt succeeded")
        } catch {
            #expect(error is ForwardOutcomeUnknown, "\(error)")
        }
        #expect(connector.delivered.withLockedValue { $0 } == 1)
        try await group.shutdownGracefully()
    }

    @Test("the broker's own requests, and changes answered NOT_CONTROLLER, go to the next voter")
    func othersRepeated() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let broken = BreakingConnector(eventLoop: group.next(), notController: false)
        _ = try? await channel(broken, group: group).send(BrokerHeartbeatRequest(), version: 0).get()
        #expect(broken.delivered.withLockedValue { $0 } > 1)
        let refusing = BreakingConnector(eventLoop: group.next(), notController: true)
        let answer = try await channel(refusing, group: group).send(createTopics(), version: 7).get()
        #expect(answer.topics.first?.errorCode == ErrorCode.notController.rawValue, "the last answer, at the deadline")
        #expect(refusing.delivered.withLockedValue { $0 } > 1)
        try await group.shutdownGracefully()
    }
}
