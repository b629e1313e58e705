/// Why bytes could not be decoded as a Kafka message.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case truncated
        case negativeLength
        case lengthTooLarge
        case invalidValue
        case unsupportedVersion
        case trailingBytes
    }
    private let kind: Kind
    /// What was being read when it failed.
    public let context: String

    private init(_ kind: Kind, _ context: String) {
        self.kind = kind
        self.context = context
    }

    /// The input ended in the middle of a value.
    public static func truncated(_ context: String) -> WireError { WireError(.truncated, context) }
    /// A length that must not be negative was.
    public static func negativeLength(_ context: String) -> WireError { WireError(.negativeLength, context) }
    /// A length is larger than the bytes left.
    public static func lengthTooLarge(_ context: String) -> WireError { WireError(.lengthTooLarge, context) }
    /// A value is out of its domain (a bad varint, a null where none is allowed).
    public static func invalidValue(_ context: String) -> WireError { WireError(.invalidValue, context) }
    /// The API version is not one this message defines.
    public static func unsupportedVersion(_ context: String) -> WireError { WireError(.unsupportedVersion, context) }
    /// Bytes were left over after the message.
    public static func trailingBytes(_ context: String) -> WireError { WireError(.trailingBytes, context) }

    public var isUnsupportedVersion: Bool { kind == .unsupportedVersion }

    public var description: String {
        switch kind {
        case .truncated: "truncated input reading \(context)"
        case .negativeLength: "negative length reading \(context)"
        case .lengthTooLarge: "length larger than the input reading \(context)"
        case .invalidValue: "invalid value reading \(context)"
        case .unsupportedVersion: "unsupported version: \(context)"
        case .trailingBytes: "unexpected trailing bytes after \(context)"
        }
    }
}
