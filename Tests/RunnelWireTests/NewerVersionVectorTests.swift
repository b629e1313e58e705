// Versions newer than Kafka 3.9, checked against Kafka's own bytes all the same.
//
// The Java client this project can run (kafka-clients 3.9.1) does not know the versions Kafka 4.x
// added, so there are no vectors for them. Each such version is the version before it plus the
// fields Kafka 4.x's message definitions add (the specs' notes name them), or nothing at all. So
// Kafka's bytes at the version before, decoded and encoded again at the newer version, must be
// those same bytes with only the added fields' bytes put in: right before the top-level tagged
// fields for a new top-level field, once per nested struct for a nested one. A field in the wrong
// place, a version range off by one or the flexible encoding switched at the wrong version fails.
import NIOCore
import Testing
@testable import RunnelWire

/// Where a newer version's added field sits in the bytes.
enum AddedField<M: ApiMessage> {
    /// Nothing changes on the wire.
    case none
    /// These bytes, last in the top-level struct (before its empty tagged-field section).
    case last([UInt8])
    /// These bytes, last in each of these nested structs (before each one's empty tagged fields).
    case nested([UInt8], structs: (M) -> [any WireMessage])
}

/// `kafka` with `piece` put last in each of `parts` (each an encoded flexible struct without
/// tagged fields, found in order in `kafka`), or nil when a part is not there.
func inserting(_ piece: [UInt8], atTheEndOf parts: [[UInt8]], in kafka: [UInt8]) -> [UInt8]? {
    var out: [UInt8] = []
    var from = 0
    for part in parts {
        guard part.last == 0,
            let at = (from...max(from, kafka.count - part.count)).first(where: { kafka[$0...].starts(with: part) })
        else { return nil }
        let end = at + part.count
        out += kafka[from..<(end - 1)] + piece + [0]
        from = end
    }
    return out + kafka[from...]
}

func checkNewerVersion<M: ApiMessage>(
    _ type: M.Type, vectors api: String, kind: String, from: Int16, added: AddedField<M>,
    fill: (inout M) -> Void = { _ in }
) throws {
    let cases = try Vectors.load(api).cases.filter { $0.kind == kind && $0.version == from }
    #expect(!cases.isEmpty, "\(api) \(kind): Kafka's vectors at v\(from)")
    let to = from + 1
    #expect(M.versions.contains(to), "\(api) \(kind) defines v\(to)")
    for c in cases {
        let kafka = [UInt8](Vectors.bytes(c.hex).readableBytesView)
        var message = try M.decode(Vectors.bytes(c.hex), version: from)
        fill(&message)
        let ours = [UInt8](message.encoded(version: to).readableBytesView)
        let label = "\(api) \(kind) v\(to) from Kafka's v\(from) \(c.case)"
        switch added {
        case .none:
            #expect(ours == kafka, "\(label)")
        case .last(let bytes):
            #expect(kafka.last == 0, "\(label): no top-level tagged fields in Kafka's bytes")
            #expect(ours == kafka.dropLast() + bytes + [0], "\(label)")
        case .nested(let bytes, let structs):
            // Each nested struct as Kafka wrote it at the version before (the vectors test holds
            // our encoding at that version equal to Kafka's).
            let parts = structs(message).map { part in
                var writer = WireWriter()
                part.write(to: &writer, version: from)
                return [UInt8](writer.bytes.readableBytesView)
            }
            #expect(!parts.isEmpty || c.case != "filled", "\(label): the filled case has structs to check")
            #expect(ours == inserting(bytes, atTheEndOf: parts, in: kafka), "\(label)")
        }
        #expect(try M.decode(ByteBuffer(bytes: ours), version: to) == message, "\(label) decodes back")
    }
}

