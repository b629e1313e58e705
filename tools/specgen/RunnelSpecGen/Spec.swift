import Foundation

/// A version range of the spec format: "N+", "N-M", "N" or "none".
public struct VersionRange: Equatable, Sendable {
    public var low: Int
    public var high: Int  // Int.max for "N+"

    public static let none = VersionRange(low: 1, high: 0)

    public var isEmpty: Bool { low > high }

    public init(low: Int, high: Int) {
        self.low = low
        self.high = high
    }

    public init(parsing text: String, context: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "none" {
            self = .none
        } else if t.hasSuffix("+"), let n = Int(t.dropLast()) {
            self.init(low: n, high: Int.max)
        } else if let dash = t.firstIndex(of: "-"), let a = Int(t[..<dash]), let b = Int(t[t.index(after: dash)...]) {
            self.init(low: a, high: b)
        } else if let n = Int(t) {
            self.init(low: n, high: n)
        } else {
            throw SpecError("\(context): cannot read version range \"\(text)\"")
        }
    }

    public func contains(_ v: Int) -> Bool { v >= low && v <= high }

    public func intersection(_ other: VersionRange) -> VersionRange {
        VersionRange(low: max(low, other.low), high: min(high, other.high))
    }

    /// Whether this range covers all of `other`.
    public func covers(_ other: VersionRange) -> Bool {
        other.isEmpty || (low <= other.low && high >= other.high)
    }
}

public struct SpecError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A field's type.
public indirect enum FieldType: Equatable, Sendable {
    case bool, int8, int16, uint16, int32, uint32, int64, float64, string, bytes, records, uuid
    case structure(String)
    case array(FieldType)

    init(parsing text: String) {
        if text.hasPrefix("[]") {
            self = .array(FieldType(parsing: String(text.dropFirst(2))))
            return
        }
        switch text {
        case "bool": self = .bool
        case "int8": self = .int8
        case "int16": self = .int16
        case "uint16": self = .uint16
        case "int32": self = .int32
        case "uint32": self = .uint32
        case "int64": self = .int64
        case "float64": self = .float64
        case "string": self = .string
        case "bytes": self = .bytes
        case "records": self = .records
        case "uuid": self = .uuid
        default: self = .structure(text)
        }
    }

    var structName: String? {
        switch self {
        case .structure(let n): n
        case .array(let e): e.structName
        default: nil
        }
    }

    var isArray: Bool {
        if case .array = self { return true }
        return false
    }
}

/// A field of a message, struct or record.
public struct Field {
    public var name: String
    public var type: FieldType
    public var versions: VersionRange
    public var nullable: VersionRange
    public var defaultValue: Any?
    public var hasDefault: Bool
    public var tag: Int?
    public var tagged: VersionRange
    public var fields: [Field]?
    public var compact: Bool
    public var doc: String

    var isTagged: Bool { tag != nil }
}

extension Field: @unchecked Sendable {}

/// One spec file: an API (request + response) or a metadata/control record.
public struct Spec {
    public enum Kind: Sendable { case api, record, control }
    public var kind: Kind
    public var name: String
    public var key: Int
    public var versions: VersionRange
    public var flexible: VersionRange
    public var notes: [String]
    public var request: [Field]
    public var response: [Field]
    public var fields: [Field]
    public var structs: [(String, [Field])]
    public var file: String
}

extension Spec: @unchecked Sendable {}

enum SpecParser {
    static func parse(file: URL) throws -> Spec {
        let data = try Data(contentsOf: file)
        let name = file.lastPathComponent
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw SpecError("\(name): not a JSON object")
        }
        let kind: Spec.Kind
        let specName: String
        if let api = obj["api"] as? String {
            kind = .api
            specName = api
        } else if let record = obj["record"] as? String {
            kind = (obj["control"] as? Bool) == true ? .control : .record
            specName = record
        } else {
            throw SpecError("\(name): needs \"api\" or \"record\"")
        }
        guard let key = obj["key"] as? Int else { throw SpecError("\(name): needs an integer \"key\"") }
        let versions = try VersionRange(parsing: obj["versions"] as? String ?? "", context: name)
        let flexibleText = obj["flexible"] as? String ?? "none"
        let flexible = try VersionRange(parsing: flexibleText, context: name)
        func fieldList(_ key: String) throws -> [Field] {
            guard let list = obj[key] else { return [] }
            guard let array = list as? [[String: Any]] else { throw SpecError("\(name): \"\(key)\" must be a list of fields") }
            return try array.map { try parseField($0, context: "\(name) \(key)") }
        }
        var structs: [(String, [Field])] = []
        if let s = obj["structs"] as? [String: Any] {
            for structName in s.keys.sorted() {
                guard let list = s[structName] as? [[String: Any]] else { throw SpecError("\(name): struct \(structName) must be a list") }
                structs.append((structName, try list.map { try parseField($0, context: "\(name) struct \(structName)") }))
            }
        }
        return Spec(
            kind: kind, name: specName, key: key, versions: versions, flexible: flexible,
            notes: obj["notes"] as? [String] ?? [],
            request: try fieldList("request"), response: try fieldList("response"), fields: try fieldList("fields"),
            structs: structs, file: name
        )
    }

    static func parseField(_ obj: [String: Any], context: String) throws -> Field {
        guard let name = obj["name"] as? String else { throw SpecError("\(context): a field has no name") }
        let ctx = "\(context).\(name)"
        guard let typeText = obj["type"] as? String else { throw SpecError("\(ctx): no type") }
        let versions = try VersionRange(parsing: obj["versions"] as? String ?? "", context: ctx)
        let nullable = try (obj["nullable"] as? String).map { try VersionRange(parsing: $0, context: ctx) } ?? .none
        let tagged = try (obj["tagged"] as? String).map { try VersionRange(parsing: $0, context: ctx) } ?? .none
        let tag = obj["tag"] as? Int
        if tag != nil && tagged.isEmpty { throw SpecError("\(ctx): a tag needs \"tagged\" versions") }
        var fields: [Field]? = nil
        if let list = obj["fields"] as? [[String: Any]] {
            fields = try list.map { try parseField($0, context: ctx) }
        }
        let hasDefault = obj.keys.contains("default")
        return Field(
            name: name, type: FieldType(parsing: typeText), versions: versions, nullable: nullable,
            defaultValue: obj["default"] is NSNull ? nil : obj["default"], hasDefault: hasDefault,
            tag: tag, tagged: tagged, fields: fields, compact: obj["compact"] as? Bool ?? true,
            doc: obj["doc"] as? String ?? ""
        )
    }
}
