import ArgumentParser
import Foundation
import RunnelClient
import RunnelWire

struct Group: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, describe, reset the offsets of and delete consumer groups (as kafka-consumer-groups does).",
        subcommands: [
            GroupList.self, GroupDescribe.self, GroupResetOffsets.self, GroupDeleteOffsets.self, GroupDelete.self,
        ])
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

/// The group a command names: as an argument, or with kafka-consumer-groups' --group.
func chosenGroup(_ argument: String?, _ option: String?) throws -> String {
    if let argument, let option, argument != option {
        throw ValidationError("give the group once, as an argument or with --group")
    }
    guard let group = argument ?? option, !group.isEmpty else { throw ValidationError("give the group, with --group") }
    return group
}

/// Parses kafka-consumer-groups' `--topic topic` or `topic:partition[,partition...]`.
func parseTopicPartitions(_ text: String) throws -> (topic: String, partitions: [Int32]?) {
    let problem = ValidationError("--topic expects topic or topic:partition[,partition...], not \"\(text)\"")
    guard let colon = text.lastIndex(of: ":") else {
        guard !text.isEmpty else { throw problem }
        return (text, nil)
    }
    let name = String(text[..<colon])
    var partitions: [Int32] = []
    for item in text[text.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
        guard let p = Int32(item), p >= 0 else { throw problem }
        partitions.append(p)
    }
    guard !name.isEmpty, !partitions.isEmpty else { throw problem }
    return (name, partitions)
}

/// Checks that every asked partition of `topic` exists; nil asks for them all.
func existingPartitions(_ client: KafkaClient, topic: String, asked: [Int32]?) async throws -> [Int32] {
    let info = try await client.topic(topic)
    let partitions = asked ?? info.partitions.map(\.partition)
    for p in partitions where p >= info.partitionCount {
        throw CLIError(
            "partition \(p) does not exist (topic \(topic) has \(info.partitionCount) partition\(info.partitionCount == 1 ? "" : "s"))"
        )
    }
    return partitions
}

/// Where `group reset-offsets` moves each partition's committed offset (kafka-consumer-groups' scenarios).
enum ResetTarget: Sendable, Equatable {
    case earliest, latest, current
    case offset(Int64)
    case shiftBy(Int64)
    /// The first offset at or after a time (ms since the epoch), else the log end.
    case time(Int64)
    /// A time this many ms before now, else the log end.
    case beforeNow(Int64)
    /// The offsets of a CSV reset plan, by topic and partition.
    case plan([String: [Int32: Int64]])

