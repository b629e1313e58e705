// The Kafka frame decoder, fed byte by byte, whole and in random chunks (NIO's verifier), and
// its refusal of sizes over socket.request.max.bytes; the TLS side's frame assembler, fed the
// same stream cut at every point.
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
@testable import RunnelNetwork

@Suite("Frame decoder")
struct FrameDecoderTests {
    func frame(_ body: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int32(body.utf8.count))
        b.writeString(body)
        return b
    }

    @Test("splits frames however the bytes arrive")
    func verifier() throws {
        let pairs: [(ByteBuffer, [ByteBuffer])] = [
            (frame("hello"), [ByteBuffer(string: "hello")]),
            (frame(""), [ByteBuffer()]),
            (
                {
                    var b = frame("a"); var c = frame("bc"); b.writeBuffer(&c); return b
                }(), [ByteBuffer(string: "a"), ByteBuffer(string: "bc")]
            ),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            KafkaFrameDecoder(frameBytesMax: 1024)
        }
    }

    @Test("a size over the limit or negative is an error")
    func tooLarge() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: 10)))
        var b = ByteBuffer()
        b.writeInteger(Int32(11))
        #expect(throws: KafkaFrameDecoder.FrameTooLarge.self) { try channel.writeInbound(b) }
        let channel2 = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: 10)))
        var n = ByteBuffer()
        n.writeInteger(Int32(-1))
        #expect(throws: KafkaFrameDecoder.FrameTooLarge.self) { try channel2.writeInbound(n) }
    }

    /// Three frames (one empty) in one stream.
    func stream() -> (ByteBuffer, [ByteBuffer]) {
        var bytes = frame("hello")
        var empty = frame("")
        var last = frame(String(repeating: "x", count: 300))
        bytes.writeBuffer(&empty)
        bytes.writeBuffer(&last)
        return (
            bytes, [ByteBuffer(string: "hello"), ByteBuffer(), ByteBuffer(string: String(repeating: "x", count: 300))]
        )
    }

    @Test("the TLS frame assembler gives whole frames wherever the stream is cut")
    func assembler() throws {
        let (bytes, expected) = stream()
        for first in 0...bytes.readableBytes {
            for second in stride(from: first, through: bytes.readableBytes, by: 7) {
                let channel = EmbeddedChannel(handler: KafkaFrameAssembler(frameBytesMax: 1024))
                for (from, to) in [(0, first), (first, second), (second, bytes.readableBytes)] where to > from {
                    try channel.writeInbound(bytes.getSlice(at: from, length: to - from)!)
                }
                var frames: [ByteBuffer] = []
                while let frame = try channel.readInbound(as: ByteBuffer.self) { frames.append(frame) }
                #expect(frames == expected, "cut at \(first) and \(second)")
                _ = try channel.finish()
            }
        }
    }

    @Test("the TLS frame assembler refuses a size over the limit or negative, and reads no further")
    func assemblerTooLarge() throws {
        for size in [Int32(11), -1] {
            let channel = EmbeddedChannel(handler: KafkaFrameAssembler(frameBytesMax: 10))
            var b = ByteBuffer()
            b.writeInteger(size)
            var next = frame("a")
            b.writeBuffer(&next)
            #expect(throws: KafkaFrameDecoder.FrameTooLarge.self) { try channel.writeInbound(b) }
            #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        }
    }

    @Test("the TLS frame assembler holds memory for what arrived, not for what a size announces")
    func assemblerGrowsWithTheBytes() throws {
        let limit = 64 << 20
        let assembler = KafkaFrameAssembler(frameBytesMax: limit)
        let channel = EmbeddedChannel(handler: assembler)
        let size = 8 * KafkaFrameAssembler.initialCapacityMax + 3
        var b = ByteBuffer()
        b.writeInteger(Int32(size))
        b.writeRepeatingByte(7, count: 100)
        try channel.writeInbound(b)
        #expect(assembler.fillingCapacity <= KafkaFrameAssembler.initialCapacityMax)
        #expect(assembler.fillingCapacity >= 100)
        // The rest, in two pieces: the frame grows to its size once and arrives whole.
        let first = KafkaFrameAssembler.initialCapacityMax
        try channel.writeInbound(ByteBuffer(repeating: 7, count: first))
        #expect(assembler.fillingCapacity >= size)
        try channel.writeInbound(ByteBuffer(repeating: 7, count: size - 100 - first))
        let frame = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(frame.readableBytes == size)
        #expect(frame.readableBytesView.allSatisfy { $0 == 7 })
        #expect(assembler.fillingCapacity == 0)
        _ = try channel.finish()
    }
}
