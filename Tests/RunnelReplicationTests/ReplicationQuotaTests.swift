// The replication throttle (Kafka's ReplicationQuotaManager, KIP-73): a byte rate over sampled
// windows against a bound, and the "*" / "partition:broker" lists that say which replicas it covers.
import RunnelCore
import RunnelReplication
import Testing

@Suite("Replication quota")
struct ReplicationQuotaTests {
    @Test("without a bound nothing is ever over it")
    func unbounded() {
        var q = ReplicationQuota(windowMs: 1000, windowCount: 2)
        q.record(1 << 40, nowMs: 0)
        #expect(!q.isExceeded(nowMs: 0))
    }

    @Test("the rate counts at least windowCount - 1 windows, then holds the bound")
    func rate() {
        var q = ReplicationQuota(bytesPerSecond: 1000, windowMs: 1000, windowCount: 3)
        // A first burst of two windows' worth is allowed...
        q.record(2000, nowMs: 0)
        #expect(q.rate(nowMs: 0) == 1000)
        #expect(!q.isExceeded(nowMs: 0))
        // ...and anything more is over until time passes.
        q.record(500, nowMs: 100)
        #expect(q.isExceeded(nowMs: 100))
        #expect(q.isExceeded(nowMs: 2000))
        // Old windows fall out: after windowCount windows of silence the rate is 0.
        #expect(q.rate(nowMs: 3100) == 0)
        #expect(!q.isExceeded(nowMs: 3100))
    }

    @Test("sending at the bound for a long time keeps the measured rate near it")
    func steady() {
        var q = ReplicationQuota(bytesPerSecond: 10_000, windowMs: 1000, windowCount: 11)
        var sent: Int64 = 0
        for ms in stride(from: Int64(0), to: 60_000, by: 10) where !q.isExceeded(nowMs: ms) {
            q.record(1000, nowMs: ms)
            sent += 1000
        }
        // 60 s at 10 kB/s is 600 kB, plus the first burst of 10 windows.
        #expect(sent >= 590_000 && sent <= 720_000)
    }

    @Test("throttled replica lists: the wildcard, this broker's entries, nothing for others")
    func lists() {
        #expect(ThrottledReplicas.parse("*", brokerId: 4) == .all)
        #expect(ThrottledReplicas.parse("0:4,1:5, 2:4", brokerId: 4) == .partitions([0, 2]))
        #expect(ThrottledReplicas.parse("0:5", brokerId: 4) == nil)
        #expect(ThrottledReplicas.parse("", brokerId: 4) == nil)
        #expect(ThrottledReplicas.parse(nil, brokerId: 4) == nil)
        #expect(ThrottledReplicas.parse("0:4", brokerId: 4)?.contains(0) == true)
        #expect(ThrottledReplicas.parse("0:4", brokerId: 4)?.contains(1) == false)
    }
}
