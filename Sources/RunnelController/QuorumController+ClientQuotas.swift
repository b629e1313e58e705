import RunnelCore
import RunnelMetadata
import RunnelWire

extension QuorumController {
    /// AlterClientQuotas (KIP-546), as Kafka's ClientQuotaControlManager: each entry is checked on
    /// its own and fails whole with INVALID_REQUEST and one sentence when its entity is empty,
    /// names an entity type twice or one other than `user` and `client-id` (`ip` quotas, KIP-612,
    /// are not served), or when an op names an unknown key, a key twice, or a value the key does
    /// not take (byte rates are whole numbers, every value is positive). A valid entry becomes one
    /// ClientQuotaRecord per key set and per key removed that is set; `validate_only` writes none.
    public func alterClientQuotas(_ request: AlterClientQuotasRequest) -> ControllerResult<AlterClientQuotasResponse> {
        var records: [MetadataRecord] = []
        var results: [AlterClientQuotasResponse.EntryData] = []
        for entry in request.entries {
            let echoed = entry.entity.map {
                AlterClientQuotasResponse.EntityData(entityType: $0.entityType, entityName: $0.entityName)
            }
            switch Self.validate(entry) {
            case .failure(let problem):
                results.append(
                    .init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: problem.message, entity: echoed))
            case .success(let entity):
                let current = image.clientQuotas(of: entity)
                for op in entry.ops where !op.remove || current[op.key] != nil {
                    records.append(
                        .clientQuota(
                            ClientQuotaRecord(
                                entity: entity.sortedParts.map { .init(entityType: $0.type, entityName: $0.name) },
                                key: op.key, value: op.remove ? 0 : op.value, remove: op.remove)))
                }
                results.append(.init(errorCode: 0, errorMessage: nil, entity: echoed))
            }
        }
        return ControllerResult(
            records: request.validateOnly ? [] : records,
            response: AlterClientQuotasResponse(throttleTimeMs: 0, entries: results))
    }

    /// Why an AlterClientQuotas entry is refused.
    struct QuotaProblem: Error {
        var message: String
    }

    /// The entity of a valid entry, or what is wrong with the entry.
    static func validate(_ entry: AlterClientQuotasRequest.EntryData) -> Result<ClientQuotaEntity, QuotaProblem> {
        if entry.entity.isEmpty { return .failure(QuotaProblem(message: "Invalid empty client quota entity.")) }
        var parts: [String: String?] = [:]
        for part in entry.entity {
            switch part.entityType {
            case ClientQuotaEntity.user, ClientQuotaEntity.clientId:
                if parts[part.entityType] != nil {
                    return .failure(
                        QuotaProblem(message: "Entity type \(part.entityType) appears more than once in the entity."))
                }
                parts[part.entityType] = .some(part.entityName)
            case ClientQuotaEntity.ip:
                return .failure(QuotaProblem(message: "Quotas of entity type ip (KIP-612) are not supported."))
            default:
                return .failure(QuotaProblem(message: "Unknown entity type \(part.entityType)."))
            }
        }
        var seen: Set<String> = []
        for op in entry.ops {
            guard seen.insert(op.key).inserted else {
                return .failure(QuotaProblem(message: "Quota key \(op.key) appears more than once in the entry."))
            }
            guard let key = ClientQuotaKey(rawValue: op.key) else {
                return .failure(
                    QuotaProblem(
                        message:
                            "Invalid configuration key \(op.key): use producer_byte_rate, consumer_byte_rate or request_percentage."
                    ))
            }
            if !op.remove, let problem = key.problem(with: op.value) {
                return .failure(QuotaProblem(message: problem))
            }
        }
        return .success(ClientQuotaEntity(parts))
    }
}
