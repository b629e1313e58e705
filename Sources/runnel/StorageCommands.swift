import ArgumentParser
import Foundation
import RunnelNode

/// `runnel storage info`, as `kafka-storage info -c server.properties`: reads the config and
/// reports each log dir and the metadata log dir, formatted or not, and what is wrong.
struct Storage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect a node's storage directories (as kafka-storage).", subcommands: [StorageInfoCommand.self])
}

struct StorageInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Each log dir and the metadata log dir of a config: formatted or not, meta.properties, problems.",
        discussion: """
            Reads only; exits 1 when it finds a problem (a directory missing or not formatted, \
            meta.properties that cannot be read, another node's or another cluster's directory, two \
            directories with one directory.id), as kafka-storage info does. --json prints \
            {"directories": [{"path", "logDir", "metadataLogDir" (booleans), "state" (formatted, \
            unformatted, missing, not-a-directory or unreadable), "metaProperties": {"cluster.id", \
            "node.id", "directory.id", "version"} or null}], "problems": ["..."]}.
            """)

    @Option(name: [.customShort("c"), .long], help: "The server.properties file.")
    var config: String

    @Flag(help: "Print JSON for scripts (the fields are listed above) instead of text for people.")
    var json = false

    func run() throws {
        let info = StorageInfo.inspect(config: loadConfig(config))
        if json {
            Self.json(info).print()
        } else {
            Self.printText(info)
        }
        if !info.problems.isEmpty { throw ExitCode(1) }
    }

    static func stateName(_ state: StorageInfo.Directory.State) -> String {
        switch state {
        case .missing: "missing"
        case .notDirectory: "not-a-directory"
        case .unformatted: "unformatted"
        case .unreadable: "unreadable"
        case .formatted: "formatted"
        }
    }

    static func json(_ info: StorageInfo) -> JSON {
        .object([
            (
                "directories",
                .array(
                    info.directories.map { dir in
                        .object([
                            ("path", .string(dir.path)), ("logDir", .bool(dir.isLogDir)),
                            ("metadataLogDir", .bool(dir.isMetadataLogDir)), ("state", .string(stateName(dir.state))),
                            (
                                "metaProperties",
                                dir.meta.map { meta in
                                    .object([
                                        ("cluster.id", .string(meta.clusterId)), ("node.id", .int(meta.nodeId)),
                                        (
                                            "directory.id",
                                            meta.directoryId == .zero ? .null : .string("\(meta.directoryId)")
                                        ),
                                        ("version", .int(1)),
                                    ])
                                } ?? .null
                            ),
                        ])
                    })
            ),
            ("problems", .array(info.problems.map { .string($0) })),
        ])
    }

    static func printText(_ info: StorageInfo) {
        printTable(
            [["DIRECTORY", "HOLDS", "STATE", "CLUSTER ID", "NODE ID", "DIRECTORY ID", "VERSION"]]
                + info.directories.map { dir in
                    let holds = [dir.isLogDir ? "logs" : nil, dir.isMetadataLogDir ? "metadata" : nil].compactMap { $0 }
                    return [
                        dir.path, holds.joined(separator: ","), stateName(dir.state), dir.meta?.clusterId ?? "-",
                        dir.meta.map { "\($0.nodeId)" } ?? "-",
                        dir.meta.map { $0.directoryId == .zero ? "-" : "\($0.directoryId)" } ?? "-",
                        dir.meta == nil ? "-" : "1",
                    ]
                })
        guard !info.problems.isEmpty else { return }
        print("")
        print(info.problems.count == 1 ? "Found problem:" : "Found problems:")
        for problem in info.problems { print("  \(problem)") }
    }
}
