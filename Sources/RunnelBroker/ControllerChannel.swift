import NIOCore
import RunnelWire

/// How a broker reaches the active controller: admin requests are forwarded there, and the
/// broker registers itself. Single-node mode answers in-process; a cluster sends them over the
/// network to the active controller.
public protocol ControllerChannel: Sendable {
    /// Sends a request the controller handles (CreateTopics, DeleteTopics, CreatePartitions,
    /// IncrementalAlterConfigs, AlterConfigs, BrokerRegistration, ...). The future completes once
    /// the controller's answer is known and, for writes, once this broker's metadata image has
    /// caught up with the records it committed.
    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response>
}
