import NIOCore
import NIOPosix
import RunnelCore
import RunnelNetwork
import RunnelWire

/// A small Kafka admin client for the CLI, tests and tools: one connection per bootstrap address.
public final class AdminClient: @unchecked Sendable {
    public let bootstrap: [(host: String, port: Int)]
    let group: MultiThreadedEventLoopGroup
    let ownsGroup: Bool
    public var clientId = "runnel-cli"
    public var timeoutMs: Int64 = 5000
    /// TLS and SASL of the listener it talks to.
    public var security: ClientSecurity = .plaintext

    /// `servers` is a comma-separated `host:port` list.
    public init(servers: String, group: MultiThreadedEventLoopGroup? = nil) throws {
        var list: [(String, Int)] = []
        for entry in servers.split(separator: ",") {
            let text = String(entry).filter { $0 != " " }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (1...65535).contains(port)
            else {
                throw ClientError("\"\(text)\" is not host:port")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            list.append((host, port))
        }
        guard !list.isEmpty else { throw ClientError("no bootstrap address given") }
        self.bootstrap = list
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.ownsGroup = group == nil
    }

    deinit {
        if ownsGroup { try? group.syncShutdownGracefully() }
    }

    /// Sends `request` to the first bootstrap address that answers.
    public func send<R: RequestMessage>(
        _ request: R, version: Int16
    ) async throws -> (response: R.Response, host: String, port: Int) {
        var lastError: (any Error)?
        for (host, port) in bootstrap {
            let peer = PeerClient(host: host, port: port, clientId: clientId, group: group, security: security)
            peer.connectTimeoutMs = min(timeoutMs, 3000)
            defer { peer.close() }
            do {
                let future = peer.send(request, version: version)
                let timeout = group.next().scheduleTask(in: .milliseconds(timeoutMs)) {}
                let response = try await future.get()
                timeout.cancel()
                return (response, host, port)
            } catch {
                lastError = error
            }
        }
        throw ClientError(
            "no node at \(bootstrap.map { "\($0.host):\($0.port)" }.joined(separator: ",")) answered (\(lastError.map { "\($0)" } ?? "no address"))"
        )
    }

    /// DescribeQuorum from any controller; a follower answers NOT_LEADER with the leader it knows,
    /// so the leader's own view is asked for next when it is among the addresses.
    public func describeQuorum() async throws -> DescribeQuorumResponse {
        var request = DescribeQuorumRequest()
        request.topics = [.init(topicName: "__cluster_metadata", partitions: [.init(partitionIndex: 0)])]
        var last: DescribeQuorumResponse?
        var lastError: (any Error)?
        for (host, port) in bootstrap {
            let single = try AdminClient(servers: "\(host):\(port)", group: group)
            single.timeoutMs = timeoutMs
            single.clientId = clientId
            single.security = security
            let response: DescribeQuorumResponse
            do {
                response = try await single.send(request, version: 2).response
            } catch {
                lastError = error
                continue
            }
            last = response
            if response.topics.first?.partitions.first?.errorCode == 0 { return response }
        }
        if let last { return last }
        throw ClientError(
            "no controller at \(bootstrap.map { "\($0.host):\($0.port)" }.joined(separator: ",")) answered (\(lastError.map { "\($0)" } ?? "no address"))"
        )
    }
}

/// A client-side failure, one sentence.
public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
