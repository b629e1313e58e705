import NIOCore
import RunnelCore

/// The records of `__consumer_offsets`, in Kafka's binary layout (so Kafka's own tools read them):
/// keys `OffsetCommitKey` (version 1: group, topic, partition) and `GroupMetadataKey` (version 2:
/// group); values `OffsetCommitValue` version 3 and `GroupMetadataValue` version 3; a null value is
/// a tombstone. Strings are int16-length UTF-8, bytes int32-length.
public enum OffsetsTopic {
    public static let name = "__consumer_offsets"

    /// Kafka's coordinator partition of a group: `abs(groupId.hashCode) % partitions`, with Java's
    /// String.hashCode over UTF-16 code units.
    public static func partition(for groupId: String, partitions: Int32) -> Int32 {
        var h: Int32 = 0
        for unit in groupId.utf16 { h = h &* 31 &+ Int32(unit) }
        return (h & 0x7fff_ffff) % max(partitions, 1)
    }

    public enum Key: Sendable, Equatable {
        case offset(group: String, TopicPartition)
        case group(String)

        public var groupId: String {
            switch self {
            case .offset(let g, _): return g
            case .group(let g): return g
            }
        }
    }

    public static func encode(_ key: Key) -> ByteBuffer {
        var b = ByteBuffer()
        switch key {
        case .offset(let group, let tp):
            b.writeInteger(Int16(1))
            writeString(&b, group)
            writeString(&b, tp.topic)
            b.writeInteger(tp.partition)
        case .group(let group):
            b.writeInteger(Int16(2))
            writeString(&b, group)
        }
        return b
    }

    public static func decodeKey(_ buffer: ByteBuffer) -> Key? {
        var b = buffer
        guard let version = b.readInteger(as: Int16.self) else { return nil }
        switch version {
        case 0, 1:
            guard let g = readString(&b), let t = readString(&b), let p = b.readInteger(as: Int32.self) else {
                return nil
            }
            return .offset(group: g, TopicPartition(t, p))
        case 2:
            return readString(&b).map { .group($0) }
        default:
            return nil  // a newer record kind (e.g. the new consumer protocol's): not ours
        }
    }

