import NIOCore
import RunnelBroker
import RunnelCore
import RunnelLog
import RunnelWire

/// What identifies a stored batch: its offsets, the leader epoch stamped in it, its CRC (over
/// everything after the epoch) and its producer id and sequence. Two replicas hold the same
/// bytes at an offset when these agree.
struct BatchFact: Equatable, CustomStringConvertible {
    var baseOffset: Int64
    var lastOffset: Int64
    var leaderEpoch: Int32
    var crc: UInt32
    var producerId: Int64
    var sequence: Int32

    var description: String {
        "batch \(baseOffset)...\(lastOffset) epoch \(leaderEpoch) (producer \(producerId) seq \(sequence), crc \(crc))"
    }
}

/// The checkers' record of one partition: the committed batches (below the largest high
/// watermark any leader reported: the committed point), what was acknowledged and consumed.
final class PartitionLedger {
    var batches: [Int64: BatchFact] = [:]
    /// The committed point.
    var end: Int64 = 0
    /// [producer id, sequence] -> base offset of the committed batch.
    var bySequence: [[Int64]: Int64] = [:]
    /// [producer id, sequence] -> base offset the producer was told.
    var acked: [[Int64]: Int64] = [:]
    var consumed: [Int64: BatchFact] = [:]
    /// [broker, incarnation, leader epoch] -> the last high watermark that leader reported.
    var leaderHighWatermarks: [[Int64]: Int64] = [:]
    /// Leader epoch -> the broker that acted as leader in it.
    var epochLeaders: [Int32: Int32] = [:]
}

extension ReplicationSimulation {
    // MARK: reading logs

    /// The batches in `buffer`, each with its CRC verified.
    func batchFacts(_ buffer: ByteBuffer) -> (facts: [BatchFact], problem: String?) {
        var facts: [BatchFact] = []
        var index = buffer.readerIndex
        while let header = RecordBatchHeader(buffer, at: index), header.totalBytes <= buffer.writerIndex - index {
            let crc = RecordBatches.crc32c(
                buffer, at: index + RecordBatchHeader.crcStart, length: header.totalBytes - RecordBatchHeader.crcStart)
            if crc != header.crc { return (facts, "the batch at \(header.baseOffset) fails its CRC") }
            facts.append(
                BatchFact(
                    baseOffset: header.baseOffset, lastOffset: header.lastOffset,
                    leaderEpoch: header.partitionLeaderEpoch,
                    crc: header.crc, producerId: header.producerId, sequence: header.baseSequence))
            index += header.totalBytes
        }
        return (facts, nil)
    }

    /// The whole batches of `log` from `from` (a batch boundary) with base offsets below `to`.
    func readFacts(_ log: PartitionLog, from: Int64, to: Int64) -> (facts: [BatchFact], problem: String?) {
        var out: [BatchFact] = []
        var next = from
        while next < to {
            let buffer: ByteBuffer
            do {
                buffer = try log.readBytes(from: next, maxBytes: 1 << 20, maxOffset: to)
            } catch {
                return (out, "cannot read from \(next): \(error)")
            }
            let (facts, problem) = batchFacts(buffer)
            out += facts
            if let problem { return (out, problem) }
            guard let last = facts.last else { break }
            next = last.lastOffset + 1
        }
        return (out, nil)
    }

    // MARK: the checks after every event

