import NIOCore
import RunnelController
import RunnelCore
import RunnelWire

/// The broker's way to the controller when both run in one process: requests go to the quorum on
/// its event loop and run there if this node is the active controller. The answer comes once the
/// records are committed and published to the broker, so a client that sees it sees the change.
public struct QuorumControllerChannel: ControllerChannel {
    let quorum: MetadataQuorum<KafkaRaftRuntime>
    let eventLoop: any EventLoop
    /// A broker in the controller's own process is caught up by construction and starts unfenced;
    /// a remote broker starts fenced until its heartbeats show it caught up.
    var unfenceOnRegistration = true

    public init(quorum: MetadataQuorum<KafkaRaftRuntime>, eventLoop: any EventLoop, unfenceOnRegistration: Bool = true)
    {
        self.quorum = quorum
        self.eventLoop = eventLoop
        self.unfenceOnRegistration = unfenceOnRegistration
    }

    public func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        let quorum = self.quorum
        let promise = eventLoop.makePromise(of: (any ResponseMessage).self)
        let unfence = unfenceOnRegistration
        let box = UnsafeTransfer(request)
        let queued = NIODeadline.now()
        eventLoop.execute {
            let started = NIODeadline.now()
            QuorumMetrics.controllerQueueTime.recordNanoseconds((started - queued).nanoseconds)
            func finish<T: ResponseMessage>(_ result: Result<T, ProposalError>) {
                QuorumMetrics.controllerProcessingTime.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
                switch result {
                case .success(let response): promise.succeed(response)
                case .failure(let error): promise.fail(error)
                }
            }
            switch box.value {
            case let r as CreateTopicsRequest:
                quorum.run(
                    { c, rng, _ in c.createTopics(r, version: version, newId: { KafkaUUID.random(using: &rng) }) },
                    completion: finish)
            case let r as DeleteTopicsRequest:
                quorum.run({ c, _, _ in c.deleteTopics(r, version: version) }, completion: finish)
            case let r as CreatePartitionsRequest:
                quorum.run({ c, _, _ in c.createPartitions(r) }, completion: finish)
            case let r as IncrementalAlterConfigsRequest:
                quorum.run({ c, _, _ in c.incrementalAlterConfigs(r) }, completion: finish)
            case let r as AlterConfigsRequest:
                quorum.run({ c, _, _ in c.alterConfigs(r) }, completion: finish)
            case let r as AllocateProducerIdsRequest:
                quorum.run({ c, _, _ in c.allocateProducerIds(r) }, completion: finish)
            case let r as ElectLeadersRequest:
                quorum.run({ c, _, _ in c.electLeaders(r, version: version) }, completion: finish)
            case let r as AlterPartitionReassignmentsRequest:
                quorum.run({ c, _, _ in c.alterPartitionReassignments(r) }, completion: finish)
            case let r as ListPartitionReassignmentsRequest:
                quorum.run({ c, _, _ in c.listPartitionReassignments(r) }, completion: finish)
            case let r as AlterPartitionRequest:
                quorum.run({ c, _, _ in c.alterPartition(r, version: version) }, completion: finish)
            case let r as BrokerHeartbeatRequest:
                quorum.heartbeat(r, completion: finish)
            case let r as UnregisterBrokerRequest:
                quorum.run({ c, _, _ in c.unregisterBroker(r) }, completion: finish)
            case let r as BrokerRegistrationRequest:
                quorum.registerBroker(r, unfenced: unfence, completion: finish)
            case let r as CreateAclsRequest:
                quorum.run(
                    { c, rng, _ in c.createAcls(r, newId: { KafkaUUID.random(using: &rng) }) }, completion: finish)
            case let r as DeleteAclsRequest:
                quorum.run({ c, _, _ in c.deleteAcls(r) }, completion: finish)
            case is DescribeQuorumRequest:
                promise.succeed(QuorumEndpoint.describeQuorum(quorum))
            case let r as AlterUserScramCredentialsRequest:
                quorum.run({ c, _, _ in c.alterUserScramCredentials(r) }, completion: finish)
            case let r as UpdateFeaturesRequest:
                quorum.run({ c, _, _ in c.updateFeatures(r, version: version) }, completion: finish)
            case let r as ControllerRegistrationRequest:
                quorum.run({ c, _, _ in c.registerController(r) }, completion: finish)
            case let r as AlterClientQuotasRequest:
                quorum.run({ c, _, _ in c.alterClientQuotas(r) }, completion: finish)
            default:
                promise.fail(UnsupportedControllerRequest(name: R.apiKey.name))
            }
        }
        return promise.futureResult.flatMapThrowing { response in
            guard let typed = response as? R.Response else { throw UnsupportedControllerRequest(name: R.apiKey.name) }
            return typed
        }
    }
}

struct UnsupportedControllerRequest: Error, CustomStringConvertible {
    var name: String
    var description: String { "the controller does not handle \(name)" }
}
