import Logging
import NIOCore
import RunnelCore

/// The simulator's clock: virtual time, the same for every process (skew is not simulated).
struct SimClock: Clock, @unchecked Sendable {
    let scheduler: SimScheduler
    /// Wall-clock time is virtual time after a fixed epoch, so record timestamps look real.
    static let wallEpochMs: Int64 = 1_700_000_000_000

    func wallMs() -> TimestampMs { Self.wallEpochMs + scheduler.nowMs }
    func monotonicMs() -> Int64 { scheduler.nowMs }
}

/// Sends what the real drivers log into the simulation's trace (only while tracing: otherwise
/// the level is above anything they log, so no message is even built).
struct SimLogHandler: LogHandler {
    let label: String
    let sink: @Sendable (String) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let extra = all.isEmpty ? "" : " " + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        sink("\(label): \(event.message)\(extra)")
    }

    /// A logger for the process `label` writing to `sink` when `tracing`.
    static func logger(_ label: String, tracing: Bool, sink: @escaping @Sendable (String) -> Void) -> Logger {
        Logger(label: label) { _ in SimLogHandler(label: label, sink: sink, logLevel: tracing ? .info : .critical) }
    }
}
