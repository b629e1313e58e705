/// A `server.properties` file as Java's `Properties.load` reads it: `key=value`, `key: value` or
/// `key value`; `#` and `!` comments; backslash line continuations and escapes.
public struct Properties: Sendable, Equatable {
    public private(set) var entries: [String: String] = [:]
    /// Keys in file order (for stable warnings).
    public private(set) var keys: [String] = []

    public init(_ entries: [String: String] = [:]) {
        self.entries = entries
        self.keys = entries.keys.sorted()
    }

    public subscript(key: String) -> String? {
        get { entries[key] }
        set {
            if entries[key] == nil, newValue != nil { keys.append(key) }
            entries[key] = newValue
            if newValue == nil { keys.removeAll { $0 == key } }
        }
    }

    public init(parsing text: String) {
        var logical: [String] = []
        var current = ""
        var continuing = false
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if continuing {
                line = line.drop { $0 == " " || $0 == "\t" }
            } else {
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix("!") { continue }
                line = trimmed
            }
            // An odd number of trailing backslashes continues the line.
            var backslashes = 0
            for c in line.reversed() { if c == "\\" { backslashes += 1 } else { break } }
            if backslashes % 2 == 1 {
                current += line.dropLast()
                continuing = true
                continue
            }
            current += line
            logical.append(current)
            current = ""
            continuing = false
        }
        if continuing { logical.append(current) }
        for line in logical {
            var key = ""
            var value = ""
            var index = line.startIndex
            var escaped = false
            while index < line.endIndex {
                let c = line[index]
                if escaped {
                    key.append(Self.unescape(c))
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "=" || c == ":" || c == " " || c == "\t" {
                    break
                } else {
                    key.append(c)
                }
                index = line.index(after: index)
            }
            // Skip the separator: whitespace, then at most one '=' or ':', then whitespace.
            while index < line.endIndex, line[index] == " " || line[index] == "\t" { index = line.index(after: index) }
            if index < line.endIndex, line[index] == "=" || line[index] == ":" { index = line.index(after: index) }
            while index < line.endIndex, line[index] == " " || line[index] == "\t" { index = line.index(after: index) }
            escaped = false
            while index < line.endIndex {
                let c = line[index]
                if escaped {
                    value.append(Self.unescape(c))
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else {
                    value.append(c)
                }
                index = line.index(after: index)
            }
            self[key] = value
        }
    }

    private static func unescape(_ c: Character) -> Character {
        switch c {
        case "t": "\t"
        case "n": "\n"
        case "r": "\r"
        case "f": "\u{0C}"
        default: c
        }
    }

    /// Writes `key=value` lines (meta.properties).
    public func rendered(header: [String] = []) -> String {
        var out = header.map { "#" + $0 }.joined(separator: "\n")
        if !out.isEmpty { out += "\n" }
        for key in keys { out += "\(key)=\(entries[key]!)\n" }
        return out
    }
}
