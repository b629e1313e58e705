import NIOCore
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelWire

/// A transactional producer (transactions v2, as Kafka's producer with `transaction.version` 2
/// and a partition leader that verifies, KIP-890): InitProducerId, then transactions of
/// AddPartitionsToTxn, produce, EndTxn v5 (whose answer carries the next epoch). A zombie is an
/// instance a newer one fenced without its knowing; once told, it keeps writing blindly for a
/// few more transactions.
final class SimTxnProducer: @unchecked Sendable {
    let name: String
    let transactionalId: String
    let instance: Int
    unowned let world: TransactionSimulation
    var alive = true
    /// A newer instance of its id was started while this one ran.
    var zombie = false
    /// A zombie that was told it is fenced and writes on regardless.
    var blind = false
    var zombieTransactionsLeft = 3
    var producerId: Int64 = -1
    var epoch: Int16 = -1
    var ordinal = 0
    var phase = "starting"
    /// Ending the current transaction with a commit (EndTxn sent, not yet answered).
    var ending = false
    var abortable = false
    var stalled = false
    /// Bumped by every request and answer: answers to requests given up on are dropped.
    var attempt = 0
    /// The next sequence per partition at the current epoch.
    var sequences: [Int32: Int32] = [:]
    /// Partitions of the current transaction still producing.
    var producing: Set<Int32> = []

    init(name: String, transactionalId: String, world: TransactionSimulation) {
        self.name = name
        self.transactionalId = transactionalId
        self.instance = Int(name.dropFirst())!
        self.world = world
    }

    var options: TransactionSimulationOptions { world.options }
    var idle: Bool { phase == "idle" }
    var transactionKey: String { "\(name).\(ordinal)" }

    func start() { initProducerId() }

    func stall() {
        world.note("\(name) will stall past its transaction timeout")
        stalled = true
    }

    func die() {
        alive = false
        phase = "dead"
        world.note("\(name) stops")
    }

    static let retriable: Set<ErrorCode> = [
        .concurrentTransactions, .coordinatorLoadInProgress, .notCoordinator, .coordinatorNotAvailable,
        .requestTimedOut, .notLeaderOrFollower, .notEnoughReplicas, .networkException,
    ]
    static let fencedErrors: Set<ErrorCode> = [.producerFenced, .invalidProducerEpoch]

    /// Sends a request to the coordinator; `answered` gets the answer or nil after the request
    /// timeout (lost request or answer).
    func call<Response: ResponseMessage>(
        _ what: String, version: Int16, as: Response.Type, _ handler: @escaping (TransactionHost) -> RequestOutcome,
        answered: @escaping (Response?) -> Void
    ) {
        attempt += 1
        let asked = attempt
        world.send { [self] in
            let outcome = handler(world.host)
            world.request(outcome, as: Response.self, version: version) { [self] response in
                world.reply { [self] in
                    guard alive, attempt == asked else { return }
                    attempt += 1
                    answered(response)
                }
            }
        }
        world.after(options.requestTimeoutMs) { [self] in
            guard alive, attempt == asked else { return }
            attempt += 1
            world.note("\(name): \(what) timed out")
            answered(nil)
        }
    }

    func retry(_ body: @escaping () -> Void) {
        attempt += 1
        let asked = attempt
        world.after(50 + world.random(100)) { [self] in
            if alive && attempt == asked { body() }
        }
    }

    // MARK: InitProducerId

    func initProducerId() {
        phase = "init"
        var r = InitProducerIdRequest()
        r.transactionalId = transactionalId
        r.transactionTimeoutMs = options.transactionTimeoutMs
        r.producerId = -1
        r.producerEpoch = -1
        let request = r
        call("InitProducerId", version: 4, as: InitProducerIdResponse.self) { [self] host in
            let outcome = host.initProducerId(request, version: 4, context: world.context)
            return outcome
        } answered: { [self] response in
            guard let response else { return initProducerId() }
            let code = ErrorCode(response.errorCode)
            guard code == .none else {
                world.note("\(name): InitProducerId \(code)")
                return retry { [self] in initProducerId() }
            }
            if response.producerEpoch != epoch || response.producerId != producerId { sequences = [:] }
            producerId = response.producerId
            epoch = response.producerEpoch
            world.note("\(name) initialized: producer \(producerId) epoch \(epoch)")
            begin()
        }
    }

