import Foundation

/// Long CPU-bound work beside the quorum (writing a snapshot and its checksum) runs at a lower
/// CPU priority, so the threads that answer the quorum and its clients are scheduled first when
/// the cores are busy. A snapshot of a million partitions takes seconds of CPU; on a machine
/// whose cores it shares with the quorum's loop, an election or a commit could otherwise wait
/// behind it.
public enum BackgroundPriority {
    /// The nice value a background thread takes: `nice 10`, about a tenth of a normal thread's
    /// share when both want the CPU, and all of it when nothing else does.
    public static let niceness: Int32 = 10

    /// Lowers the calling thread's priority (Linux keeps one per thread). Raising it back would
    /// need a privilege, so call it only on a thread that does background work from then on.
    public static func enter() {
        #if os(Linux)
        // who = 0 is the calling thread.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #else
        _ = setpriority(PRIO_PROCESS, 0, niceness)
        #endif
    }
}
