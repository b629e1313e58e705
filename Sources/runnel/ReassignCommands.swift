import ArgumentParser
import Foundation
import RunnelClient
import RunnelController
import RunnelWire

/// `runnel reassign`: kafka-reassign-partitions with Kafka's JSON files (KIP-455 underneath).
struct Reassign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reassign",
        abstract: "Move partition replicas between brokers (as kafka-reassign-partitions).",
        discussion: """
            A reassignment file is Kafka's: {"version":1,"partitions":[{"topic":"t","partition":0,\
            "replicas":[1,2,3],"log_dirs":["any","any","any"]}]} (log_dirs optional, "any" only). \
            generate proposes one for whole topics; execute starts it (with --throttle, a \
            replication throttle on the brokers and replicas that move); verify reports each \
            partition and, once all are done, removes the throttles; cancel stops the moves in \
            progress and returns those partitions to their old replicas.
            """,
        subcommands: [Generate.self, Execute.self, Verify.self, Cancel.self])

    /// One partition of a reassignment file.
    struct Move: Sendable, Equatable {
        var topic: String
        var partition: Int32
        var replicas: [Int32]
        var name: String { "\(topic)-\(partition)" }
    }

    /// Reads a reassignment file: version 1, each partition once, replicas distinct, log_dirs
    /// absent or "any" for each replica.
    static func readPlan(_ path: String) throws -> [Move] {
        let root = try readJSONObject(path, option: "--reassignment-json-file")
        guard let list = root["partitions"] as? [[String: Any]] else {
            throw CLIError(#"--reassignment-json-file: \#(path) has no "partitions" list"#)
        }
        if let version = root["version"] as? NSNumber, version.intValue != 1 {
            throw CLIError("--reassignment-json-file: \(path) has version \(version); only version 1 exists")
        }
        var moves: [Move] = []
        for item in list {
            guard let topic = item["topic"] as? String, let partition = (item["partition"] as? NSNumber)?.int32Value,
                let replicas = (item["replicas"] as? [NSNumber])?.map(\.int32Value)
            else {
                throw CLIError("--reassignment-json-file: an entry of \(path) lacks its topic, partition or replicas")
            }
            let move = Move(topic: topic, partition: partition, replicas: replicas)
            if replicas.isEmpty { throw CLIError("partition \(move.name) has an empty replica list") }
            if Set(replicas).count != replicas.count {
                throw CLIError("partition \(move.name) lists a replica more than once: \(replicas)")
            }
            if let dirs = item["log_dirs"] as? [String] {
                if dirs.count != replicas.count {
                    throw CLIError(
                        "partition \(move.name) has \(dirs.count) log_dirs for \(replicas.count) replicas")
                }
                if let dir = dirs.first(where: { $0 != "any" }) {
                    throw CLIError(
                        "partition \(move.name) asks for log dir \(dir): moving replicas between log dirs is not supported; use \"any\""
                    )
                }
            }
            if moves.contains(where: { $0.topic == topic && $0.partition == partition }) {
                throw CLIError("--reassignment-json-file: \(path) names partition \(move.name) more than once")
            }
            moves.append(move)
        }
        if moves.isEmpty { throw CLIError("--reassignment-json-file: \(path) names no partition") }
        return moves
    }

    /// A reassignment file's text, compact as Kafka prints it.
    static func planJSON(_ moves: [Move]) -> String {
        let partitions = moves.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }.map { m -> JSON in
            .object([
                ("topic", .string(m.topic)), ("partition", .int(m.partition)), ("replicas", .ints(m.replicas)),
                ("log_dirs", .array(m.replicas.map { _ in .string("any") })),
            ])
        }
        return JSON.object([("version", .int(1)), ("partitions", .array(partitions))]).render(pretty: false)
    }

    /// The moves in progress among the partitions `moves` names.
    static func ongoing(_ moves: [Move], client: KafkaClient) async throws -> [OngoingReassignment] {
        try await client.listPartitionReassignments(
            Dictionary(grouping: moves, by: \.topic).mapValues { $0.map(\.partition) })
    }

    /// The current assignment of the partitions `moves` names.
    static func current(_ moves: [Move], client: KafkaClient) async throws -> [Move] {
        var out: [Move] = []
        for topic in Set(moves.map(\.topic)).sorted() {
            let info = try await client.topic(topic, refresh: true)
            for m in moves where m.topic == topic {
                guard let p = info.partitions.first(where: { $0.partition == m.partition }) else {
                    throw CLIError("partition \(m.name) does not exist")
                }
                out.append(Move(topic: topic, partition: m.partition, replicas: p.replicas))
            }
        }
        return out
    }

    /// Starts `moves`; throws one sentence naming the partitions refused.
    static func start(_ moves: [Move], client: KafkaClient) async throws {
        let results = try await client.alterPartitionReassignments(
            moves.map { ReassignmentTarget(topic: $0.topic, partition: $0.partition, replicas: $0.replicas) })
        let failed = results.filter { $0.error != .none }
        if !failed.isEmpty {
            let reasons = failed.map { "\($0.topic)-\($0.partition): \($0.message ?? $0.error.message)" }
            throw CLIError("cannot reassign \(reasons.joined(separator: "; "))")
        }
    }

    /// The throttle configs Kafka's tool sets for `moves`: the rate on every broker that sends or
    /// receives a moving replica, and per topic the replicas throttled as leaders (the current
    /// replicas) and as followers (the new ones).
    static func throttles(_ moves: [Move], current: [Move]) -> (brokers: [Int32], topics: [String: (String, String)]) {
        var brokers = Set<Int32>()
        var leaders: [String: [String]] = [:]
        var followers: [String: [String]] = [:]
        for m in moves {
            let now = current.first { $0.topic == m.topic && $0.partition == m.partition }?.replicas ?? []
            guard now != m.replicas else { continue }
            brokers.formUnion(now)
            brokers.formUnion(m.replicas)
            leaders[m.topic, default: []] += now.map { "\(m.partition):\($0)" }
            followers[m.topic, default: []] += m.replicas.filter { !now.contains($0) }.map { "\(m.partition):\($0)" }
        }
        var topics: [String: (String, String)] = [:]
        for topic in Set(leaders.keys).union(followers.keys) {
            topics[topic] = (
                (leaders[topic] ?? []).joined(separator: ","), (followers[topic] ?? []).joined(separator: ",")
            )
        }
        return (brokers.sorted(), topics)
    }

    static let rateKeys = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"]
    static let replicaKeys = ["leader.replication.throttled.replicas", "follower.replication.throttled.replicas"]

    /// Removes the throttles of every broker and of `topics` (Kafka's tool clears them on all brokers).
    static func clearThrottles(topics: [String], client: KafkaClient) async throws -> [Int32] {
        let brokers = try await client.describeCluster().brokers.map(\.id)
        for id in brokers { try await client.alterConfigs(.broker(id), set: [], delete: rateKeys) }
        for topic in topics { try await client.alterConfigs(.topic(topic), set: [], delete: replicaKeys) }
        return brokers
    }

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Propose a reassignment of whole topics onto --broker-list.",
            discussion: """
                --topics-to-move-json-file names the topics: {"topics":[{"topic":"t"}],"version":1}. \
                Each topic keeps its partition count and replication factor; the replicas are \
                placed the way topic creation places them (spread evenly, racks alternated). Prints \
                the current assignment and the proposal, each as a reassignment file.
                """)
        @Option(name: .customLong("topics-to-move-json-file")) var topicsToMoveJSONFile: String
        @Option(name: .customLong("broker-list"), help: "Broker ids to place replicas on, comma separated.")
        var brokerList: String
        @OptionGroup var options: ClientOptions

        func run() async {
            let path = topicsToMoveJSONFile
            let ids: [Int32]
            let topics: [String]
            do {
                ids = try brokerList.split(separator: ",").map {
                    guard let id = Int32($0.trimmingCharacters(in: .whitespaces)) else {
                        throw CLIError("--broker-list: \"\($0)\" is not a broker id")
                    }
                    return id
                }
                if Set(ids).count != ids.count { throw CLIError("--broker-list names a broker more than once") }
                let root = try readJSONObject(path, option: "--topics-to-move-json-file")
                guard let list = root["topics"] as? [[String: Any]] else {
                    throw CLIError(#"--topics-to-move-json-file: \#(path) has no "topics" list"#)
                }
                topics = try list.map {
                    guard let t = $0["topic"] as? String else {
                        throw CLIError("--topics-to-move-json-file: an entry of \(path) has no topic")
                    }
                    return t
                }
            } catch { fail(sentence(error)) }
            let (current, proposed) = await withClient(options) { client -> ([Move], [Move]) in
                let cluster = try await client.describeCluster()
                let known = Dictionary(uniqueKeysWithValues: cluster.brokers.map { ($0.id, $0) })
                if let unknown = ids.first(where: { known[$0] == nil }) {
                    throw CLIError("--broker-list: broker \(unknown) is not in the cluster")
                }
                let brokers = ids.map { ReplicaPlacement.Broker(id: $0, rack: known[$0]!.rack) }
                var current: [Move] = []
                var proposed: [Move] = []
                for topic in topics {
                    let info = try await client.topic(topic, refresh: true)
                    let partitions = info.partitions.sorted { $0.partition < $1.partition }
                    let factor = partitions.first?.replicas.count ?? 1
                    let placed = try placement(
                        count: partitions.count, replicationFactor: factor, brokers: brokers, topic: topic)
                    for (p, replicas) in zip(partitions, placed) {
                        current.append(Move(topic: topic, partition: p.partition, replicas: p.replicas))
                        proposed.append(Move(topic: topic, partition: p.partition, replicas: replicas))
                    }
                }
                return (current, proposed)
            }
            print("Current partition replica assignment")
            print(Reassign.planJSON(current))
            print("")
            print("Proposed partition reassignment configuration")
            print(Reassign.planJSON(proposed))
        }
    }

    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the reassignment of --reassignment-json-file.",
            discussion: """
                Prints the current assignment (keep it to roll back) and starts every move. \
                --throttle B sets leader.replication.throttled.rate and \
                follower.replication.throttled.rate to B bytes/s on the brokers involved and the \
                topics' *.replication.throttled.replicas to the moving replicas; run verify until \
                it reports every partition done, which removes them. While other moves are in \
                progress it refuses, as Kafka's tool does, unless --additional.
                """)
        @Option(name: .customLong("reassignment-json-file")) var reassignmentJSONFile: String
        @Option(help: "Replication throttle in bytes/s while the partitions move.") var throttle: Int64?
        @Flag(help: "Start these moves even though others are in progress.") var additional = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if let throttle, throttle < 1 { throw ValidationError("--throttle must be at least 1 byte/s") }
        }

        func run() async {
            let moves: [Move]
            do { moves = try Reassign.readPlan(reassignmentJSONFile) } catch { fail(sentence(error)) }
            let throttle = self.throttle
            let additional = self.additional
            let current = await withClient(options) { client -> [Move] in
                if !additional, !(try await client.listPartitionReassignments()).isEmpty {
                    throw CLIError(
                        "Cannot execute because there is an existing partition assignment. Use --additional to override this and create a new partition assignment in addition to the existing one"
                    )
                }
                let current = try await Reassign.current(moves, client: client)
                if let throttle {
                    let (brokers, topics) = Reassign.throttles(moves, current: current)
                    for id in brokers {
                        try await client.alterConfigs(
                            .broker(id), set: Reassign.rateKeys.map { ($0, String(throttle)) }, delete: [])
                    }
                    for (topic, replicas) in topics.sorted(by: { $0.key < $1.key }) {
                        try await client.alterConfigs(
                            .topic(topic),
                            set: [(Reassign.replicaKeys[0], replicas.0), (Reassign.replicaKeys[1], replicas.1)],
                            delete: [])
                    }
                }
                try await Reassign.start(moves, client: client)
                return current
            }
            print("Current partition replica assignment")
            print("")
            print(Reassign.planJSON(current))
            print("")
            print("Save this to use as the --reassignment-json-file option during rollback")
            if let throttle {
                print(
                    "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed."
                )
                print("The inter-broker throttle limit was set to \(throttle) B/s")
            }
            print(
                "Successfully started partition reassignment\(moves.count == 1 ? "" : "s") for \(moves.map(\.name).joined(separator: ","))"
            )
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report the reassignment of --reassignment-json-file; once done, remove its throttles.",
            discussion: """
                Prints, per partition, "Reassignment of partition t-0 is completed." or "... is still \
                in progress.", or that no move is active but the replicas differ from the file. Exits \
                1 while any partition is not done. When all are, clears the replication throttles \
                (unless --preserve-throttles). --json prints {"partitions": [{"topic", "partition", \
                "state": "completed"|"in_progress"|"mismatch", "replicas"}]}.
                """)
        @Option(name: .customLong("reassignment-json-file")) var reassignmentJSONFile: String
        @Flag(name: .customLong("preserve-throttles"), help: "Leave the throttles in place.")
        var preserveThrottles = false
        @OptionGroup var options: ClientOptions

        func run() async {
            let moves: [Move]
            do { moves = try Reassign.readPlan(reassignmentJSONFile) } catch { fail(sentence(error)) }
            let preserve = preserveThrottles
            let (states, cleared) = await withClient(options) { client -> ([(Move, String, [Int32])], [Int32]?) in
                let ongoing = try await Reassign.ongoing(moves, client: client)
                let current = try await Reassign.current(moves, client: client)
                var states: [(Move, String, [Int32])] = []
                for (m, now) in zip(moves, current) {
                    if ongoing.contains(where: { $0.topic == m.topic && $0.partition == m.partition }) {
                        states.append((m, "in_progress", now.replicas))
                    } else if now.replicas == m.replicas {
                        states.append((m, "completed", now.replicas))
                    } else {
                        states.append((m, "mismatch", now.replicas))
                    }
                }
                var cleared: [Int32]?
                if !preserve, states.allSatisfy({ $0.1 == "completed" }) {
                    cleared = try await Reassign.clearThrottles(
                        topics: Set(moves.map(\.topic)).sorted(), client: client)
                }
                return (states, cleared)
            }
            if options.json {
                JSON.object([
                    (
                        "partitions",
                        .array(
                            states.map {
                                .object([
                                    ("topic", .string($0.0.topic)), ("partition", .int($0.0.partition)),
                                    ("state", .string($0.1)), ("replicas", .ints($0.2)),
                                ])
                            })
                    )
                ]).print()
            } else {
                print("Status of partition reassignment:")
                for (m, state, replicas) in states {
                    switch state {
                    case "completed": print("Reassignment of partition \(m.name) is completed.")
                    case "in_progress": print("Reassignment of partition \(m.name) is still in progress.")
                    default:
                        print(
                            "There is no active reassignment of partition \(m.name), but replica set is \(replicas.map(String.init).joined(separator: ",")) rather than \(m.replicas.map(String.init).joined(separator: ","))."
                        )
                    }
                }
                if let cleared {
                    print("")
                    print(
                        "Clearing broker-level throttles on brokers \(cleared.map(String.init).joined(separator: ","))")
                    for topic in Set(moves.map(\.topic)).sorted() {
                        print("Clearing topic-level throttles on topic \(topic)")
                    }
                }
            }
            if states.contains(where: { $0.1 != "completed" }) {
                fail(
                    "\(states.filter { $0.1 != "completed" }.count) partition(s) have not reached their new replicas yet."
                )
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel the moves in progress of --reassignment-json-file's partitions.",
            discussion: """
                Each partition still moving returns to the replicas it had before the move; \
                partitions already done stay where they are. Clears the replication throttles \
                unless --preserve-throttles.
                """)
        @Option(name: .customLong("reassignment-json-file")) var reassignmentJSONFile: String
        @Flag(name: .customLong("preserve-throttles"), help: "Leave the throttles in place.")
        var preserveThrottles = false
        @OptionGroup var options: ClientOptions

        func run() async {
            let moves: [Move]
            do { moves = try Reassign.readPlan(reassignmentJSONFile) } catch { fail(sentence(error)) }
            let preserve = preserveThrottles
            let cancelled = await withClient(options) { client -> [String] in
                let ongoing = try await Reassign.ongoing(moves, client: client)
                var cancelled: [String] = []
                if !ongoing.isEmpty {
                    let results = try await client.alterPartitionReassignments(
                        ongoing.map { ReassignmentTarget(topic: $0.topic, partition: $0.partition, replicas: nil) })
                    let failed = results.filter { $0.error != .none && $0.error != .noReassignmentInProgress }
                    if !failed.isEmpty {
                        throw CLIError(
                            "cannot cancel "
                                + failed.map { "\($0.topic)-\($0.partition): \($0.message ?? $0.error.message)" }
                                .joined(separator: "; "))
                    }
                    cancelled = results.filter { $0.error == .none }.map { "\($0.topic)-\($0.partition)" }
                }
                if !preserve {
                    _ = try await Reassign.clearThrottles(topics: Set(moves.map(\.topic)).sorted(), client: client)
                }
                return cancelled
            }
            if cancelled.isEmpty {
                print("None of the specified partition reassignments are active.")
            } else {
                print("Successfully cancelled partition reassignments for: \(cancelled.joined(separator: ","))")
            }
        }
    }
}

