import RunnelCore

/// Settings of one Raft node, with Kafka's `controller.quorum.*` defaults.
public struct RaftConfig: Sendable, Equatable {
    public var nodeId: NodeID
    /// The static voters (`controller.quorum.voters`). A node not among them is an observer.
    public var voters: [NodeID]
    /// `controller.quorum.election.timeout.ms`: base of the randomized election timeout.
    public var electionTimeoutMs: Int64 = 1000
    /// `controller.quorum.fetch.timeout.ms`: a follower that has not fetched from its leader for this
    /// long starts an election; a leader not fetched from by a majority for this long resigns.
    public var fetchTimeoutMs: Int64 = 2000
    /// `controller.quorum.election.backoff.max.ms`: most a node waits between lost elections.
    public var electionBackoffMaxMs: Int64 = 1000
    /// `controller.quorum.request.timeout.ms`: when an unanswered request is given up and resent.
    public var requestTimeoutMs: Int64 = 2000
    /// How long a leader parks a fetch that has nothing new (long poll).
    public var fetchMaxWaitMs: Int64 = 500
    /// How often a leader resends BeginQuorumEpoch to voters that have not acknowledged it.
    public var beginEpochRetryMs: Int64 = 100
    /// Least time between two rounds of high-watermark news: parked fetches that lack only the
    /// leader's high watermark (no records) are answered at once when the last round is this old,
    /// else at the first tick after it. Records are never held back, and a voter learns the high
    /// watermark with the next records anyway. 0 answers every move of the high watermark.
    public var highWatermarkNoticeIntervalMs: Int64 = 5

    public init(nodeId: NodeID, voters: [NodeID]) {
        self.nodeId = nodeId
        self.voters = voters.sorted()
    }

    public var isVoter: Bool { voters.contains(nodeId) }
    /// Votes needed for a majority of the voters.
    public var majority: Int { voters.count / 2 + 1 }
}

/// What must be durable before a node answers a vote: Kafka's `quorum-state` file.
public struct QuorumStateRecord: Sendable, Equatable, Codable {
    public var epoch: Int32
    public var votedId: Int32
    public var leaderId: Int32

    public init(epoch: Int32, votedId: Int32, leaderId: Int32) {
        self.epoch = epoch
        self.votedId = votedId
        self.leaderId = leaderId
    }

    public static let initial = QuorumStateRecord(epoch: 0, votedId: -1, leaderId: -1)
}

/// A node's role in its current epoch (Kafka's QuorumState).
public enum RaftRole: String, Sendable, Equatable {
    /// No leader known and no candidacy: waiting for one, or for the election timeout.
    case unattached
    /// Asking for pre-votes before starting an election (KIP-996), without bumping the epoch.
    case prospective
    /// Asking for votes in a new epoch.
    case candidate
    case leader
    case follower
    /// A leader that gave up (graceful shutdown or lost quorum) and waits for a successor.
    case resigned
}

/// A snapshot's name: the offset it covers up to (exclusive) and the epoch of the record before.
public struct SnapshotId: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var endOffset: Int64
    public var epoch: Int32
    public init(endOffset: Int64, epoch: Int32) {
        self.endOffset = endOffset
        self.epoch = epoch
    }
    public static func < (lhs: SnapshotId, rhs: SnapshotId) -> Bool {
        lhs.endOffset != rhs.endOffset ? lhs.endOffset < rhs.endOffset : lhs.epoch < rhs.epoch
    }
    public var description: String { "\(endOffset)-\(epoch)" }
}

/// Errors carried in Raft responses (Kafka error codes by name).
public enum RaftError: Int16, Sendable, Equatable {
    case none = 0
    case notLeaderOrFollower = 6
    case fencedLeaderEpoch = 74
    case unknownLeaderEpoch = 75
    case inconsistentVoterSet = 81
    case offsetOutOfRange = 1
}

