import Metrics
import NIOCore
import RunnelMetadata
import RunnelWire

/// Client quotas (KIP-13 byte rates, KIP-124 request time, KIP-219 client-side throttling): the
/// broker records what each request costs against the quota that applies to its user and client
/// id, and a request over quota gets a throttle time: in the Produce and Fetch answers'
/// `throttle_time_ms`, and as a muted connection (nothing more is read from it for that long).
/// Produce v6+ and Fetch v8+ clients hold back on their own, so their answer goes at once; older
/// versions get their answer only once the throttle time has passed, as Kafka does.
extension Broker {
    /// The quota `key` that applies to the request's user and client id, nil when none does.
    /// The user is the authenticated principal's name, `ANONYMOUS` when unauthenticated (Kafka's
    /// User:ANONYMOUS, whom `user` quotas of that name or the default user cover).
    func clientQuota(_ key: ClientQuotaKey, context: RequestContext) -> ResolvedClientQuota? {
        let image = self.image
        guard !image.clientQuotas.isEmpty else { return nil }
        let quota = image.resolveClientQuota(key, user: context.principalName, clientId: context.clientId ?? "")
        return quota.limit == nil ? nil : quota
    }

    /// Records `value` against `quota` now and gives the throttle time in ms.
    func recordClientQuota(_ key: ClientQuotaKey, _ quota: ResolvedClientQuota, value: Double) -> Int32 {
        let nowMs = clock.monotonicMs()
        let throttleMs = clientQuotaManager.withLockedValue {
            $0.record(key, quota: quota, value: value, nowMs: nowMs)
        }
        if throttleMs > 0 { Self.countThrottle(key, quota, throttleMs: throttleMs) }
        return throttleMs
    }

    /// Kafka's per-entity quota metrics (`kafka.server:type=Produce|Fetch|Request,user=,client-id=`
    /// byte-rate and throttle-time) as Prometheus counters: bytes let through and throttle time
    /// given, by quota type and the measured entity's user and client id.
    static func countBytes(_ key: ClientQuotaKey, _ quota: ResolvedClientQuota, bytes: Double) {
        Counter(label: "runnel_client_quota_bytes_total", dimensions: dimensions(key, quota))
            .increment(by: Int64(bytes))
    }

    static func countThrottle(_ key: ClientQuotaKey, _ quota: ResolvedClientQuota, throttleMs: Int32) {
        let dims = dimensions(key, quota)
        Counter(label: "runnel_client_quota_throttle_time_ms_total", dimensions: dims).increment(by: Int64(throttleMs))
        Counter(label: "runnel_client_quota_throttled_total", dimensions: dims).increment()
    }

    private static func dimensions(_ key: ClientQuotaKey, _ quota: ResolvedClientQuota) -> [(String, String)] {
        let type =
            switch key {
            case .producerByteRate: "Produce"
            case .consumerByteRate: "Fetch"
            case .requestPercentage: "Request"
            }
        return [("type", type), ("user", quota.userTag), ("client_id", quota.clientIdTag)]
    }

    /// The throttle a Produce of `requestBytes` earns against `producer_byte_rate`; the
    /// connection is muted from now (the answer, once written, mutes it again for that long).
    func produceThrottleMs(requestBytes: Int, context: RequestContext) -> Int32 {
        guard let quota = clientQuota(.producerByteRate, context: context) else { return 0 }
        let throttleMs = recordClientQuota(.producerByteRate, quota, value: Double(requestBytes))
        Self.countBytes(.producerByteRate, quota, bytes: Double(requestBytes))
        if throttleMs > 0 { context.muteConnection?(throttleMs) }
        return throttleMs
    }

    /// Marks an encoded answer as throttled: versions from `clientThrottlesFrom` (KIP-219) are
    /// sent at once and the connection muted; older ones wait out the throttle time.
    static func throttled(
        _ response: OutgoingResponse, throttleMs: Int32, version: Int16, clientThrottlesFrom: Int16
    )
        -> OutgoingResponse
    {
        guard throttleMs > 0 else { return response }
        var out = response
        out.throttleMs = max(out.throttleMs, throttleMs)
        out.delayedByThrottle = version < clientThrottlesFrom
        return out
    }

