import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire

/// What every simulated client has: a process (its own loop), connections to the brokers over the
/// simulated network, and a way to find a partition's leader.
class SimClient: @unchecked Sendable {
    let id: Int32
    unowned let world: ReplicationSimulation
    let loop: SimEventLoop
    private var connections: [Int32: any PeerConnection] = [:]
    var leaders: [Int32: Int32] = [:]

    init(id: Int32, world: ReplicationSimulation, name: String) {
        self.id = id
        self.world = world
        self.loop = SimEventLoop(scheduler: world.scheduler, name: name)
    }

    /// The connection to broker `id` (its advertised listener).
    func connection(to broker: Int32) -> any PeerConnection {
        if let existing = connections[broker] { return existing }
        let connection = world.network.connector(node: id, loop: loop)
            .connect(host: "broker\(broker)", port: SimBrokerNode.port, clientId: "client-\(id)", eventLoop: loop)
        connections[broker] = connection
        return connection
    }

    /// Runs `work` every `interval` plus up to `jitter` ms.
    func every(_ interval: Int64, jitter: Int64, _ work: @escaping () -> Void) {
        func tick() {
            work()
            loop.schedule(afterMs: interval + world.random(jitter)) { tick() }
        }
        loop.schedule(afterMs: world.random(jitter)) { tick() }
    }

    /// The leader as some serving broker's metadata names it (what a Metadata request would answer).
    func refreshLeader(_ p: Int32) -> Int32? {
        let serving = world.brokerIds.filter { world.brokers[$0]!.up && world.brokers[$0]!.serving }
        leaders[p] = nil
        guard !serving.isEmpty else { return nil }
        let asked = world.brokers[serving[Int(world.rng.next() % UInt64(serving.count))]]!
        // The broker's own Metadata answer: a leader that stepped aside reports none.
        let tp = world.topicPartition(p)
        guard let broker = asked.broker, let topic = asked.image.topic(named: tp.topic),
            let answer = broker.topicMetadata(topic, image: asked.image).partitions.first(where: {
                $0.partitionIndex == tp.partition
            }),
            answer.leaderId >= 0
        else { return nil }
        let leader = answer.leaderId
        leaders[p] = leader
        return leader
    }
}

/// An idempotent acks=all producer (Kafka's default since 3.0): a producer id and epoch, a
/// sequence per record, one batch in flight per partition, and every batch retried (to whichever
/// broker leads now) until it is acknowledged.
final class SimProducer: SimClient, @unchecked Sendable {
    let producerId: Int64
    static let epoch: Int16 = 0
    static let produceVersion: Int16 = 9

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
    /// Batches still to write per partition once faults stop (nil: no limit).
    var remaining: [Int32: Int]?

    init(id: Int32, producerId: Int64, world: ReplicationSimulation) {
        self.producerId = producerId
        super.init(id: id, world: world, name: "producer-\(id)")
    }

    func start() {
        every(5, jitter: 40) { [self] in
            if world.topicCreated { for p in world.partitionIds { tick(p) } }
        }
    }

    func finishAfter(_ batches: Int) {
        remaining = Dictionary(uniqueKeysWithValues: world.partitionIds.map { ($0, batches) })
    }

    var done: Bool { remaining.map { $0.values.allSatisfy { $0 == 0 } } == true && outstanding.isEmpty }

    func tick(_ p: Int32) {
        guard !inFlight.contains(p), world.now >= retryAt[p] ?? 0 else { return }
        if outstanding[p] == nil {
            if remaining == nil && world.now < world.quietUntilMs { return }
            if let left = remaining?[p] {
                guard left > 0 else { return }
                remaining![p] = left - 1
            }
            let sequence = nextSequence[p] ?? 0
            let count = Int32(1 + world.random(3))
            let records = (0..<count).map { i in
                Record(
                    offset: Int64(i), timestamp: world.clock.wallMs(), key: nil,
                    value: ByteBuffer(string: "producer \(producerId) partition \(p) sequence \(sequence + i)"))
            }
            let bytes = RecordBatches.build(
                records: records, producerId: producerId, producerEpoch: Self.epoch, baseSequence: sequence)
            nextSequence[p] = sequence + count
            outstanding[p] = Batch(sequence: sequence, records: count, bytes: bytes)
        }
        guard let target = leaders[p] ?? refreshLeader(p) else {
            retryAt[p] = world.now + 100
            return
        }
        send(p, to: target)
    }

