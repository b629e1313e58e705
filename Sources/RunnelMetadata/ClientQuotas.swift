import RunnelWire

/// A client quota entity (KIP-55, KIP-546): a user, a client id, or a user and a client id, each
/// either named or the type's default entity (a nil name). ClientQuotaRecords name it part by part.
public struct ClientQuotaEntity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Kafka's entity type names.
    public static let user = "user"
    public static let clientId = "client-id"
    public static let ip = "ip"

    /// The entity's parts by entity type; a nil name is that type's default entity.
    public private(set) var parts: [String: String?]

    /// An entity of the given parts.
    public init(_ parts: [String: String?]) {
        precondition(!parts.isEmpty, "a client quota entity names at least one entity type")
        self.parts = parts
    }

    /// The entity a user and/or client id part make (`.some(nil)` is the default entity).
    public init(user: String?? = .none, clientId: String?? = .none) {
        var parts: [String: String?] = [:]
        if case .some(let name) = user { parts[Self.user] = name }
        if case .some(let name) = clientId { parts[Self.clientId] = name }
        self.init(parts)
    }

    /// The entity a ClientQuotaRecord names.
    public init(_ record: ClientQuotaRecord) {
        var parts: [String: String?] = [:]
        for part in record.entity { parts[part.entityType] = part.entityName }
        self.init(parts)
    }

    /// The parts in entity type order (`client-id` before `user`), as records and answers list them.
    public var sortedParts: [(type: String, name: String?)] {
        parts.keys.sorted().map { ($0, parts[$0]!) }
    }

    /// `client-id=<default>`, `user=alice,client-id=app`: user first, as kafka-configs names them.
    public var description: String {
        sortedParts.sorted { a, b in a.type == Self.user && b.type != Self.user }
            .map { "\($0.type)=\($0.name ?? "<default>")" }.joined(separator: ",")
    }

    public static func < (lhs: ClientQuotaEntity, rhs: ClientQuotaEntity) -> Bool {
        func key(_ e: ClientQuotaEntity) -> [String] {
            e.sortedParts.flatMap { [$0.type, $0.name.map { "1" + $0 } ?? "0"] }
        }
        return key(lhs).lexicographicallyPrecedes(key(rhs))
    }
}

/// Kafka's client quota keys (QuotaConfig) and how their values are checked.
public enum ClientQuotaKey: String, Sendable, CaseIterable {
    /// Bytes per second a producer may append (a long).
    case producerByteRate = "producer_byte_rate"
    /// Bytes per second a consumer may fetch (a long).
    case consumerByteRate = "consumer_byte_rate"
    /// Percentage of one request handler thread's time per quota window (a double).
    case requestPercentage = "request_percentage"

    /// Why `value` is refused for this key (Kafka's ClientQuotaControlManager checks), or nil.
    public func problem(with value: Double) -> String? {
        guard value.isFinite, value > 0 else { return "Quota \(rawValue) must be a positive number, not \(value)" }
        switch self {
        case .producerByteRate, .consumerByteRate:
            // Kafka's LONG check: within 1e-6 of a whole number.
            let whole = (value + 1e-6).rounded(.down)
            if abs(whole - value) > 1e-6 || whole > Double(Int64.max) {
                return "Configuration \(rawValue) must be a Long value"
            }
            return nil
        case .requestPercentage:
            return nil
        }
    }
}

/// The quota that applies to a connection, as Kafka's DefaultQuotaCallback finds it, and the
/// entity whose rate it is measured over (the metric tags: user and client id, empty when the
/// applying quota does not name that part).
public struct ResolvedClientQuota: Sendable, Equatable, Hashable {
    /// Metric tag `user`: the principal's name, or "" when the quota is a client-id quota.
    public var userTag: String
    /// Metric tag `client-id`: the client id, or "" when the quota is a user quota.
    public var clientIdTag: String
    /// The quota's value, nil when no quota applies.
    public var limit: Double?

    public init(userTag: String, clientIdTag: String, limit: Double?) {
        self.userTag = userTag
        self.clientIdTag = clientIdTag
        self.limit = limit
    }
}

