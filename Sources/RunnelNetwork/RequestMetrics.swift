import Metrics
import NIOConcurrencyHelpers
import RunnelWire

/// The metrics every Kafka listener keeps, through swift-metrics (the node chooses the backend,
/// Prometheus in `runnel server`): requests and their latency per API, network bytes in and out.
/// The per-API handles are made once, on first use (after the node bootstrapped the backend).
public final class RequestMetrics: Sendable {
    static let shared = RequestMetrics()

    /// Makes the listener-wide series (network bytes, connections), so that a scrape shows each
    /// from the start rather than from its first event. Call it once the metrics backend is
    /// bootstrapped; the per-API series still appear with each API's first request.
    public static func registerSeries() { _ = shared }

    private let perApi = NIOLockedValueBox<[Int16: (count: Counter, latency: Timer)]>([:])
    let bytesIn = Counter(label: "runnel_network_bytes_in_total")
    let bytesOut = Counter(label: "runnel_network_bytes_out_total")
    let connections = Counter(label: "runnel_connections_accepted_total")
    let closedForBadInput = Counter(label: "runnel_connections_closed_for_bad_input_total")

    /// The handles of one API. Keys Kafka does not define share one "unknown" series, so a
    /// hostile client cannot make the series grow without bound.
    func api(_ key: Int16) -> (count: Counter, latency: Timer) {
        let known = !ApiKey(rawValue: key).name.hasPrefix("Unknown")
        let slot = known ? key : -1
        return perApi.withLockedValue { table in
            if let handles = table[slot] { return handles }
            let name = known ? ApiKey(rawValue: key).name : "unknown"
            let handles = (
                Counter(label: "runnel_requests_total", dimensions: [("api", name)]),
                Timer(label: "runnel_request_duration_seconds", dimensions: [("api", name)])
            )
            table[slot] = handles
            return handles
        }
    }
}