    func send(_ p: Int32, to target: Int32) {
        guard var batch = outstanding[p] else { return }
        batch.attempts += 1
        outstanding[p] = batch
        var request = ProduceRequest()
        request.acks = -1
        request.timeoutMs = 1_500
        request.topicData = [
            .init(name: ReplicationSimulation.topic, partitionData: [.init(index: p, records: Records(batch.bytes))])
        ]
        inFlight.insert(p)
        let sequence = batch.sequence
        let answered = SimFlag()
        // The client's own request timeout: it gives up on the connection and tries again.
        let connection = connection(to: target)
        let timeout = loop.scheduleTask(in: .milliseconds(3_000)) { connection.close() }
        connection.send(request, version: Self.produceVersion).whenComplete { [self] result in
            timeout.cancel()
            guard !answered.value else { return }
            answered.value = true
            inFlight.remove(p)
            guard case .success(let response) = result, let answer = response.responses.first?.partitionResponses.first
            else {
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
            world.acknowledged(
                partition: p, producerId: producerId, sequence: sequence, baseOffset: answer.baseOffset, by: target)
        }
    }
}

/// A consumer reading a partition from its leader up to the high watermark; one that rewinds
/// now and then re-reads what it read before.
final class SimConsumer: SimClient, @unchecked Sendable {
    let rewinds: Bool
    var positions: [Int32: Int64] = [:]
    var inFlight: Set<Int32> = []
    var retryAt: [Int32: Int64] = [:]
    static let fetchVersion: Int16 = 12

    init(id: Int32, rewinds: Bool, world: ReplicationSimulation) {
        self.rewinds = rewinds
        super.init(id: id, world: world, name: "consumer-\(id)")
    }

    func start() {
        every(10, jitter: 60) { [self] in
            if world.topicCreated { for p in world.partitionIds { tick(p) } }
        }
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
        request.topics = [
            .init(
                topic: ReplicationSimulation.topic,
                partitions: [
                    .init(
                        partition: p, currentLeaderEpoch: -1, fetchOffset: position, lastFetchedEpoch: -1,
                        logStartOffset: -1, partitionMaxBytes: 8_192)
                ])
        ]
        inFlight.insert(p)
        let answered = SimFlag()
        let connection = connection(to: target)
        let timeout = loop.scheduleTask(in: .milliseconds(2_000)) { connection.close() }
        connection.send(request, version: Self.fetchVersion).whenComplete { [self] result in
            timeout.cancel()
            guard !answered.value else { return }
            answered.value = true
            inFlight.remove(p)
            guard case .success(let response) = result, let data = response.responses.first?.partitions.first,
                data.errorCode == 0
            else {
                if case .success(let response) = result {
                    world.note(
                        "consumer \(id) p\(p) @\(position) from \(target): \(ErrorCode(response.responses.first?.partitions.first?.errorCode ?? response.errorCode))"
                    )
                } else if case .failure(let error) = result {
                    world.note("consumer \(id) p\(p) @\(position) from \(target): \(error)")
                }
                _ = refreshLeader(p)
                retryAt[p] = world.now + 50
                return
            }
            let next = world.consumed(partition: p, data: data, from: position, by: id, leader: target)
            // A rewind may have happened meanwhile: only the position asked for moves.
            if let next, (positions[p] ?? 0) == position { positions[p] = next }
        }
    }
}

/// The operator: creates the topic through the controller's listener once every broker is
/// registered and unfenced (an admin client's CreateTopics).
final class SimAdmin: SimClient, @unchecked Sendable {
    private var connectionToController: (any PeerConnection)?
    private var asking = false

    init(id: Int32, world: ReplicationSimulation) {
        super.init(id: id, world: world, name: "admin-\(id)")
    }

    func start() {
        every(100, jitter: 50) { [self] in tick() }
    }

    func tick() {
        guard !world.topicCreated, !asking else { return }
        let image = world.controllerImage
        if let topic = image.topic(named: ReplicationSimulation.topic), topic.partitionCount == world.options.partitions
        {
            world.topicCreated = true
            world.note("topic \(ReplicationSimulation.topic) created")
            return
        }
        guard world.brokerIds.allSatisfy({ image.brokers[NodeID($0)].map { !$0.fenced } ?? false }) else { return }
        var request = CreateTopicsRequest()
        var topic = CreateTopicsRequest.CreatableTopic(
            name: ReplicationSimulation.topic, numPartitions: Int32(world.options.partitions),
            replicationFactor: 3)
        let unclean = world.options.broken.contains(.uncleanLeaderElection)
        topic.configs = [
            .init(name: "min.insync.replicas", value: "\(world.options.minInsyncReplicas)"),
            .init(name: "unclean.leader.election.enable", value: unclean ? "true" : "false"),
        ]
        request.topics = [topic]
        request.timeoutMs = 5_000
        let connection =
            connectionToController
            ?? world.network.connector(node: id, loop: loop)
            .connect(host: SimControllerNode.host, port: SimControllerNode.port, clientId: "admin", eventLoop: loop)
        connectionToController = connection
        asking = true
        let timeout = loop.scheduleTask(in: .milliseconds(3_000)) { connection.close() }
        connection.send(request, version: 7).whenComplete { [self] result in
            timeout.cancel()
            asking = false
            if case .success(let response) = result, let answer = response.topics.first, answer.errorCode != 0,
                answer.errorCode != ErrorCode.topicAlreadyExists.rawValue,
                answer.errorCode != ErrorCode.notController.rawValue
            {
                world.fail(
                    "the controller could not create the topic: \(ErrorCode(answer.errorCode)) \(answer.errorMessage ?? "")"
                )
            }
        }
    }
}

/// A mutable flag shared by closures.
final class SimFlag: @unchecked Sendable {
    var value = false
}
