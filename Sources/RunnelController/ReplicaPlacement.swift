import RunnelCore
import RunnelMetadata

/// Chooses replicas for new partitions, as Kafka does: partition i's first replica is broker
/// (i + start) mod n, later replicas follow with a shift that grows every n partitions, so
/// leaders and followers spread evenly. With racks, brokers are interleaved by rack first and
/// each partition's replicas take distinct racks while any remain.
public enum ReplicaPlacement {
    public struct Broker: Sendable, Equatable {
        public var id: Int32
        public var rack: String?
        public init(id: Int32, rack: String?) {
            self.id = id
            self.rack = rack
        }
    }

    public enum Failure: Error, Equatable {
        case notEnoughBrokers(requested: Int, available: Int)
    }

    /// Replicas for partitions `firstPartition ..< firstPartition + count`. `start` picks the
    /// broker (index into the sorted list) that leads the first partition.
    public static func place(
        count: Int, replicationFactor: Int, brokers unsorted: [Broker], start: Int, firstPartition: Int = 0
    ) -> Result<[[Int32]], Failure> {
        guard replicationFactor <= unsorted.count, replicationFactor > 0 else {
            return .failure(.notEnoughBrokers(requested: replicationFactor, available: unsorted.count))
        }
        let hasRacks = unsorted.contains { $0.rack != nil }
        let brokers = hasRacks ? rackAlternated(unsorted) : unsorted.sorted { $0.id < $1.id }
        let n = brokers.count
        var out: [[Int32]] = []
        out.reserveCapacity(count)
        let startIndex = ((start % n) + n) % n
        let shiftBase = n > 1 ? startIndex % (n - 1) : 0
        for p in firstPartition..<(firstPartition + count) {
            let first = (p + startIndex) % n
            let shift = shiftBase + p / n
            var replicas: [Int32] = [brokers[first].id]
            var racksUsed: Set<String> = brokers[first].rack.map { [$0] } ?? []
            var used: Set<Int32> = [brokers[first].id]
            let allRacks = Set(brokers.compactMap(\.rack))
            var j = 0
            while replicas.count < replicationFactor {
                let index = n > 1 ? (first + 1 + (shift + j) % (n - 1)) % n : first
                j += 1
                let candidate = brokers[index]
                if used.contains(candidate.id) {
                    if j > 4 * n {  // fall back: any unused broker
                        if let b = brokers.first(where: { !used.contains($0.id) }) {
                            replicas.append(b.id)
                            used.insert(b.id)
                            if let r = b.rack { racksUsed.insert(r) }
                        }
                    }
                    continue
                }
                if hasRacks, racksUsed.count < allRacks.count, let rack = candidate.rack, racksUsed.contains(rack),
                    j <= 2 * n
                {
                    continue
                }
                replicas.append(candidate.id)
                used.insert(candidate.id)
                if let rack = candidate.rack { racksUsed.insert(rack) }
            }
            out.append(replicas)
        }
        return .success(out)
    }

    /// Brokers ordered rack by rack in turn: r1b1, r2b1, r3b1, r1b2, ...
    static func rackAlternated(_ brokers: [Broker]) -> [Broker] {
        var byRack: [String: [Broker]] = [:]
        for b in brokers { byRack[b.rack ?? "", default: []].append(b) }
        let racks = byRack.keys.sorted()
        var queues = racks.map { byRack[$0]!.sorted { $0.id < $1.id } }
        var out: [Broker] = []
        while out.count < brokers.count {
            for i in queues.indices where !queues[i].isEmpty {
                out.append(queues[i].removeFirst())
            }
        }
        return out
    }

    /// The index (into the sorted broker list) of the broker leading the fewest partitions, so a
    /// new topic's first partition lands where leaders are fewest.
    public static func leastLoadedStart(brokers: [Broker], image: MetadataImage) -> Int {
        let ids = brokers.contains { $0.rack != nil } ? rackAlternated(brokers).map(\.id) : brokers.map(\.id).sorted()
        let leaders = image.leaderCounts
        var best = 0
        for (i, id) in ids.enumerated() where leaders[id, default: 0] < leaders[ids[best], default: 0] {
            best = i
        }
        return best
    }
}
