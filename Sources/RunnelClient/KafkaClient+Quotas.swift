import RunnelWire

/// A client quota entity and its quotas, as DescribeClientQuotas gives them.
public struct ClientQuotaDescription: Sendable, Equatable {
    /// Entity type (`user`, `client-id`) to name; nil is the type's default entity.
    public var entity: [String: String?]
    /// Quota key to value.
    public var quotas: [String: Double]
}

/// How a DescribeClientQuotas filter matches one entity type.
public enum ClientQuotaMatch: Sendable, Equatable {
    /// The entity of this name.
    case exact(String)
    /// The type's default entity.
    case defaultEntity
    /// Any entity of the type, named or default.
    case any
}

extension KafkaClient {
    // MARK: Client quotas (Kafka's Admin alterClientQuotas, describeClientQuotas; KIP-546)

    /// Sets the keys of `set` and removes the keys of `remove` on one entity (entity type to name,
    /// nil for the default). Throws the broker's reason when it refuses.
    public func alterClientQuotas(
        entity: [String: String?], set: [String: Double], remove: [String] = [], validateOnly: Bool = false
    ) async throws {
        let parts = entity.keys.sorted().map {
            AlterClientQuotasRequest.EntityData(entityType: $0, entityName: entity[$0]!)
        }
        let ops =
            set.keys.sorted().map { AlterClientQuotasRequest.OpData(key: $0, value: set[$0]!, remove: false) }
            + remove.map { AlterClientQuotasRequest.OpData(key: $0, value: 0, remove: true) }
        let (response, _, _) = try await sendAny { _ in
            AlterClientQuotasRequest(entries: [.init(entity: parts, ops: ops)], validateOnly: validateOnly)
        }
        for entry in response.entries where entry.errorCode != 0 {
            throw ClientError(
                "altering the quotas of \(Self.describe(entity)) failed: \(Self.reason(ErrorCode(entry.errorCode), entry.errorMessage))"
            )
        }
    }

    /// The entities whose quotas match `filter` (entity type to match rule); `strict` leaves out
    /// entities with types the filter does not name. An empty filter lists every entity.
    public func describeClientQuotas(
        _ filter: [String: ClientQuotaMatch] = [:], strict: Bool = false
    ) async throws -> [ClientQuotaDescription] {
        let components = filter.keys.sorted().map { type -> DescribeClientQuotasRequest.ComponentData in
            switch filter[type]! {
            case .exact(let name): .init(entityType: type, matchType: 0, match: name)
            case .defaultEntity: .init(entityType: type, matchType: 1, match: nil)
            case .any: .init(entityType: type, matchType: 2, match: nil)
            }
        }
        let (response, _, _) = try await sendAny { _ in
            DescribeClientQuotasRequest(components: components, strict: strict)
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "describing client quotas failed: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))")
        }
        return (response.entries ?? []).map { entry in
            var entity: [String: String?] = [:]
            for part in entry.entity { entity[part.entityType] = .some(part.entityName) }
            var quotas: [String: Double] = [:]
            for value in entry.values { quotas[value.key] = value.value }
            return ClientQuotaDescription(entity: entity, quotas: quotas)
        }
    }

    /// `user-principal 'alice', client-id 'app'`, `the default client-id`, as kafka-configs
    /// names quota entities.
    public static func describe(_ entity: [String: String?]) -> String {
        var parts: [String] = []
        for type in ["user", "client-id"] + entity.keys.sorted().filter({ $0 != "user" && $0 != "client-id" }) {
            guard let name = entity[type] else { continue }
            let label = type == "user" ? "user-principal" : type
            parts.append(name.map { "\(label) '\($0)'" } ?? "the default \(label)")
        }
        return parts.joined(separator: ", ")
    }
}
