import NIOCore
import RunnelCore
import RunnelWire

/// The simulated network between simulated processes, carrying the Kafka protocol: a process
/// listens on `host:port` with its real request handler (a broker's `Broker`, a controller's
/// `QuorumEndpoint`), and connects to others through `PeerConnector`, as `PeerClient` does over
/// TCP. Requests and answers are encoded and decoded by the real codecs.
///
/// Connections behave as TCP does for what Kafka relies on:
/// - on one connection, requests arrive in the order they were sent, and answers come back in
///   request order;
/// - across a cut link (a network partition) nothing gets through: what was sent waits (the
///   kernel retransmits) and arrives, in order, once the link heals; a new connection across a
///   cut link times out;
/// - a process that stops (or closes a connection) sends what it had written first, then its
///   close, so the peer still serves requests sent before it: a request of a crashed process's
///   incarnation can arrive after the process restarted, as on a real network;
/// - a request to a process that crashed gets a reset: the sender hears at once;
/// - a lost packet breaks the connection (reset on both sides).
/// Between connections, delays are random, so messages reorder.
final class SimNetwork {
    let scheduler: SimScheduler
    /// Random choices (delays, losses) come from the simulation's generator.
    let random: (UInt64) -> UInt64
    var lossPerMille: UInt64 = 0
    var maxDelayMs: Int64 = 20
    /// How often the kernel tries again to get a message across a cut link.
    static let retransmitMs: Int64 = 200
    /// `PeerClient.connectTimeoutMs`: a connect across a cut link fails after this long.
    var connectTimeoutMs: Int64 = 1_000
    /// Directed links that drop everything: [from node, to node].
    var cut: Set<[Int32]> = []
    /// Directed links that are slow (congested): the extra ms each message takes on them.
    var slow: [[Int32]: Int64] = [:]
    /// Where the kernels' retransmissions run (they outlive the processes that wrote the data).
    let kernel: SimEventLoop

    struct Listener {
        var node: Int32
        var name: String
        var handler: any RequestHandler
        var loop: SimEventLoop
        /// False until the process lets clients in (a broker opens its listeners once unfenced).
        var accepting: Bool
    }
    private var listeners: [String: Listener] = [:]
    /// Open streams, by number (creation order).
    private var streams: [UInt64: SimStream] = [:]
    private var nextNumber: UInt64 = 0

    init(scheduler: SimScheduler, random: @escaping (UInt64) -> UInt64) {
        self.scheduler = scheduler
        self.random = random
        self.kernel = SimEventLoop(scheduler: scheduler, name: "network")
    }

    static func address(_ host: String, _ port: Int) -> String { "\(host):\(port)" }

    /// `node` listens on `host:port` with `handler`, on its loop.
    func listen(
        node: Int32, name: String, host: String, port: Int, handler: any RequestHandler, loop: SimEventLoop,
        accepting: Bool
    ) {
        listeners[Self.address(host, port)] = Listener(
            node: node, name: name, handler: handler, loop: loop, accepting: accepting)
    }

    func setAccepting(host: String, port: Int, _ accepting: Bool) {
        listeners[Self.address(host, port)]?.accepting = accepting
    }

    func listener(host: String, port: Int) -> Listener? { listeners[Self.address(host, port)] }

    /// A connector for the process `node` whose answers run on `loop`.
    func connector(node: Int32, loop: SimEventLoop) -> SimConnector {
        SimConnector(network: self, node: node, loop: loop)
    }

    /// The process `node` stopped: its listeners close; streams it served are reset (the peers
    /// hear at once); streams it opened are closed after what it had sent (the kernel does both).
    func processStopped(_ node: Int32) {
        listeners = listeners.filter { $0.value.node != node }
        for number in streams.keys.sorted() {
            guard let stream = streams[number] else { continue }
            if stream.server == node {
                stream.reset(reason: "the connection was reset")
            } else if stream.client == node {
                stream.closeFromClient()
            }
        }
    }

