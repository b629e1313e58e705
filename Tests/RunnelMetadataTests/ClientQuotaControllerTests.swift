// AlterClientQuotas on the controller (KIP-546, Kafka's ClientQuotaControlManager): a valid entry
// becomes one ClientQuotaRecord per key set or removed and changes nothing until replayed;
// validate_only writes nothing; each invalid entry (empty entity, unknown or repeated entity
// type, ip entities, unknown or repeated key, a fractional or non-positive byte rate) fails
// alone with INVALID_REQUEST; the image drops an entity once its last key is removed, and the
// canonical records of an image with quotas rebuild it.
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelWire
import Testing

private typealias Entry = AlterClientQuotasRequest.EntryData

private func entry(_ parts: [(String, String?)], _ ops: [(String, Double?)]) -> Entry {
    Entry(
        entity: parts.map { .init(entityType: $0.0, entityName: $0.1) },
        ops: ops.map { .init(key: $0.0, value: $0.1 ?? 0, remove: $0.1 == nil) })
}

@Suite("AlterClientQuotas")
struct ClientQuotaControllerTests {
    @Test func setThenRemoveThroughRecords() {
        var c = securityController()
        let app = ClientQuotaEntity(clientId: .some("app"))
        let set = c.alterClientQuotas(
            AlterClientQuotasRequest(
                entries: [
                    entry([("client-id", "app")], [("producer_byte_rate", 1_048_576), ("request_percentage", 25)])
                ]))
        #expect(set.response.entries.map(\.errorCode) == [0])
        #expect(set.response.entries[0].entity.map(\.entityName) == ["app"])
        #expect(set.records.count == 2)
        #expect(c.image.clientQuotas.isEmpty, "nothing changes before replay")
        commit(&c, set.records)
        #expect(c.image.clientQuotas(of: app) == ["producer_byte_rate": 1_048_576, "request_percentage": 25])

        // Removing a key that is not set writes nothing; the last key's removal drops the entity.
        let remove = c.alterClientQuotas(
            AlterClientQuotasRequest(
                entries: [entry([("client-id", "app")], [("producer_byte_rate", nil), ("consumer_byte_rate", nil)])]))
        #expect(remove.records.count == 1)
        commit(&c, remove.records)
        #expect(c.image.clientQuotas(of: app) == ["request_percentage": 25])
        commit(
            &c,
            c.alterClientQuotas(
                AlterClientQuotasRequest(entries: [entry([("client-id", "app")], [("request_percentage", nil)])])
            ).records)
        #expect(c.image.clientQuotas.isEmpty)
    }

    @Test func validateOnlyWritesNothing() {
        let c = securityController()
        let r = c.alterClientQuotas(
            AlterClientQuotasRequest(
                entries: [entry([("user", nil)], [("consumer_byte_rate", 2048)])], validateOnly: true))
        #expect(r.records.isEmpty && r.response.entries.map(\.errorCode) == [0])
    }

    @Test func eachInvalidEntryFailsAlone() {
        let c = securityController()
        let bad: [(Entry, String)] = [
            (entry([], [("producer_byte_rate", 1)]), "empty client quota entity"),
            (entry([("group", "g")], [("producer_byte_rate", 1)]), "Unknown entity type group"),
            (entry([("user", "a"), ("user", "b")], [("producer_byte_rate", 1)]), "appears more than once"),
            (entry([("ip", "1.2.3.4")], [("producer_byte_rate", 1)]), "KIP-612"),
            (entry([("user", "a")], [("fetch_rate", 1)]), "Invalid configuration key fetch_rate"),
            (entry([("user", "a")], [("producer_byte_rate", 1), ("producer_byte_rate", 2)]), "more than once"),
            (entry([("user", "a")], [("producer_byte_rate", 1.5)]), "must be a Long value"),
            (entry([("user", "a")], [("consumer_byte_rate", 0)]), "positive"),
            (entry([("user", "a")], [("request_percentage", -1)]), "positive"),
        ]
        let good = entry([("user", nil), ("client-id", nil)], [("request_percentage", 0.5)])
        let r = c.alterClientQuotas(AlterClientQuotasRequest(entries: bad.map(\.0) + [good]))
        for (i, (_, sentence)) in bad.enumerated() {
            #expect(r.response.entries[i].errorCode == ErrorCode.invalidRequest.rawValue)
            #expect(r.response.entries[i].errorMessage?.contains(sentence) == true, "\(r.response.entries[i])")
        }
        #expect(r.response.entries.last?.errorCode == 0)
        #expect(r.records.count == 1, "only the valid entry writes")
    }

    @Test func imageRecordsRebuildTheQuotas() {
        var c = securityController()
        commit(
            &c,
            c.alterClientQuotas(
                AlterClientQuotasRequest(entries: [
                    entry([("user", "alice"), ("client-id", nil)], [("producer_byte_rate", 100)]),
                    entry([("client-id", nil)], [("consumer_byte_rate", 200)]),
                ])
            ).records)
        let rebuilt = MetadataImage.replaying(c.image.records(), provenance: c.image.provenance)
        #expect(rebuilt == c.image)
        #expect(rebuilt.clientQuotas.count == 2)
    }
}
