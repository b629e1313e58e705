import NIOCore
import RunnelCore
import RunnelSecurity
import RunnelWire

extension Broker {
    /// InitProducerId: with a transactional id, the transaction coordinator's (this broker must
    /// coordinate the id); for idempotent producers, a fresh id with epoch 0, or, when the client
    /// names its current id and epoch (KIP-360), the same id with the epoch bumped.
    func initProducerId(_ request: InitProducerIdRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        // Kafka's handleInitProducerIdRequest: WRITE on the transactional id; an idempotent
        // producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
        let auth = authorization(context)
        if let transactionalId = request.transactionalId, !transactionalId.isEmpty,
            !auth.allows(.write, .transactionalId(transactionalId))
        {
            return respond(
                InitProducerIdResponse(errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue),
                version: version, context: context)
        }
        if request.transactionalId?.isEmpty ?? true, !auth.allows(.idempotentWrite, .cluster),
            !auth.allowsSome(.write, .topic)
        {
            return respond(
                InitProducerIdResponse(errorCode: ErrorCode.clusterAuthorizationFailed.rawValue), version: version,
                context: context)
        }
        if let transactionalId = request.transactionalId, !transactionalId.isEmpty {
            return transactions.initProducerId(request, version: version, context: context)
        }
        if request.producerId >= 0 && request.producerEpoch >= 0 && request.producerEpoch < Int16.max - 1 {
            return respond(
                InitProducerIdResponse(
                    errorCode: 0, producerId: request.producerId, producerEpoch: request.producerEpoch + 1),
                version: version, context: context)
        }
        let allocator = context.allocator
        let future = producerIds.nextId(on: context.eventLoop).map { id in
            OutgoingResponse(
                InitProducerIdResponse(errorCode: 0, producerId: id, producerEpoch: 0), version: version,
                allocator: allocator)
        }.flatMapErrorThrowing { error in
            let code = (error as? ErrorCode) ?? .coordinatorNotAvailable
            return OutgoingResponse(
                InitProducerIdResponse(errorCode: code.rawValue), version: version, allocator: allocator)
        }
        return .respond(future)
    }
}
