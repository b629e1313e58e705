import NIOCore

/// A value with a Kafka wire encoding that depends on a version.
public protocol WireMessage: Sendable, Equatable {
    init()
    /// Decodes one value at `version`, consuming exactly its bytes.
    init(from reader: inout WireReader, version: Int16) throws
    /// Encodes the value at `version`. Fields the version lacks are left out.
    func write(to writer: inout WireWriter, version: Int16)
}

/// A Kafka API request or response body.
public protocol ApiMessage: WireMessage {
    static var apiKey: ApiKey { get }
    /// Every version the wire format defines.
    static var versions: ClosedRange<Int16> { get }
    /// The first flexible version, nil when none is.
    static var firstFlexibleVersion: Int16? { get }
}

/// A request body; `Response` is its answer.
public protocol RequestMessage: ApiMessage {
    associatedtype Response: ResponseMessage
}

/// A response body.
public protocol ResponseMessage: ApiMessage {}

/// A record of the metadata log (`__cluster_metadata`) or a control record.
public protocol MetadataRecordMessage: WireMessage {
    /// The record type (the `apiKey` of Kafka's metadata record schemas), or the control type.
    static var recordType: Int16 { get }
    static var versions: ClosedRange<Int16> { get }
    static var firstFlexibleVersion: Int16? { get }
}

extension ApiMessage {
    /// Whether `version` uses the flexible encoding.
    public static func isFlexible(_ version: Int16) -> Bool {
        guard let first = firstFlexibleVersion else { return false }
        return version >= first
    }

    /// Encodes the body alone into a new buffer.
    public func encoded(version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var writer = WireWriter(allocator: allocator)
        write(to: &writer, version: version)
        return writer.bytes
    }

    /// Decodes a whole body, failing on trailing bytes.
    public static func decode(_ buffer: ByteBuffer, version: Int16) throws -> Self {
        var reader = WireReader(buffer)
        let value = try Self(from: &reader, version: version)
        try reader.expectEnd(String(describing: Self.self))
        return value
    }
}

extension MetadataRecordMessage {
    /// Encodes the body alone into a new buffer.
    public func encoded(version: Int16) -> ByteBuffer {
        var writer = WireWriter()
        write(to: &writer, version: version)
        return writer.bytes
    }
}
