import RunnelMetadata

/// Kafka's `Rate` over a `SampledStat` (clients/.../metrics/stats): the sum of the values recorded
/// in the last `sampleCount` windows of `windowMs`, divided by the time those windows span. A
/// value: time comes in as a parameter.
public struct QuotaRate: Sendable, Equatable {
    struct Sample: Sendable, Equatable {
        var windowStartMs: Int64
        var value: Double
    }

    public let windowMs: Int64
    public let sampleCount: Int
    private var samples: [Sample] = []
    private var current = 0

    public init(windowMs: Int64, sampleCount: Int) {
        precondition(windowMs > 0 && sampleCount >= 1, "a quota rate needs a positive window and a sample")
        self.windowMs = windowMs
        self.sampleCount = sampleCount
    }

    /// Adds `value` at `nowMs`. A new sample starts once the current one is a window old; its
    /// start is aligned to the window grid that began with the first sample, as Kafka's
    /// SampledStat aligns it (so a quiet gap does not shift the windows).
    public mutating func record(_ value: Double, nowMs: Int64) {
        if samples.isEmpty { samples.append(Sample(windowStartMs: nowMs, value: 0)) }
        if nowMs - samples[current].windowStartMs >= windowMs {
            let previousEnd = samples[current].windowStartMs + windowMs
            let start = nowMs - ((nowMs - previousEnd) % windowMs)
            current = (current + 1) % sampleCount
            if current >= samples.count {
                samples.append(Sample(windowStartMs: start, value: 0))
            } else {
                samples[current] = Sample(windowStartMs: start, value: 0)
            }
        }
        samples[current].value += value
    }

    /// Samples that ended more than `sampleCount` windows ago count as empty, starting now.
    private mutating func purge(nowMs: Int64) {
        let expireAgeMs = Int64(sampleCount) * windowMs
        for i in samples.indices where nowMs - samples[i].windowStartMs >= expireAgeMs {
            samples[i] = Sample(windowStartMs: nowMs, value: 0)
        }
    }

    /// The time the rate is measured over (Kafka's `Rate.windowSize`): from the oldest sample's
    /// start to now, and at least `sampleCount - 1` full windows, so a client's first burst is
    /// not measured over a few milliseconds.
    public mutating func windowSizeMs(nowMs: Int64) -> Int64 {
        purge(nowMs: nowMs)
        let oldest = samples.map(\.windowStartMs).min() ?? nowMs
        var elapsed = nowMs - oldest
        let fullWindows = elapsed / windowMs
        let minFullWindows = Int64(sampleCount - 1)
        if fullWindows < minFullWindows { elapsed += (minFullWindows - fullWindows) * windowMs }
        return elapsed
    }

    /// Units per second over the window (Kafka's `Rate.measure`).
    public mutating func measure(nowMs: Int64) -> Double {
        let span = windowSizeMs(nowMs: nowMs)
        let total = samples.reduce(0) { $0 + $1.value }
        return span > 0 ? total / (Double(span) / 1000) : 0
    }
}

/// Kafka's ClientQuotaManager and ClientRequestQuotaManager as one value: a rate per quota kind
/// and measured entity (the metric tags a `ResolvedClientQuota` names), the throttle time a
/// recording earns, and per-entity throttle totals for metrics. Time comes in as a parameter.
public struct ClientQuotaManager: Sendable {
    /// `quota.window.num` and `quota.window.size.seconds`.
    public struct Settings: Sendable, Equatable {
        public var windowNum: Int
        public var windowSizeSeconds: Int
        public init(windowNum: Int = 11, windowSizeSeconds: Int = 1) {
            precondition(
                windowNum >= 1 && windowSizeSeconds >= 1, "quota.window.num and quota.window.size.seconds are >= 1")
            self.windowNum = windowNum
            self.windowSizeSeconds = windowSizeSeconds
        }
        var windowMs: Int64 { Int64(windowSizeSeconds) * 1000 }
    }

    /// One measured entity of one quota kind (Kafka's sensor name: type, user tag, client-id tag).
    public struct SensorKey: Sendable, Hashable, Comparable {
        public var key: ClientQuotaKey
        public var userTag: String
        public var clientIdTag: String
        public init(_ key: ClientQuotaKey, userTag: String, clientIdTag: String) {
            self.key = key
            self.userTag = userTag
            self.clientIdTag = clientIdTag
        }
        public static func < (a: SensorKey, b: SensorKey) -> Bool {
            (a.key.rawValue, a.userTag, a.clientIdTag) < (b.key.rawValue, b.userTag, b.clientIdTag)
        }
    }

