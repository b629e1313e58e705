import ArgumentParser
import Foundation
import RunnelClient
import RunnelWire

struct Group: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, describe, reset the offsets of and delete consumer groups (as kafka-consumer-groups does).",
        subcommands: [GroupList.self, GroupDescribe.self, GroupResetOffsets.self, GroupDelete.self])
}

struct GroupList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Every group the brokers coordinate (ListGroups on each broker).",
        discussion: """
            --json prints [{"groupId", "state", "protocolType", "coordinatorId"}], sorted by group id.
            """)

    @OptionGroup var options: ClientOptions

    func run() async {
        let groups = await withClient(options) { client in try await client.listGroups() }
        if options.json {
            return JSON.array(
                groups.map { g in
                    .object([
                        ("groupId", .string(g.groupId)), ("state", .string(g.state)),
                        ("protocolType", .string(g.protocolType)),
                        ("coordinatorId", .int(g.coordinatorId)),
                    ])
                }
            ).print()
        }
        printTable(
            [["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]]
                + groups.map {
                    [$0.groupId, $0.state, $0.protocolType.isEmpty ? "-" : $0.protocolType, "\($0.coordinatorId)"]
                })
    }
}

/// A group's committed offsets next to the log end offsets, and who owns each partition.
struct GroupReport: Sendable {
    struct Row: Sendable {
        var topic: String
        var partition: Int32
        var committed: Int64?
        var logEnd: Int64?
        var member: GroupMemberDescription?
        var lag: Int64? {
            guard let committed, let logEnd else { return nil }
            return max(0, logEnd - committed)
        }
    }

    var group: GroupDescription
    var rows: [Row]

    static func fetch(_ client: KafkaClient, _ groupId: String) async throws -> GroupReport {
        let group = try await client.describeGroup(groupId)
        let committed = try await client.committedOffsets(group: groupId, partitions: nil, requireStable: false)
        if group.state == "Dead" && group.members.isEmpty && committed.isEmpty {
            throw CLIError("group \(groupId) does not exist")
        }
        var owners: [String: [Int32: GroupMemberDescription]] = [:]
        for m in group.members {
            for tp in m.assignment { for p in tp.partitions { owners[tp.topic, default: [:]][p] = m } }
        }
        var partitions: [String: Set<Int32>] = [:]
        for (t, ps) in committed { partitions[t, default: []].formUnion(ps.keys) }
        for (t, ps) in owners { partitions[t, default: []].formUnion(ps.keys) }
        var rows: [Row] = []
        for topic in partitions.keys.sorted() {
            let list = partitions[topic]!.sorted()
            // A topic deleted since the commit has no log end offset.
            let ends = (try? await client.listOffsets(topic: topic, partitions: list, spec: .latest)) ?? [:]
            for p in list {
                rows.append(
                    Row(
                        topic: topic, partition: p, committed: committed[topic]?[p], logEnd: ends[p],
                        member: owners[topic]?[p]))
            }
        }
        return GroupReport(group: group, rows: rows)
    }
}

struct GroupDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "A group's state, members and, per partition, committed offset, log end offset and lag.",
        discussion: """
            --json prints {"groupId", "state", "protocolType", "protocol", "coordinator": {"id", "host", "port"}, \
            "members": [{"memberId", "groupInstanceId", "clientId", "clientHost", "assignment": [{"topic", "partitions"}]}], \
            "offsets": [{"topic", "partition", "committedOffset", "logEndOffset", "lag", "memberId", "clientId", "clientHost"}]} \
            (committedOffset, logEndOffset, lag and the member fields are null when unknown).
            """)

    @Argument(help: "The group id.") var groupId: String
    @OptionGroup var options: ClientOptions

    func run() async {
        let groupId = self.groupId
        let report = await withClient(options) { client in try await GroupReport.fetch(client, groupId) }
        let g = report.group
        if options.json {
            return JSON.object([
                ("groupId", .string(g.groupId)), ("state", .string(g.state)), ("protocolType", .string(g.protocolType)),
                ("protocol", .string(g.protocolName)),
                (
                    "coordinator",
                    .object([
                        ("id", .int(g.coordinator.id)), ("host", .string(g.coordinator.host)),
                        ("port", .int(g.coordinator.port)),
                    ])
                ),
                (
                    "members",
                    .array(
                        g.members.map { m in
                            .object([
                                ("memberId", .string(m.memberId)), ("groupInstanceId", .optional(m.groupInstanceId)),
                                ("clientId", .string(m.clientId)),
                                ("clientHost", .string(m.clientHost)),
                                (
                                    "assignment",
                                    .array(
                                        m.assignment.map {
                                            .object([
                                                ("topic", .string($0.topic)), ("partitions", .ints($0.partitions)),
                                            ])
                                        })
                                ),
                            ])
                        })
                ),
                (
                    "offsets",
                    .array(
                        report.rows.map { r in
                            .object([
                                ("topic", .string(r.topic)), ("partition", .int(r.partition)),
                                ("committedOffset", .optional(r.committed)),
                                ("logEndOffset", .optional(r.logEnd)), ("lag", .optional(r.lag)),
                                ("memberId", .optional(r.member?.memberId)),
                                ("clientId", .optional(r.member?.clientId)),
                                ("clientHost", .optional(r.member?.clientHost)),
                            ])
                        })
                ),
            ]).print()
        }
        print("Group:       \(g.groupId)")
        print("State:       \(g.state)")
        print(
            "Protocol:    \(g.protocolType.isEmpty ? "-" : g.protocolType)\(g.protocolName.isEmpty ? "" : "/" + g.protocolName)"
        )
        print("Coordinator: \(g.coordinator.id) (\(g.coordinator.address))")
        print("Members:     \(g.members.count)")
        if !report.rows.isEmpty {
            print("")
            printTable(
                [
                    [
                        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
                        "CLIENT-ID",
                    ]
                ]
                    + report.rows.map { r in
                        [
                            g.groupId, r.topic, "\(r.partition)", r.committed.map(String.init) ?? "-",
                            r.logEnd.map(String.init) ?? "-", r.lag.map(String.init) ?? "-",
                            r.member?.memberId ?? "-", r.member?.clientHost ?? "-", r.member?.clientId ?? "-",
                        ]
                    })
        }
        if !g.members.isEmpty {
            print("")
            printTable(
                [["CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"]]
                    + g.members.map { m in
                        [
                            m.memberId, m.groupInstanceId ?? "-", m.clientHost, m.clientId,
                            m.assignment.isEmpty
                                ? "-"
                                : m.assignment.map {
                                    "\($0.topic)(\($0.partitions.map(String.init).joined(separator: ",")))"
                                }.joined(separator: " "),
                        ]
                    })
        }
    }
}