    // MARK: a transaction

    func begin() {
        guard alive else { return }
        ending = false
        abortable = false
        if zombie && (blind || world.healing) {
            zombieTransactionsLeft -= 1
            if zombieTransactionsLeft < 0 || world.healing { return die() }
        }
        if world.healing && !zombie {
            phase = "idle"
            return
        }
        ordinal += 1
        var partitions: [Int32] = []
        for p in 0..<Int32(options.partitions) where world.random(2) == 0 { partitions.append(p) }
        if partitions.isEmpty { partitions = [Int32(world.random(Int64(options.partitions)))] }
        world.note("\(name) begins \(transactionKey) on \(partitions) (producer \(producerId) epoch \(epoch))")
        addPartitions(partitions)
    }

    func addPartitions(_ partitions: [Int32]) {
        phase = "adding"
        var r = AddPartitionsToTxnRequest()
        r.v3AndBelowTransactionalId = transactionalId
        r.v3AndBelowProducerId = producerId
        r.v3AndBelowProducerEpoch = epoch
        var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
        topic.name = TransactionSimulation.topic
        topic.partitions = partitions
        r.v3AndBelowTopics = [topic]
        let request = r
        call("AddPartitionsToTxn", version: 3, as: AddPartitionsToTxnResponse.self) { [self] host in
            host.addPartitionsToTxn(request, version: 3, context: world.context)
        } answered: { [self] response in
            guard let response else { return addPartitions(partitions) }
            let code = ErrorCode(
                response.resultsByTopicV3AndBelow.first?.resultsByPartition.first?.partitionErrorCode ?? -1)
            // A blind zombie ignores being fenced, and only that: it still keeps the client's order.
            if code == .none || (blind && Self.fencedErrors.contains(code)) { return produce(partitions) }
            world.note("\(name): AddPartitionsToTxn \(code)")
            if Self.fencedErrors.contains(code) { return fenced(then: { [self] in produce(partitions) }) }
            if Self.retriable.contains(code) { return retry { [self] in addPartitions(partitions) } }
            abortable = true
            endTransaction(commit: false)
        }
    }

    func produce(_ partitions: [Int32]) {
        phase = "producing"
        producing = Set(partitions)
        let txn = ordinal
        for p in partitions {
            let count = 1 + Int(world.random(2))
            sendBatch(p, index: 0, count: count, txn: txn)
        }
    }

    /// Sends batch `index` of `count` to partition `p`, retrying it (same sequence) until it is
    /// answered.
    func sendBatch(_ p: Int32, index: Int, count: Int, txn: Int) {
        let seq = sequences[p] ?? 0
        let firstSendMs = world.now
        let tag = "\(name).\(txn).\(p).\(index)@\(firstSendMs)"
        let batch = RecordBatches.build(
            records: [Record(offset: 0, timestamp: world.clock.wallMs(), value: ByteBuffer(string: tag))],
            attributes: 0x10, producerId: producerId, producerEpoch: epoch, baseSequence: seq)
        send(batch, to: p, txn: txn, index: index, count: count, seq: seq)
    }

