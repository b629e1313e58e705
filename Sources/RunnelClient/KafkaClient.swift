import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RunnelCore
import RunnelNetwork
import RunnelWire

/// A broker address, `host:port`.
public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses a comma-separated `host:port[,host:port...]` list (IPv6 hosts in brackets).
    public static func parseList(_ text: String) throws -> [BrokerAddress] {
        var list: [BrokerAddress] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = entry.trimmingCharacters(in: .whitespaces)
            guard let colon = item.lastIndex(of: ":"), let port = Int(item[item.index(after: colon)...]),
                (1...65535).contains(port)
            else {
                throw ClientError("\"\(item)\" is not a host:port address")
            }
            var host = String(item[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw ClientError("\"\(item)\" has no host") }
            list.append(BrokerAddress(host: host, port: port))
        }
        guard !list.isEmpty else { throw ClientError("no bootstrap server was given") }
        return list
    }
}

/// A broker as Metadata or DescribeCluster report it.
public struct BrokerInfo: Sendable, Equatable, Codable {
    public var id: Int32
    public var host: String
    public var port: Int32
    public var rack: String?
    public var address: BrokerAddress { BrokerAddress(host: host, port: Int(port)) }
}

/// One partition of a topic, from Metadata.
public struct PartitionInfo: Sendable, Equatable {
    public var partition: Int32
    public var leader: Int32
    public var leaderEpoch: Int32
    public var replicas: [Int32]
    public var isr: [Int32]
    public var offlineReplicas: [Int32]
    public var error: ErrorCode
}

/// A topic, from Metadata; partitions in index order.
public struct TopicInfo: Sendable, Equatable {
    public var name: String
    public var topicId: KafkaUUID
    public var isInternal: Bool
    public var partitions: [PartitionInfo]
    public var partitionCount: Int32 { Int32(partitions.count) }
}

/// What the last Metadata answer said about the cluster.
public struct ClusterMetadata: Sendable {
    public var clusterId: String?
    public var controllerId: Int32 = -1
    public var brokers: [Int32: BrokerInfo] = [:]
    public var topics: [String: TopicInfo] = [:]
}

