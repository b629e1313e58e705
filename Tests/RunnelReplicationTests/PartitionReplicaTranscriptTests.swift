// Transcripts of the replication core (Transcripts/*.txt): each step feeds a `PartitionReplica`
// one input as a value and prints the actions it returns and the state after. A small model of
// a log (its start, end and epoch history) stands in for the driver's `PartitionLog`: it answers
// the epoch lookups the core asks for and carries out the truncations and appends the core
// decides, so a transcript reads like a replica's life. RUNNEL_REWRITE=1 regenerates the files.
//
// Commands (offsets and epochs are numbers; `now` is monotonic ms):
//   replica local=N start=O end=O [epochs=E@O,...] [hw=O] [broken=rule,...]   a new replica
//   assign leader=N|- epoch=E partition-epoch=E replicas=N,.. isr=N,.. now=T
//   append records=K [now=T]               the leader appends K records at its epoch
//   await id=N required=O deadline=T min-isr=K
//   expire now=T
//   fetch replica=N offset=O last-epoch=E [broker-epoch=B] now=T [wait=T] [lag=T] [live=N,..] [registered=N@B,..]
//   check-isr now=T [lag=T] [live=N,..] [registered=N@B,..]
//   check-isolation now=T silent=T session=T   the controller has not answered for `silent` ms
//   isr-answer isr=N,.. partition-epoch=E | isr-refused    (answers the proposal in flight)
//   leader-answer [error=name] hw=O log-start=O [diverging=E@O] [records=K epoch=E]
//                                          a follower applies its leader's answer to its next fetch
//   delete-records [offset=O]
//   unstable offset=O|-                    the log reports its first unstable offset (an open transaction)
//   leader-answer ... [lso=O]              the leader's last stable offset comes with its answer
import RunnelCore
import RunnelReplication
import RunnelTestSupport
import RunnelWire
import Testing

/// A log as the replication core sees it: start, end and which epoch begins where.
struct LogModel {
    var start: Offset
    var end: Offset
    /// (epoch, start offset), ascending.
    var epochs: [(Epoch, Offset)]

    var position: LogPosition {
        LogPosition(startOffset: start, endOffset: end, latestEpoch: epochs.last?.0 ?? .unknown)
    }

    /// PartitionLog.endOffset(forEpoch:): the largest epoch at or below `epoch` and where it ends;
    /// `epoch` itself ending where the first held epoch starts when all are above it.
    func endOffset(forEpoch epoch: Epoch) -> OffsetAndEpoch {
        guard epoch != .unknown, let first = epochs.first else {
            return OffsetAndEpoch(offset: .unknown, epoch: .unknown)
        }
        guard let index = epochs.lastIndex(where: { $0.0 <= epoch }) else {
            return OffsetAndEpoch(offset: first.1, epoch: epoch)
        }
        let end = index + 1 < epochs.count ? epochs[index + 1].1 : self.end
        return OffsetAndEpoch(offset: end, epoch: epochs[index].0)
    }

    mutating func append(_ count: Int64, epoch: Epoch) {
        if epochs.last?.0 != epoch { epochs.append((epoch, end)) }
        end = end.advanced(by: count)
    }

    mutating func beginEpoch(_ epoch: Epoch) {
        if let last = epochs.last, last.0 >= epoch { return }
        epochs.append((epoch, end))
    }

    /// Kafka's LeaderEpochFileCache.truncateFromEnd: epochs that begin at or past the new end go.
    mutating func truncate(to offset: Offset) {
        end = min(end, offset)
        epochs.removeAll { $0.1 >= end }
    }

    mutating func restart(at offset: Offset) {
        start = offset
        end = offset
        epochs = []
    }
}

/// Runs one transcript: the replica, its log model, and the printing.
final class ReplicaTranscript {
    var replica: PartitionReplica!
    var log = LogModel(start: 0, end: 0, epochs: [])
    var lagTimeMaxMs: Int64 = 10_000