    func send(_ batch: ByteBuffer, to p: Int32, txn: Int, index: Int, count: Int, seq: Int32) {
        let sentEpoch = epoch
        var done = false
        func handle(_ code: ErrorCode?) {
            guard !done, alive, ordinal == txn, epoch == sentEpoch, producing.contains(p) else { return }
            done = true
            let code = code ?? .requestTimedOut
            switch code {
            case .none, .duplicateSequenceNumber:
                sequences[p] = seq &+ 1
                if index + 1 < count { return sendBatch(p, index: index + 1, count: count, txn: txn) }
            case _ where Self.retriable.contains(code) && !blind:
                world.after(50 + world.random(100)) { [self] in
                    guard alive, ordinal == txn, epoch == sentEpoch, producing.contains(p) else { return }
                    send(batch, to: p, txn: txn, index: index, count: count, seq: seq)
                }
                return
            default:
                world.note("\(name): produce to p\(p) \(code)")
                if !blind {
                    abortable = true
                    if Self.fencedErrors.contains(code) {
                        producing.remove(p)
                        return fenced(then: { [self] in partitionDone() })
                    }
                }
            }
            producing.remove(p)
            partitionDone()
        }
        let lost = !world.healing && world.rng.next() % 100 < options.lossPercent
        if !lost {
            world.after(1 + world.random(options.maxDelayMs)) { [self] in
                world.produce(batch, to: p, transactionalId: transactionalId) { [self] code in
                    world.reply { handle(code) }
                }
            }
        }
        world.after(options.requestTimeoutMs) { handle(nil) }
    }

    func partitionDone() {
        guard producing.isEmpty, phase == "producing" else { return }
        phase = "ending"
        if stalled {
            stalled = false
            world.after(Int64(options.transactionTimeoutMs) + 1_500) { [self] in
                guard alive else { return }
                endTransaction(commit: !abortable)
            }
            return
        }
        endTransaction(commit: !abortable && world.random(5) != 0)
    }

    func endTransaction(commit: Bool) {
        phase = "ending"
        ending = commit
        let request = EndTxnRequest(
            transactionalId: transactionalId, producerId: producerId, producerEpoch: epoch, committed: commit)
        call("EndTxn", version: 5, as: EndTxnResponse.self) { [self] host in
            host.endTxn(request, version: 5, context: world.context)
        } answered: { [self] response in
            guard let response else { return endTransaction(commit: commit) }
            let code = ErrorCode(response.errorCode)
            if code == .none {
                world.note("\(name) \(commit ? "committed" : "aborted") \(transactionKey)")
                if commit {
                    world.stats.commitsAcknowledged += 1
                    world.commitAcknowledged.insert(transactionKey)
                } else {
                    world.stats.abortsAcknowledged += 1
                }
                if response.producerEpoch >= 0 {
                    if response.producerEpoch != epoch || response.producerId != producerId { sequences = [:] }
                    producerId = response.producerId
                    epoch = response.producerEpoch
                }
                ending = false
                return retry { [self] in begin() }
            }
            world.note("\(name): EndTxn \(commit ? "commit" : "abort") \(code)")
            if Self.retriable.contains(code) { return retry { [self] in endTransaction(commit: commit) } }
            if Self.fencedErrors.contains(code) { return fenced(then: { [self] in retry { [self] in begin() } }) }
            if blind { return retry { [self] in begin() } }
            // INVALID_TXN_STATE and the like: start over with a new epoch.
            ending = false
            initProducerId()
        }
    }

    /// The coordinator or a partition said this producer is fenced. A zombie writes on
    /// regardless (`then`); the current instance stops and the application starts a new one.
    func fenced(then: @escaping () -> Void) {
        if zombie {
            if !blind { world.note("\(name) (a zombie) is told it is fenced and writes on") }
            blind = true
            return then()
        }
        world.note("\(name) is fenced and stops; a new instance of \(transactionalId) starts")
        die()
        let id = transactionalId
        world.after(100 + world.random(200)) { [world] in world.startProducer(transactionalId: id) }
    }
}

/// A read_committed consumer: fetches up to the bound the real partition gives a
/// read_committed fetch, and drops the records of aborted transactions as Kafka's consumer does
/// (the aborted-transaction list of the fetch, and abort markers).
final class SimTxnReader: @unchecked Sendable {
    let name: String
    unowned let world: TransactionSimulation
    var positions: [Int32: Int64] = [:]

