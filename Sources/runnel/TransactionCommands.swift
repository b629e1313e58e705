import ArgumentParser
import Foundation
import RunnelClient
import RunnelCore

// `runnel transactions` (as kafka-transactions, KIP-664): list and describe transactional ids,
// describe the producers of a partition, find hanging transactions and abort them. The tables
// have kafka-transactions' columns, under its names.

struct Transactions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List and describe transactions and the producers of a partition; find hanging transactions and abort them (as kafka-transactions does).",
        subcommands: [
            TransactionsList.self, TransactionsDescribe.self, TransactionsDescribeProducers.self,
            TransactionsAbort.self, TransactionsFindHanging.self,
        ])
}

/// The epoch-milliseconds clock the durations are measured against.
private func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

struct TransactionsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Every transactional id the brokers coordinate (ListTransactions on each broker).",
        discussion: """
            Ids the principal may not DESCRIBE are left out by the brokers.

            --json prints [{"transactionalId", "coordinatorId", "producerId", "state"}], sorted by transactional id.
            """)

    @Option(
        name: .customLong("state"),
        help:
            "Only ids in this state: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort or PrepareEpochFence (repeatable)."
    )
    var states: [String] = []
    @Option(name: .customLong("producer-id"), help: "Only ids of this producer id (repeatable).")
    var producerIds: [Int64] = []
    @Option(
        name: .customLong("duration-filter"),
        help: "Only transactions running longer than this many milliseconds (ListTransactions v1, KIP-994).")
    var durationFilterMs: Int64?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let durationFilterMs, durationFilterMs < 0 { throw ValidationError("--duration-filter must be 0 or more") }
    }

    func run() async {
        let (states, producerIds, duration) = (self.states, self.producerIds, durationFilterMs ?? -1)
        let listed = await withClient(options) { client in
            try await client.listTransactions(states: states, producerIds: producerIds, durationMs: duration)
        }
        if options.json {
            return JSON.array(
                listed.map {
                    .object([
                        ("transactionalId", .string($0.transactionalId)), ("coordinatorId", .int($0.coordinatorId)),
                        ("producerId", .int($0.producerId)), ("state", .string($0.state)),
                    ])
                }
            ).print()
        }
        printTable(
            [["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]]
                + listed.map { [$0.transactionalId, "\($0.coordinatorId)", "\($0.producerId)", $0.state] })
    }
}

struct TransactionsDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "The state of a transactional id at its coordinator (DescribeTransactions).",
        discussion: """
            TopicPartitions are those of the open transaction; while it ends, those whose marker is not \
            written yet. Partitions of topics the principal may not DESCRIBE are left out.

            --json prints {"coordinatorId", "transactionalId", "producerId", "producerEpoch", "state", \
            "timeoutMs", "startTimeMs", "durationMs", "partitions": [{"topic", "partition"}]} \
            (startTimeMs and durationMs are null when no transaction started).
            """)

    @Option(name: .customLong("transactional-id"), help: "The transactional id.") var transactionalId: String
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if transactionalId.isEmpty { throw ValidationError("--transactional-id must not be empty") }
    }

    func run() async {
        let id = transactionalId
        let d = await withClient(options) { client in try await client.describeTransaction(id) }
        let duration = d.startTimeMs.map { nowMs() - $0 }
        if options.json {
            return JSON.object([
                ("coordinatorId", .int(d.coordinatorId)), ("transactionalId", .string(d.transactionalId)),
                ("producerId", .int(d.producerId)), ("producerEpoch", .int(d.producerEpoch)),
                ("state", .string(d.state)), ("timeoutMs", .int(d.timeoutMs)),
                ("startTimeMs", .optional(d.startTimeMs)), ("durationMs", .optional(duration)),
                (
                    "partitions",
                    .array(
                        d.partitions.map { .object([("topic", .string($0.topic)), ("partition", .int($0.partition))]) })
                ),
            ]).print()
        }
        printTable([
            [
                "CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs", "TopicPartitions",
            ],
            [
                "\(d.coordinatorId)", d.transactionalId, "\(d.producerId)", "\(d.producerEpoch)", d.state,
                "\(d.timeoutMs)", d.startTimeMs.map(String.init) ?? "None", duration.map(String.init) ?? "None",
                d.partitions.map { "\($0.topic)-\($0.partition)" }.joined(separator: ","),
            ],
        ])
    }
}

/// A topic and partition given as --topic and --partition.
struct PartitionOptions: ParsableArguments {
    @Option(help: "The topic.") var topic: String
    @Option(help: "The partition.") var partition: Int32

    func validate() throws {
        if topic.isEmpty { throw ValidationError("--topic must not be empty") }
        if partition < 0 { throw ValidationError("--partition must be 0 or more") }
    }
}

