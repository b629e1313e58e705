import NIOCore
import RunnelCore
import RunnelRaft
import RunnelWire

/// Maps the core's Raft messages to Kafka's Vote, BeginQuorumEpoch, EndQuorumEpoch and Fetch on
/// `__cluster_metadata` and back, so controllers speak Kafka's own protocol to each other.
public enum RaftWire {
    public static let topicName = "__cluster_metadata"
    public static let voteVersion: Int16 = 2
    public static let beginEpochVersion: Int16 = 1
    public static let endEpochVersion: Int16 = 1
    public static let fetchVersion: Int16 = 17

    static func error(_ code: Int16) -> RaftError {
        RaftError(rawValue: code) ?? (code == 0 ? .none : .notLeaderOrFollower)
    }

    // MARK: Vote

    public static func request(
        _ r: RunnelRaft.VoteRequest, clusterId: String, to voter: NodeID
    ) -> RunnelWire.VoteRequest {
        var out = RunnelWire.VoteRequest()
        out.clusterId = clusterId
        out.voterId = voter.rawValue
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [
                    .init(
                        partitionIndex: 0, candidateEpoch: r.epoch, candidateId: r.candidateId.rawValue,
                        lastOffsetEpoch: r.lastOffsetEpoch, lastOffset: r.lastOffset, preVote: r.preVote)
                ])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.VoteRequest) -> RunnelRaft.VoteRequest? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        return RunnelRaft.VoteRequest(
            epoch: p.candidateEpoch, candidateId: NodeID(p.candidateId), lastOffsetEpoch: p.lastOffsetEpoch,
            lastOffset: p.lastOffset, preVote: p.preVote)
    }

    public static func response(_ r: RunnelRaft.VoteResponse) -> RunnelWire.VoteResponse {
        var out = RunnelWire.VoteResponse()
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [
                    .init(
                        partitionIndex: 0, errorCode: r.error.rawValue, leaderId: r.leaderId, leaderEpoch: r.epoch,
                        voteGranted: r.granted)
                ])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.VoteResponse, preVote: Bool) -> RunnelRaft.VoteResponse? {
        guard r.errorCode == 0, let p = r.topics.first?.partitions.first else { return nil }
        return RunnelRaft.VoteResponse(
            error: error(p.errorCode), epoch: p.leaderEpoch, leaderId: p.leaderId, granted: p.voteGranted,
            preVote: preVote)
    }

    // MARK: BeginQuorumEpoch / EndQuorumEpoch

    public static func request(
        _ r: RunnelRaft.BeginQuorumEpochRequest, clusterId: String, to voter: NodeID
    ) -> RunnelWire.BeginQuorumEpochRequest {
        var out = RunnelWire.BeginQuorumEpochRequest()
        out.clusterId = clusterId
        out.voterId = voter.rawValue
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [.init(partitionIndex: 0, leaderId: r.leaderId.rawValue, leaderEpoch: r.epoch)])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.BeginQuorumEpochRequest) -> RunnelRaft.BeginQuorumEpochRequest? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        return RunnelRaft.BeginQuorumEpochRequest(epoch: p.leaderEpoch, leaderId: NodeID(p.leaderId))
    }

    public static func beginResponse(_ r: EpochResponse) -> RunnelWire.BeginQuorumEpochResponse {
        var out = RunnelWire.BeginQuorumEpochResponse()
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [
                    .init(partitionIndex: 0, errorCode: r.error.rawValue, leaderId: r.leaderId, leaderEpoch: r.epoch)
                ])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.BeginQuorumEpochResponse) -> EpochResponse? {
        guard r.errorCode == 0, let p = r.topics.first?.partitions.first else { return nil }
        return EpochResponse(error: error(p.errorCode), epoch: p.leaderEpoch, leaderId: p.leaderId)
    }

    public static func request(
        _ r: RunnelRaft.EndQuorumEpochRequest, clusterId: String
    ) -> RunnelWire.EndQuorumEpochRequest {
        var out = RunnelWire.EndQuorumEpochRequest()
        out.clusterId = clusterId
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [
                    .init(
                        partitionIndex: 0, leaderId: r.leaderId.rawValue, leaderEpoch: r.epoch,
                        preferredCandidates: r.preferredSuccessors.map { .init(candidateId: $0.rawValue) })
                ])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.EndQuorumEpochRequest, version: Int16) -> RunnelRaft.EndQuorumEpochRequest?
    {
        guard let p = r.topics.first?.partitions.first else { return nil }
        let successors =
            version >= 1
            ? p.preferredCandidates.map { NodeID($0.candidateId) } : p.preferredSuccessors.map { NodeID($0) }
        return RunnelRaft.EndQuorumEpochRequest(
            epoch: p.leaderEpoch, leaderId: NodeID(p.leaderId), preferredSuccessors: successors)
    }

    public static func endResponse(_ r: EpochResponse) -> RunnelWire.EndQuorumEpochResponse {
        var out = RunnelWire.EndQuorumEpochResponse()
        out.topics = [
            .init(
                topicName: topicName,
                partitions: [
                    .init(partitionIndex: 0, errorCode: r.error.rawValue, leaderId: r.leaderId, leaderEpoch: r.epoch)
                ])
        ]
        return out
    }

    public static func core(_ r: RunnelWire.EndQuorumEpochResponse) -> EpochResponse? {
        guard r.errorCode == 0, let p = r.topics.first?.partitions.first else { return nil }
        return EpochResponse(error: error(p.errorCode), epoch: p.leaderEpoch, leaderId: p.leaderId)
    }

    // MARK: Fetch

    public static func request(
        _ r: RunnelRaft.FetchRequest, clusterId: String, maxBytes: Int32
    ) -> RunnelWire.FetchRequest {
        var out = RunnelWire.FetchRequest()
        out.clusterId = clusterId
        out.replicaId = r.replicaId.rawValue
        out.replicaState = .init(replicaId: r.replicaId.rawValue, replicaEpoch: -1)
        out.maxWaitMs = Int32(clamping: r.maxWaitMs)
        out.minBytes = 0
        out.maxBytes = maxBytes
        out.topics = [
            .init(
                topic: topicName, topicId: .metadataTopic,
                partitions: [
                    .init(
                        partition: 0, currentLeaderEpoch: r.epoch, fetchOffset: r.fetchOffset,
                        lastFetchedEpoch: r.lastFetchedEpoch,
                        logStartOffset: -1, partitionMaxBytes: maxBytes)
                ])
        ]
        return out
    }

    /// Whether a Fetch is for the metadata log (served by the quorum, not the broker).
    public static func isMetadataFetch(_ r: RunnelWire.FetchRequest, version: Int16) -> Bool {
        guard let t = r.topics.first else { return false }
        return version >= 13 ? t.topicId == .metadataTopic : t.topic == topicName
    }

    public static func core(_ r: RunnelWire.FetchRequest, version: Int16) -> RunnelRaft.FetchRequest? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        let replica = version >= 15 ? r.replicaState.replicaId : r.replicaId
        return RunnelRaft.FetchRequest(
            epoch: p.currentLeaderEpoch, replicaId: NodeID(replica), fetchOffset: p.fetchOffset,
            lastFetchedEpoch: p.lastFetchedEpoch, maxWaitMs: Int64(max(r.maxWaitMs, 0)))
    }

    public static func response(_ r: RunnelRaft.FetchResponse<MetadataPayload>) -> RunnelWire.FetchResponse {
        var p = RunnelWire.FetchResponse.PartitionData()
        p.partitionIndex = 0
        p.errorCode = r.error.rawValue
        p.highWatermark = r.highWatermark
        p.lastStableOffset = r.highWatermark
        p.logStartOffset = r.logStartOffset
        p.currentLeader = .init(leaderId: r.leaderId, leaderEpoch: r.epoch)
        if let d = r.divergingEpoch { p.divergingEpoch = .init(epoch: d.epoch.rawValue, endOffset: d.offset.rawValue) }
        if let s = r.snapshotId { p.snapshotId = .init(endOffset: s.endOffset, epoch: s.epoch) }
        p.abortedTransactions = nil
        var bytes = ByteBuffer()
        for batch in r.batches {
            if case .data(.batch(var b)) = batch.payload { bytes.writeBuffer(&b) }
        }
        p.records = Records(bytes)
        var out = RunnelWire.FetchResponse()
        out.responses = [.init(topic: topicName, topicId: .metadataTopic, partitions: [p])]
        return out
    }

    public static func core(_ r: RunnelWire.FetchResponse) -> RunnelRaft.FetchResponse<MetadataPayload>? {
        guard let p = r.responses.first?.partitions.first else { return nil }
        var out = RunnelRaft.FetchResponse<MetadataPayload>(
            error: error(r.errorCode != 0 ? r.errorCode : p.errorCode), epoch: p.currentLeader.leaderEpoch,
            leaderId: p.currentLeader.leaderId,
            highWatermark: p.highWatermark, logStartOffset: p.logStartOffset)
        if p.divergingEpoch.epoch >= 0 || p.divergingEpoch.endOffset >= 0 {
            out.divergingEpoch = OffsetAndEpoch(
                offset: Offset(p.divergingEpoch.endOffset), epoch: Epoch(p.divergingEpoch.epoch))
        }
        if p.snapshotId.endOffset >= 0 {
            out.snapshotId = SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch)
        }
        if let bytes = p.records?.bytes { out.batches = splitBatches(bytes) }
        return out
    }

    /// Splits a run of record batches into core batches (a trailing partial batch is dropped).
    public static func splitBatches(_ bytes: ByteBuffer) -> [RaftBatch<MetadataPayload>] {
        var out: [RaftBatch<MetadataPayload>] = []
        var index = bytes.readerIndex
        while let header = RecordBatchHeader(bytes, at: index), header.totalBytes <= bytes.writerIndex - index,
            header.lastOffsetDelta >= 0
        {
            out.append(
                RaftBatch(
                    baseOffset: header.baseOffset, recordCount: Int(header.lastOffsetDelta) + 1,
                    epoch: header.partitionLeaderEpoch,
                    payload: .data(.batch(bytes.getSlice(at: index, length: header.totalBytes)!))))
            index += header.totalBytes
        }
        return out
    }
}
