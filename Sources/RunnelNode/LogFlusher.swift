import Foundation
import Logging
import NIOCore
import RunnelLog

/// The maintenance loop's sync step: every log with rolled segments past its recovery point
/// (Kafka flushes a log up to a new segment when it rolls) or whose flush policy is due.
enum LogFlusher {
    /// Runs the syncs that are due, timing each one. A failed sync stops the process at once.
    /// Linux reports a failed writeback once and may then drop the dirty pages: a retried fsync
    /// can succeed over data that never reached the disk, and the recovery point would move past
    /// it. So the node stops, as Kafka halts when its log dir fails, without the clean-shutdown
    /// marker: the next start re-validates everything past the last good recovery point, and
    /// meanwhile the controller moves leadership to other replicas.
    static func run(_ logManager: LogManager, nowMs: Int64, logger: Logger) {
        // Each log's flush is timed from the end of the previous one (the checks between them
        // cost next to nothing).
        var mark = NIODeadline.now()
        let failures = logManager.runFlush(nowMs: nowMs) { _ in
            let done = NIODeadline.now()
            NodeMetrics.logFlushDuration.recordNanoseconds((done - mark).nanoseconds)
            mark = done
        }
        if let (tp, error) = failures.first {
            logger.critical("fsync of \(tp) failed: \(error); stopping the node (no clean shutdown) so recovery re-checks the log on the next start")
            fflush(nil)
            _exit(1)
        }
    }
}
