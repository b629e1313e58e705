// Kafka's codecs against streams other encoders wrote: gzip (stored, fixed and dynamic Huffman
// blocks, several members, header fields) from Python's zlib, snappy (raw and xerial-framed) and
// lz4 frames (compressed, stored and linked blocks) assembled by hand, and the refusals of
// malformed input.
import NIOCore
import Testing
@testable import RunnelCodecs

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite("Codecs against streams other encoders wrote")
struct VectorTests {
    func gunzip(_ b: [UInt8]) throws -> [UInt8] {
        Array(try Codecs.decompress(.gzip, ByteBuffer(bytes: b)).readableBytesView)
    }
    func unsnappy(_ b: [UInt8]) throws -> [UInt8] {
        Array(try Codecs.decompress(.snappy, ByteBuffer(bytes: b)).readableBytesView)
    }
    func unlz4(_ b: [UInt8]) throws -> [UInt8] {
        Array(try Codecs.decompress(.lz4, ByteBuffer(bytes: b)).readableBytesView)
    }

    static let text =
        Array(String(repeating: "Runnel reads gzip batches. ", count: 6).utf8) + (0..<40).map { UInt8($0) }
        + Array("the end, the end, the end.".utf8)

    /// gzip.compress(text, compresslevel=0 / 1, mtime=0): a stored block, a fixed-Huffman block.
    static let storedGzip = hex(
        "1f8b080000000000040301e4001bff52756e6e656c20726561647320677a697020626174636865732e2052756e6e656c20726561647320677a697020626174636865732e2052756e6e656c20726561647320677a697020626174636865732e2052756e6e656c20726561647320677a697020626174636865732e2052756e6e656c20726561647320677a697020626174636865732e2052756e6e656c20726561647320677a697020626174636865732e20000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262774686520656e642c2074686520656e642c2074686520656e642efc2daf70e4000000"
    )
    static let fixedGzip = hex(
        "1f8b08000000000004030b2acdcb4bcd51284a4d4c295648afca2c50484a2c49ce482dd653081a1c520c8c4ccc2cac6cec1c9c5cdc3cbc7cfc028242c222a262e2129252d232b272f20a8a4aca2aaa6aea2519a90aa979293a0ae80c3d00fc2daf70e4000000"
    )

    /// 3000 bytes over "etaoin shrdlu" (byte i = alphabet[((i*i*7 + i*3) % 97) % 13]), gzip level 6:
    /// one dynamic-Huffman block.
    static let dynamicInput: [UInt8] = {
        let alphabet = Array("etaoin shrdlu".utf8)
        return (0..<3000).map { i in alphabet[((i * i * 7 + i * 3) % 97) % 13] }
    }()
    static let dynamicGzip = hex(
        "1f8b0800000000000003edcdc10900310844d1566c4d50c8804488b1ff3535ec752ec3f02fcf6dd5d558d25d4790193ea5166a03bbf0be7964424e75cb0abdafe068c6dd96d6da30884a2066e74f99be6fa41e38010204081020408000010204fe021f78d4d9a7b80b0000"
    )

    @Test func gzipStoredFixedAndDynamicBlocks() throws {
        #expect(try gunzip(Self.storedGzip) == Self.text)
        #expect(try gunzip(Self.fixedGzip) == Self.text)
        #expect(Self.dynamicGzip[10] >> 1 & 3 == 2, "the vector holds a dynamic block")
        #expect(try gunzip(Self.dynamicGzip) == Self.dynamicInput)
    }

    @Test func gzipMembersConcatenateAndHeaderFieldsAreSkipped() throws {
        #expect(try gunzip(Self.fixedGzip + Self.dynamicGzip) == Self.text + Self.dynamicInput)
        // FNAME and FCOMMENT (zero-terminated) and FEXTRA (length-prefixed) after the 10-byte header.
        var named = Array(Self.fixedGzip[0..<10])
        named[3] = 0x08 | 0x10 | 0x04
        named += [3, 0, 1, 2, 3] + Array("batch.bin".utf8) + [0] + Array("a comment".utf8) + [0]
        named += Self.fixedGzip[10...]
        #expect(try gunzip(named) == Self.text)
    }

    @Test func gzipRefusesDamage() {
        #expect(throws: CodecError.self) { try gunzip(Array(Self.dynamicGzip.prefix(60))) }
        #expect(throws: CodecError.self) { try gunzip([0x1f, 0x8c] + Self.fixedGzip.dropFirst(2)) }
        var badStored = Self.storedGzip
        badStored[13] ^= 0xff  // LEN no longer matches NLEN
        #expect(throws: CodecError.self) { try gunzip(badStored) }
        var reserved = Self.fixedGzip
        reserved[10] = 0x07  // final block of the reserved type 3
        #expect(throws: CodecError.self) { try gunzip(reserved) }
    }

