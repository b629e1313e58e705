import RunnelCore
import RunnelMetadata
import RunnelWire

/// The replica sets of a partition reassignment (KIP-455), as Kafka's PartitionReassignmentReplicas
/// computes them: during the move the partition's replicas are the target followed by the current
/// replicas not in it; `adding` are target replicas the partition did not have, `removing` current
/// replicas the target drops.
public struct PartitionReassignment: Sendable, Equatable {
    public var replicas: [Int32]
    public var adding: [Int32]
    public var removing: [Int32]

    public init(current: [Int32], target: [Int32]) {
        replicas = target + current.filter { !target.contains($0) }
        adding = target.filter { !current.contains($0) }
        removing = current.filter { !target.contains($0) }
        precondition(Set(adding).isDisjoint(with: removing), "adding \(adding) and removing \(removing) are disjoint")
    }

    /// The replicas the partition ends with: all of them but those being removed.
    public static func target(of p: PartitionRegistration) -> [Int32] {
        p.replicas.filter { !p.removingReplicas.contains($0) }
    }

    /// The replicas the partition started the move with: all of them but those being added.
    public static func original(of p: PartitionRegistration) -> [Int32] {
        p.replicas.filter { !p.addingReplicas.contains($0) }
    }
}

extension PartitionRegistration {
    /// Whether a reassignment (KIP-455) is in progress.
    public var isReassigning: Bool { !addingReplicas.isEmpty || !removingReplicas.isEmpty }
}

extension QuorumController {
    // MARK: AlterPartitionReassignments

    /// AlterPartitionReassignments (KIP-455). A partition with a target replica set gets the union
    /// of target and current replicas, the target's new brokers as `addingReplicas` and the
    /// dropped ones as `removingReplicas`; the move completes (in `partitionChange`) once the ISR
    /// holds every target replica, at once when it already does. Null replicas cancel the move in
    /// progress: the partition returns to the replicas it had before it.
    public func alterPartitionReassignments(
        _ request: AlterPartitionReassignmentsRequest
    ) -> ControllerResult<AlterPartitionReassignmentsResponse> {
        let live = liveBrokerIds(image)
        var records: [MetadataRecord] = []
        var response = AlterPartitionReassignmentsResponse()
        response.errorMessage = nil
        var seen = Set<TopicPartition>()
        for topicRequest in request.topics {
            var topicResponse = AlterPartitionReassignmentsResponse.ReassignableTopicResponse(name: topicRequest.name)
            for partitionRequest in topicRequest.partitions {
                var out = AlterPartitionReassignmentsResponse.ReassignablePartitionResponse(
                    partitionIndex: partitionRequest.partitionIndex, errorCode: 0, errorMessage: nil)
                defer { topicResponse.partitions.append(out) }
                let tp = TopicPartition(topicRequest.name, partitionRequest.partitionIndex)
                guard seen.insert(tp).inserted else {
                    out.errorCode = ErrorCode.invalidRequest.rawValue
                    out.errorMessage = "The partition \(tp) appears more than once in the request."
                    continue
                }
                guard let topic = image.topic(named: topicRequest.name),
                    let current = topic.partitions[partitionRequest.partitionIndex]
                else {
                    out.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    out.errorMessage = "Unable to find partition \(tp)."
                    continue
                }
                let outcome: Result<PartitionChangeRecord?, PartitionRefusal>
                if let target = partitionRequest.replicas {
                    outcome = startReassignment(current, target: target, live: live).map { $0 }
                } else {
                    outcome = Self.cancelReassignment(current, live: live)
                }
                switch outcome {
                case .failure(let refusal):
                    out.errorCode = refusal.code.rawValue
                    out.errorMessage = refusal.message
                case .success(var change):
                    change?.partitionId = partitionRequest.partitionIndex
                    change?.topicId = topic.id
                    if let change { records.append(.partitionChange(change)) }
                }
            }
            response.responses.append(topicResponse)
        }
        return ControllerResult(records: records, response: response)
    }

    /// The change that starts (or redirects) a move of `current` to `target`, or nil when the
    /// partition already has exactly that assignment and no move is in progress.
    func startReassignment(
        _ current: PartitionRegistration, target: [Int32], live: Set<Int32>
    ) -> Result<PartitionChangeRecord?, PartitionRefusal> {
        if let problem = validateAssignment([target], replicationFactor: nil) {
            return .failure(PartitionRefusal(.invalidReplicaAssignment, problem))
        }
        let reassignment = PartitionReassignment(current: current.replicas, target: target)
        return .success(
            Self.partitionChange(
                current, replicas: reassignment.replicas, isr: current.isr, adding: reassignment.adding,
                removing: reassignment.removing, live: live))
    }