    init(name: String, world: TransactionSimulation) {
        self.name = name
        self.world = world
    }

    func start() {
        func loop() {
            let p = Int32(world.random(Int64(world.options.partitions)))
            if let partition = world.brokers[Int(p)].partition_ {
                var position = positions[p] ?? 0
                let seen = world.readCommitted(partition, from: &position, who: name)
                positions[p] = position
                for tag in seen { world.checkSeen(tag, reader: name, partition: p) }
            }
            world.after(40 + world.random(80)) { loop() }
        }
        world.after(40 + world.random(80)) { loop() }
    }
}

extension TransactionSimulation {
    /// One read_committed fetch of `partition` from `position` (moved past what it read): the
    /// values of the records delivered.
    func readCommitted(_ partition: Partition, from position: inout Int64, who: String) -> [String] {
        let p = partition.topicPartition.partition
        let bounds = partition.consumerReadBounds(readCommitted: true)
        if let seen = lastStableSeen[p], bounds.lastStableOffset < seen {
            fail("the last stable offset of p\(p) went back from \(seen) to \(bounds.lastStableOffset) (\(who))")
        }
        lastStableSeen[p] = max(lastStableSeen[p] ?? 0, bounds.lastStableOffset)
        guard position < bounds.readLimit else { return [] }
        let bytes: ByteBuffer
        let batches: [DecodedBatch]
        do {
            bytes = try partition.log.readBytes(from: position, maxBytes: 16_384, maxOffset: bounds.readLimit)
            batches = try RecordBatches.decode(bytes)
        } catch {
            fail("reading p\(p) from \(position) failed: \(error)")
            return []
        }
        guard let last = batches.last else { return [] }
        var aborted = partition.log.collectAbortedTransactions(
            fetchOffset: position, upperBoundOffset: last.header.nextOffset
        ).sorted { $0.firstOffset < $1.firstOffset }
        var abortedProducers: Set<Int64> = []
        var out: [String] = []
        for batch in batches {
            let h = batch.header
            if h.nextOffset <= position { continue }
            if h.isTransactional {
                while let first = aborted.first, first.firstOffset <= h.lastOffset {
                    abortedProducers.insert(first.producerId)
                    aborted.removeFirst()
                }
            }
            if h.isControl {
                if let r = batch.records.first, let marker = EndTransactionMarker(key: r.key, value: r.value),
                    !marker.committed
                {
                    abortedProducers.remove(h.producerId)
                }
                continue
            }
            if h.isTransactional && abortedProducers.contains(h.producerId) { continue }
            for record in batch.records where record.offset >= position {
                if var v = record.value, let s = v.readString(length: v.readableBytes) { out.append(s) }
            }
        }
        position = last.header.nextOffset
        stats.recordsRead += out.count
        return out
    }

    /// What a reader was handed must belong to a transaction the coordinator durably decided to
    /// commit, and not have been sent by a fenced producer.
    func checkSeen(_ tag: String, reader: String, partition p: Int32) {
        let parsed = Self.parse(tag)
        if !committedDecided.contains(parsed.transaction) {
            fail(
                "\(reader) read \(tag) from p\(p), of transaction \(parsed.transaction) which is not committed (open or aborted)"
            )
        }
        if let fenced = fencedAtMs[parsed.producer], parsed.firstSendMs > fenced {
            fail("\(reader) read \(tag) from p\(p), sent by \(parsed.producer) after it was fenced at t=\(fenced)")
        }
    }

    /// "p3.7.1.0@1234": producer p3, its transaction 7, partition 1, batch 0, first sent at 1234.
    static func parse(_ tag: String) -> (producer: String, transaction: String, firstSendMs: Int64) {
        let at = tag.split(separator: "@")
        let parts = at[0].split(separator: ".")
        return ("\(parts[0])", "\(parts[0]).\(parts[1])", Int64(at.count > 1 ? at[1] : "0") ?? 0)
    }

