import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire

/// An idempotent acks=all producer (Kafka's default since 3.0): a producer id and epoch, a
/// sequence per record, one batch in flight per partition, and every batch retried (to whichever
/// broker leads now) until it is acknowledged.
final class SimProducer {
    let id: Int32
    let producerId: Int64
    unowned let world: ReplicationSimulation
    static let epoch: Int16 = 0

    struct Batch {
        var sequence: Int32
        var records: Int32
        var bytes: ByteBuffer
        var attempts = 0
    }

    var nextSequence: [Int32: Int32] = [:]
    var outstanding: [Int32: Batch] = [:]
    var inFlight: Set<Int32> = []
    var retryAt: [Int32: Int64] = [:]
    var leaders: [Int32: Int32] = [:]
    /// Batches still to write per partition once faults stop (nil: no limit).
    var remaining: [Int32: Int]?

    init(id: Int32, producerId: Int64, world: ReplicationSimulation) {
        self.id = id
        self.producerId = producerId
        self.world = world
    }

    func start() {
        func loop() {
            if world.topicCreated { for p in world.partitionIds { tick(p) } }
            world.after(5 + world.random(40)) { loop() }
        }
        world.after(world.random(40)) { loop() }
    }

    func finishAfter(_ batches: Int) {
        remaining = Dictionary(uniqueKeysWithValues: world.partitionIds.map { ($0, batches) })
    }

    var done: Bool { remaining.map { $0.values.allSatisfy { $0 == 0 } } == true && outstanding.isEmpty }

    func tick(_ p: Int32) {
        guard !inFlight.contains(p), world.now >= retryAt[p] ?? 0 else { return }
        if outstanding[p] == nil {
            if let left = remaining?[p] {
                guard left > 0 else { return }
                remaining![p] = left - 1
            }
            let sequence = nextSequence[p] ?? 0
            let count = Int32(1 + world.random(3))
            let records = (0..<count).map { i in
                Record(offset: Int64(i), timestamp: world.now, key: nil,
                       value: ByteBuffer(string: "producer \(producerId) partition \(p) sequence \(sequence + i)"))
            }
            let bytes = RecordBatches.build(records: records, producerId: producerId, producerEpoch: Self.epoch, baseSequence: sequence)
            nextSequence[p] = sequence + count
            outstanding[p] = Batch(sequence: sequence, records: count, bytes: bytes)
        }
        guard let target = leaders[p] ?? refreshLeader(p) else {
            retryAt[p] = world.now + 100
            return
        }
        send(p, to: target)
    }

    /// The leader as some broker's metadata names it (a Metadata request, answered at once).
    func refreshLeader(_ p: Int32) -> Int32? {
        let serving = world.brokerIds.filter { world.brokers[$0]!.up && world.brokers[$0]!.serving }
        leaders[p] = nil
        guard !serving.isEmpty else { return nil }
        let asked = world.brokers[serving[Int(world.rng.next() % UInt64(serving.count))]]!
        guard let leader = asked.image.partition(world.topicPartition(p))?.leader, leader >= 0 else { return nil }
        leaders[p] = leader
        return leader
    }

