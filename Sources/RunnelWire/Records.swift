import NIOCore

/// The value of a `records` field: record batches as bytes, or as regions of segment files so a
/// Fetch response is sent zero-copy. Produce requests decode to bytes sliced from the frame.
public struct Records: Sendable {
    /// A piece of the records payload.
    public enum Chunk: Sendable {
        case bytes(ByteBuffer)
        case region(FileRegion)

        public var byteCount: Int {
            switch self {
            case .bytes(let b): b.readableBytes
            case .region(let r): r.readableBytes
            }
        }
    }

    public var chunks: [Chunk]

    public init(_ bytes: ByteBuffer) { self.chunks = [.bytes(bytes)] }
    public init(chunks: [Chunk]) { self.chunks = chunks }
    public static var empty: Records { Records(chunks: []) }

    public var byteCount: Int { chunks.reduce(0) { $0 + $1.byteCount } }

    /// The payload as one buffer when it is held in memory; nil when it refers to files.
    public var bytes: ByteBuffer? {
        if chunks.isEmpty { return ByteBuffer() }
        if chunks.count == 1, case .bytes(let b) = chunks[0] { return b }
        var out = ByteBuffer()
        for chunk in chunks {
            guard case .bytes(var b) = chunk else { return nil }
            out.writeBuffer(&b)
        }
        return out
    }
}

extension Records: Equatable {
    /// In-memory payloads compare by content; file regions by file, range and identity.
    public static func == (lhs: Records, rhs: Records) -> Bool {
        if let l = lhs.bytes, let r = rhs.bytes { return l == r }
        guard lhs.chunks.count == rhs.chunks.count else { return false }
        for (a, b) in zip(lhs.chunks, rhs.chunks) {
            switch (a, b) {
            case (.bytes(let x), .bytes(let y)):
                if x != y { return false }
            case (.region(let x), .region(let y)):
                if x.readerIndex != y.readerIndex || x.endIndex != y.endIndex || x.fileHandle !== y.fileHandle {
                    return false
                }
            default:
                return false
            }
        }
        return true
    }
}
