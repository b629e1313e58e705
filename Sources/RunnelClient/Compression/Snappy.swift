/// Snappy decompression: the raw format (a varint length, then literals and back-references),
/// and the xerial framing the Java client writes (an 8-byte magic, two int32 versions, then
/// big-endian length-prefixed raw blocks). librdkafka reads and writes both.
public enum Snappy {
    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]

    /// Decodes a Kafka snappy payload, framed or raw.
    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count >= 16, Array(input[0..<8]) == xerialMagic else { return try decompressRaw(input[...]) }
        var out: [UInt8] = []
        var i = 16
        while i < input.count {
            guard i + 4 <= input.count else { throw DecompressionError("snappy frame is truncated") }
            let length = Int(input[i]) << 24 | Int(input[i + 1]) << 16 | Int(input[i + 2]) << 8 | Int(input[i + 3])
            i += 4
            guard length >= 0, i + length <= input.count else {
                throw DecompressionError("snappy frame block is truncated")
            }
            out += try decompressRaw(input[i..<(i + length)])
            i += length
            guard out.count <= Gzip.outputBytesMax else {
                throw DecompressionError("payload inflates past \(Gzip.outputBytesMax) bytes")
            }
        }
        return out
    }

    /// Decodes one raw snappy block.
    public static func decompressRaw(_ input: ArraySlice<UInt8>) throws -> [UInt8] {
        var i = input.startIndex
        let end = input.endIndex
        var expected = 0
        var shift = 0
        while true {
            guard i < end, shift <= 28 else { throw DecompressionError("snappy length is malformed") }
            let b = input[i]
            i += 1
            expected |= Int(b & 0x7f) << shift
            if b & 0x80 == 0 { break }
            shift += 7
        }
        guard expected <= Gzip.outputBytesMax else { throw DecompressionError("snappy block claims \(expected) bytes") }
        var out: [UInt8] = []
        out.reserveCapacity(expected)
        func little(_ n: Int) throws -> Int {
            guard i + n <= end else { throw DecompressionError("snappy block is truncated") }
            var v = 0
            for k in 0..<n { v |= Int(input[i + k]) << (8 * k) }
            i += n
            return v
        }
        while i < end {
            let tag = input[i]
            i += 1
            var length: Int
            var offset: Int
            switch tag & 3 {
            case 0:
                length = Int(tag >> 2) + 1
                if length > 60 { length = try little(length - 60) + 1 }
                guard i + length <= end else { throw DecompressionError("snappy literal is truncated") }
                out += input[i..<(i + length)]
                i += length
                continue
            case 1:
                length = Int((tag >> 2) & 7) + 4
                offset = Int(tag >> 5) << 8 | (try little(1))
            case 2:
                length = Int(tag >> 2) + 1
                offset = try little(2)
            default:
                length = Int(tag >> 2) + 1
                offset = try little(4)
            }
            guard offset > 0, offset <= out.count else {
                throw DecompressionError("snappy copy offset \(offset) is out of range")
            }
            guard out.count + length <= expected else { throw DecompressionError("snappy block overruns its length") }
            let from = out.count - offset
            for k in 0..<length { out.append(out[from + k]) }
        }
        guard out.count == expected else {
            throw DecompressionError("snappy block is \(out.count) bytes, not \(expected)")
        }
        return out
    }
}
