import NIOCore
import RunnelBroker
import RunnelController
import RunnelCore
import RunnelQuorum
import RunnelWire

/// The broker's way to the controller when both run in one single-voter process: requests go
/// straight to the local quorum. Its answer comes after the records are durable and published to
/// the broker, so a client that sees the answer sees the change.
struct LocalControllerChannel: ControllerChannel {
    let quorum: LocalQuorum

    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        let future: EventLoopFuture<any ResponseMessage>
        switch request {
        case let r as CreateTopicsRequest:
            future = quorum.run { controller, rng, _ in
                controller.createTopics(r, version: version, newId: { KafkaUUID.random(using: &rng) })
            }.map { $0 }
        case let r as DeleteTopicsRequest:
            future = quorum.run { controller, _, _ in controller.deleteTopics(r, version: version) }.map { $0 }
        case let r as CreatePartitionsRequest:
            future = quorum.run { controller, _, _ in controller.createPartitions(r) }.map { $0 }
        case let r as IncrementalAlterConfigsRequest:
            future = quorum.run { controller, _, _ in controller.incrementalAlterConfigs(r) }.map { $0 }
        case let r as AlterConfigsRequest:
            future = quorum.run { controller, _, _ in controller.alterConfigs(r) }.map { $0 }
        case let r as AllocateProducerIdsRequest:
            future = quorum.run { controller, _, _ in controller.allocateProducerIds(r) }.map { $0 }
        case let r as BrokerRegistrationRequest:
            let clusterId = quorum.clusterId
            future = quorum.run { controller, _, nextOffset in
                controller.registerBroker(r, clusterId: clusterId, nextOffset: nextOffset, unfenced: true)
            }.map { $0 }
        default:
            return quorum.eventLoop.makeFailedFuture(UnsupportedControllerRequest(name: R.apiKey.name))
        }
        return future.map { $0 as! R.Response }
    }
}

struct UnsupportedControllerRequest: Error, CustomStringConvertible {
    var name: String
    var description: String { "the controller does not handle \(name)" }
}
