import Logging
import NIOCore
import RunnelCore
import RunnelRaft
import RunnelWire

/// The controller listener: Kafka's Raft APIs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch on
/// `__cluster_metadata`), DescribeQuorum and ApiVersions. Requests are handed to the quorum's
/// event loop; answers come back when the core gives them (a fetch may be parked).
public struct QuorumEndpoint: RequestHandler {
    let quorum: MetadataQuorum<KafkaRaftRuntime>
    let runtime: KafkaRaftRuntime
    let clusterId: String
    /// The voters and their controller listeners (DescribeCluster on this listener lists them).
    let voters: [VoterSpec]

    public init(quorum: MetadataQuorum<KafkaRaftRuntime>, runtime: KafkaRaftRuntime, clusterId: String, voters: [VoterSpec]) {
        self.quorum = quorum
        self.runtime = runtime
        self.clusterId = clusterId
        self.voters = voters
    }

    static let supportedVersions: [ApiKey: ClosedRange<Int16>] = [
        .apiVersions: 0...4,
        .vote: 0...2,
        .beginQuorumEpoch: 0...1,
        .endQuorumEpoch: 0...1,
        .fetch: 12...17,
        .describeQuorum: 0...2,
        .fetchSnapshot: 0...1,
        .describeCluster: 0...1,
        // Controller commands (sent by brokers, and by admin clients bootstrapped to controllers).
        .createTopics: 2...7,
        .deleteTopics: 1...6,
        .createPartitions: 0...3,
        .incrementalAlterConfigs: 0...1,
        .alterConfigs: 0...2,
        .allocateProducerIds: 0...0,
        .alterPartition: 0...3,
        .electLeaders: 0...2,
        .brokerRegistration: 0...4,
        .brokerHeartbeat: 0...1,
        .unregisterBroker: 0...0,
    ]

