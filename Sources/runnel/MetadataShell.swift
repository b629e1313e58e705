import ArgumentParser
import Foundation
import RunnelMetadata

// `runnel metadata shell FILE`: an interactive shell over the metadata tree of a snapshot or a
// data dir, as kafka-metadata-shell offers: ls, cd, cat, tree, pwd, sql, history, help, exit.
// Lines come from stdin (no line editing); a prompt is shown only when stdin is a terminal, so
// the shell also runs scripts piped into it.

/// The shell's state and commands, separate from the terminal so it can run any lines.
final class MetadataShellSession {
    let metadata: LoadedMetadata
    let root: MetadataNode
    private(set) var cwd = "/"
    private(set) var history: [String] = []
    /// Lines kept in `history`.
    static let historyMax = 1000
    private var sqlFile: String?
    private let out: (String) -> Void
    private let err: (String) -> Void

    init(_ metadata: LoadedMetadata, out: @escaping (String) -> Void, err: @escaping (String) -> Void) {
        self.metadata = metadata
        self.root = metadata.tree
        self.out = out
        self.err = err
    }

    static let help = """
        Commands (paths are absolute or relative to the current node):
          ls [PATH]        list a node's children
          cd [PATH]        change the current node (default /)
          cat PATH...      show a node's fields
          tree [PATH]      print a node and everything below it
          pwd              print the current node
          sql QUERY        run read-only SQL over the snapshot's tables
          history          list the commands entered so far
          help             this text
          exit, quit       leave the shell
        The tree: /brokers/<id>, /topics/<name>/<partition>, /configs/<type>/<name>, /features,
        /producerIds, /acls/<id>, /scram/<mechanism>/<user>, /quorum.
        """

    /// Runs one line; false when the shell should end.
    func execute(_ line: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return true }
        history.append(trimmed)
        if history.count > Self.historyMax { history.removeFirst(history.count - Self.historyMax) }
        let command = trimmed.prefix { !$0.isWhitespace }
        let rest = trimmed.dropFirst(command.count).trimmingCharacters(in: .whitespaces)
        let args = rest.split(whereSeparator: \.isWhitespace).map(String.init)
        do {
            switch command {
            case "exit", "quit":
                return false
            case "help", "?":
                out(Self.help)
            case "pwd":
                out(cwd)
            case "history":
                for (i, entry) in history.enumerated() { out(String(i + 1).leftPadded(to: 5) + "  " + entry) }
            case "ls":
                let targets = args.isEmpty ? ["."] : args
                for (i, target) in targets.enumerated() {
                    let (path, node) = try TreeView.resolve(root, target, from: cwd)
                    if targets.count > 1 { out((i > 0 ? "\n" : "") + path + ":") }
                    TreeView.lsText(path, node).forEach(out)
                }
            case "cd":
                let (path, node) = try TreeView.resolve(root, args.first ?? "/", from: cwd)
                guard node.isDirectory else { throw CLIError("\(path) is not a directory") }
                cwd = path
            case "cat":
                guard !args.isEmpty else { throw CLIError("cat needs a path, e.g. cat /topics/orders/0") }
                for target in args {
                    let (path, node) = try TreeView.resolve(root, target, from: cwd)
                    try TreeView.catText(path, node).forEach(out)
                }
            case "tree":
                let (path, node) = try TreeView.resolve(root, args.first ?? ".", from: cwd)
                TreeView.treeText(path, node).forEach(out)
            case "sql":
                if sqlFile == nil { sqlFile = try metadata.sqlFile() }
                SQLView.text(try SQLView.run(sqlFile!, rest)).forEach(out)
            default:
                throw CLIError("unknown command \"\(command)\"; type help for the list")
            }
        } catch let error as CLIError {
            err(sentence(error.description))
        } catch {
            err(sentence("\(error)"))
        }
        return true
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

struct MetadataShellCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Browse a snapshot or data dir interactively (ls, cd, cat, tree, pwd, sql, history, help, exit).")

    @Argument(help: "A snapshot file (*.checkpoint.sqlite), a node's data dir, or its __cluster_metadata-0 directory.")
    var file: String

    func run() throws {
        let metadata = inspect { try LoadedMetadata.load(file) }
        let interactive = isatty(STDIN_FILENO) != 0
        let session = MetadataShellSession(
            metadata, out: { print($0) },
            err: { message in
                FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            })
        if interactive {
            print(
                "Runnel metadata shell: \(file) (end offset \(metadata.endOffset), epoch \(metadata.epoch)). Type help for commands."
            )
        }
        while true {
            if interactive {
                print("runnel:\(session.cwd)> ", terminator: "")
                fflush(nil)
            }
            guard let line = readLine() else {
                if interactive { print() }
                break
            }
            if !session.execute(line) { break }
            fflush(nil)
        }
    }
}