    func check() {
        guard failure == nil else { return }
        // Truncations, for the summary: a replica's log end that went down.
        for id in brokerIds {
            let broker = brokers[id]!
            guard broker.up else { continue }
            for p in partitionIds {
                guard let partition = broker.partition(topicPartition(p)) else { continue }
                let end = partition.log.logEndOffset
                let key = ReplicaKey(broker: id, partition: p, incarnation: broker.incarnation)
                if let previous = logEnds[key], end < previous.end {
                    stats.truncations += 1
                    note("\(id) p\(p) truncated \(previous.end) -> \(end)")
                    // What this replica knew committed stays, unless a replica outside the ISR
                    // was allowed to lead.
                    if end < previous.highWatermark && !options.broken.contains(.uncleanLeaderElection) {
                        return fail(
                            "\(id) p\(p) truncated to \(end), below its high watermark \(previous.highWatermark)")
                    }
                }
                logEnds[key] = (end, partition.highWatermark)
                let aside = partition.steppedAside
                if aside && !steppedAside.contains(key) {
                    stats.stepAsides += 1
                    note("\(id) p\(p) stepped aside")
                }
                if aside { steppedAside.insert(key) } else { steppedAside.remove(key) }
            }
        }
        // At most one leader per leader epoch, over the whole run.
        for id in brokerIds {
            let broker = brokers[id]!
            guard broker.up else { continue }
            for p in partitionIds {
                guard let partition = broker.partition(topicPartition(p)), partition.isLeader else { continue }
                let ledger = ledgers[p]!
                let epoch = partition.leaderEpoch
                if let other = ledger.epochLeaders[epoch], other != id {
                    return fail("two leaders of p\(p) in leader epoch \(epoch): \(other) and \(id)")
                }
                ledger.epochLeaders[epoch] = id
            }
        }
        // A fenced broker never stays leader once its fence is committed.
        let image = controllerImage
        for p in partitionIds {
            guard let registration = registration(p), registration.leader >= 0 else { continue }
            if image.brokers[NodeID(registration.leader)]?.fenced != false {
                return fail("p\(p) is led by broker \(registration.leader), which the committed metadata fences")
            }
        }
        // Leaders report high watermarks: below its own, a leader's log must be the committed
        // log; a higher one than any before commits what it has up to there.
        for id in brokerIds {
            let broker = brokers[id]!
            guard broker.up else { continue }
            for p in partitionIds {
                guard let partition = broker.partition(topicPartition(p)), partition.isLeader else { continue }
                let ledger = ledgers[p]!
                let hw = partition.highWatermark
                let tenure: [Int64] = [Int64(id), broker.incarnation, Int64(partition.leaderEpoch)]
                if let previous = ledger.leaderHighWatermarks[tenure], hw < previous {
                    return fail(
                        "invariant 3: the high watermark of leader \(id) of p\(p) (epoch \(partition.leaderEpoch)) went back from \(previous) to \(hw)"
                    )
                }
                ledger.leaderHighWatermarks[tenure] = hw
                if let (offset, problem) = verify(broker, partition, p, upTo: min(hw, ledger.end)) {
                    return fail(
                        "invariant 3: leader \(id) of p\(p) (epoch \(partition.leaderEpoch), high watermark \(hw)) \(problem) at offset \(offset)"
                    )
                }
                if hw > ledger.end { learn(broker, partition, p, highWatermark: hw) }
                if failure != nil { return }
            }
        }
        // Invariant 5: a leader's high watermark is at most the log end every member of its ISR
        // reported, and a replica's log only grows within its incarnation, so every member holds
        // the log up to the high watermark, unless it lost its page cache while in the ISR (the
        // gap KIP-966 closes) or the leader counted a report from an earlier incarnation of it
        // (what KIP-903's broker epochs prevent).
        for id in brokerIds {
            let broker = brokers[id]!
            guard broker.up else { continue }
            for p in partitionIds {
                guard let partition = broker.partition(topicPartition(p)), let leader = partition.leaderState,
                    let committedIsr = registration(p)?.isr
                else { continue }
                // Members in the ISR as both the leader and the committed metadata have it (the
                // leader learns of a removal a little after the controller committed it).
                // Invariant 6 (KIP-903): what the leader counts for an in-sync replica comes from
                // that replica's current incarnation, never from an earlier one's delayed fetch
                // (once the metadata the leader's replicas follow holds the current registration:
                // Metadata answers with a newer image while they catch up, as in Kafka).
                for member in leader.isr where member.rawValue != id && committedIsr.contains(member.rawValue) {
                    guard let fetched = leader.followers[member]?.brokerEpoch else { continue }
                    let registered = brokerEpoch(member.rawValue)
                    if fetched.rawValue < registered, broker.replicaImage.brokers[member]?.epoch == registered {
                        return fail(
                            "invariant 6: leader \(id) of p\(p) counts a fetch of in-sync replica \(member) by its incarnation of broker epoch \(fetched), which registered again at \(registered)"
                        )
                    }
                }
                for member in leader.maximalIsr where member.rawValue != id && committedIsr.contains(member.rawValue) {
                    guard let follower = brokers[member.rawValue], follower.up,
                        let replica = follower.partition(topicPartition(p)),
                        !impaired.contains(where: { $0.broker == member.rawValue && $0.partition == p })
                    else { continue }
                    let end = replica.log.logEndOffset
                    if end < leader.highWatermark.rawValue {
                        return fail(
                            "invariant 5: in-sync replica \(member) of p\(p) ends at \(end), below leader \(id)'s high watermark \(leader.highWatermark) (epoch \(leader.leaderEpoch), isr \(leader.isr))"
                        )
                    }
                }
            }
        }
        // The partition's current leader holds every committed batch at its offset; every
        // in-sync replica holds the committed batches it has (it may still lack a suffix).
        for p in partitionIds {
            guard let registration = registration(p) else { continue }
            let ledger = ledgers[p]!
            if let leader = currentLeader(p) {
                let end = leader.partition.log.logEndOffset
                if end < ledger.end {
                    return lost(
                        p, from: end,
                        "leader \(leader.broker.id) (epoch \(registration.leaderEpoch)) has a log ending at \(end), below the committed point \(ledger.end)"
                    )
                }
                if let (offset, problem) = verify(leader.broker, leader.partition, p, upTo: ledger.end) {
                    return lost(
                        p, from: offset, "leader \(leader.broker.id) (epoch \(registration.leaderEpoch)) \(problem)")
                }
            }
            for member in registration.isr where member != registration.leader {
                guard let broker = brokers[member], broker.up, let partition = broker.partition(topicPartition(p))
                else { continue }
                if let (offset, problem) = verify(broker, partition, p, upTo: ledger.end) {
                    return fail(
                        "invariant 3: in-sync replica \(member) of p\(p) \(problem) at offset \(offset) (committed point \(ledger.end))"
                    )
                }
            }
        }
    }

