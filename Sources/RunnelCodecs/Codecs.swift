import CLZ4
import CSnappy
import CZstd
import CompressNIO
import NIOCore

/// Kafka's four record-batch codecs (the batch attributes' low bits), each through the library
/// Kafka's own clients use: zlib for gzip (compress-nio), libsnappy, liblz4's frame format and
/// libzstd (Debian's -dev packages). Nothing here decodes a format by hand except the framing
/// around snappy blocks that the Java client adds.
public enum Codec: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case gzip = 1, snappy = 2, lz4 = 3, zstd = 4

    public var description: String {
        switch self {
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// A payload that does not compress or decompress, in one sentence.
public struct CodecError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum Codecs {
    /// The most bytes one payload may decompress to: a bound against decompression bombs, far
    /// above any record batch a broker accepts (`message.max.bytes` is about 1 MB by default).
    public static let outputBytesMax = 256 << 20

    /// The payload `input` decompressed; throws `CodecError` when it is corrupt, truncated, or
    /// inflates past `limit` bytes.
    public static func decompress(
        _ codec: Codec, _ input: ByteBuffer, limit: Int = outputBytesMax
    ) throws
        -> ByteBuffer
    {
        switch codec {
        case .gzip: try gunzip(input, limit: limit)
        case .snappy: try unsnappy(input, limit: limit)
        case .lz4: try unlz4(input, limit: limit)
        case .zstd: try unzstd(input, limit: limit)
        }
    }

    /// `input` compressed as Kafka's producers write it: gzip, the Java client's framed snappy,
    /// an lz4 frame of independent 64 KiB blocks, or one zstd frame. `level` is the codec's own
    /// (`compression.<codec>.level`, KIP-390); nil takes the library's default.
    public static func compress(_ codec: Codec, _ input: ByteBuffer, level: Int32? = nil) throws -> ByteBuffer {
        switch codec {
        case .gzip: try gzip(input, level: level)
        case .snappy: try snappy(input)
        case .lz4: try lz4(input, level: level)
        case .zstd: try zstd(input, level: level)
        }
    }

    // MARK: gzip

    static func gunzip(_ input: ByteBuffer, limit: Int) throws -> ByteBuffer {
        var buffer = input
        var output = ByteBuffer()
        repeat {
            let before = buffer.readableBytes
            var member: ByteBuffer
            do {
                member = try buffer.decompress(with: .gzip(), maxSize: limit - output.readableBytes)
            } catch {
                throw CodecError("the gzip stream is corrupt or inflates past \(limit) bytes (\(error))")
            }
            guard buffer.readableBytes < before else { throw CodecError("the gzip stream does not advance") }
            // zlib checks a whole member's CRC itself, but a member cut short simply ends early:
            // its last four bytes must be the length it inflated to (ISIZE, mod 2^32).
            let end = buffer.readerIndex
            guard end - input.readerIndex >= 18,
                let size = input.getInteger(at: end - 4, endianness: .little, as: UInt32.self)
            else {
                throw CodecError("the gzip stream is truncated")
            }
            guard size == UInt32(truncatingIfNeeded: member.readableBytes) else {
                throw CodecError("the gzip stream is truncated")
            }
            output.writeBuffer(&member)
        } while buffer.readableBytes > 0
        return output
    }

    static func gzip(_ input: ByteBuffer, level: Int32?) throws -> ByteBuffer {
        var source = input
        var configuration = ZlibConfiguration()
        if let level { configuration.compressionLevel = level }
        do {
            return try source.compress(with: .gzip(configuration: configuration))
        } catch {
            throw CodecError("gzip compression failed (\(error))")
        }
    }

    // MARK: snappy

    /// The framing the Java client (xerial snappy-java) puts around raw snappy blocks: an 8-byte
    /// magic, a version and a compatible version (int32 each), then int32-length-prefixed blocks.
    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]
    /// The uncompressed size of each framed block the Java client writes.
    static let xerialBlockBytes = 32 * 1024

    static func unsnappy(_ input: ByteBuffer, limit: Int) throws -> ByteBuffer {
        guard input.readableBytes >= 16, input.getBytes(at: input.readerIndex, length: 8) == xerialMagic else {
            var output = ByteBuffer()
            try unsnappyBlock(input, into: &output, limit: limit)
            return output
        }
        var framed = input
        framed.moveReaderIndex(forwardBy: 16)
        var output = ByteBuffer()
        while framed.readableBytes > 0 {
            guard let length = framed.readInteger(as: Int32.self), length >= 0,
                let block = framed.readSlice(length: Int(length))
            else {
                throw CodecError("a snappy frame block is truncated")
            }
            try unsnappyBlock(block, into: &output, limit: limit)
        }
        return output
    }

    private static func unsnappyBlock(_ block: ByteBuffer, into output: inout ByteBuffer, limit: Int) throws {
        try block.withUnsafeReadableBytes { src in
            let base = src.baseAddress?.assumingMemoryBound(to: CChar.self)
            var length = 0
            guard snappy_uncompressed_length(base, src.count, &length) == SNAPPY_OK else {
                throw CodecError("the snappy block is corrupt")
            }
            guard length <= limit - output.readableBytes else {
                throw CodecError("the snappy payload inflates past \(limit) bytes")
            }
            var status = SNAPPY_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { dst in
                var written = length
                status = snappy_uncompress(
                    base, src.count, dst.baseAddress?.assumingMemoryBound(to: CChar.self), &written)
                return status == SNAPPY_OK ? written : 0
            }
            guard status == SNAPPY_OK else { throw CodecError("the snappy block is corrupt") }
        }
    }

    static func snappy(_ input: ByteBuffer) throws -> ByteBuffer {
        var output = ByteBuffer(bytes: xerialMagic)
        output.writeInteger(Int32(1))  // version
        output.writeInteger(Int32(1))  // compatible version
        var rest = input
        while rest.readableBytes > 0 {
            let block = rest.readSlice(length: min(rest.readableBytes, xerialBlockBytes))!
            let lengthAt = output.writerIndex
            output.writeInteger(Int32(0))
            var status = SNAPPY_OK
            block.withUnsafeReadableBytes { src in
                let bound = snappy_max_compressed_length(src.count)
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { dst in
                    var written = bound
                    status = snappy_compress(
                        src.baseAddress?.assumingMemoryBound(to: CChar.self), src.count,
                        dst.baseAddress?.assumingMemoryBound(to: CChar.self), &written)
                    return status == SNAPPY_OK ? written : 0
                }
            }
            guard status == SNAPPY_OK else { throw CodecError("snappy compression failed (status \(status))") }
            output.setInteger(Int32(output.writerIndex - lengthAt - 4), at: lengthAt)
        }
        return output
    }

    // MARK: lz4

    static func unlz4(_ input: ByteBuffer, limit: Int) throws -> ByteBuffer {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0 else {
            throw CodecError("lz4: no decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var output = ByteBuffer()
        try input.withUnsafeReadableBytes { src in
            var consumed = 0
            var hint = 1
            while consumed < src.count {
                var sourceSize = src.count - consumed
                var produced = 0
                try output.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { dst in
                    produced = dst.count
                    hint = LZ4F_decompress(
                        context, dst.baseAddress, &produced, src.baseAddress! + consumed, &sourceSize, nil)
                    if LZ4F_isError(hint) != 0 {
                        throw CodecError("the lz4 frame is corrupt (\(String(cString: LZ4F_getErrorName(hint))))")
                    }
                    return produced
                }
                consumed += sourceSize
                guard output.readableBytes <= limit else {
                    throw CodecError("the lz4 payload inflates past \(limit) bytes")
                }
                guard sourceSize > 0 || produced > 0 else { break }
            }
            // Input all read, but the decoder still wants more: the last frame is cut short.
            while hint != 0 {
                var sourceSize = 0
                var produced = 0
                try output.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { dst in
                    produced = dst.count
                    hint = LZ4F_decompress(context, dst.baseAddress, &produced, nil, &sourceSize, nil)
                    if LZ4F_isError(hint) != 0 {
                        throw CodecError("the lz4 frame is corrupt (\(String(cString: LZ4F_getErrorName(hint))))")
                    }
                    return produced
                }
                guard produced > 0 else { throw CodecError("the lz4 frame is truncated") }
                guard output.readableBytes <= limit else {
                    throw CodecError("the lz4 payload inflates past \(limit) bytes")
                }
            }
        }
        return output
    }

    static func lz4(_ input: ByteBuffer, level: Int32?) throws -> ByteBuffer {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.compressionLevel = level ?? 0
        return try compressed(
            input, codec: "lz4", bound: { LZ4F_compressFrameBound($0, &preferences) },
            compress: { LZ4F_compressFrame($1.baseAddress, $1.count, $0.baseAddress, $0.count, &preferences) },
            failed: { LZ4F_isError($0) != 0 }, errorName: { String(cString: LZ4F_getErrorName($0)) })
    }

    /// One-shot compression into a buffer of `bound(input size)` bytes: `compress` returns the
    /// bytes it wrote, or a library error code that `failed` recognises and `errorName` names.
    private static func compressed(
        _ input: ByteBuffer, codec: String, bound: (Int) -> Int,
        compress: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Int, failed: (Int) -> Bool,
        errorName: (Int) -> String
    ) throws -> ByteBuffer {
        var output = ByteBuffer()
        var failure: Int?
        input.withUnsafeReadableBytes { src in
            _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound(src.count)) { dst in
                let written = compress(src, dst)
                if failed(written) {
                    failure = written
                    return 0
                }
                return written
            }
        }
        if let failure { throw CodecError("\(codec) compression failed (\(errorName(failure)))") }
        return output
    }

    // MARK: zstd

    static func unzstd(_ input: ByteBuffer, limit: Int) throws -> ByteBuffer {
        guard let context = ZSTD_createDCtx() else { throw CodecError("zstd: no decompression context") }
        defer { ZSTD_freeDCtx(context) }
        var output = ByteBuffer()
        let chunk = ZSTD_DStreamOutSize()
        try input.withUnsafeReadableBytes { src in
            var source = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            var remaining = 1
            var filled = false
            repeat {
                try output.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { dst in
                    var sink = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                    remaining = ZSTD_decompressStream(context, &sink, &source)
                    if ZSTD_isError(remaining) != 0 {
                        throw CodecError("the zstd frame is corrupt (\(String(cString: ZSTD_getErrorName(remaining))))")
                    }
                    filled = sink.pos == sink.size
                    return sink.pos
                }
                guard output.readableBytes <= limit else {
                    throw CodecError("the zstd payload inflates past \(limit) bytes")
                }
            } while source.pos < source.size || filled
            guard remaining == 0 else { throw CodecError("the zstd frame is truncated") }
        }
        return output
    }

    static func zstd(_ input: ByteBuffer, level: Int32?) throws -> ByteBuffer {
        try compressed(
            input, codec: "zstd", bound: { ZSTD_compressBound($0) },
            compress: { ZSTD_compress($1.baseAddress, $1.count, $0.baseAddress, $0.count, level ?? 3) },
            failed: { ZSTD_isError($0) != 0 }, errorName: { String(cString: ZSTD_getErrorName($0)) })
    }
}
