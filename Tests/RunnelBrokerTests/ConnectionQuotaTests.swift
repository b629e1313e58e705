// The node's connection limits (max.connections, max.connections.per.ip and its overrides):
// admission and release as Kafka's ConnectionQuotas counts them, and the overrides' syntax.
import Testing
@testable import RunnelNetwork

@Suite("Connection quotas")
struct ConnectionQuotaTests {
    @Test("per-address limits, overrides and the node-wide limit; a released slot is given again")
    func admission() {
        var limits = ConnectionLimits()
        limits.maxConnections = 4
        limits.maxConnectionsPerIp = 2
        limits.perIpOverrides = ["10.0.0.9": 3, "10.0.0.8": 0]
        let quotas = ConnectionQuotas(limits: limits)
        #expect(quotas.admit("10.0.0.1") == nil && quotas.admit("10.0.0.1") == nil)
        #expect(quotas.admit("10.0.0.1")?.contains("max.connections.per.ip") == true)
        #expect(quotas.admit("10.0.0.8") != nil, "an override of 0 refuses every connection")
        #expect(quotas.admit("10.0.0.9") == nil && quotas.admit("10.0.0.9") == nil)
        #expect(quotas.admit("10.0.0.9")?.contains("(max.connections)") == true, "the node holds 4")
        quotas.release("10.0.0.1")
        #expect(quotas.open == 3)
        #expect(quotas.admit("10.0.0.9") == nil, "the override allows a third once the node has room")
    }

    @Test("max.connections.per.ip.overrides is host:count pairs")
    func overrides() throws {
        #expect(
            try ConnectionLimits.parseOverrides("a.example:5, 10.1.2.3:0").get() == ["a.example": 5, "10.1.2.3": 0])
        #expect(try ConnectionLimits.parseOverrides("").get() == [:])
        #expect(throws: ConnectionLimitsError.self) { try ConnectionLimits.parseOverrides("host").get() }
        #expect(throws: ConnectionLimitsError.self) { try ConnectionLimits.parseOverrides("host:-1").get() }
    }
}