    /// The broker the controller names leader, once it has taken the leadership up.
    func currentLeader(_ p: Int32) -> (broker: SimBrokerNode, partition: Partition)? {
        guard let registration = registration(p), registration.leader >= 0,
            let broker = brokers[registration.leader], broker.up,
            let partition = broker.partition(topicPartition(p)), partition.isLeader,
            partition.leaderEpoch == registration.leaderEpoch
        else { return nil }
        return (broker, partition)
    }

    /// Committed batches are gone from the leader from `offset` on: invariant 1 when one of
    /// them was acknowledged to the producer, invariant 3 otherwise.
    func lost(_ p: Int32, from offset: Int64, _ detail: String) {
        let ledger = ledgers[p]!
        let acked = ledger.acked.filter { $0.value >= offset }.min { $0.value < $1.value }
        if let acked, let batch = ledger.batches[acked.value] {
            fail("invariant 1: the acknowledged \(batch) of p\(p) is lost: \(detail)")
        } else {
            fail("invariant 3: committed batches of p\(p) from offset \(offset) are lost: \(detail)")
        }
    }

    /// Compares a replica's log with the committed batches from where it was last compared up
    /// to `limit`; returns the first offset that differs and how.
    func verify(_ broker: SimBrokerNode, _ partition: Partition, _ p: Int32, upTo limit: Int64) -> (Int64, String)? {
        let ledger = ledgers[p]!
        let key = ReplicaKey(broker: broker.id, partition: p, incarnation: broker.incarnation)
        let log = partition.log
        let end = log.logEndOffset
        var from = verified[key] ?? 0
        if end < from { from = end }
        from = max(from, log.logStartOffset)
        let upTo = min(limit, end, ledger.end)
        guard from < upTo else {
            verified[key] = from
            return nil
        }
        let (facts, problem) = readFacts(log, from: from, to: upTo)
        for fact in facts {
            guard let committed = ledger.batches[fact.baseOffset] else {
                return (fact.baseOffset, "holds \(fact) where no committed batch starts")
            }
            if committed != fact { return (fact.baseOffset, "holds \(fact) where \(committed) was committed") }
        }
        if let problem { return (facts.last.map { $0.lastOffset + 1 } ?? from, problem) }
        verified[key] = facts.last.map { $0.lastOffset + 1 } ?? from
        return nil
    }

