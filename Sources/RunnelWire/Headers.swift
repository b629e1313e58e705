import NIOCore

/// The request header (v0-v2). v1 adds the client id, v2 (flexible APIs) adds tagged fields.
/// The client id is a classic nullable string in every version, even flexible ones.
public struct RequestHeader: Sendable, Equatable {
    public var apiKey: ApiKey
    public var apiVersion: Int16
    public var correlationId: Int32
    public var clientId: String?
    public var unknownTaggedFields: [TaggedField] = []

    public init(apiKey: ApiKey, apiVersion: Int16, correlationId: Int32, clientId: String? = nil) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    /// The header version a request of `apiKey` at `apiVersion` uses.
    public static func version(apiKey: ApiKey, apiVersion: Int16) -> Int16 {
        if let flexible = apiKey.firstFlexibleVersion, apiVersion >= flexible { return 2 }
        // ControlledShutdown v0 used the header without a client id.
        if apiKey.rawValue == 7 && apiVersion == 0 { return 0 }
        return 1
    }

    /// Reads the header at its version, decided by the api key and version it starts with.
    public init(from r: inout WireReader) throws {
        apiKey = ApiKey(rawValue: try r.readInt16())
        apiVersion = try r.readInt16()
        correlationId = try r.readInt32()
        let headerVersion = Self.version(apiKey: apiKey, apiVersion: apiVersion)
        if headerVersion >= 1 {
            clientId = try r.readNullableString(compact: false)
        }
        if headerVersion >= 2 {
            unknownTaggedFields = try r.readTaggedFieldList()
        }
    }

    /// Reads a header at an explicit header version (for tests and vectors).
    public init(from r: inout WireReader, headerVersion: Int16) throws {
        apiKey = ApiKey(rawValue: try r.readInt16())
        apiVersion = try r.readInt16()
        correlationId = try r.readInt32()
        if headerVersion >= 1 { clientId = try r.readNullableString(compact: false) }
        if headerVersion >= 2 { unknownTaggedFields = try r.readTaggedFieldList() }
    }

    public func write(to w: inout WireWriter, headerVersion: Int16) {
        w.writeInt16(apiKey.rawValue)
        w.writeInt16(apiVersion)
        w.writeInt32(correlationId)
        if headerVersion >= 1 { w.writeNullableString(clientId, compact: false) }
        if headerVersion >= 2 { w.writeTaggedFields([], unknown: unknownTaggedFields) }
    }

    public func write(to w: inout WireWriter) {
        write(to: &w, headerVersion: Self.version(apiKey: apiKey, apiVersion: apiVersion))
    }
}

/// The response header (v0-v1): the correlation id, and tagged fields in v1.
public struct ResponseHeader: Sendable, Equatable {
    public var correlationId: Int32
    public var unknownTaggedFields: [TaggedField] = []

    public init(correlationId: Int32) { self.correlationId = correlationId }

    /// The header version of a response to `apiKey` at `apiVersion`. ApiVersions always answers
    /// with v0 so a client that asked at a version we lack can read the answer (KIP-511).
    public static func version(apiKey: ApiKey, apiVersion: Int16) -> Int16 {
        if apiKey == .apiVersions { return 0 }
        if let flexible = apiKey.firstFlexibleVersion, apiVersion >= flexible { return 1 }
        return 0
    }

    public init(from r: inout WireReader, headerVersion: Int16) throws {
        correlationId = try r.readInt32()
        if headerVersion >= 1 { unknownTaggedFields = try r.readTaggedFieldList() }
    }

    public func write(to w: inout WireWriter, headerVersion: Int16) {
        w.writeInt32(correlationId)
        if headerVersion >= 1 { w.writeTaggedFields([], unknown: unknownTaggedFields) }
    }
}
