// Replays one core-simulation seed with a trace, for debugging a failure:
//   RAFT_SEED=6 RAFT_VOTERS=3 RAFT_OBSERVERS=1 swift test --filter ReplaySeed
// Without RAFT_SEED it does nothing.
import Foundation
import Testing
@testable import RunnelRaft

@Suite("Replay a core-simulation seed")
struct ReplaySeed {
    @Test func replay() throws {
        let env = ProcessInfo.processInfo.environment
        guard let text = env["RAFT_SEED"], let seed = UInt64(text) else { return }
        let sim = CoreSimulation(
            seed: seed, voters: Int(env["RAFT_VOTERS"] ?? "3") ?? 3, observers: Int(env["RAFT_OBSERVERS"] ?? "0") ?? 0,
            trace: true)
        do {
            try sim.run(events: Int(env["RAFT_EVENTS"] ?? "3000") ?? 3000)
            print("seed \(seed) passed: \(sim.step) events, \(sim.committed.count) committed records")
        } catch {
            print(sim.trace.suffix(200).joined(separator: "\n"))
            throw error
        }
    }
}
