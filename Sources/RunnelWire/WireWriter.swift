import NIOCore
import RunnelCore

/// Writes Kafka protocol primitives into a `ByteBuffer`. A `Records` value that points at file
/// regions splits the output into parts, so a Fetch response can be sent with `sendfile(2)`.
public struct WireWriter {
    /// The part being written now.
    public var buffer: ByteBuffer
    /// Finished parts that precede `buffer` (only when file regions were written).
    public private(set) var parts: [IOData] = []

    public init(buffer: ByteBuffer) { self.buffer = buffer }

    public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), capacity: Int = 256) {
        self.buffer = allocator.buffer(capacity: capacity)
    }

    /// Bytes written so far, over all parts.
    public var byteCount: Int {
        var total = buffer.readableBytes
        for part in parts { total += part.readableBytes }
        return total
    }

    /// All output as IO parts, in order.
    public func finish() -> [IOData] {
        parts.isEmpty ? [.byteBuffer(buffer)] : parts + [.byteBuffer(buffer)]
    }

    /// All output as one buffer; precondition: no file regions were written.
    public var bytes: ByteBuffer {
        precondition(parts.isEmpty, "output holds file regions; use finish()")
        return buffer
    }

    @inline(__always) public mutating func writeInt8(_ v: Int8) { buffer.writeInteger(v) }
    @inline(__always) public mutating func writeInt16(_ v: Int16) { buffer.writeInteger(v) }
    @inline(__always) public mutating func writeUInt16(_ v: UInt16) { buffer.writeInteger(v) }
    @inline(__always) public mutating func writeInt32(_ v: Int32) { buffer.writeInteger(v) }
    @inline(__always) public mutating func writeUInt32(_ v: UInt32) { buffer.writeInteger(v) }
    @inline(__always) public mutating func writeInt64(_ v: Int64) { buffer.writeInteger(v) }
    public mutating func writeFloat64(_ v: Double) { buffer.writeInteger(Int64(bitPattern: v.bitPattern)) }
    public mutating func writeBool(_ v: Bool) { buffer.writeInteger(Int8(v ? 1 : 0)) }
    public mutating func writeUUID(_ v: KafkaUUID) {
        buffer.writeInteger(v.high)
        buffer.writeInteger(v.low)
    }

    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
    }

    public mutating func writeUnsignedVarlong(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
    }

    public mutating func writeVarint(_ v: Int32) {
        writeUnsignedVarint(UInt32(bitPattern: (v << 1) ^ (v >> 31)))
    }

    public mutating func writeVarlong(_ v: Int64) {
        writeUnsignedVarlong(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    @inline(__always)
    mutating func writeLength(_ n: Int?, compact: Bool, wide: Bool) {
        if compact {
            writeUnsignedVarint(UInt32(truncatingIfNeeded: (n ?? -1) + 1))
        } else if wide {
            writeInt32(Int32(truncatingIfNeeded: n ?? -1))
        } else {
            writeInt16(Int16(truncatingIfNeeded: n ?? -1))
        }
    }

    public mutating func writeString(_ s: String, compact: Bool) {
        writeLength(s.utf8.count, compact: compact, wide: false)
        buffer.writeString(s)
    }

    public mutating func writeNullableString(_ s: String?, compact: Bool) {
        guard let s else { return writeLength(nil, compact: compact, wide: false) }
        writeString(s, compact: compact)
    }

    public mutating func writeBytes(_ b: ByteBuffer, compact: Bool) {
        writeLength(b.readableBytes, compact: compact, wide: true)
        var copy = b
        buffer.writeBuffer(&copy)
    }

    public mutating func writeNullableBytes(_ b: ByteBuffer?, compact: Bool) {
        guard let b else { return writeLength(nil, compact: compact, wide: true) }
        writeBytes(b, compact: compact)
    }

    public mutating func writeRecords(_ r: Records?, compact: Bool) {
        guard let r else { return writeLength(nil, compact: compact, wide: true) }
        writeLength(r.byteCount, compact: compact, wide: true)
        for chunk in r.chunks {
            switch chunk {
            case .bytes(var b):
                buffer.writeBuffer(&b)
            case .region(let region):
                parts.append(.byteBuffer(buffer))
                parts.append(.fileRegion(region))
                buffer = ByteBufferAllocator().buffer(capacity: 256)
            }
        }
    }

    public mutating func writeArrayLength(_ n: Int?, compact: Bool) {
        writeLength(n, compact: compact, wide: true)
    }

    /// Writes a tagged-field section: the fields collected in `tagged` plus the unknown ones,
    /// sorted by tag.
    public mutating func writeTaggedFields(_ tagged: [TaggedField], unknown: [TaggedField]) {
        var all = tagged
        all.append(contentsOf: unknown)
        if all.count > 1 { all.sort { $0.tag < $1.tag } }
        writeUnsignedVarint(UInt32(all.count))
        for field in all {
            writeUnsignedVarint(field.tag)
            writeUnsignedVarint(UInt32(field.data.readableBytes))
            var data = field.data
            buffer.writeBuffer(&data)
        }
    }

    /// Encodes one tagged field's value into its own buffer.
    public static func tagged(_ tag: UInt32, _ body: (inout WireWriter) -> Void) -> TaggedField {
        var sub = WireWriter(capacity: 32)
        body(&sub)
        return TaggedField(tag: tag, data: sub.bytes)
    }
}
