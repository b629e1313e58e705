import RunnelCore

/// What the driver must do after feeding the core: persist the quorum state (before sending
/// anything), truncate and append to the log, send messages, apply newly committed records,
/// fetch a snapshot.
public struct Ready<Payload: Sendable & Equatable>: Sendable, Equatable {
    /// Write and fsync `quorum-state` before sending any message of this Ready.
    public var quorumState: QuorumStateRecord?
    /// Drop the log from this offset on (before the appends).
    public var truncateTo: Int64?
    /// Append these batches, in order, after the truncation.
    public var appends: [RaftBatch<Payload>] = []
    /// Send these, after the quorum state is durable.
    public var messages: [Outgoing<Payload>] = []
    /// The high watermark moved: records below it are committed.
    public var highWatermark: Int64?
    /// Fetch this snapshot from the leader, load it, then call `snapshotLoaded`.
    public var fetchSnapshot: (leader: NodeID, id: SnapshotId)?
    /// Commands waiting for commit that can no longer commit (leadership lost): fail them.
    public var abandonedFrom: Int64?

    public var isEmpty: Bool {
        quorumState == nil && truncateTo == nil && appends.isEmpty && messages.isEmpty && highWatermark == nil
            && fetchSnapshot == nil && abandonedFrom == nil
    }

    public static func == (lhs: Ready, rhs: Ready) -> Bool {
        lhs.quorumState == rhs.quorumState && lhs.truncateTo == rhs.truncateTo && lhs.appends == rhs.appends
            && lhs.messages == rhs.messages && lhs.highWatermark == rhs.highWatermark
            && lhs.fetchSnapshot?.leader == rhs.fetchSnapshot?.leader && lhs.fetchSnapshot?.id == rhs.fetchSnapshot?.id
            && lhs.abandonedFrom == rhs.abandonedFrom
    }
}

/// KRaft consensus as a value: feed it time (`tick`), messages (`step`) and proposals (`propose`),
/// then drain `ready()` and carry it out; report durable appends with `persisted`. No I/O, no
/// clocks, no global randomness: a seed and the inputs decide everything.
///
/// Differences from textbook Raft, as in Kafka: replication is pull-based (followers Fetch;
/// the leader answers with records, a diverging epoch to truncate to, or a snapshot id), each
/// epoch begins with a leader-change record, a voter pre-votes before it stands (KIP-996), the
/// leader resigns when a majority stops fetching (check quorum), and observers fetch without voting.
public struct RaftNode<Payload: Sendable & Equatable>: Sendable {
    public let config: RaftConfig
    public private(set) var epoch: Int32
    public private(set) var votedId: NodeID?
    public private(set) var leaderId: NodeID?
    public private(set) var role: RaftRole
    public private(set) var log: RaftLogView
    /// The high watermark this node knows (-1 until known).
    public private(set) var highWatermark: Int64 = -1
    /// On a leader: where its epoch starts (the offset of its leader-change record).
    public private(set) var epochStartOffset: Int64 = -1

    private var rng: SeededRandom
    private var nowMs: Int64

    // Timers (absolute ms).
    private var electionDeadlineMs: Int64 = .max
    private var fetchDeadlineMs: Int64 = .max
    private var checkQuorumDeadlineMs: Int64 = .max
    private var beginEpochRetryMs: Int64 = .max

    // Candidate and prospective.
    private var granted: Set<NodeID> = []
    private var rejected: Set<NodeID> = []

    // Leader.
    private var progress: [NodeID: ReplicaProgress] = [:]
    private var beginEpochPending: Set<NodeID> = []
    private var parkedFetches: [NodeID: (request: FetchRequest, deadlineMs: Int64)] = [:]
    /// The high watermark last sent to each fetcher: a fetcher that has not seen the current one
    /// is answered at once instead of parked (the fetch request does not say what it knows).
    private var sentHighWatermark: [NodeID: Int64] = [:]
    /// When parked fetches were last answered for a new high watermark, and whether one that
    /// came since still waits for the pacing interval (`highWatermarkNoticeIntervalMs`).
    private var lastHighWatermarkNoticeMs: Int64?
    private var highWatermarkNoticeDue = false

    // Follower and observer.
    private var fetchInFlightSinceMs: Int64?
    /// Where the fetch in flight went.
    private var fetchTarget: NodeID?
    private var fetchingSnapshot: SnapshotId?
    /// The snapshot this node is downloading (the driver loads only this one).
    public var snapshotBeingFetched: SnapshotId? { fetchingSnapshot }
    /// When the leader last spoke to this node directly; nil when it has not in this role.
    private var lastLeaderContactMs: Int64?
    /// Observers without a leader try voters in turn.
    private var bootstrapIndex = 0

    // Output.
    private var outbox = Ready<Payload>()
    private var quorumStateDirty = false

