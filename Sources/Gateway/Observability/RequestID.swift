/// Request ids (`X-Request-Id`): accepted from the client when they look like an id, otherwise
/// generated. Forwarded upstream, returned to the client, written to the access log.
public enum RequestID {
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

    public func next() -> String {
        self.counter &+= 1
        let prefix = self.prefix
        let counter = self.counter
        return String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(prefix, into: buffer, at: 0)
            Self.writeHex(counter, into: buffer, at: 16)
            return 32
        }
    }

    private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        let digits: StaticString = "0123456789abcdef"
        for index in 0..<16 {
            let nibble = Int((value >> UInt64((15 - index) * 4)) & 0xF)
            buffer[offset + index] = digits.utf8Start[nibble]
        }
    }
}

@available(*, unavailable)
extension RequestIDGenerator: Sendable {}
