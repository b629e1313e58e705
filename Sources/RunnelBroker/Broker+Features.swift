import NIOCore
import RunnelCore
import RunnelWire

extension Broker {
    /// UpdateFeatures, forwarded to the active controller (Kafka's brokers forward it too):
    /// ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for the request and every feature.
    func updateFeatures(_ request: UpdateFeaturesRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        guard authorization(context).allows(.alter, .cluster) else {
            let code = ErrorCode.clusterAuthorizationFailed.rawValue
            return respond(
                UpdateFeaturesResponse(
                    throttleTimeMs: 0, errorCode: code, errorMessage: nil,
                    results: request.featureUpdates.map {
                        .init(feature: $0.feature, errorCode: code, errorMessage: nil)
                    }),
                version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }

    /// UnregisterBroker (KIP-500's removal of a broker that left for good, `kafka-cluster.sh
    /// unregister`), forwarded to the active controller as Kafka's brokers do: ALTER on the
    /// cluster, else CLUSTER_AUTHORIZATION_FAILED.
    func unregisterBroker(
        _ request: UnregisterBrokerRequest, version: Int16, context: RequestContext
    )
        -> RequestOutcome
    {
        guard authorization(context).allows(.alter, .cluster) else {
            return respond(
                UnregisterBrokerResponse(
                    throttleTimeMs: 0, errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, errorMessage: nil),
                version: version, context: context)
        }
        return forward(request, version: version, context: context)
    }
}
