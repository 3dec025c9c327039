/// A request id (`X-Request-Id`): the client's own when it looks like an id, otherwise
/// generated. Forwarded upstream, returned to the client, written to the access log.
///
/// A generated id stays two integers until it is written: its 32 hex digits go straight into
/// the head being written (`withUTF8`), so a request makes no `String` (a heap allocation and a
/// UTF-8 check) for its id. `text` makes one, for the access log and local answers.
public enum RequestID: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// Made by a `RequestIDGenerator`: `prefix` then `counter`, 16 lowercase hex digits each.
    case generated(prefix: UInt64, counter: UInt64)
    /// The client's id (checked with `isAcceptable` before it is used), or one from a test.
    case given(String)

    public init(stringLiteral value: String) {
        self = .given(value)
    }

    /// The id as text.
    public var text: String {
        switch self {
        case .given(let text):
            text
        case .generated:
            self.withUTF8 { String(decoding: $0, as: UTF8.self) }
        }
    }

    public var description: String { self.text }

    /// The length of `text` in UTF-8 bytes.
    public var utf8Count: Int {
        switch self {
        case .given(let text): text.utf8.count
        case .generated: 32
        }
    }

    /// Calls `body` with the id's UTF-8 bytes: a given id's read in place (no mutable copy, so no
    /// retain), a generated id's digits written on the stack.
    public func withUTF8<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch self {
        case .given(let text):
            if let result = try text.utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
                return result
            }
            var contiguous = text
            return try contiguous.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        case .generated(let prefix, let counter):
            var digits = (
                Self.hexDigits(UInt32(truncatingIfNeeded: prefix >> 32)), Self.hexDigits(UInt32(truncatingIfNeeded: prefix)),
                Self.hexDigits(UInt32(truncatingIfNeeded: counter >> 32)), Self.hexDigits(UInt32(truncatingIfNeeded: counter))
            )
            return try withUnsafeBytes(of: &digits) { try body($0) }
        }
    }

    /// Ids are equal when their text is: a generated id equals the same digits given as text.
    public static func == (lhs: RequestID, rhs: RequestID) -> Bool {
        switch (lhs, rhs) {
        case (.generated(let a, let b), .generated(let c, let d)): a == c && b == d
        case (.given(let a), .given(let b)): a == b
        default: lhs.text == rhs.text
        }
    }

    public func hash(into hasher: inout Hasher) {
        self.withUTF8 { hasher.combine(bytes: $0) }
    }

    /// The eight lowercase hex digits of `value`, most significant first, as the bytes of a word
    /// in memory order: the nibbles spread one per byte, then each turned into its digit at once
    /// (`+ "0"`, and `+ 39` more where the nibble is 10 or more), where a digit at a time took
    /// some 6 instructions.
    static func hexDigits(_ value: UInt32) -> UInt64 {
        var nibbles = UInt64(value)
        // Byte k ends up holding nibble k (counted from the least significant).
        nibbles = (nibbles | (nibbles << 16)) & 0x0000_FFFF_0000_FFFF
        nibbles = (nibbles | (nibbles << 8)) & 0x00FF_00FF_00FF_00FF
        nibbles = (nibbles | (nibbles << 4)) & 0x0F0F_0F0F_0F0F_0F0F
        // 0x10 is set in a byte of `nibbles + 6` exactly when its nibble is 10 or more.
        let letters = ((nibbles &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        let ascii = nibbles &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
        // The most significant nibble's digit first in memory, on either byte order.
        return ascii.bigEndian
    }

    /// Longest id accepted from a client.
    public static let maximumLength = 128

    /// Whether a client's id may be passed on: 1–128 characters from `A–Z a–z 0–9 - _ . : / + = @`.
    /// Anything else (spaces, quotes, control characters) could break a log line or a header.
    public static func isAcceptable(_ value: some StringProtocol) -> Bool {
        let utf8 = value.utf8
        guard !utf8.isEmpty, utf8.count <= Self.maximumLength else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"),
                UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "@"):
                true
            default:
                false
            }
        }
    }
}

/// Makes request ids for one event loop: 32 lowercase hex digits (the shape of a W3C trace id),
/// a random per-generator prefix followed by a counter, so ids are unique across loops and
/// processes without a random draw per request. Not a secret and not meant to be unguessable.
public final class RequestIDGenerator {
    private let prefix: UInt64
    private var counter: UInt64

    public init() {
        var random = SystemRandomNumberGenerator()
        self.prefix = random.next()
        self.counter = random.next() >> 16
    }

    /// For tests: a generator with a fixed prefix and starting counter.
    public init(prefix: UInt64, counter: UInt64) {
        self.prefix = prefix
        self.counter = counter
    }

    public func next() -> RequestID {
        self.counter &+= 1
        return .generated(prefix: self.prefix, counter: self.counter)
    }
}

@available(*, unavailable)
extension RequestIDGenerator: Sendable {}
