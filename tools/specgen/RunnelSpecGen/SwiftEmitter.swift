import Foundation

/// Writes Swift source for one spec.
struct SwiftEmitter {
    let spec: Spec

    private static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
        "inout", "internal", "let", "open", "operator", "private", "protocol", "public", "rethrows", "static",
        "struct", "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do",
        "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while",
        "as", "catch", "false", "is", "nil", "super", "self", "Self", "throw", "throws", "true", "try", "Type",
        "Any", "Protocol",
    ]

    static func ident(_ name: String) -> String {
        keywords.contains(name) ? "`\(name)`" : name
    }

    // MARK: structs

    /// A struct to emit: its name, fields, and the version range it can appear in.
    struct StructDef {
        var name: String
        var fields: [Field]
    }

    /// Collects every struct reachable from `fields`, flat, deduplicated by name.
    func collectStructs(_ fields: [Field], into out: inout [StructDef], common: [(String, [Field])]) throws {
        for field in fields {
            guard let structName = field.type.structName else { continue }
            let body: [Field]
            if let inline = field.fields {
                body = inline
            } else if let shared = common.first(where: { $0.0 == structName }) {
                body = shared.1
            } else if out.contains(where: { $0.name == structName }) {
                continue
            } else {
                throw SpecError("\(spec.file): struct \(structName) of field \(field.name) has no fields")
            }
            if let existing = out.first(where: { $0.name == structName }) {
                guard sameShape(existing.fields, body) else {
                    throw SpecError("\(spec.file): struct \(structName) is declared twice with different fields")
                }
                continue
            }
            out.append(StructDef(name: structName, fields: body))
            try collectStructs(body, into: &out, common: common)
        }
    }

    private func sameShape(_ a: [Field], _ b: [Field]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x.name != y.name || x.type != y.type || x.versions != y.versions || x.tag != y.tag {
            return false
        }
        return true
    }

    // MARK: types and defaults

    func swiftType(_ type: FieldType) -> String {
        switch type {
        case .bool: "Bool"
        case .int8: "Int8"
        case .int16: "Int16"
        case .uint16: "UInt16"
        case .int32: "Int32"
        case .uint32: "UInt32"
        case .int64: "Int64"
        case .float64: "Double"
        case .string: "String"
        case .bytes: "ByteBuffer"
        case .records: "Records"
        case .uuid: "KafkaUUID"
        case .structure(let n): n
        case .array(let e): "[\(swiftType(e))]"
        }
    }

    func isOptional(_ f: Field) -> Bool { !f.nullable.isEmpty || f.type == .records }

    func declaredType(_ f: Field) -> String {
        isOptional(f) ? swiftType(f.type) + "?" : swiftType(f.type)
    }

    func defaultExpr(_ f: Field) throws -> String {
        if f.type == .records { return "nil" }
        if f.hasDefault && f.defaultValue == nil {
            guard isOptional(f) else { throw SpecError("\(spec.file): \(f.name) has a null default but is never nullable") }
            return "nil"
        }
        let value = f.defaultValue
        switch f.type {
        case .bool:
            if let b = value as? Bool { return b ? "true" : "false" }
            if let s = value as? String { return s == "true" ? "true" : "false" }
            return "false"
        case .int8, .int16, .uint16, .int32, .uint32, .int64:
            if let n = value as? NSNumber { return "\(n.int64Value)" }
            if let s = value as? String {
                if s.hasPrefix("0x"), let n = Int64(s.dropFirst(2), radix: 16) { return "\(n)" }
                if let n = Int64(s) { return "\(n)" }
            }
            return "0"
        case .float64:
            if let n = value as? NSNumber { return "\(n.doubleValue)" }
            return "0"
        case .string:
            if let s = value as? String { return "\"\(s)\"" }
            return "\"\""
        case .bytes: return "ByteBuffer()"
        case .uuid: return ".zero"
        case .structure(let n): return "\(n)()"
        case .array: return "[]"
        case .records: return "nil"
        }
    }

    // MARK: version conditions

    /// A Swift condition on `version` that is true inside `range`, simplified against `within`.
    func cond(_ range: VersionRange, within: VersionRange) -> String {
        let r = range.intersection(within)
        if r.isEmpty { return "false" }
        var parts: [String] = []
        if r.low > within.low { parts.append("version >= \(r.low)") }
        if r.high < within.high { parts.append("version <= \(r.high)") }
        if parts.isEmpty { return "true" }
        if parts.count == 2 && r.low == r.high { return "version == \(r.low)" }
        return parts.joined(separator: " && ")
    }

    func flexibleCond(within: VersionRange) -> String {
        cond(spec.flexible, within: within)
    }

    // MARK: emitting a struct body

    /// Emits properties, inits, write and read for a struct of `fields` valid in `scope` versions.
    func emitBody(name: String, fields: [Field], scope: VersionRange, indent: String, out: inout String) throws {
        let i = indent
        for f in fields {
            if !f.doc.isEmpty { out += "\(i)/// \(f.doc)\n" }
            out += "\(i)public var \(Self.ident(f.name)): \(declaredType(f)) = \(try defaultExpr(f))\n"
        }
        if !spec.flexible.intersection(scope).isEmpty {
            out += "\(i)/// Tagged fields this code does not know, kept so they round-trip.\n"
            out += "\(i)public var unknownTaggedFields: [TaggedField] = []\n"
        }
        out += "\n\(i)public init() {}\n\n"
        // Memberwise init with defaults.
        if !fields.isEmpty {
            out += "\(i)public init(\n"
            let params = try fields.map { f in
                "\(i)    \(Self.ident(f.name)): \(declaredType(f)) = \(try defaultExpr(f))"
            }
            out += params.joined(separator: ",\n") + "\n\(i)) {\n"
            for f in fields {
                out += "\(i)    self.\(Self.ident(f.name)) = \(Self.ident(f.name))\n"
            }
            out += "\(i)}\n\n"
        }
        try emitWrite(fields: fields, scope: scope, indent: i, out: &out)
        out += "\n"
        try emitRead(name: name, fields: fields, scope: scope, indent: i, out: &out)
    }

    // MARK: write

    func compactExpr(_ f: Field) -> String { f.compact ? "flexible" : "false" }

    func emitWrite(fields: [Field], scope: VersionRange, indent i: String, out: inout String) throws {
        out += "\(i)public func write(to w: inout WireWriter, version: Int16) {\n"
        let flex = flexibleCond(within: scope)
        out += "\(i)    let flexible = \(flex)\n"
        if flex == "false" { out += "\(i)    _ = flexible\n" }
        for f in fields {
            let regular = f.versions.intersection(scope)
            // Versions where the field is a regular (untagged) field.
            let untagged = f.isTagged ? subtract(regular, f.tagged) : regular
            if untagged.isEmpty { continue }
            let c = cond(untagged, within: scope)
            if c == "false" { continue }
            var body = ""
            try writeValue(f, expr: "self.\(Self.ident(f.name))", indent: i + "        ", out: &body, scope: untagged)
            if c == "true" {
                out += body.replacingOccurrences(of: "\n\(i)        ", with: "\n\(i)    ").replacingFirst("\(i)        ", with: "\(i)    ")
            } else {
                out += "\(i)    if \(c) {\n" + body + "\(i)    }\n"
            }
        }
        if !spec.flexible.intersection(scope).isEmpty {
            let taggedFields = fields.filter { $0.isTagged && !$0.tagged.intersection(scope).isEmpty }
            out += "\(i)    if flexible {\n"
            if taggedFields.isEmpty {
                out += "\(i)        w.writeTaggedFields([], unknown: unknownTaggedFields)\n"
            } else {
                out += "\(i)        var tagged: [TaggedField] = []\n"
                for f in taggedFields {
                    let c = cond(f.tagged.intersection(scope), within: scope)
                    let name = "self.\(Self.ident(f.name))"
                    let guardExpr = (c == "true" ? "" : "\(c) && ") + "\(name) != \(try defaultExpr(f))"
                    out += "\(i)        if \(guardExpr) {\n"
                    out += "\(i)            tagged.append(WireWriter.tagged(\(f.tag!)) { w in\n"
                    out += "\(i)                let flexible = true\n"
                    out += "\(i)                _ = flexible\n"
                    var body = ""
                    try writeValue(f, expr: name, indent: i + "                ", out: &body, scope: f.tagged.intersection(scope))
                    out += body
                    out += "\(i)            })\n"
                    out += "\(i)        }\n"
                }
                out += "\(i)        w.writeTaggedFields(tagged, unknown: unknownTaggedFields)\n"
            }
            out += "\(i)    }\n"
        }
        out += "\(i)}\n"
    }

    /// The part of `a` not in `b`, when that is one range (tagged ranges are suffixes in practice).
    func subtract(_ a: VersionRange, _ b: VersionRange) -> VersionRange {
        if b.isEmpty || a.isEmpty { return a }
        if b.low <= a.low && b.high >= a.high { return .none }
        if b.low > a.low && b.high >= a.high { return VersionRange(low: a.low, high: b.low - 1) }
        if b.low <= a.low && b.high < a.high { return VersionRange(low: b.high + 1, high: a.high) }
        return a  // a hole in the middle: not in any spec
    }

    /// Emits code writing `expr` of field `f`; `scope` is the versions in which this runs.
    func writeValue(_ f: Field, expr: String, indent i: String, out: inout String, scope: VersionRange) throws {
        let optional = isOptional(f)
        let nullableHere = f.nullable.intersection(scope)
        let alwaysNullable = !nullableHere.isEmpty && nullableHere.covers(scope)
        let neverNullable = nullableHere.isEmpty
        let compact = compactExpr(f)
        switch f.type {
        case .array(let element):
            if optional {
                if neverNullable {
                    out += "\(i)w.writeArrayLength((\(expr) ?? []).count, compact: \(compact))\n"
                    out += "\(i)for element in \(expr) ?? [] {\n"
                } else if alwaysNullable {
                    out += "\(i)w.writeArrayLength(\(expr)?.count, compact: \(compact))\n"
                    out += "\(i)for element in \(expr) ?? [] {\n"
                } else {
                    let nc = cond(nullableHere, within: scope)
                    out += "\(i)w.writeArrayLength(\(nc) ? \(expr)?.count : (\(expr) ?? []).count, compact: \(compact))\n"
                    out += "\(i)for element in \(expr) ?? [] {\n"
                }
            } else {
                out += "\(i)w.writeArrayLength(\(expr).count, compact: \(compact))\n"
                out += "\(i)for element in \(expr) {\n"
            }
            try writeScalar(element, expr: "element", optional: false, nullable: .none, compact: compact, indent: i + "    ", out: &out, scope: scope)
            out += "\(i)}\n"
        default:
            try writeScalar(f.type, expr: expr, optional: optional, nullable: nullableHere, compact: compact, indent: i, out: &out, scope: scope)
        }
    }

    func writeScalar(_ type: FieldType, expr: String, optional: Bool, nullable: VersionRange, compact: String, indent i: String, out: inout String, scope: VersionRange) throws {
        let alwaysNullable = !nullable.isEmpty && nullable.covers(scope)
        let nc = cond(nullable, within: scope)
        switch type {
        case .bool: out += "\(i)w.writeBool(\(expr))\n"
        case .int8: out += "\(i)w.writeInt8(\(expr))\n"
        case .int16: out += "\(i)w.writeInt16(\(expr))\n"
        case .uint16: out += "\(i)w.writeUInt16(\(expr))\n"
        case .int32: out += "\(i)w.writeInt32(\(expr))\n"
        case .uint32: out += "\(i)w.writeUInt32(\(expr))\n"
        case .int64: out += "\(i)w.writeInt64(\(expr))\n"
        case .float64: out += "\(i)w.writeFloat64(\(expr))\n"
        case .uuid: out += "\(i)w.writeUUID(\(expr))\n"
        case .string:
            if !optional {
                out += "\(i)w.writeString(\(expr), compact: \(compact))\n"
            } else if alwaysNullable {
                out += "\(i)w.writeNullableString(\(expr), compact: \(compact))\n"
            } else if nullable.isEmpty {
                out += "\(i)w.writeString(\(expr) ?? \"\", compact: \(compact))\n"
            } else {
                out += "\(i)if \(nc) { w.writeNullableString(\(expr), compact: \(compact)) } else { w.writeString(\(expr) ?? \"\", compact: \(compact)) }\n"
            }
        case .bytes:
            if !optional {
                out += "\(i)w.writeBytes(\(expr), compact: \(compact))\n"
            } else if alwaysNullable {
                out += "\(i)w.writeNullableBytes(\(expr), compact: \(compact))\n"
            } else if nullable.isEmpty {
                out += "\(i)w.writeBytes(\(expr) ?? ByteBuffer(), compact: \(compact))\n"
            } else {
                out += "\(i)if \(nc) { w.writeNullableBytes(\(expr), compact: \(compact)) } else { w.writeBytes(\(expr) ?? ByteBuffer(), compact: \(compact)) }\n"
            }
        case .records:
            if alwaysNullable {
                out += "\(i)w.writeRecords(\(expr), compact: \(compact))\n"
            } else if nullable.isEmpty {
                out += "\(i)w.writeRecords(\(expr) ?? .empty, compact: \(compact))\n"
            } else {
                out += "\(i)w.writeRecords(\(nc) ? \(expr) : (\(expr) ?? .empty), compact: \(compact))\n"
            }
        case .structure(let n):
            if !optional {
                out += "\(i)\(expr).write(to: &w, version: version)\n"
            } else {
                // A nullable struct: int8 -1 for null, 1 then the struct otherwise.
                out += "\(i)if let value = \(expr) {\n"
                out += "\(i)    if \(nc == "false" ? "false" : nc) { w.writeInt8(1) }\n"
                out += "\(i)    value.write(to: &w, version: version)\n"
                out += "\(i)} else {\n"
                out += "\(i)    if \(nc == "false" ? "false" : nc) { w.writeInt8(-1) } else { \(n)().write(to: &w, version: version) }\n"
                out += "\(i)}\n"
            }
        case .array:
            throw SpecError("\(spec.file): nested arrays are not supported")
        }
    }

    // MARK: read

    func emitRead(name: String, fields: [Field], scope: VersionRange, indent i: String, out: inout String) throws {
        out += "\(i)public init(from r: inout WireReader, version: Int16) throws {\n"
        let flex = flexibleCond(within: scope)
        out += "\(i)    let flexible = \(flex)\n"
        if flex == "false" { out += "\(i)    _ = flexible\n" }
        for f in fields {
            let regular = f.versions.intersection(scope)
            let untagged = f.isTagged ? subtract(regular, f.tagged) : regular
            if untagged.isEmpty { continue }
            let c = cond(untagged, within: scope)
            if c == "false" { continue }
            var body = ""
            try readValue(f, target: "self.\(Self.ident(f.name))", indent: i + "        ", out: &body, scope: untagged)
            if c == "true" {
                out += body.replacingOccurrences(of: "\n\(i)        ", with: "\n\(i)    ").replacingFirst("\(i)        ", with: "\(i)    ")
            } else {
                out += "\(i)    if \(c) {\n" + body + "\(i)    }\n"
            }
        }
        if !spec.flexible.intersection(scope).isEmpty {
            let taggedFields = fields.filter { $0.isTagged && !$0.tagged.intersection(scope).isEmpty }
            out += "\(i)    if flexible {\n"
            out += "\(i)        for field in try r.readTaggedFieldList() {\n"
            if taggedFields.isEmpty {
                out += "\(i)            self.unknownTaggedFields.append(field)\n"
            } else {
                out += "\(i)            switch field.tag {\n"
                for f in taggedFields {
                    let c = cond(f.tagged.intersection(scope), within: scope)
                    out += "\(i)            case \(f.tag!)\(c == "true" ? "" : " where \(c)"):\n"
                    out += "\(i)                var r = WireReader(field.data)\n"
                    out += "\(i)                let flexible = true\n"
                    out += "\(i)                _ = flexible\n"
                    try readValue(f, target: "self.\(Self.ident(f.name))", indent: i + "                ", out: &out, scope: f.tagged.intersection(scope))
                    out += "\(i)                try r.expectEnd(\"tagged field \(f.name)\")\n"
                }
                out += "\(i)            default:\n"
                out += "\(i)                self.unknownTaggedFields.append(field)\n"
                out += "\(i)            }\n"
            }
            out += "\(i)        }\n"
            out += "\(i)    }\n"
        }
        out += "\(i)}\n"
    }

    func readValue(_ f: Field, target: String, indent i: String, out: inout String, scope: VersionRange) throws {
        let optional = isOptional(f)
        let nullableHere = f.nullable.intersection(scope)
        let compact = compactExpr(f)
        switch f.type {
        case .array(let element):
            out += "\(i)if let count = try r.readArrayLength(compact: \(compact)) {\n"
            out += "\(i)    var elements: \(swiftType(f.type)) = []\n"
            out += "\(i)    elements.reserveCapacity(count)\n"
            out += "\(i)    for _ in 0..<count {\n"
            try readScalar(element, target: "elements.append", call: true, optional: false, nullable: .none, compact: compact, indent: i + "        ", out: &out, scope: scope, name: f.name)
            out += "\(i)    }\n"
            out += "\(i)    \(target) = elements\n"
            out += "\(i)} else {\n"
            if optional && !nullableHere.isEmpty {
                let nc = cond(nullableHere, within: scope)
                if nc == "true" {
                    out += "\(i)    \(target) = nil\n"
                } else {
                    out += "\(i)    guard \(nc) else { throw WireError.invalidValue(\"null array \(f.name)\") }\n"
                    out += "\(i)    \(target) = nil\n"
                }
            } else {
                out += "\(i)    throw WireError.invalidValue(\"null array \(f.name)\")\n"
            }
            out += "\(i)}\n"
        default:
            try readScalar(f.type, target: target, call: false, optional: optional, nullable: nullableHere, compact: compact, indent: i, out: &out, scope: scope, name: f.name)
        }
    }

    func readScalar(_ type: FieldType, target: String, call: Bool, optional: Bool, nullable: VersionRange, compact: String, indent i: String, out: inout String, scope: VersionRange, name: String) throws {
        func assign(_ value: String) -> String {
            call ? "\(i)\(target)(\(value))\n" : "\(i)\(target) = \(value)\n"
        }
        let nc = cond(nullable, within: scope)
        switch type {
        case .bool: out += assign("try r.readBool()")
        case .int8: out += assign("try r.readInt8()")
        case .int16: out += assign("try r.readInt16()")
        case .uint16: out += assign("try r.readUInt16()")
        case .int32: out += assign("try r.readInt32()")
        case .uint32: out += assign("try r.readUInt32()")
        case .int64: out += assign("try r.readInt64()")
        case .float64: out += assign("try r.readFloat64()")
        case .uuid: out += assign("try r.readUUID()")
        case .string:
            if nullable.isEmpty {
                out += assign("try r.readString(compact: \(compact))")
            } else if nc == "true" {
                out += assign("try r.readNullableString(compact: \(compact))")
            } else {
                out += assign("\(nc) ? try r.readNullableString(compact: \(compact)) : try r.readString(compact: \(compact))")
            }
        case .bytes:
            if nullable.isEmpty {
                out += assign("try r.readBytes(compact: \(compact))")
            } else if nc == "true" {
                out += assign("try r.readNullableBytes(compact: \(compact))")
            } else {
                out += assign("\(nc) ? try r.readNullableBytes(compact: \(compact)) : try r.readBytes(compact: \(compact))")
            }
        case .records:
            out += assign("try r.readRecords(compact: \(compact))")
        case .structure(let n):
            if !optional || nullable.isEmpty {
                out += assign("try \(n)(from: &r, version: version)")
            } else if nc == "true" {
                out += "\(i)if try r.readInt8() < 0 {\n"
                out += "\(i)    \(target) = nil\n"
                out += "\(i)} else {\n"
                out += "\(i)    \(target) = try \(n)(from: &r, version: version)\n"
                out += "\(i)}\n"
            } else {
                out += "\(i)if \(nc), try r.readInt8() < 0 {\n"
                out += "\(i)    \(target) = nil\n"
                out += "\(i)} else {\n"
                out += "\(i)    \(target) = try \(n)(from: &r, version: version)\n"
                out += "\(i)}\n"
            }
        case .array:
            throw SpecError("\(spec.file): nested arrays are not supported (\(name))")
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
