// Transactions under the simulator: the real TransactionHost and coordinator over a simulated
// __transaction_state partition (coordinator failover reloads it at the next coordinator epoch),
// real data partitions (producer state, KIP-890 verification, marker checks, last stable offset,
// aborted-transaction index) on brokers that crash and recover their logs, markers lost, delayed
// past their timeout and duplicated, transactional producers, zombies and read_committed
// readers. The checkers assert that a reader never sees a record of a transaction not durably
// committed, that the last stable offset never goes back, that no transaction stays open past
// its timeout plus a bound, and after healing that each transaction is visible on all its
// partitions or none and nothing a fenced producer sent later is. Each broken rule must be
// caught. `runnel-sim --transactions --seeds N` soaks.
import RunnelSim
import Testing

@Suite("Transaction simulation")
struct TransactionSimulationTests {
    @Test("fixed seed set: the invariants hold at every event and after healing", arguments: 0..<24)
    func seeds(seed: Int) throws {
        try TransactionSimulation(seed: UInt64(seed)).run()
    }

    @Test("the same seed replays exactly")
    func replay() throws {
        var options = TransactionSimulationOptions()
        options.trace = true
        let a = TransactionSimulation(seed: 5, options: options)
        let b = TransactionSimulation(seed: 5, options: options)
        try a.run()
        try b.run()
        #expect(a.trace == b.trace)
        #expect(a.fingerprint == b.fingerprint)
    }

    @Test("a failing seed replays exactly")
    func failingReplay() {
        var options = TransactionSimulationOptions()
        options.trace = true
        options.broken = [.skipMarkerEpochCheck]
        let a = TransactionSimulation(seed: 3, options: options)
        let b = TransactionSimulation(seed: 3, options: options)
        let first = Result { try a.run() }.failureDescription
        let second = Result { try b.run() }.failureDescription
        #expect(first != nil, "seed 3 catches skipMarkerEpochCheck")
        #expect(first == second)
        #expect(a.trace == b.trace)
    }

    @Test("broken rules are caught", arguments: TransactionBrokenRule.allCases)
    func brokenRule(rule: TransactionBrokenRule) {
        var options = TransactionSimulationOptions()
        options.broken = [rule]
        var caught = false
        for seed in 0..<20 where !caught {
            do { try TransactionSimulation(seed: UInt64(seed), options: options).run() } catch { caught = true }
        }
        #expect(caught, "no seed caught \(rule)")
    }
}

extension Result where Failure == any Error {
    fileprivate var failureDescription: String? {
        if case .failure(let error) = self { return "\(error)" }
        return nil
    }
}
