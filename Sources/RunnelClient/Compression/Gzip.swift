import CompressNIO
import NIOCore

/// Kafka's gzip codec, through zlib (compress-nio); snappy and lz4, which no package of ours
/// offers, are decoded in Swift beside it.
public enum Gzip {
    /// The most bytes one payload may decompress to: a bound against decompression bombs, far
    /// above any record batch a broker accepts (`message.max.bytes` is about 1 MB by default).
    public static let outputBytesMax = 256 << 20

    /// Decodes a gzip stream: one member, or several concatenated as gzip allows.
    public static func gunzip(_ input: [UInt8]) throws -> [UInt8] {
        var buffer = ByteBuffer(bytes: input)
        var output = ByteBuffer()
        repeat {
            let before = buffer.readableBytes
            var member: ByteBuffer
            do {
                member = try buffer.decompress(with: .gzip(), maxSize: outputBytesMax - output.readableBytes)
            } catch {
                throw DecompressionError(
                    "the gzip stream is corrupt or inflates past \(outputBytesMax) bytes (\(error))")
            }
            guard buffer.readableBytes < before else { throw DecompressionError("the gzip stream does not advance") }
            // zlib checks a whole member's CRC itself, but a member cut short simply ends early:
            // its last four bytes must be the length it inflated to (ISIZE, mod 2^32).
            let end = buffer.readerIndex
            guard end >= 18 else { throw DecompressionError("the gzip stream is truncated") }
            let size = input[(end - 4)..<end].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard size == UInt32(truncatingIfNeeded: member.readableBytes) else {
                throw DecompressionError("the gzip stream is truncated")
            }
            output.writeBuffer(&member)
        } while buffer.readableBytes > 0
        return Array(output.readableBytesView)
    }
}

/// A payload that does not decompress, one sentence.
public struct DecompressionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
