// Transcripts of the transaction coordinator (Transcripts/*.txt): each step feeds the pure
// TransactionCoordinator one input and prints the effects it returns, then the state of every
// transactional id. Writes to `__transaction_state` and markers are answered only by explicit
// steps, so a transcript shows that nothing is answered before its write is. The written
// records are kept, so `reload` plays a coordinator failover. RUNNEL_REWRITE=1 regenerates.
//
// Commands (`now` is wall-clock ms; partitions are `topic-index` lists):
//   coordinator [tv=N] [expiration=MS] [max-timeout=MS] [ids=START+COUNT]   a new coordinator, partition 0 loaded
//   init id=T [timeout=MS] [producer=P epoch=E] now=T
//   add id=T producer=P epoch=E partitions=a-0,.. [tv=N] now=T
//   verify id=T producer=P epoch=E partitions=a-0,..
//   end id=T producer=P epoch=E result=commit|abort [tv=N] now=T
//   written [error=NAME] now=T          the oldest write asked for is done (or failed)
//   marker partition=a-0 [error=NAME] now=T   the leader of a partition answers the markers in flight to it
//   late-marker batch=N partition=a-0 now=T   the answer to the Nth markers sent (1-based) arrives (again)
//   tick now=T
//   reload epoch=E now=T               a new coordinator epoch loads partition 0 from the written records
import RunnelCore
import RunnelTestSupport
import RunnelWire
import Testing
@testable import RunnelTransactions

final class TransactionTranscript {
    var coordinator = TransactionCoordinator()
    var nextToken = 0
    var writes: [TransactionLogWrite] = []
    var log: [TransactionLog.Record] = []
    var inFlight: [TopicPartition: TransactionMarkers] = [:]
    var batches: [TransactionMarkers] = []