    /// The change that cancels the move in progress: the partition returns to its original
    /// replicas and the ISR keeps only those. NO_REASSIGNMENT_IN_PROGRESS when there is none.
    static func cancelReassignment(
        _ current: PartitionRegistration, live: Set<Int32>
    ) -> Result<PartitionChangeRecord?, PartitionRefusal> {
        guard current.isReassigning else {
            return .failure(
                PartitionRefusal(.noReassignmentInProgress, "No reassignment is in progress for this partition."))
        }
        let original = PartitionReassignment.original(of: current)
        let isr = current.isr.filter { original.contains($0) }
        guard !isr.isEmpty else {
            return .failure(
                PartitionRefusal(
                    .invalidReplicaAssignment,
                    "Unable to revert the partition assignment: no replica of the original set \(original) is in the ISR \(current.isr)."
                ))
        }
        return .success(partitionChange(current, replicas: original, isr: isr, adding: [], removing: [], live: live))
    }

    /// A partition change as Kafka's PartitionChangeBuilder makes it: the wanted replicas, ISR and
    /// reassignment sets; then a reassignment whose target the ISR now covers completes (replicas
    /// become the target, the ISR keeps only target replicas); a leader that is no longer in the
    /// ISR hands over to the first live replica in the ISR; and a change that drops replicas bumps
    /// the leader epoch so that the dropped ones are fenced. Nil when nothing changes.
    public static func partitionChange(
        _ current: PartitionRegistration, replicas wantedReplicas: [Int32], isr wantedIsr: [Int32],
        adding wantedAdding: [Int32], removing wantedRemoving: [Int32], live: Set<Int32>
    ) -> PartitionChangeRecord? {
        var replicas = wantedReplicas
        var isr = wantedIsr
        var adding = wantedAdding
        var removing = wantedRemoving
        if !adding.isEmpty || !removing.isEmpty {
            let target = replicas.filter { !removing.contains($0) }
            let targetIsr = isr.filter { !removing.contains($0) }
            if target.allSatisfy({ isr.contains($0) }) && !targetIsr.isEmpty {
                replicas = target
                isr = targetIsr
                adding = []
                removing = []
            }
        }
        var leader = current.leader
        if leader < 0 || !isr.contains(leader) || !replicas.contains(leader) {
            leader = replicas.first { isr.contains($0) && live.contains($0) } ?? PartitionChange.noLeader
        }
        var wanted = current
        (wanted.replicas, wanted.isr, wanted.addingReplicas, wanted.removingReplicas) = (
            replicas, isr, adding, removing
        )
        wanted.leader = leader
        // Replicas leave: a new leader epoch fences them (Kafka bumps it the same way).
        let leaving = !current.replicas.allSatisfy { replicas.contains($0) }
        guard let change = current.change(to: wanted, partitionId: -1, topicId: .zero, newLeaderEpoch: leaving)
        else { return nil }
        let next = current.merging(change)
        checkInvariants(next)
        return change
    }

    /// The relations every partition registration keeps (KIP-455's among them).
    static func checkInvariants(_ p: PartitionRegistration) {
        precondition(p.isr.allSatisfy { p.replicas.contains($0) }, "ISR \(p.isr) within replicas \(p.replicas)")
        precondition(p.leader < 0 || p.isr.contains(p.leader), "leader \(p.leader) in ISR \(p.isr)")
        precondition(
            Set(p.addingReplicas).isDisjoint(with: p.removingReplicas),
            "adding \(p.addingReplicas) and removing \(p.removingReplicas) are disjoint")
        precondition(
            p.addingReplicas.allSatisfy { p.replicas.contains($0) }
                && p.removingReplicas.allSatisfy { p.replicas.contains($0) },
            "adding \(p.addingReplicas) and removing \(p.removingReplicas) within replicas \(p.replicas)")
        precondition(Set(p.replicas).count == p.replicas.count, "replicas \(p.replicas) are distinct")
    }

    // MARK: ListPartitionReassignments

    /// ListPartitionReassignments (KIP-455): the moves in progress, of every partition or of the
    /// ones asked for (partitions that do not exist or do not move are left out, as Kafka does).
    public func listPartitionReassignments(
        _ request: ListPartitionReassignmentsRequest
    ) -> ControllerResult<ListPartitionReassignmentsResponse> {
        var response = ListPartitionReassignmentsResponse()
        response.errorMessage = nil
        var wanted: [(String, [Int32])] = []
        if let asked = request.topics {
            wanted = asked.map { ($0.name, $0.partitionIndexes) }
        } else {
            wanted = image.topicNames.sorted().compactMap { name in
                image.topic(named: name).map { (name, $0.partitions.keys.sorted()) }
            }
        }
        for (name, indexes) in wanted {
            guard let topic = image.topic(named: name) else { continue }
            var out = ListPartitionReassignmentsResponse.OngoingTopicReassignment(name: name)
            for index in indexes {
                guard let p = topic.partitions[index], p.isReassigning else { continue }
                out.partitions.append(
                    .init(
                        partitionIndex: index, replicas: p.replicas, addingReplicas: p.addingReplicas,
                        removingReplicas: p.removingReplicas))
            }
            if !out.partitions.isEmpty { response.topics.append(out) }
        }
        return ControllerResult(records: [], response: response)
    }
}
