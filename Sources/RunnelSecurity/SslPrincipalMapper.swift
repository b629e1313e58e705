/// Kafka's `ssl.principal.mapping.rules`: turns a client certificate's subject distinguished name
/// (RFC 2253 form, `CN=alice,OU=eng,O=example`, as Java's `X500Principal.getName()` prints it)
/// into the name of its `User` principal.
///
/// Rules are comma-separated and tried in order; the first that applies gives the name:
/// - `DEFAULT`: the whole distinguished name.
/// - `RULE:pattern/replacement/` with an optional `L` or `U` after the last slash: when the regular
///   expression `pattern` matches the whole name, every match of it in the name is replaced by
///   `replacement` (`$1` and `${name}` refer to groups; `\` escapes), then the result is
///   lower-cased (`L`) or upper-cased (`U`). A `/` inside the pattern or replacement is written
///   `\/`. A `$n` naming a group the pattern does not have stays literal, as in Kafka.
///
/// Patterns are Swift regular expressions, whose syntax is Java's for the constructs rules use
/// (classes, groups, `.*?`, anchors, `\\s`).
public struct SslPrincipalMapper: Sendable, CustomStringConvertible {
    enum Rule: Sendable, CustomStringConvertible {
        case useDistinguishedName
        case replace(pattern: String, replacement: String, caseChange: Character?)

        var description: String {
            switch self {
            case .useDistinguishedName: "DEFAULT"
            case .replace(let pattern, let replacement, let change):
                "RULE:\(pattern)/\(replacement)" + (change.map { "/\($0)" } ?? "")
            }
        }
    }

    let rules: [Rule]

    /// Kafka's default: `DEFAULT`.
    public static let defaultRules = "DEFAULT"

    /// The mapper for `rules` (the value of `ssl.principal.mapping.rules`). Refuses a rule that is
    /// neither `DEFAULT` nor `RULE:pattern/replacement/[LU]`, or whose pattern is not a regular
    /// expression.
    public init(rules text: String = SslPrincipalMapper.defaultRules) throws(SecurityConfigError) {
        var rules: [Rule] = []
        let chars = Array(text.trimmingWhitespace())
        var i = 0
        func skipSpaces() { while i < chars.count, chars[i].isWhitespace { i += 1 } }
        while true {
            skipSpaces()
            if i >= chars.count { break }
            let start = i
            if String(chars[i...].prefix(5)) == "RULE:" {
                i += 5
                func part() -> String? {
                    var out = ""
                    while i < chars.count {
                        if chars[i] == "\\" && i + 1 < chars.count {
                            out.append(chars[i])
                            out.append(chars[i + 1])
                            i += 2
                        } else if chars[i] == "/" {
                            i += 1
                            return out
                        } else {
                            out.append(chars[i])
                            i += 1
                        }
                    }
                    return nil
                }
                guard let pattern = part(), let replacement = part() else {
                    throw SecurityConfigError(
                        "ssl.principal.mapping.rules has an invalid rule: \(String(chars[start...])) (write RULE:pattern/replacement/ with an optional L or U)"
                    )
                }
                var change: Character?
                if i < chars.count, chars[i] == "L" || chars[i] == "U" {
                    change = chars[i]
                    i += 1
                }
                var rest = ""
                while i < chars.count, chars[i] != "," {
                    rest.append(chars[i])
                    i += 1
                }
                let junk = rest.trimmingWhitespace()
                guard junk.isEmpty else {
                    throw SecurityConfigError(
                        "ssl.principal.mapping.rules has an invalid rule: `\(String(chars[start..<i]).trimmingWhitespace())`, unmatched substring: `\(junk)`"
                    )
                }
                do {
                    _ = try Regex(pattern)
                } catch {
                    throw SecurityConfigError(
                        "ssl.principal.mapping.rules has a rule whose pattern `\(pattern)` is not a regular expression: \(error)"
                    )
                }
                rules.append(.replace(pattern: pattern, replacement: replacement, caseChange: change))
            } else {
                var token = ""
                while i < chars.count, chars[i] != "," {
                    token.append(chars[i])
                    i += 1
                }
                let rule = token.trimmingWhitespace()
                if rule == "DEFAULT" {
                    rules.append(.useDistinguishedName)
                } else if !rule.isEmpty {
                    throw SecurityConfigError(
                        "ssl.principal.mapping.rules has an invalid rule: `\(rule)` (use DEFAULT or RULE:pattern/replacement/[LU])"
                    )
                }
            }
            skipSpaces()
            if i < chars.count {
                guard chars[i] == "," else {
                    throw SecurityConfigError(
                        "ssl.principal.mapping.rules: rules must be separated by commas, near `\(String(chars[i...]))`")
                }
                i += 1
            }
        }
        self.rules = rules
    }

    /// The principal name for `distinguishedName`, nil when no rule applies (Kafka then refuses
    /// the connection: "No rules apply to ...").
    public func name(for distinguishedName: String) -> String? {
        for rule in rules {
            if let name = Self.apply(rule, to: distinguishedName) { return name }
        }
        return nil
    }

    /// The `User` principal for a certificate subject, nil when no rule applies.
    public func principal(for distinguishedName: String) -> KafkaPrincipal? {
        name(for: distinguishedName).map(KafkaPrincipal.user)
    }

    static func apply(_ rule: Rule, to name: String) -> String? {
        switch rule {
        case .useDistinguishedName:
            return name
        case .replace(let pattern, let replacement, let change):
            guard let regex = try? Regex(pattern), (try? regex.wholeMatch(in: name)) != nil else { return nil }
            var result = ""
            var last = name.startIndex
            for match in name.matches(of: regex) {
                result += name[last..<match.range.lowerBound]
                result += expand(replacement, match)
                last = match.range.upperBound
            }
            result += name[last...]
            switch change {
            case "L": return result.lowercased()
            case "U": return result.uppercased()
            default: return result
            }
        }
    }

    /// Java's replacement syntax (`Matcher.appendReplacement`) with Kafka's leniency: `\c` is `c`;
    /// `$n` takes the longest run of digits that names a group; `${name}` a named group; a `$` that
    /// names no group stays literal.
    static func expand(_ replacement: String, _ match: Regex<AnyRegexOutput>.Match) -> String {
        let groups = match.output.count - 1
        let chars = Array(replacement)
        var out = ""
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\\" && i + 1 < chars.count {
                out.append(chars[i + 1])
                i += 2
            } else if c == "$", i + 1 < chars.count, let first = chars[i + 1].wholeNumberValue, chars[i + 1].isASCII,
                first <= groups
            {
                var number = first
                i += 2
                while i < chars.count, let digit = chars[i].wholeNumberValue, chars[i].isASCII,
                    number * 10 + digit <= groups
                {
                    number = number * 10 + digit
                    i += 1
                }
                if let text = match.output[number].substring { out += text }
            } else if c == "$", i + 1 < chars.count, chars[i + 1] == "{",
                let close = chars[(i + 2)...].firstIndex(of: "}"),
                let group = match.output[String(chars[(i + 2)..<close])]
            {
                if let text = group.substring { out += text }
                i = close + 1
            } else {
                out.append(c)
                i += 1
            }
        }
        return out
    }

    /// The rules, as Kafka prints them.
    public var description: String {
        "SslPrincipalMapper(rules = [" + rules.map(\.description).joined(separator: ", ") + "])"
    }
}
