/// A DEFLATE (RFC 1951) decoder and the gzip (RFC 1952) wrapper Kafka's gzip codec uses, in plain
/// Swift so the client needs no system zlib. Huffman codes decode through one lookup table per
/// code indexed by the next `maxLength` input bits (LSB first, as DEFLATE packs them).
public enum Inflate {
    /// The most bytes one payload may inflate to: a bound against decompression bombs, far above
    /// any record batch a broker accepts (`message.max.bytes` is about 1 MB by default).
    public static let outputBytesMax = 256 << 20

    /// Decodes a gzip stream (one member or several concatenated, as gzip allows).
    public static func gunzip(_ input: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        var position = 0
        repeat {
            position = try skipGzipHeader(input, at: position)
            var reader = BitReader(input, at: position)
            try inflate(&reader, into: &output)
            position = reader.alignedPosition
            // The trailer: CRC-32 and size of the member; the batch's CRC32C already covers them.
            guard position + 8 <= input.count else { throw DecompressionError("gzip member is truncated") }
            position += 8
        } while position + 18 <= input.count && input[position] == 0x1f && input[position + 1] == 0x8b
        return output
    }

    /// Decodes a raw DEFLATE stream.
    public static func inflate(_ input: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        var reader = BitReader(input, at: 0)
        try inflate(&reader, into: &output)
        return output
    }

    static func skipGzipHeader(_ b: [UInt8], at start: Int) throws -> Int {
        guard b.count - start >= 18, b[start] == 0x1f, b[start + 1] == 0x8b else { throw DecompressionError("not a gzip stream (bad magic bytes)") }
        guard b[start + 2] == 8 else { throw DecompressionError("gzip method \(b[start + 2]) is not deflate") }
        let flags = b[start + 3]
        var i = start + 10
        func need(_ n: Int) throws { if i + n > b.count { throw DecompressionError("gzip header is truncated") } }
        if flags & 0x04 != 0 {  // FEXTRA
            try need(2)
            let length = Int(b[i]) | Int(b[i + 1]) << 8
            i += 2
            try need(length)
            i += length
        }
        for flag in [UInt8(0x08), 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while true {
                try need(1)
                i += 1
                if b[i - 1] == 0 { break }
            }
        }
        if flags & 0x02 != 0 {  // FHCRC
            try need(2)
            i += 2
        }
        return i
    }

    struct BitReader {
        let bytes: [UInt8]
        var next: Int
        var bits: UInt64 = 0
        var count = 0
        /// Bits taken past the end of the input (read as zeros); any is a truncated stream.
        var overrun = 0

        init(_ bytes: [UInt8], at position: Int) {
            self.bytes = bytes
            self.next = position
        }

        @inline(__always) mutating func refill() {
            while count <= 56 {
                if next < bytes.count {
                    bits |= UInt64(bytes[next]) << UInt64(count)
                    next += 1
                } else {
                    overrun += 8
                }
                count += 8
            }
        }

        @inline(__always) mutating func peek(_ n: Int) -> UInt32 {
            if count < n { refill() }
            return UInt32(truncatingIfNeeded: bits & ((1 << UInt64(n)) - 1))
        }

        @inline(__always) mutating func consume(_ n: Int) throws {
            bits >>= UInt64(n)
            count -= n
            if overrun > count { throw DecompressionError("deflate stream is truncated") }
        }

        @inline(__always) mutating func read(_ n: Int) throws -> Int {
            if n == 0 { return 0 }
            let v = peek(n)
            try consume(n)
            return Int(v)
        }

        /// Drops the bits left in the current byte.
        mutating func alignToByte() throws { try consume(count % 8) }

        /// The input position of the next whole byte (after `alignToByte`).
        var alignedPosition: Int { next - (count - overrun) / 8 }
    }

    /// A canonical Huffman code as a table: entry = symbol << 4 | code length (0: no such code).
    struct Huffman {
        var table: [UInt32]
        var maxLength: Int

