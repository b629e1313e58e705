// Partition replication under the simulator: three brokers running the real Partition,
// PartitionLog, LeaderState and QuorumController code on a simulated disk (page cache lost on
// power loss, torn writes), network (loss, duplication, delay, reordering, one-way cuts) and
// clock, with idempotent acks=all producers and consumers. After every event the checkers assert
// that no acknowledged record is lost, consumers read only committed records that never change,
// the committed prefix is the same on every in-sync replica, and no idempotent batch is committed
// twice; after healing, every replica converges. `runnel-sim --replication --seeds N` soaks.
import RunnelSim
import Testing

@Suite("Replication simulation")
struct ReplicationSimulationTests {
    @Test("fixed seed set: safety at every event, convergence after healing", arguments: 0..<24)
    func seeds(seed: Int) throws {
        var options = ReplicationSimulationOptions()
        options.partitions = seed % 4 == 3 ? 2 : 1
        try ReplicationSimulation(seed: UInt64(seed), options: options).run()
    }

    @Test("the same seed replays exactly")
    func replay() throws {
        var options = ReplicationSimulationOptions()
        options.events = 2_000
        options.trace = true
        let a = ReplicationSimulation(seed: 11, options: options)
        let b = ReplicationSimulation(seed: 11, options: options)
        try a.run()
        try b.run()
        #expect(a.trace == b.trace)
        #expect(a.events == b.events && a.now == b.now)
    }

    /// Each deliberately broken rule must make some seed fail; a checker that cannot fail
    /// proves nothing.
    @Test("broken rules are caught", arguments: ReplicationBrokenRule.allCases)
    func brokenRule(rule: ReplicationBrokenRule) {
        var options = ReplicationSimulationOptions()
        options.broken = [rule]
        var caught = false
        for seed in 0..<12 where !caught {
            do { try ReplicationSimulation(seed: UInt64(seed), options: options).run() } catch { caught = true }
        }
        #expect(caught, "no seed caught \(rule)")
    }
}
