// The Kafka frame decoder, fed byte by byte, whole and in random chunks (NIO's verifier), and
// its refusal of sizes over socket.request.max.bytes.
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
}
