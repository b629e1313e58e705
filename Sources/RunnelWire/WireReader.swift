import NIOCore
import RunnelCore

/// Reads Kafka protocol primitives from a `ByteBuffer`, throwing `WireError` on malformed input
/// instead of trapping. Slices (bytes, records) share storage with the input: no copies.
public struct WireReader {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public var remaining: Int { buffer.readableBytes }

    @inline(__always)
    public mutating func readInt8() throws -> Int8 {
        guard let v = buffer.readInteger(as: Int8.self) else { throw WireError.truncated("int8") }
        return v
    }
    @inline(__always)
    public mutating func readInt16() throws -> Int16 {
        guard let v = buffer.readInteger(as: Int16.self) else { throw WireError.truncated("int16") }
        return v
    }
    @inline(__always)
    public mutating func readUInt16() throws -> UInt16 {
        guard let v = buffer.readInteger(as: UInt16.self) else { throw WireError.truncated("uint16") }
        return v
    }
    @inline(__always)
    public mutating func readInt32() throws -> Int32 {
        guard let v = buffer.readInteger(as: Int32.self) else { throw WireError.truncated("int32") }
        return v
    }
    @inline(__always)
    public mutating func readUInt32() throws -> UInt32 {
        guard let v = buffer.readInteger(as: UInt32.self) else { throw WireError.truncated("uint32") }
        return v
    }
    @inline(__always)
    public mutating func readInt64() throws -> Int64 {
        guard let v = buffer.readInteger(as: Int64.self) else { throw WireError.truncated("int64") }
        return v
    }
    public mutating func readFloat64() throws -> Double {
        Double(bitPattern: UInt64(bitPattern: try readInt64()))
    }
    public mutating func readBool() throws -> Bool {
        try readInt8() != 0
    }
    public mutating func readUUID() throws -> KafkaUUID {
        let high = UInt64(bitPattern: try readInt64())
        let low = UInt64(bitPattern: try readInt64())
        return KafkaUUID(high: high, low: low)
    }

    /// An unsigned LEB128 varint of at most 32 bits.
    public mutating func readUnsignedVarint() throws -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw WireError.truncated("varint") }
            if shift == 28 && byte & 0xF0 != 0 { throw WireError.invalidValue("varint longer than 32 bits") }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    public mutating func readUnsignedVarlong() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw WireError.truncated("varlong") }
            if shift == 63 && byte & 0xFE != 0 { throw WireError.invalidValue("varlong longer than 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A zig-zag signed varint (record fields).
    public mutating func readVarint() throws -> Int32 {
        let raw = try readUnsignedVarint()
        return Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A zig-zag signed varlong (record fields).
    public mutating func readVarlong() throws -> Int64 {
        let raw = try readUnsignedVarlong()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A length prefix: int16/int32 in classic encoding, unsigned varint minus one in compact.
    /// Returns nil for the null marker (-1).
    @inline(__always)
    mutating func readLength(compact: Bool, wide: Bool, _ context: String) throws -> Int? {
        let n: Int
        if compact {
            n = Int(try readUnsignedVarint()) - 1
        } else if wide {
            n = Int(try readInt32())
        } else {
            n = Int(try readInt16())
        }
        if n == -1 { return nil }
        if n < -1 { throw WireError.negativeLength(context) }
        return n
    }

    public mutating func readString(compact: Bool) throws -> String {
        guard let s = try readNullableString(compact: compact) else { throw WireError.invalidValue("null string") }
        return s
    }

    public mutating func readNullableString(compact: Bool) throws -> String? {
        guard let n = try readLength(compact: compact, wide: false, "string") else { return nil }
        guard n <= buffer.readableBytes else { throw WireError.lengthTooLarge("string") }
        return buffer.readString(length: n)!
    }

    public mutating func readBytes(compact: Bool) throws -> ByteBuffer {
        guard let b = try readNullableBytes(compact: compact) else { throw WireError.invalidValue("null bytes") }
        return b
    }

    public mutating func readNullableBytes(compact: Bool) throws -> ByteBuffer? {
        guard let n = try readLength(compact: compact, wide: true, "bytes") else { return nil }
        guard n <= buffer.readableBytes else { throw WireError.lengthTooLarge("bytes") }
        return buffer.readSlice(length: n)!
    }

    public mutating func readRecords(compact: Bool) throws -> Records? {
        guard let bytes = try readNullableBytes(compact: compact) else { return nil }
        return Records(bytes)
    }

    /// An array length; nil for a null array. Bounded by the bytes left so a hostile length
    /// cannot make us reserve memory.
    public mutating func readArrayLength(compact: Bool) throws -> Int? {
        guard let n = try readLength(compact: compact, wide: true, "array") else { return nil }
        guard n <= buffer.readableBytes else { throw WireError.lengthTooLarge("array") }
        return n
    }

    /// Reads the tagged-field section of a flexible struct as raw fields, in tag order.
    public mutating func readTaggedFieldList() throws -> [TaggedField] {
        let count = try readUnsignedVarint()
        if count == 0 { return [] }
        guard count <= buffer.readableBytes else { throw WireError.lengthTooLarge("tagged fields") }
        var fields: [TaggedField] = []
        fields.reserveCapacity(Int(count))
        var lastTag: Int64 = -1
        for _ in 0..<count {
            let tag = try readUnsignedVarint()
            guard Int64(tag) > lastTag else { throw WireError.invalidValue("tagged fields out of order") }
            lastTag = Int64(tag)
            let size = Int(try readUnsignedVarint())
            guard size <= buffer.readableBytes else { throw WireError.lengthTooLarge("tagged field") }
            fields.append(TaggedField(tag: tag, data: buffer.readSlice(length: size)!))
        }
        return fields
    }

    /// Throws unless every byte was consumed.
    public func expectEnd(_ context: String) throws {
        if buffer.readableBytes != 0 { throw WireError.trailingBytes(context) }
    }
}

/// A tagged field this code does not know, kept as raw bytes so it round-trips.
public struct TaggedField: Hashable, Sendable {
    public var tag: UInt32
    public var data: ByteBuffer
    public init(tag: UInt32, data: ByteBuffer) {
        self.tag = tag
        self.data = data
    }
}