    /// "abc" then a 9-byte copy at offset 3 (a 1-byte-offset copy) then a 2-byte-offset copy of 4.
    static let rawSnappy: [UInt8] = [16, 0x08, 0x61, 0x62, 0x63, 0x15, 0x03, 0x0e, 0x0c, 0x00]
    static let rawSnappyText = Array("abcabcabcabcabca".utf8)

    @Test func snappyRawAndXerialFramed() throws {
        #expect(try unsnappy(Self.rawSnappy) == Self.rawSnappyText)
        var framed = Codecs.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1]
        for _ in 0..<2 { framed += [0, 0, 0, UInt8(Self.rawSnappy.count)] + Self.rawSnappy }
        #expect(try unsnappy(framed) == Self.rawSnappyText + Self.rawSnappyText)
        // A literal with a 1-byte extended length (tag 60 << 2): 61 bytes.
        let long = [UInt8](repeating: 0x7a, count: 61)
        #expect(try unsnappy([61, 60 << 2, 60] + long) == long)
    }

    @Test func snappyRefusesDamage() {
        #expect(throws: CodecError.self) { try unsnappy([16, 0x08, 0x61, 0x62, 0x63, 0x15, 0x09]) }  // offset past the start
        #expect(throws: CodecError.self) { try unsnappy([5, 0x08, 0x61]) }  // literal truncated
        #expect(throws: CodecError.self) { try unsnappy([2, 0x08, 0x61, 0x62, 0x63]) }  // longer than announced
    }

    /// An lz4 frame (FLG 0x60: version 1, independent blocks; BD 0x40) holding `blocks`.
    /// The header checksum byte is xxHash32(FLG, BD) >> 8, which liblz4 checks.
    static func frame(_ blocks: [[UInt8]], flags: UInt8 = 0x60) -> [UInt8] {
        let checksum: [UInt8: UInt8] = [0x60: 0x82, 0x40: 0xc0]
        var out: [UInt8] = [0x04, 0x22, 0x4d, 0x18, flags, 0x40, checksum[flags]!]
        for b in blocks {
            let n = UInt32(b.count) & 0x7fff_ffff
            out += [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + b
        }
        return out + [0, 0, 0, 0]
    }

    /// Literals "abc", a match of 9 at offset 3, then the last literals "xyzwv!" (a block ends
    /// with at least 5 literals, its last match at least 12 bytes before its end, as the LZ4
    /// block format requires and liblz4 checks).
    static let lz4Block: [UInt8] = [0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x60] + Array("xyzwv!".utf8)
    static let lz4BlockText = Array("abcabcabcabcxyzwv!".utf8)

    @Test func lz4CompressedStoredAndLinkedBlocks() throws {
        #expect(try unlz4(Self.frame([Self.lz4Block])) == Self.lz4BlockText)
        // A stored block: size with the high bit set.
        var stored: [UInt8] =
            [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 3, 0, 0, 0x80] + Array("raw".utf8) + [0, 0, 0, 0]
        #expect(try unlz4(stored) == Array("raw".utf8))
        // A linked second block whose match (offset 18, length 4) reaches into the first block.
        let linked: [UInt8] = [0x00, 0x12, 0x00, 0x80] + Array("--linked".utf8)
        #expect(
            try unlz4(Self.frame([Self.lz4Block, linked], flags: 0x40)) == Self.lz4BlockText
                + Array("abca--linked".utf8))
        // Long literal and match lengths (15 + extension bytes): 15 literals, a match of 285 at
        // offset 1, 5 last literals.
        let block: [UInt8] =
            [0xff, 0x00] + [UInt8](repeating: 0x71, count: 15) + [0x01, 0x00, 0xff, 0x0b, 0x50]
            + [UInt8](repeating: 0x71, count: 5)
        #expect(try unlz4(Self.frame([block])) == [UInt8](repeating: 0x71, count: 305))
        stored[4] = 0xa0  // version 2 does not exist
        #expect(throws: CodecError.self) { try unlz4(stored) }
    }

    @Test func lz4RefusesDamage() {
        #expect(throws: CodecError.self) { try unlz4(Self.frame([[0x10, 0x61, 0x05, 0x00]])) }  // offset past the start
        #expect(throws: CodecError.self) { try unlz4(Array(Self.frame([Self.lz4Block]).dropLast(6))) }
        #expect(throws: CodecError.self) { try unlz4([0, 1, 2, 3, 4, 5, 6]) }
    }
}