    func run(_ c: TranscriptCommand) -> [String] {
        var effects: [TransactionEffect] = []
        var out: [String] = []
        let now = c.optionalInt("now") ?? 0
        switch c.name {
        case "coordinator":
            var settings = TransactionSettings()
            settings.stateTopicPartitions = 1
            if let tv = c.optionalInt("tv") {
                settings.transactionVersionLevel = TransactionVersion(rawValue: Int16(tv))!
            }
            if let ms = c.optionalInt("expiration") { settings.transactionalIdExpirationMs = ms }
            if let ms = c.optionalInt("max-timeout") { settings.maxTimeoutMs = Int32(ms) }
            coordinator = TransactionCoordinator(settings: settings)
            (nextToken, writes, log, inFlight, batches) = (0, [], [], [:], [])
            effects += coordinator.loadStarted(partition: 0, coordinatorEpoch: 1)
            effects += coordinator.load(partition: 0, coordinatorEpoch: 1, records: [], nowMs: now)
            let ids = (c.arguments["ids"] ?? "1000+100").split(separator: "+").map { Int64($0)! }
            coordinator.producerIdsArrived(start: ids[0], count: Int32(ids[1]))
        case "init":
            let expected = c.optionalInt("producer").map { (producerId: $0, epoch: Int16(c.int("epoch"))) }
            effects += coordinator.initProducerId(
                transactionalId: c.string("id"), timeoutMs: Int32(c.optionalInt("timeout") ?? 60_000),
                expected: expected, token: token(), nowMs: now)
        case "add":
            effects += coordinator.addPartitions(
                transactionalId: c.string("id"), producerId: c.int("producer"), producerEpoch: Int16(c.int("epoch")),
                Set(partitions(c)), clientTransactionVersion: version(c), token: token(), nowMs: now)
        case "verify":
            let answer = coordinator.verifyPartitions(
                transactionalId: c.string("id"), producerId: c.int("producer"),
                producerEpoch: Int16(c.int("epoch")), Set(partitions(c)))
            out.append("verified: " + answer.keys.sorted().map { "\($0) \(answer[$0]!)" }.joined(separator: ", "))
        case "end":
            let result: TransactionResult = c.string("result") == "commit" ? .commit : .abort
            effects += coordinator.endTransaction(
                transactionalId: c.string("id"), producerId: c.int("producer"), producerEpoch: Int16(c.int("epoch")),
                result: result, clientTransactionVersion: version(c), token: token(), nowMs: now)
        case "written":
            guard !writes.isEmpty else {
                out.append("no write in flight")
                break
            }
            let w = writes.removeFirst()
            let error = c.arguments["error"].map(errorCode)
            if error == nil { log.append(TransactionLog.Record(transactionalId: w.transactionalId, value: w.value)) }
            out.append("\(w.id) \(error.map { "failed: \($0)" } ?? "written")")
            effects += coordinator.written(w.id, error: error, nowMs: now)
        case "marker":
            let partition = parsePartition(c.string("partition"))
            guard let markers = inFlight.removeValue(forKey: partition) else {
                out.append("no marker in flight to \(partition)")
                break
            }
            effects += coordinator.markerWritten(
                markers, partition: partition, error: c.arguments["error"].map(errorCode) ?? .none, nowMs: now)
        case "late-marker":
            let markers = batches[Int(c.int("batch")) - 1]
            effects += coordinator.markerWritten(
                markers, partition: parsePartition(c.string("partition")), error: .none, nowMs: now)
        case "tick":
            effects += coordinator.tick(nowMs: now)
        case "reload":
            let epoch = Int32(c.int("epoch"))
            writes = []
            inFlight = [:]
            effects += coordinator.loadStarted(partition: 0, coordinatorEpoch: epoch)
            effects += coordinator.load(partition: 0, coordinatorEpoch: epoch, records: log, nowMs: now)
        default:
            fatalError("transcript line \(c.line): unknown command \(c.name)")
        }
        for effect in effects {
            switch effect {
            case .write(let w): writes.append(w)
            case .sendMarkers(let m):
                batches.append(m)
                for p in m.partitions { inFlight[p] = m }
            default: break
            }
            out.append("\(effect)")
        }
        for id in coordinator.transactions.keys.sorted() {
            let entry = coordinator.transactions[id]!
            out.append("state: \(entry.metadata)\(entry.pending.map { " (pending \($0))" } ?? "")")
        }
        if !inFlight.isEmpty {
            out.append("markers in flight: " + inFlight.keys.sorted().map(\.description).joined(separator: ","))
        }
        return out
    }

    func token() -> RequestToken {
        nextToken += 1
        return nextToken
    }

    func partitions(_ c: TranscriptCommand) -> [TopicPartition] {
        c.string("partitions").split(separator: ",").map { parsePartition(String($0)) }
    }

    func version(_ c: TranscriptCommand) -> TransactionVersion {
        TransactionVersion(rawValue: Int16(c.optionalInt("tv") ?? 1))!
    }
}

func parsePartition(_ text: String) -> TopicPartition {
    let dash = text.lastIndex(of: "-")!
    return TopicPartition(String(text[..<dash]), Int32(text[text.index(after: dash)...])!)
}

func errorCode(_ name: String) -> ErrorCode {
    switch name {
    case "not-leader": return .notLeaderOrFollower
    case "not-enough-replicas": return .notEnoughReplicas
    case "timed-out": return .requestTimedOut
    case "invalid-producer-epoch": return .invalidProducerEpoch
    case "coordinator-fenced": return .transactionCoordinatorFenced
    default: fatalError("unknown error name \(name)")
    }
}

@Suite("TransactionCoordinator transcripts")
struct TransactionTranscriptTests {
    @Test("each transcript under Transcripts/ holds", arguments: transcriptFiles(beside: #filePath))
    func transcript(_ path: String) throws {
        let harness = TransactionTranscript()
        let mismatches = try runTranscript(path) { harness.run($0) }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n\n"))")
    }
}
