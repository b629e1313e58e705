import NIOCore
import RunnelCore
import RunnelGroups
import RunnelLog
import RunnelWire

/// The group coordinator's request handlers (Kafka's GroupCoordinator APIs): each checks that
/// this broker coordinates the group, runs the coordinator's command, and writes what must be
/// durable to `__consumer_offsets` before it answers. The broker routes the requests here (after
/// its authorizer's checks on the group, `GroupAccess` for those on topics and on several
/// groups); the group simulation calls these very handlers.
extension GroupHost {
    func respond<M: ResponseMessage>(_ message: M, version: Int16, context: RequestContext) -> RequestOutcome {
        .respondNow(OutgoingResponse(message, version: version, allocator: context.allocator))
    }

    // MARK: membership

    package func joinGroup(
        _ r: JoinGroupRequest, version: Int16, clientId: String, context: RequestContext
    ) -> RequestOutcome {
        if let code = check(r.groupId) {
            return respond(
                JoinGroupResponse(
                    errorCode: code.rawValue, generationId: -1, protocolName: version >= 7 ? nil : "", leader: "",
                    memberId: r.memberId),
                version: version, context: context)
        }
        let host = context.remoteAddress?.ipAddress.map { "/" + $0 } ?? ""
        let newId = newMemberId(r.groupInstanceId ?? clientId)
        return .respond(
            park(version: version, context: context) { c, token, now in
                c.join(
                    r, version: version, clientId: clientId, clientHost: host, token: token, newMemberId: newId,
                    nowMs: now)
            })
    }

    package func syncGroup(_ r: SyncGroupRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        if let code = check(r.groupId) {
            return respond(SyncGroupResponse(errorCode: code.rawValue), version: version, context: context)
        }
        return .respond(
            park(version: version, context: context) { c, token, now in
                c.sync(r, version: version, token: token, nowMs: now)
            })
    }

    package func heartbeat(_ r: HeartbeatRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let code = check(r.groupId) ?? run { c, now in (c.heartbeat(r, nowMs: now), []) }
        return respond(HeartbeatResponse(errorCode: code.rawValue), version: version, context: context)
    }

    package func leaveGroup(_ r: LeaveGroupRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let leaving: [(memberId: String, instanceId: String?)] =
            version >= 3 ? r.members.map { ($0.memberId, $0.groupInstanceId) } : [(r.memberId, nil)]
        var response = LeaveGroupResponse()
        if let code = check(r.groupId) {
            response.errorCode = code.rawValue
            return respond(response, version: version, context: context)
        }
        let errors = run { c, now in c.leave(groupId: r.groupId, members: leaving, nowMs: now) }
        if version >= 3 {
            response.members = zip(leaving, errors).map {
                .init(memberId: $0.memberId, groupInstanceId: $0.instanceId, errorCode: $1.rawValue)
            }
        } else {
            response.errorCode = errors.first?.rawValue ?? 0
        }
        return respond(response, version: version, context: context)
    }

    // MARK: offsets