    public static func encode(_ o: CommittedOffset) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int16(3))
        b.writeInteger(o.offset)
        b.writeInteger(o.leaderEpoch)
        writeString(&b, o.metadata)
        b.writeInteger(o.commitTimestampMs)
        return b
    }

    /// OffsetCommitValue versions 0-3.
    public static func decodeOffset(_ buffer: ByteBuffer) -> CommittedOffset? {
        var b = buffer
        guard let version = b.readInteger(as: Int16.self), (0...3).contains(version),
            let offset = b.readInteger(as: Int64.self)
        else { return nil }
        var epoch: Int32 = -1
        if version >= 3 { guard let e = b.readInteger(as: Int32.self) else { return nil }; epoch = e }
        guard let metadata = readString(&b), let commitTs = b.readInteger(as: Int64.self) else { return nil }
        return CommittedOffset(offset: offset, leaderEpoch: epoch, metadata: metadata, commitTimestampMs: commitTs)
    }

    public static func encode(_ g: GroupMetadataValue) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int16(3))
        writeString(&b, g.protocolType)
        b.writeInteger(g.generation)
        writeString(&b, g.protocolName)
        writeString(&b, g.leader)
        b.writeInteger(g.currentStateTimestampMs)
        b.writeInteger(Int32(g.members.count))
        for m in g.members {
            writeString(&b, m.memberId)
            writeString(&b, m.groupInstanceId)
            writeString(&b, m.clientId)
            writeString(&b, m.clientHost)
            b.writeInteger(m.rebalanceTimeoutMs)
            b.writeInteger(m.sessionTimeoutMs)
            writeBytes(&b, m.subscription)
            writeBytes(&b, m.assignment)
        }
        return b
    }

    /// GroupMetadataValue versions 0-3.
    public static func decodeGroup(_ buffer: ByteBuffer) -> GroupMetadataValue? {
        var b = buffer
        guard let version = b.readInteger(as: Int16.self), (0...3).contains(version),
            let type = readString(&b), let generation = b.readInteger(as: Int32.self)
        else { return nil }
        let name = readNullableString(&b)
        let leader = readNullableString(&b)
        var ts: Int64 = -1
        if version >= 2 { guard let t = b.readInteger(as: Int64.self) else { return nil }; ts = t }
        guard let count = b.readInteger(as: Int32.self), count >= 0 else { return nil }
        var members: [GroupMetadataValue.Member] = []
        for _ in 0..<count {
            guard let id = readString(&b) else { return nil }
            let instance = version >= 3 ? readNullableString(&b) : nil
            guard let client = readString(&b), let host = readString(&b) else { return nil }
            var rebalance: Int32 = 0
            if version >= 1 { guard let r = b.readInteger(as: Int32.self) else { return nil }; rebalance = r }
            guard let session = b.readInteger(as: Int32.self), let sub = readBytes(&b), let assignment = readBytes(&b)
            else { return nil }
            members.append(
                .init(
                    memberId: id, groupInstanceId: instance, clientId: client, clientHost: host,
                    rebalanceTimeoutMs: version >= 1 ? rebalance : session,
                    sessionTimeoutMs: session, subscription: sub, assignment: assignment))
        }
        return GroupMetadataValue(
            protocolType: type, generation: generation, protocolName: name, leader: leader,
            currentStateTimestampMs: ts, members: members)
    }

    static func writeString(_ b: inout ByteBuffer, _ s: String?) {
        guard let s else {
            b.writeInteger(Int16(-1))
            return
        }
        b.writeInteger(Int16(s.utf8.count))
        b.writeString(s)
    }

    static func readNullableString(_ b: inout ByteBuffer) -> String? {
        guard let n = b.readInteger(as: Int16.self), n >= 0 else { return nil }
        return b.readString(length: Int(n))
    }

    static func readString(_ b: inout ByteBuffer) -> String? {
        guard let n = b.readInteger(as: Int16.self) else { return nil }
        if n < 0 { return "" }
        return b.readString(length: Int(n))
    }

    static func writeBytes(_ b: inout ByteBuffer, _ bytes: ByteBuffer) {
        b.writeInteger(Int32(bytes.readableBytes))
        b.writeImmutableBuffer(bytes)
    }

    static func readBytes(_ b: inout ByteBuffer) -> ByteBuffer? {
        guard let n = b.readInteger(as: Int32.self) else { return nil }
        if n < 0 { return ByteBuffer() }
        return b.readSlice(length: Int(n))
    }
}

/// One decoded record of `__consumer_offsets` (a nil value is a tombstone).
public enum OffsetsRecord: Sendable, Equatable {
    case offset(group: String, TopicPartition, CommittedOffset?)
    case group(String, GroupMetadataValue?)
}

extension OffsetsTopic {
    /// Decodes a record; nil for keys of other kinds (e.g. the new consumer protocol's).
    public static func decodeRecord(key: ByteBuffer, value: ByteBuffer?) -> OffsetsRecord? {
        switch decodeKey(key) {
        case .offset(let group, let tp): return .offset(group: group, tp, value.flatMap(decodeOffset))
        case .group(let group): return .group(group, value.flatMap(decodeGroup))
        case nil: return nil
        }
    }
}

/// A batch of `__consumer_offsets` as a coordinator taking over replays it, in log order (what
/// Kafka's doLoadGroupsAndOffsets looks at in each batch).
public enum OffsetsBatch: Sendable, Equatable {
    /// The records of a data batch at log offset `baseOffset`. Those of a transactional batch
    /// (`transactionalProducerId` set) belong to that producer's open transaction: its offset
    /// commits count only once its commit marker follows.
    case records([OffsetsRecord], baseOffset: Int64, transactionalProducerId: Int64?)
    /// A transaction marker (the record of a control batch) ending a producer's transaction.
    case marker(producerId: Int64, committed: Bool)
}

/// A group's membership as written to `__consumer_offsets` (GroupMetadataValue).
public struct GroupMetadataValue: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var rebalanceTimeoutMs: Int32
        public var sessionTimeoutMs: Int32
        public var subscription: ByteBuffer
        public var assignment: ByteBuffer
    }
    public var protocolType: String
    public var generation: Int32
    public var protocolName: String?
    public var leader: String?
    public var currentStateTimestampMs: Int64
    public var members: [Member]
}