    /// Test-only rule switches, for proving the simulation catches broken rules.
    public struct Faults: Sendable, Equatable {
        /// Grant votes without checking that the candidate's log is at least as up to date.
        public var grantVotesToShorterLogs = false
        /// Advance the high watermark on fewer than a majority.
        public var commitWithoutMajority = false
        public init() {}
    }
    public var faults = Faults()

    /// A broken invariant seen while a test-only fault was on (instead of stopping the process,
    /// so the simulation can report the seed). Always nil in production.
    public private(set) var invariantViolation: String?

    /// Checks an invariant: a precondition normally; with a test fault on, a recorded violation
    /// (the caller then skips the action).
    mutating func require(_ condition: Bool, _ message: String) -> Bool {
        if condition { return true }
        let faulty = faults.grantVotesToShorterLogs || faults.commitWithoutMajority
        precondition(faulty, message)
        if invariantViolation == nil { invariantViolation = message }
        return false
    }

    /// Starts a node from its durable state: `quorum-state` and what its log holds.
    public init(config: RaftConfig, state: QuorumStateRecord, log: RaftLogView, nowMs: Int64, seed: UInt64) {
        self.config = config
        self.epoch = state.epoch
        self.votedId = state.votedId >= 0 ? NodeID(state.votedId) : nil
        self.leaderId = nil
        self.role = .unattached
        self.log = log
        self.rng = SeededRandom(seed: seed)
        self.nowMs = nowMs
        // A restarted leader does not resume leading: it must win again (its peers may have moved on).
        if state.leaderId >= 0 && state.leaderId != config.nodeId.rawValue {
            becomeFollower(epoch: state.epoch, leader: NodeID(state.leaderId))
        } else {
            resetElectionTimer()
        }
        if config.voters == [config.nodeId] {
            // A lone voter elects itself at once.
            startElection()
        }
    }

    // MARK: public inputs

    /// Advances time: elections, fetch timeouts, check quorum, parked fetches, retries.
    public mutating func tick(nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        let now = self.nowMs
        switch role {
        case .leader:
            if now >= checkQuorumDeadlineMs {
                checkQuorum()
            }
            if role == .leader {
                if now >= beginEpochRetryMs { sendBeginEpoch() }
                if highWatermarkNoticeDue { noticeHighWatermark() }
                for replica in parkedFetches.keys.sorted() where now >= parkedFetches[replica]!.deadlineMs {
                    let parked = parkedFetches.removeValue(forKey: replica)!
                    answerFetch(parked.request)
                }
            }
        case .follower:
            if let since = fetchInFlightSinceMs, now - since >= config.requestTimeoutMs {
                fetchInFlightSinceMs = nil
            }
            if now >= fetchDeadlineMs {
                if config.isVoter {
                    becomeProspective()
                } else {
                    // An observer that lost its leader looks for it again.
                    leaderId = nil
                    fetchDeadlineMs = now + config.fetchTimeoutMs
                    fetchInFlightSinceMs = nil
                }
            }
            maybeSendFetch()
        case .unattached, .resigned:
            if config.isVoter {
                if now >= electionDeadlineMs { becomeProspective() }
            } else {
                if let since = fetchInFlightSinceMs, now - since >= config.requestTimeoutMs {
                    fetchInFlightSinceMs = nil
                }
                maybeSendFetch()
            }
        case .prospective, .candidate:
            if now >= electionDeadlineMs {
                // Lost or stalled: back off, then try again.
                if role == .candidate {
                    becomeUnattached(epoch: epoch, backoff: true)
                } else {
                    becomeUnattached(epoch: epoch, backoff: true)
                }
            }
        }
    }

    /// Handles a message from `from`.
    public mutating func step(_ message: RaftMessage<Payload>, from: NodeID, nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        switch message {
        case .vote(let r): handleVote(r, from: from)
        case .voteResponse(let r): handleVoteResponse(r, from: from)
        case .beginQuorumEpoch(let r): handleBeginEpoch(r, from: from)
        case .beginQuorumEpochResponse(let r): handleBeginEpochResponse(r, from: from)
        case .endQuorumEpoch(let r): handleEndEpoch(r, from: from)
        case .endQuorumEpochResponse(let r): handleEpochInResponse(r.epoch, leader: r.leaderId)
        case .fetch(let r): handleFetch(r, from: from)
        case .fetchResponse(let r): handleFetchResponse(r, from: from)
        }
    }

    /// Appends a batch of `recordCount` records on the leader. Returns its offsets; they commit
    /// once the high watermark passes them.
    public mutating func propose(_ payload: Payload, recordCount: Int) -> Result<ClosedRange<Int64>, ProposeError> {
        guard role == .leader else {
            return .failure(.notLeader(leaderId: leaderId?.rawValue ?? -1, epoch: epoch))
        }
        let batch = RaftBatch<Payload>(
            baseOffset: log.endOffset, recordCount: recordCount, epoch: epoch, payload: .data(payload))
        appendLocal(batch)
        wakeParkedFetches()
        return .success(batch.baseOffset...batch.lastOffset)
    }

