// Argument validation of the client tools, through ArgumentParser as the binary runs it: what
// parses, what is refused, and the one-sentence form a refusal takes on stderr.
import ArgumentParser
import Testing
@testable import runnel

@Suite struct ClientToolArgumentTests {
    static let server = ["--bootstrap-server", "127.0.0.1:9092"]

    /// The sentence `runnel` prints for `arguments` (after the "runnel: " prefix), or nil when they parse.
    static func refusal(_ arguments: [String]) -> String? {
        do {
            _ = try Runnel.parseAsRoot(arguments)
            return nil
        } catch {
            return usageFailure(error, arguments: arguments)
        }
    }

    @Test func validArgumentsParse() throws {
        #expect(
            Self.refusal(
                [
                    "topic", "create", "t", "--partitions", "3", "--replication-factor", "1", "--config", "a=b",
                    "--config", "c=",
                ] + Self.server) == nil)
        #expect(
            Self.refusal(
                ["topic", "alter-config", "t", "--set", "retention.ms=1", "--delete", "segment.ms"] + Self.server)
                == nil)
        #expect(
            Self.refusal(
                ["produce", "t", "--acks", "0", "--key-separator", "\t", "--header", "k=v=w", "--partition", "2"]
                    + Self.server) == nil)
        #expect(
            Self.refusal(
                [
                    "consume", "t", "--partition", "1", "--offset", "earliest", "--max-messages", "5", "--timeout-ms",
                    "0",
                ] + Self.server) == nil)
        #expect(Self.refusal(["consume", "t", "--group", "g", "--from-beginning", "--json"] + Self.server) == nil)
        #expect(
            Self.refusal(
                ["group", "reset-offsets", "g", "--topic", "t:0,2", "--to-offset", "7", "--execute"] + Self.server)
                == nil)
        #expect(Self.refusal(["cluster", "describe", "--bootstrap-server", "a:1,[::1]:2"]) == nil)
        #expect(Self.refusal(["consume", "t", "--isolation-level", "read_committed"] + Self.server) == nil)
        #expect(
            Self.refusal(
                ["transactions", "list", "--state", "Ongoing", "--producer-id", "7", "--duration-filter", "0"]
                    + Self.server) == nil)
        #expect(Self.refusal(["transactions", "describe", "--transactional-id", "t"] + Self.server) == nil)
        #expect(
            Self.refusal(
                ["transactions", "describe-producers", "--topic", "t", "--partition", "0", "--broker-id", "2"]
                    + Self.server) == nil)
        #expect(
            Self.refusal(
                ["transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "5"] + Self.server)
                == nil)
        #expect(
            Self.refusal(
                [
                    "transactions", "abort", "--topic", "t", "--partition", "0", "--producer-id", "1",
                    "--producer-epoch", "0", "--coordinator-epoch", "3",
                ] + Self.server) == nil)
        #expect(
            Self.refusal(
                ["transactions", "find-hanging", "--broker-id", "1", "--max-transaction-timeout", "0"] + Self.server)
                == nil)
    }

    @Test(arguments: [
        (["produce", "t", "--acks", "2"], "--acks must be 0, 1 or all, not \"2\" (see runnel produce --help)."),
        (
            ["topic", "create", "t", "--partitions", "0"],
            "--partitions must be at least 1 (see runnel topic create --help)."
        ),
        (
            ["topic", "create", "t", "--config", "novalue"],
            "--config expects key=value, not \"novalue\" (see runnel topic create --help)."
        ),
        (
            ["topic", "alter-config", "t"],
            "give at least one --set key=value or --delete key (see runnel topic alter-config --help)."
        ),
        (
            ["topic", "alter-config", "t", "--set", "a=1", "--delete", "a"],
            "config a is both set and deleted (see runnel topic alter-config --help)."
        ),
        (["consume", "t", "--offset", "5"], "--offset needs --partition (see runnel consume --help)."),
        (
            ["consume", "t", "--partition", "0", "--offset", "soon"],
            "--offset must be a number 0 or more, earliest or latest, not \"soon\" (see runnel consume --help)."
        ),
        (
            ["consume", "t", "--group", "g", "--partition", "0"],
            "--partition and --offset cannot be used with --group, which assigns the partitions (see runnel consume --help)."
        ),
        (["consume", "t", "--max-messages", "0"], "--max-messages must be at least 1 (see runnel consume --help)."),
        (
            ["group", "reset-offsets", "g", "--topic", "t"],
            "give exactly one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration, --to-current and --from-file (see runnel group reset-offsets --help)."
        ),
        (
            ["group", "reset-offsets", "g", "--topic", "t", "--by-duration", "1h"],
            "--by-duration expects an ISO-8601 duration PnDTnHnMnS, not \"1h\" (see runnel group reset-offsets --help)."
        ),
        (
            ["get-offsets", "--time", "soon"],
            "--time must be earliest (-2), latest (-1), max-timestamp (-3) or a timestamp in ms, not \"soon\" (see runnel get-offsets --help)."
        ),
        (
            ["config", "describe", "--topic", "t", "--broker-defaults"],
            "give exactly one of --topic, --broker and --broker-defaults (see runnel config describe --help)."
        ),
        (
            ["leader-election", "--election-type", "preferred", "--topic", "t"],
            "--topic and --partition go together (see runnel leader-election --help)."
        ),
        (
            ["topic", "alter", "--topic", "t", "--partitions", "0"],
            "--partitions must be at least 1 (see runnel topic alter --help)."
        ),
        (
            ["group", "reset-offsets", "g", "--topic", "t:", "--to-latest"],
            "--topic expects topic or topic:partition[,partition...], not \"t:\" (see runnel group reset-offsets --help)."
        ),
        (
            ["consume", "t", "--isolation-level", "committed"],
            "--isolation-level must be read_committed or read_uncommitted, not \"committed\" (see runnel consume --help)."
        ),
        (
            ["transactions", "list", "--duration-filter=-1"],
            "--duration-filter must be 0 or more (see runnel transactions list --help)."
        ),
        (
            ["transactions", "abort", "--topic", "t", "--partition", "0"],
            "name the transaction to abort with --start-offset, or with --producer-id, --producer-epoch and --coordinator-epoch (see runnel transactions abort --help)."
        ),
        (
            ["transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "1", "--producer-id", "2"],
            "give either --start-offset or --producer-id, --producer-epoch and --coordinator-epoch, not both (see runnel transactions abort --help)."
        ),
        (
            ["transactions", "find-hanging"],
            "find-hanging needs --topic or --broker-id to limit the search (see runnel transactions find-hanging --help)."
        ),
        (
            ["transactions", "find-hanging", "--broker-id", "1", "--partition", "0"],
            "--partition needs --topic (see runnel transactions find-hanging --help)."
        ),
    ])
    func refusedWithOneSentence(arguments: [String], sentence: String) {
        #expect(Self.refusal(arguments + Self.server) == sentence)
    }

    @Test func missingAndMalformedBootstrap() throws {
        let missing = try #require(Self.refusal(["topic", "list"]))
        #expect(
            missing.hasPrefix("missing expected argument '--bootstrap-server")
                && missing.hasSuffix("(see runnel topic list --help)."))
        #expect(
            Self.refusal(["topic", "list", "--bootstrap-server", "nohost"])
                == "--bootstrap-server: \"nohost\" is not a host:port address (see runnel topic list --help).")
        let notNumber = try #require(Self.refusal(["produce", "t", "--partition", "x"] + Self.server))
        #expect(notNumber.contains("'x'") && notNumber.hasSuffix("(see runnel produce --help)."))
    }

    @Test func jsonStringsAreEscaped() {
        #expect(JSON.quote("a\"b\\c\n\t\u{1}é") == "\"a\\\"b\\\\c\\n\\t\\u0001é\"")
        let value = JSON.object([("n", .null), ("list", .ints([1, 2])), ("s", .optional(String?.none))])
        #expect(value.render(pretty: false) == "{\"n\":null,\"list\":[1,2],\"s\":null}")
    }
}
