import ArgumentParser
import Foundation
import RunnelClient
import RunnelNetwork
import RunnelNode

/// The top-level commands that talk to brokers over the Kafka protocol, and `storage` (an
/// operator's tool beside them). A bad argument to any of them ends like every other failure: one
/// sentence on stderr and exit status 1.
let clientToolCommands: [String: [String]] = [
    "topic": ["create", "list", "describe", "alter", "delete", "alter-config"],
    "produce": [],
    "consume": [],
    "group": ["list", "describe", "reset-offsets", "delete-offsets", "delete"],
    "transactions": ["list", "describe", "describe-producers", "abort", "find-hanging"],
    "cluster": ["describe"],
    "acl": ["add", "list", "remove"],
    "user": ["scram"],
    "log-dirs": ["describe"],
    "features": ["describe", "upgrade", "downgrade", "disable"],
    "storage": ["info"],
    "get-offsets": [],
    "config": ["describe", "alter"],
    "leader-election": [],
    "dump-log": [],
    "reassign": ["generate", "execute", "verify", "cancel"],
    "broker": ["drain"],
    "quota": ["set", "describe"],
]

/// Options every client tool takes.
struct ClientOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-server"), help: "Broker address(es) to bootstrap from, host:port[,host:port...].")
    var bootstrapServer: String

    @Option(
        name: .customLong("request-timeout-ms"),
        help: "How long one request (and one retry loop while leadership moves) may take.")
    var requestTimeoutMs: Int64 = 30_000

    @Option(
        name: .customLong("command-config"),
        help:
            "A Kafka client properties file: security.protocol, sasl.mechanism, sasl.username/sasl.password or sasl.jaas.config, ssl.ca.location or ssl.truststore.*, ssl.certificate.location/ssl.key.location or ssl.keystore.* for a client certificate."
    )
    var commandConfig: String?

    @Flag(help: "Print JSON for scripts (the fields are listed above) instead of text for people.")
    var json = false

    func validate() throws {
        do {
            _ = try BrokerAddress.parseList(bootstrapServer)
        } catch {
            throw ValidationError("--bootstrap-server: \(error)")
        }
        guard requestTimeoutMs >= 1 else { throw ValidationError("--request-timeout-ms must be at least 1") }
    }
}

/// Runs `body` with a client, closes it, and turns any failure into one sentence and exit 1.
func withClient<T: Sendable>(_ options: ClientOptions, _ body: @Sendable (KafkaClient) async throws -> T) async -> T {
    await withClient(
        servers: options.bootstrapServer, requestTimeoutMs: options.requestTimeoutMs,
        commandConfig: options.commandConfig, body)
}

/// `withClient` for tools that may also bootstrap from the controllers (`--bootstrap-controller`).
func withClient<T: Sendable>(
    servers: String, requestTimeoutMs: Int64, commandConfig: String?,
    _ body: @Sendable (KafkaClient) async throws -> T
) async -> T {
    let client: KafkaClient
    do {
        client = try KafkaClient(
            bootstrapServers: servers, requestTimeoutMs: requestTimeoutMs,
            security: try clientSecurity(commandConfig: commandConfig))
    } catch {
        fail(sentence(error))
    }
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        fail(sentence(error))
    }
}

/// The security of a `--command-config` file (plaintext without one).
func clientSecurity(commandConfig path: String?) throws -> ClientSecurity {
    guard let path else { return .plaintext }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("--command-config: \(path) cannot be read")
    }
    let properties = Properties(parsing: text)
    return try ClientSecurity.parse { properties[$0] }
}

/// An error's description as one sentence: a capital-free clause gets its final period.
func sentence(_ error: any Error) -> String {
    let text = "\(error)".trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
    return text.hasSuffix(".") ? text : text + "."
}

/// Parses `key=value` (the value may be empty, the key may not).
func parseKeyValue(_ text: String, option: String) throws -> (String, String) {
    guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
        throw ValidationError("\(option) expects key=value, not \"\(text)\"")
    }
    return (String(text[..<eq]), String(text[text.index(after: eq)...]))
}

/// The usage failure of a client tool: ArgumentParser's message as one sentence, pointing at help.
func usageFailure(_ error: any Error, arguments: [String]) -> String {
    var path: [String] = []
    if let first = arguments.first, let subcommands = clientToolCommands[first] {
        path.append(first)
        if arguments.count > 1, subcommands.contains(arguments[1]) { path.append(arguments[1]) }
    }
    var message = Runnel.message(for: error).trimmingCharacters(in: .whitespacesAndNewlines)
    message = message.split(separator: "\n").first.map(String.init) ?? message
    if message.hasPrefix("Error: ") { message = String(message.dropFirst(7)) }
    if let first = message.first, first.isUppercase, !message.hasPrefix("--") {
        message = first.lowercased() + message.dropFirst()
    }
    if message.hasSuffix(".") { message.removeLast() }
    return "\(message) (see runnel \(path.joined(separator: " ")) --help)."
}

/// A JSON value with keys in the order given, so every object prints its documented fields in
/// a stable order and absent values as null.
enum JSON {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func int<I: BinaryInteger>(_ v: I) -> JSON { .integer(Int64(v)) }
    static func optional(_ v: String?) -> JSON { v.map { .string($0) } ?? .null }
    static func optional<I: BinaryInteger>(_ v: I?) -> JSON { v.map { .integer(Int64($0)) } ?? .null }
    static func ints<I: BinaryInteger>(_ v: [I]) -> JSON { .array(v.map { .integer(Int64($0)) }) }

    func render(pretty: Bool, indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return d.isFinite ? String(d) : "null"
        case .string(let s): return JSON.quote(s)
        case .array(let items):
            if items.isEmpty { return "[]" }
            if !pretty { return "[" + items.map { $0.render(pretty: false) }.joined(separator: ",") + "]" }
            if items.allSatisfy({ if case .integer = $0 { true } else { false } }) {
                return "[" + items.map { $0.render(pretty: false) }.joined(separator: ", ") + "]"
            }
            return "[\n" + items.map { inner + $0.render(pretty: true, indent: inner) }.joined(separator: ",\n") + "\n"
                + indent + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            if !pretty {
                return "{" + fields.map { JSON.quote($0.0) + ":" + $0.1.render(pretty: false) }.joined(separator: ",")
                    + "}"
            }
            return "{\n"
                + fields.map { inner + JSON.quote($0.0) + ": " + $0.1.render(pretty: true, indent: inner) }.joined(
                    separator: ",\n") + "\n" + indent + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x7f: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Prints the value, indented.
    func print() { Swift.print(render(pretty: true)) }
}

/// Set once SIGINT or SIGTERM arrives; long-running tools check it between requests and stop cleanly.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.set() }
            source.resume()
            sources.append(source)
        }
    }

    private func set() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }
}