    /// Milliseconds since the epoch of kafka-consumer-groups' `YYYY-MM-DDTHH:mm:SS.sss`, with an
    /// optional zone (`Z`, `+hh:mm`, `+hhmm`); without one the local zone applies, as Kafka's.
    static func parseDateTime(_ text: String) -> Int64? {
        let pattern = try! Regex(
            #"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:?\d{2})?$"#)
        guard let m = try? pattern.wholeMatch(in: text) else { return nil }
        func int(_ i: Int) -> Int? { m.output[i].substring.flatMap { Int($0) } }
        var zone = TimeZone.current
        if let z = m.output[8].substring.map(String.init) {
            if z == "Z" {
                zone = TimeZone(secondsFromGMT: 0)!
            } else {
                let digits = z.dropFirst().filter(\.isNumber)
                let seconds = (Int(digits.prefix(2))! * 60 + Int(digits.suffix(2))!) * 60
                guard let tz = TimeZone(secondsFromGMT: z.hasPrefix("-") ? -seconds : seconds) else { return nil }
                zone = tz
            }
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = DateComponents(
            year: int(1), month: int(2), day: int(3), hour: int(4), minute: int(5), second: int(6))
        guard let month = parts.month, (1...12).contains(month), let day = parts.day, (1...31).contains(day),
            let hour = parts.hour, hour < 24, let minute = parts.minute, minute < 60, let second = parts.second,
            second < 60, let date = calendar.date(from: parts)
        else { return nil }
        let fraction = m.output[7].substring.map(String.init) ?? "0"
        let millis = Int64(fraction.padding(toLength: 3, withPad: "0", startingAt: 0))!
        return Int64((date.timeIntervalSince1970 * 1000).rounded()) + millis
    }

    /// Milliseconds of an ISO-8601 duration `PnDTnHnMn.nS` (java.time.Duration's form, without signs).
    static func parseDuration(_ text: String) -> Int64? {
        let pattern = try! Regex(#"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,3})\d*)?S)?)?$"#)
        guard text != "P", !text.hasSuffix("T"), let m = try? pattern.wholeMatch(in: text) else { return nil }
        func int(_ i: Int) -> Int64 { m.output[i].substring.flatMap { Int64($0) } ?? 0 }
        let fraction = m.output[5].substring.map(String.init) ?? "0"
        let millis = Int64(fraction.padding(toLength: 3, withPad: "0", startingAt: 0))!
        let (days, hours, minutes, seconds) = (int(1), int(2), int(3), int(4))
        guard days < 100_000, hours < 10_000_000, minutes < 1_000_000_000, seconds < 100_000_000_000 else { return nil }
        return ((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000 + millis
    }

    /// A kafka-consumer-groups reset plan: `topic,partition,offset` lines, or
    /// `group,topic,partition,offset` of which those of `group` count.
    static func parsePlan(_ text: String, path: String, group: String) throws -> [String: [Int32: Int64]] {
        var plan: [String: [Int32: Int64]] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            var fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            if fields.count == 4 {
                if fields[0] != group { continue }
                fields.removeFirst()
            }
            guard fields.count == 3, !fields[0].isEmpty, let p = Int32(fields[1]), p >= 0, let o = Int64(fields[2]),
                o >= 0
            else {
                throw CLIError(
                    "line \(index + 1) of \(path) is not topic,partition,offset (or group,topic,partition,offset): \"\(line)\""
                )
            }
            plan[fields[0], default: [:]][p] = o
        }
        guard !plan.isEmpty else { throw CLIError("\(path) has no offsets for group \(group)") }
        return plan
    }
}

/// Shows "label n/total" on stderr while a long command works, only when stderr is a terminal.
struct Progress {
    let label: String
    let total: Int
    let shown = isatty(STDERR_FILENO) == 1
    private(set) var done = 0

    init(_ label: String, total: Int) {
        self.label = label
        self.total = total
    }

    /// Counts `count` more done; the line is redrawn at most a hundred times over the whole run.
    mutating func advance(by count: Int = 1) {
        let step = max(1, total / 100)
        let before = done / step
        done += count
        guard shown, done / step != before || done >= total else { return }
        FileHandle.standardError.write(Data("\r\(label) \(done)/\(total)".utf8))
    }

    /// Clears the line, so what the command prints next starts clean.
    func finish() {
        guard shown, done > 0 else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

struct GroupResetOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset-offsets", abstract: "Plan or commit new offsets for a group's partitions.",
        discussion: """
            Prints the plan (a dry run) unless --execute is given; then commits the new offsets with \
            OffsetCommit from outside the group (generation -1), which works only while the group has \
            no members. The partitions are those of each --topic, every partition the group has \
            committed offsets for (--all-topics), or those of --from-file. --to-offset and --shift-by \
            are clamped to each partition's earliest and latest offsets; --to-datetime and \
            --by-duration move to the first record at or after that time, or to the log end when \
            there is none; --to-current keeps the committed offset (the log end where there is none). \
            --export prints the plan as topic,partition,offset lines, which --from-file reads back.

            --json prints {"groupId", "executed", "partitions": [{"topic", "partition", "currentOffset", "newOffset"}]} \
            (currentOffset is null when the group had no committed offset).
            """)

    @Argument(help: "The group id.") var groupArgument: String?
    @Option(name: .customLong("group"), help: "The group id, as kafka-consumer-groups takes it.") var groupOption:
        String?
    @Option(help: "A topic, or topic:partition[,partition...] for some of its partitions (repeatable).")
    var topic: [String] = []
    @Flag(name: .customLong("all-topics"), help: "Every partition the group has committed offsets for.")
    var allTopics = false
    @Flag(name: .customLong("to-earliest"), help: "Reset to each partition's earliest offset.") var toEarliest = false
    @Flag(name: .customLong("to-latest"), help: "Reset to each partition's log end offset.") var toLatest = false
    @Option(name: .customLong("to-offset"), help: "Reset to this offset.") var toOffset: Int64?
    @Option(
        name: .customLong("shift-by"), parsing: .unconditional,
        help: "Move the committed offsets by this many (negative: back).")
    var shiftBy: Int64?
    @Option(
        name: .customLong("to-datetime"),
        help:
            "Reset to the first record at or after YYYY-MM-DDTHH:mm:SS.sss (Z or +hh:mm optional; local time without).")
    var toDatetime: String?
    @Option(name: .customLong("by-duration"), help: "Reset to the first record at or after now minus PnDTnHnMnS.")
    var byDuration: String?
    @Flag(name: .customLong("to-current"), help: "Reset to the committed offsets (the log end where there is none).")
    var toCurrent = false
    @Option(name: .customLong("from-file"), help: "Reset to the offsets of a topic,partition,offset CSV file.")
    var fromFile: String?
    @Flag(help: "Print the plan as CSV (topic,partition,offset), as --from-file reads it.") var export = false
    @Flag(name: .customLong("dry-run"), help: "Only print the plan (the default).") var dryRun = false
    @Flag(help: "Commit the new offsets (without it, only the plan is printed).") var execute = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        _ = try chosenGroup(groupArgument, groupOption)
        for t in topic { _ = try parseTopicPartitions(t) }
        let scenarios = [
            toEarliest, toLatest, toOffset != nil, shiftBy != nil, toDatetime != nil, byDuration != nil, toCurrent,
            fromFile != nil,
        ].filter { $0 }.count
        guard scenarios == 1 else {
            throw ValidationError(
                "give exactly one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration, --to-current and --from-file"
            )
        }
        let scopes = [!topic.isEmpty, allTopics, fromFile != nil].filter { $0 }.count
        guard scopes == 1 else {
            throw ValidationError(
                fromFile != nil
                    ? "--from-file names its own partitions; leave out --topic and --all-topics"
                    : "give --topic (repeatable) or --all-topics")
        }
        if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must be 0 or more") }
        if let toDatetime, ResetTarget.parseDateTime(toDatetime) == nil {
            throw ValidationError("--to-datetime expects YYYY-MM-DDTHH:mm:SS.sss, not \"\(toDatetime)\"")
        }
        if let byDuration, ResetTarget.parseDuration(byDuration) == nil {
            throw ValidationError("--by-duration expects an ISO-8601 duration PnDTnHnMnS, not \"\(byDuration)\"")
        }
        if execute && dryRun { throw ValidationError("--dry-run and --execute cannot be used together") }
        if export && options.json { throw ValidationError("--export and --json cannot be used together") }
    }

    /// The scenario chosen, with --from-file read.
    func target(group: String) throws -> ResetTarget {
        if toEarliest { return .earliest }
        if toLatest { return .latest }
        if toCurrent { return .current }
        if let toOffset { return .offset(toOffset) }
        if let shiftBy { return .shiftBy(shiftBy) }
        if let toDatetime { return .time(ResetTarget.parseDateTime(toDatetime)!) }
        if let byDuration { return .beforeNow(ResetTarget.parseDuration(byDuration)!) }
        guard let data = FileManager.default.contents(atPath: fromFile!),
            let text = String(data: data, encoding: .utf8)
        else {
            throw CLIError("--from-file: \(fromFile!) cannot be read")
        }
        return .plan(try ResetTarget.parsePlan(text, path: fromFile!, group: group))
    }

    struct PlannedOffset: Sendable {
        var topic: String
        var partition: Int32
        var current: Int64?
        var new: Int64
    }

    func run() async {
        let groupId = try! chosenGroup(groupArgument, groupOption)
        let target: ResetTarget
        do { target = try self.target(group: groupId) } catch { fail(sentence(error)) }
        let topicSpecs = try! topic.map(parseTopicPartitions)
        let (execute, allTopics) = (self.execute, self.allTopics)
        let plan = await withClient(options) { client -> [PlannedOffset] in
            if execute {
                let group = try await client.describeGroup(groupId)
                if !group.members.isEmpty || !["Empty", "Dead"].contains(group.state) {
                    throw CLIError(
                        "group \(groupId) is \(group.state) with \(group.members.count) member\(group.members.count == 1 ? "" : "s"); offsets can be reset only while it has none (stop its consumers first)"
                    )
                }
            }
            // The partitions to reset, by topic.
            var asked: [(String, [Int32]?)] = []
            if allTopics {
                let committed = try await client.committedOffsets(group: groupId, partitions: nil, requireStable: false)
                asked = committed.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map {
                    ($0.key, $0.value.keys.sorted())
                }
                if asked.isEmpty { throw CLIError("group \(groupId) has no committed offsets to reset") }
            } else if case .plan(let offsets) = target {
                asked = offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value.keys.sorted()) }
            } else {
                var wholeTopics: Set<String> = []
                var someOf: [String: Set<Int32>] = [:]
                for (t, ps) in topicSpecs {
                    if let ps { someOf[t, default: []].formUnion(ps) } else { wholeTopics.insert(t) }
                }
                asked = wholeTopics.union(someOf.keys).sorted().map { t in
                    (t, wholeTopics.contains(t) ? nil : someOf[t]!.sorted())
                }
            }
            var progress = Progress("Planning offsets of topic", total: asked.count)
            defer { progress.finish() }
            var plan: [PlannedOffset] = []
            for (topicName, chosen) in asked {
                let partitions = try await existingPartitions(client, topic: topicName, asked: chosen)
                let current =
                    try await client.committedOffsets(
                        group: groupId, partitions: [topicName: partitions], requireStable: false)[topicName] ?? [:]
                let earliest = try await client.listOffsets(topic: topicName, partitions: partitions, spec: .earliest)
                let latest = try await client.listOffsets(topic: topicName, partitions: partitions, spec: .latest)
                func clamp(_ o: Int64, _ p: Int32) -> Int64 { min(max(o, earliest[p]!), latest[p]!) }
                var atTime: [Int32: Int64] = [:]
                switch target {
                case .time(let ms):
                    atTime = try await client.listOffsets(
                        topic: topicName, partitions: partitions, spec: .timestamp(ms))
                case .beforeNow(let ms):
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    atTime = try await client.listOffsets(
                        topic: topicName, partitions: partitions, spec: .timestamp(max(0, now - ms)))
                default: break
                }
                for p in partitions {
                    let new: Int64
                    switch target {
                    case .earliest: new = earliest[p]!
                    case .latest: new = latest[p]!
                    case .current: new = current[p] ?? latest[p]!
                    case .offset(let o): new = clamp(o, p)
                    case .shiftBy(let n):
                        guard let c = current[p] else {
                            throw CLIError(
                                "cannot shift the offset of partition \(p) of topic \(topicName): group \(groupId) has no committed offset there"
                            )
                        }
                        new = clamp(c &+ n, p)
                    case .time, .beforeNow:
                        let found = atTime[p] ?? -1
                        new = found >= 0 ? found : latest[p]!
                    case .plan(let offsets): new = offsets[topicName]![p]!
                    }
                    plan.append(PlannedOffset(topic: topicName, partition: p, current: current[p], new: new))
                }
                progress.advance()
            }
            if execute {
                var offsets: [String: [Int32: Int64]] = [:]
                for o in plan { offsets[o.topic, default: [:]][o.partition] = o.new }
                let failed = try await client.commitOffsets(group: groupId, offsets: offsets)
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
        if export {
            for o in plan { print("\(o.topic),\(o.partition),\(o.new)") }
            return
        }
        if options.json {
            return JSON.object([
                ("groupId", .string(groupId)), ("executed", .bool(execute)),
                (
                    "partitions",
                    .array(
                        plan.map {
                            .object([
                                ("topic", .string($0.topic)), ("partition", .int($0.partition)),
                                ("currentOffset", .optional($0.current)), ("newOffset", .int($0.new)),
                            ])
                        })
                ),
            ]).print()
        }
        printTable(
            [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]]
                + plan.map { [groupId, $0.topic, "\($0.partition)", $0.current.map(String.init) ?? "-", "\($0.new)"] })
        print("")
        print(
            execute
                ? "Committed the new offsets of group \(groupId)."
                : "Dry run: nothing was committed; add --execute to commit these offsets.")
    }
}

struct GroupDeleteOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-offsets",
        abstract:
            "Delete a group's committed offsets of some partitions (OffsetDelete, as kafka-consumer-groups --delete-offsets).",
        discussion: """
            The coordinator refuses the partitions of a topic the group's members are subscribed to \
            (GROUP_SUBSCRIBED_TO_TOPIC); the command then prints each partition's status and exits 1.

            --json prints {"groupId", "partitions": [{"topic", "partition", "error"}]} (error is null on success).
            """)

