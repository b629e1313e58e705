// A driver for the pure TransactionCoordinator in tests: it hands out request tokens, keeps the
// writes the coordinator asks for until the test reports them (or reports them at once), keeps
// a model of `__transaction_state` (the records whose writes succeeded, in order) so a
// coordinator can be reloaded from it, and keeps the markers in flight per partition.
import RunnelCore
import RunnelTransactions
import RunnelWire

struct CoordinatorHarness {
    var coordinator: TransactionCoordinator
    var now: Int64 = 1_000
    var nextToken = 0
    /// Answers by token.
    var answers: [RequestToken: TransactionAnswer] = [:]
    /// Writes asked for and not yet reported, oldest first.
    var pendingWrites: [TransactionLogWrite] = []
    /// Report writes as soon as they are asked for.
    var autoWrite = true
    /// The records of `__transaction_state` that were written, per partition, in order.
    var log: [Int32: [TransactionLog.Record]] = [:]
    /// Markers in flight, by partition (the last sent for it).
    var markers: [TopicPartition: TransactionMarkers] = [:]
    var markerBatches: [TransactionMarkers] = []
    /// Answer every marker at once with success.
    var autoMarkers = true
    var events: [TransactionEvent] = []
    var fetches = 0

    init(
        settings: TransactionSettings = CoordinatorHarness.defaultSettings, idStart: Int64 = 1000, idCount: Int32 = 100
    ) {
        coordinator = TransactionCoordinator(settings: settings)
        absorb(coordinator.loadStarted(partition: 0, coordinatorEpoch: 1))
        absorb(coordinator.load(partition: 0, coordinatorEpoch: 1, records: [], nowMs: now))
        coordinator.producerIdsArrived(start: idStart, count: idCount)
    }

    static var defaultSettings: TransactionSettings {
        var s = TransactionSettings()
        s.stateTopicPartitions = 1
        return s
    }

    mutating func token() -> RequestToken {
        nextToken += 1
        return nextToken
    }

    mutating func absorb(_ effects: [TransactionEffect]) {
        for effect in effects {
            switch effect {
            case .respond(let t, let a): answers[t] = a
            case .write(let w):
                pendingWrites.append(w)
            case .sendMarkers(let m):
                markerBatches.append(m)
                for tp in m.partitions { markers[tp] = m }
            case .fetchProducerIds: fetches += 1
            case .event(let e): events.append(e)
            }
        }
        if autoWrite {
            while !pendingWrites.isEmpty { completeWrite() }
        }
        if autoMarkers {
            while let tp = markers.keys.sorted().first { answerMarker(tp) }
        }
    }

    /// Reports the oldest pending write (successful unless `error`).
    mutating func completeWrite(error: ErrorCode? = nil) {
        let w = pendingWrites.removeFirst()
        if error == nil {
            log[w.partition, default: []].append(
                TransactionLog.Record(transactionalId: w.transactionalId, value: w.value))
        }
        absorb(coordinator.written(w.id, error: error, nowMs: now))
    }

    mutating func answerMarker(_ tp: TopicPartition, error: ErrorCode = .none) {
        guard let m = markers.removeValue(forKey: tp) else { return }
        absorb(coordinator.markerWritten(m, partition: tp, error: error, nowMs: now))
    }

    @discardableResult
    mutating func initProducerId(
        _ id: String = "t", timeoutMs: Int32 = 60_000, expected: (Int64, Int16)? = nil
    ) -> TransactionAnswer? {
        let t = token()
        absorb(
            coordinator.initProducerId(
                transactionalId: id, timeoutMs: timeoutMs, expected: expected.map { ($0.0, $0.1) }, token: t, nowMs: now
            ))
        return answers[t]
    }

    @discardableResult
    mutating func add(
        _ id: String = "t", producer: Int64, epoch: Int16, _ partitions: [TopicPartition],
        version: TransactionVersion = .v1
    ) -> TransactionAnswer? {
        let t = token()
        absorb(
            coordinator.addPartitions(
                transactionalId: id, producerId: producer, producerEpoch: epoch, Set(partitions),
                clientTransactionVersion: version, token: t, nowMs: now))
        return answers[t]
    }

    @discardableResult
    mutating func end(
        _ id: String = "t", producer: Int64, epoch: Int16, _ result: TransactionResult,
        version: TransactionVersion = .v1
    ) -> TransactionAnswer? {
        let t = token()
        absorb(
            coordinator.endTransaction(
                transactionalId: id, producerId: producer, producerEpoch: epoch, result: result,
                clientTransactionVersion: version, token: t, nowMs: now))
        return answers[t]
    }

    mutating func tick() { absorb(coordinator.tick(nowMs: now)) }

    /// Moves the partition to a new coordinator epoch and reloads it from the written records.
    mutating func reload(partition: Int32 = 0, epoch: Int32) {
        absorb(coordinator.loadStarted(partition: partition, coordinatorEpoch: epoch))
        absorb(
            coordinator.load(partition: partition, coordinatorEpoch: epoch, records: log[partition] ?? [], nowMs: now))
    }

    func state(_ id: String = "t") -> TransactionState? { coordinator.transaction(id)?.metadata.state }
    func metadata(_ id: String = "t") -> TransactionMetadata? { coordinator.transaction(id)?.metadata }
}

extension TransactionAnswer {
    var producer: (id: Int64, epoch: Int16)? {
        switch self {
        case let .initProducerId(.none, id, epoch), let .endTxn(.none, id, epoch): return (id, epoch)
        default: return nil
        }
    }
}

func tp(_ topic: String, _ partition: Int32) -> TopicPartition { TopicPartition(topic, partition) }