    func run(_ c: TranscriptCommand) -> [String] {
        var out: [String] = []
        switch c.name {
        case "replica":
            log = LogModel(
                start: Offset(c.int("start")), end: Offset(c.int("end")), epochs: parseEpochs(c.arguments["epochs"]))
            var faults = ReplicationFaults()
            for rule in (c.arguments["broken"] ?? "").split(separator: ",") where !rule.isEmpty {
                precondition(faults.breakRule(named: String(rule)), "unknown rule \(rule)")
            }
            replica = PartitionReplica(
                localId: NodeID(Int32(c.int("local"))), log: log.position,
                checkpointedHighWatermark: Offset(c.optionalInt("hw") ?? 0), faults: faults)
        case "assign":
            let leader = c.string("leader") == "-" ? nil : NodeID(Int32(c.int("leader")))
            let assignment = ReplicaAssignment(
                replicas: c.ints("replicas").map { NodeID(Int32($0)) }, isr: c.ints("isr").map { NodeID(Int32($0)) },
                leader: leader,
                leaderEpoch: Epoch(Int32(c.int("epoch"))), partitionEpoch: Epoch(Int32(c.int("partition-epoch"))))
            out += carryOut(replica.assign(assignment, log: log.position, nowMs: c.int("now")))
        case "append":
            guard case .success(let epoch) = replica.appendAllowed(requiredAcks: 1, minInsyncReplicas: 1) else {
                out.append("refused: \(replica.appendAllowed(requiredAcks: 1, minInsyncReplicas: 1))")
                break
            }
            log.append(c.int("records"), epoch: epoch)
            out += carryOut(replica.leaderAppended(endOffset: log.end, nowMs: c.optionalInt("now") ?? 0))
        case "append-allowed":
            out.append(
                "\(replica.appendAllowed(requiredAcks: Int16(c.int("acks")), minInsyncReplicas: Int(c.int("min-isr"))))"
            )
        case "await":
            out += carryOut(
                replica.awaitReplication(
                    PendingProduce(
                        id: ProduceID(UInt64(c.int("id"))), requiredOffset: Offset(c.int("required")),
                        deadlineMs: c.int("deadline"),
                        minInsyncReplicas: Int(c.int("min-isr")))))
        case "expire":
            out += carryOut(replica.expireProduces(nowMs: c.int("now")))
        case "fetch":
            let lastEpoch = Epoch(Int32(c.int("last-epoch")))
            let fetch = FollowerFetch(
                replica: NodeID(Int32(c.int("replica"))),
                brokerEpoch: c.optionalInt("broker-epoch").map { BrokerEpoch($0) },
                fetchOffset: Offset(c.int("offset")), lastFetchedEpoch: lastEpoch, maxWaitMs: c.optionalInt("wait") ?? 0
            )
            let epochEnd = lastEpoch == .unknown ? nil : log.endOffset(forEpoch: lastEpoch)
            let (answer, actions) = replica.followerFetched(
                fetch, epochEnd: epochEnd, nowMs: c.int("now"),
                lagTimeMaxMs: c.optionalInt("lag") ?? lagTimeMaxMs, eligibility: eligibility(c))
            out.append("answer: \(describe(answer))")
            out += carryOut(actions)
        case "check-isr":
            out += carryOut(
                replica.checkIsr(
                    nowMs: c.int("now"), lagTimeMaxMs: c.optionalInt("lag") ?? lagTimeMaxMs, eligibility: eligibility(c)
                ))
        case "check-isolation":
            let now = c.int("now")
            if let leader = replica.leaderState {
                let overdue = leader.overdueFollowers(nowMs: now, graceMs: PartitionReplica.followerFetchGraceMs)
                out.append(
                    "overdue: \(overdue.map(\.rawValue)) (due \(leader.followers.keys.sorted().map { "\($0)@\(leader.followers[$0]!.nextFetchDueMs.map { "\($0)" } ?? "-")" }.joined(separator: " ")))"
                )
            }
            out += carryOut(
                replica.checkIsolation(
                    nowMs: now, controllerSilentMs: c.int("silent"), sessionTimeoutMs: c.int("session")))
        case "isr-answer", "isr-refused":
            guard let proposal = replica.leaderState?.pending else {
                out.append("no proposal in flight")
                break
            }
            let answer =
                c.name == "isr-refused"
                ? nil
                : IsrAnswer(
                    isr: c.ints("isr").map { NodeID(Int32($0)) }, leaderEpoch: proposal.leaderEpoch,
                    partitionEpoch: Epoch(Int32(c.int("partition-epoch"))))
            out += carryOut(replica.isrAnswered(proposal, answer: answer, nowMs: c.optionalInt("now") ?? 0))
        case "leader-answer":
            guard let position = replica.fetchPosition else {
                out.append("not following")
                break
            }
            out.append(
                "fetch: leader \(position.leader) epoch \(position.leaderEpoch) offset \(position.fetchOffset) last epoch \(position.lastFetchedEpoch)"
            )
            let diverging = c.arguments["diverging"].map(parseOffsetAndEpoch)
            let answer = LeaderAnswer(
                error: errorCode(c.arguments["error"] ?? "none"), divergingEpoch: diverging,
                highWatermark: Offset(c.int("hw")), logStartOffset: Offset(c.int("log-start")))
            let localEnd = diverging.map { log.endOffset(forEpoch: $0.epoch) }
            let step = replica.followerStep(at: position, answer: answer, localEpochEnd: localEnd)
            out.append("step: \(step)")
            switch step {
            case .truncate(let offset):
                log.truncate(to: offset)
                out += carryOut(replica.followerLogChanged(log.position, leaderHighWatermark: nil))
            case .restart(let offset):
                log.restart(at: offset)
                out += carryOut(replica.followerLogChanged(log.position, leaderHighWatermark: nil))
            case .append:
                if let records = c.optionalInt("records") { log.append(records, epoch: Epoch(Int32(c.int("epoch")))) }
                if let start = replica.logStartToAdopt(leaderLogStart: answer.logStartOffset) {
                    log.start = start
                    replica.logStartMoved(to: start)
                }
                out += carryOut(
                    replica.followerLogChanged(
                        log.position, leaderHighWatermark: answer.highWatermark,
                        leaderLastStableOffset: c.optionalInt("lso").map { Offset($0) }))
            case .stale, .failed:
                break
            }
        case "unstable":
            // The log reports its first unstable offset (`-` for none).
            let text = c.string("offset")
            out += carryOut(replica.firstUnstableOffsetChanged(text == "-" ? nil : Offset(Int64(text)!)))
        case "delete-records":
            out.append("target: \(replica.deleteRecordsTarget(c.optionalInt("offset").map { Offset($0) }))")
        default:
            fatalError("transcript line \(c.line): unknown command \(c.name)")
        }
        out.append(stateLine())
        if let leader = replica.leaderState {
            for id in leader.followers.keys.sorted() {
                let f = leader.followers[id]!
                out.append(
                    "  follower \(id): end \(f.logEndOffset) caught-up \(f.lastCaughtUpMs.map { "\($0)" } ?? "never") broker-epoch \(f.brokerEpoch.map { "\($0)" } ?? "-")"
                )
            }
        }
        return out
    }