    @Argument(help: "The group id.") var groupArgument: String?
    @Option(name: .customLong("group"), help: "The group id, as kafka-consumer-groups takes it.") var groupOption:
        String?
    @Option(help: "A topic, or topic:partition[,partition...] for some of its partitions (repeatable).")
    var topic: [String] = []
    @OptionGroup var options: ClientOptions

    func validate() throws {
        _ = try chosenGroup(groupArgument, groupOption)
        guard !topic.isEmpty else { throw ValidationError("give at least one --topic") }
        for t in topic { _ = try parseTopicPartitions(t) }
    }

    func run() async {
        let groupId = try! chosenGroup(groupArgument, groupOption)
        let specs = try! topic.map(parseTopicPartitions)
        let result = await withClient(options) { client -> OffsetDeletion in
            var partitions: [String: [Int32]] = [:]
            for (t, ps) in specs {
                partitions[t, default: []] += try await existingPartitions(client, topic: t, asked: ps)
            }
            let result = try await client.deleteOffsets(
                group: groupId, partitions: partitions.mapValues { Array(Set($0)) })
            switch result.error {
            case .none, .groupSubscribedToTopic, .topicAuthorizationFailed, .unknownTopicOrPartition: return result
            case .groupIdNotFound: throw CLIError("group \(groupId) does not exist")
            case .nonEmptyGroup:
                throw CLIError(
                    "group \(groupId) is not empty; its offsets can be deleted only for topics it does not subscribe to"
                )
            case .groupAuthorizationFailed: throw CLIError("not authorized to access group \(groupId)")
            case let code: throw CLIError("cannot delete the offsets of group \(groupId): \(code.name)")
            }
        }
        let failed = result.partitions.filter { $0.error != .none }
        if options.json {
            JSON.object([
                ("groupId", .string(groupId)),
                (
                    "partitions",
                    .array(
                        result.partitions.map {
                            .object([
                                ("topic", .string($0.topic)), ("partition", .int($0.partition)),
                                ("error", $0.error == .none ? .null : .string($0.error.name)),
                            ])
                        })
                ),
            ]).print()
        } else {
            if failed.isEmpty {
                print(
                    "Request succeed for deleting offsets with topic \(specs.map(\.topic).joined(separator: ", ")) group \(groupId)"
                )
                print("")
            }
            printTable(
                [["TOPIC", "PARTITION", "STATUS"]]
                    + result.partitions.map {
                        [$0.topic, "\($0.partition)", $0.error == .none ? "Successful" : "Error: \($0.error.message)"]
                    })
        }
        if let f = failed.first {
            fail(
                "\(failed.count) partition offset(s) of group \(groupId) were not deleted (partition \(f.partition) of topic \(f.topic): \(f.error.name))."
            )
        }
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