    /// A request to `node` failed at the transport (connection refused or reset). A follower whose
    /// leader is unreachable does not wait out the fetch timeout: it asks for pre-votes soon,
    /// which cannot disturb a leader the others still hear from.
    public mutating func unreachable(_ node: NodeID, nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        if !config.isVoter, leaderId == nil, fetchInFlightSinceMs != nil, fetchTarget == node {
            // An observer looking for the leader asked a voter that is down: it asks the next
            // one at once rather than after the request timeout.
            fetchInFlightSinceMs = nil
            return
        }
        guard role == .follower, leaderId == node else { return }
        fetchInFlightSinceMs = nil
        if config.isVoter {
            // Spread over 100 ms so two followers rarely stand at once (a split vote costs a backoff).
            fetchDeadlineMs = min(fetchDeadlineMs, self.nowMs + Int64(rng.next() % 100) + 1)
        } else {
            leaderId = nil
        }
    }

    /// The driver made the log durable up to `offset` (fsync done).
    public mutating func persisted(upTo offset: Int64, nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        log.persisted(upTo: offset)
        if role == .leader {
            maybeAdvanceLeaderHighWatermark()
        } else {
            maybeSendFetch()
        }
    }

    /// The snapshot named by `fetchSnapshot` was fetched, verified and loaded: the log now starts there.
    public mutating func snapshotLoaded(_ id: SnapshotId, nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        guard fetchingSnapshot == id else { return }
        fetchingSnapshot = nil
        log.reset(to: id)
        outbox.truncateTo = nil
        highWatermark = max(highWatermark, id.endOffset)
        outbox.highWatermark = highWatermark
        maybeSendFetch()
    }

    /// The snapshot fetch failed; fetch again from the leader.
    public mutating func snapshotFailed(nowMs: Int64) {
        self.nowMs = max(self.nowMs, nowMs)
        fetchingSnapshot = nil
        maybeSendFetch()
    }

    /// The driver wrote a local snapshot at `id` and may drop log segments below it.
    public mutating func snapshotTaken(_ id: SnapshotId) {
        precondition(id.endOffset <= max(highWatermark, 0), "a snapshot covers committed records only")
        log.advanceStart(to: id)
    }

    /// Graceful resignation (shutdown): tell the voters, most caught up first, to elect a successor.
    public mutating func resign() {
        guard role == .leader else { return }
        let successors = progress.values.filter { $0.isVoter && $0.nodeId != config.nodeId }
            .sorted { $0.endOffset != $1.endOffset ? $0.endOffset > $1.endOffset : $0.nodeId < $1.nodeId }.map(\.nodeId)
        for voter in config.voters where voter != config.nodeId {
            send(
                .endQuorumEpoch(
                    EndQuorumEpochRequest(epoch: epoch, leaderId: config.nodeId, preferredSuccessors: successors)),
                to: voter)
        }
        becomeResigned()
    }

    /// Everything to carry out now; clears the outbox.
    public mutating func ready() -> Ready<Payload> {
        if quorumStateDirty {
            outbox.quorumState = quorumState
            quorumStateDirty = false
        }
        let out = outbox
        outbox = Ready()
        return out
    }

    /// The state to persist in `quorum-state`.
    public var quorumState: QuorumStateRecord {
        QuorumStateRecord(epoch: epoch, votedId: votedId?.rawValue ?? -1, leaderId: leaderId?.rawValue ?? -1)
    }

    /// The leader's view of every replica (DescribeQuorum); empty elsewhere.
    public var replicaProgress: [ReplicaProgress] {
        guard role == .leader else { return [] }
        var out = Array(progress.values)
        out.append(
            ReplicaProgress(
                nodeId: config.nodeId, endOffset: log.endOffset, lastFetchMs: nowMs, lastCaughtUpMs: nowMs,
                isVoter: true))
        return out.sorted { $0.nodeId < $1.nodeId }
    }

    /// The furthest end offset another voter has fetched from (acknowledged to) this leader; -1
    /// elsewhere or before any voter fetched.
    public var furthestFollowerEndOffset: Int64 {
        guard role == .leader else { return -1 }
        var furthest: Int64 = -1
        for voter in config.voters where voter != config.nodeId {
            furthest = max(furthest, progress[voter]?.endOffset ?? -1)
        }
        return furthest
    }

    // MARK: transitions

    private mutating func resetElectionTimer() {
        electionDeadlineMs =
            nowMs + config.electionTimeoutMs + Int64(rng.next() % UInt64(max(config.electionTimeoutMs, 1)))
    }

