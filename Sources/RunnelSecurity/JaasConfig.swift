/// One login module of a JAAS configuration, as Kafka's `sasl.jaas.config` and
/// `listener.name.<listener>.<mechanism>.sasl.jaas.config` hold it:
///
///     org.apache.kafka.common.security.plain.PlainLoginModule required
///         username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";
public struct JaasLoginModule: Sendable, Equatable {
    /// The login module's class name.
    public var name: String
    /// `required`, `requisite`, `sufficient` or `optional`, lower-cased.
    public var controlFlag: String
    /// The `key=value` options; a key given twice keeps its last value, as in Kafka.
    public var options: [String: String]

    public init(name: String, controlFlag: String, options: [String: String]) {
        self.name = name
        self.controlFlag = controlFlag
        self.options = options
    }

    /// Kafka's PLAIN login module.
    public static let plainLoginModule = "org.apache.kafka.common.security.plain.PlainLoginModule"
    /// Kafka's SCRAM login module.
    public static let scramLoginModule = "org.apache.kafka.common.security.scram.ScramLoginModule"
}

/// Parses JAAS configuration text as Kafka's `JaasConfig` does: login modules, each
/// `<class name> <control flag> [key=value ...];`, values quoted with `"` or `'` (backslash
/// escapes as in Java's StreamTokenizer) or bare words; `//` and `/* */` comments.
public enum JaasConfig {
    /// The login modules of `text`, in order. Errors name what is wrong, as Kafka's do.
    public static func parse(_ text: String) throws(SecurityConfigError) -> [JaasLoginModule] {
        var tokens = try tokenize(text)[...]
        var modules: [JaasLoginModule] = []
        while let first = tokens.popFirst() {
            guard case .word(let name) = first else {
                throw SecurityConfigError("JAAS config holds `\(first)` where a login module name should be")
            }
            guard let flagToken = tokens.popFirst() else {
                throw SecurityConfigError("Login module control flag not specified in JAAS config")
            }
            let flag = flagToken.text.lowercased()
            guard ["required", "requisite", "sufficient", "optional"].contains(flag) else {
                throw SecurityConfigError("Invalid login module control flag '\(flagToken.text)' in JAAS config")
            }
            var options: [String: String] = [:]
            var terminated = false
            while let token = tokens.popFirst() {
                if token == .semicolon {
                    terminated = true
                    break
                }
                let key = token.text
                guard tokens.popFirst() == .equals, let value = tokens.popFirst(), value.isValue else {
                    throw SecurityConfigError("Value not specified for key '\(key)' in JAAS config")
                }
                options[key] = value.text
            }
            guard terminated else { throw SecurityConfigError("JAAS config entry not terminated by semi-colon") }
            modules.append(JaasLoginModule(name: name, controlFlag: flag, options: options))
        }
        return modules
    }

    /// The single login module of a `sasl.jaas.config` value (Kafka requires exactly one).
    public static func parseSingle(
        _ text: String, property: String = "sasl.jaas.config"
    ) throws(SecurityConfigError) -> JaasLoginModule {
        let modules = try parse(text)
        guard modules.count == 1 else {
            throw SecurityConfigError(
                "JAAS config property \(property) contains \(modules.count) login modules, should be 1 module")
        }
        return modules[0]
    }

    enum Token: Equatable, CustomStringConvertible {
        case word(String)
        case quoted(String)
        case equals
        case semicolon
        case other(Character)

        var text: String {
            switch self {
            case .word(let s), .quoted(let s): s
            case .equals: "="
            case .semicolon: ";"
            case .other(let c): String(c)
            }
        }

        var isValue: Bool {
            switch self {
            case .word, .quoted: true
            default: false
            }
        }

        var description: String { text }
    }

    static func isWordCharacter(_ c: Character) -> Bool {
        c.isLetter || c.isNumber || c == "." || c == "-" || c == "_" || c == "$"
    }

    static func tokenize(_ text: String) throws(SecurityConfigError) -> [Token] {
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
            } else if c == "/" && i + 1 < chars.count && chars[i + 1] == "/" {
                while i < chars.count && chars[i] != "\n" { i += 1 }
            } else if c == "/" && i + 1 < chars.count && chars[i + 1] == "*" {
                i += 2
                while i + 1 < chars.count && !(chars[i] == "*" && chars[i + 1] == "/") { i += 1 }
                guard i + 1 < chars.count else {
                    throw SecurityConfigError("JAAS config has a /* comment that is never closed")
                }
                i += 2
            } else if c == "\"" || c == "'" {
                var value = ""
                i += 1
                var closed = false
                while i < chars.count {
                    let d = chars[i]
                    if d == c {
                        closed = true
                        i += 1
                        break
                    }
                    if d == "\\" && i + 1 < chars.count {
                        let e = chars[i + 1]
                        switch e {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "b": value.append("\u{08}")
                        case "f": value.append("\u{0C}")
                        default: value.append(e)
                        }
                        i += 2
                    } else {
                        value.append(d)
                        i += 1
                    }
                }
                guard closed else { throw SecurityConfigError("JAAS config has a quoted value that is never closed") }
                tokens.append(.quoted(value))
            } else if isWordCharacter(c) {
                var word = ""
                while i < chars.count && isWordCharacter(chars[i]) {
                    word.append(chars[i])
                    i += 1
                }
                tokens.append(.word(word))
            } else {
                tokens.append(c == "=" ? .equals : c == ";" ? .semicolon : .other(c))
                i += 1
            }
        }
        return tokens
    }
}
