// The partition leader's replication state is a value: these tests step it through follower
// fetches, clock ticks and committed ISR changes, and check Kafka's rules for the high watermark
// and for proposing ISR shrinks and expansions.
import RunnelCore
import RunnelReplication
import Testing

/// Leader 1 with followers 2 and 3, all in the ISR, log end 100, high watermark 90 at t=0.
func leader(isr: [NodeID] = [1, 2, 3], hw: Offset = 90, end: Offset = 100) -> LeaderState {
    LeaderState(
        localId: 1, replicas: [1, 2, 3], isr: isr, leaderEpoch: 5, partitionEpoch: 7,
        highWatermark: hw, leaderEndOffset: end, nowMs: 0)
}

let allLive = IsrEligibility.everyone

@Suite("LeaderState")
struct LeaderStateTests {
    @Test("the high watermark is the smallest log end offset over the ISR and never moves back")
    func highWatermark() {
        var s = leader()
        #expect(s.highWatermark == 90)
        let first = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10)
        #expect(!first)  // 3 unknown yet
        let second = s.followerFetched(3, fetchOffset: 95, leaderEndOffset: 100, nowMs: 10)
        #expect(second)
        #expect(s.highWatermark == 95)
        // A follower reporting less (it truncated) does not move the mark back.
        _ = s.followerFetched(3, fetchOffset: 80, leaderEndOffset: 100, nowMs: 20)
        #expect(s.highWatermark == 95)
        _ = s.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 30)
        #expect(s.highWatermark == 100)
        // With the ISR down to the leader, its own appends move the mark.
        var alone = leader(isr: [1])
        let moved = alone.leaderAppended(leaderEndOffset: 120, nowMs: 0)
        #expect(moved)
        #expect(alone.highWatermark == 120)
    }

    @Test("a follower that has not caught up for replica.lag.time.max.ms is proposed out")
    func shrink() {
        var s = leader()
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 100)
        _ = s.followerFetched(3, fetchOffset: 90, leaderEndOffset: 100, nowMs: 100)
        #expect(s.isrChange(nowMs: 5_000, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive) == nil)
        // Follower 2 keeps up; 3 stays behind past the lag time (its caught-up time was t=0).
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10_500)
        let proposal = s.isrChange(nowMs: 10_500, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive)
        #expect(proposal == IsrProposal(isr: [1, 2], leaderEpoch: 5, partitionEpoch: 7))
        // One change in flight at a time.
        s.proposed(proposal!)
        #expect(s.isrChange(nowMs: 20_000, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive) == nil)
        // Until committed the old ISR holds; then the high watermark ignores 3.
        #expect(s.highWatermark == 90)
        let moved = s.update(replicas: [1, 2, 3], isr: [1, 2], partitionEpoch: 8, leaderEndOffset: 100, nowMs: 20_000)
        #expect(moved)
        #expect(s.highWatermark == 100)
        #expect(s.pending == nil)
    }

    @Test("a follower with everything the leader has stays in sync however long it waits")
    func idleFollowerStays() {
        var s = leader()
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 0)
        _ = s.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 0)
        #expect(s.isrChange(nowMs: 60_000, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive) == nil)
        // New data the followers do not fetch: now they lag.
        #expect(
            s.isrChange(nowMs: 60_000, lagTimeMaxMs: 10_000, leaderEndOffset: 101, eligibility: allLive)?.isr == [1])
    }

    @Test("a follower rejoins once it reaches the high watermark and this leader's epoch start, if live")
    func expand() {
        var s = leader(isr: [1, 2], hw: 100, end: 100)
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10)
        _ = s.followerFetched(3, fetchOffset: 60, leaderEndOffset: 100, nowMs: 10)
        #expect(s.isrChange(nowMs: 10, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive) == nil)
        _ = s.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 20)
        #expect(
            s.isrChange(
                nowMs: 20, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: IsrEligibility(isLive: { $0 != 3 }))
                == nil)
        let proposal = s.isrChange(nowMs: 20, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive)
        #expect(proposal?.isr == [1, 2, 3])
        s.proposed(proposal!)
        // While the expansion is in flight the joining replica holds the mark back (maximal ISR).
        _ = s.leaderAppended(leaderEndOffset: 110, nowMs: 0)
        _ = s.followerFetched(2, fetchOffset: 110, leaderEndOffset: 110, nowMs: 30)
        #expect(s.highWatermark == 100)
        _ = s.followerFetched(3, fetchOffset: 110, leaderEndOffset: 110, nowMs: 30)
        #expect(s.highWatermark == 110)
    }

    @Test("a refused proposal is dropped and proposed again on the next check")
    func refused() {
        var s = leader()
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 20_000)
        let p = s.isrChange(nowMs: 20_000, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive)!
        s.proposed(p)
        s.proposalFailed()
        #expect(s.isrChange(nowMs: 20_001, lagTimeMaxMs: 10_000, leaderEndOffset: 100, eligibility: allLive) == p)
    }

    @Test("Kafka's caught-up rule: reaching the leader's end as of the previous fetch counts from then")
    func caughtUpRule() {
        var s = leader()
        _ = s.followerFetched(2, fetchOffset: 90, leaderEndOffset: 100, nowMs: 1_000)
        // The leader kept appending; the follower reached 100, the end at its previous fetch.
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 150, nowMs: 2_000)
        #expect(s.followers[2]?.lastCaughtUpMs == 1_000)
        _ = s.followerFetched(2, fetchOffset: 150, leaderEndOffset: 150, nowMs: 3_000)
        #expect(s.followers[2]?.lastCaughtUpMs == 3_000)
    }

    @Test("KIP-903: a follower joins only as the incarnation that fetched, and the proposal names its epoch")
    func brokerEpochs() {
        var s = leader(isr: [1, 2], hw: 100, end: 100)
        _ = s.followerFetched(2, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10, brokerEpoch: 40)
        _ = s.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10, brokerEpoch: 50)
        // Broker 3 registered again (epoch 77) since it fetched as epoch 50: not eligible.
        let registered: @Sendable (NodeID) -> BrokerEpoch? = { $0 == 3 ? 77 : 40 }
        #expect(
            s.isrChange(
                nowMs: 20, lagTimeMaxMs: 10_000, leaderEndOffset: 100,
                eligibility: IsrEligibility(isLive: { _ in true }, registeredEpoch: registered)) == nil)
        // Its new incarnation fetches: now it may join, and the proposal carries epoch 77.
        _ = s.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 30, brokerEpoch: 77)
        let p = s.isrChange(
            nowMs: 30, lagTimeMaxMs: 10_000, leaderEndOffset: 100,
            eligibility: IsrEligibility(isLive: { _ in true }, registeredEpoch: registered))
        #expect(p == IsrProposal(isr: [1, 2, 3], leaderEpoch: 5, partitionEpoch: 7, brokerEpochs: [nil, 40, 77]))
        // A follower that did not say its epoch (Fetch before v15) is judged by liveness alone.
        var old = leader(isr: [1, 2], hw: 100, end: 100)
        _ = old.followerFetched(3, fetchOffset: 100, leaderEndOffset: 100, nowMs: 10)
        #expect(
            old.isrChange(
                nowMs: 20, lagTimeMaxMs: 10_000, leaderEndOffset: 100,
                eligibility: IsrEligibility(isLive: { _ in true }, registeredEpoch: registered))?.brokerEpochs == [
                    nil, nil, nil,
                ])
    }
}
