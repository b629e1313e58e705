import HashTreeCollections
import RunnelCore
import RunnelWire

/// Collects replayed records on top of an image; `apply()` gives the new image. The delta also
/// says what changed, so publishers (partition managers, caches) act only on that.
public struct MetadataDelta: Sendable {
    public let base: MetadataImage
    private var next: MetadataImage

    /// Topics created or whose partitions changed, by id.
    public private(set) var changedTopics: Set<KafkaUUID> = []
    /// Topics removed (with their last image).
    public private(set) var deletedTopics: [KafkaUUID: TopicImage] = [:]
    public private(set) var changedBrokers: Set<NodeID> = []
    public private(set) var changedConfigs: Set<ConfigResource> = []
    public private(set) var featuresChanged = false
    /// ACL bindings created or removed, by record id: a publisher adds the ones the new image
    /// holds to its authorizer and removes the others.
    public private(set) var changedAcls: Set<KafkaUUID> = []
    /// SCRAM credentials set or removed.
    public private(set) var changedScramCredentials: Set<ScramCredentialKey> = []
    /// Client quota entities whose quotas were set or removed.
    public private(set) var changedClientQuotas: Set<ClientQuotaEntity> = []

    /// Partitions the replayed records touched, by topic id (an index may be listed more than
    /// once). The partition indexes and counts of `next` stay those of `indexedTopics`;
    /// `apply()` moves each touched partition from what `indexedTopics` says to what `next`
    /// says, once per delta and not once per record (kept per record, the indexes made a
    /// million-partition replay 2-3x slower).
    private var touchedPartitions: [KafkaUUID: [Int32]] = [:]
    /// The topics that the partition indexes and counts of `next` describe (`base`'s).
    private var indexedTopics: TreeDictionary<KafkaUUID, TopicImage>

    public init(_ base: MetadataImage) {
        self.base = base
        self.next = base
        self.indexedTopics = base.topicsById
    }

    /// A delta from the empty image to `image` where everything counts as changed: what a
    /// publisher receives when a node starts or loads a snapshot.
    public static func everything(_ image: MetadataImage) -> MetadataDelta {
        var delta = MetadataDelta(.empty)
        delta.next = image
        delta.indexedTopics = image.topicsById
        delta.changedTopics = Set(image.topicsById.keys)
        delta.changedBrokers = Set(image.brokers.keys)
        delta.changedConfigs = Set(image.configs.keys)
        delta.featuresChanged = true
        delta.changedAcls = Set(image.acls.keys)
        delta.changedScramCredentials = Set(image.scramCredentials.keys)
        delta.changedClientQuotas = Set(image.clientQuotas.keys)
        return delta
    }

    /// Whether any record was replayed.
    public var isEmpty: Bool { next.provenance == base.provenance }