/// A small Kafka client: bootstraps from a list of addresses, learns brokers and partition
/// leaders from Metadata, negotiates each API's version with ApiVersions per broker, and routes
/// requests to leaders and group coordinators, refreshing metadata and retrying when leadership
/// moved. One connection per broker and lane, so a long-polling Fetch never delays a heartbeat.
public actor KafkaClient {
    /// Separate connections to the same broker, for requests that must not queue behind another.
    public enum Lane: Sendable, Hashable {
        case general, fetch, group
    }

    struct ConnectionKey: Hashable {
        var address: BrokerAddress
        var lane: Lane
    }

    struct Connection {
        var peer: PeerClient
        var address: BrokerAddress
        /// The API versions the broker advertised.
        var versions: [ApiKey: ClosedRange<Int16>]
    }

    public nonisolated let bootstrap: [BrokerAddress]
    public nonisolated let clientId: String
    /// How long one request may take before the connection is dropped and the request fails.
    public nonisolated let requestTimeoutMs: Int64
    public nonisolated let connectTimeoutMs: Int64
    /// TLS and SASL (`security.protocol`, `ssl.*`, `sasl.*` of a client config).
    public nonisolated let security: ClientSecurity
    let group: MultiThreadedEventLoopGroup
    var connections: [ConnectionKey: Connection] = [:]
    /// The address that answered the last request sent to any broker.
    var preferred: BrokerAddress?
    public internal(set) var metadata = ClusterMetadata()
    var closed = false
    /// Set when a Fetch met a moved leader: the next one asks for fresh metadata first.
    var needsRefresh = false
    /// Coordinators found with FindCoordinator, by group or transactional id.
    var coordinators: [CoordinatorKey: BrokerInfo] = [:]

    /// `servers` is a comma-separated `host:port` list.
    public init(
        bootstrapServers servers: String, clientId: String = "runnel-cli", requestTimeoutMs: Int64 = 30_000,
        connectTimeoutMs: Int64 = 5_000,
        security: ClientSecurity = .plaintext
    ) throws {
        self.bootstrap = try BrokerAddress.parseList(servers)
        self.clientId = clientId
        self.requestTimeoutMs = requestTimeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.security = security
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit {
        group.shutdownGracefully { _ in }
    }

    /// Closes every connection and stops the event loop.
    public func close() async {
        guard !closed else { return }
        closed = true
        for c in connections.values { c.peer.close() }
        connections = [:]
        try? await group.shutdownGracefully()
    }

    // MARK: connections and versions

    func connection(to address: BrokerAddress, lane: Lane = .general) async throws -> Connection {
        let key = ConnectionKey(address: address, lane: lane)
        if let c = connections[key] { return c }
        guard !closed else { throw ClientError("the client is closed") }
        let peer = PeerClient(
            host: address.host, port: address.port, clientId: clientId, group: group, security: security)
        peer.connectTimeoutMs = connectTimeoutMs
        let versions: [ApiKey: ClosedRange<Int16>]
        do {
            versions = try await handshake(peer, address: address)
        } catch {
            peer.close()
            throw error
        }
        if let existing = connections[key] {  // another task connected meanwhile
            peer.close()
            return existing
        }
        guard !closed else {
            peer.close()
            throw ClientError("the client is closed")
        }
        let c = Connection(peer: peer, address: address, versions: versions)
        connections[key] = c
        return c
    }

    /// ApiVersions v3 (v0 when the broker refuses v3, as KIP-511 lets it).
    func handshake(_ peer: PeerClient, address: BrokerAddress) async throws -> [ApiKey: ClosedRange<Int16>] {
        var request = ApiVersionsRequest()
        request.clientSoftwareName = "runnel-client"
        request.clientSoftwareVersion = "1.0"
        var response = try await wait(
            peer.send(request, version: 3), address: address, peer: peer, timeoutMs: requestTimeoutMs)
        if response.errorCode == ErrorCode.unsupportedVersion.rawValue {
            response = try await wait(
                peer.send(ApiVersionsRequest(), version: 0), address: address, peer: peer, timeoutMs: requestTimeoutMs)
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "the broker at \(address) answered ApiVersions with \(ErrorCode(response.errorCode).name)")
        }
        var out: [ApiKey: ClosedRange<Int16>] = [:]
        for k in response.apiKeys where k.minVersion <= k.maxVersion {
            out[ApiKey(rawValue: k.apiKey)] = k.minVersion...k.maxVersion
        }
        return out
    }

    /// The highest version both sides speak.
    func version(_ api: ApiKey, on c: Connection) throws -> Int16 {
        guard let ours = ClientVersions.supported[api] else {
            preconditionFailure("no client version range for \(api.name)")
        }
        guard let theirs = c.versions[api], theirs.upperBound >= ours.lowerBound, theirs.lowerBound <= ours.upperBound
        else {
            throw ClientError(
                "the broker at \(c.address) does not support \(api.name) versions \(ours.lowerBound)-\(ours.upperBound)"
            )
        }
        return min(ours.upperBound, theirs.upperBound)
    }

    /// Whether the broker at `c` serves `api` at a version this client speaks.
    func supports(_ api: ApiKey, on c: Connection) -> Bool { (try? version(api, on: c)) != nil }

    /// Waits for `future` at most `timeoutMs`; on a timeout the connection is closed (as Kafka
    /// clients do), which also fails anything else in flight on it.
    func wait<T: Sendable>(
        _ future: EventLoopFuture<T>, address: BrokerAddress, peer: PeerClient, timeoutMs: Int64
    ) async throws -> T {
        let loop = future.eventLoop
        let promise = loop.makePromise(of: T.self)
        let timer = loop.scheduleTask(in: .milliseconds(timeoutMs)) {
            promise.fail(ClientError("the broker at \(address) did not answer within \(timeoutMs) ms"))
            peer.close()
        }
        future.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError(NetworkErrors.describe(error, address: address))
        }
    }

    /// Sends a request built for the negotiated version to `address` and returns the answer
    /// with the version used. `extraTimeoutMs` covers requests the broker may hold (Fetch, JoinGroup).
    public func send<R: RequestMessage>(
        to address: BrokerAddress, lane: Lane = .general, extraTimeoutMs: Int64 = 0, maxVersion: Int16? = nil,
        _ build: @Sendable (Int16) -> R
    ) async throws -> (response: R.Response, version: Int16) {
        let c = try await connection(to: address, lane: lane)
        var v = try version(R.apiKey, on: c)
        if let maxVersion, maxVersion < v {
            guard maxVersion >= (c.versions[R.apiKey]?.lowerBound ?? 0) else {
                throw ClientError(
                    "the broker at \(c.address) does not support \(R.apiKey.name) at version \(maxVersion) or below")
            }
            v = maxVersion
        }
        let response = try await wait(
            c.peer.send(build(v), version: v), address: address, peer: c.peer,
            timeoutMs: requestTimeoutMs + extraTimeoutMs)
        return (response, v)
    }

    /// Sends a request that gets no answer (Produce with acks=0); returns once it is written.
    public func sendWithoutResponse<R: RequestMessage>(
        to address: BrokerAddress, _ build: @Sendable (Int16) -> R
    ) async throws {
        let c = try await connection(to: address, lane: .general)
        let v = try version(R.apiKey, on: c)
        try await wait(
            c.peer.sendWithoutResponse(build(v), version: v), address: address, peer: c.peer,
            timeoutMs: requestTimeoutMs)
    }

    /// The addresses to try for a request any broker can answer: the last one that answered,
    /// the bootstrap list, then every broker metadata named.
    func anyAddresses() -> [BrokerAddress] {
        var out: [BrokerAddress] = []
        for a in [preferred].compactMap({ $0 }) + bootstrap
            + metadata.brokers.values.sorted(by: { $0.id < $1.id }).map(\.address) where !out.contains(a)
        {
            out.append(a)
        }
        return out
    }

    /// Sends to the first broker that can be reached. Fails with one sentence naming every
    /// address tried when none can.
    public func sendAny<R: RequestMessage>(
        extraTimeoutMs: Int64 = 0, _ build: @Sendable (Int16) -> R
    ) async throws -> (response: R.Response, version: Int16, address: BrokerAddress) {
        var failures: [String] = []
        let addresses = anyAddresses()
        for address in addresses {
            do {
                let (response, version) = try await send(to: address, extraTimeoutMs: extraTimeoutMs, build)
                preferred = address
                return (response, version, address)
            } catch let error as ClientError {
                failures.append(error.description)
                if preferred == address { preferred = nil }
            }
        }
        if addresses.count == 1 { throw ClientError(failures[0]) }
        throw ClientError(
            "none of the brokers \(addresses.map(\.description).joined(separator: ", ")) can be reached (\(failures.last ?? "no address"))"
        )
    }

    /// Sends a request for the active controller to any broker (which forwards it) or, with a
    /// bootstrap list of controllers, to each in turn until one is not a standby (which answers
    /// NOT_CONTROLLER, read by `errorCode`).
    func sendToActiveController<R: RequestMessage>(
        _ build: @Sendable (Int16) -> R, errorCode: (R.Response) -> Int16
    ) async throws -> (response: R.Response, version: Int16, address: BrokerAddress) {
        var answer = try await sendAny(build)
        for other in anyAddresses()
        where other != answer.address && errorCode(answer.response) == ErrorCode.notController.rawValue {
            guard let next = try? await send(to: other, build) else { continue }
            answer = (next.response, next.version, other)
        }
        return answer
    }

    // MARK: metadata

    /// Asks for metadata of `topics` (nil: every topic) and folds the answer into `metadata`.
    /// Topics never auto-create.
    @discardableResult
    public func refreshMetadata(topics: [String]?) async throws -> MetadataResponse {
        let (response, _, _) = try await sendAny { v in
            var r = MetadataRequest()
            r.topics = topics.map { $0.map { MetadataRequest.MetadataRequestTopic(topicId: .zero, name: $0) } }
            r.allowAutoTopicCreation = false
            return r
        }
        var md = metadata
        md.clusterId = response.clusterId
        md.controllerId = response.controllerId
        md.brokers = [:]
        for b in response.brokers {
            md.brokers[b.nodeId] = BrokerInfo(id: b.nodeId, host: b.host, port: b.port, rack: b.rack)
        }
        if topics == nil { md.topics = [:] }
        for t in response.topics {
            guard let name = t.name else { continue }
            if t.errorCode == ErrorCode.unknownTopicOrPartition.rawValue {
                md.topics[name] = nil
                continue
            }
            let partitions = t.partitions.sorted { $0.partitionIndex < $1.partitionIndex }.map {
                PartitionInfo(
                    partition: $0.partitionIndex, leader: $0.leaderId, leaderEpoch: $0.leaderEpoch,
                    replicas: $0.replicaNodes,
                    isr: $0.isrNodes, offlineReplicas: $0.offlineReplicas, error: ErrorCode($0.errorCode))
            }
            md.topics[name] = TopicInfo(
                name: name, topicId: t.topicId, isInternal: t.isInternal, partitions: partitions)
        }
        metadata = md
        return response
    }

    /// The topic's metadata, asked for again when `refresh` or unknown; fails with "does not
    /// exist" when the cluster has no such topic. A topic still being created (no partitions
    /// yet, or LEADER_NOT_AVAILABLE) is waited for within the request timeout.
    public func topic(_ name: String, refresh: Bool = false) async throws -> TopicInfo {
        if !refresh, let t = metadata.topics[name], !t.partitions.isEmpty { return t }
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        while true {
            let response = try await refreshMetadata(topics: [name])
            guard let t = response.topics.first(where: { $0.name == name }) else {
                throw ClientError("the broker's metadata answer left out topic \(name)")
            }
            switch ErrorCode(t.errorCode) {
            case .none where !t.partitions.isEmpty:
                return metadata.topics[name]!
            case .unknownTopicOrPartition:
                throw ClientError("topic \(name) does not exist")
            case .invalidTopicException:
                throw ClientError("\"\(name)\" is not a valid topic name")
            case .topicAuthorizationFailed:
                throw ClientError("not authorized to access topic \(name)")
            case let code where code != .none && code != .leaderNotAvailable:
                throw ClientError("the metadata of topic \(name) came back with \(code.name)")
            default:
                guard NIODeadline.now() < deadline else {
                    throw ClientError("topic \(name) has no partitions with leaders yet")
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    /// The leader of a partition, waiting (with metadata refreshes) while it has none.
    public func leader(topic name: String, partition: Int32, refresh: Bool = false) async throws -> BrokerInfo {
        let deadline = NIODeadline.now() + .milliseconds(requestTimeoutMs)
        var refresh = refresh
        while true {
            let t = try await topic(name, refresh: refresh)
            guard partition >= 0, partition < t.partitionCount else {
                throw ClientError(
                    "partition \(partition) does not exist (topic \(name) has \(t.partitionCount) partition\(t.partitionCount == 1 ? "" : "s"))"
                )
            }
            let p = t.partitions[Int(partition)]
            if p.leader >= 0, let broker = metadata.brokers[p.leader] { return broker }
            guard NIODeadline.now() < deadline else {
                throw ClientError("partition \(partition) of topic \(name) has no leader")
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            refresh = true
        }
    }

    /// Partition errors after which the client refreshes metadata and retries at the new leader.
    public nonisolated static func isStaleLeadership(_ code: ErrorCode) -> Bool {
        [
            .notLeaderOrFollower, .leaderNotAvailable, .unknownTopicOrPartition, .fencedLeaderEpoch,
            .unknownLeaderEpoch,
            .replicaNotAvailable, .kafkaStorageError, .brokerNotAvailable,
        ].contains(code)
    }
}

/// What FindCoordinator looks up: the coordinator of a group or of a transactional id.
public struct CoordinatorKey: Sendable, Hashable, CustomStringConvertible {
    /// FindCoordinator's key types.
    public enum KeyType: Int8, Sendable {
        case group = 0
        case transaction = 1
    }

    public var type: KeyType
    public var key: String

    public init(type: KeyType, key: String) {
        self.type = type
        self.key = key
    }

    public var description: String { type == .group ? "group \(key)" : "transactional id \(key)" }
}

/// The version range of each API this client can build and read.
public enum ClientVersions {
    public static let supported: [ApiKey: ClosedRange<Int16>] = [
        .produce: 3...11,  // v3 is the first with record batches v2
        .fetch: 4...16,  // v13+ name topics by id
        .listOffsets: 1...8,
        .metadata: 1...12,
        .apiVersions: 0...3,
        .createTopics: 2...7,
        .deleteTopics: 1...6,
        .createPartitions: 0...3,
        .electLeaders: 1...2,  // v1+ carry the election type (KIP-460)
        .alterPartitionReassignments: 0...0,
        .listPartitionReassignments: 0...0,
        .describeConfigs: 1...4,
        .incrementalAlterConfigs: 0...1,
        .describeCluster: 0...1,
        .describeLogDirs: 1...4,  // v1+ as Kafka 3.9's Admin asks
        .findCoordinator: 1...6,  // v4+ carry a list of keys
        .joinGroup: 1...9,  // v4+ answer MEMBER_ID_REQUIRED first
        .syncGroup: 0...5,
        .heartbeat: 0...4,
        .leaveGroup: 0...5,  // v3+ leave by member list
        .offsetCommit: 2...8,
        .offsetFetch: 1...8,  // v8+ ask by group list
        .listGroups: 0...5,
        .describeGroups: 0...5,
        .deleteGroups: 0...2,
        .offsetDelete: 0...0,
        .describeAcls: 1...3,  // v1+ know prefixed patterns
        .createAcls: 1...3,
        .deleteAcls: 1...3,
        .describeUserScramCredentials: 0...0,
        .alterUserScramCredentials: 0...0,
        .updateFeatures: 0...1,  // v1 carries the upgrade type and validate-only (KIP-778)
        .unregisterBroker: 0...0,
        .describeClientQuotas: 0...1,
        .alterClientQuotas: 0...1,
        .writeTxnMarkers: 0...2,
        .describeProducers: 0...0,
        .describeTransactions: 0...0,
        .listTransactions: 0...1,
    ]
}

/// Turns NIO's connection errors into the end of one sentence.
enum NetworkErrors {
    static func describe(_ error: any Error, address: BrokerAddress) -> String {
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return describe(first.error, address: address) }
            if e.dnsAAAAError != nil || e.dnsAError != nil { return "cannot resolve host \(address.host)" }
            return "cannot connect to \(address)"
        }
        if let e = error as? IOError {
            return "cannot connect to \(address): \(String(cString: strerror(e.errnoCode)).lowercased())"
        }
        if let e = error as? ChannelError, case .connectTimeout = e {
            return "connecting to \(address) timed out"
        }
        if let e = error as? AuthenticationError { return "logging in to \(address) failed: \(e.description)" }
        if let e = error as? NIOSSLError { return "the TLS handshake with \(address) failed (\(e))" }
        if let e = error as? BoringSSLError { return "the TLS handshake with \(address) failed (\(e))" }
        if error is ConnectionError { return "the connection to \(address) closed" }
        if error is WireError { return "the broker at \(address) sent an answer that does not parse (\(error))" }
        return "the request to \(address) failed (\(error))"
    }
}
