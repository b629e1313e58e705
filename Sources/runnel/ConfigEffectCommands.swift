import ArgumentParser
import RunnelMetadata

/// `runnel config no-effect`: the Kafka config keys Runnel accepts without effect (or honours
/// only in part), with the reason for each, from `ConfigDefinitions.effects`. Offline: it needs no
/// cluster. The table in docs/configuration.md is this command's `--markdown` output, and a test
/// keeps the two equal.
struct ConfigsNoEffect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "no-effect",
        abstract: "List the config keys Runnel accepts without effect, or honours only in part, and why.",
        discussion: """
            Every broker and topic key of Kafka 3.9 is accepted, so a Kafka server.properties loads \
            unchanged; the keys listed here are validated and then change nothing (effect "none") or \
            only part of what they do in Kafka (effect "partial"). `runnel server` names each of them \
            present in its file once at start-up, and DescribeConfigs heads their documentation with \
            "Accepted without effect in Runnel:" or "Partly honoured in Runnel:". Prints one line per \
            key: name, effect, scope (broker, topic or both) and reason. --json prints {"keys": \
            [{"name", "effect", "scope", "reason"}]}; --markdown prints the table of docs/configuration.md.
            """)

    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print the Markdown table of docs/configuration.md.") var markdown = false

    func run() throws {
        if json && markdown { throw ValidationError("choose one of --json and --markdown.") }
        let rows = ConfigDefinitions.effects.map(Row.init)
        if json {
            JSON.object([
                (
                    "keys",
                    .array(
                        rows.map {
                            .object([
                                ("name", .string($0.name)), ("effect", .string($0.effect)),
                                ("scope", .string($0.scope)), ("reason", .string($0.reason)),
                            ])
                        })
                )
            ]).print()
        } else if markdown {
            for line in Self.markdown(rows) { print(line) }
        } else {
            let nameWidth = rows.map(\.name.count).max() ?? 0
            let scopeWidth = rows.map(\.scope.count).max() ?? 0
            for row in rows {
                print(
                    pad(row.name, nameWidth) + "  " + pad(row.effect, 7) + "  " + pad(row.scope, scopeWidth) + "  "
                        + row.reason)
            }
        }
    }

    /// The Markdown table: a header, then one row per key in the order of the code's table.
    static func markdown(_ rows: [Row]) -> [String] {
        ["| key | effect | scope | reason |", "|---|---|---|---|"]
            + rows.map { "| `\($0.name)` | \($0.effect) | \($0.scope) | \($0.reason) |" }
    }

    struct Row {
        var name: String
        var effect: String
        var scope: String
        var reason: String

        init(_ entry: ConfigEffectEntry) {
            name = entry.name
            effect =
                switch entry.effect {
                case .honoured: "full"
                case .partial: "partial"
                case .none: "none"
                }
            let isTopic = ConfigDefinitions.topicConfig(entry.name) != nil
            let isBroker = ConfigDefinitions.brokerConfig(entry.name) != nil
            scope = isTopic && isBroker ? "broker, topic" : isTopic ? "topic" : "broker"
            reason = entry.reason
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