    private mutating func clearRoleState() {
        granted = []
        rejected = []
        progress = [:]
        beginEpochPending = []
        parkedFetches = [:]
        sentHighWatermark = [:]
        lastHighWatermarkNoticeMs = nil
        highWatermarkNoticeDue = false
        fetchInFlightSinceMs = nil
        checkQuorumDeadlineMs = .max
        beginEpochRetryMs = .max
        fetchDeadlineMs = .max
        electionDeadlineMs = .max
    }

    private mutating func setEpoch(_ newEpoch: Int32) {
        precondition(newEpoch >= epoch, "epochs never go down: \(newEpoch) after \(epoch)")
        if newEpoch > epoch {
            epoch = newEpoch
            votedId = nil
            leaderId = nil
            quorumStateDirty = true
        }
    }

    private mutating func abandonProposals() {
        if role == .leader {
            outbox.abandonedFrom = max(highWatermark, 0)
        }
    }

    mutating func becomeUnattached(epoch newEpoch: Int32, backoff: Bool = false) {
        abandonProposals()
        setEpoch(newEpoch)
        clearRoleState()
        role = .unattached
        leaderId = nil
        if backoff {
            electionDeadlineMs = nowMs + Int64(rng.next() % UInt64(max(config.electionBackoffMaxMs, 1))) + 1
        } else {
            resetElectionTimer()
        }
        if !config.isVoter { maybeSendFetch() }
    }

    /// Follows `leader`. `heardFromLeader` is true when the leader itself just spoke to us; a
    /// leader learned second-hand does not count as alive (pre-votes are still granted).
    mutating func becomeFollower(epoch newEpoch: Int32, leader: NodeID, heardFromLeader: Bool = false) {
        precondition(leader != config.nodeId, "a node never follows itself")
        abandonProposals()
        setEpoch(newEpoch)
        clearRoleState()
        role = .follower
        if leaderId != leader {
            leaderId = leader
            quorumStateDirty = true
        }
        lastLeaderContactMs = heardFromLeader ? nowMs : nil
        fetchDeadlineMs = nowMs + config.fetchTimeoutMs
        maybeSendFetch()
    }

    mutating func becomeProspective() {
        guard config.isVoter else { return }
        abandonProposals()
        clearRoleState()
        role = .prospective
        leaderId = nil
        granted = [config.nodeId]
        resetElectionTimer()
        if granted.count >= config.majority {
            startElection()
            return
        }
        let end = log.endOffsetAndEpoch
        for voter in config.voters where voter != config.nodeId {
            send(
                .vote(
                    VoteRequest(
                        epoch: epoch + 1, candidateId: config.nodeId, lastOffsetEpoch: end.epoch.rawValue,
                        lastOffset: end.offset.rawValue, preVote: true)), to: voter)
        }
    }

    /// Stands for election in a new epoch, voting for itself.
    mutating func startElection() {
        guard config.isVoter else { return }
        abandonProposals()
        setEpoch(epoch + 1)
        clearRoleState()
        role = .candidate
        votedId = config.nodeId
        quorumStateDirty = true
        granted = [config.nodeId]
        resetElectionTimer()
        if granted.count >= config.majority {
            becomeLeader()
            return
        }
        let end = log.endOffsetAndEpoch
        for voter in config.voters where voter != config.nodeId {
            send(
                .vote(
                    VoteRequest(
                        epoch: epoch, candidateId: config.nodeId, lastOffsetEpoch: end.epoch.rawValue,
                        lastOffset: end.offset.rawValue, preVote: false)), to: voter)
        }
    }

    mutating func becomeLeader() {
        precondition(
            role == .candidate && votedId == config.nodeId, "only a candidate that voted for itself becomes leader")
        clearRoleState()
        role = .leader
        leaderId = config.nodeId
        quorumStateDirty = true
        for voter in config.voters where voter != config.nodeId {
            progress[voter] = ReplicaProgress(
                nodeId: voter, endOffset: -1, lastFetchMs: nowMs, lastCaughtUpMs: -1, isVoter: true)
        }
        // Every epoch starts with a leader-change record; the high watermark may only pass it once
        // a majority holds it, which also commits everything before it.
        epochStartOffset = log.endOffset
        appendLocal(
            RaftBatch(
                baseOffset: log.endOffset, recordCount: 1, epoch: epoch,
                payload: .leaderChange(leaderId: config.nodeId, voters: config.voters)))
        beginEpochPending = Set(config.voters.filter { $0 != config.nodeId })
        sendBeginEpoch()
        checkQuorumDeadlineMs = nowMs + config.fetchTimeoutMs
        maybeAdvanceLeaderHighWatermark()
    }

    mutating func becomeResigned() {
        clearRoleState()
        role = .resigned
        resetElectionTimer()
    }