    func newNumber() -> UInt64 {
        nextNumber += 1
        return nextNumber
    }

    func opened(_ stream: SimStream) { streams[stream.number] = stream }
    func closed(_ stream: SimStream) { streams.removeValue(forKey: stream.number) }

    /// Whether a packet from `a` to `b` gets through.
    func linkUp(_ a: Int32, _ b: Int32) -> Bool { !cut.contains([a, b]) }

    func delay() -> Int64 { 1 + Int64(random(UInt64(max(maxDelayMs, 1)))) }

    /// The delay of a message from `a` to `b`.
    func delay(_ a: Int32, _ b: Int32) -> Int64 { delay() + (slow[[a, b]] ?? 0) }

    func lost() -> Bool { lossPerMille > 0 && random(1000) < lossPerMille }
}

/// `PeerConnector` over the simulated network, for one process.
struct SimConnector: PeerConnector, @unchecked Sendable {
    let network: SimNetwork
    let node: Int32
    let loop: SimEventLoop

    func connect(host: String, port: Int, clientId: String, eventLoop: (any EventLoop)?) -> any PeerConnection {
        SimConnection(network: network, from: node, loop: loop, host: host, port: port, clientId: clientId)
    }
}

/// One established connection: its two directions and the server's in-order answers.
final class SimStream: @unchecked Sendable {
    let network: SimNetwork
    let number: UInt64
    let client: Int32
    let server: Int32
    let listener: SimNetwork.Listener
    let clientLoop: SimEventLoop
    /// The client still reads answers (it has not closed or reset the connection).
    var clientOpen = true
    /// The server still serves requests (it has not seen the close, nor a reset).
    var serverOpen = true
    private var toServer = Outbox()
    private var toClient = Outbox()
    /// Requests served so far, and the answers waiting for an earlier request's answer.
    private var nextSequence: UInt64 = 0
    private var nextToAnswer: UInt64 = 0
    private var ready: [UInt64: (body: ByteBuffer?, deliver: (ByteBuffer) -> Void)] = [:]
    /// The client's requests without an answer, oldest first, with what fails them.
    var inFlight: [(correlationId: Int32, fail: (any Error) -> Void)] = []

    init(network: SimNetwork, number: UInt64, client: Int32, clientLoop: SimEventLoop, listener: SimNetwork.Listener) {
        self.network = network
        self.number = number
        self.client = client
        self.clientLoop = clientLoop
        self.server = listener.node
        self.listener = listener
    }

    /// The client writes a request; `deliver` gets its answer's bytes.
    func request(
        _ frame: ByteBuffer, correlationId: Int32, fail: @escaping (any Error) -> Void,
        deliver: @escaping (ByteBuffer) -> Void
    ) {
        inFlight.append((correlationId, fail))
        let sequence = nextSequence
        nextSequence += 1
        let answered: (ByteBuffer) -> Void = { [self] body in
            inFlight.removeAll { $0.correlationId == correlationId }
            deliver(body)
        }
        toServer.messages.append { [self] in serve(frame, sequence: sequence, deliver: answered) }
        pump(toServer: true)
    }

