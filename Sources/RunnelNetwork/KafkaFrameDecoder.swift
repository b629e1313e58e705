import RunnelWire
import NIOCore

/// Splits a byte stream into Kafka frames: a 4-byte big-endian size, then that many bytes.
/// A size that is negative or above `frameBytesMax` (`socket.request.max.bytes`) is an error: the
/// connection is closed, as Kafka does. Never moves the reader index before a frame is whole.
public struct KafkaFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public struct FrameTooLarge: Error, Equatable {
        public var size: Int32
        public var limit: Int
    }

    public let frameBytesMax: Int

    public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard size >= 0, Int(size) <= frameBytesMax else { throw FrameTooLarge(size: size, limit: frameBytesMax) }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// Cuts TLS plaintext into Kafka frames, copying each frame's bytes once, into a buffer of
/// exactly its size (as Kafka's NetworkReceive does). NIOSSL decrypts each read burst into one
/// buffer it keeps and reuses: slices of it held downstream (requests in flight keep their records
/// as they arrived) would make NIOSSL's next read copy that whole buffer, and a cumulating decoder
/// copies again whenever a frame spans reads. Sizes are checked as `KafkaFrameDecoder` does. A
/// frame's buffer starts at `initialCapacityMax` at most and takes its whole size only once more
/// bytes than that arrive, so a peer that announces a large frame and sends little of it (before
/// it has authenticated, say) holds no more memory than it sent.
final class KafkaFrameAssembler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let initialCapacityMax = 1 << 20

    private let frameBytesMax: Int
    /// The size field read so far (big-endian) and how many of its 4 bytes that is.
    private var size: UInt32 = 0
    private var sizeBytesRead = 0
    /// The frame being filled and its size; nil between frames.
    private var frame: ByteBuffer? = nil
    private var frameBytes = 0
    private var failed = false

    init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    /// The capacity of the frame being filled (0 between frames), for tests.
    var fillingCapacity: Int { frame?.capacity ?? 0 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        while !failed, input.readableBytes > 0 {
            if var filling = frame {
                frame = nil  // one reference, so the write below appends in place
                let count = min(frameBytes - filling.readableBytes, input.readableBytes)
                if filling.writableBytes < count { filling.reserveCapacity(frameBytes) }
                filling.writeImmutableBuffer(input.readSlice(length: count)!)
                if filling.readableBytes == frameBytes {
                    context.fireChannelRead(wrapInboundOut(filling))
                } else {
                    frame = filling
                }
                continue
            }
            while sizeBytesRead < 4, let byte = input.readInteger(as: UInt8.self) {
                size = size << 8 | UInt32(byte)
                sizeBytesRead += 1
            }
            guard sizeBytesRead == 4 else { return }
            let frameSize = Int32(bitPattern: size)
            size = 0
            sizeBytesRead = 0
            guard frameSize >= 0, Int(frameSize) <= frameBytesMax else {
                failed = true
                context.fireErrorCaught(KafkaFrameDecoder.FrameTooLarge(size: frameSize, limit: frameBytesMax))
                return
            }
            frameBytes = Int(frameSize)
            let empty = context.channel.allocator.buffer(capacity: min(frameBytes, Self.initialCapacityMax))
            if frameBytes == 0 { context.fireChannelRead(wrapInboundOut(empty)) } else { frame = empty }
        }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The handlers that cut a connection's bytes into Kafka frames: after NIOSSL's handler
    /// (`tls`), a `KafkaFrameAssembler`; on plain TCP, NIO's decoder, which hands on slices of the
    /// buffers the socket was read into.
    func addKafkaFraming(frameBytesMax: Int, tls: Bool) throws {
        if tls {
            try addHandler(KafkaFrameAssembler(frameBytesMax: frameBytesMax))
        } else {
            try addHandler(ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
        }
    }
}
