/// Rules of the replication core that a test may break on purpose, to show that the simulation
/// (and `tools/chaos`) catches the loss each one causes. Every switch is off unless a simulator
/// or a test turns it on; a process turns one on only through `RUNNEL_TEST_BROKEN_RULES`, which
/// says so loudly at start-up.
public struct ReplicationFaults: Sendable, Equatable {
    /// An acks=all produce is answered as soon as the leader appended it, without waiting for the
    /// high watermark to cover it.
    public var ackBeforeHighWatermark = false
    /// The leader's high watermark follows its own log end, ignoring what the ISR's followers hold.
    public var highWatermarkPastFollowerEnd = false
    /// No KIP-903 broker-epoch checks on the leader: a fetch from an earlier incarnation of a
    /// broker updates what the leader knows of it, and a follower rejoins the ISR on such fetches.
    public var isrExpansionWithoutBrokerEpochCheck = false
    /// A follower ignores the diverging epoch its leader reports, so it never truncates a tail
    /// the leader does not have.
    public var ignoreDivergingEpoch = false
    /// A read_committed fetch reads up to the high watermark, past the last stable offset, so it
    /// returns records of transactions still open.
    public var fetchPastLastStableOffset = false

    public init() {}

    /// The names `RUNNEL_TEST_BROKEN_RULES` and the simulators use.
    public static let ruleNames = [
        "ackBeforeHighWatermark", "highWatermarkPastFollowerEnd", "isrExpansionWithoutBrokerEpochCheck",
        "ignoreDivergingEpoch", "fetchPastLastStableOffset",
    ]

    /// Turns on the rule named `name` (one of `ruleNames`); false for an unknown name.
    public mutating func breakRule(named name: String) -> Bool {
        switch name {
        case "ackBeforeHighWatermark": ackBeforeHighWatermark = true
        case "highWatermarkPastFollowerEnd": highWatermarkPastFollowerEnd = true
        case "isrExpansionWithoutBrokerEpochCheck": isrExpansionWithoutBrokerEpochCheck = true
        case "ignoreDivergingEpoch": ignoreDivergingEpoch = true
        case "fetchPastLastStableOffset": fetchPastLastStableOffset = true
        default: return false
        }
        return true
    }

    /// Whether any rule is broken.
    public var any: Bool { self != ReplicationFaults() }
}