    /// What metrics show for one sensor.
    public struct SensorStats: Sendable, Equatable {
        /// Sum of the values recorded (bytes, or percent-seconds of request handling time).
        public var valueTotal: Double = 0
        /// Sum of the throttle times given, in ms, and how many.
        public var throttleMsTotal: Int64 = 0
        public var throttleCount: Int64 = 0
        /// The rate when last recorded (units per second).
        public var lastRate: Double = 0
    }

    /// Kafka drops a sensor after an hour without a recording.
    public static let inactiveSensorExpiryMs: Int64 = 3_600_000

    public let settings: Settings
    private var rates: [SensorKey: QuotaRate] = [:]
    private var lastRecordedMs: [SensorKey: Int64] = [:]
    public private(set) var stats: [SensorKey: SensorStats] = [:]
    private var lastExpiryMs: Int64?

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Records `value` for the entity `quota` names and gives the throttle time in ms (Kafka's
    /// `recordAndGetThrottleTimeMs`): 0 while the rate is within the quota, otherwise the time
    /// that brings the rate back to it if nothing more came, X = (O - T) / T * W for observed
    /// rate O, quota T and the window W the rate was measured over. Nothing is measured for an
    /// entity without a quota.
    public mutating func record(
        _ key: ClientQuotaKey, quota: ResolvedClientQuota, value: Double, nowMs: Int64
    ) -> Int32 {
        guard let limit = quota.limit else { return 0 }
        precondition(limit > 0, "a client quota is positive (the controller refuses others)")
        expireInactive(nowMs: nowMs)
        let sensor = SensorKey(key, userTag: quota.userTag, clientIdTag: quota.clientIdTag)
        var rate = rates[sensor] ?? QuotaRate(windowMs: settings.windowMs, sampleCount: settings.windowNum)
        rate.record(value, nowMs: nowMs)
        let observed = rate.measure(nowMs: nowMs)
        var throttleMs: Int32 = 0
        if observed > limit {
            let window = Double(rate.windowSizeMs(nowMs: nowMs))
            // Bounded before conversion: a tiny quota makes the quotient overflow to infinity.
            let exact = ((observed - limit) / limit * window).rounded()
            throttleMs = exact.isFinite ? Int32(min(max(exact, 0), Double(Int32.max))) : Int32.max
        }
        rates[sensor] = rate
        lastRecordedMs[sensor] = nowMs
        stats[sensor, default: SensorStats()].valueTotal += value
        stats[sensor]!.lastRate = observed
        if throttleMs > 0 {
            stats[sensor]!.throttleMsTotal += Int64(throttleMs)
            stats[sensor]!.throttleCount += 1
        }
        precondition(throttleMs >= 0, "a throttle time is never negative")
        return throttleMs
    }

    /// Takes back a recorded value (Kafka's `unrecordQuotaSensor`: a throttled fetch answers
    /// with no records, so its bytes do not count).
    public mutating func unrecord(_ key: ClientQuotaKey, quota: ResolvedClientQuota, value: Double, nowMs: Int64) {
        let sensor = SensorKey(key, userTag: quota.userTag, clientIdTag: quota.clientIdTag)
        guard var rate = rates[sensor] else { return }
        rate.record(-value, nowMs: nowMs)
        rates[sensor] = rate
        stats[sensor]?.valueTotal -= value
    }

    /// The most that can be recorded at once without being throttled whatever came before
    /// (Kafka's `getMaxValueInQuotaWindow`): quota x (windows - 1) x window seconds, and at least
    /// one window's worth (Kafka's would be 0 with one window). A fetch returns no more bytes.
    public func maxValueInQuotaWindow(_ quota: ResolvedClientQuota) -> Double {
        guard let limit = quota.limit else { return .greatestFiniteMagnitude }
        return limit * Double(max(settings.windowNum - 1, 1)) * Double(settings.windowSizeSeconds)
    }

    private mutating func expireInactive(nowMs: Int64) {
        if let last = lastExpiryMs, nowMs - last < 60_000 { return }
        lastExpiryMs = nowMs
        for (sensor, last) in lastRecordedMs where nowMs - last >= Self.inactiveSensorExpiryMs {
            rates.removeValue(forKey: sensor)
            lastRecordedMs.removeValue(forKey: sensor)
            stats.removeValue(forKey: sensor)
        }
    }
}