struct GroupResetOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset-offsets", abstract: "Plan or commit new offsets for a group's partitions of a topic.",
        discussion: """
            Prints the plan (a dry run) unless --execute is given; then commits the new offsets with \
            OffsetCommit from outside the group (generation -1), which works only while the group has \
            no members. --to-offset is clamped to each partition's earliest and latest offsets.

            --json prints {"groupId", "executed", "partitions": [{"topic", "partition", "currentOffset", "newOffset"}]} \
            (currentOffset is null when the group had no committed offset).
            """)

    @Argument(help: "The group id.") var groupId: String
    @Option(help: "The topic, or topic:partition[,partition...] for some of its partitions.") var topic: String
    @Flag(name: .customLong("to-earliest"), help: "Reset to each partition's earliest offset.") var toEarliest = false
    @Flag(name: .customLong("to-latest"), help: "Reset to each partition's log end offset.") var toLatest = false
    @Option(name: .customLong("to-offset"), help: "Reset to this offset.") var toOffset: Int64?
    @Flag(help: "Commit the new offsets (without it, only the plan is printed).") var execute = false
    @OptionGroup var options: ClientOptions

    func parsedTopic() throws -> (String, [Int32]?) {
        guard let colon = topic.lastIndex(of: ":") else { return (topic, nil) }
        let name = String(topic[..<colon])
        var partitions: [Int32] = []
        for item in topic[topic.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
            guard let p = Int32(item), p >= 0 else {
                throw ValidationError("--topic expects topic or topic:partition[,partition...], not \"\(topic)\"")
            }
            partitions.append(p)
        }
        guard !name.isEmpty, !partitions.isEmpty else {
            throw ValidationError("--topic expects topic or topic:partition[,partition...], not \"\(topic)\"")
        }
        return (name, partitions)
    }

    func validate() throws {
        _ = try parsedTopic()
        let chosen = [toEarliest, toLatest, toOffset != nil].filter { $0 }.count
        guard chosen == 1 else {
            throw ValidationError("give exactly one of --to-earliest, --to-latest and --to-offset")
        }
        if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must be 0 or more") }
    }

    func run() async {
        let (topicName, chosenPartitions) = try! parsedTopic()
        let (groupId, execute, toEarliest, toLatest, toOffset) = (
            self.groupId, self.execute, self.toEarliest, self.toLatest, self.toOffset
        )
        let plan = await withClient(options) { client -> [(Int32, Int64?, Int64)] in
            let info = try await client.topic(topicName)
            let partitions = chosenPartitions ?? info.partitions.map(\.partition)
            for p in partitions where p >= info.partitionCount {
                throw CLIError(
                    "partition \(p) does not exist (topic \(topicName) has \(info.partitionCount) partition\(info.partitionCount == 1 ? "" : "s"))"
                )
            }
            if execute {
                let group = try await client.describeGroup(groupId)
                if !group.members.isEmpty || !["Empty", "Dead"].contains(group.state) {
                    throw CLIError(
                        "group \(groupId) is \(group.state) with \(group.members.count) member\(group.members.count == 1 ? "" : "s"); offsets can be reset only while it has none (stop its consumers first)"
                    )
                }
            }
            let current =
                try await client.committedOffsets(
                    group: groupId, partitions: [topicName: partitions], requireStable: false)[topicName] ?? [:]
            let earliest = try await client.listOffsets(topic: topicName, partitions: partitions, spec: .earliest)
            let latest = try await client.listOffsets(topic: topicName, partitions: partitions, spec: .latest)
            let plan: [(Int32, Int64?, Int64)] = partitions.map { p in
                let target: Int64 =
                    toEarliest ? earliest[p]! : toLatest ? latest[p]! : min(max(toOffset!, earliest[p]!), latest[p]!)
                return (p, current[p], target)
            }
            if execute {
                let failed = try await client.commitOffsets(
                    group: groupId, offsets: [topicName: Dictionary(uniqueKeysWithValues: plan.map { ($0.0, $0.2) })])
                if let f = failed.first {
                    let hint =
                        [ErrorCode.illegalGeneration, .unknownMemberId, .rebalanceInProgress].contains(f.error)
                        ? " (the group has members; stop its consumers first)" : ""
                    throw CLIError(
                        "the coordinator refused the new offset of partition \(f.partition) of topic \(f.topic) for group \(groupId): \(f.error.name)\(hint)"
                    )
                }
            }
            return plan
        }
        if options.json {
            return JSON.object([
                ("groupId", .string(groupId)), ("executed", .bool(execute)),
                (
                    "partitions",
                    .array(
                        plan.map {
                            .object([
                                ("topic", .string(topicName)), ("partition", .int($0.0)),
                                ("currentOffset", .optional($0.1)), ("newOffset", .int($0.2)),
                            ])
                        })
                ),
            ]).print()
        }
        printTable(
            [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]]
                + plan.map { [groupId, topicName, "\($0.0)", $0.1.map(String.init) ?? "-", "\($0.2)"] })
        print("")
        print(
            execute
                ? "Committed the new offsets of group \(groupId)."
                : "Dry run: nothing was committed; add --execute to commit these offsets.")
    }
}

struct GroupDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a group with no members, and its committed offsets (DeleteGroups).",
        discussion: """
            --json prints {"groupId", "deleted": true}.
            """)

    @Argument(help: "The group id.") var groupId: String
    @OptionGroup var options: ClientOptions

    func run() async {
        let groupId = self.groupId
        await withClient(options) { client in try await client.deleteGroup(groupId) }
        if options.json { return JSON.object([("groupId", .string(groupId)), ("deleted", .bool(true))]).print() }
        print("Deleted group \(groupId).")
    }
}