struct TransactionsDescribeProducers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe-producers",
        abstract: "The producers with state on a partition (DescribeProducers), at its leader or at one replica.",
        discussion: """
            --json prints [{"producerId", "producerEpoch", "coordinatorEpoch", "lastSequence", "lastTimestamp", \
            "currentTransactionStartOffset"}] (coordinatorEpoch is null before any marker, \
            currentTransactionStartOffset null when no transaction is open).
            """)

    @OptionGroup var partition: PartitionOptions
    @Option(name: .customLong("broker-id"), help: "Ask the replica on this broker instead of the leader.")
    var brokerId: Int32?
    @OptionGroup var options: ClientOptions

    func run() async {
        let (topic, index, brokerId) = (partition.topic, partition.partition, self.brokerId)
        let producers = await withClient(options) { client in
            try await client.describeProducers(topic: topic, partition: index, brokerId: brokerId)
        }
        if options.json {
            return JSON.array(
                producers.map {
                    .object([
                        ("producerId", .int($0.producerId)), ("producerEpoch", .int($0.producerEpoch)),
                        ("coordinatorEpoch", .optional($0.coordinatorEpoch)), ("lastSequence", .int($0.lastSequence)),
                        ("lastTimestamp", .int($0.lastTimestamp)),
                        ("currentTransactionStartOffset", .optional($0.currentTransactionStartOffset)),
                    ])
                }
            ).print()
        }
        printTable(
            [
                [
                    "ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                    "CurrentTransactionStartOffset",
                ]
            ]
                + producers.map {
                    [
                        "\($0.producerId)", "\($0.producerEpoch)", "\($0.coordinatorEpoch ?? -1)", "\($0.lastSequence)",
                        "\($0.lastTimestamp)", $0.currentTransactionStartOffset.map(String.init) ?? "None",
                    ]
                })
    }
}

struct TransactionsAbort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Abort a hanging transaction on one partition (WriteTxnMarkers to its leader; needs ClusterAction).",
        discussion: """
            With --start-offset, the producer whose open transaction starts there is found with \
            DescribeProducers, and its epoch and coordinator epoch are used (0 when no marker was ever \
            written for it). Without it, give --producer-id, --producer-epoch and --coordinator-epoch. \
            The abort marker closes the transaction on this partition only; it does not tell the \
            transaction coordinator, so use it for transactions the coordinator no longer tracks \
            (see find-hanging).

            --json prints {"topic", "partition", "producerId", "producerEpoch", "coordinatorEpoch", "startOffset"} \
            (startOffset is null without --start-offset).
            """)

    @OptionGroup var partition: PartitionOptions
    @Option(name: .customLong("start-offset"), help: "The first offset of the transaction to abort.")
    var startOffset: Int64?
    @Option(name: .customLong("producer-id"), help: "The producer id (without --start-offset).") var producerId: Int64?
    @Option(name: .customLong("producer-epoch"), help: "The producer epoch (without --start-offset).")
    var producerEpoch: Int16?
    @Option(name: .customLong("coordinator-epoch"), help: "The coordinator epoch (without --start-offset).")
    var coordinatorEpoch: Int32?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        let named = [producerId != nil, producerEpoch != nil, coordinatorEpoch != nil]
        if startOffset != nil {
            if named.contains(true) {
                throw ValidationError(
                    "give either --start-offset or --producer-id, --producer-epoch and --coordinator-epoch, not both")
            }
            if startOffset! < 0 { throw ValidationError("--start-offset must be 0 or more") }
        } else if named.contains(false) {
            throw ValidationError(
                "name the transaction to abort with --start-offset, or with --producer-id, --producer-epoch and --coordinator-epoch"
            )
        }
    }

    func run() async {
        let (topic, index, startOffset) = (partition.topic, partition.partition, self.startOffset)
        let given = producerId.map { ($0, self.producerEpoch!, self.coordinatorEpoch!) }
        let (id, epoch, coordinatorEpoch) = await withClient(options) { client -> (Int64, Int16, Int32) in
            var target = given
            if let startOffset {
                let producers = try await client.describeProducers(topic: topic, partition: index)
                guard let p = producers.first(where: { $0.currentTransactionStartOffset == startOffset }) else {
                    throw CLIError(
                        "no open transaction starts at offset \(startOffset) on partition \(index) of topic \(topic) (see runnel transactions describe-producers)"
                    )
                }
                // No marker yet (-1): 0 is at most any coordinator epoch, as kafka-transactions uses.
                target = (p.producerId, Int16(truncatingIfNeeded: p.producerEpoch), p.coordinatorEpoch ?? 0)
            }
            let (id, epoch, coordinatorEpoch) = target!
            try await client.abortTransaction(
                topic: topic, partition: index, producerId: id, producerEpoch: epoch,
                coordinatorEpoch: max(coordinatorEpoch, 0))
            return (id, epoch, max(coordinatorEpoch, 0))
        }
        if options.json {
            return JSON.object([
                ("topic", .string(topic)), ("partition", .int(index)), ("producerId", .int(id)),
                ("producerEpoch", .int(epoch)), ("coordinatorEpoch", .int(coordinatorEpoch)),
                ("startOffset", .optional(startOffset)),
            ]).print()
        }
        print(
            "Aborted the transaction of producer \(id) (epoch \(epoch)\(startOffset.map { ", starting at offset \($0)" } ?? "")) on partition \(index) of topic \(topic)."
        )
    }
}

