// The metadata quorum under the simulator: the real Raft core, driver and RunnelLog on a
// simulated disk, network and clock, with crashes (torn writes), partitions, loss, duplication,
// delay and reordering. A fixed seed set runs in CI; `runnel-sim --seeds N` soaks.
import RunnelCore
import RunnelRaft
import RunnelSim
import Testing

@Suite("Quorum simulation")
struct QuorumSimulationTests {
    @Test("fixed seed set: safety at every event, convergence after healing", arguments: 0..<24)
    func seeds(seed: Int) throws {
        var options = SimulationOptions()
        options.events = 3_000
        options.voters = seed % 3 == 2 ? 5 : 3
        options.observers = seed % 2
        try QuorumSimulation(seed: UInt64(seed), options: options).run()
    }

    @Test("the same seed replays exactly")
    func replay() throws {
        var options = SimulationOptions()
        options.events = 1_500
        options.trace = true
        let a = QuorumSimulation(seed: 5, options: options)
        let b = QuorumSimulation(seed: 5, options: options)
        try a.run()
        try b.run()
        #expect(a.trace == b.trace)
        #expect(a.events == b.events && a.now == b.now)
    }

    @Test("a vote granted to a shorter log is caught")
    func brokenVoteRule() {
        var options = SimulationOptions()
        options.events = 3_000
        options.faults.grantVotesToShorterLogs = true
        var caught = 0
        for seed in 0..<40 where caught == 0 {
            do { try QuorumSimulation(seed: UInt64(seed), options: options).run() } catch { caught += 1 }
        }
        #expect(caught > 0)
    }
}