    /// No transaction stays open past its timeout plus `openBoundMs`, on the coordinator or on
    /// a partition.
    func checkOpenTransactions() {
        let limit = Int64(options.transactionTimeoutMs) + options.openBoundMs
        let wall = clock.wallMs()
        if loaded {
            let late = host.read { c in
                c.transactions.values.map(\.metadata).filter {
                    $0.state == .ongoing && $0.startTimestampMs >= 0 && wall - $0.startTimestampMs > limit
                }
            }
            if let m = late.first {
                fail(
                    "\(m.transactionalId)'s transaction is open on the coordinator \(wall - m.startTimestampMs) ms after it began: \(m)"
                )
            }
        }
        for b in brokers {
            guard let partition = b.partition_ else { continue }
            guard let first = partition.log.firstUnstableOffset else {
                unstableSince[b.partition] = nil
                continue
            }
            if let since = unstableSince[b.partition], since.offset == first {
                if now - since.sinceMs > limit {
                    fail(
                        "p\(b.partition) has had a transaction open (or unreplicated) at offset \(first) for \(now - since.sinceMs) ms"
                    )
                }
            } else {
                unstableSince[b.partition] = (first, now)
            }
        }
    }

    /// After healing: each transaction is visible on all its partitions or none, exactly the
    /// committed ones are, and every acknowledged commit is.
    func checkFinal() {
        var present: [String: [Int32: Set<String>]] = [:]
        var visible: [String: [Int32: Set<String>]] = [:]
        for b in brokers {
            guard let partition = b.partition_ else { return fail("p\(b.partition) is down after settling") }
            let p = b.partition
            let end = partition.log.logEndOffset
            if partition.lastStableOffset != end {
                fail("p\(p) settled with its last stable offset \(partition.lastStableOffset) below its end \(end)")
            }
            var position: Int64 = 0
            while position < end {
                let before = position
                for tag in readCommitted(partition, from: &position, who: "the final read") {
                    visible[Self.parse(tag).transaction, default: [:]][p, default: []].insert(tag)
                }
                if position == before { break }
            }
            position = 0
            while position < end {
                guard let bytes = try? partition.log.readBytes(from: position, maxBytes: 1 << 20),
                    let batches = try? RecordBatches.decode(bytes), let last = batches.last
                else { return fail("p\(p) cannot be read at \(position)") }
                for batch in batches where !batch.header.isControl {
                    for record in batch.records {
                        if var v = record.value, let s = v.readString(length: v.readableBytes) {
                            present[Self.parse(s).transaction, default: [:]][p, default: []].insert(s)
                        }
                    }
                }
                position = last.header.nextOffset
            }
        }
        for key in present.keys.sorted() {
            let written = present[key]!
            let seen = visible[key] ?? [:]
            if committedDecided.contains(key) {
                for p in written.keys.sorted() where seen[p] != written[p] {
                    fail(
                        "committed transaction \(key) is not wholly visible on p\(p): \(seen[p]?.count ?? 0) of \(written[p]!.count) records (visible on \(seen.keys.sorted()))"
                    )
                }
            } else if !seen.isEmpty {
                fail(
                    "transaction \(key), never committed, is visible on \(seen.keys.sorted()) (written to \(written.keys.sorted()))"
                )
            }
            for tags in seen.values {
                for tag in tags.sorted() {
                    let parsed = Self.parse(tag)
                    if let fenced = fencedAtMs[parsed.producer], parsed.firstSendMs > fenced {
                        fail("\(tag) is visible though \(parsed.producer) sent it after it was fenced at t=\(fenced)")
                    }
                }
            }
        }
        for key in commitAcknowledged.sorted() where !committedDecided.contains(key) {
            fail("the commit of \(key) was acknowledged but never decided")
        }
    }
}