    /// The server side: the listener's handler answers, and answers go back in request order.
    private func serve(_ frame: ByteBuffer, sequence: UInt64, deliver: @escaping (ByteBuffer) -> Void) {
        var reader = WireReader(frame)
        guard let header = try? RequestHeader(from: &reader) else {
            reset(reason: "the server closed the connection: unparseable request header")
            return
        }
        let request = IncomingRequest(header: header, body: reader.buffer, frameBytes: frame.readableBytes + 4)
        let context = RequestContext(
            connectionId: number, remoteAddress: nil, listener: listener.name, eventLoop: listener.loop,
            allocator: ByteBufferAllocator())
        let headerVersion = ResponseHeader.version(apiKey: header.apiKey, apiVersion: header.apiVersion)
        let respond: (OutgoingResponse?) -> Void = { [self] response in
            guard serverOpen else { return }
            var body: ByteBuffer?
            if let response {
                var writer = WireWriter(capacity: 64)
                ResponseHeader(correlationId: header.correlationId).write(to: &writer, headerVersion: headerVersion)
                var bytes = writer.bytes
                for part in response.parts {
                    switch part {
                    case .byteBuffer(var b): bytes.writeBuffer(&b)
                    case .fileRegion: preconditionFailure("the simulated disk serves no file regions")
                    }
                }
                body = bytes
            }
            ready[sequence] = (body, deliver)
            while let next = ready.removeValue(forKey: nextToAnswer) {
                nextToAnswer += 1
                if let body = next.body {
                    toClient.messages.append { next.deliver(body) }
                    pump(toServer: false)
                }
            }
        }
        switch listener.handler.handle(request, context: context) {
        case .noResponse, .noResponseThrottled:
            respond(nil)
        case .respondNow(let response):
            respond(response)
        case .respond(let future):
            let box = UncheckedBox(respond)
            future.whenComplete { [self] result in
                switch result {
                case .success(let response): box.value(response)
                case .failure: reset(reason: "the server closed the connection")
                }
            }
        case .close(let reason):
            reset(reason: "the server closed the connection: \(reason)")
        }
    }

    /// Puts the head of one direction on the wire while the link is up; while it is cut, the
    /// kernel tries again later (retransmission), keeping the order.
    private func pump(toServer direction: Bool) {
        let (sender, receiver) = direction ? (client, server) : (server, client)
        let receiverLoop = direction ? listener.loop : clientLoop
        while true {
            let open = direction ? serverOpen : clientOpen
            var box = direction ? toServer : toClient
            guard open, !box.messages.isEmpty else { return }
            guard network.linkUp(sender, receiver) else {
                if !box.retrying {
                    box.retrying = true
                    set(box, direction)
                    network.kernel.schedule(afterMs: SimNetwork.retransmitMs) { [self] in
                        var box = direction ? toServer : toClient
                        box.retrying = false
                        set(box, direction)
                        pump(toServer: direction)
                    }
                }
                return
            }
            if network.lost() {
                reset(reason: "the connection was reset (packet loss)")
                return
            }
            let message = box.messages.removeFirst()
            let arrival = max(box.lastArrivalMs, network.scheduler.nowMs + network.delay(sender, receiver))
            box.lastArrivalMs = arrival
            set(box, direction)
            receiverLoop.schedule(afterMs: arrival - network.scheduler.nowMs) { [self] in
                guard direction ? serverOpen : clientOpen else { return }
                message()
            }
        }
    }

    private func set(_ box: Outbox, _ toServerDirection: Bool) {
        if toServerDirection { toServer = box } else { toClient = box }
    }

    /// The client closes the connection (its own timeout, a shutdown, or its process stopped):
    /// it reads no more answers, and the server sees the close after the requests sent before it.
    func closeFromClient() {
        guard clientOpen else { return }
        clientOpen = false
        failInFlight(ConnectionError("the connection was closed"))
        toServer.messages.append { [self] in
            serverOpen = false
            listener.handler.connectionClosed(number)
            network.closed(self)
        }
        pump(toServer: true)
    }

    /// The connection breaks on both sides at once (a reset).
    func reset(reason: String) {
        let wasOpen = serverOpen
        clientOpen = false
        serverOpen = false
        toServer = Outbox()
        toClient = Outbox()
        failInFlight(ConnectionError(reason))
        if wasOpen { listener.handler.connectionClosed(number) }
        network.closed(self)
    }

    private func failInFlight(_ error: any Error) {
        let failing = inFlight
        inFlight = []
        guard !failing.isEmpty else { return }
        clientLoop.schedule(afterMs: 0) {
            for f in failing { f.fail(error) }
        }
    }
}

/// One client connection of the simulated network (what `PeerClient` is over TCP): it connects on
/// first use and again after the stream breaks.
final class SimConnection: PeerConnection, @unchecked Sendable {
    let network: SimNetwork
    let from: Int32
    let loop: SimEventLoop
    let host: String
    let port: Int
    let clientId: String