/// Replicas for `count` partitions over `brokers` by topic creation's placement rules.
func placement(
    count: Int, replicationFactor: Int, brokers: [ReplicaPlacement.Broker], topic: String
) throws
    -> [[Int32]]
{
    switch ReplicaPlacement.place(
        count: count, replicationFactor: replicationFactor, brokers: brokers,
        start: Int.random(in: 0..<max(1, brokers.count)))
    {
    case .success(let placed): return placed
    case .failure:
        throw CLIError(
            "topic \(topic) has replication factor \(replicationFactor) but only \(brokers.count) broker(s) would hold it"
        )
    }
}

/// A JSON file's top-level object.
func readJSONObject(_ path: String, option: String) throws -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("\(option): \(path) cannot be read")
    }
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CLIError("\(option): \(path) is not a JSON object")
    }
    return root
}

/// `runnel broker`: operations on one broker.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker", abstract: "Operations on a broker.", subcommands: [Drain.self])

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every replica off a broker and wait until it holds none.",
            discussion: """
                Each partition with a replica on the broker gets a replacement replica on another \
                broker, chosen by topic creation's placement rules (spread evenly, racks \
                alternated) among the brokers the partition does not use yet; its other replicas \
                stay, in their order. The moves run as one reassignment (KIP-455): the new \
                replicas catch up and join the ISR before the drained broker leaves, so no \
                acknowledged record is lost. Prints the plan as a reassignment file, then waits \
                for every move to finish (--timeout-ms).
                """)
        @Argument(help: "The id of the broker to empty.") var brokerId: Int32
        @Option(name: .customLong("timeout-ms"), help: "How long to wait for the moves to finish.")
        var timeoutMs: Int64 = 600_000
        @OptionGroup var options: ClientOptions

        func run() async {
            let broker = brokerId
            let timeout = timeoutMs
            let plan = await withClient(options) { client -> [Reassign.Move] in
                let cluster = try await client.describeCluster()
                guard cluster.brokers.contains(where: { $0.id == broker }) else {
                    throw CLIError("broker \(broker) is not in the cluster")
                }
                let remaining = cluster.brokers.filter { $0.id != broker }.map {
                    ReplicaPlacement.Broker(id: $0.id, rack: $0.rack)
                }
                let plan = try await drainPlan(broker: broker, remaining: remaining, client: client)
                if !plan.isEmpty { try await Reassign.start(plan, client: client) }
                return plan
            }
            if plan.isEmpty {
                print("Broker \(broker) holds no replicas.")
                return
            }
            print("Moving \(plan.count) partition(s) off broker \(broker):")
            print(Reassign.planJSON(plan))
            let done = await withClient(options) { client -> Bool in
                let deadline = Date().addingTimeInterval(Double(timeout) / 1000)
                while Date() < deadline {
                    let ongoing = try await Reassign.ongoing(plan, client: client)
                    if ongoing.isEmpty {
                        let now = try await Reassign.current(plan, client: client)
                        if now.allSatisfy({ !$0.replicas.contains(broker) }) { return true }
                    }
                    try await Task.sleep(nanoseconds: 500_000_000)
                }
                return false
            }
            guard done else {
                fail(
                    "the moves off broker \(broker) did not finish within \(timeout) ms; see runnel reassign verify, or cancel them."
                )
            }
            print("Broker \(broker) holds no replicas.")
        }

        /// For each partition on `broker`, its replicas with `broker` replaced by the first broker
        /// of the topic-creation placement (over `remaining`) that the partition does not use,
        /// preferring a rack it does not use either.
        func drainPlan(
            broker: Int32, remaining: [ReplicaPlacement.Broker], client: KafkaClient
        ) async throws -> [Reassign.Move] {
            let topics = try await client.listTopics().map { t in
                (t.name, t.partitions.sorted { $0.partition < $1.partition }.map { ($0.partition, $0.replicas) })
            }
            return try Self.plan(
                draining: broker, topics: topics, remaining: remaining,
                start: Int.random(in: 0..<max(1, remaining.count)))
        }

        /// The moves that empty `broker`: in each partition holding it, it is replaced by the first
        /// broker of topic creation's placement (over `remaining`, leading at index `start`) that the
        /// partition does not use, preferring one on a rack the partition's other replicas do not
        /// use; the other replicas keep their places.
        static func plan(
            draining broker: Int32, topics: [(name: String, partitions: [(Int32, [Int32])])],
            remaining: [ReplicaPlacement.Broker], start: Int
        ) throws -> [Reassign.Move] {
            let rackOf = Dictionary(uniqueKeysWithValues: remaining.map { ($0.id, $0.rack) })
            var plan: [Reassign.Move] = []
            for (name, partitions) in topics.sorted(by: { $0.name < $1.name }) {
                guard partitions.contains(where: { $0.1.contains(broker) }) else { continue }
                let factor = partitions.map(\.1.count).max() ?? 1
                if factor > remaining.count {
                    throw CLIError(
                        "topic \(name) has replication factor \(factor) but only \(remaining.count) broker(s) would remain"
                    )
                }
                guard
                    case .success(let placed) = ReplicaPlacement.place(
                        count: partitions.count, replicationFactor: factor, brokers: remaining, start: start)
                else {
                    throw CLIError("topic \(name) cannot be placed on the \(remaining.count) remaining broker(s)")
                }
                for ((index, replicas), candidates) in zip(partitions, placed) where replicas.contains(broker) {
                    let kept = replicas.filter { $0 != broker }
                    let usedRacks = Set(kept.compactMap { rackOf[$0] ?? nil })
                    let free = (candidates + remaining.map(\.id)).filter { !kept.contains($0) }
                    let onNewRack = free.first { id in (rackOf[id] ?? nil).map { !usedRacks.contains($0) } ?? true }
                    guard let replacement = onNewRack ?? free.first else {
                        throw CLIError("partition \(name)-\(index) has no broker left to move to")
                    }
                    plan.append(
                        Reassign.Move(
                            topic: name, partition: index, replicas: replicas.map { $0 == broker ? replacement : $0 }))
                }
            }
            return plan
        }
    }
}