/// The Raft messages the core reads and writes. The driver maps them to Kafka's Vote,
/// BeginQuorumEpoch, EndQuorumEpoch and Fetch on `__cluster_metadata`.
public enum RaftMessage<Payload: Sendable & Equatable>: Sendable, Equatable {
    case vote(VoteRequest)
    case voteResponse(VoteResponse)
    case beginQuorumEpoch(BeginQuorumEpochRequest)
    case beginQuorumEpochResponse(EpochResponse)
    case endQuorumEpoch(EndQuorumEpochRequest)
    case endQuorumEpochResponse(EpochResponse)
    case fetch(FetchRequest)
    case fetchResponse(FetchResponse<Payload>)

    public var kind: String {
        switch self {
        case .vote(let r): r.preVote ? "PreVote" : "Vote"
        case .voteResponse(let r): r.preVote ? "PreVoteResponse" : "VoteResponse"
        case .beginQuorumEpoch: "BeginQuorumEpoch"
        case .beginQuorumEpochResponse: "BeginQuorumEpochResponse"
        case .endQuorumEpoch: "EndQuorumEpoch"
        case .endQuorumEpochResponse: "EndQuorumEpochResponse"
        case .fetch: "Fetch"
        case .fetchResponse: "FetchResponse"
        }
    }
}

public struct VoteRequest: Sendable, Equatable {
    /// The epoch the candidate stands in (for a pre-vote: the epoch it would stand in).
    public var epoch: Int32
    public var candidateId: NodeID
    public var lastOffsetEpoch: Int32
    /// The candidate's log end offset.
    public var lastOffset: Int64
    public var preVote: Bool
    public init(epoch: Int32, candidateId: NodeID, lastOffsetEpoch: Int32, lastOffset: Int64, preVote: Bool) {
        self.epoch = epoch
        self.candidateId = candidateId
        self.lastOffsetEpoch = lastOffsetEpoch
        self.lastOffset = lastOffset
        self.preVote = preVote
    }
}

public struct VoteResponse: Sendable, Equatable {
    public var error: RaftError
    /// The voter's epoch and the leader it knows in it (-1: none).
    public var epoch: Int32
    public var leaderId: Int32
    public var granted: Bool
    public var preVote: Bool
    public init(error: RaftError = .none, epoch: Int32, leaderId: Int32, granted: Bool, preVote: Bool) {
        self.error = error
        self.epoch = epoch
        self.leaderId = leaderId
        self.granted = granted
        self.preVote = preVote
    }
}

public struct BeginQuorumEpochRequest: Sendable, Equatable {
    public var epoch: Int32
    public var leaderId: NodeID
    public init(epoch: Int32, leaderId: NodeID) {
        self.epoch = epoch
        self.leaderId = leaderId
    }
}

public struct EndQuorumEpochRequest: Sendable, Equatable {
    public var epoch: Int32
    public var leaderId: NodeID
    /// Voters best placed to lead next, most caught up first.
    public var preferredSuccessors: [NodeID]
    public init(epoch: Int32, leaderId: NodeID, preferredSuccessors: [NodeID]) {
        self.epoch = epoch
        self.leaderId = leaderId
        self.preferredSuccessors = preferredSuccessors
    }
}

/// The answer to BeginQuorumEpoch and EndQuorumEpoch: the responder's epoch and leader.
public struct EpochResponse: Sendable, Equatable {
    public var error: RaftError
    public var epoch: Int32
    public var leaderId: Int32
    public init(error: RaftError, epoch: Int32, leaderId: Int32) {
        self.error = error
        self.epoch = epoch
        self.leaderId = leaderId
    }
}

public struct FetchRequest: Sendable, Equatable {
    /// The leader epoch the fetcher believes in.
    public var epoch: Int32
    public var replicaId: NodeID
    public var fetchOffset: Int64
    /// Epoch of the record just before `fetchOffset` (-1 when the log is empty).
    public var lastFetchedEpoch: Int32
    public var maxWaitMs: Int64
    public init(epoch: Int32, replicaId: NodeID, fetchOffset: Int64, lastFetchedEpoch: Int32, maxWaitMs: Int64) {
        self.epoch = epoch
        self.replicaId = replicaId
        self.fetchOffset = fetchOffset
        self.lastFetchedEpoch = lastFetchedEpoch
        self.maxWaitMs = maxWaitMs
    }
}