    // MARK: leader

    private mutating func sendBeginEpoch() {
        for voter in beginEpochPending.sorted() {
            send(.beginQuorumEpoch(BeginQuorumEpochRequest(epoch: epoch, leaderId: config.nodeId)), to: voter)
        }
        beginEpochRetryMs = beginEpochPending.isEmpty ? .max : nowMs + config.beginEpochRetryMs
    }

    /// A leader that a majority has not fetched from within the fetch timeout resigns.
    private mutating func checkQuorum() {
        let recent = progress.values.filter { $0.isVoter && nowMs - $0.lastFetchMs < config.fetchTimeoutMs }.count + 1
        if recent >= config.majority {
            checkQuorumDeadlineMs = nowMs + config.fetchTimeoutMs / 2
        } else {
            abandonProposals()
            becomeResigned()
        }
    }

    private mutating func maybeAdvanceLeaderHighWatermark() {
        guard role == .leader else { return }
        var ends = [log.persistedEndOffset]
        for voter in config.voters where voter != config.nodeId {
            ends.append(progress[voter]?.endOffset ?? -1)
        }
        ends.sort(by: >)
        let needed = faults.commitWithoutMajority ? 1 : config.majority
        let candidate = ends[needed - 1]
        // Only once a record of this epoch is held by a majority (Raft's commit rule).
        guard candidate > epochStartOffset, candidate > highWatermark else { return }
        highWatermark = candidate
        outbox.highWatermark = candidate
        noticeHighWatermark()
    }

    /// Tells the parked fetchers the new high watermark, at most once per
    /// `highWatermarkNoticeIntervalMs`: under a stream of commits, one round of answers then
    /// carries several (each answer costs the leader a send and wakes its fetcher). A round
    /// that must wait is marked due, and the first tick past the interval sends it.
    private mutating func noticeHighWatermark() {
        if let last = lastHighWatermarkNoticeMs, nowMs - last < config.highWatermarkNoticeIntervalMs {
            highWatermarkNoticeDue = true
            return
        }
        highWatermarkNoticeDue = false
        lastHighWatermarkNoticeMs = nowMs
        wakeParkedFetches(lackingHighWatermark: true)
    }

    /// Answers the parked fetches: voters first (their acknowledgements commit), then observers.
    /// A new append wakes the voters only (`lackingHighWatermark` false): an observer acts on
    /// committed records only, so it is answered with the high watermark's news, the records
    /// and the high watermark in one response.
    private mutating func wakeParkedFetches(lackingHighWatermark: Bool = false) {
        guard role == .leader, !parkedFetches.isEmpty else { return }
        let parked = parkedFetches.keys.sorted()
        let voters = parked.filter { config.voters.contains($0) }
        let woken =
            lackingHighWatermark
            ? (voters + parked.filter { !config.voters.contains($0) }).filter { sentHighWatermark[$0] != highWatermark }
            : voters
        for replica in woken {
            answerFetch(parkedFetches.removeValue(forKey: replica)!.request)
        }
    }