    /// A leader reported a high watermark past the committed point: its batches up to there are
    /// committed now.
    func learn(_ broker: SimBrokerNode, _ partition: Partition, _ p: Int32, highWatermark hw: Int64) {
        let ledger = ledgers[p]!
        let (facts, problem) = readFacts(partition.log, from: ledger.end, to: hw)
        if let problem {
            return fail("invariant 3: leader \(broker.id) of p\(p) reports high watermark \(hw) but \(problem)")
        }
        var next = ledger.end
        for fact in facts {
            guard fact.baseOffset == next else {
                return fail(
                    "invariant 3: leader \(broker.id) of p\(p) holds \(fact) where the committed log continues at \(next)"
                )
            }
            ledger.batches[fact.baseOffset] = fact
            next = fact.lastOffset + 1
            stats.committedBatches += 1
            if fact.producerId >= 0 {
                let key = [fact.producerId, Int64(fact.sequence)]
                if let other = ledger.bySequence[key], other != fact.baseOffset {
                    return fail(
                        "invariant 4: producer \(fact.producerId) sequence \(fact.sequence) is committed twice in p\(p): at \(other) and at \(fact.baseOffset)"
                    )
                }
                ledger.bySequence[key] = fact.baseOffset
            }
        }
        guard next == hw else {
            return fail(
                "invariant 3: leader \(broker.id) of p\(p) reports high watermark \(hw) inside a batch (batches end at \(next))"
            )
        }
        note(
            "committed p\(p) \(ledger.end)..<\(hw) (leader \(broker.id) epoch \(partition.leaderEpoch), isr \(partition.isr))"
        )
        ledger.end = hw
        verified[ReplicaKey(broker: broker.id, partition: p, incarnation: broker.incarnation)] = hw
    }

    // MARK: clients

    /// The producer heard that its batch is written at `baseOffset`: it must be committed there.
    func acknowledged(partition p: Int32, producerId: Int64, sequence: Int32, baseOffset: Int64, by broker: Int32) {
        let ledger = ledgers[p]!
        stats.ackedBatches += 1
        note("producer \(producerId) p\(p) seq \(sequence) acknowledged at \(baseOffset) by \(broker)")
        guard baseOffset < ledger.end, let fact = ledger.batches[baseOffset], fact.producerId == producerId,
            fact.sequence == sequence
        else {
            let there = ledger.batches[baseOffset].map { "\($0)" } ?? "nothing committed"
            return fail(
                "invariant 1: broker \(broker) acknowledged producer \(producerId) seq \(sequence) of p\(p) at offset \(baseOffset), but there is \(there) (committed point \(ledger.end))"
            )
        }
        let key = [producerId, Int64(sequence)]
        if let previous = ledger.acked[key], previous != baseOffset {
            return fail(
                "invariant 4: producer \(producerId) seq \(sequence) of p\(p) was acknowledged at \(previous) and at \(baseOffset)"
            )
        }
        ledger.acked[key] = baseOffset
    }

    /// A consumer read from `from`: only committed batches below the reported high watermark,
    /// the same as anyone read there before. Returns the next position.
    func consumed(
        partition p: Int32, data: FetchResponse.PartitionData, from: Int64, by consumer: Int32, leader: Int32
    ) -> Int64? {
        let ledger = ledgers[p]!
        guard let bytes = data.records?.bytes else {
            fail("consumer \(consumer) got records it cannot read from \(leader)")
            return nil
        }
        let (facts, problem) = batchFacts(bytes)
        if let problem {
            fail("invariant 2: consumer \(consumer) read from \(leader) at \(from): \(problem)")
            return nil
        }
        var next = from
        for fact in facts {
            if fact.lastOffset >= data.highWatermark {
                fail(
                    "invariant 2: consumer \(consumer) read \(fact) of p\(p) from \(leader) at or above the high watermark \(data.highWatermark)"
                )
                return nil
            }
            guard fact.baseOffset < ledger.end, let committed = ledger.batches[fact.baseOffset] else {
                fail(
                    "invariant 2: consumer \(consumer) read \(fact) of p\(p) from \(leader), which is not committed (committed point \(ledger.end))"
                )
                return nil
            }
            if committed != fact {
                fail(
                    "invariant 2: consumer \(consumer) read \(fact) of p\(p) from \(leader) where \(committed) is committed"
                )
                return nil
            }
            if let earlier = ledger.consumed[fact.baseOffset] {
                if earlier != fact {
                    fail("invariant 2: consumer \(consumer) read \(fact) of p\(p) where \(earlier) was read before")
                    return nil
                }
            } else {
                ledger.consumed[fact.baseOffset] = fact
                stats.consumedBatches += 1
            }
            next = fact.lastOffset + 1
        }
        return next
    }

