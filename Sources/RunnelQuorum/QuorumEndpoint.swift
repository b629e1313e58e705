import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelRaft
import RunnelSecurity
import RunnelWire

/// The authorizer of a controller listener (nil without `authorizer.class.name`), kept in step
/// with the quorum's committed image.
public final class QuorumAuthorizer: Sendable {
    private let box: NIOLockedValueBox<(authorizer: StandardAuthorizer?, image: MetadataImage)>

    public init(_ configured: StandardAuthorizer?) { box = NIOLockedValueBox((configured, .empty)) }

    public var current: StandardAuthorizer? { box.withLockedValue { $0.authorizer } }
    /// The committed image last published (topic names of ids, for checks).
    var image: MetadataImage { box.withLockedValue { $0.image } }

    /// Applies a committed change (subscribe it to the quorum).
    public func publish(_ delta: MetadataDelta, image: MetadataImage) {
        box.withLockedValue { state in
            state.image = image
            guard state.authorizer != nil, !delta.changedAcls.isEmpty || state.authorizer!.aclCount != image.acls.count
            else { return }
            state.authorizer!.follow(delta, image: image)
        }
    }
}

/// The controller listener: Kafka's Raft APIs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch on
/// `__cluster_metadata`), DescribeQuorum and ApiVersions. Requests are handed to the quorum's
/// event loop; answers come back when the core gives them (a fetch may be parked).
public struct QuorumEndpoint: RequestHandler {
    let quorum: MetadataQuorum<KafkaRaftRuntime>
    let runtime: KafkaRaftRuntime
    let clusterId: String
    /// The voters and their controller listeners (DescribeCluster on this listener lists them).
    let voters: [VoterSpec]
    /// Who may do what here (Kafka's ControllerApis checks).
    let authorizer: QuorumAuthorizer

