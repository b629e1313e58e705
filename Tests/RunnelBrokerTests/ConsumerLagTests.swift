// The consumer-lag gauges' arithmetic: per group and topic, the sum and the worst partition of
// the end offsets less the committed offsets.
import RunnelCore
import Testing

@testable import RunnelBroker

@Suite("Consumer lag")
struct ConsumerLagTests {
    @Test("sum and worst partition per group and topic; unknown ends left out; no negative lag")
    func measure() {
        let a0 = TopicPartition("a", 0), a1 = TopicPartition("a", 1), b0 = TopicPartition("b", 0)
        let committed: [String: [TopicPartition: Int64]] = [
            "g1": [a0: 10, a1: 20, b0: 7],
            "g2": [a0: 60, b0: -1],
        ]
        let ends: [TopicPartition: Int64] = [a0: 50, a1: 25, b0: 9]
        let lags = ConsumerLag.measure(committed: committed, ends: ends)
        #expect(
            lags == [
                ConsumerLag(group: "g1", topic: "a", lag: 45, maxPartitionLag: 40),
                ConsumerLag(group: "g1", topic: "b", lag: 2, maxPartitionLag: 2),
                // A commit past the end (the log truncated under it) is no lag; -1 (none) reads from 0.
                ConsumerLag(group: "g2", topic: "a", lag: 0, maxPartitionLag: 0),
                ConsumerLag(group: "g2", topic: "b", lag: 9, maxPartitionLag: 9),
            ])
        #expect(
            ConsumerLag.measure(committed: committed, ends: [a0: 50]).map(\.topic) == ["a", "a"],
            "a partition whose leader did not answer is left out, and so is a topic with none known")
    }
}
