import Foundation

/// Emits, for the test target, `arbitrary(version:rng:)` builders that fill every field present at
/// a version with seeded random values, so round-trip tests cover every field of every version.
enum ArbitraryEmitter {
    static func emit(_ specs: [Spec]) throws -> String {
        var out = Generator.header + "// swiftlint:disable all\nimport NIOCore\nimport RunnelCore\n@testable import RunnelWire\n\n"
        out += """
        extension SeededRandom {
            mutating func chance(_ oneIn: UInt64) -> Bool { next() % oneIn == 0 }
            mutating func int<T: FixedWidthInteger>(_ type: T.Type) -> T { T(truncatingIfNeeded: next()) }
            mutating func text() -> String {
                let length = Int(next() % 6)
                return String((0..<length).map { _ in Character(UnicodeScalar(UInt8(97 + next() % 26))) }) + (chance(8) ? "é✓" : "")
            }
            mutating func bytes() -> ByteBuffer {
                var b = ByteBuffer()
                for _ in 0..<(next() % 6) { b.writeInteger(UInt8(truncatingIfNeeded: next())) }
                return b
            }
            mutating func uuid() -> KafkaUUID { KafkaUUID(high: next(), low: next()) }
            mutating func count() -> Int { Int(next() % 3) }
        }

        /// A message that can fill itself with random values valid at a version.
        protocol ArbitraryMessage {
            static func arbitrary(version: Int16, rng: inout SeededRandom) -> Self
        }

        """
        out += "\n"
        for spec in specs {
            let emitter = SwiftEmitter(spec: spec)
            var roots: [(String, [Field])] = []
            switch spec.kind {
            case .api:
                roots = [(spec.name + "Request", spec.request), (spec.name + "Response", spec.response)]
            case .record, .control:
                roots = [(spec.name, spec.fields)]
            }
            for (typeName, fields) in roots {
                out += "extension \(typeName): ArbitraryMessage {\n"
                out += try builder(emitter: emitter, spec: spec, fields: fields, root: typeName, indent: "    ")
                var structs: [SwiftEmitter.StructDef] = []
                try emitter.collectStructs(fields, into: &structs, common: spec.structs)
                for s in structs {
                    out += "}\n\nextension \(typeName).\(s.name) {\n"
                    out += try builder(emitter: emitter, spec: spec, fields: s.fields, root: typeName, indent: "    ")
                }
                out += "}\n\n"
            }
        }
        return String(out.dropLast())
    }

    static func builder(emitter: SwiftEmitter, spec: Spec, fields: [Field], root: String, indent i: String) throws -> String {
        var out = "\(i)static func arbitrary(version: Int16, rng: inout SeededRandom) -> Self {\n"
        let anyField = fields.contains { f in
            let present = f.versions.intersection(spec.versions)
            return !present.isEmpty && emitter.cond(present, within: spec.versions) != "false"
        }
        // A message with no field to fill (EndTransactionRecord) is returned as it is made.
        if !anyField { return out + "\(i)    Self()\n\(i)}\n" }
        out += "\(i)    var value = Self()\n"
        for f in fields {
            let present = f.versions.intersection(spec.versions)
            if present.isEmpty { continue }
            let c = emitter.cond(present, within: spec.versions)
            if c == "false" { continue }
            let name = "value.\(SwiftEmitter.ident(f.name))"
            var body = ""
            let nullable = f.nullable.intersection(present)
            if !nullable.isEmpty {
                let nc = emitter.cond(nullable, within: spec.versions)
                body += "\(i)        if \(nc == "true" ? "" : "\(nc), ")rng.chance(4) {\n\(i)            \(name) = nil\n\(i)        } else {\n"
                body += "\(i)            \(name) = \(valueExpr(f.type, root: root))\n\(i)        }\n"
            } else {
                body += "\(i)        \(name) = \(valueExpr(f.type, root: root))\n"
            }
            if c == "true" {
                out += body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }.joined(separator: "\n")
            } else {
                out += "\(i)    if \(c) {\n" + body + "\(i)    }\n"
            }
        }
        out += "\(i)    return value\n\(i)}\n"
        return out
    }

    static func valueExpr(_ type: FieldType, root: String) -> String {
        switch type {
        case .bool: "rng.chance(2)"
        case .int8: "rng.int(Int8.self)"
        case .int16: "rng.int(Int16.self)"
        case .uint16: "rng.int(UInt16.self)"
        case .int32: "rng.int(Int32.self)"
        case .uint32: "rng.int(UInt32.self)"
        case .int64: "rng.int(Int64.self)"
        case .float64: "Double(rng.int(Int32.self)) / 8"
        case .string: "rng.text()"
        case .bytes: "rng.bytes()"
        case .records: "Records(rng.bytes())"
        case .uuid: "rng.uuid()"
        case .structure(let n): "\(root).\(n).arbitrary(version: version, rng: &rng)"
        case .array(let e): "(0..<rng.count()).map { _ in \(valueExpr(e, root: root)) }"
        }
    }
}