/// A run of records in one epoch: what the log appends and fetches carry.
public struct RaftBatch<Payload: Sendable & Equatable>: Sendable, Equatable {
    public var baseOffset: Int64
    public var recordCount: Int
    public var epoch: Int32
    public var payload: RaftPayload<Payload>
    public var lastOffset: Int64 { baseOffset + Int64(recordCount) - 1 }
    public var nextOffset: Int64 { baseOffset + Int64(recordCount) }
    public init(baseOffset: Int64, recordCount: Int, epoch: Int32, payload: RaftPayload<Payload>) {
        precondition(recordCount > 0, "a batch holds at least one record")
        self.baseOffset = baseOffset
        self.recordCount = recordCount
        self.epoch = epoch
        self.payload = payload
    }
}

/// A batch's content: data the driver carries as is, or the leader-change control record the
/// core writes at the start of every epoch.
public enum RaftPayload<Payload: Sendable & Equatable>: Sendable, Equatable {
    case data(Payload)
    case leaderChange(leaderId: NodeID, voters: [NodeID])
}

public struct FetchResponse<Payload: Sendable & Equatable>: Sendable, Equatable {
    public var error: RaftError
    public var epoch: Int32
    public var leaderId: Int32
    public var highWatermark: Int64
    public var logStartOffset: Int64
    /// When set, the fetcher's log diverges: truncate to where this epoch ends and fetch again.
    public var divergingEpoch: OffsetAndEpoch?
    /// When set, the fetch offset is below the log start: load this snapshot first.
    public var snapshotId: SnapshotId?
    /// On the leader: where the driver reads records from (and up to the end it saw). On the
    /// fetcher: the batches received.
    public var readFrom: Int64
    public var readUpTo: Int64
    public var batches: [RaftBatch<Payload>]
    /// The fetch offset of the request this answers (the transport pairs them), so a fetcher
    /// can drop a late answer to a request it has moved past (-1: unknown).
    public var fetchOffset: Int64
    /// The last fetched epoch of that request: with the fetch offset, it tells a late answer from
    /// one to the fetch in flight even when the fetcher truncated and caught up to the same
    /// offset since (an offset alone cannot; the quorum model kraft.pml finds that run). -2: unknown.
    public var fetchLastEpoch: Int32 = -2

    public init(
        fetchOffset: Int64 = -1, fetchLastEpoch: Int32 = -2, error: RaftError, epoch: Int32, leaderId: Int32,
        highWatermark: Int64 = -1, logStartOffset: Int64 = 0,
        divergingEpoch: OffsetAndEpoch? = nil, snapshotId: SnapshotId? = nil,
        readFrom: Int64 = -1, readUpTo: Int64 = -1, batches: [RaftBatch<Payload>] = []
    ) {
        self.fetchOffset = fetchOffset
        self.fetchLastEpoch = fetchLastEpoch
        self.error = error
        self.epoch = epoch
        self.leaderId = leaderId
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
        self.divergingEpoch = divergingEpoch
        self.snapshotId = snapshotId
        self.readFrom = readFrom
        self.readUpTo = readUpTo
        self.batches = batches
    }
}

/// A message to send.
public struct Outgoing<Payload: Sendable & Equatable>: Sendable, Equatable {
    public var to: NodeID
    public var message: RaftMessage<Payload>
}

/// Progress of a replica as the leader sees it (DescribeQuorum).
public struct ReplicaProgress: Sendable, Equatable {
    public var nodeId: NodeID
    public var endOffset: Int64
    public var lastFetchMs: Int64
    public var lastCaughtUpMs: Int64
    public var isVoter: Bool
}

/// Why a proposal was refused.
public enum ProposeError: Error, Sendable, Equatable {
    case notLeader(leaderId: Int32, epoch: Int32)
}
