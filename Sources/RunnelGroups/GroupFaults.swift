/// Rules of the group coordinator's host that a test may break on purpose, to show that the group
/// simulation catches what each one breaks. Off unless a simulator turns them on.
public struct GroupFaults: Sendable, Equatable {
    /// SyncGroup is answered before the leader's assignment is written to `__consumer_offsets`
    /// (a failover can then hand the same generation out again).
    public var answerSyncBeforeStore = false
    /// OffsetCommit is acknowledged before its records are replicated (a failover can lose it).
    public var ackCommitBeforeWrite = false

    public init() {}
}