    private var stream: SimStream?
    private var connecting: [() -> Void]?
    private var nextCorrelation: Int32 = 0
    private var isShutDown = false

    init(network: SimNetwork, from: Int32, loop: SimEventLoop, host: String, port: Int, clientId: String) {
        self.network = network
        self.from = from
        self.loop = loop
        self.host = host
        self.port = port
        self.clientId = clientId
    }

    func send<R: RequestMessage>(_ request: R, version: Int16) -> EventLoopFuture<R.Response> {
        let promise = loop.makePromise(of: R.Response.self)
        guard !isShutDown else {
            promise.fail(ConnectionError("the connection to \(host):\(port) is shut down"))
            return promise.futureResult
        }
        nextCorrelation = nextCorrelation == Int32.max ? 0 : nextCorrelation + 1
        let correlationId = nextCorrelation
        var writer = WireWriter(capacity: 256)
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId).write(
            to: &writer)
        request.write(to: &writer, version: version)
        let frame = writer.bytes
        let headerVersion = ResponseHeader.version(apiKey: R.apiKey, apiVersion: version)
        withStream { stream in
            stream.request(frame, correlationId: correlationId, fail: { promise.fail($0) }) { body in
                var reader = WireReader(body)
                do {
                    let header = try ResponseHeader(from: &reader, headerVersion: headerVersion)
                    guard header.correlationId == correlationId else {
                        throw ConnectionError("an answer to another request")
                    }
                    promise.succeed(try R.Response(from: &reader, version: version))
                } catch {
                    promise.fail(error)
                }
            }
        } failed: { error in
            promise.fail(error)
        }
        return promise.futureResult
    }

    /// Runs `body` with an open stream (connecting first if needed); `failed` when the connect fails.
    private func withStream(_ body: @escaping (SimStream) -> Void, failed: @escaping (any Error) -> Void) {
        if let stream, stream.clientOpen {
            body(stream)
            return
        }
        stream = nil
        let attempt: () -> Void = { [self] in
            if let stream, stream.clientOpen {
                body(stream)
            } else {
                failed(ConnectionError("cannot connect to \(host):\(port)"))
            }
        }
        if connecting != nil {
            connecting!.append(attempt)
            return
        }
        connecting = [attempt]
        let finish: (SimNetwork.Listener?) -> Void = { [self] listener in
            let waiting = connecting ?? []
            connecting = nil
            if let listener {
                let stream = SimStream(
                    network: network, number: network.newNumber(), client: from, clientLoop: loop, listener: listener)
                self.stream = stream
                network.opened(stream)
            }
            for w in waiting { w() }
        }
        guard let listener = network.listener(host: host, port: port) else {
            // Nothing listens there (the process is down): refused at once.
            loop.schedule(afterMs: network.delay()) { finish(nil) }
            return
        }
        guard network.linkUp(from, listener.node), network.linkUp(listener.node, from) else {
            // The SYN (or its answer) is dropped: the connect times out.
            loop.schedule(afterMs: network.connectTimeoutMs) { finish(nil) }
            return
        }
        loop.schedule(afterMs: 2 * network.delay()) { [self] in
            // Accepted only if the listener still exists and lets clients in.
            guard let now = network.listener(host: host, port: port), now.node == listener.node, now.accepting else {
                finish(nil)
                return
            }
            finish(now)
        }
    }

    /// Drops the connection; the next request connects again.
    func close() {
        stream?.closeFromClient()
        stream = nil
    }

    func shutdown() {
        isShutDown = true
        close()
    }
}

/// One direction of a simulated connection: messages not yet on the wire (held while the link
/// is cut), in order, and when the last one sent arrives.
private struct Outbox {
    var messages: [() -> Void] = []
    var lastArrivalMs: Int64 = 0
    var retrying = false
}

/// Carries a closure of the simulation's single thread into NIO's `@Sendable` callbacks.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