    /// A consumer's Fetch answer against `consumer_byte_rate` (Kafka's handleFetchRequest): the
    /// answer's bytes are recorded; over quota, they are taken back and the answer is an empty
    /// one carrying the throttle time (the records stay for the next fetch).
    static func quotaCheckedFetch(
        _ answer: FetchResponse, version: Int16, allocator: ByteBufferAllocator, quota: ResolvedClientQuota?,
        broker: Broker
    ) -> OutgoingResponse {
        let encoded = OutgoingResponse(answer, version: version, allocator: allocator)
        guard let quota else { return encoded }
        let bytes = Double(encoded.byteCount)
        let throttleMs = broker.recordClientQuota(.consumerByteRate, quota, value: bytes)
        guard throttleMs > 0 else {
            countBytes(.consumerByteRate, quota, bytes: bytes)
            return encoded
        }
        let nowMs = broker.clock.monotonicMs()
        broker.clientQuotaManager.withLockedValue {
            $0.unrecord(.consumerByteRate, quota: quota, value: bytes, nowMs: nowMs)
        }
        Self.releaseRegions(answer)
        var empty = FetchResponse()
        empty.throttleTimeMs = throttleMs
        empty.sessionId = answer.sessionId
        return throttled(
            OutgoingResponse(empty, version: version, allocator: allocator), throttleMs: throttleMs,
            version: version, clientThrottlesFrom: 8)
    }

    /// Runs `body` (the request's handling) and, when a `request_percentage` quota applies,
    /// records the time it took as a percentage of one handler thread (Kafka's
    /// ClientRequestQuotaManager; here the time spent on the connection's event loop, not the
    /// time a waiting answer takes later). Over quota, the connection is muted for the throttle
    /// time; only Produce and Fetch answers carry their byte-rate throttle in the answer itself.
    /// Follower fetches and the brokers' own requests are exempt, as in Kafka.
    func measuringRequestQuota(
        _ request: IncomingRequest, context: RequestContext, _ body: () -> RequestOutcome
    ) -> RequestOutcome {
        guard let quota = clientQuota(.requestPercentage, context: context), !Self.exemptFromRequestQuota(request)
        else { return body() }
        let started = NIODeadline.now()
        let outcome = body()
        let elapsedNanos = (NIODeadline.now() - started).nanoseconds
        // Percent of one thread over a second: 100 x seconds spent.
        let throttleMs = recordClientQuota(.requestPercentage, quota, value: Double(elapsedNanos) * 100 / 1e9)
        guard throttleMs > 0 else { return outcome }
        context.muteConnection?(throttleMs)
        @Sendable func mute(_ r: OutgoingResponse) -> OutgoingResponse {
            var out = r
            out.throttleMs = max(out.throttleMs, throttleMs)
            return out
        }
        switch outcome {
        case .respondNow(let r): return .respondNow(mute(r))
        case .respond(let future): return .respond(future.map(mute))
        case .noResponse: return .noResponseThrottled(throttleMs: throttleMs)
        case .noResponseThrottled(let ms): return .noResponseThrottled(throttleMs: max(ms, throttleMs))
        case .close: return outcome
        }
    }

    /// Requests no client quota measures: the brokers' and controllers' own (a follower's Fetch,
    /// transaction markers) and ApiVersions, which a throttled client must still be able to send.
    static func exemptFromRequestQuota(_ request: IncomingRequest) -> Bool {
        switch request.header.apiKey {
        case .apiVersions, .writeTxnMarkers, .brokerRegistration, .brokerHeartbeat, .alterPartition:
            return true
        case .fetch:
            // A follower names its broker id (in the replica state from v15).
            let version = request.header.apiVersion
            guard let fetch = try? FetchRequest.decode(request.body, version: version) else { return false }
            return (version >= 15 ? fetch.replicaState.replicaId : fetch.replicaId) >= 0
        default:
            return false
        }
    }
}