    public init(
        quorum: MetadataQuorum<KafkaRaftRuntime>, runtime: KafkaRaftRuntime, clusterId: String, voters: [VoterSpec],
        authorizer: QuorumAuthorizer = QuorumAuthorizer(nil)
    ) {
        self.quorum = quorum
        self.runtime = runtime
        self.clusterId = clusterId
        self.voters = voters
        self.authorizer = authorizer
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
        .alterPartitionReassignments: 0...0,
        .listPartitionReassignments: 0...0,
        .brokerRegistration: 0...4,
        .brokerHeartbeat: 0...1,
        .unregisterBroker: 0...0,
        .describeAcls: 0...3,
        .createAcls: 0...3,
        .deleteAcls: 0...3,
        .describeUserScramCredentials: 0...0,
        .alterUserScramCredentials: 0...0,
        .updateFeatures: 0...1,
        .controllerRegistration: 0...0,
        .alterClientQuotas: 0...1,
        // Answered by the connection's authenticator before any other request.
        .saslHandshake: 0...1,
        .saslAuthenticate: 0...2,
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
            if let refused = try refusal(key, request, context: context) {
                return respond(refused, version, context)
            }
            switch key {
            case .vote:
                let r = try VoteRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId {
                    return respond(VoteResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context)
                }
                guard let core = RaftWire.core(r) else {
                    return respond(VoteResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                return relay(.vote(core), from: core.candidateId, version: version, context: context) { message in
                    guard case .voteResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.response(answer), version: version, allocator: context.allocator)
                }
            case .beginQuorumEpoch:
                let r = try BeginQuorumEpochRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId {
                    return respond(
                        BeginQuorumEpochResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context)
                }
                guard let core = RaftWire.core(r) else {
                    return respond(
                        BeginQuorumEpochResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                return relay(.beginQuorumEpoch(core), from: core.leaderId, version: version, context: context) {
                    message in
                    guard case .beginQuorumEpochResponse(let answer) = message else { return nil }
                    return OutgoingResponse(
                        RaftWire.beginResponse(answer), version: version, allocator: context.allocator)
                }
            case .endQuorumEpoch:
                let r = try EndQuorumEpochRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId {
                    return respond(
                        EndQuorumEpochResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context)
                }
                guard let core = RaftWire.core(r, version: version) else {
                    return respond(
                        EndQuorumEpochResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                return relay(.endQuorumEpoch(core), from: core.leaderId, version: version, context: context) {
                    message in
                    guard case .endQuorumEpochResponse(let answer) = message else { return nil }
                    return OutgoingResponse(
                        RaftWire.endResponse(answer), version: version, allocator: context.allocator)
                }
            case .fetch:
                let r = try FetchRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId {
                    return respond(FetchResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context)
                }
                guard RaftWire.isMetadataFetch(r, version: version), let core = RaftWire.core(r, version: version)
                else {
                    return respond(FetchResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                return relay(.fetch(core), from: core.replicaId, version: version, context: context) { message in
                    guard case .fetchResponse(let answer) = message else { return nil }
                    return OutgoingResponse(RaftWire.response(answer), version: version, allocator: context.allocator)
                }
            case .fetchSnapshot:
                let r = try FetchSnapshotRequest(from: &reader, version: version)
                if let id = r.clusterId, id != clusterId {
                    return respond(
                        FetchSnapshotResponse(errorCode: ErrorCode.inconsistentClusterId.rawValue), version, context)
                }
                guard let p = r.topics.first?.partitions.first else {
                    return respond(
                        FetchSnapshotResponse(errorCode: ErrorCode.invalidRequest.rawValue), version, context)
                }
                let quorum = self.quorum
                let allocator = context.allocator
                let id = SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch)
                let maxBytes = Int(min(max(r.maxBytes, 1), 8 * 1024 * 1024))
                let future = runtime.eventLoop.submit { () -> OutgoingResponse in
                    var out = FetchSnapshotResponse.PartitionSnapshot()
                    out.index = 0
                    out.snapshotId = .init(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch)
                    out.currentLeader = .init(
                        leaderId: quorum.driver.node.leaderId?.rawValue ?? -1, leaderEpoch: quorum.driver.node.epoch)
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
            case .createTopics:
                return command(try CreateTopicsRequest(from: &reader, version: version), version, context)
            case .deleteTopics:
                return command(try DeleteTopicsRequest(from: &reader, version: version), version, context)
            case .createPartitions:
                return command(try CreatePartitionsRequest(from: &reader, version: version), version, context)
            case .incrementalAlterConfigs:
                return command(try IncrementalAlterConfigsRequest(from: &reader, version: version), version, context)
            case .alterConfigs:
                return command(try AlterConfigsRequest(from: &reader, version: version), version, context)
            case .allocateProducerIds:
                return command(try AllocateProducerIdsRequest(from: &reader, version: version), version, context)
            case .electLeaders:
                return command(try ElectLeadersRequest(from: &reader, version: version), version, context)
            case .alterPartition:
                return command(try AlterPartitionRequest(from: &reader, version: version), version, context)
            case .alterPartitionReassignments:
                return command(
                    try AlterPartitionReassignmentsRequest(from: &reader, version: version), version, context)
            case .listPartitionReassignments:
                return command(
                    try ListPartitionReassignmentsRequest(from: &reader, version: version), version, context)
            case .brokerRegistration:
                return command(try BrokerRegistrationRequest(from: &reader, version: version), version, context)
            case .brokerHeartbeat:
                return command(try BrokerHeartbeatRequest(from: &reader, version: version), version, context)
            case .unregisterBroker:
                return command(try UnregisterBrokerRequest(from: &reader, version: version), version, context)
            case .createAcls: return command(try CreateAclsRequest(from: &reader, version: version), version, context)
            case .deleteAcls: return command(try DeleteAclsRequest(from: &reader, version: version), version, context)
            case .alterUserScramCredentials:
                return command(try AlterUserScramCredentialsRequest(from: &reader, version: version), version, context)
            case .updateFeatures:
                return command(try UpdateFeaturesRequest(from: &reader, version: version), version, context)
            case .controllerRegistration:
                return command(try ControllerRegistrationRequest(from: &reader, version: version), version, context)
            case .alterClientQuotas:
                return command(try AlterClientQuotasRequest(from: &reader, version: version), version, context)
            case .describeAcls:
                let r = try DescribeAclsRequest(from: &reader, version: version)
                let quorum = self.quorum
                let allocator = context.allocator
                return .respond(
                    runtime.eventLoop.submit {
                        OutgoingResponse(
                            quorum.committedImage.describeAcls(r, version: version), version: version,
                            allocator: allocator)
                    })
            case .describeUserScramCredentials:
                let r = try DescribeUserScramCredentialsRequest(from: &reader, version: version)
                let quorum = self.quorum
                let allocator = context.allocator
                return .respond(
                    runtime.eventLoop.submit {
                        OutgoingResponse(
                            quorum.committedImage.describeUserScramCredentials(r), version: version,
                            allocator: allocator)
                    })
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
                        response.brokers = voters.map {
                            .init(brokerId: $0.id, host: $0.host, port: Int32($0.port), rack: nil)
                        }
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

    /// Kafka's ControllerApis checks, made before a request runs: the answer to send instead when
    /// the principal may not make it. The Raft APIs and the brokers' own requests (registration,
    /// heartbeats, AlterPartition, producer-id blocks) need CLUSTER_ACTION on the cluster, so no
    /// client can pose as a voter or a broker. Admin requests need what they need on a broker;
    /// a principal with CLUSTER_ACTION (a broker forwarding a request it authorized for its
    /// client, as Kafka's Envelope carries it) may send them all. Without an authorizer there
    /// is no check (Kafka trusts the network then), except that ACL requests answer
    /// SECURITY_DISABLED.
    func refusal(_ key: ApiKey, _ request: IncomingRequest, context: RequestContext) throws -> (any ResponseMessage)? {
        let version = request.header.apiVersion
        func decode<R: RequestMessage>(_ type: R.Type) throws -> R { try R.decode(request.body, version: version) }
        let quorumAuthorizer = self.authorizer
        guard let authorizer = quorumAuthorizer.current else {
            let message = "No Authorizer is configured."
            let disabled = ErrorCode.securityDisabled.rawValue
            switch key {
            case .describeAcls: return DescribeAclsResponse(errorCode: disabled, errorMessage: message, resources: [])
            case .createAcls:
                return CreateAclsResponse(
                    results: try decode(CreateAclsRequest.self).creations.map { _ in
                        .init(errorCode: disabled, errorMessage: message)
                    })
            case .deleteAcls:
                return DeleteAclsResponse(
                    filterResults: try decode(DeleteAclsRequest.self).filters.map { _ in
                        .init(errorCode: disabled, errorMessage: message, matchingAcls: [])
                    })
            default: return nil
            }
        }
        let principal = KafkaPrincipal(type: context.principalType, name: context.principalName)
        let host = context.clientHost
        func allows(_ operation: AclOperation, _ resource: Resource) -> Bool {
            authorizer.authorize(principal, host: host, operation: operation, resource: resource)
        }
        let clusterRefused = ErrorCode.clusterAuthorizationFailed
        if allows(.clusterAction, .cluster) { return nil }
        switch key {
        case .apiVersions, .describeCluster:
            return nil
        case .vote: return VoteResponse(errorCode: clusterRefused.rawValue)
        case .beginQuorumEpoch: return BeginQuorumEpochResponse(errorCode: clusterRefused.rawValue)
        case .endQuorumEpoch: return EndQuorumEpochResponse(errorCode: clusterRefused.rawValue)
        case .fetch: return FetchResponse(errorCode: clusterRefused.rawValue)
        case .fetchSnapshot: return FetchSnapshotResponse(errorCode: clusterRefused.rawValue)
        case .describeQuorum:
            return allows(.describe, .cluster) ? nil : DescribeQuorumResponse(errorCode: clusterRefused.rawValue)
        case .brokerRegistration: return BrokerRegistrationResponse(errorCode: clusterRefused.rawValue)
        case .brokerHeartbeat: return BrokerHeartbeatResponse(errorCode: clusterRefused.rawValue)
        case .alterPartition: return AlterPartitionResponse(errorCode: clusterRefused.rawValue)
        case .allocateProducerIds: return AllocateProducerIdsResponse(errorCode: clusterRefused.rawValue)
        case .controllerRegistration: return ControllerRegistrationResponse(errorCode: clusterRefused.rawValue)
        case .unregisterBroker:
            return allows(.alter, .cluster) ? nil : UnregisterBrokerResponse(errorCode: clusterRefused.rawValue)
        case .describeAcls:
            return allows(.describe, .cluster)
                ? nil : DescribeAclsResponse(errorCode: clusterRefused.rawValue, errorMessage: nil, resources: [])
        case .describeUserScramCredentials:
            return allows(.describe, .cluster)
                ? nil
                : DescribeUserScramCredentialsResponse(
                    errorCode: clusterRefused.rawValue, errorMessage: nil, results: [])
        case .createAcls:
            return allows(.alter, .cluster)
                ? nil : ControllerRequests.failure(try decode(CreateAclsRequest.self), code: clusterRefused)
        case .deleteAcls:
            return allows(.alter, .cluster)
                ? nil : ControllerRequests.failure(try decode(DeleteAclsRequest.self), code: clusterRefused)
        case .updateFeatures:
            return allows(.alter, .cluster)
                ? nil : ControllerRequests.failure(try decode(UpdateFeaturesRequest.self), code: clusterRefused)
        case .alterUserScramCredentials:
            return allows(.alter, .cluster)
                ? nil
                : ControllerRequests.failure(try decode(AlterUserScramCredentialsRequest.self), code: clusterRefused)
        case .electLeaders:
            return allows(.alter, .cluster)
                ? nil : ControllerRequests.failure(try decode(ElectLeadersRequest.self), code: clusterRefused)
        case .alterPartitionReassignments:
            return allows(.alter, .cluster)
                ? nil
                : ControllerRequests.failure(try decode(AlterPartitionReassignmentsRequest.self), code: clusterRefused)
        case .listPartitionReassignments:
            return allows(.describe, .cluster)
                ? nil
                : ControllerRequests.failure(try decode(ListPartitionReassignmentsRequest.self), code: clusterRefused)
        case .alterClientQuotas:
            return allows(.alterConfigs, .cluster)
                ? nil : ControllerRequests.failure(try decode(AlterClientQuotasRequest.self), code: clusterRefused)
        case .createTopics:
            let r = try decode(CreateTopicsRequest.self)
            let ok = allows(.create, .cluster) || r.topics.allSatisfy { allows(.create, .topic($0.name)) }
            return ok ? nil : ControllerRequests.failure(r, code: .topicAuthorizationFailed)
        case .deleteTopics:
            let r = try decode(DeleteTopicsRequest.self)
            let image = quorumAuthorizer.image
            let names = r.topicNames + r.topics.compactMap { $0.name ?? image.topic(id: $0.topicId)?.name }
            return names.allSatisfy({ allows(.delete, .topic($0)) })
                ? nil : ControllerRequests.failure(r, code: .topicAuthorizationFailed)
        case .createPartitions:
            let r = try decode(CreatePartitionsRequest.self)
            return r.topics.allSatisfy({ allows(.alter, .topic($0.name)) })
                ? nil : ControllerRequests.failure(r, code: .topicAuthorizationFailed)
        case .incrementalAlterConfigs:
            let r = try decode(IncrementalAlterConfigsRequest.self)
            let code = r.resources.lazy.compactMap {
                Self.configRefusal(allows, resourceType: $0.resourceType, name: $0.resourceName)
            }.first
            return code.flatMap { ControllerRequests.failure(r, code: $0) }
        case .alterConfigs:
            let r = try decode(AlterConfigsRequest.self)
            let code = r.resources.lazy.compactMap {
                Self.configRefusal(allows, resourceType: $0.resourceType, name: $0.resourceName)
            }.first
            return code.flatMap { ControllerRequests.failure(r, code: $0) }
        default:
            return nil
        }
    }

    /// ALTER_CONFIGS on a config resource: topics by name, brokers on the cluster, groups by name.
    static func configRefusal(
        _ allows: (AclOperation, Resource) -> Bool, resourceType: Int8, name: String
    ) -> ErrorCode? {
        switch resourceType {
        case 2: return allows(.alterConfigs, .topic(name)) ? nil : .topicAuthorizationFailed
        case 4, 8: return allows(.alterConfigs, .cluster) ? nil : .clusterAuthorizationFailed
        case 32: return allows(.alterConfigs, .group(name)) ? nil : .groupAuthorizationFailed
        default: return nil
        }
    }

    /// Runs a controller command on this node if it is the active controller; otherwise every
    /// item answers NOT_CONTROLLER so the sender finds the active one.
    func command<R: RequestMessage>(_ request: R, _ version: Int16, _ context: RequestContext) -> RequestOutcome {
        let allocator = context.allocator
        let future = QuorumControllerChannel(quorum: quorum, eventLoop: runtime.eventLoop, unfenceOnRegistration: false)
            .send(request, version: version)
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

    func respond(_ message: any ResponseMessage, _ version: Int16, _ context: RequestContext) -> RequestOutcome {
        .respondNow(OutgoingResponse(message, version: version, allocator: context.allocator))
    }

    func relay(
        _ message: RaftMessage<MetadataPayload>, from: NodeID, version: Int16, context: RequestContext,
        encode: @escaping @Sendable (RaftMessage<MetadataPayload>) -> OutgoingResponse?
    ) -> RequestOutcome {
        let future = runtime.receive(message, from: from).flatMapThrowing { answer -> OutgoingResponse in
            guard let response = encode(answer) else {
                throw ConnectionError("the quorum answered with the wrong message")
            }
            return response
        }
        return .respond(future)
    }

    func apiVersions(_ version: Int16, context: RequestContext) -> RequestOutcome {
        var response = ApiVersionsResponse()
        response.apiKeys = Self.supportedVersions.keys.sorted().map {
            .init(
                apiKey: $0.rawValue, minVersion: Self.supportedVersions[$0]!.lowerBound,
                maxVersion: Self.supportedVersions[$0]!.upperBound)
        }
        if version > 4 {
            response.errorCode = ErrorCode.unsupportedVersion.rawValue
            response.apiKeys = [.init(apiKey: ApiKey.apiVersions.rawValue, minVersion: 0, maxVersion: 4)]
            return respond(response, 0, context)
        }
        if version >= 3 {
            // As a Kafka controller does: what this node supports and what the committed
            // metadata finalized, so kafka-features --bootstrap-controller sees the levels.
            let image = authorizer.image
            response.supportedFeatures = SupportedFeatures.local.keys.sorted().map {
                .init(
                    name: $0, minVersion: SupportedFeatures.local[$0]!.lowerBound,
                    maxVersion: SupportedFeatures.local[$0]!.upperBound)
            }
            response.finalizedFeaturesEpoch = image.provenance.lastOffset
            response.finalizedFeatures = image.features.keys.sorted().map {
                .init(name: $0, maxVersionLevel: image.features[$0]!, minVersionLevel: image.features[$0]!)
            }
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
