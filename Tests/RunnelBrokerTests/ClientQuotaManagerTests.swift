// Client quotas as Kafka measures and enforces them, on the pure manager with the time passed
// in: Kafka's Rate over quota.window.num samples of quota.window.size.seconds (at least
// windows - 1 full windows, old samples expiring), the throttle time X = (O - T) / T x W, the
// precedence of quota entities (DefaultQuotaCallback: user and client id, ..., default client
// id) and whose rate a quota limits, and a client that waits out its throttle times getting
// the quota's rate over time.
import RunnelMetadata
import RunnelWire
import Testing
@testable import RunnelBroker

private func image(_ quotas: [(ClientQuotaEntity, String, Double)]) -> MetadataImage {
    var delta = MetadataDelta(.empty)
    for (i, (entity, key, value)) in quotas.enumerated() {
        delta.replay(
            .clientQuota(
                ClientQuotaRecord(
                    entity: entity.sortedParts.map { .init(entityType: $0.type, entityName: $0.name) }, key: key,
                    value: value, remove: false)), offset: Int64(i), epoch: 1)
    }
    return delta.apply()
}

private let client = ResolvedClientQuota(userTag: "", clientIdTag: "app", limit: 1000)

@Test func rateIsMeasuredOverAtLeastWindowsMinusOneFullWindows() {
    var rate = QuotaRate(windowMs: 1000, sampleCount: 11)
    rate.record(10_000, nowMs: 0)
    // A first burst counts over 10 windows, not over the milliseconds it took.
    #expect(rate.windowSizeMs(nowMs: 0) == 10_000)
    #expect(rate.measure(nowMs: 0) == 1000)
    #expect(rate.measure(nowMs: 5_000) == 1000)
    #expect(rate.windowSizeMs(nowMs: 5_500) == 10_500, "a partial window adds to the 10 full ones")
    // Past 10 windows the span is the real elapsed time.
    #expect(rate.windowSizeMs(nowMs: 10_500) == 10_500)
}

@Test func samplesOlderThanAllWindowsExpire() {
    var rate = QuotaRate(windowMs: 1000, sampleCount: 11)
    rate.record(10_000, nowMs: 0)
    rate.record(100, nowMs: 5_000)
    // At 11 s the first sample is 11 windows old: only the 100 bytes remain, over 10 windows.
    #expect(rate.measure(nowMs: 11_000) == 10)
    #expect(rate.measure(nowMs: 16_000) == 0)
}

@Test func withinQuotaIsNotThrottled() {
    var manager = ClientQuotaManager()
    for second in 0..<30 {
        #expect(manager.record(.producerByteRate, quota: client, value: 900, nowMs: Int64(second) * 1000) == 0)
    }
}

@Test func throttleTimeBringsTheRateBackToTheQuota() {
    var manager = ClientQuotaManager()
    // 15,000 bytes at once against 1,000/s over a 10 s window: O = 1,500/s, X = 0.5 x 10 s.
    #expect(manager.record(.producerByteRate, quota: client, value: 15_000, nowMs: 0) == 5_000)
    #expect(manager.stats[.init(.producerByteRate, userTag: "", clientIdTag: "app")]?.throttleCount == 1)
    // No quota, no measurement.
    let none = ResolvedClientQuota(userTag: "", clientIdTag: "app", limit: nil)
    #expect(manager.record(.producerByteRate, quota: none, value: 1e12, nowMs: 0) == 0)
    // A tiny quota (any positive value is accepted) throttles for the longest time, not a trap.
    let tiny = ResolvedClientQuota(userTag: "", clientIdTag: "tiny", limit: 1e-300)
    #expect(manager.record(.requestPercentage, quota: tiny, value: 1e10, nowMs: 0) == Int32.max)
}

@Test func unrecordTakesBackAThrottledFetch() {
    var manager = ClientQuotaManager()
    #expect(manager.record(.consumerByteRate, quota: client, value: 10_000, nowMs: 0) == 0)
    #expect(manager.record(.consumerByteRate, quota: client, value: 5_000, nowMs: 0) > 0)
    manager.unrecord(.consumerByteRate, quota: client, value: 5_000, nowMs: 0)
    #expect(manager.record(.consumerByteRate, quota: client, value: 0, nowMs: 0) == 0)
    // The largest fetch: quota x (windows - 1) x window seconds.
    #expect(manager.maxValueInQuotaWindow(client) == 10_000)
}

