import ArgumentParser
import Foundation
import RunnelCore
import RunnelSim

@main
struct RunnelSimCommand: ParsableCommand {
    /// A seed must replay exactly in another process too, but Swift seeds its hashing per process,
    /// so the order of a dictionary's keys (which the real code iterates) differs from one run to
    /// the next. Runs itself again with hashing made deterministic when it is not.
    static func main() {
        if getenv("SWIFT_DETERMINISTIC_HASHING") == nil {
            setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
            let args = CommandLine.arguments.map { strdup($0) } + [nil]
            execv("/proc/self/exe", args)
            // execv returns only on failure: run on, with a warning.
            FileHandle.standardError.write(
                Data(
                    "runnel-sim: could not re-run with SWIFT_DETERMINISTIC_HASHING=1; seeds may not replay exactly\n"
                        .utf8))
        }
        Self.main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "runnel-sim",
        abstract:
            "Deterministic simulation of the metadata quorum (the real Raft core, driver and log) or of partition replication (the real partitions, logs and controller), on a virtual clock, network and disk, with faults.",
        discussion: """
            runnel-sim --seed 42                          replay one seed of the quorum simulation exactly (prints the failure and its trace)
            runnel-sim --seeds 10000                      soak: seeds 0..<N, prints events per second
            runnel-sim --replication --seeds 2000         the replication simulation's soak
            runnel-sim --replication --seed 7 --trace     replay one seed, streaming its trace
            runnel-sim --groups --seeds 1000              the consumer-group simulation's soak
            runnel-sim --transactions --seeds 10000       the transaction simulation's soak
            runnel-sim --transactions --broken skipMarkerEpochCheck --seeds 50   a planted bug it must catch
            """)

    @Option(help: "Run exactly this seed.")
    var seed: UInt64?

    @Option(help: "Run seeds 0..<N (a soak).")
    var seeds: Int = 100

    @Option(help: "First seed of a soak.")
    var from: UInt64 = 0

    @Option(help: "Events with faults per seed before healing.")
    var events: Int = 4_000

    @Option(help: "Voters.")
    var voters: Int = 3

    @Option(help: "Observers.")
    var observers: Int = 1

    @Flag(help: "Print the trace of a failing or single seed.")
    var trace = false

    @Flag(help: "Simulate partition replication (3 brokers, replication factor 3) instead of the metadata quorum.")
    var replication = false

    @Option(help: "Partitions of the replicated topic (with --replication).")
    var partitions: Int = 1

    @Option(
        help:
            "A rule to break on purpose (with --replication: uncleanLeaderElection, ackBeforeHighWatermark, highWatermarkPastFollowerEnd, isrExpansionWithoutBrokerEpochCheck, ignoreDivergingEpoch; with --groups: answerSyncBeforeStore, ackCommitBeforeWrite; with --transactions: skipMarkerEpochCheck, fetchPastLastStableOffset)."
    )
    var broken: [String] = []

    @Flag(
        help:
            "Simulate a consumer group (the real group coordinator, members, coordinator failover) instead of the metadata quorum."
    )
    var groups = false

    @Flag(
        help:
            "Simulate transactions (the real transaction coordinator and partitions, coordinator failover, broker crashes, lost and delayed markers, zombies, read_committed readers) instead of the metadata quorum."
    )
    var transactions = false

    func run() throws {
        if transactions { return try runTransactions() }
        if replication { return try runReplication() }
        if groups { return try runGroups() }
        var options = SimulationOptions()
        options.events = events
        options.voters = voters
        options.observers = observers
        if let seed {
            options.trace = true
            options.streamTrace = trace
            let sim = QuorumSimulation(seed: seed, options: options)
            return try replay({ try sim.run() }, trace: { sim.trace }) {
                "seed \(seed): ok, \(sim.events) events, \(sim.committedCount) committed records, \(sim.summary())"
            }
        }
        var o = options
        o.trace = false
        try soak(every: 1000, totals: { nil }) { s in
            let sim = QuorumSimulation(seed: s, options: o)
            do { try sim.run() } catch { return (sim.events, "\(error)") }
            return (sim.events, nil)
        }
    }

    func runReplication() throws {
        var options = ReplicationSimulationOptions()
        options.events = events
        options.partitions = partitions
        options.broken = try brokenRules(ReplicationBrokenRule.self)
        if let seed {
            options.trace = true
            options.streamTrace = trace
            let sim = ReplicationSimulation(seed: seed, options: options)
            return try replay({ try sim.run() }, trace: { sim.trace }) {
                "seed \(seed): ok, \(sim.events) events, \(describe(sim.stats)); \(sim.summary())\nfingerprint: \(sim.fingerprint)"
            }
        }
        var totals = ReplicationStats()
        try soak(every: 500, totals: { describe(totals) }) { s in
            let sim = ReplicationSimulation(seed: s, options: options)
            defer { totals.add(sim.stats) }
            do { try sim.run() } catch { return (sim.events, "\(error)") }
            return (sim.events, nil)
        }
    }