    // MARK: convergence

    /// Everything healed: every broker serves unfenced, every partition has all three replicas
    /// in its ISR with identical logs and the high watermark at their end, the producers are
    /// done and the consumers have read everything.
    func converged() -> Bool {
        guard producers.allSatisfy(\.done) else { return false }
        let image = controllerImage
        for id in brokerIds {
            let broker = brokers[id]!
            guard broker.up, broker.serving, image.brokers[NodeID(id)]?.fenced == false,
                broker.replicaImage.provenance.lastOffset == image.provenance.lastOffset
            else { return false }
        }
        for p in partitionIds {
            guard let registration = registration(p), Set(registration.isr) == Set(registration.replicas),
                let leader = currentLeader(p)
            else { return false }
            let end = leader.partition.log.logEndOffset
            guard leader.partition.highWatermark == end, ledgers[p]!.end == end else { return false }
            for id in registration.replicas {
                guard let partition = brokers[id]!.partition(topicPartition(p)), partition.log.logEndOffset == end,
                    partition.highWatermark == end
                else { return false }
            }
            guard consumers.allSatisfy({ ($0.positions[p] ?? 0) == end }) else { return false }
        }
        return true
    }

    /// After convergence: every replica's whole log is the committed log, and every batch the
    /// producers wrote was acknowledged once, where it is committed.
    func finalCheck() {
        // Every broker's image converged to the controller's.
        for id in brokerIds where brokers[id]!.image != controllerImage {
            let mine = brokers[id]!.image.provenance.lastOffset, theirs = controllerImage.provenance.lastOffset
            return fail(
                "broker \(id)'s metadata image (to offset \(mine)) differs from the controller's (to offset \(theirs))")
        }
        for p in partitionIds {
            let ledger = ledgers[p]!
            for id in brokerIds {
                guard let partition = brokers[id]!.partition(topicPartition(p)) else {
                    return fail("at the end, broker \(id) has no replica of p\(p)")
                }
                let (facts, problem) = readFacts(
                    partition.log, from: partition.log.logStartOffset, to: partition.log.logEndOffset)
                if let problem { return fail("at the end, replica \(id) of p\(p): \(problem)") }
                var next = partition.log.logStartOffset
                for fact in facts {
                    guard fact.baseOffset == next else {
                        return fail(
                            "invariant 3: at the end, replica \(id) of p\(p) holds \(fact) where offset \(next) should follow"
                        )
                    }
                    guard ledger.batches[fact.baseOffset] == fact else {
                        return fail(
                            "invariant 3: at the end, replica \(id) of p\(p) holds \(fact) where \(ledger.batches[fact.baseOffset].map { "\($0)" } ?? "nothing") is committed"
                        )
                    }
                    next = fact.lastOffset + 1
                }
                if next != ledger.end {
                    return fail(
                        "at the end, replica \(id) of p\(p) ends at \(next), the committed log at \(ledger.end)")
                }
            }
            for producer in producers {
                let written = ledger.acked.keys.filter { $0[0] == producer.producerId }.count
                let sequences = ledger.bySequence.keys.filter { $0[0] == producer.producerId }.count
                if sequences != written {
                    return fail(
                        "invariant 4: producer \(producer.producerId) had \(written) batches of p\(p) acknowledged but \(sequences) committed"
                    )
                }
            }
        }
        note("converged: \(summary())")
    }
}
