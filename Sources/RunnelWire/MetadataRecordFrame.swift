import NIOCore

/// How a metadata record sits in a Kafka record's value in `__cluster_metadata` (as Kafka's
/// MetadataRecordSerde frames it): unsigned varints frame version (1), record type and record
/// version, then the record body. The record key is null.
public enum MetadataRecordFrame {
    public static let frameVersion: UInt32 = 1

    /// Encodes `record` at its latest version.
    public static func encode(_ record: MetadataRecord) -> ByteBuffer {
        encode(record, version: record.latestVersion)
    }

    public static func encode(_ record: MetadataRecord, version: Int16) -> ByteBuffer {
        var w = WireWriter(capacity: 64)
        write(record, version: version, to: &w)
        return w.bytes
    }

    /// Appends `record`, framed at `version`, to `w`: what `encode` returns, without a buffer of
    /// its own (a walk over a million records reuses one).
    public static func write(_ record: MetadataRecord, version: Int16, to w: inout WireWriter) {
        w.writeUnsignedVarint(frameVersion)
        w.writeUnsignedVarint(UInt32(record.recordType))
        w.writeUnsignedVarint(UInt32(version))
        record.write(to: &w, version: version)
    }

    /// Decodes a framed record; throws on an unknown frame version, type or version.
    public static func decode(_ value: ByteBuffer) throws -> (record: MetadataRecord, version: Int16) {
        var r = WireReader(value)
        let frame = try r.readUnsignedVarint()
        guard frame == frameVersion else { throw WireError.invalidValue("metadata frame version \(frame)") }
        let type = try r.readUnsignedVarint()
        let version = try r.readUnsignedVarint()
        guard type <= UInt32(Int16.max), version <= UInt32(Int16.max) else {
            throw WireError.invalidValue("metadata record type")
        }
        let record = try MetadataRecord(type: Int16(type), version: Int16(version), from: &r)
        try r.expectEnd("metadata record")
        return (record, Int16(version))
    }
}