    func runGroups() throws {
        var options = GroupSimulationOptions()
        options.events = events
        options.broken = try brokenRules(GroupBrokenRule.self)
        if let seed {
            options.trace = true
            let sim = GroupSimulation(seed: seed, options: options)
            // This simulation does not stream its trace: with --trace it is printed whole.
            return try replay({ try sim.run() }, trace: { sim.trace }, streamed: false) {
                "seed \(seed): ok, \(sim.events) events, \(sim.stats.failovers) failovers, \(sim.stats.memberCrashes) member crashes, \(sim.stats.commits) commits; \(sim.summary())"
                    + (trace ? "\n" + sim.trace.joined(separator: "\n") : "")
            }
        }
        var failovers = 0, crashes = 0, commits = 0
        try soak(
            every: 1000,
            totals: {
                "\(failovers) coordinator failovers, \(crashes) member crashes, \(commits) commits acknowledged"
            }
        ) { s in
            let sim = GroupSimulation(seed: s, options: options)
            defer {
                failovers += sim.stats.failovers
                crashes += sim.stats.memberCrashes
                commits += sim.stats.commits
            }
            do { try sim.run() } catch { return (sim.events, "\(error)") }
            return (sim.events, nil)
        }
    }

    func runTransactions() throws {
        var options = TransactionSimulationOptions()
        options.events = events
        options.broken = try brokenRules(TransactionBrokenRule.self)
        if let seed {
            options.trace = true
            options.streamTrace = trace
            let sim = TransactionSimulation(seed: seed, options: options)
            return try replay({ try sim.run() }, trace: { sim.trace }) {
                "seed \(seed): ok, \(describe(sim.stats)); \(sim.summary())\nfingerprint: \(sim.fingerprint)"
            }
        }
        var totals = TransactionStats()
        try soak(every: 1000, totals: { describe(totals) }) { s in
            let sim = TransactionSimulation(seed: s, options: options)
            defer { totals.add(sim.stats) }
            do { try sim.run() } catch { return (sim.events, "\(error)") }
            return (sim.events, nil)
        }
    }

    /// The rules `--broken` names, of one simulation's kind.
    func brokenRules<Rule: RawRepresentable & CaseIterable & Hashable>(_: Rule.Type) throws -> Set<Rule>
    where Rule.RawValue == String {
        try Set(
            broken.map { name in
                guard let rule = Rule(rawValue: name) else {
                    throw ValidationError(
                        "unknown rule \(name); one of \(Rule.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return rule
            })
    }

    /// Runs seeds `from` onward, `seeds` of them, with `runSeed` (a seed's events, and its failure
    /// if any), printing progress every `every` seeds and at the end the totals; exits 1 on any
    /// failure. Each seed is named on stderr first: a precondition in the code under test stops
    /// the process, and the seed replays it.
    /// One seed replayed with its trace (`--seed`): prints `ok` after a clean run; after a failure
    /// the trace's last 300 lines (unless `--trace` streamed it as it ran) and the error, and fails.
    func replay(
        _ run: () throws -> Void, trace lines: () -> [String], streamed: Bool? = nil, ok: () -> String
    ) throws {
        do {
            try run()
            print(ok())
        } catch {
            if !(streamed ?? trace) { print(lines().suffix(300).joined(separator: "\n")) }
            print(error)
            throw ExitCode.failure
        }
    }

    func soak(
        every: UInt64, totals: () -> String?, _ runSeed: (UInt64) -> (events: Int, failure: String?)
    ) throws {
        let start = Date()
        var totalEvents = 0
        var failures: [String] = []
        func rate() -> Int { Int(Double(totalEvents) / max(Date().timeIntervalSince(start), 0.001)) }
        for s in from..<(from + UInt64(seeds)) {
            FileHandle.standardError.write(Data("seed \(s)\r".utf8))
            let (events, failure) = runSeed(s)
            totalEvents += events
            if let failure { failures.append(failure) }
            if (s - from + 1) % every == 0 {
                print("\(s - from + 1) seeds, \(totalEvents) events, \(rate()) events/s, \(failures.count) failures")
            }
        }
        let elapsed = String(format: "%.1f", Date().timeIntervalSince(start))
        print(
            "\(seeds) seeds, \(totalEvents) events in \(elapsed) s (\(rate()) events/s), \(failures.count) failures")
        if let totals = totals() { print("totals: \(totals)") }
        for f in failures.prefix(20) { print("  \(f)") }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    func describe(_ stats: TransactionStats) -> String {
        "\(stats.coordinatorFailovers) coordinator failovers, \(stats.brokerCrashes) broker crashes, \(stats.zombies) zombies, "
            + "\(stats.commitsAcknowledged) commits and \(stats.abortsAcknowledged) aborts acknowledged, "
            + "markers \(stats.markersLost) lost, \(stats.markersDelayed) delayed, \(stats.markersDuplicated) duplicated, \(stats.markersRefused) refused; "
            + "\(stats.recordsRead) records read"
    }

    func describe(_ stats: ReplicationStats) -> String {
        "\(stats.processCrashes) process crashes, \(stats.powerLosses) power losses, \(stats.leaderChanges) leader changes, \(stats.isrChanges) ISR changes, "
            + "\(stats.stepAsides) leaders stepped aside, "
            + "\(stats.truncations) truncations, \(stats.committedBatches) batches committed, \(stats.ackedBatches) acknowledged, \(stats.consumedBatches) consumed"
    }
}
