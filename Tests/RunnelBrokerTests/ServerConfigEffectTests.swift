// ServerConfigEffectTests.swift
// What `runnel server` makes of a Kafka server.properties: each key without effect is found once,
// with its listener-prefixed variants, in file order; keys that take effect are not; and the keys
// wired to Runnel settings under Kafka's rules (broker.id as node.id, security.inter.broker.protocol
// as the inter-broker listener, fetch.max.bytes) behave as Kafka's do.

import RunnelMetadata
import RunnelNetwork
import RunnelNode
import Testing

@Suite("server.properties keys without effect")
struct ServerConfigEffectTests {
    static let base = """
        process.roles=broker,controller
        controller.quorum.voters=1@127.0.0.1:9093
        listeners=PLAINTEXT://:9092,CONTROLLER://:9093
        controller.listener.names=CONTROLLER
        log.dirs=/tmp/runnel-config-test

        """

    func config(_ text: String) throws -> ServerConfig {
        try ServerConfig(Properties(parsing: Self.base + text))
    }

    @Test("each key without effect is named once, in file order; keys that take effect are not")
    func keysWithoutEffect() throws {
        let c = try config(
            """
            node.id=1
            num.network.threads=3
            num.io.threads=8
            log.retention.hours=168
            socket.send.buffer.bytes=102400
            log.flush.scheduler.interval.ms=1000
            listener.name.plaintext.ssl.cipher.suites=TLS_AES_128_GCM_SHA256
            compression.type=producer
            log.message.timestamp.before.max.ms=1000
            """)
        #expect(
            c.keysWithoutEffect.map(\.key) == [
                "num.network.threads", "num.io.threads", "socket.send.buffer.bytes", "log.flush.scheduler.interval.ms",
                "listener.name.plaintext.ssl.cipher.suites",
            ])
        #expect(c.keysWithoutEffect.map(\.effect)[3] == ConfigDefinitions.effect(of: "log.flush.scheduler.interval.ms"))
        #expect(c.unknownKeys.isEmpty)
    }

    @Test("broker.id stands for node.id, as in Kafka; the two must agree when both are set")
    func brokerIdIsNodeId() throws {
        #expect(try config("broker.id=1\n").nodeId == 1)
        #expect(try config("broker.id=1\nnode.id=1\n").nodeId == 1)
        #expect(throws: ConfigError.self) { try config("broker.id=2\nnode.id=1\n") }
        #expect(throws: ConfigError.self) { try config("log.retention.hours=1\n") }
    }

    @Test("security.inter.broker.protocol names the inter-broker listener, and excludes inter.broker.listener.name")
    func securityInterBrokerProtocol() throws {
        let c = try config(
            """
            node.id=1
            listeners=CONTROLLER://:9093,INTERNAL://:9095,PLAINTEXT://:9092
            listener.security.protocol.map=INTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
            security.inter.broker.protocol=PLAINTEXT
            """)
        #expect(c.interBrokerListenerName == "PLAINTEXT")
        #expect(throws: ConfigError.self) {
            try config("node.id=1\nsecurity.inter.broker.protocol=PLAINTEXT\ninter.broker.listener.name=PLAINTEXT\n")
        }
    }

    @Test("fetch.max.bytes is read, with Kafka's default and lower bound")
    func fetchMaxBytes() throws {
        #expect(try config("node.id=1\n").fetchMaxBytes == 57_671_680)
        #expect(try config("node.id=1\nfetch.max.bytes=1048576\n").fetchMaxBytes == 1_048_576)
        #expect(throws: ConfigError.self) { try config("node.id=1\nfetch.max.bytes=10\n") }
    }

    @Test("listener socket keys apply when given; connection limits and the idle timeout are read")
    func socketsAndConnections() throws {
        let unset = try config("node.id=1\n")
        #expect(unset.listenerSocketOptions == ListenerSocketOptions(), "unset: backlog 1024, kernel-tuned buffers")
        #expect(
            unset.connectionLimits.idleMs == 600_000 && unset.connectionLimits.maxConnectionsPerIp == Int(Int32.max))
        let set = try config(
            """
            node.id=1
            socket.listen.backlog.size=50
            socket.send.buffer.bytes=102400
            socket.receive.buffer.bytes=-1
            max.connections=100
            max.connections.per.ip=10
            max.connections.per.ip.overrides=127.0.0.2:2,host.example:0
            connections.max.idle.ms=-1
            """)
        #expect(set.listenerSocketOptions.backlog == 50)
        #expect(
            set.listenerSocketOptions.sendBufferBytes == 102_400 && set.listenerSocketOptions.receiveBufferBytes == nil)
        #expect(set.connectionLimits.maxConnections == 100 && set.connectionLimits.maxConnectionsPerIp == 10)
        #expect(set.connectionLimits.perIpOverrides == ["127.0.0.2": 2, "host.example": 0])
        #expect(set.connectionLimits.idleMs == nil, "-1 never closes idle connections")
        #expect(throws: ConfigError.self) { try config("node.id=1\nmax.connections.per.ip.overrides=nohost\n") }
    }
}
