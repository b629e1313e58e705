// A consumer group under the simulator: the real GroupHost (its request handlers and the
// GroupCoordinator it runs), over a simulated __consumer_offsets partition whose writes take time
// and are lost when the coordinator fails over, with members that behave like Kafka's classic consumer, member crashes,
// joins and leaves, and message loss. After every event the checkers assert that a partition has
// at most one owner per generation, that a member's assigned generations never go back, that
// acknowledged commits never go backwards and survive failovers; after healing the group settles.
// `runnel-sim --groups --seeds N` soaks.
import RunnelSim
import Testing

@Suite("Group simulation")
struct GroupSimulationTests {
    @Test("fixed seed set: safety at every event, the group settles after healing", arguments: 0..<40)
    func seeds(seed: Int) throws {
        try GroupSimulation(seed: UInt64(seed)).run()
    }

    @Test("the same seed replays exactly")
    func replay() throws {
        var options = GroupSimulationOptions()
        options.trace = true
        let a = GroupSimulation(seed: 3, options: options)
        let b = GroupSimulation(seed: 3, options: options)
        try a.run()
        try b.run()
        #expect(a.trace == b.trace)
        #expect(a.events == b.events && a.now == b.now)
    }

    @Test("broken rules are caught", arguments: GroupBrokenRule.allCases)
    func brokenRule(rule: GroupBrokenRule) {
        var options = GroupSimulationOptions()
        options.broken = [rule]
        var caught = false
        for seed in 0..<30 where !caught {
            do { try GroupSimulation(seed: UInt64(seed), options: options).run() } catch { caught = true }
        }
        #expect(caught, "no seed caught \(rule)")
    }
}
