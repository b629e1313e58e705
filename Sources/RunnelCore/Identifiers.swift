/// The id of a node (controller or broker), Kafka's `node.id`.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ value: Int32) { self.rawValue = value }
    public init(integerLiteral value: Int32) { self.rawValue = value }
    /// The "no node" marker Kafka uses on the wire (-1).
    public static let none = NodeID(-1)
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// A Raft epoch or a partition leader epoch: Kafka's word for a term.
public struct Epoch: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ value: Int32) { self.rawValue = value }
    public init(integerLiteral value: Int32) { self.rawValue = value }
    /// The "unknown epoch" marker (-1).
    public static let unknown = Epoch(-1)
    public static func < (lhs: Epoch, rhs: Epoch) -> Bool { lhs.rawValue < rhs.rawValue }
    /// The next epoch.
    public var next: Epoch { Epoch(rawValue + 1) }
    public var description: String { String(rawValue) }
}

/// A position in a log: the offset of a record.
public struct Offset: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible, Strideable
{
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { self.rawValue = value }
    public init(integerLiteral value: Int64) { self.rawValue = value }
    /// The "unknown offset" marker (-1).
    public static let unknown = Offset(-1)
    public static func < (lhs: Offset, rhs: Offset) -> Bool { lhs.rawValue < rhs.rawValue }
    public func distance(to other: Offset) -> Int64 { other.rawValue - rawValue }
    public func advanced(by n: Int64) -> Offset { Offset(rawValue + n) }
    public var description: String { String(rawValue) }
}

/// An offset together with the epoch of the record at (or just before) it; how Raft and
/// replication compare log ends and name snapshots.
public struct OffsetAndEpoch: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var offset: Offset
    public var epoch: Epoch
    public init(offset: Offset, epoch: Epoch) {
        self.offset = offset
        self.epoch = epoch
    }
    /// Orders by epoch first, then offset: the "at least as up to date" relation of Raft.
    public static func < (lhs: OffsetAndEpoch, rhs: OffsetAndEpoch) -> Bool {
        lhs.epoch != rhs.epoch ? lhs.epoch < rhs.epoch : lhs.offset < rhs.offset
    }
    public var description: String { "\(offset)@\(epoch)" }
}

/// A topic and partition index, Kafka's `TopicPartition`.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        lhs.topic != rhs.topic ? lhs.topic < rhs.topic : lhs.partition < rhs.partition
    }
    /// `topic-partition`, the directory name Kafka uses.
    public var description: String { "\(topic)-\(partition)" }
}

/// A broker's epoch: the metadata offset of its registration record, so each incarnation of a
/// broker has a larger one (KIP-903 names the incarnation that fetched by it).
public struct BrokerEpoch: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { self.rawValue = value }
    public init(integerLiteral value: Int64) { self.rawValue = value }
    /// Kafka's "unknown broker epoch" on the wire (-1).
    public static let unknown = BrokerEpoch(-1)
    /// The epoch, or nil for the wire's -1 (or any negative value).
    public static func known(_ wire: Int64) -> BrokerEpoch? { wire >= 0 ? BrokerEpoch(wire) : nil }
    public static func < (lhs: BrokerEpoch, rhs: BrokerEpoch) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}