    func send(_ p: Int32, to target: Int32) {
        guard var batch = outstanding[p] else { return }
        batch.attempts += 1
        outstanding[p] = batch
        var request = ProduceRequest()
        request.acks = -1
        request.timeoutMs = 1_500
        request.topicData = [.init(name: ReplicationSimulation.topic, partitionData: [.init(index: p, records: Records(batch.bytes))])]
        guard let request = world.wire(request, version: SimBroker.produceVersion) else { return }
        inFlight.insert(p)
        let sequence = batch.sequence
        world.exchange(from: id, to: target, label: "Produce p\(p) producer \(producerId) seq \(sequence) (attempt \(batch.attempts))", timeoutMs: 3_000, senderAlive: { true },
                       handle: { [world] (reply: @escaping (ProduceResponse) -> Void) in
                           world.brokers[target]!.handleProduce(request, version: SimBroker.produceVersion, reply: reply)
                       },
                       completion: { [self] response in
                           inFlight.remove(p)
                           guard let answer = response?.responses.first?.partitionResponses.first else {
                               world.stats.producerErrors["no answer", default: 0] += 1
                               _ = refreshLeader(p)
                               retryAt[p] = world.now + 50
                               return
                           }
                           let code = ErrorCode(answer.errorCode)
                           guard code == .none else {
                               world.stats.producerErrors["\(code)", default: 0] += 1
                               world.note("producer \(producerId) p\(p) seq \(sequence) at \(target): \(code)")
                               _ = refreshLeader(p)
                               retryAt[p] = world.now + 100
                               return
                           }
                           guard outstanding[p]?.sequence == sequence else { return }
                           outstanding[p] = nil
                           world.acknowledged(partition: p, producerId: producerId, sequence: sequence, baseOffset: answer.baseOffset, by: target)
                       })
    }
}

/// A consumer reading a partition from its leader up to the high watermark; one that rewinds
/// now and then re-reads what it read before.
final class SimConsumer {
    let id: Int32
    let rewinds: Bool
    unowned let world: ReplicationSimulation
    var positions: [Int32: Int64] = [:]
    var inFlight: Set<Int32> = []
    var retryAt: [Int32: Int64] = [:]
    var leaders: [Int32: Int32] = [:]

    init(id: Int32, rewinds: Bool, world: ReplicationSimulation) {
        self.id = id
        self.rewinds = rewinds
        self.world = world
    }

    func start() {
        func loop() {
            if world.topicCreated { for p in world.partitionIds { tick(p) } }
            world.after(10 + world.random(60)) { loop() }
        }
        world.after(world.random(60)) { loop() }
    }

    func refreshLeader(_ p: Int32) -> Int32? {
        let serving = world.brokerIds.filter { world.brokers[$0]!.up && world.brokers[$0]!.serving }
        leaders[p] = nil
        guard !serving.isEmpty else { return nil }
        let asked = world.brokers[serving[Int(world.rng.next() % UInt64(serving.count))]]!
        guard let leader = asked.image.partition(world.topicPartition(p))?.leader, leader >= 0 else { return nil }
        leaders[p] = leader
        return leader
    }

    func tick(_ p: Int32) {
        guard !inFlight.contains(p), world.now >= retryAt[p] ?? 0 else { return }
        if rewinds && world.rng.next() % 300 == 0 { positions[p] = 0 }
        guard let target = leaders[p] ?? refreshLeader(p) else {
            retryAt[p] = world.now + 100
            return
        }
        let position = positions[p] ?? 0
        var request = FetchRequest()
        request.replicaId = -1
        request.maxWaitMs = 200
        request.minBytes = 1
        request.maxBytes = 65_536
        request.topics = [.init(topic: ReplicationSimulation.topic, partitions: [
            .init(partition: p, currentLeaderEpoch: -1, fetchOffset: position, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 8_192),
        ])]
        guard let request = world.wire(request, version: SimBroker.fetchVersion) else { return }
        inFlight.insert(p)
        world.exchange(from: id, to: target, label: "consumer Fetch p\(p) @\(position)", timeoutMs: 2_000, senderAlive: { true },
                       handle: { [world] (reply: @escaping (FetchResponse) -> Void) in
                           world.brokers[target]!.handleFetch(request, version: SimBroker.fetchVersion, reply: reply)
                       },
                       completion: { [self] response in
                           inFlight.remove(p)
                           guard let data = response?.responses.first?.partitions.first else {
                               _ = refreshLeader(p)
                               retryAt[p] = world.now + 50
                               return
                           }
                           guard data.errorCode == 0 else {
                               _ = refreshLeader(p)
                               retryAt[p] = world.now + 50
                               return
                           }
                           let next = world.consumed(partition: p, data: data, from: position, by: id, leader: target)
                           // A rewind may have happened meanwhile: only the position asked for moves.
                           if let next, (positions[p] ?? 0) == position { positions[p] = next }
                       })
    }
}
