import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Kafka's connection limits of one node (`max.connections`, `max.connections.per.ip`,
/// `max.connections.per.ip.overrides`) and `connections.max.idle.ms`.
public struct ConnectionLimits: Sendable, Equatable {
    /// `max.connections`: open connections of the node over all its listeners.
    public var maxConnections = Int(Int32.max)
    /// `max.connections.per.ip`: open connections from one address.
    public var maxConnectionsPerIp = Int(Int32.max)
    /// `max.connections.per.ip.overrides`: per address, in place of `maxConnectionsPerIp`.
    public var perIpOverrides: [String: Int] = [:]
    /// `connections.max.idle.ms`: a connection with neither a read nor a write for this long is
    /// closed; nil never.
    public var idleMs: Int64? = 600_000

    public init() {}

    /// `max.connections.per.ip.overrides` as Kafka writes it: `host:count` pairs separated by
    /// commas; nil with one sentence for a malformed pair.
    public static func parseOverrides(_ text: String) -> Result<[String: Int], ConnectionLimitsError> {
        var out: [String: Int] = [:]
        for pair in text.split(separator: ",").map({ $0.trimmingCharacters(in: " ") }) where !pair.isEmpty {
            guard let colon = pair.lastIndex(of: ":"), let count = Int(pair[pair.index(after: colon)...]), count >= 0
            else {
                return .failure(ConnectionLimitsError("\"\(pair)\" is not host:count"))
            }
            out[String(pair[..<colon])] = count
        }
        return .success(out)
    }
}

/// Socket settings of a listener: `socket.listen.backlog.size`, and `socket.send.buffer.bytes` /
/// `socket.receive.buffer.bytes` when set (nil leaves the kernel's autotuning, which a fixed size
/// turns off).
public struct ListenerSocketOptions: Sendable, Equatable {
    public var backlog = 1024
    public var sendBufferBytes: Int? = nil
    public var receiveBufferBytes: Int? = nil
    public init() {}
}

public struct ConnectionLimitsError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}

/// The connections a node holds open, counted over all its listeners, as Kafka's
/// ConnectionQuotas does: a connection past a limit is closed as it arrives.
public final class ConnectionQuotas: Sendable {
    public let limits: ConnectionLimits
    private let counts = NIOLockedValueBox<(total: Int, byAddress: [String: Int])>((0, [:]))

    public init(limits: ConnectionLimits) { self.limits = limits }

    /// Takes a slot for a connection from `address`; nil when one is free, else why not.
    func admit(_ address: String) -> String? {
        counts.withLockedValue { state in
            let limit = limits.perIpOverrides[address] ?? limits.maxConnectionsPerIp
            if state.byAddress[address, default: 0] >= limit {
                return "\(address) already has \(limit) connections (max.connections.per.ip)"
            }
            if state.total >= limits.maxConnections {
                return "the node already has \(limits.maxConnections) connections (max.connections)"
            }
            state.total += 1
            state.byAddress[address, default: 0] += 1
            return nil
        }
    }

    /// Gives back the slot of a connection from `address`.
    func release(_ address: String) {
        counts.withLockedValue { state in
            state.total -= 1
            let left = state.byAddress[address, default: 1] - 1
            state.byAddress[address] = left > 0 ? left : nil
        }
    }

    /// Open connections now (tests, metrics).
    public var open: Int { counts.withLockedValue { $0.total } }
}

/// Closes its connection once it has been idle (no read, no write) for `connections.max.idle.ms`.
final class IdleConnectionCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            logger.debug("closing the connection from \(context.remoteAddress?.description ?? "?"): idle")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
