// The active controller takes, as its committed image, the working image its own command left
// once that command is committed: what it takes must be exactly the image after the commands
// committed so far, never one that already holds a command still in flight.
import Logging
import NIOCore
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelQuorum
import RunnelRaft
import RunnelSim
import RunnelWire
import Testing

@Suite("Active controller's committed image")
struct CommittedImageTests {
    struct VirtualClock: Clock, @unchecked Sendable {
        let scheduler: SimScheduler
        func wallMs() -> TimestampMs { scheduler.nowMs }
        func monotonicMs() -> Int64 { scheduler.nowMs }
    }

    /// A single voter connects to no one.
    struct NoPeers: PeerConnector {
        func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection {
            fatalError("a single voter has no peers")
        }
    }

    static func setting(_ name: String) -> MetadataRecord {
        .config(
            ConfigRecord(resourceType: ConfigResourceType.broker.rawValue, resourceName: "", name: name, value: "1"))
    }

    @Test("a commit while a later command is in flight holds the committed commands only")
    func committedImageHoldsCommittedCommandsOnly() throws {
        let scheduler = SimScheduler()
        let loop = SimEventLoop(scheduler: scheduler, name: "controller-1")
        let runtime = KafkaRaftRuntime(
            eventLoop: loop, blocking: { loop, work in loop.submit(work) }, clock: VirtualClock(scheduler: scheduler),
            clusterId: "committed-image", voters: [VoterSpec(id: 1, host: "controller-1", port: 9093)], selfId: 1,
            connector: NoPeers(), logger: Logger(label: "committed-image"))
        let quorum = try MetadataQuorum(
            clusterId: "committed-image", config: RaftConfig(nodeId: NodeID(1), voters: [NodeID(1)]),
            runtime: runtime, disk: SimDisk(), directory: "/metadata",
            controller: QuorumController(
                settings: ControllerSettings(), resolver: ConfigResolver(staticBrokerConfig: [:], brokerId: 1)),
            seed: 1, cleanShutdown: false)
        quorum.leaderRebalance = nil
        try quorum.start()
        while !quorum.driver.isActiveLeader, scheduler.runNext() {}
        #expect(quorum.driver.isActiveLeader)

        let cluster = ConfigResource(.broker, "")
        var committedA = false
        quorum.run({ _, _, _ in ControllerResult(records: [Self.setting("a")], response: 0) }) {
            committedA = (try? $0.get()) != nil
        }
        // Step until A is in the log but not yet committed (its fsync is a task of its own), then
        // propose B: A commits while B is in flight.
        let endBefore = quorum.driver.node.log.endOffset
        while quorum.driver.node.log.endOffset == endBefore, scheduler.runNext() {}
        #expect(!committedA && quorum.committedImage.configs(of: cluster)["a"] == nil)
        var committedB = false
        quorum.run({ _, _, _ in ControllerResult(records: [Self.setting("b")], response: 0) }) {
            committedB = (try? $0.get()) != nil
        }
        while !committedA, scheduler.runNext() {}
        #expect(committedA && !committedB)
        #expect(quorum.committedImage.configs(of: cluster) == ["a": "1"], "B is still in flight")
        while !committedB, scheduler.runNext() {}
        #expect(quorum.committedImage.configs(of: cluster) == ["a": "1", "b": "1"])
    }
}