@Test func sensorsOlderThanAnHourAreDropped() {
    var manager = ClientQuotaManager()
    _ = manager.record(.producerByteRate, quota: client, value: 100, nowMs: 0)
    let other = ResolvedClientQuota(userTag: "", clientIdTag: "other", limit: 1000)
    _ = manager.record(.producerByteRate, quota: other, value: 100, nowMs: 3_600_000)
    #expect(manager.stats.count == 1)
}

/// A producer that sends `requestBytes` whenever it is not muted, and is muted for each throttle
/// time it gets (as the broker mutes its connection), gets the quota's rate over a long run.
@Test func aClientThatWaitsOutItsThrottlesGetsTheQuotaRate() {
    var manager = ClientQuotaManager()
    let quota = ResolvedClientQuota(userTag: "", clientIdTag: "app", limit: 1_048_576)
    var nowMs: Int64 = 0
    var sent = 0.0
    let requestBytes = 1_000_000.0
    while nowMs < 60_000 {
        let throttle = manager.record(.producerByteRate, quota: quota, value: requestBytes, nowMs: nowMs)
        sent += requestBytes
        nowMs += max(Int64(throttle), 5)
    }
    let rate = sent / (Double(nowMs) / 1000)
    #expect(rate > 0.9 * 1_048_576 && rate < 1.3 * 1_048_576, "\(rate)")
}

@Test func quotaPrecedenceIsKafkas() {
    let key = "producer_byte_rate"
    let levels: [(ClientQuotaEntity, Double)] = [
        (ClientQuotaEntity(user: .some("alice"), clientId: .some("app")), 1),
        (ClientQuotaEntity(user: .some("alice"), clientId: .some(nil)), 2),
        (ClientQuotaEntity(user: .some("alice")), 3),
        (ClientQuotaEntity(user: .some(nil), clientId: .some("app")), 4),
        (ClientQuotaEntity(user: .some(nil), clientId: .some(nil)), 5),
        (ClientQuotaEntity(user: .some(nil)), 6),
        (ClientQuotaEntity(clientId: .some("app")), 7),
        (ClientQuotaEntity(clientId: .some(nil)), 8),
    ]
    // Take the most specific level away one at a time: the next one applies.
    for first in levels.indices {
        let img = image(levels[first...].map { ($0.0, key, $0.1) })
        let resolved = img.resolveClientQuota(.producerByteRate, user: "alice", clientId: "app")
        #expect(resolved.limit == levels[first].1)
        // Whose rate counts: user-only quotas measure the user, client-id-only ones the client id.
        let (userTag, clientTag): (String, String) =
            switch first {
            case 2, 5: ("alice", "")
            case 6, 7: ("", "app")
            default: ("alice", "app")
            }
        #expect(resolved.userTag == userTag && resolved.clientIdTag == clientTag, "level \(first + 1)")
    }
    // Another key does not apply; nor do other users' or client ids' quotas.
    let img = image([(ClientQuotaEntity(clientId: .some("app")), "consumer_byte_rate", 9)])
    #expect(img.resolveClientQuota(.producerByteRate, user: "alice", clientId: "app").limit == nil)
    #expect(img.resolveClientQuota(.consumerByteRate, user: "bob", clientId: "other").limit == nil)
}

@Test func describeMatchesAsKafka() {
    let img = image([
        (ClientQuotaEntity(clientId: .some("app")), "producer_byte_rate", 1),
        (ClientQuotaEntity(clientId: .some(nil)), "producer_byte_rate", 2),
        (ClientQuotaEntity(user: .some("alice"), clientId: .some("app")), "producer_byte_rate", 3),
    ])
    func names(_ components: [DescribeClientQuotasRequest.ComponentData], strict: Bool) -> [String] {
        let r = img.describeClientQuotas(DescribeClientQuotasRequest(components: components, strict: strict))
        return (r.entries ?? []).map { e in
            e.entity.map { "\($0.entityType)=\($0.entityName ?? "<default>")" }.joined(separator: ",")
        }
    }
    #expect(
        names([.init(entityType: "client-id", matchType: 0, match: "app")], strict: false) == [
            "client-id=app", "client-id=app,user=alice",
        ])
    #expect(names([.init(entityType: "client-id", matchType: 0, match: "app")], strict: true) == ["client-id=app"])
    #expect(names([.init(entityType: "client-id", matchType: 1, match: nil)], strict: true) == ["client-id=<default>"])
    #expect(names([.init(entityType: "client-id", matchType: 2, match: nil)], strict: true).count == 2)
    #expect(names([], strict: false).count == 3)
    let bad = img.describeClientQuotas(
        DescribeClientQuotasRequest(components: [.init(entityType: "user", matchType: 1, match: "x")]))
    #expect(bad.errorCode == ErrorCode.invalidRequest.rawValue && bad.entries == nil)
}