        init(lengths: [Int]) throws {
            maxLength = max(1, lengths.max() ?? 1)
            guard maxLength <= 15 else { throw DecompressionError("deflate code length over 15") }
            var lengthCounts = [Int](repeating: 0, count: 16)
            for l in lengths where l > 0 { lengthCounts[l] += 1 }
            // Over-subscribed sets are refused; incomplete ones (one distance code) are allowed.
            var left = 1
            for length in 1...15 {
                left = left * 2 - lengthCounts[length]
                guard left >= 0 else { throw DecompressionError("deflate code is over-subscribed") }
            }
            // RFC 1951 3.2.2: the first code of each length follows the last of the shorter ones.
            var nextCode = [Int](repeating: 0, count: 16)
            var code = 0
            for length in 1...15 {
                code = (code + lengthCounts[length - 1]) << 1
                nextCode[length] = code
            }
            table = [UInt32](repeating: 0, count: 1 << maxLength)
            for (symbol, length) in lengths.enumerated() where length > 0 {
                let c = nextCode[length]
                nextCode[length] += 1
                var reversed = 0
                for bit in 0..<length where c & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
                let entry = UInt32(symbol) << 4 | UInt32(length)
                var i = reversed
                while i < table.count {
                    table[i] = entry
                    i += 1 << length
                }
            }
        }

        @inline(__always) func decode(_ r: inout BitReader) throws -> Int {
            let entry = table[Int(r.peek(maxLength))]
            let length = Int(entry & 15)
            guard length > 0 else { throw DecompressionError("invalid deflate code") }
            try r.consume(length)
            return Int(entry >> 4)
        }
    }

    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                      4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static let fixedLiterals: Huffman = try! Huffman(lengths: (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 })
    static let fixedDistances: Huffman = try! Huffman(lengths: [Int](repeating: 5, count: 30))

    static func inflate(_ r: inout BitReader, into out: inout [UInt8]) throws {
        var final = false
        while !final {
            final = try r.read(1) == 1
            switch try r.read(2) {
            case 0:
                try r.alignToByte()
                let length = try r.read(16)
                let inverse = try r.read(16)
                guard length == ~inverse & 0xffff else { throw DecompressionError("deflate stored block length check failed") }
                for _ in 0..<length { out.append(UInt8(try r.read(8))) }
            case 1:
                try inflateBlock(&r, &out, Self.fixedLiterals, Self.fixedDistances)
            case 2:
                let (literals, distances) = try readDynamicCodes(&r)
                try inflateBlock(&r, &out, literals, distances)
            default:
                throw DecompressionError("deflate block type 3 is reserved")
            }
            guard out.count <= outputBytesMax else { throw DecompressionError("payload inflates past \(outputBytesMax) bytes") }
        }
    }

    static func readDynamicCodes(_ r: inout BitReader) throws -> (Huffman, Huffman) {
        let literalCount = try r.read(5) + 257
        let distanceCount = try r.read(5) + 1
        let codeLengthCount = try r.read(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw DecompressionError("deflate block has too many codes") }
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeLengthCount { codeLengths[codeLengthOrder[i]] = try r.read(3) }
        let codeLengthCode = try Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        lengths.reserveCapacity(literalCount + distanceCount)
        while lengths.count < literalCount + distanceCount {
            let symbol = try codeLengthCode.decode(&r)
            switch symbol {
            case 0...15: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw DecompressionError("deflate repeat with no previous length") }
                lengths += [Int](repeating: previous, count: 3 + (try r.read(2)))
            case 17: lengths += [Int](repeating: 0, count: 3 + (try r.read(3)))
            default: lengths += [Int](repeating: 0, count: 11 + (try r.read(7)))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw DecompressionError("deflate code lengths overrun") }
        guard lengths[256] > 0 else { throw DecompressionError("deflate block has no end-of-block code") }
        return (try Huffman(lengths: Array(lengths[0..<literalCount])), try Huffman(lengths: Array(lengths[literalCount...])))
    }

    static func inflateBlock(_ r: inout BitReader, _ out: inout [UInt8], _ literals: Huffman, _ distances: Huffman) throws {
        while true {
            let symbol = try literals.decode(&r)
            if symbol < 256 {
                out.append(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < lengthBase.count else { throw DecompressionError("invalid deflate length code") }
            let length = lengthBase[lengthIndex] + (try r.read(lengthExtra[lengthIndex]))
            let distanceSymbol = try distances.decode(&r)
            guard distanceSymbol < distanceBase.count else { throw DecompressionError("invalid deflate distance code") }
            let distance = distanceBase[distanceSymbol] + (try r.read(distanceExtra[distanceSymbol]))
            guard distance <= out.count else { throw DecompressionError("deflate distance reaches before the start") }
            guard out.count + length <= outputBytesMax else { throw DecompressionError("payload inflates past \(outputBytesMax) bytes") }
            let from = out.count - distance
            for i in 0..<length { out.append(out[from + i]) }
        }
    }
}

/// A compressed payload that cannot be decoded, one sentence.
public struct DecompressionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
