import Foundation
import Logging
import NIOCore
import RunnelLog

/// The maintenance loop's sync step: every log with rolled segments past its recovery point
/// (Kafka flushes a log up to a new segment when it rolls) or whose flush policy is due.
enum LogFlusher {
    /// Runs the syncs that are due, timing each one. A failed sync stops the process at once
    /// (`StorageFailure`): Linux reports a failed writeback once and may then drop the dirty
    /// pages, so a retried fsync can succeed over data that never reached the disk, and the
    /// recovery point would move past it.
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
            StorageFailure.halt("fsync of \(tp) failed: \(error)", logger: logger)
        }
    }
}

/// A partition log's disk failed under it: a write or an fsync of its log dir returned an error
/// (ENOSPC, EIO, ...). Kafka takes the log dir offline and, when no live log dir is left (KRaft
/// before JBOD support: any), halts the broker; Runnel does the same for any failed log dir. The
/// node stops at once, without the clean-shutdown marker, so the next start re-checks every log
/// past its recovery point (a failed write is truncated away; the page cache may have dropped
/// what a failed fsync covered); meanwhile the controller fences the broker when its heartbeats
/// stop and moves leadership to replicas in the ISR, which hold every acknowledged acks=all write.
enum StorageFailure {
    static func halt(_ what: String, logger: Logger) -> Never {
        logger.critical(
            "\(what); stopping the node (no clean shutdown) so recovery re-checks the log on the next start")
        fflush(nil)
        _exit(1)
    }
}