    private mutating func handleFetch(_ request: FetchRequest, from: NodeID) {
        guard role == .leader else {
            let error: RaftError =
                request.epoch > epoch
                ? .unknownLeaderEpoch : (request.epoch < epoch ? .fencedLeaderEpoch : .notLeaderOrFollower)
            send(
                .fetchResponse(
                    FetchResponse(
                        fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch, error: error,
                        epoch: epoch, leaderId: leaderId?.rawValue ?? -1)), to: from)
            return
        }
        if request.epoch < epoch {
            send(
                .fetchResponse(
                    FetchResponse(
                        fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch,
                        error: .fencedLeaderEpoch, epoch: epoch, leaderId: config.nodeId.rawValue)), to: from)
            return
        }
        if request.epoch > epoch {
            send(
                .fetchResponse(
                    FetchResponse(
                        fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch,
                        error: .unknownLeaderEpoch, epoch: epoch, leaderId: config.nodeId.rawValue)), to: from)
            return
        }
        parkedFetches.removeValue(forKey: from)
        // Diverging or missing: tell the fetcher where to go without counting its offset.
        if request.fetchOffset < log.startOffset {
            send(
                .fetchResponse(
                    FetchResponse(
                        fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch, error: .none,
                        epoch: epoch, leaderId: config.nodeId.rawValue, highWatermark: highWatermark,
                        logStartOffset: log.startOffset,
                        snapshotId: SnapshotId(endOffset: log.startOffset, epoch: log.startEpoch))), to: from)
            touch(from, endOffset: nil)
            return
        }
        if request.fetchOffset > 0 || request.lastFetchedEpoch >= 0 {
            let end = log.endOffset(forEpoch: request.lastFetchedEpoch)
            if end == nil {
                if log.startOffset > 0 {
                    // Older than anything the log holds: start from the snapshot.
                    send(
                        .fetchResponse(
                            FetchResponse(
                                fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch,
                                error: .none, epoch: epoch, leaderId: config.nodeId.rawValue,
                                highWatermark: highWatermark,
                                logStartOffset: log.startOffset,
                                snapshotId: SnapshotId(endOffset: log.startOffset, epoch: log.startEpoch))), to: from)
                } else {
                    // No common epoch at all: the fetcher's whole log diverges.
                    send(
                        .fetchResponse(
                            FetchResponse(
                                fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch,
                                error: .none, epoch: epoch, leaderId: config.nodeId.rawValue,
                                highWatermark: highWatermark,
                                logStartOffset: log.startOffset, divergingEpoch: OffsetAndEpoch(offset: 0, epoch: -1))),
                        to: from)
                }
                touch(from, endOffset: nil)
                return
            }
            if end!.epoch != request.lastFetchedEpoch || request.fetchOffset > end!.endOffset {
                let diverging = OffsetAndEpoch(
                    offset: Offset(min(end!.endOffset, request.fetchOffset)), epoch: Epoch(end!.epoch))
                send(
                    .fetchResponse(
                        FetchResponse(
                            fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch, error: .none,
                            epoch: epoch, leaderId: config.nodeId.rawValue, highWatermark: highWatermark,
                            logStartOffset: log.startOffset, divergingEpoch: diverging)), to: from)
                touch(from, endOffset: nil)
                return
            }
        }
        touch(from, endOffset: request.fetchOffset)
        guard request.fetchOffset >= log.endOffset && request.maxWaitMs > 0 else {
            maybeAdvanceLeaderHighWatermark()
            answerFetch(request)
            return
        }
        // No records to send: park until new records, the high watermark's news, or the wait
        // ends. A fetch that lacks the high watermark (or moves it) is answered by the next
        // round of news, at once unless one went out within the pacing interval.
        parkedFetches[from] = (request, nowMs + min(request.maxWaitMs, config.fetchMaxWaitMs))
        let highWatermarkBefore = highWatermark
        maybeAdvanceLeaderHighWatermark()
        if highWatermark == highWatermarkBefore && sentHighWatermark[from] != highWatermark {
            noticeHighWatermark()
        }
    }

    /// Notes a fetch from `replica` (check quorum and DescribeQuorum).
    private mutating func touch(_ replica: NodeID, endOffset: Int64?) {
        var p =
            progress[replica]
            ?? ReplicaProgress(
                nodeId: replica, endOffset: -1, lastFetchMs: nowMs, lastCaughtUpMs: -1,
                isVoter: config.voters.contains(replica))
        p.lastFetchMs = nowMs
        if let endOffset {
            p.endOffset = endOffset
            if endOffset >= log.endOffset { p.lastCaughtUpMs = nowMs }
        }
        progress[replica] = p
    }

    private mutating func answerFetch(_ request: FetchRequest) {
        sentHighWatermark[request.replicaId] = highWatermark
        send(
            .fetchResponse(
                FetchResponse(
                    fetchOffset: request.fetchOffset, fetchLastEpoch: request.lastFetchedEpoch, error: .none,
                    epoch: epoch, leaderId: config.nodeId.rawValue, highWatermark: highWatermark,
                    logStartOffset: log.startOffset, readFrom: request.fetchOffset, readUpTo: log.endOffset)),
            to: request.replicaId)
    }

    private mutating func handleBeginEpochResponse(_ response: EpochResponse, from: NodeID) {
        if handleEpochInResponse(response.epoch, leader: response.leaderId) { return }
        if role == .leader && response.epoch == epoch && response.error == .none {
            beginEpochPending.remove(from)
        }
    }

    // MARK: follower and observer

    private mutating func maybeSendFetch() {
        guard role == .follower || (!config.isVoter && (role == .unattached || role == .resigned)) else { return }
        guard fetchInFlightSinceMs == nil, fetchingSnapshot == nil else { return }
        // A voter acknowledges only what is durable: it fetches again once its appends are
        // persisted. An observer's fetch offset counts toward nothing (the voters are static, so
        // it never becomes one), so it fetches again at once and its log is synced behind it, as
        // Kafka's observers do (KafkaRaftClient flushes on append only for voters).
        guard !config.isVoter || log.persistedEndOffset == log.endOffset else { return }
        let target: NodeID
        if let leaderId {
            target = leaderId
        } else {
            guard !config.voters.isEmpty else { return }
            target = config.voters[bootstrapIndex % config.voters.count]
            bootstrapIndex += 1
        }
        guard target != config.nodeId else { return }
        fetchInFlightSinceMs = nowMs
        fetchTarget = target
        send(
            .fetch(
                FetchRequest(
                    epoch: epoch, replicaId: config.nodeId, fetchOffset: log.endOffset,
                    lastFetchedEpoch: currentLastFetchedEpoch, maxWaitMs: config.fetchMaxWaitMs)), to: target)
    }