    /// Folds one record in. Records that refer to something absent (a partition of an unknown
    /// topic) are ignored, as a standby must never fail on the committed log.
    public mutating func replay(_ record: MetadataRecord, offset: Int64, epoch: Int32) {
        switch record {
        case .topic(let r):
            // A TopicRecord for a topic id already present starts it afresh, without partitions.
            if let old = next.topicsById[r.topicId] { touchedPartitions[r.topicId, default: []] += old.partitions.keys }
            next.topicsById[r.topicId] = TopicImage(id: r.topicId, name: r.name)
            next.topicIdsByName[r.name] = r.topicId
            changedTopics.insert(r.topicId)
            deletedTopics.removeValue(forKey: r.topicId)
        // A partition is changed in place in the topic tree (its subscript moves the topic out
        // while it is changed), so only a topic's first change in a delta copies its partition
        // table, not every change: a copy per record made creating a 100-partition topic
        // quadratic in its partitions.
        case .partition(let r):
            if next.topicsById[r.topicId] != nil {
                next.topicsById[r.topicId]!.partitions[r.partitionId] = PartitionRegistration(r)
                touchedPartitions[r.topicId, default: []].append(r.partitionId)
                changedTopics.insert(r.topicId)
            }
        case .partitionChange(let r):
            if let current = next.topicsById[r.topicId]?.partitions[r.partitionId] {
                next.topicsById[r.topicId]!.partitions[r.partitionId] = current.merging(r)
                touchedPartitions[r.topicId, default: []].append(r.partitionId)
                changedTopics.insert(r.topicId)
            }
        case .removeTopic(let r):
            if let topic = next.topicsById.removeValue(forKey: r.topicId) {
                touchedPartitions[r.topicId, default: []] += topic.partitions.keys
                next.topicIdsByName.removeValue(forKey: topic.name)
                let resource = ConfigResource(.topic, topic.name)
                if next.configs.removeValue(forKey: resource) != nil { changedConfigs.insert(resource) }
                changedTopics.remove(r.topicId)
                deletedTopics[r.topicId] = base.topicsById[r.topicId] ?? topic
            }
        case .config(let r):
            let resource = ConfigResource(ConfigResourceType(rawValue: r.resourceType) ?? .unknown, r.resourceName)
            var entries = next.configs[resource] ?? [:]
            if let value = r.value {
                entries[r.name] = value
            } else {
                entries.removeValue(forKey: r.name)
            }
            next.configs[resource] = entries.isEmpty ? nil : entries
            changedConfigs.insert(resource)
        case .registerBroker(let r):
            let id = NodeID(r.brokerId)
            next.brokers[id] = BrokerRegistration(
                id: id, epoch: r.brokerEpoch, incarnationId: r.incarnationId,
                endpoints: r.endPoints.map {
                    .init(listener: $0.name, host: $0.host, port: Int($0.port), securityProtocol: $0.securityProtocol)
                },
                rack: r.rack, fenced: r.fenced, inControlledShutdown: r.inControlledShutdown, logDirs: r.logDirs,
                supportedFeatures: BrokerRegistration.supportedFeatures(r.features))
            changedBrokers.insert(id)
        case .unregisterBroker(let r):
            let id = NodeID(r.brokerId)
            if let b = next.brokers[id], b.epoch == r.brokerEpoch || r.brokerEpoch < 0 {
                next.brokers.removeValue(forKey: id)
                changedBrokers.insert(id)
            }
        case .fenceBroker(let r):
            updateBroker(NodeID(r.id), epoch: r.epoch) { $0.fenced = true }
        case .unfenceBroker(let r):
            updateBroker(NodeID(r.id), epoch: r.epoch) { $0.fenced = false }
        case .brokerRegistrationChange(let r):
            updateBroker(NodeID(r.brokerId), epoch: r.brokerEpoch) { b in
                // fenced: 1 fence, -1 unfence, 0 unchanged; inControlledShutdown: 1 set, 0 unchanged.
                if r.fenced == 1 { b.fenced = true } else if r.fenced == -1 { b.fenced = false }
                if r.inControlledShutdown == 1 { b.inControlledShutdown = true }
                if !r.logDirs.isEmpty { b.logDirs = r.logDirs }
            }
        case .featureLevel(let r):
            if r.featureLevel == 0 {
                next.features.removeValue(forKey: r.name)
            } else {
                next.features[r.name] = r.featureLevel
            }
            featuresChanged = true
        case .producerIds(let r):
            next.nextProducerId = r.nextProducerId
            next.producerIdsBroker = r.brokerId
        case .accessControlEntry(let r):
            next.acls[r.id] = AclEntry(
                id: r.id, resourceType: r.resourceType, resourceName: r.resourceName, patternType: r.patternType,
                principal: r.principal, host: r.host, operation: r.operation, permissionType: r.permissionType)
            changedAcls.insert(r.id)
        case .removeAccessControlEntry(let r):
            if next.acls.removeValue(forKey: r.id) != nil { changedAcls.insert(r.id) }
        case .userScramCredential(let r):
            let entry = ScramCredentialEntry(r)
            next.scramCredentials[entry.key] = entry
            changedScramCredentials.insert(entry.key)
        case .removeUserScramCredential(let r):
            let key = ScramCredentialKey(user: r.name, mechanism: r.mechanism)
            if next.scramCredentials.removeValue(forKey: key) != nil { changedScramCredentials.insert(key) }
        case .registerController(let r):
            next.controllers[NodeID(r.controllerId)] = ControllerRegistration(r)
        case .clientQuota(let r):
            // Kafka's ClientQuotasDelta: a record with no entity parts names nothing and is ignored.
            guard !r.entity.isEmpty else { break }
            let entity = ClientQuotaEntity(r)
            var values = next.clientQuotas[entity] ?? [:]
            if r.remove {
                values.removeValue(forKey: r.key)
            } else {
                values[r.key] = r.value
            }
            next.clientQuotas[entity] = values.isEmpty ? nil : values
            changedClientQuotas.insert(entity)
        case .noOp, .zkMigrationState, .delegationToken, .removeDelegationToken,
            .beginTransaction, .endTransaction, .abortTransaction:
            break
        }
        next.provenance = MetadataProvenance(
            lastOffset: offset, lastEpoch: epoch, recordCount: next.provenance.recordCount + 1)
    }

    /// Notes that the log advanced to `offset` without a metadata record (control records).
    public mutating func advance(offset: Int64, epoch: Int32) {
        next.provenance = MetadataProvenance(
            lastOffset: offset, lastEpoch: epoch, recordCount: next.provenance.recordCount)
    }

    private mutating func updateBroker(_ id: NodeID, epoch: Int64, _ change: (inout BrokerRegistration) -> Void) {
        guard var broker = next.brokers[id], broker.epoch == epoch else { return }
        change(&broker)
        next.brokers[id] = broker
        changedBrokers.insert(id)
    }

    /// The image with every replayed record applied. The partition indexes and counts are
    /// brought up to date here for the partitions the records touched, each once however many
    /// records named it; a debug build checks them (`partitionIndexesHold`).
    public func apply() -> MetadataImage {
        guard !touchedPartitions.isEmpty else { return next }
        var image = next
        image.reindex(touchedPartitions, indexedTopics: indexedTopics)
        assert(
            image.partitionIndexesHold(touched: touchedPartitions),
            "the kept partition indexes or counts are not what the partitions say")
        return image
    }

    /// The image as it stands (for reading during replay), its indexes and counts up to date.
    public var image: MetadataImage {
        guard !touchedPartitions.isEmpty else { return next }
        var image = next
        image.reindex(touchedPartitions, indexedTopics: indexedTopics)
        return image
    }
}
