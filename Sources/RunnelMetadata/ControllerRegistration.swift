import RunnelCore
import RunnelWire

/// A controller as it registered with the active controller (KIP-919, RegisterControllerRecord):
/// its process incarnation, listeners and the feature levels its software supports, which
/// UpdateFeatures is checked against once `metadata.version` is 3.7-IV0 or later.
public struct ControllerRegistration: Sendable, Equatable {
    public var id: NodeID
    public var incarnationId: KafkaUUID
    public var endpoints: [BrokerRegistration.Endpoint]
    public var supportedFeatures: [String: ClosedRange<Int16>]

    public init(
        id: NodeID, incarnationId: KafkaUUID, endpoints: [BrokerRegistration.Endpoint],
        supportedFeatures: [String: ClosedRange<Int16>]
    ) {
        self.id = id
        self.incarnationId = incarnationId
        self.endpoints = endpoints
        self.supportedFeatures = supportedFeatures
    }

    /// The registration a record makes; a feature range whose minimum exceeds its maximum is dropped.
    public init(_ record: RegisterControllerRecord) {
        var ranges: [String: ClosedRange<Int16>] = [:]
        for f in record.features where f.minSupportedVersion <= f.maxSupportedVersion {
            ranges[f.name] = f.minSupportedVersion...f.maxSupportedVersion
        }
        self.init(
            id: NodeID(record.controllerId), incarnationId: record.incarnationId,
            endpoints: record.endPoints.map {
                .init(listener: $0.name, host: $0.host, port: Int($0.port), securityProtocol: $0.securityProtocol)
            }, supportedFeatures: ranges)
    }

    /// The record that makes this registration (features in name order).
    public var record: RegisterControllerRecord {
        RegisterControllerRecord(
            controllerId: id.rawValue, incarnationId: incarnationId, zkMigrationReady: false,
            endPoints: endpoints.map {
                .init(
                    name: $0.listener, host: $0.host, port: UInt16(clamping: $0.port),
                    securityProtocol: $0.securityProtocol)
            },
            features: supportedFeatures.keys.sorted().map {
                .init(
                    name: $0, minSupportedVersion: supportedFeatures[$0]!.lowerBound,
                    maxSupportedVersion: supportedFeatures[$0]!.upperBound)
            })
    }
}
