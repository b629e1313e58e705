/// LZ4 frame decompression (the format Kafka's lz4 codec uses since message format v1):
/// frames of blocks, each compressed (LZ4 block format) or stored. Blocks are decoded into one
/// output, so linked blocks (matches reaching into the previous block) work. The xxHash32
/// checksums are skipped: the batch's CRC32C already covers the payload.
public enum LZ4 {
    static let frameMagic: UInt32 = 0x184d_2204

    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        func u32() throws -> UInt32 {
            guard i + 4 <= input.count else { throw DecompressionError("lz4 frame is truncated") }
            let v =
                UInt32(input[i]) | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2]) << 16 | UInt32(input[i + 3]) << 24
            i += 4
            return v
        }
        repeat {
            let magic = try u32()
            if magic & 0xffff_fff0 == 0x184d_2a50 {  // a skippable frame
                let size = Int(try u32())
                guard i + size <= input.count else { throw DecompressionError("lz4 skippable frame is truncated") }
                i += size
                continue
            }
            guard magic == frameMagic else { throw DecompressionError("not an lz4 frame (bad magic number)") }
            guard i + 2 <= input.count else { throw DecompressionError("lz4 frame header is truncated") }
            let flags = input[i]
            i += 2  // FLG and BD
            guard flags >> 6 == 1 else { throw DecompressionError("lz4 frame version \(flags >> 6) is not supported") }
            let blockChecksum = flags & 0x10 != 0
            let contentSize = flags & 0x08 != 0
            let contentChecksum = flags & 0x04 != 0
            let dictionary = flags & 0x01 != 0
            i += (contentSize ? 8 : 0) + (dictionary ? 4 : 0) + 1  // header checksum byte
            guard i <= input.count else { throw DecompressionError("lz4 frame header is truncated") }
            while true {
                let word = try u32()
                if word == 0 { break }
                let size = Int(word & 0x7fff_ffff)
                guard i + size <= input.count else { throw DecompressionError("lz4 block is truncated") }
                if word & 0x8000_0000 != 0 {
                    out += input[i..<(i + size)]
                } else {
                    try decompressBlock(input[i..<(i + size)], into: &out)
                }
                i += size + (blockChecksum ? 4 : 0)
                guard out.count <= Gzip.outputBytesMax else {
                    throw DecompressionError("payload inflates past \(Gzip.outputBytesMax) bytes")
                }
            }
            i += contentChecksum ? 4 : 0
            guard i <= input.count else { throw DecompressionError("lz4 frame is truncated") }
        } while i < input.count
        return out
    }

    /// Decodes one LZ4 block, appending to `out` (whose earlier bytes matches may reach into).
    public static func decompressBlock(_ input: ArraySlice<UInt8>, into out: inout [UInt8]) throws {
        var i = input.startIndex
        let end = input.endIndex
        func extendedLength(_ base: Int) throws -> Int {
            var length = base
            guard base == 15 else { return length }
            while true {
                guard i < end else { throw DecompressionError("lz4 length is truncated") }
                let b = input[i]
                i += 1
                length += Int(b)
                if b != 255 { return length }
            }
        }
        while i < end {
            let token = input[i]
            i += 1
            let literals = try extendedLength(Int(token >> 4))
            guard i + literals <= end else { throw DecompressionError("lz4 literals are truncated") }
            out += input[i..<(i + literals)]
            i += literals
            if i == end { return }  // the last sequence has literals only
            guard i + 2 <= end else { throw DecompressionError("lz4 match offset is truncated") }
            let offset = Int(input[i]) | Int(input[i + 1]) << 8
            i += 2
            let length = try extendedLength(Int(token & 15)) + 4
            guard offset > 0, offset <= out.count else {
                throw DecompressionError("lz4 match offset \(offset) is out of range")
            }
            guard out.count + length <= Gzip.outputBytesMax else {
                throw DecompressionError("payload inflates past \(Gzip.outputBytesMax) bytes")
            }
            let from = out.count - offset
            for k in 0..<length { out.append(out[from + k]) }
        }
    }
}