    /// The epoch of the last record of the log (of the snapshot when the log is empty above it):
    /// what a fetch reports as its last fetched epoch.
    private var currentLastFetchedEpoch: Int32 {
        if log.endOffset == log.startOffset { return log.startEpoch }
        return log.endOffset == 0 ? -1 : log.epoch(at: log.endOffset - 1)
    }

    private mutating func handleFetchResponse(_ response: FetchResponse<Payload>, from: NodeID) {
        if role == .follower || !config.isVoter {
            if let leaderId, from != leaderId, response.leaderId != leaderId.rawValue || response.epoch <= epoch {
                // A late answer from a node we no longer fetch from.
                if response.epoch <= epoch { return }
            }
            // A late or duplicated answer to a fetch from another log end: everything in it
            // (divergence, records, high watermark) describes a log we no longer have.
            if response.fetchOffset >= 0 && response.epoch <= epoch
                && (response.fetchOffset != log.endOffset
                    || (response.fetchLastEpoch != -2 && response.fetchLastEpoch != currentLastFetchedEpoch))
            {
                return
            }
            fetchInFlightSinceMs = nil
        }
        if handleEpochInResponse(response.epoch, leader: response.leaderId, from: from) {
            maybeSendFetch()
            return
        }
        guard response.error == .none else {
            if response.leaderId < 0 && !config.isVoter { leaderId = nil }
            return
        }
        guard response.epoch == epoch, response.leaderId == leaderId?.rawValue ?? -2 else { return }
        lastLeaderContactMs = nowMs
        fetchDeadlineMs = nowMs + config.fetchTimeoutMs
        if let diverging = response.divergingEpoch {
            let local = log.endOffset(forEpoch: diverging.epoch.rawValue)
            let target = min(local?.endOffset ?? log.startOffset, diverging.offset.rawValue)
            truncate(to: target)
            maybeSendFetch()
            return
        }
        if let snapshot = response.snapshotId {
            fetchingSnapshot = snapshot
            outbox.fetchSnapshot = (from, snapshot)
            return
        }
        for batch in response.batches where batch.baseOffset >= log.endOffset {
            guard batch.baseOffset == log.endOffset, batch.epoch >= log.lastEpoch, batch.epoch <= epoch else { break }
            appendLocal(batch)
        }
        if response.highWatermark >= 0 {
            let hw = min(response.highWatermark, log.endOffset)
            if hw > highWatermark {
                highWatermark = hw
                outbox.highWatermark = hw
            }
        }
        maybeSendFetch()
    }

    private mutating func truncate(to offset: Int64) {
        guard offset < log.endOffset else { return }
        let hw = highWatermark
        let start = log.startOffset
        guard
            require(
                offset >= hw, "truncation below the high watermark would lose committed records: \(offset) < \(hw)"),
            require(offset >= start, "truncation below the log start \(start): \(offset)")
        else { return }
        log.truncate(to: offset)
        outbox.truncateTo = min(outbox.truncateTo ?? .max, offset)
        outbox.appends.removeAll { $0.baseOffset >= offset }
    }

    // MARK: voting

    private mutating func handleVote(_ request: VoteRequest, from: NodeID) {
        func answer(_ granted: Bool) {
            send(
                .voteResponse(
                    VoteResponse(
                        epoch: epoch, leaderId: leaderId?.rawValue ?? -1, granted: granted, preVote: request.preVote)),
                to: from)
        }
        guard config.isVoter else {
            send(
                .voteResponse(
                    VoteResponse(
                        error: .inconsistentVoterSet, epoch: epoch, leaderId: leaderId?.rawValue ?? -1, granted: false,
                        preVote: request.preVote)), to: from)
            return
        }
        let candidateEnd = OffsetAndEpoch(offset: Offset(request.lastOffset), epoch: Epoch(request.lastOffsetEpoch))
        let upToDate = faults.grantVotesToShorterLogs || candidateEnd >= log.endOffsetAndEpoch
        if request.preVote {
            // A pre-vote changes nothing here. Refuse while a leader is alive for us.
            let leaderAlive =
                (role == .leader)
                || (role == .follower && lastLeaderContactMs.map { nowMs - $0 < config.fetchTimeoutMs } == true)
            answer(request.epoch > epoch && upToDate && !leaderAlive)
            return
        }
        if request.epoch < epoch {
            answer(false)
            return
        }
        if request.epoch > epoch {
            becomeUnattached(epoch: request.epoch)
        }
        let canVote =
            leaderId == nil && (votedId == nil || votedId == request.candidateId) && role != .leader
            && role != .candidate
        if canVote && upToDate {
            if votedId != request.candidateId {
                votedId = request.candidateId
                quorumStateDirty = true
            }
            resetElectionTimer()
            answer(true)
        } else {
            answer(false)
        }
    }

