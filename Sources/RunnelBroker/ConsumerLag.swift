import Metrics
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelWire

/// Consumer lag of the groups a broker coordinates, what `kafka-consumer-groups --describe`
/// prints (a partition's end offset for `read_uncommitted` readers, its high watermark, less the
/// group's committed offset), exported as gauges so a dashboard can chart it. Kafka's brokers
/// export no such metric (operators add Burrow or kafka-lag-exporter); a Runnel broker measures
/// it for the groups whose coordinator it is, so every group is measured once in the cluster.
public struct ConsumerLag: Sendable, Equatable {
    public var group: String
    public var topic: String
    /// The sum over the topic's partitions the group committed offsets for.
    public var lag: Int64
    /// The largest lag of a single partition of the topic.
    public var maxPartitionLag: Int64

    /// The lag of each group on each topic, from its committed offsets and the partitions' end
    /// offsets. A partition whose end is unknown (leader unreachable) is left out; a commit past
    /// the end (the log was truncated under it) counts as no lag, as Kafka's tool prints 0.
    public static func measure(
        committed: [String: [TopicPartition: Int64]], ends: [TopicPartition: Int64]
    )
        -> [ConsumerLag]
    {
        var out: [ConsumerLag] = []
        for (group, offsets) in committed.sorted(by: { $0.key < $1.key }) {
            var byTopic: [String: (sum: Int64, max: Int64)] = [:]
            for (tp, offset) in offsets {
                guard let end = ends[tp] else { continue }
                let lag = max(0, end - max(0, offset))
                var entry = byTopic[tp.topic] ?? (0, 0)
                entry.sum += lag
                entry.max = max(entry.max, lag)
                byTopic[tp.topic] = entry
            }
            for (topic, entry) in byTopic.sorted(by: { $0.key < $1.key }) {
                out.append(ConsumerLag(group: group, topic: topic, lag: entry.sum, maxPartitionLag: entry.max))
            }
        }
        return out
    }
}

extension Broker {
    /// The committed offsets of the groups this broker coordinates, by group.
    func committedOffsetsOfCoordinatedGroups() -> [String: [TopicPartition: Int64]] {
        let all = groups.read { coordinator in
            var out: [String: [TopicPartition: Int64]] = [:]
            for (id, group) in coordinator.groups where !group.offsets.isEmpty {
                out[id] = group.offsets.mapValues(\.offset)
            }
            return out
        }
        // Outside the coordinator's lock, which `owns` takes too.
        return all.filter { groups.owns($0.key) }
    }

    /// Measures the lag of the groups this broker coordinates: end offsets of the partitions it
    /// leads read here, the others asked of their leaders with ListOffsets over `peers`.
    public func measureConsumerLag(peers: BrokerPeers, timeoutMs: Int64) -> EventLoopFuture<[ConsumerLag]> {
        let eventLoop = peers.eventLoop
        let committed = committedOffsetsOfCoordinatedGroups()
        guard !committed.isEmpty else { return eventLoop.makeSucceededFuture([]) }
        let image = self.image
        var ends: [TopicPartition: Int64] = [:]
        var byLeader: [Int32: [TopicPartition]] = [:]
        for tp in Set(committed.values.flatMap(\.keys)) {
            if let local = partition(tp), local.isLeader {
                ends[tp] = local.highWatermark
            } else if let leader = image.partition(tp)?.leader, leader >= 0, leader != settings.nodeId {
                byLeader[leader, default: []].append(tp)
            }
        }
        let asked = byLeader.sorted(by: { $0.key < $1.key }).map {
            leader, partitions -> EventLoopFuture<[TopicPartition: Int64]> in
            var request = ListOffsetsRequest()
            request.replicaId = -1
            for (topic, tps) in Dictionary(grouping: partitions, by: \.topic).sorted(by: { $0.key < $1.key }) {
                request.topics.append(
                    .init(
                        name: topic,
                        partitions: tps.map {
                            .init(partitionIndex: $0.partition, currentLeaderEpoch: -1, timestamp: OffsetSpec.latest)
                        }))
            }
            return peers.send(request, version: 1, to: leader, timeoutMs: timeoutMs).map { response in
                var found: [TopicPartition: Int64] = [:]
                for t in response.topics {
                    for p in t.partitions where p.errorCode == ErrorCode.none.rawValue {
                        found[TopicPartition(t.name, p.partitionIndex)] = p.offset
                    }
                }
                return found
            }.recover { _ in [TopicPartition: Int64]() }
        }
        let local = ends
        return EventLoopFuture.whenAllSucceed(asked, on: eventLoop).map { answers in
            let all = answers.reduce(into: local) { all, part in all.merge(part) { $1 } }
            return ConsumerLag.measure(committed: committed, ends: all)
        }
    }
}

/// The consumer-lag gauges: `runnel_consumer_group_lag{group,topic}` (the sum over the topic's
/// partitions) and `runnel_consumer_group_max_lag{group,topic}` (its worst partition), the series
/// of a group no longer measured here removed rather than kept at their last values.
public enum ConsumerLagGauges {
    private static let published = NIOLockedValueBox<Set<[String]>>([])

    static func gauges(group: String, topic: String) -> (sum: Gauge, max: Gauge) {
        let dimensions = [("group", group), ("topic", topic)]
        return (
            Gauge(label: "runnel_consumer_group_lag", dimensions: dimensions),
            Gauge(label: "runnel_consumer_group_max_lag", dimensions: dimensions)
        )
    }

    public static func publish(_ lags: [ConsumerLag]) {
        var now = Set<[String]>()
        for lag in lags {
            now.insert([lag.group, lag.topic])
            let g = gauges(group: lag.group, topic: lag.topic)
            g.sum.record(lag.lag)
            g.max.record(lag.maxPartitionLag)
        }
        let gone = published.withLockedValue { previous in
            defer { previous = now }
            return previous.subtracting(now)
        }
        for key in gone {
            let g = gauges(group: key[0], topic: key[1])
            g.sum.destroy()
            g.max.destroy()
        }
    }
}
