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
