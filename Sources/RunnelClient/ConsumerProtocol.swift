import NIOCore
import RunnelWire

/// The embedded "consumer" protocol of classic groups: what a member sends in JoinGroup (its
/// subscription) and what the leader hands out in SyncGroup (each member's assignment). Both are
/// plain (non-flexible) Kafka encodings that start with an int16 version.
public enum ConsumerProtocol {
    /// The protocol type every consumer group uses.
    public static let protocolType = "consumer"

    /// A member's subscription. Versions: v0 topics and user data; v1 adds owned partitions;
    /// v2 the generation; v3 the rack.
    public struct Subscription: Sendable, Equatable {
        public var version: Int16
        public var topics: [String]
        public var userData: ByteBuffer?
        public var ownedPartitions: [TopicPartitions]

        public init(
            version: Int16 = 1, topics: [String], userData: ByteBuffer? = nil, ownedPartitions: [TopicPartitions] = []
        ) {
            self.version = version
            self.topics = topics
            self.userData = userData
            self.ownedPartitions = ownedPartitions
        }
    }

    /// Partitions of one topic, as both structures list them.
    public struct TopicPartitions: Sendable, Equatable, Codable {
        public var topic: String
        public var partitions: [Int32]
        public init(topic: String, partitions: [Int32]) {
            self.topic = topic
            self.partitions = partitions
        }
    }

    /// A member's assignment (every version starts with the same two fields).
    public struct Assignment: Sendable, Equatable {
        public var version: Int16
        public var partitions: [TopicPartitions]
        public var userData: ByteBuffer?

        public init(version: Int16 = 0, partitions: [TopicPartitions], userData: ByteBuffer? = nil) {
            self.version = version
            self.partitions = partitions
            self.userData = userData
        }
    }

    public static func encode(_ s: Subscription) -> ByteBuffer {
        var w = WireWriter(capacity: 64)
        w.writeInt16(s.version)
        w.writeArrayLength(s.topics.count, compact: false)
        for t in s.topics { w.writeString(t, compact: false) }
        w.writeNullableBytes(s.userData, compact: false)
        if s.version >= 1 { writePartitions(&w, s.ownedPartitions) }
        if s.version >= 2 { w.writeInt32(-1) }
        if s.version >= 3 { w.writeNullableString(nil, compact: false) }
        return w.bytes
    }

    /// Decodes any version; fields after the ones this code knows are ignored, as Kafka does.
    public static func decodeSubscription(_ bytes: ByteBuffer) throws -> Subscription {
        var r = WireReader(bytes)
        let version = try r.readInt16()
        guard version >= 0 else { throw WireError.invalidValue("consumer subscription version \(version)") }
        var topics: [String] = []
        for _ in 0..<(try r.readArrayLength(compact: false) ?? 0) { topics.append(try r.readString(compact: false)) }
        let userData = r.remaining > 0 ? try r.readNullableBytes(compact: false) : nil
        var owned: [TopicPartitions] = []
        if version >= 1 && r.remaining > 0 { owned = try readPartitions(&r) }
        return Subscription(version: version, topics: topics, userData: userData, ownedPartitions: owned)
    }

    public static func encode(_ a: Assignment) -> ByteBuffer {
        var w = WireWriter(capacity: 64)
        w.writeInt16(a.version)
        writePartitions(&w, a.partitions)
        w.writeNullableBytes(a.userData, compact: false)
        return w.bytes
    }

    /// Decodes any version; an empty buffer (a member with nothing assigned yet) is no partitions.
    public static func decodeAssignment(_ bytes: ByteBuffer) throws -> Assignment {
        if bytes.readableBytes == 0 { return Assignment(partitions: []) }
        var r = WireReader(bytes)
        let version = try r.readInt16()
        guard version >= 0 else { throw WireError.invalidValue("consumer assignment version \(version)") }
        let partitions = try readPartitions(&r)
        let userData = r.remaining > 0 ? try r.readNullableBytes(compact: false) : nil
        return Assignment(version: version, partitions: partitions, userData: userData)
    }

    private static func writePartitions(_ w: inout WireWriter, _ list: [TopicPartitions]) {
        w.writeArrayLength(list.count, compact: false)
        for tp in list {
            w.writeString(tp.topic, compact: false)
            w.writeArrayLength(tp.partitions.count, compact: false)
            for p in tp.partitions { w.writeInt32(p) }
        }
    }

    private static func readPartitions(_ r: inout WireReader) throws -> [TopicPartitions] {
        var out: [TopicPartitions] = []
        for _ in 0..<(try r.readArrayLength(compact: false) ?? 0) {
            let topic = try r.readString(compact: false)
            var partitions: [Int32] = []
            let count = try r.readArrayLength(compact: false) ?? 0
            guard count <= r.remaining / 4 else { throw WireError.lengthTooLarge("assigned partitions") }
            for _ in 0..<count { partitions.append(try r.readInt32()) }
            out.append(TopicPartitions(topic: topic, partitions: partitions))
        }
        return out
    }
}

/// Kafka's range assignor (`RangeAssignor`): per topic, the members subscribed to it in order
/// (group instance id first when static, then member id) each take a contiguous range of
/// partitions; the first `partitions % members` take one extra.
public enum RangeAssignor {
    public static let name = "range"

    /// One member as the assignor sees it.
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var topics: [String]
        public init(memberId: String, groupInstanceId: String? = nil, topics: [String]) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.topics = topics
        }
    }

    /// Member id to its partitions by topic (sorted). Topics missing from `partitionCounts` are
    /// skipped (they do not exist); every member gets an entry, possibly empty.
    public static func assign(
        members: [Member], partitionCounts: [String: Int32]
    ) -> [String: [ConsumerProtocol.TopicPartitions]] {
        var out: [String: [ConsumerProtocol.TopicPartitions]] = [:]
        for m in members { out[m.memberId] = [] }
        let topics = Set(members.flatMap(\.topics)).sorted()
        for topic in topics {
            guard let count = partitionCounts[topic], count > 0 else { continue }
            let subscribed = members.filter { $0.topics.contains(topic) }.sorted(by: order)
            let perMember = Int(count) / subscribed.count
            let extra = Int(count) % subscribed.count
            for (i, m) in subscribed.enumerated() {
                let start = perMember * i + min(i, extra)
                let length = perMember + (i < extra ? 1 : 0)
                guard length > 0 else { continue }
                out[m.memberId]!.append(.init(topic: topic, partitions: (start..<(start + length)).map { Int32($0) }))
            }
        }
        return out
    }

    /// Kafka's MemberInfo order: static members (by instance id) before dynamic ones, then member id.
    static func order(_ a: Member, _ b: Member) -> Bool {
        switch (a.groupInstanceId, b.groupInstanceId) {
        case let (x?, y?) where x != y: return x < y
        case (.some, nil): return true
        case (nil, .some): return false
        default: return a.memberId < b.memberId
        }
    }
}
