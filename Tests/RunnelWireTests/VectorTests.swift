// Byte-exact vectors: Apache Kafka's own Java serializer (kafka-clients 3.9.1, run by
// tools/vectors/generate) encoded every request and response at every version, once with defaults
// and once with every field filled (tagged fields included, nullable fields alternately null).
// Our generated codecs must decode each vector completely and re-encode it to the same bytes.
import Foundation
import NIOCore
import Testing
@testable import RunnelWire

struct VectorFile: Decodable {
    struct Case: Decodable {
        var kind: String
        var version: Int16
        var `case`: String
        var hex: String
    }
    var api: String?
    var key: Int16?
    var cases: [Case]
}

enum Vectors {
    static func load(_ name: String) throws -> VectorFile {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors"))
        return try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url))
    }

    static func bytes(_ hex: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        var chars = hex.utf8.makeIterator()
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        while let hi = chars.next(), let lo = chars.next() {
            buffer.writeInteger(nibble(hi) << 4 | nibble(lo))
        }
        return buffer
    }

    static func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
    }
}

func reencode<M: WireMessage>(_ type: M.Type, _ bytes: ByteBuffer, version: Int16) throws -> ByteBuffer {
    var reader = WireReader(bytes)
    let message = try M(from: &reader, version: version)
    try reader.expectEnd("\(M.self) v\(version)")
    var writer = WireWriter()
    message.write(to: &writer, version: version)
    return writer.bytes
}

@Suite("Kafka's own bytes")
struct VectorTests {
    @Test("every API has vectors from Kafka that re-encode byte-exact", arguments: ApiKey.all.map(\.name))
    func apiVectors(name: String) throws {
        let file = try Vectors.load(name)
        let key = try #require(file.key)
        let types = try #require(ApiKey(rawValue: key).messageTypes)
        let spec = ApiKey.all.first { $0.key.rawValue == key }!
        var versionsSeen = Set<Int16>()
        for c in file.cases {
            let bytes = Vectors.bytes(c.hex)
            let out: ByteBuffer
            if c.kind == "request" {
                out = try reencode(types.request, bytes, version: c.version)
            } else {
                out = try reencode(types.response, bytes, version: c.version)
            }
            #expect(Vectors.hex(out) == c.hex, "\(name) \(c.kind) v\(c.version) \(c.case)")
            versionsSeen.insert(c.version)
        }
        // Kafka 3.9 defines versions up to the vectors' highest; later versions (from newer Kafka
        // releases) are checked from these bytes by NewerVersionVectorTests.
        let highest = versionsSeen.max() ?? -1
        #expect(
            versionsSeen == Set(spec.versions.lowerBound...highest),
            "\(name): vectors cover every version Kafka 3.9 defines")
    }

    @Test("request and response headers")
    func headers() throws {
        let file = try Vectors.load("Headers")
        #expect(file.cases.count >= 5)
        for c in file.cases {
            var reader = WireReader(Vectors.bytes(c.hex))
            var writer = WireWriter()
            if c.kind == "requestHeader" {
                let header = try RequestHeader(from: &reader, headerVersion: c.version)
                header.write(to: &writer, headerVersion: c.version)
                if c.case == "filled" && c.version >= 1 {
                    #expect(header.clientId == "runnel-test")
                }
            } else {
                let header = try ResponseHeader(from: &reader, headerVersion: c.version)
                header.write(to: &writer, headerVersion: c.version)
            }
            try reader.expectEnd("header")
            #expect(Vectors.hex(writer.bytes) == c.hex, "\(c.kind) v\(c.version) \(c.case)")
        }
    }

    @Test("decoded values match what Kafka filled in")
    func spotChecks() throws {
        // Filled values count up from 1 in field order (tools/vectors/README.md): in Produce v9 the
        // transactional id is "s1", acks 2, timeout 3, and the first topic's name "s4".
        let produce = try Vectors.load("Produce")
        let c = try #require(produce.cases.first { $0.kind == "request" && $0.version == 9 && $0.case == "filled" })
        let request = try ProduceRequest.decode(Vectors.bytes(c.hex), version: 9)
        #expect(request.transactionalId == "s1")
        #expect(request.acks == 2)
        #expect(request.timeoutMs == 3)
        #expect(request.topicData.count == 2)
        #expect(request.topicData[0].name == "s4")
        // ApiVersions response v3 filled carries tagged fields that must decode, not stay unknown.
        let versions = try Vectors.load("ApiVersions")
        let v = try #require(versions.cases.first { $0.kind == "response" && $0.version == 3 && $0.case == "filled" })
        let response = try ApiVersionsResponse.decode(Vectors.bytes(v.hex), version: 3)
        #expect(response.supportedFeatures.count == 2)
        #expect(response.finalizedFeaturesEpoch != -1)
        #expect(response.unknownTaggedFields.isEmpty)
        // The unknown-tag case keeps the raw field.
        let u = try #require(versions.cases.first { $0.kind == "request" && $0.case == "unknownTag" })
        let request3 = try ApiVersionsRequest.decode(Vectors.bytes(u.hex), version: u.version)
        #expect(request3.unknownTaggedFields.map(\.tag) == [7])
    }
}
