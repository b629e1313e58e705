import NIOCore
import RunnelCore
import RunnelWire

/// The records of `__transaction_state` in Kafka's binary layout, so Kafka's own tools read them.
///
/// Key (`TransactionLogKey`, version 0): int16 0, then the transactional id as an int16-length
/// string. Value (`TransactionLogValue`): int16 version, then
/// - version 0: producer id int64, producer epoch int16, transaction timeout int32, status int8,
///   partitions (nullable int32-length array of { topic int16-length string, int32-length array of
///   int32 partition ids }), last update time int64, start time int64;
/// - version 1 (flexible): the same fields with compact strings and arrays (unsigned varint
///   length + 1, 0 for null) and a tagged-field section after each partition entry and after
///   the value, which carries tag 0 previous producer id (int64, default -1), tag 1 next producer
///   id (int64, default -1) and tag 2 client transaction version (int16, default 0). A tag is
///   written only when it differs from its default; unknown tags are skipped when read.
///
/// The partitions of an Empty transaction are written as null. A null value is a tombstone
/// (the id expired).
public enum TransactionLog {
    public static let topicName = "__transaction_state"

    /// Kafka's coordinator partition of a transactional id: `Utils.abs(id.hashCode) % partitions`,
    /// with Java's String.hashCode over UTF-16 code units and `abs(Int.min) = 0`.
    public static func partition(for transactionalId: String, partitions: Int32) -> Int32 {
        var h: Int32 = 0
        for unit in transactionalId.utf16 { h = h &* 31 &+ Int32(unit) }
        let positive = h == Int32.min ? 0 : abs(h)
        return positive % max(partitions, 1)
    }

    /// The key of a transactional id's record.
    public static func encodeKey(_ transactionalId: String) -> ByteBuffer {
        var w = WireWriter(capacity: 4 + transactionalId.utf8.count)
        w.writeInt16(0)
        w.writeString(transactionalId, compact: false)
        return w.bytes
    }

    /// The transactional id of a key; nil for a key of another version (not ours).
    public static func decodeKey(_ buffer: ByteBuffer) -> String? {
        var r = WireReader(buffer)
        guard let version = try? r.readInt16(), version == 0 else { return nil }
        return try? r.readString(compact: false)
    }

    /// The value of `metadata`, in value version `version` (0 or 1).
    public static func encodeValue(_ metadata: TransactionMetadata, version: Int16) -> ByteBuffer {
        precondition(version == 0 || version == 1, "TransactionLogValue has versions 0 and 1, not \(version)")
        precondition(
            metadata.state != .empty || metadata.partitions.isEmpty,
            "an Empty transaction has no partitions: \(metadata)")
        let flexible = version >= 1
        var w = WireWriter(capacity: 64)
        w.writeInt16(version)
        w.writeInt64(metadata.producerId)
        w.writeInt16(metadata.producerEpoch)
        w.writeInt32(metadata.timeoutMs)
        w.writeInt8(metadata.state.rawValue)
        if metadata.state == .empty {
            w.writeArrayLength(nil, compact: flexible)
        } else {
            let byTopic = Dictionary(grouping: metadata.partitions, by: \.topic)
            w.writeArrayLength(byTopic.count, compact: flexible)
            for topic in byTopic.keys.sorted() {
                w.writeString(topic, compact: flexible)
                let ids = byTopic[topic]!.map(\.partition).sorted()
                w.writeArrayLength(ids.count, compact: flexible)
                for id in ids { w.writeInt32(id) }
                if flexible { w.writeUnsignedVarint(0) }
            }
        }
        w.writeInt64(metadata.lastUpdateTimestampMs)
        w.writeInt64(metadata.startTimestampMs)
        if flexible {
            var tagged: [TaggedField] = []
            if metadata.previousProducerId != -1 {
                tagged.append(WireWriter.tagged(0) { $0.writeInt64(metadata.previousProducerId) })
            }
            if metadata.nextProducerId != -1 {
                tagged.append(WireWriter.tagged(1) { $0.writeInt64(metadata.nextProducerId) })
            }
            if metadata.clientTransactionVersion != .v0 {
                tagged.append(WireWriter.tagged(2) { $0.writeInt16(metadata.clientTransactionVersion.rawValue) })
            }
            w.writeTaggedFields(tagged, unknown: [])
        }
        return w.bytes
    }

    /// Why a value could not be read.
    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var transactionalId: String
        public var reason: String
        public var description: String {
            "the \(TransactionLog.topicName) record of \(transactionalId) is unreadable: \(reason)"
        }
    }

    /// Reads a value (versions 0 and 1). The last producer epoch is not stored: it reads as -1,
    /// as in Kafka.
    public static func decodeValue(
        _ buffer: ByteBuffer, transactionalId: String
    ) throws(DecodeError) -> TransactionMetadata {
        func fail(_ reason: String) -> DecodeError { DecodeError(transactionalId: transactionalId, reason: reason) }
        var r = WireReader(buffer)
        do {
            let version = try r.readInt16()
            guard version == 0 || version == 1 else { throw fail("unknown value version \(version)") }
            let flexible = version >= 1
            let producerId = try r.readInt64()
            let epoch = try r.readInt16()
            let timeout = try r.readInt32()
            let status = try r.readInt8()
            guard let state = TransactionState(rawValue: status) else {
                throw fail("unknown transaction status \(status)")
            }
            var partitions: Set<TopicPartition> = []
            if let topics = try r.readArrayLength(compact: flexible) {
                for _ in 0..<topics {
                    let topic = try r.readString(compact: flexible)
                    let count = try r.readArrayLength(compact: flexible) ?? 0
                    for _ in 0..<count { partitions.insert(TopicPartition(topic, try r.readInt32())) }
                    if flexible { _ = try r.readTaggedFieldList() }
                }
            }
            let lastUpdate = try r.readInt64()
            let start = try r.readInt64()
            var previous: Int64 = -1
            var next: Int64 = -1
            var clientVersion: Int16 = 0
            if flexible {
                for field in try r.readTaggedFieldList() {
                    var f = WireReader(field.data)
                    switch field.tag {
                    case 0: previous = try f.readInt64()
                    case 1: next = try f.readInt64()
                    case 2: clientVersion = try f.readInt16()
                    default: break
                    }
                }
            }
            return TransactionMetadata(
                transactionalId: transactionalId, producerId: producerId, previousProducerId: previous,
                nextProducerId: next,
                producerEpoch: epoch, lastProducerEpoch: ProducerIds.noEpoch, timeoutMs: timeout, state: state,
                partitions: state == .empty ? [] : partitions, startTimestampMs: start,
                lastUpdateTimestampMs: lastUpdate,
                clientTransactionVersion: TransactionVersion(featureLevel: clientVersion))
        } catch let error as DecodeError {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }

    /// One record of `__transaction_state` as read back: a transactional id's value, or its
    /// tombstone (nil).
    public struct Record: Sendable, Equatable {
        public var transactionalId: String
        public var value: TransactionMetadata?

        public init(transactionalId: String, value: TransactionMetadata?) {
            self.transactionalId = transactionalId
            self.value = value
        }
    }

    /// Decodes a record; nil for a key of another kind. An unreadable value is an error naming
    /// the id (the loader reports it and skips the record).
    public static func decodeRecord(key: ByteBuffer, value: ByteBuffer?) throws(DecodeError) -> Record? {
        guard let id = decodeKey(key) else { return nil }
        guard let value else { return Record(transactionalId: id, value: nil) }
        return Record(transactionalId: id, value: try decodeValue(value, transactionalId: id))
    }
}