@Suite("Kafka 4.x versions from Kafka's bytes at the version before")
struct NewerVersionVectorTests {
    @Test("Produce v12 and TxnOffsetCommit v5 change nothing on the wire (transactions v2)")
    func transactionsV2Bumps() throws {
        try checkNewerVersion(ProduceRequest.self, vectors: "Produce", kind: "request", from: 11, added: .none)
        try checkNewerVersion(ProduceResponse.self, vectors: "Produce", kind: "response", from: 11, added: .none)
        try checkNewerVersion(
            TxnOffsetCommitRequest.self, vectors: "TxnOffsetCommit", kind: "request", from: 4, added: .none)
        try checkNewerVersion(
            TxnOffsetCommitResponse.self, vectors: "TxnOffsetCommit", kind: "response", from: 4, added: .none)
    }

    @Test("EndTxn v5: the response ends with the next producer id and epoch")
    func endTxn() throws {
        try checkNewerVersion(EndTxnRequest.self, vectors: "EndTxn", kind: "request", from: 4, added: .none)
        try checkNewerVersion(
            EndTxnResponse.self, vectors: "EndTxn", kind: "response", from: 4,
            added: .last([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        ) {
            $0.producerId = 0x0102_0304_0506_0708
            $0.producerEpoch = 0x090A
        }
    }

    @Test("Metadata v13: the response ends with a top-level error code (KIP-1102)")
    func metadata() throws {
        try checkNewerVersion(MetadataRequest.self, vectors: "Metadata", kind: "request", from: 12, added: .none)
        try checkNewerVersion(
            MetadataResponse.self, vectors: "Metadata", kind: "response", from: 12, added: .last([0x00, 0x4A])
        ) { $0.errorCode = 0x4A }
    }

    @Test("ListOffsets v10: the request ends with the remote-storage timeout (KIP-1075)")
    func listOffsets() throws {
        try checkNewerVersion(
            ListOffsetsRequest.self, vectors: "ListOffsets", kind: "request", from: 9, added: .last([1, 2, 3, 4])
        ) { $0.timeoutMs = 0x0102_0304 }
        try checkNewerVersion(
            ListOffsetsResponse.self, vectors: "ListOffsets", kind: "response", from: 9, added: .none)
    }

    @Test("Vote v2: each partition ends with the pre-vote flag (KIP-996)")
    func vote() throws {
        try checkNewerVersion(
            VoteRequest.self, vectors: "Vote", kind: "request", from: 1,
            added: .nested([1]) { $0.topics.flatMap(\.partitions) }
        ) {
            for t in $0.topics.indices {
                for p in $0.topics[t].partitions.indices { $0.topics[t].partitions[p].preVote = true }
            }
        }
        try checkNewerVersion(VoteResponse.self, vectors: "Vote", kind: "response", from: 1, added: .none)
    }

    @Test("WriteTxnMarkers v2: each marker ends with its transaction version (KIP-1228)")
    func writeTxnMarkers() throws {
        try checkNewerVersion(
            WriteTxnMarkersRequest.self, vectors: "WriteTxnMarkers", kind: "request", from: 1,
            added: .nested([2]) { $0.markers }
        ) {
            for m in $0.markers.indices { $0.markers[m].transactionVersion = 2 }
        }
        try checkNewerVersion(
            WriteTxnMarkersResponse.self, vectors: "WriteTxnMarkers", kind: "response", from: 1, added: .none)
    }

    @Test("the expected bytes put a nested field last in each struct, nowhere else")
    func insertingPlacesTheFieldLast() {
        // Two structs [1 2 0] and [3 4 0] after a count byte, then a trailing tag section.
        let kafka: [UInt8] = [2, 1, 2, 0, 3, 4, 0, 0]
        #expect(inserting([9], atTheEndOf: [[1, 2, 0], [3, 4, 0]], in: kafka) == [2, 1, 2, 9, 0, 3, 4, 9, 0, 0])
        #expect(inserting([9], atTheEndOf: [[1, 2, 0], [3, 4, 0]], in: kafka) != [2, 1, 9, 2, 0, 3, 9, 4, 0, 0])
        #expect(inserting([9], atTheEndOf: [[3, 4, 0], [1, 2, 0]], in: kafka) == nil)
        #expect(inserting([9], atTheEndOf: [[1, 2, 5]], in: kafka) == nil)
    }
}