    /// Carries out what the driver would for the log model, and prints each action.
    func carryOut(_ actions: [ReplicationAction]) -> [String] {
        actions.map { action in
            if case .beginLeaderEpoch(let epoch) = action { log.beginEpoch(epoch) }
            return "action: \(action)"
        }
    }

    func stateLine() -> String {
        let role: String
        switch replica.role {
        case .leader: role = "leader"
        case .follower(let leader, let epoch): role = "follower of \(leader) at epoch \(epoch)"
        case .leaderless: role = "leaderless"
        case .removed: role = "removed"
        }
        var parts = [
            "state: \(role)", "log \(replica.log)", "hw \(replica.highWatermark)", "isr \(replica.isr.map(\.rawValue))",
        ]
        // Shown only once it parts from the high watermark (transactions), so the transcripts
        // without transactions read as before.
        if replica.lastStableOffset != replica.highWatermark { parts.insert("lso \(replica.lastStableOffset)", at: 3) }
        if let leader = replica.leaderState {
            parts.append(
                "epoch start \(leader.epochStartOffset)\(replica.highWatermarkLagsEpochStart ? " (hw below it: KIP-207)" : "")"
            )
        }
        if let pending = replica.leaderState?.pending { parts.append("in flight: \(pending)") }
        if replica.steppedAside { parts.append("stepped aside") }
        if !replica.pendingProduces.isEmpty {
            parts.append(
                "waiting " + replica.pendingProduces.map { "\($0.id)@\($0.requiredOffset)" }.joined(separator: ","))
        }
        return parts.joined(separator: "; ")
    }

    func eligibility(_ c: TranscriptCommand) -> IsrEligibility {
        let live = c.arguments["live"].map { _ in Set(c.ints("live").map { NodeID(Int32($0)) }) }
        var registered: [NodeID: BrokerEpoch] = [:]
        for pair in (c.arguments["registered"] ?? "").split(separator: ",") where !pair.isEmpty {
            let parts = pair.split(separator: "@")
            registered[NodeID(Int32(parts[0])!)] = BrokerEpoch(Int64(parts[1])!)
        }
        let epochs = registered
        return IsrEligibility(isLive: { live?.contains($0) ?? true }, registeredEpoch: { epochs[$0] })
    }

    func describe(_ answer: FollowerFetchAnswer) -> String {
        switch answer {
        case .error(let code): return "error \(code)"
        case .diverging(let epoch, let end): return "diverging at epoch \(epoch) end \(end)"
        case .read(let upTo, let hw): return "read up to \(upTo), high watermark \(hw)"
        }
    }
}

func parseEpochs(_ text: String?) -> [(Epoch, Offset)] {
    guard let text, !text.isEmpty, text != "-" else { return [] }
    return text.split(separator: ",").map { part in
        let p = parseOffsetAndEpoch(String(part))
        return (p.epoch, p.offset)
    }
}

/// `E@O`: an epoch and an offset.
func parseOffsetAndEpoch(_ text: String) -> OffsetAndEpoch {
    let parts = text.split(separator: "@")
    return OffsetAndEpoch(offset: Offset(Int64(parts[1])!), epoch: Epoch(Int32(parts[0])!))
}

func errorCode(_ name: String) -> ErrorCode {
    switch name {
    case "none": return .none
    case "offset-out-of-range": return .offsetOutOfRange
    case "not-leader": return .notLeaderOrFollower
    case "fenced-leader-epoch": return .fencedLeaderEpoch
    default: fatalError("unknown error name \(name)")
    }
}

@Suite("PartitionReplica transcripts")
struct PartitionReplicaTranscriptTests {
    @Test("each transcript under Transcripts/ holds", arguments: transcriptFiles(beside: #filePath))
    func transcript(_ path: String) throws {
        let harness = ReplicaTranscript()
        let mismatches = try runTranscript(path) { harness.run($0) }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n\n"))")
    }
}