    private mutating func handleVoteResponse(_ response: VoteResponse, from: NodeID) {
        if response.preVote {
            guard role == .prospective else { return }
            if response.epoch > epoch {
                // Someone moved on; follow if they know a leader.
                if response.leaderId >= 0 && response.leaderId != config.nodeId.rawValue {
                    becomeFollower(epoch: response.epoch, leader: NodeID(response.leaderId))
                } else {
                    becomeUnattached(epoch: response.epoch)
                }
                return
            }
            if response.granted { granted.insert(from) } else { rejected.insert(from) }
            if !response.granted && response.leaderId >= 0 && response.epoch == epoch
                && response.leaderId != config.nodeId.rawValue
            {
                // The voter still hears from a leader in our epoch: follow it.
                becomeFollower(epoch: epoch, leader: NodeID(response.leaderId))
                return
            }
            if granted.count >= config.majority {
                startElection()
            } else if rejected.count > config.voters.count - config.majority {
                becomeUnattached(epoch: epoch, backoff: true)
            }
            return
        }
        if handleEpochInResponse(response.epoch, leader: response.leaderId) { return }
        guard role == .candidate, response.epoch == epoch else { return }
        if response.granted { granted.insert(from) } else { rejected.insert(from) }
        if granted.count >= config.majority {
            becomeLeader()
        } else if rejected.count > config.voters.count - config.majority {
            becomeUnattached(epoch: epoch, backoff: true)
        }
    }

    private mutating func handleBeginEpoch(_ request: BeginQuorumEpochRequest, from: NodeID) {
        if request.epoch < epoch {
            send(
                .beginQuorumEpochResponse(
                    EpochResponse(error: .fencedLeaderEpoch, epoch: epoch, leaderId: leaderId?.rawValue ?? -1)),
                to: from)
            return
        }
        if request.epoch > epoch || leaderId == nil {
            if request.leaderId != config.nodeId {
                becomeFollower(epoch: request.epoch, leader: request.leaderId, heardFromLeader: true)
            }
        } else if leaderId != request.leaderId {
            // Two leaders in one epoch would break Raft; refuse loudly.
            preconditionFailure("two leaders in epoch \(epoch): \(leaderId!) and \(request.leaderId)")
        }
        send(
            .beginQuorumEpochResponse(EpochResponse(error: .none, epoch: epoch, leaderId: leaderId?.rawValue ?? -1)),
            to: from)
    }

    private mutating func handleEndEpoch(_ request: EndQuorumEpochRequest, from: NodeID) {
        send(
            .endQuorumEpochResponse(
                EpochResponse(
                    error: request.epoch < epoch ? .fencedLeaderEpoch : .none, epoch: epoch,
                    leaderId: leaderId?.rawValue ?? -1)), to: from)
        guard request.epoch == epoch, leaderId == request.leaderId, role == .follower, config.isVoter else { return }
        // The leader stepped down: stand soon, sooner the better placed we are.
        let position = request.preferredSuccessors.firstIndex(of: config.nodeId) ?? config.voters.count
        becomeUnattached(epoch: epoch)
        electionDeadlineMs = nowMs + Int64(position) * min(config.electionBackoffMaxMs / 4 + 1, 200)
    }

    /// Reacts to an epoch carried in a response. Returns true when it moved this node to a new
    /// epoch (the response is then stale for the old role).
    @discardableResult
    private mutating func handleEpochInResponse(_ responseEpoch: Int32, leader: Int32, from: NodeID? = nil) -> Bool {
        if responseEpoch > epoch {
            if leader >= 0 && leader != config.nodeId.rawValue {
                becomeFollower(epoch: responseEpoch, leader: NodeID(leader), heardFromLeader: from?.rawValue == leader)
            } else {
                becomeUnattached(epoch: responseEpoch)
            }
            return true
        }
        if responseEpoch == epoch, leader >= 0, leaderId == nil, leader != config.nodeId.rawValue,
            role == .unattached || role == .prospective || role == .resigned || role == .follower
        {
            becomeFollower(epoch: epoch, leader: NodeID(leader), heardFromLeader: from?.rawValue == leader)
            return true
        }
        return false
    }

    // MARK: output

    private mutating func appendLocal(_ batch: RaftBatch<Payload>) {
        log.append(baseOffset: batch.baseOffset, nextOffset: batch.nextOffset, epoch: batch.epoch)
        outbox.appends.append(batch)
    }

    private mutating func send(_ message: RaftMessage<Payload>, to: NodeID) {
        outbox.messages.append(Outgoing(to: to, message: message))
    }
}
