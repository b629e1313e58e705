// Runnel micro-benchmarks (ordo-one/benchmark). One iteration is one operation on the sizes in
// the benchmark's name, so bytes/s = ops/s x bytes; `tools/bench-micro` prints that summary.
// Benchmarks print figures; they never fail for being slow (ARCHITECTURE.md section 7).
import Benchmark
import CRC32C
import Foundation
import NIOCore
import RunnelLog
import RunnelWire

// MARK: fixtures

/// Deterministic filler bytes (xorshift), so CRC inputs are not all zeros.
func fillerBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        out[i] = UInt8(truncatingIfNeeded: state)
    }
    return out
}

/// An uncompressed v2 batch of exactly 16 KiB (16,384 bytes), what a producer with
/// `batch.size=16384` sends: 16 records with a 16-byte key and a value of about 1,000 bytes
/// (61 header bytes + 16 x (25 + value) bytes, the values summing to 15,923).
func batch16K() -> ByteBuffer {
    let filler = fillerBytes(1_000)
    let records = (0..<16).map { i in
        Record(
            offset: Int64(i),
            timestamp: 1_700_000_000_000 + Int64(i),
            key: ByteBuffer(string: String(format: "key-%012d", i)),
            value: ByteBuffer(bytes: filler.prefix(i == 15 ? 998 : 995))
        )
    }
    let batch = RecordBatches.build(records: records)
    precondition(batch.readableBytes == 16 << 10, "benchmark batch is \(batch.readableBytes) bytes, not 16 KiB")
    return batch
}

func produceRequest(_ batch: ByteBuffer) -> ProduceRequest {
    var partition = ProduceRequest.PartitionProduceData()
    partition.index = 0
    partition.records = Records(batch)
    var topic = ProduceRequest.TopicProduceData()
    topic.name = "bench-topic"
    topic.partitionData = [partition]
    var request = ProduceRequest()
    request.acks = -1
    request.timeoutMs = 30_000
    request.topicData = [topic]
    return request
}

func metadataResponse(topics: Int, partitions: Int) -> MetadataResponse {
    var response = MetadataResponse()
    response.clusterId = "bench-cluster-0000000000"
    response.controllerId = 1
    response.brokers = (1...3).map { id in
        var broker = MetadataResponse.MetadataResponseBroker()
        broker.nodeId = Int32(id)
        broker.host = "broker-\(id).runnel.internal"
        broker.port = 9092
        return broker
    }
    response.topics = (0..<topics).map { t in
        var topic = MetadataResponse.MetadataResponseTopic()
        topic.name = String(format: "topic-%04d", t)
        topic.partitions = (0..<partitions).map { p in
            var partition = MetadataResponse.MetadataResponsePartition()
            partition.partitionIndex = Int32(p)
            partition.leaderId = Int32(1 + (t + p) % 3)
            partition.leaderEpoch = 7
            partition.replicaNodes = [1, 2, 3]
            partition.isrNodes = [1, 2, 3]
            return partition
        }
        return topic
    }
    return response
}

/// A partition log in a fresh temp directory, removed on teardown.
final class LogFixture: @unchecked Sendable {
    var directory = ""
    var log: PartitionLog?
    var payload = ByteBuffer()
    var batches: [BatchInfo] = []
    let disk = PosixDisk()

    func open() throws {
        directory = NSTemporaryDirectory() + "runnel-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        payload = batch16K()
        guard case .success(let found) = RecordBatches.validate(payload, maxBatchBytes: 1 << 20) else {
            fatalError("the benchmark batch does not validate")
        }
        batches = found
        var config = LogConfig()
        config.segmentBytes = 256 << 20
        log = try PartitionLog(
            topicPartition: .init("bench", 0), directory: directory + "/bench-0", config: config,
            disk: disk, nowMs: 0)
    }

    func close() throws {
        try log?.close()
        log = nil
        try disk.removeTree(directory)
    }
}

// MARK: benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    // 1. CRC32C, hardware (SSE4.2) and portable (slicing-by-8) paths.
    for (label, size) in [("1 MiB", 1 << 20), ("16 KiB", 16 << 10)] {
        let bytes = fillerBytes(size)
        Benchmark("CRC32C hardware \(label)") { benchmark in
            bytes.withUnsafeBytes { raw in
                blackHole(runnel_crc32c(0, raw.baseAddress!, raw.count))
            }
        }
        Benchmark("CRC32C portable \(label)") { benchmark in
            bytes.withUnsafeBytes { raw in
                blackHole(runnel_crc32c_portable(0, raw.baseAddress!, raw.count))
            }
        }
    }

    // The measured paths must be the success paths: check each once, outside the measurements.
    let batch = batch16K()
    guard case .success(let found) = RecordBatches.validate(batch, maxBatchBytes: 1 << 20), found.count == 1 else {
        fatalError("the benchmark batch does not validate")
    }
    let produce = produceRequest(batch)
    precondition(try! ProduceRequest.decode(produce.encoded(version: 9), version: 9) == produce)
    let metadata = metadataResponse(topics: 100, partitions: 3)
    precondition(try! MetadataResponse.decode(metadata.encoded(version: 12), version: 12) == metadata)

    // 2. Produce-path validation of one 16 KiB batch (header checks + CRC32C, no decompression).
    Benchmark("RecordBatches.validate 16 KiB batch") { benchmark in
        blackHole(RecordBatches.validate(batch, maxBatchBytes: 1 << 20))
    }

    // 3. Wire codec round trips.
    Benchmark("ProduceRequest v9 encode+decode 16 KiB batch") { benchmark in
        let bytes = produce.encoded(version: 9)
        blackHole(try! ProduceRequest.decode(bytes, version: 9))
    }
    Benchmark("MetadataResponse v12 encode+decode 100x3") { benchmark in
        let bytes = metadata.encoded(version: 12)
        blackHole(try! MetadataResponse.decode(bytes, version: 12))
    }

    // 4. Leader append of one 16 KiB batch into a real segment (page cache, no fsync). Capped at
    // 20,000 appends (about 330 MB on disk, removed on teardown).
    let fixture = LogFixture()
    Benchmark(
        "PartitionLog.appendAsLeader 16 KiB batch",
        configuration: .init(maxIterations: 20_000)
    ) { benchmark in
        blackHole(try! fixture.log!.appendAsLeader(fixture.payload, batches: fixture.batches, leaderEpoch: 1, nowMs: 0))
    } setup: {
        try fixture.open()
    } teardown: {
        try fixture.close()
    }
}
