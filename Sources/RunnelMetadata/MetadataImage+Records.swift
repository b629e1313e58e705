import HashTreeCollections
import RunnelCore
import RunnelWire

extension MetadataImage {
    /// Builds an image from its parts (snapshot loading).
    public init(
        provenance: MetadataProvenance, features: [String: Int16], brokers: [BrokerRegistration], topics: [TopicImage],
        configs: [ConfigResource: [String: String]], nextProducerId: Int64, producerIdsBroker: Int32, acls: [AclEntry],
        scramCredentials: [ScramCredentialEntry] = [], controllers: [ControllerRegistration] = [],
        clientQuotas: [ClientQuotaEntity: [String: Double]] = [:]
    ) {
        var image = MetadataImage.empty
        image.provenance = provenance
        for (k, v) in features { image.features[k] = v }
        for b in brokers { image.brokers[b.id] = b }
        for t in topics {
            image.topicsById[t.id] = t
            image.topicIdsByName[t.name] = t.id
        }
        image.partitionCount = image.countPartitions()
        image.offlinePartitionCount = image.countOfflinePartitions()
        image.leaderCounts = image.countLeaders()
        (image.brokerIndexByTopic, image.leaderlessPartitions) = image.scanPartitionIndexes()
        for (resource, entries) in configs where !entries.isEmpty {
            var tree = TreeDictionary<String, String>()
            for (k, v) in entries { tree[k] = v }
            image.configs[resource] = tree
        }
        image.nextProducerId = nextProducerId
        image.producerIdsBroker = producerIdsBroker
        for acl in acls { image.acls[acl.id] = acl }
        for credential in scramCredentials { image.scramCredentials[credential.key] = credential }
        for controller in controllers { image.controllers[controller.id] = controller }
        for (entity, values) in clientQuotas where !values.isEmpty {
            var tree = TreeDictionary<String, Double>()
            for (k, v) in values { tree[k] = v }
            image.clientQuotas[entity] = tree
        }
        self = image
    }

    /// The image as metadata records in a canonical order (what a Kafka snapshot holds).
    /// Replaying them on an empty image gives this image back.
    public func records() -> [MetadataRecord] {
        var out: [MetadataRecord] = []
        forEachRecord { out.append($0) }
        return out
    }

    /// Calls `body` with each of `records()` in turn, without holding them all (the content
    /// checksum of a million-partition image walks them twice per snapshot).
    public func forEachRecord(_ body: (MetadataRecord) -> Void) {
        for name in features.keys.sorted() {
            body(.featureLevel(FeatureLevelRecord(name: name, featureLevel: features[name]!)))
        }
        for id in brokers.keys.sorted() {
            let b = brokers[id]!
            body(
                .registerBroker(
                    RegisterBrokerRecord(
                        brokerId: b.id.rawValue, isMigratingZkBroker: false, incarnationId: b.incarnationId,
                        brokerEpoch: b.epoch,
                        endPoints: b.endpoints.map {
                            .init(
                                name: $0.listener, host: $0.host, port: UInt16(clamping: $0.port),
                                securityProtocol: $0.securityProtocol)
                        },
                        features: b.supportedFeatures.keys.sorted().map {
                            .init(
                                name: $0, minSupportedVersion: b.supportedFeatures[$0]!.lowerBound,
                                maxSupportedVersion: b.supportedFeatures[$0]!.upperBound)
                        }, rack: b.rack, fenced: b.fenced, inControlledShutdown: b.inControlledShutdown,
                        logDirs: b.logDirs)))
        }
        for id in controllers.keys.sorted() { body(.registerController(controllers[id]!.record)) }
        for name in topicNames {
            let t = topic(named: name)!
            body(.topic(TopicRecord(name: t.name, topicId: t.id)))
            for index in t.partitions.keys.sorted() {
                let p = t.partitions[index]!
                body(
                    .partition(
                        PartitionRecord(
                            partitionId: index, topicId: t.id, replicas: p.replicas, isr: p.isr,
                            removingReplicas: p.removingReplicas,
                            addingReplicas: p.addingReplicas, leader: p.leader,
                            leaderRecoveryState: p.leaderRecoveryState,
                            leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch, directories: [],
                            eligibleLeaderReplicas: p.eligibleLeaderReplicas.isEmpty ? nil : p.eligibleLeaderReplicas,
                            lastKnownElr: p.lastKnownElr.isEmpty ? nil : p.lastKnownElr)))
            }
        }
        for resource in configs.keys.sorted() {
            let entries = configs[resource]!
            for name in entries.keys.sorted() {
                body(
                    .config(
                        ConfigRecord(
                            resourceType: resource.type.rawValue, resourceName: resource.name, name: name,
                            value: entries[name]!)))
            }
        }
        if nextProducerId > 0 || producerIdsBroker >= 0 {
            let brokerEpoch = brokers[NodeID(producerIdsBroker)]?.epoch ?? -1
            body(
                .producerIds(
                    ProducerIdsRecord(
                        brokerId: producerIdsBroker, brokerEpoch: brokerEpoch, nextProducerId: nextProducerId)))
        }
        for id in acls.keys.sorted() {
            let a = acls[id]!
            body(
                .accessControlEntry(
                    AccessControlEntryRecord(
                        id: a.id, resourceType: a.resourceType, resourceName: a.resourceName,
                        patternType: a.patternType,
                        principal: a.principal, host: a.host, operation: a.operation, permissionType: a.permissionType))
            )
        }
        for key in scramCredentials.keys.sorted() {
            body(.userScramCredential(scramCredentials[key]!.record))
        }
        for entity in clientQuotas.keys.sorted() {
            let values = clientQuotas[entity]!
            for key in values.keys.sorted() {
                body(
                    .clientQuota(
                        ClientQuotaRecord(
                            entity: entity.sortedParts.map { .init(entityType: $0.type, entityName: $0.name) },
                            key: key, value: values[key]!, remove: false)))
            }
        }
    }

    /// Builds an image by replaying canonical records, stamped with `provenance`.
    public static func replaying(_ records: [MetadataRecord], provenance: MetadataProvenance) -> MetadataImage {
        var delta = MetadataDelta(.empty)
        for record in records { delta.replay(record, offset: provenance.lastOffset, epoch: provenance.lastEpoch) }
        var image = delta.apply()
        image.provenance = provenance
        return image
    }

    /// A checksum of the logical content (FNV-1a 64 over the canonical records), independent of
    /// how the image is stored.
    /// Each record is framed into one reused buffer (a buffer per record was a quarter of a
    /// million-partition snapshot write).
    public var contentChecksum: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var writer = WireWriter(capacity: 256)
        forEachRecord { record in
            writer.buffer.clear()
            MetadataRecordFrame.write(record, version: record.latestVersion, to: &writer)
            writer.buffer.withUnsafeReadableBytes { bytes in
                for byte in bytes {
                    hash ^= UInt64(byte)
                    hash = hash &* 0x0000_0100_0000_01B3
                }
            }
        }
        return hash
    }
}