struct TransactionsFindHanging: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find-hanging",
        abstract:
            "Find open transactions that no transaction coordinator will end (as kafka-transactions find-hanging).",
        discussion: """
            Looks at the partitions of --topic (or --topic and --partition), or at every partition with \
            a replica on --broker-id (asking that replica). A transaction open there for longer than \
            --max-transaction-timeout is hanging when no coordinator lists its producer id, or when \
            the coordinator's transaction does not include that partition.

            --json prints [{"topic", "partition", "producerId", "producerEpoch", "coordinatorEpoch", \
            "startOffset", "lastTimestamp", "durationMinutes"}].
            """)

    @Option(name: .customLong("broker-id"), help: "Search the partitions with a replica on this broker.")
    var brokerId: Int32?
    @Option(help: "Search this topic only.") var topic: String?
    @Option(help: "Search this partition of --topic only.") var partition: Int32?
    @Option(
        name: .customLong("max-transaction-timeout"),
        help: "The largest transaction timeout, in minutes: transactions open for longer are checked.")
    var maxTransactionTimeoutMinutes: Int64 = 15
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if topic == nil && brokerId == nil {
            throw ValidationError("find-hanging needs --topic or --broker-id to limit the search")
        }
        if partition != nil && topic == nil { throw ValidationError("--partition needs --topic") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
        if maxTransactionTimeoutMinutes < 0 { throw ValidationError("--max-transaction-timeout must be 0 or more") }
    }

    struct Hanging: Sendable {
        var partition: TopicPartition
        var producer: ProducerStateInfo
    }

    func run() async {
        let (brokerId, topic, partition) = (self.brokerId, self.topic, self.partition)
        let maxTimeoutMs = maxTransactionTimeoutMinutes * 60_000
        let now = nowMs()
        let hanging = await withClient(options) { client -> [Hanging] in
            // The partitions to search.
            var partitions: [TopicPartition] = []
            let topics: [TopicInfo]
            if let topic {
                topics = [try await client.topic(topic)]
            } else {
                // As kafka-transactions lists topics: internal ones left out.
                topics = try await client.listTopics().filter { !$0.isInternal }
            }
            for t in topics {
                for p in t.partitions where partition == nil || p.partition == partition {
                    if let brokerId, !p.replicas.contains(brokerId) { continue }
                    partitions.append(TopicPartition(t.name, p.partition))
                }
            }
            if let partition, let t = topics.first, partition >= t.partitionCount {
                throw CLIError("partition \(partition) does not exist (topic \(t.name) has \(t.partitionCount))")
            }
            // Transactions open there for longer than any transaction may last.
            var candidates: [Hanging] = []
            for tp in partitions.sorted() {
                for p in try await client.describeProducers(
                    topic: tp.topic, partition: tp.partition, brokerId: brokerId)
                where p.currentTransactionStartOffset != nil && now - p.lastTimestamp > maxTimeoutMs {
                    candidates.append(Hanging(partition: tp, producer: p))
                }
            }
            if candidates.isEmpty { return [] }
            // Which of them a coordinator still tracks, with that partition in the transaction.
            let producerIds = Set(candidates.map(\.producer.producerId))
            var transactionalIds: [Int64: String] = [:]
            for listed in try await client.listTransactions(producerIds: producerIds.sorted())
            where producerIds.contains(listed.producerId) {
                transactionalIds[listed.producerId] = listed.transactionalId
            }
            var descriptions: [String: TransactionInfo] = [:]
            for id in Set(transactionalIds.values).sorted() {
                descriptions[id] = try await client.describeTransactionIfKnown(id)
            }
            return candidates.filter { c in
                guard let id = transactionalIds[c.producer.producerId], let d = descriptions[id] else { return true }
                return !d.partitions.contains(c.partition)
            }
        }
        if options.json {
            return JSON.array(
                hanging.map { h in
                    .object([
                        ("topic", .string(h.partition.topic)), ("partition", .int(h.partition.partition)),
                        ("producerId", .int(h.producer.producerId)), ("producerEpoch", .int(h.producer.producerEpoch)),
                        ("coordinatorEpoch", .int(h.producer.coordinatorEpoch ?? -1)),
                        ("startOffset", .int(h.producer.currentTransactionStartOffset ?? -1)),
                        ("lastTimestamp", .int(h.producer.lastTimestamp)),
                        ("durationMinutes", .int((now - h.producer.lastTimestamp) / 60_000)),
                    ])
                }
            ).print()
        }
        printTable(
            [
                [
                    "Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                    "LastTimestamp", "Duration(min)",
                ]
            ]
                + hanging.map { h in
                    [
                        h.partition.topic, "\(h.partition.partition)", "\(h.producer.producerId)",
                        "\(h.producer.producerEpoch)", "\(h.producer.coordinatorEpoch ?? -1)",
                        "\(h.producer.currentTransactionStartOffset ?? -1)", "\(h.producer.lastTimestamp)",
                        "\((now - h.producer.lastTimestamp) / 60_000)",
                    ]
                })
    }
}