    /// `refused`: partitions the caller answers itself (unknown partitions), not written.
    package func offsetCommit(
        _ r: OffsetCommitRequest, version: Int16, context: RequestContext, access: GroupAccess = .all,
        refused: [TopicPartition: ErrorCode] = [:]
    ) -> RequestOutcome {
        var response = OffsetCommitResponse()
        response.topics = r.topics.map { t in
            .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: 0) })
        }
        if !access.group(r.groupId) {
            return respond(
                OffsetCommitResponse(
                    topics: response.topics.map { t in
                        .init(
                            name: t.name,
                            partitions: t.partitions.map {
                                .init(
                                    partitionIndex: $0.partitionIndex,
                                    errorCode: ErrorCode.groupAuthorizationFailed.rawValue)
                            })
                    }), version: version, context: context)
        }
        func all(_ code: ErrorCode) -> RequestOutcome {
            for t in response.topics.indices {
                for p in response.topics[t].partitions.indices {
                    response.topics[t].partitions[p].errorCode = code.rawValue
                }
            }
            return respond(response, version: version, context: context)
        }
        if let code = check(r.groupId) { return all(code) }
        let generation = version >= 1 ? r.generationIdOrMemberEpoch : -1
        if let code = read({
            $0.checkCommit(
                groupId: r.groupId, generationId: generation, memberId: r.memberId, instanceId: r.groupInstanceId)
        }) {
            return all(code)
        }
        let now = clock.wallMs()
        let metadataMax = read { $0.settings.offsetMetadataMaxBytes }
        var committed: [(TopicPartition, CommittedOffset)] = []
        for (ti, t) in r.topics.enumerated() {
            let topicAllowed = access.topic(t.name)
            for (pi, p) in t.partitions.enumerated() {
                if !topicAllowed {
                    response.topics[ti].partitions[pi].errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    continue
                }
                if let code = refused[TopicPartition(t.name, p.partitionIndex)] {
                    response.topics[ti].partitions[pi].errorCode = code.rawValue
                    continue
                }
                if (p.committedMetadata?.utf8.count ?? 0) > metadataMax {
                    response.topics[ti].partitions[pi].errorCode = ErrorCode.offsetMetadataTooLarge.rawValue
                    continue
                }
                let timestamp = version == 1 && p.commitTimestamp >= 0 ? p.commitTimestamp : now
                committed.append(
                    (
                        TopicPartition(t.name, p.partitionIndex),
                        CommittedOffset(
                            offset: p.committedOffset, leaderEpoch: version >= 6 ? p.committedLeaderEpoch : -1,
                            metadata: p.committedMetadata ?? "", commitTimestampMs: timestamp)
                    ))
            }
        }
        if committed.isEmpty { return respond(response, version: version, context: context) }
        let toCommit = committed
        let answer = response
        let records = toCommit.map {
            (OffsetsTopic.Key.offset(group: r.groupId, $0.0), Optional(OffsetsTopic.encode($0.1)))
        }
        let allocator = context.allocator
        let partitions = toCommit.map(\.0)
        run { c, _ in (c.commitStarted(groupId: r.groupId, partitions), []) }
        let written = append(records, groupId: r.groupId, on: context.eventLoop)
        if faults.ackCommitBeforeWrite {
            written.whenSuccess { [self] at in
                run { c, now in
                    (
                        c.offsetsCommitted(
                            groupId: r.groupId, memberId: r.memberId, toCommit, appendedBatchOffset: at, nowMs: now), []
                    )
                }
            }
            return respond(answer, version: version, context: context)
        }
        let future = written.map { [self] at -> OutgoingResponse in
            run { c, now in
                (
                    c.offsetsCommitted(
                        groupId: r.groupId, memberId: r.memberId, toCommit, appendedBatchOffset: at, nowMs: now), []
                )
            }
            return OutgoingResponse(answer, version: version, allocator: allocator)
        }.flatMapErrorThrowing { [self] error -> OutgoingResponse in
            run { c, _ in (c.commitFailed(groupId: r.groupId, partitions), []) }
            let code = (error as? GroupWriteError)?.code ?? .unknownServerError
            let done = Set(toCommit.map(\.0))
            var failed = answer
            for t in failed.topics.indices {
                for p in failed.topics[t].partitions.indices
                where done.contains(
                    TopicPartition(failed.topics[t].name, failed.topics[t].partitions[p].partitionIndex))
                {
                    failed.topics[t].partitions[p].errorCode = code.rawValue
                }
            }
            return OutgoingResponse(failed, version: version, allocator: allocator)
        }
        return .respond(future)
    }

    /// TxnOffsetCommit (Kafka's GroupCoordinator.handleTxnCommitOffsets): the offsets a
    /// transactional producer commits for a group, written to the group's `__consumer_offsets`
    /// partition as one transactional batch of the request's producer id and epoch (acks=all) and
    /// answered once replicated. They stay pending in the producer's transaction (OffsetFetch does
    /// not return them; with `requireStable` it answers UNSTABLE_OFFSET_COMMIT) until the broker
    /// reports its marker with `transactionCompleted`. The caller has authorized the request;
    /// `refused` are partitions it answers itself (not authorized, unknown), not written;
    /// `verification` is the guard the broker took before the transaction coordinator confirmed
    /// the group's partition is in the transaction (KIP-890): a marker written since refuses the
    /// write with INVALID_TXN_STATE rather than opening a transaction nobody would end.
    package func txnOffsetCommit(
        _ r: TxnOffsetCommitRequest, version: Int16, context: RequestContext,
        refused: [TopicPartition: ErrorCode] = [:],
        verification: ProducerStateTable.Verification = .notRequired
    ) -> RequestOutcome {
        var response = TxnOffsetCommitResponse()
        response.topics = r.topics.map { t in
            .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: 0) })
        }
        func all(_ code: ErrorCode) -> RequestOutcome {
            for t in response.topics.indices {
                for p in response.topics[t].partitions.indices {
                    response.topics[t].partitions[p].errorCode = code.rawValue
                }
            }
            return respond(response, version: version, context: context)
        }
        guard !r.groupId.isEmpty else { return all(.invalidGroupId) }
        if let code = check(r.groupId) { return all(code) }
        let generation = version >= 3 ? r.generationId : -1
        let memberId = version >= 3 ? r.memberId : ""
        let instanceId = version >= 3 ? r.groupInstanceId : nil
        if let code = read({
            $0.checkTransactionalCommit(
                groupId: r.groupId, generationId: generation, memberId: memberId, instanceId: instanceId)
        }) {
            return all(code)
        }
        let now = clock.wallMs()
        let metadataMax = read { $0.settings.offsetMetadataMaxBytes }
        var committed: [(TopicPartition, CommittedOffset)] = []
        for (ti, t) in r.topics.enumerated() {
            for (pi, p) in t.partitions.enumerated() {
                if let code = refused[TopicPartition(t.name, p.partitionIndex)] {
                    response.topics[ti].partitions[pi].errorCode = code.rawValue
                    continue
                }
                if (p.committedMetadata?.utf8.count ?? 0) > metadataMax {
                    response.topics[ti].partitions[pi].errorCode = ErrorCode.offsetMetadataTooLarge.rawValue
                    continue
                }
                committed.append(
                    (
                        TopicPartition(t.name, p.partitionIndex),
                        CommittedOffset(
                            offset: p.committedOffset, leaderEpoch: version >= 2 ? p.committedLeaderEpoch : -1,
                            metadata: p.committedMetadata ?? "", commitTimestampMs: now)
                    ))
            }
        }
        if committed.isEmpty { return respond(response, version: version, context: context) }
        let toCommit = committed
        let answer = response
        let allocator = context.allocator
        let partitions = toCommit.map(\.0)
        let records = toCommit.map {
            (OffsetsTopic.Key.offset(group: r.groupId, $0.0), Optional(OffsetsTopic.encode($0.1)))
        }
        run { c, _ in (c.commitStarted(groupId: r.groupId, partitions), []) }
        let future = append(
            records, groupId: r.groupId, producer: (r.producerId, r.producerEpoch), verification: verification,
            on: context.eventLoop
        ).map { [self] at -> OutgoingResponse in
            runIfCoordinating(r.groupId) {
                $0.transactionalOffsetsWritten(
                    groupId: r.groupId, producerId: r.producerId, toCommit, appendedBatchOffset: at)
            }
            return OutgoingResponse(answer, version: version, allocator: allocator)
        }.flatMapErrorThrowing { [self] error -> OutgoingResponse in
            run { c, _ in (c.commitFailed(groupId: r.groupId, partitions), []) }
            let code = (error as? GroupWriteError)?.code ?? .unknownServerError
            let written = Set(partitions)
            var failed = answer
            for t in failed.topics.indices {
                for p in failed.topics[t].partitions.indices
                where written.contains(
                    TopicPartition(failed.topics[t].name, failed.topics[t].partitions[p].partitionIndex))
                {
                    failed.topics[t].partitions[p].errorCode = code.rawValue
                }
            }
            return OutgoingResponse(failed, version: version, allocator: allocator)
        }
        return .respond(future)
    }

    package func offsetFetch(
        _ r: OffsetFetchRequest, version: Int16, context: RequestContext, access: GroupAccess = .all
    ) -> RequestOutcome {
        var response = OffsetFetchResponse()
        if version >= 8 {
            response.groups = r.groups.map { g in
                let (code, topics) = fetchOffsets(
                    g.groupId, g.topics.map { $0.map { ($0.name, $0.partitionIndexes) } },
                    requireStable: r.requireStable, access: access)
                return .init(
                    groupId: g.groupId,
                    topics: topics.map { t in
                        .init(
                            name: t.name,
                            partitions: t.partitions.map {
                                .init(
                                    partitionIndex: $0.partitionIndex, committedOffset: $0.committedOffset,
                                    committedLeaderEpoch: $0.committedLeaderEpoch,
                                    metadata: $0.metadata, errorCode: $0.errorCode)
                            })
                    }, errorCode: code.rawValue)
            }
        } else {
            let (code, topics) = fetchOffsets(
                r.groupId, r.topics.map { $0.map { ($0.name, $0.partitionIndexes) } },
                requireStable: version >= 7 && r.requireStable,
                access: access)
            response.topics = topics
            if version >= 2 {
                response.errorCode = code.rawValue
            } else if code != .none {
                for t in response.topics.indices {
                    for p in response.topics[t].partitions.indices {
                        response.topics[t].partitions[p].errorCode = code.rawValue
                    }
                }
            }
        }
        return respond(response, version: version, context: context)
    }

    /// Committed offsets of `groupId` for `topics` (nil: all it has); -1 for partitions without one.
    /// With `requireStable`, a partition whose commit is still being written, or whose offset an
    /// open transaction holds, answers UNSTABLE_OFFSET_COMMIT (the client retries) rather than the
    /// offset about to be replaced.
    /// Without DESCRIBE on the group: GROUP_AUTHORIZATION_FAILED; topics the principal may not
    /// DESCRIBE answer TOPIC_AUTHORIZATION_FAILED when named, and are left out of "all".
    private func fetchOffsets(
        _ groupId: String, _ topics: [(String, [Int32])]?, requireStable: Bool,
        access: GroupAccess
    ) -> (ErrorCode, [OffsetFetchResponse.OffsetFetchResponseTopic]) {
        if !access.group(groupId) {
            let code = ErrorCode.groupAuthorizationFailed
            return (
                code,
                (topics ?? []).map { t in
                    .init(
                        name: t.0,
                        partitions: t.1.map {
                            .init(
                                partitionIndex: $0, committedOffset: -1, committedLeaderEpoch: -1, metadata: "",
                                errorCode: code.rawValue)
                        })
                }
            )
        }
        if let code = check(groupId) {
            return (
                code,
                (topics ?? []).map { t in
                    .init(
                        name: t.0,
                        partitions: t.1.map {
                            .init(
                                partitionIndex: $0, committedOffset: -1, committedLeaderEpoch: -1, metadata: "",
                                errorCode: code.rawValue)
                        })
                }
            )
        }
        let (offsets, pending): ([TopicPartition: CommittedOffset], Set<TopicPartition>) = read { c in
            let offsets = c.group(groupId)?.offsets ?? [:]
            guard requireStable else { return (offsets, []) }
            let asked = topics.map { $0.flatMap { t in t.1.map { TopicPartition(t.0, $0) } } } ?? Array(offsets.keys)
            return (offsets, Set(asked.filter { c.hasPendingCommit(groupId: groupId, $0) }))
        }
        func answer(_ tp: TopicPartition, _ o: CommittedOffset?) -> OffsetFetchResponse.OffsetFetchResponsePartition {
            if pending.contains(tp) {
                return .init(
                    partitionIndex: tp.partition, committedOffset: -1, committedLeaderEpoch: -1, metadata: "",
                    errorCode: ErrorCode.unstableOffsetCommit.rawValue)
            }
            return .init(
                partitionIndex: tp.partition, committedOffset: o?.offset ?? -1,
                committedLeaderEpoch: o?.leaderEpoch ?? -1,
                metadata: o?.metadata ?? "", errorCode: 0)
        }
        if let topics {
            return (
                .none,
                topics.map { t in
                    let allowed = access.describeTopic(t.0)
                    return .init(
                        name: t.0,
                        partitions: t.1.map {
                            allowed
                                ? answer(TopicPartition(t.0, $0), offsets[TopicPartition(t.0, $0)])
                                : .init(
                                    partitionIndex: $0, committedOffset: -1, committedLeaderEpoch: -1, metadata: "",
                                    errorCode: ErrorCode.topicAuthorizationFailed.rawValue)
                        })
                }
            )
        }
        var byTopic: [String: [OffsetFetchResponse.OffsetFetchResponsePartition]] = [:]
        for tp in offsets.keys.sorted() where access.describeTopic(tp.topic) {
            byTopic[tp.topic, default: []].append(answer(tp, offsets[tp]))
        }
        return (.none, byTopic.keys.sorted().map { .init(name: $0, partitions: byTopic[$0]!) })
    }

    package func offsetDelete(
        _ r: OffsetDeleteRequest, version: Int16, context: RequestContext, access: GroupAccess = .all
    ) -> RequestOutcome {
        var response = OffsetDeleteResponse()
        response.topics = r.topics.map { t in
            .init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: 0) })
        }
        if !access.group(r.groupId) {
            response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            return respond(response, version: version, context: context)
        }
        if let code = check(r.groupId) {
            response.errorCode = code.rawValue
            return respond(response, version: version, context: context)
        }
        guard let group = read({ $0.group(r.groupId) }) else {
            response.errorCode = ErrorCode.groupIdNotFound.rawValue
            return respond(response, version: version, context: context)
        }
        let subscribed = group.state == .empty ? [] : (group.subscribedTopics ?? [])
        var deleting: [TopicPartition] = []
        for (ti, t) in r.topics.enumerated() {
            for (pi, p) in t.partitions.enumerated() {
                if !access.topic(t.name) {
                    response.topics[ti].partitions[pi].errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                } else if subscribed.contains(t.name) {
                    response.topics[ti].partitions[pi].errorCode = ErrorCode.groupSubscribedToTopic.rawValue
                } else if group.offsets[TopicPartition(t.name, p.partitionIndex)] != nil {
                    deleting.append(TopicPartition(t.name, p.partitionIndex))
                }
            }
        }
        if deleting.isEmpty { return respond(response, version: version, context: context) }
        let toDelete = deleting
        let answer = response
        let allocator = context.allocator
        let future = append(
            toDelete.map { (OffsetsTopic.Key.offset(group: r.groupId, $0), ByteBuffer?.none) }, groupId: r.groupId,
            on: context.eventLoop
        )
        .map { [self] _ -> OutgoingResponse in
            run { c, _ in (c.offsetsDeleted(groupId: r.groupId, toDelete), []) }
            return OutgoingResponse(answer, version: version, allocator: allocator)
        }.flatMapErrorThrowing { error -> OutgoingResponse in
            var failed = answer
            failed.errorCode = ((error as? GroupWriteError)?.code ?? .unknownServerError).rawValue
            return OutgoingResponse(failed, version: version, allocator: allocator)
        }
        return .respond(future)
    }

    // MARK: administration

    package func listGroups(
        _ r: ListGroupsRequest, version: Int16, context: RequestContext, access: GroupAccess = .all
    ) -> RequestOutcome {
        let states = Set(r.statesFilter.map { $0.lowercased() })
        let types = Set(r.typesFilter.map { $0.lowercased() })
        var response = ListGroupsResponse()
        let all = read { c in Array(c.groups.values) }.filter { owns($0.groupId) && access.group($0.groupId) }
        response.groups = all.sorted { $0.groupId < $1.groupId }.filter { g in
            (states.isEmpty || states.contains(g.state.rawValue.lowercased()))
                && (types.isEmpty || types.contains("classic"))
        }.map {
            .init(
                groupId: $0.groupId, protocolType: $0.protocolType ?? "", groupState: $0.state.rawValue,
                groupType: "classic")
        }
        return respond(response, version: version, context: context)
    }

    package func describeGroups(
        _ r: DescribeGroupsRequest, version: Int16, context: RequestContext, access: GroupAccess = .all
    ) -> RequestOutcome {
        var response = DescribeGroupsResponse()
        response.groups = r.groups.map { id in
            var out = DescribeGroupsResponse.DescribedGroup(
                errorCode: 0, groupId: id, groupState: GroupState.dead.rawValue, protocolType: "", protocolData: "")
            if !access.group(id) {
                out.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
                return out
            }
            if version >= 3 && r.includeAuthorizedOperations { out.authorizedOperations = access.groupOperations(id) }
            if let code = check(id) {
                out.errorCode = code.rawValue
                return out
            }
            guard let g = read({ $0.group(id) }) else { return out }
            out.groupState = g.state.rawValue
            out.protocolType = g.protocolType ?? ""
            out.protocolData = g.state == .stable || g.state == .completingRebalance ? g.protocolName ?? "" : ""
            out.members = g.members.map { m in
                .init(
                    memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                    clientHost: m.clientHost,
                    memberMetadata: g.protocolName.flatMap { m.metadata(for: $0) } ?? ByteBuffer(),
                    memberAssignment: g.state == .stable ? m.assignment : ByteBuffer())
            }
            return out
        }
        return respond(response, version: version, context: context)
    }

    package func deleteGroups(
        _ r: DeleteGroupsRequest, version: Int16, context: RequestContext, access: GroupAccess = .all
    ) -> RequestOutcome {
        let allocator = context.allocator
        var futures: [EventLoopFuture<DeleteGroupsResponse.DeletableGroupResult>] = []
        for id in r.groupsNames {
            if let code = access.group(id) ? check(id) : .groupAuthorizationFailed {
                futures.append(context.eventLoop.makeSucceededFuture(.init(groupId: id, errorCode: code.rawValue)))
                continue
            }
            let offsets = read { $0.group(id)?.offsets.keys.sorted() ?? [] }
            let code = run { c, _ in (c.deleteGroup(id), []) }
            guard code == .none else {
                futures.append(context.eventLoop.makeSucceededFuture(.init(groupId: id, errorCode: code.rawValue)))
                continue
            }
            let tombstones: [(OffsetsTopic.Key, ByteBuffer?)] =
                offsets.map { (.offset(group: id, $0), nil) } + [(.group(id), nil)]
            futures.append(
                append(tombstones, groupId: id, on: context.eventLoop)
                    .map { _ in .init(groupId: id, errorCode: 0) }
                    .recover {
                        .init(groupId: id, errorCode: (($0 as? GroupWriteError)?.code ?? .unknownServerError).rawValue)
                    })
        }
        let future = EventLoopFuture.whenAllSucceed(futures, on: context.eventLoop).map { results in
            OutgoingResponse(DeleteGroupsResponse(results: results), version: version, allocator: allocator)
        }
        return .respond(future)
    }
}

/// What the authorizer lets a group request touch, decided by the broker for the request's
/// principal: the group (for the operation the request needs), topics (READ for commits and
/// deletes) and topics to describe (for OffsetFetch), and a group's operations bit field
/// (DescribeGroups). `all` allows everything, as without an authorizer.
package struct GroupAccess: Sendable {
    package var group: @Sendable (String) -> Bool
    package var topic: @Sendable (String) -> Bool
    package var describeTopic: @Sendable (String) -> Bool
    package var groupOperations: @Sendable (String) -> Int32

    package init(
        group: @escaping @Sendable (String) -> Bool, topic: @escaping @Sendable (String) -> Bool,
        describeTopic: @escaping @Sendable (String) -> Bool, groupOperations: @escaping @Sendable (String) -> Int32
    ) {
        self.group = group
        self.topic = topic
        self.describeTopic = describeTopic
        self.groupOperations = groupOperations
    }

    /// Every operation of a group: READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
    package static let allGroupOperations: Int32 = (1 << 3) | (1 << 8) | (1 << 6) | (1 << 10) | (1 << 11)

    package static let all = GroupAccess(
        group: { _ in true }, topic: { _ in true }, describeTopic: { _ in true },
        groupOperations: { _ in allGroupOperations })
}
