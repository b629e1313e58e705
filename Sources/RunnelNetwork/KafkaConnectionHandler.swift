#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import NIOCore
import NIOSSL
import RunnelSecurity
import RunnelWire

/// The per-connection shell: parses request headers, hands requests to the node in arrival order,
/// and writes responses in that same order even when they complete out of order. Stops reading
/// while `requestsQueuedMax` requests are waiting. Authentication decisions are the
/// `ConnectionAuthenticator`'s; the handler carries them out.
final class KafkaConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let handler: any RequestHandler
    private let listener: String
    private let connectionId: UInt64
    private let requestsQueuedMax: Int
    private let logger: Logger
    private let security: ListenerSecurity
    private var authenticator: ConnectionAuthenticator
    /// Whether the TLS peer's principal was read (TLS listeners without SASL).
    private var tlsPrincipalKnown = false

    private var nextSequence = 0
    private var nextToWrite = 0
    /// Responses finished out of order, by sequence; nil value = no response (acks=0).
    private var finished: [Int: OutgoingResponse?] = [:]
    /// Per request: its correlation id and response header version, its API, when it came, and
    /// whether its answer is a raw SASL token (no response header).
    private var headerVersions:
        [Int: (correlationId: Int32, headerVersion: Int16, apiKey: Int16, started: NIODeadline, raw: Bool)] = [:]
    private let metrics = RequestMetrics.shared
    private var waiting = 0
    private var readPending = false
    private let flusher = FlushOncePerTurn()
    /// Client quota throttling: no read until this time (KIP-124's muted channel).
    private var mutedUntil: NIODeadline = .uptimeNanoseconds(0)
    /// Frames that came in the same read as a request that muted the connection: they wait out
    /// the mute too, as Kafka's muted channel leaves them unread (at most one read's worth,
    /// `maxMessagesPerRead` buffers, since nothing more is read meanwhile).
    private var heldFrames: [ByteBuffer] = []
    /// The task that ends the mute, cancelled when the connection closes (a throttle can be long).
    private var unmuteTask: Scheduled<Void>?
    private var closing = false
    /// The peer, looked up once: the channel asks the kernel (getpeername) on every access.
    private var peer: SocketAddress?

    init(
        handler: any RequestHandler, listener: String, connectionId: UInt64, requestsQueuedMax: Int,
        security: ListenerSecurity = .plaintext,
        logger: Logger
    ) {
        self.handler = handler
        self.listener = listener
        self.connectionId = connectionId
        self.requestsQueuedMax = requestsQueuedMax
        self.security = security
        self.authenticator = ConnectionAuthenticator(security: security)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { peer = context.remoteAddress }
    }

    func channelActive(context: ChannelHandlerContext) {
        peer = context.remoteAddress
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        if !heldFrames.isEmpty || mutedUntil > .now() {
            heldFrames.append(frame)
            return
        }
        process(frame, context: context)
    }

    /// Handles the frames held while muted, in order, until the connection is muted again; then
    /// reads more if a read was held back.
    private func releaseHeldFrames(context: ChannelHandlerContext) {
        while !heldFrames.isEmpty && !closing && mutedUntil <= .now() {
            process(heldFrames.removeFirst(), context: context)
        }
        if heldFrames.isEmpty && readPending && waiting < requestsQueuedMax && mutedUntil <= .now() {
            readPending = false
            context.read()
        }
    }

    private func process(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        metrics.bytesIn.increment(by: frame.readableBytes + 4)
        if security.securityProtocol.usesTLS && !security.securityProtocol.usesSASL && !tlsPrincipalKnown {
            tlsPrincipalKnown = true
            let certificate: NIOSSLCertificate? = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()) ?? nil
            let der = certificate.flatMap { try? $0.toDERBytes() }
            if let problem = authenticator.tlsEstablished(peerCertificate: der) {
                closeForBadInput(context: context, problem)
                return
            }
        }
        if authenticator.expectsRawToken {
            let sequence = enqueue(
                correlationId: 0, headerVersion: 0, apiKey: ApiKey.saslAuthenticate.rawValue, raw: true)
            carryOut(authenticator.rawToken(frame, now: .now()), sequence: sequence, context: context)
            return
        }
        var reader = WireReader(frame)
        let header: RequestHeader
        do {
            header = try RequestHeader(from: &reader)
        } catch {
            closeForBadInput(context: context, "unparseable request header (\(error))")
            return
        }
        let sequence = enqueue(
            correlationId: header.correlationId,
            headerVersion: ResponseHeader.version(apiKey: header.apiKey, apiVersion: header.apiVersion),
            apiKey: header.apiKey.rawValue, raw: false)
        let decision = authenticator.request(
            header, body: reader.buffer, now: .now(), allocator: context.channel.allocator)
        guard case .forward(let principal) = decision else {
            carryOut(decision, sequence: sequence, context: context)
            return
        }
        let request = IncomingRequest(header: header, body: reader.buffer, frameBytes: frame.readableBytes + 4)
        var requestContext = RequestContext(
            connectionId: connectionId, remoteAddress: peer ?? context.remoteAddress, listener: listener,
            eventLoop: context.eventLoop, allocator: context.channel.allocator, principalType: principal.type,
            principalName: principal.name, clientId: header.clientId)
        let muteBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        requestContext.muteConnection = { throttleMs in
            if loop.inEventLoop {
                muteBound.value.0.mute(throttleMs, context: muteBound.value.1)
            } else {
                loop.execute { muteBound.value.0.mute(throttleMs, context: muteBound.value.1) }
            }
        }
        switch handler.handle(request, context: requestContext) {
        case .noResponse:
            complete(sequence, nil, context: context)
        case .noResponseThrottled(let throttleMs):
            mute(throttleMs, context: context)
            complete(sequence, nil, context: context)
        case .close(let reason):
            closeForBadInput(context: context, reason)
        case .respondNow(let response):
            complete(sequence, response, context: context)
        case .respond(let future):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.hop(to: context.eventLoop).whenComplete { result in
                let (me, context) = bound.value
                switch result {
                case .success(let response): me.complete(sequence, response, context: context)
                case .failure(let error): me.closeForBadInput(context: context, "request failed: \(error)")
                }
            }
        }
    }

    /// Takes the next place in the response order.
    private func enqueue(correlationId: Int32, headerVersion: Int16, apiKey: Int16, raw: Bool) -> Int {
        let sequence = nextSequence
        nextSequence += 1
        waiting += 1
        headerVersions[sequence] = (correlationId, headerVersion, apiKey, NIODeadline.now(), raw)
        return sequence
    }

    /// Carries out what the authenticator decided for a request it answered itself.
    private func carryOut(_ decision: ConnectionAuthenticator.Decision, sequence: Int, context: ChannelHandlerContext) {
        switch decision {
        case .forward:
            preconditionFailure("forwarded requests go to the node")
        case .answer(let response):
            complete(sequence, response, context: context)
        case .answerRaw(let bytes):
            complete(sequence, OutgoingResponse(parts: [.byteBuffer(bytes)]), context: context)
        case .answerAndClose(let response, let reason):
            complete(sequence, response, context: context)
            closeAfterFailedAuthentication(context: context, reason)
        case .closeAfterDelay(let reason):
            closeAfterFailedAuthentication(context: context, reason)
        case .close(let reason):
            closeForBadInput(context: context, reason)
        }
    }

    /// A failed authentication: read nothing more, and close after
    /// `connection.failed.authentication.delay.ms` (the answer already written goes first).
    private func closeAfterFailedAuthentication(context: ChannelHandlerContext, _ reason: String) {
        guard !closing else { return }
        closing = true
        logger.info(
            "authentication failed",
            metadata: [
                "connection": "\(connectionId)", "listener": "\(listener)", "reason": "\(reason)",
                "remote": "\((peer ?? context.remoteAddress).map { "\($0)" } ?? "?")",
            ])
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(max(0, security.failedAuthenticationDelayMs))) {
            bound.value.flush()
            bound.value.close(promise: nil)
        }
    }

    /// Reads nothing more from the connection for `throttleMs` (Kafka mutes a throttled
    /// client's channel; frames already received are still answered).
    private func mute(_ throttleMs: Int32, context: ChannelHandlerContext) {
        guard throttleMs > 0 else { return }
        let until = NIODeadline.now() + .milliseconds(Int64(throttleMs))
        guard until > mutedUntil else { return }
        mutedUntil = until
        scheduleUnmute(at: until, context: context)
    }

    private func scheduleUnmute(at until: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        unmuteTask?.cancel()
        unmuteTask = context.eventLoop.scheduleTask(deadline: until) {
            let (me, context) = bound.value
            guard !me.closing else { return }
            if me.mutedUntil > .now() {
                // Fired early: try again at the mute's end.
                me.scheduleUnmute(at: me.mutedUntil, context: context)
                return
            }
            me.releaseHeldFrames(context: context)
        }
    }

    private func complete(_ sequence: Int, _ response: OutgoingResponse?, context: ChannelHandlerContext) {
        guard !closing else {
            // The connection is gone: the response is dropped, its file descriptors closed.
            Self.release(response)
            return
        }
        if var throttled = response, throttled.throttleMs > 0 {
            mute(throttled.throttleMs, context: context)
            if throttled.delayedByThrottle {
                // Before KIP-219 the broker holds the answer for the throttle time.
                throttled.delayedByThrottle = false
                throttled.throttleMs = 0
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let held = throttled
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(response!.throttleMs))) {
                    let (me, context) = bound.value
                    me.complete(sequence, held, context: context)
                }
                return
            }
        }
        finished[sequence] = .some(response)
        var wrote = false
        while let entry = finished.removeValue(forKey: nextToWrite) {
            let meta = headerVersions.removeValue(forKey: nextToWrite)!
            nextToWrite += 1
            waiting -= 1
            let handles = metrics.api(meta.apiKey)
            handles.count.increment()
            handles.latency.recordNanoseconds((NIODeadline.now() - meta.started).nanoseconds)
            if let response = entry {
                write(response, meta: (meta.correlationId, meta.headerVersion, meta.raw), context: context)
                wrote = true
            }
        }
        if wrote { flusher.schedule(context) }
        if readPending && waiting < requestsQueuedMax && mutedUntil <= .now() && heldFrames.isEmpty {
            readPending = false
            context.read()
        }
    }

    private func write(
        _ response: OutgoingResponse, meta: (correlationId: Int32, headerVersion: Int16, raw: Bool),
        context: ChannelHandlerContext
    ) {
        var head = context.channel.allocator.buffer(capacity: 16)
        if !meta.raw {
            var headerWriter = WireWriter(buffer: head)
            ResponseHeader(correlationId: meta.correlationId).write(
                to: &headerWriter, headerVersion: meta.headerVersion)
            head = headerWriter.buffer
        }
        let size = head.readableBytes + response.byteCount
        metrics.bytesOut.increment(by: size + 4)
        var prefix = context.channel.allocator.buffer(capacity: 4 + head.readableBytes)
        prefix.writeInteger(Int32(size))
        prefix.writeBuffer(&head)
        var parts = response.parts
        // Coalesce the prefix with a leading buffer part to save a write.
        if case .byteBuffer(var first)? = parts.first {
            prefix.writeBuffer(&first)
            parts.removeFirst()
        }
        context.write(wrapOutboundOut(.byteBuffer(prefix)), promise: nil)
        for part in parts {
            switch part {
            case .byteBuffer:
                context.write(wrapOutboundOut(part), promise: nil)
            case .fileRegion(let region) where security.tls != nil:
                // TLS cannot encrypt a file region (sendfile bypasses user space): read it.
                defer { try? region.fileHandle.close() }
                guard let bytes = Self.read(region, allocator: context.channel.allocator) else {
                    closeForBadInput(context: context, "reading a fetched file region failed")
                    return
                }
                context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            case .fileRegion(let region):
                let promise = context.eventLoop.makePromise(of: Void.self)
                promise.futureResult.whenComplete { _ in try? region.fileHandle.close() }
                context.write(wrapOutboundOut(part), promise: promise)
            }
        }
    }

    /// The bytes of a file region, read with pread (from the page cache, as sendfile would).
    static func read(_ region: FileRegion, allocator: ByteBufferAllocator) -> ByteBuffer? {
        let count = region.readableBytes
        var buffer = allocator.buffer(capacity: count)
        let offset = region.readerIndex
        let ok: Bool =
            (try? region.fileHandle.withUnsafeFileDescriptor { fd in
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                    var done = 0
                    while done < count {
                        let n = pread(fd, pointer.baseAddress! + done, count - done, off_t(offset + done))
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { break }
                        done += n
                    }
                    return done
                }
            } == count) ?? false
        return ok ? buffer : nil
    }

    private func closeForBadInput(context: ChannelHandlerContext, _ reason: String) {
        guard !closing else { return }
        closing = true
        metrics.closedForBadInput.increment()
        logger.info(
            "closing connection",
            metadata: [
                "connection": "\(connectionId)", "reason": "\(reason)",
                "remote": "\((peer ?? context.remoteAddress).map { "\($0)" } ?? "?")",
            ])
        releaseFileRegions()
        // The answers written before the bad input still go out.
        flusher.flushNow(context)
        context.close(promise: nil)
    }

    private func releaseFileRegions() {
        for (_, entry) in finished { Self.release(entry) }
        finished = [:]
    }

    static func release(_ response: OutgoingResponse?) {
        for part in response?.parts ?? [] {
            if case .fileRegion(let region) = part { try? region.fileHandle.close() }
        }
    }

    func read(context: ChannelHandlerContext) {
        if waiting >= requestsQueuedMax || mutedUntil > .now() || !heldFrames.isEmpty {
            readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tooLarge = error as? KafkaFrameDecoder.FrameTooLarge {
            closeForBadInput(
                context: context, "frame of \(tooLarge.size) bytes is over socket.request.max.bytes (\(tooLarge.limit))"
            )
        } else if let tooLarge = (error as? ByteToMessageDecoderError).flatMap({ _ in error }) {
            closeForBadInput(context: context, "decoder error: \(tooLarge)")
        } else {
            closeForBadInput(context: context, "connection error: \(error)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        unmuteTask?.cancel()
        unmuteTask = nil
        heldFrames = []
        releaseFileRegions()
        handler.connectionClosed(connectionId)
        context.fireChannelInactive()
    }
}
