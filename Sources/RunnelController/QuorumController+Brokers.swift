import RunnelCore
import RunnelMetadata
import RunnelWire

extension QuorumController {
    /// BrokerRegistration: a RegisterBrokerRecord whose broker epoch is the offset the record will
    /// get (`nextOffset`). A broker starts fenced unless `unfenced` (single-node bootstrap, where
    /// the broker and controller are one process and caught up by construction).
    public func registerBroker(
        _ request: BrokerRegistrationRequest, clusterId: String, nextOffset: Int64, unfenced: Bool = false,
        hasLiveSession: (NodeID) -> Bool = { _ in false }
    ) -> ControllerResult<BrokerRegistrationResponse> {
        guard request.clusterId == clusterId else {
            return ControllerResult(
                records: [], response: BrokerRegistrationResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue))
        }
        if let existing = image.brokers[NodeID(request.brokerId)], existing.incarnationId == request.incarnationId {
            // The same process asking again (its first answer was lost, or the request arrived
            // twice): it keeps the registration it has, so its heartbeats stay valid.
            return ControllerResult(
                records: [], response: BrokerRegistrationResponse(errorCode: 0, brokerEpoch: existing.epoch))
        }
        if let existing = image.brokers[NodeID(request.brokerId)], existing.incarnationId != request.incarnationId,
            hasLiveSession(existing.id), request.previousBrokerEpoch != existing.epoch
        {
            // Another live process still holds this id (its heartbeats have not lapsed).
            return ControllerResult(
                records: [],
                response: BrokerRegistrationResponse(errorCode: ErrorCode.duplicateBrokerRegistration.rawValue))
        }
        if registrationFeatureRefusal(request.features) != nil {
            // Kafka's ClusterControlManager: a broker that cannot run a finalized level may not join.
            return ControllerResult(
                records: [], response: BrokerRegistrationResponse(errorCode: ErrorCode.unsupportedVersion.rawValue))
        }
        let record = RegisterBrokerRecord(
            brokerId: request.brokerId, isMigratingZkBroker: false, incarnationId: request.incarnationId,
            brokerEpoch: nextOffset,
            endPoints: request.listeners.map {
                .init(name: $0.name, host: $0.host, port: $0.port, securityProtocol: $0.securityProtocol)
            },
            features: request.features.map {
                .init(
                    name: $0.name, minSupportedVersion: $0.minSupportedVersion,
                    maxSupportedVersion: $0.maxSupportedVersion)
            },
            rack: request.rack, fenced: !unfenced, inControlledShutdown: false, logDirs: request.logDirs)
        // The old incarnation's partitions need new leaders while this one catches up (fenced).
        var records: [MetadataRecord] = [.registerBroker(record)]
        var delta = MetadataDelta(image)
        delta.replay(records[0], offset: nextOffset, epoch: image.provenance.lastEpoch)
        let after = delta.apply()
        records += electionChanges(image: after, live: liveBrokerIds(after)).map { .partitionChange($0) }
        return ControllerResult(
            records: records, response: BrokerRegistrationResponse(errorCode: 0, brokerEpoch: nextOffset))
    }
}

extension QuorumController {
    /// Producer ids handed out per AllocateProducerIds (Kafka's block size).
    public static let producerIdBlockSize: Int32 = 1000

    /// AllocateProducerIds: the next block of ids, recorded so no id is ever handed out twice.
    public func allocateProducerIds(
        _ request: AllocateProducerIdsRequest
    ) -> ControllerResult<AllocateProducerIdsResponse> {
        guard let broker = image.brokers[NodeID(request.brokerId)] else {
            return ControllerResult(
                records: [], response: AllocateProducerIdsResponse(errorCode: ErrorCode.brokerIdNotRegistered.rawValue))
        }
        guard request.brokerEpoch == broker.epoch || request.brokerEpoch < 0 else {
            return ControllerResult(
                records: [], response: AllocateProducerIdsResponse(errorCode: ErrorCode.staleBrokerEpoch.rawValue))
        }
        let start = image.nextProducerId
        guard start <= Int64.max - Int64(Self.producerIdBlockSize) else {
            return ControllerResult(
                records: [], response: AllocateProducerIdsResponse(errorCode: ErrorCode.unknownServerError.rawValue))
        }
        let record = ProducerIdsRecord(
            brokerId: request.brokerId, brokerEpoch: broker.epoch,
            nextProducerId: start + Int64(Self.producerIdBlockSize))
        return ControllerResult(
            records: [.producerIds(record)],
            response: AllocateProducerIdsResponse(
                errorCode: 0, producerIdStart: start, producerIdLen: Self.producerIdBlockSize))
    }
}