extension MetadataImage {
    /// The quotas of `entity` (empty when it has none).
    public func clientQuotas(of entity: ClientQuotaEntity) -> [String: Double] {
        guard let values = clientQuotas[entity] else { return [:] }
        var out: [String: Double] = [:]
        for (k, v) in values { out[k] = v }
        return out
    }

    /// The quota for `key` that applies to `user` connected with `clientId`, in Kafka's order of
    /// precedence (KIP-55, DefaultQuotaCallback): user and client id, user and default client id,
    /// user, default user and client id, default user and default client id, default user,
    /// client id, default client id. The tags say whose rate counts: connections that share the
    /// applying quota entity share one rate (a user quota limits all of that user's clients
    /// together; a default client-id quota limits each client id on its own).
    public func resolveClientQuota(_ key: ClientQuotaKey, user: String, clientId: String) -> ResolvedClientQuota {
        func value(_ user: String??, _ clientId: String??) -> Double? {
            clientQuotas[ClientQuotaEntity(user: user, clientId: clientId)]?[key.rawValue]
        }
        let candidates: [(String??, String??, String, String)] = [
            (.some(user), .some(clientId), user, clientId),
            (.some(user), .some(nil), user, clientId),
            (.some(user), .none, user, ""),
            (.some(nil), .some(clientId), user, clientId),
            (.some(nil), .some(nil), user, clientId),
            (.some(nil), .none, user, ""),
            (.none, .some(clientId), "", clientId),
            (.none, .some(nil), "", clientId),
        ]
        for (u, c, userTag, clientIdTag) in candidates {
            if let limit = value(u, c) {
                return ResolvedClientQuota(userTag: userTag, clientIdTag: clientIdTag, limit: limit)
            }
        }
        return ResolvedClientQuota(userTag: "", clientIdTag: clientId, limit: nil)
    }

    /// DescribeClientQuotas from the image, with Kafka's match rules (ClientQuotasImage.describe):
    /// match type 0 the exact name, 1 the default entity, 2 any entity of the type; `strict`
    /// leaves out entities with entity types the filter does not name. A malformed filter gets
    /// INVALID_REQUEST and one sentence.
    public func describeClientQuotas(_ request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
        func invalid(_ message: String) -> DescribeClientQuotasResponse {
            DescribeClientQuotasResponse(
                throttleTimeMs: 0, errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: message, entries: nil)
        }
        var exact: [String: String?] = [:]
        var anyOf: Set<String> = []
        for component in request.components {
            let type = component.entityType
            if type.isEmpty { return invalid("Invalid empty entity type.") }
            if exact[type] != nil || anyOf.contains(type) {
                return invalid("Entity type \(type) cannot appear more than once in the filter.")
            }
            if ![ClientQuotaEntity.user, ClientQuotaEntity.clientId, ClientQuotaEntity.ip].contains(type) {
                return invalid("Unknown entity type \(type).")
            }
            switch component.matchType {
            case 0:
                guard let name = component.match else {
                    return invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.")
                }
                exact[type] = .some(name)
            case 1:
                if component.match != nil {
                    return invalid("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
                }
                exact[type] = .some(nil)
            case 2:
                if component.match != nil {
                    return invalid("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
                }
                anyOf.insert(type)
            default:
                return invalid("Unknown match type \(component.matchType).")
            }
        }
        let named = Set(exact.keys).union(anyOf)
        if named.contains(ClientQuotaEntity.ip) && named.count > 1 {
            return invalid("Entity type ip cannot be combined with user or client-id in a filter.")
        }
        var entries: [DescribeClientQuotasResponse.EntryData] = []
        for entity in clientQuotas.keys.sorted() {
            let parts = entity.parts
            if request.strict && parts.count != named.count { continue }
            guard exact.allSatisfy({ type, name in parts[type].map { $0 == name } ?? false }) else { continue }
            guard anyOf.allSatisfy({ parts[$0] != nil }) else { continue }
            let values = clientQuotas[entity]!
            entries.append(
                .init(
                    entity: entity.sortedParts.map { .init(entityType: $0.type, entityName: $0.name) },
                    values: values.keys.sorted().map { .init(key: $0, value: values[$0]!) }))
        }
        return DescribeClientQuotasResponse(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, entries: entries)
    }
}
