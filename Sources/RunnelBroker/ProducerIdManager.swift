import NIOConcurrencyHelpers
import NIOCore
import RunnelWire

/// Hands out producer ids from blocks the controller allocates (AllocateProducerIds), fetching
/// the next block when one runs out. Ids are never reused: each block is recorded in the
/// metadata log before it is used.
final class ProducerIdManager: @unchecked Sendable {
    private let lock = NIOLock()
    private var next: Int64 = 0
    private var end: Int64 = 0
    private var pending: [EventLoopPromise<Int64>] = []
    private var fetching = false
    private let brokerId: Int32
    private let brokerEpoch: @Sendable () -> Int64
    private let controller: any ControllerChannel

    init(brokerId: Int32, brokerEpoch: @escaping @Sendable () -> Int64, controller: any ControllerChannel) {
        self.brokerId = brokerId
        self.brokerEpoch = brokerEpoch
        self.controller = controller
    }

    func nextId(on eventLoop: any EventLoop) -> EventLoopFuture<Int64> {
        let promise = eventLoop.makePromise(of: Int64.self)
        let (id, startFetch): (Int64?, Bool) = lock.withLock {
            if next < end {
                next += 1
                return (next - 1, false)
            }
            pending.append(promise)
            let start = !fetching
            fetching = true
            return (nil, start)
        }
        if let id { promise.succeed(id) }
        if startFetch { fetchBlock() }
        return promise.futureResult
    }

    /// Asks the controller for a block of producer ids of its own (AllocateProducerIds), for the
    /// transaction coordinator, which hands them out itself; ids are never shared with `nextId`.
    func allocateBlock(on eventLoop: any EventLoop) -> EventLoopFuture<(start: Int64, count: Int32)> {
        let request = AllocateProducerIdsRequest(brokerId: brokerId, brokerEpoch: brokerEpoch())
        return controller.send(request, version: 0).hop(to: eventLoop).flatMapThrowing { response in
            guard response.errorCode == 0 else { throw ErrorCode(response.errorCode) }
            return (start: response.producerIdStart, count: response.producerIdLen)
        }
    }

    private func fetchBlock() {
        let request = AllocateProducerIdsRequest(brokerId: brokerId, brokerEpoch: brokerEpoch())
        controller.send(request, version: 0).whenComplete { [self] result in
            var ready: [(EventLoopPromise<Int64>, Result<Int64, any Error>)] = []
            lock.withLock {
                fetching = false
                switch result {
                case .success(let response) where response.errorCode == 0:
                    next = response.producerIdStart
                    end = response.producerIdStart + Int64(response.producerIdLen)
                    while next < end, !pending.isEmpty {
                        ready.append((pending.removeFirst(), .success(next)))
                        next += 1
                    }
                case .success(let response):
                    ready = pending.map { ($0, .failure(ErrorCode(response.errorCode))) }
                    pending = []
                case .failure(let error):
                    ready = pending.map { ($0, .failure(error)) }
                    pending = []
                }
            }
            for (promise, result) in ready { promise.completeWith(result) }
            if lock.withLock({ !pending.isEmpty && !fetching }) {
                lock.withLock { fetching = true }
                fetchBlock()
            }
        }
    }
}
