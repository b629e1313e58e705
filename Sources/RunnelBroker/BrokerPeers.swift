import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire

/// Connections to the other brokers' inter-broker listeners, found in the metadata image: what
/// replica fetchers send their Fetch requests over, and (another instance, its own connections)
/// what the transaction coordinator sends WriteTxnMarkers over.
public final class BrokerPeers: ReplicaTransport, @unchecked Sendable {
    public let eventLoop: any EventLoop
    private let connector: any PeerConnector
    private let localId: Int32
    private let listenerName: String
    private let clientId: String
    private let image: @Sendable () -> MetadataImage
    private let lock = NIOLock()
    private var clients: [Int32: any PeerConnection] = [:]

    public init(
        eventLoop: any EventLoop, connector: any PeerConnector, localId: Int32, listenerName: String,
        clientId: String? = nil, image: @escaping @Sendable () -> MetadataImage
    ) {
        self.clientId = clientId ?? "replica-fetcher-\(localId)"
        self.eventLoop = eventLoop
        self.connector = connector
        self.localId = localId
        self.listenerName = listenerName
        self.image = image
    }

    /// The client for `broker` at the address its registration advertises (a new one when it moved).
    private func client(for broker: Int32) -> (any PeerConnection)? {
        guard let registration = image().brokers[NodeID(broker)], !registration.endpoints.isEmpty else { return nil }
        let endpoint = registration.endpoints.first { $0.listener == listenerName } ?? registration.endpoints[0]
        return lock.withLock {
            if let existing = clients[broker], existing.host == endpoint.host, existing.port == endpoint.port {
                return existing
            }
            clients[broker]?.close()
            // On the fetchers' own loop: a Fetch goes out and its answer is applied without a
            // hop between threads (two wake-ups per round on a busy machine).
            let client = connector.connect(
                host: endpoint.host, port: endpoint.port, clientId: clientId, eventLoop: eventLoop)
            clients[broker] = client
            return client
        }
    }

    public func fetch(
        from leader: Int32, _ request: FetchRequest, version: Int16, timeoutMs: Int64
    ) -> EventLoopFuture<FetchResponse> {
        send(request, version: version, to: leader, timeoutMs: timeoutMs)
    }

    /// Sends `request` to `broker` and gives its answer; fails when the broker cannot be reached
    /// or does not answer within `timeoutMs`.
    public func send<R: RequestMessage>(
        _ request: R, version: Int16, to broker: Int32, timeoutMs: Int64
    ) -> EventLoopFuture<R.Response> {
        guard let client = client(for: broker) else {
            return eventLoop.makeFailedFuture(ConnectionError("broker \(broker) is not registered"))
        }
        let promise = eventLoop.makePromise(of: R.Response.self)
        let done = NIOLockedValueBox(false)
        @Sendable func finish(_ result: Result<R.Response, any Error>) {
            if done.withLockedValue({
                let was = $0; $0 = true; return was
            }) {
                return
            }
            promise.completeWith(result)
        }
        // A broker that stops answering (paused, or gone without a reset) must not hold the
        // caller forever: drop the connection so the next attempt reconnects.
        let timeout = eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) {
            client.close()
            finish(.failure(ConnectionError("no answer from broker \(broker) within \(timeoutMs) ms")))
        }
        client.send(request, version: version).whenComplete { result in
            timeout.cancel()
            finish(result)
        }
        return promise.futureResult
    }

    public func close() {
        let all = lock.withLock { () -> [any PeerConnection] in
            let all = Array(clients.values)
            clients = [:]
            return all
        }
        for c in all { c.shutdown() }
    }
}
