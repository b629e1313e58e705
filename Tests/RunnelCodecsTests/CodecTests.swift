// Kafka's four codecs through their libraries: round trips, the framings Kafka's clients write
// (xerial snappy, lz4 frames, concatenated gzip members), and one clear error for a payload cut
// short, corrupted, or inflating past the limit.
import NIOCore
import Testing
@testable import RunnelCodecs

@Suite("Codecs")
struct CodecTests {
    /// Compressible but not trivial: repeated phrases with a counter, about 200 KB.
    static let text = ByteBuffer(
        string: (0..<6_000).map { "record \($0) of a Kafka batch, key k\($0 % 97) " }.joined())

    @Test("each codec decompresses what it compressed", arguments: Codec.allCases)
    func roundTrip(codec: Codec) throws {
        let packed = try Codecs.compress(codec, Self.text)
        #expect(packed.readableBytes < Self.text.readableBytes / 3)
        #expect(try Codecs.decompress(codec, packed) == Self.text)
        #expect(try Codecs.decompress(codec, try Codecs.compress(codec, ByteBuffer())) == ByteBuffer())
    }

    @Test("a payload cut short or corrupted is refused with one sentence", arguments: Codec.allCases)
    func damaged(codec: Codec) throws {
        let packed = try Codecs.compress(codec, Self.text)
        let cut = packed.getSlice(at: 0, length: packed.readableBytes - 7)!
        #expect(throws: CodecError.self) { try Codecs.decompress(codec, cut) }
        #expect(throws: CodecError.self) {
            try Codecs.decompress(codec, ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8, 9]))
        }
    }

    @Test("a payload inflating past the limit is refused", arguments: Codec.allCases)
    func bomb(codec: Codec) throws {
        let packed = try Codecs.compress(codec, ByteBuffer(repeating: 0, count: 1 << 20))
        #expect(throws: CodecError.self) { try Codecs.decompress(codec, packed, limit: 1 << 16) }
    }

    @Test("snappy: the Java client's framing and librdkafka's raw blocks both decode")
    func snappyFramings() throws {
        let framed = try Codecs.compress(.snappy, Self.text)
        #expect(Array(framed.readableBytesView.prefix(8)) == Codecs.xerialMagic)
        // The first framed block, unframed, is a raw snappy block of the first 32 KiB.
        let length = Int(framed.getInteger(at: 16, as: Int32.self)!)
        let raw = framed.getSlice(at: 20, length: length)!
        #expect(try Codecs.decompress(.snappy, raw) == Self.text.getSlice(at: 0, length: Codecs.xerialBlockBytes)!)
    }

    @Test("gzip: concatenated members decode as one stream")
    func gzipMembers() throws {
        var both = try Codecs.compress(.gzip, ByteBuffer(string: "first "))
        var second = try Codecs.compress(.gzip, ByteBuffer(string: "second"))
        both.writeBuffer(&second)
        #expect(try Codecs.decompress(.gzip, both) == ByteBuffer(string: "first second"))
    }

    @Test("lz4: two frames back to back decode as one stream")
    func lz4Frames() throws {
        var both = try Codecs.compress(.lz4, ByteBuffer(string: "first "))
        var second = try Codecs.compress(.lz4, ByteBuffer(string: "second"))
        both.writeBuffer(&second)
        #expect(try Codecs.decompress(.lz4, both) == ByteBuffer(string: "first second"))
    }
}