    public func handle(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome {
        let key = request.header.apiKey
        let version = request.header.apiVersion
        if key == .apiVersions { return apiVersions(version, context: context) }
        guard let range = Self.supportedVersions[key], range.contains(version) else {
            return .close(reason: "\(key.name) v\(version) is not served on the controller listener")
        }
        do {
            var reader = WireReader(request.body)
            switch key {
            case .vote:
                let r = try VoteRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId { return respond(VoteResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context) }
                guard let core = RaftWire.core(r) else { return respond(VoteResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context) }
                return relay(.vote(core), from: core.candidateId, version: version, context: context) { message in
                    guard case .voteResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.response(answer), version: version, allocator: context.allocator)
                }
            case .beginQuorumEpoch:
                let r = try BeginQuorumEpochRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId { return respond(BeginQuorumEpochResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context) }
                guard let core = RaftWire.core(r) else { return respond(BeginQuorumEpochResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context) }
                return relay(.beginQuorumEpoch(core), from: core.leaderId, version: version, context: context) { message in
                    guard case .beginQuorumEpochResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.beginResponse(answer), version: version, allocator: context.allocator)
                }
            case .endQuorumEpoch:
                let r = try EndQuorumEpochRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId { return respond(EndQuorumEpochResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context) }
                guard let core = RaftWire.core(r, version: version) else { return respond(EndQuorumEpochResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context) }
                return relay(.endQuorumEpoch(core), from: core.leaderId, version: version, context: context) { message in
                    guard case .endQuorumEpochResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.endResponse(answer), version: version, allocator: context.allocator)
                }
            case .fetch:
                let r = try FetchRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId { return respond(FetchResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context) }
                guard RaftWire.isMetadataFetch(r, version: version), let core = RaftWire.core(r, version: version) else {
                    return respond(FetchResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                return relay(.fetch(core), from: core.replicaId, version: version, context: context) { message in
                    guard case .fetchResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.response(answer), version: version, allocator: context.allocator)
                }
            case .fetchSnapshot:
                let r = try FetchSnapshotRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId { return respond(FetchSnapshotResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context) }
                guard let p = r.topics.first?.partitions.first else { return respond(FetchSnapshotResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context) }
                let quorum = self.quorum
                let allocator = context.allocator
                let id = SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch)
                let maxBytes = Int(min(max(r.maxBytes, 1), 8 * 1024 * 1024))
                let future = runtime.eventLoop.submit { () -> OutgoingResponse in
                    var out = FetchSnapshotResponse.PartitionSnapshot()
                    out.index = 0
                    out.snapshotId = .init(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch)
                    out.currentLeader = .init(leaderId: quorum.driver.node.leaderId?.rawValue ?? -1, leaderEpoch: quorum.driver.node.epoch)
                    switch quorum.driver.snapshotChunk(id, position: p.position, maxBytes: maxBytes) {
                    case .success(let chunk):
                        out.size = chunk.totalBytes
                        out.position = chunk.position
                        out.unalignedRecords = Records(chunk.bytes)
                    case .failure:
                        out.errorCode = ErrorCode.snapshotNotFound.rawValue
                        out.unalignedRecords = .empty
                    }
                    var response = FetchSnapshotResponse()
                    response.topics = [.init(name: RaftWire.topicName, partitions: [out])]
                    return OutgoingResponse(response, version: version, allocator: allocator)
                }
                return .respond(future)
            case .createTopics: return command(try CreateTopicsRequest(from: &reader, version: version), version, context)
            case .deleteTopics: return command(try DeleteTopicsRequest(from: &reader, version: version), version, context)
            case .createPartitions: return command(try CreatePartitionsRequest(from: &reader, version: version), version, context)
            case .incrementalAlterConfigs: return command(try IncrementalAlterConfigsRequest(from: &reader, version: version), version, context)
            case .alterConfigs: return command(try AlterConfigsRequest(from: &reader, version: version), version, context)
            case .allocateProducerIds: return command(try AllocateProducerIdsRequest(from: &reader, version: version), version, context)
            case .electLeaders: return command(try ElectLeadersRequest(from: &reader, version: version), version, context)
            case .alterPartition: return command(try AlterPartitionRequest(from: &reader, version: version), version, context)
            case .brokerRegistration: return command(try BrokerRegistrationRequest(from: &reader, version: version), version, context)
            case .brokerHeartbeat: return command(try BrokerHeartbeatRequest(from: &reader, version: version), version, context)
            case .unregisterBroker: return command(try UnregisterBrokerRequest(from: &reader, version: version), version, context)
            case .describeCluster:
                let r = try DescribeClusterRequest(from: &reader, version: version)
                let quorum = self.quorum
                let voters = self.voters
                let clusterId = self.clusterId
                let allocator = context.allocator
                let future = runtime.eventLoop.submit { () -> OutgoingResponse in
                    var response = DescribeClusterResponse()
                    response.clusterId = clusterId
                    response.endpointType = r.endpointType
                    if r.endpointType != 2 {
                        response.errorCode = ErrorCode.unsupportedEndpointType.rawValue
                        response.errorMessage = "This is a controller listener; ask for controllers (endpoint type 2)."
                    } else {
                        response.controllerId = quorum.driver.node.leaderId?.rawValue ?? -1
                        response.brokers = voters.map { .init(brokerId: $0.id, host: $0.host, port: Int32($0.port), rack: nil) }
                    }
                    return OutgoingResponse(response, version: version, allocator: allocator)
                }
                return .respond(future)
            case .describeQuorum:
                let quorum = self.quorum
                let allocator = context.allocator
                let future = runtime.eventLoop.submit {
                    OutgoingResponse(Self.describeQuorum(quorum), version: version, allocator: allocator)
                }
                return .respond(future)
            default:
                return .close(reason: "\(key.name) is not served on the controller listener")
            }
        } catch {
            return .close(reason: "malformed \(key.name) v\(version): \(error)")
        }
    }

    /// Runs a controller command on this node if it is the active controller; otherwise every
    /// item answers NOT_CONTROLLER so the sender finds the active one.
    func command<R: RequestMessage>(_ request: R, _ version: Int16, _ context: RequestContext) -> RequestOutcome {
        let allocator = context.allocator
        let future = QuorumControllerChannel(quorum: quorum, eventLoop: runtime.eventLoop, unfenceOnRegistration: false).send(request, version: version)
            .map { OutgoingResponse($0, version: version, allocator: allocator) }
            .flatMapErrorThrowing { error in
                guard let response = ControllerRequests.failure(request, code: .notController) else { throw error }
                return OutgoingResponse(response, version: version, allocator: allocator)
            }
        return .respond(future)
    }

    func respond<M: ResponseMessage>(_ message: M, _ version: Int16, _ context: RequestContext) -> RequestOutcome {
        .respondNow(OutgoingResponse(message, version: version, allocator: context.allocator))
    }

    func relay(_ message: RaftMessage<MetadataPayload>, from: NodeID, version: Int16, context: RequestContext,
               encode: @escaping @Sendable (RaftMessage<MetadataPayload>) -> OutgoingResponse?) -> RequestOutcome {
        let future = runtime.receive(message, from: from).flatMapThrowing { answer -> OutgoingResponse in
            guard let response = encode(answer) else { throw ConnectionError("the quorum answered with the wrong message") }
            return response
        }
        return .respond(future)
    }

    func apiVersions(_ version: Int16, context: RequestContext) -> RequestOutcome {
        var response = ApiVersionsResponse()
        response.apiKeys = Self.supportedVersions.keys.sorted().map {
            .init(apiKey: $0.rawValue, minVersion: Self.supportedVersions[$0]!.lowerBound, maxVersion: Self.supportedVersions[$0]!.upperBound)
        }
        if version > 4 {
            response.errorCode = ErrorCode.unsupportedVersion.rawValue
            response.apiKeys = [.init(apiKey: ApiKey.apiVersions.rawValue, minVersion: 0, maxVersion: 4)]
            return respond(response, 0, context)
        }
        return respond(response, version, context)
    }

    /// DescribeQuorum from this node's view (accurate on the leader, as in Kafka).
    public static func describeQuorum(_ quorum: MetadataQuorum<KafkaRaftRuntime>) -> DescribeQuorumResponse {
        let node = quorum.driver.node
        var partition = DescribeQuorumResponse.PartitionData()
        partition.partitionIndex = 0
        guard node.role == .leader else {
            partition.errorCode = ErrorCode.notLeaderOrFollower.rawValue
            partition.leaderId = node.leaderId?.rawValue ?? -1
            partition.leaderEpoch = node.epoch
            var response = DescribeQuorumResponse()
            response.topics = [.init(topicName: RaftWire.topicName, partitions: [partition])]
            return response
        }
        partition.leaderId = node.leaderId?.rawValue ?? -1
        partition.leaderEpoch = node.epoch
        partition.highWatermark = node.highWatermark
        let wallNow = quorum.driver.wallClockMs
        let monoNow = quorum.driver.monotonicMs
        func wall(_ mono: Int64) -> Int64 { mono < 0 ? -1 : wallNow - (monoNow - mono) }
        for p in node.replicaProgress {
            let state = DescribeQuorumResponse.ReplicaState(
                replicaId: p.nodeId.rawValue, logEndOffset: p.endOffset, lastFetchTimestamp: wall(p.lastFetchMs),
                lastCaughtUpTimestamp: wall(p.lastCaughtUpMs))
            if p.isVoter { partition.currentVoters.append(state) } else { partition.observers.append(state) }
        }
        var response = DescribeQuorumResponse()
        response.topics = [.init(topicName: RaftWire.topicName, partitions: [partition])]
        return response
    }
}
