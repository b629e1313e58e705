// Transcript (data-driven) tests, in the shape of etcd's `testdata/*.txt`: a file of steps, each a
// command line followed by `----` and the output the step must produce. The test runs every
// command, compares its output with the file, and fails with the whole differing step. With
// RUNNEL_REWRITE=1 in the environment it writes the actual output back instead, so a change in
// behaviour shows as a readable diff of the file under review.
//
// Format: lines starting with `#` before a command are comments (kept on rewrite); a command is
// one line `name key=value key=value ...`; then `----`; then zero or more output lines; then a
// blank line.
import Foundation

/// One command of a transcript: its name and `key=value` arguments.
public struct TranscriptCommand: Sendable {
    public var name: String
    public var arguments: [String: String]
    /// The line in the file, for messages.
    public var line: Int

    /// The value of `key`, or a failure naming the command.
    public func string(_ key: String) -> String {
        guard let value = arguments[key] else { fatalError("transcript line \(line): `\(name)` needs \(key)=") }
        return value
    }
    public func int(_ key: String) -> Int64 {
        guard let value = Int64(string(key)) else { fatalError("transcript line \(line): \(key)= is not a number") }
        return value
    }
    public func optionalInt(_ key: String) -> Int64? { arguments[key].map { _ in int(key) } }
    /// A comma-separated list of numbers (`1,2,3`; empty for `-`).
    public func ints(_ key: String) -> [Int64] {
        let text = string(key)
        if text == "-" || text.isEmpty { return [] }
        return text.split(separator: ",").map { part in
            guard let n = Int64(part) else { fatalError("transcript line \(line): \(key)= holds a non-number \(part)") }
            return n
        }
    }
}

/// Runs the transcript at `path` with `run` producing each command's output lines. Returns the
/// mismatches (empty when the file holds); with RUNNEL_REWRITE=1 it rewrites the file and
/// returns none.
public func runTranscript(_ path: String, _ run: (TranscriptCommand) -> [String]) throws -> [String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var out: [String] = []
    var mismatches: [String] = []
    var i = 0
    while i < lines.count {
        let line = lines[i]
        if line.hasPrefix("#") || line.trimmingCharacters(in: .whitespaces).isEmpty {
            out.append(line)
            i += 1
            continue
        }
        let commandLine = i + 1
        var parts = line.split(separator: " ").map(String.init)
        let name = parts.removeFirst()
        var arguments: [String: String] = [:]
        for part in parts {
            guard let eq = part.firstIndex(of: "=") else {
                fatalError("\(path):\(commandLine): `\(part)` is not key=value")
            }
            arguments[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        i += 1
        guard i < lines.count, lines[i] == "----" else {
            fatalError("\(path):\(commandLine): a command needs a ---- line after it")
        }
        i += 1
        var expected: [String] = []
        while i < lines.count, !lines[i].isEmpty {
            expected.append(lines[i])
            i += 1
        }
        let actual = run(TranscriptCommand(name: name, arguments: arguments, line: commandLine))
        if actual != expected {
            mismatches.append(
                "\(path):\(commandLine): \(line)\nexpected:\n\(expected.joined(separator: "\n"))\nactual:\n\(actual.joined(separator: "\n"))"
            )
        }
        out.append(line)
        out.append("----")
        out += actual
    }
    if ProcessInfo.processInfo.environment["RUNNEL_REWRITE"] == "1" {
        var rewritten = out.joined(separator: "\n")
        if !rewritten.hasSuffix("\n") { rewritten += "\n" }
        try rewritten.write(toFile: path, atomically: true, encoding: .utf8)
        return []
    }
    return mismatches
}

/// The transcript files (`*.txt`) in the directory `Transcripts` beside the test file `filePath`.
public func transcriptFiles(beside filePath: String) -> [String] {
    let dir = (filePath as NSString).deletingLastPathComponent + "/Transcripts"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { $0.hasSuffix(".txt") }.sorted().map { dir + "/" + $0 }
}
