/// Header-name rules shared by configuration checks and the proxy.
public enum HeaderRules {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) and their historical relatives. Never forwarded.
    /// `transfer-encoding` is hop-by-hop too; the gateway's own encoding (`ForwardHead`,
    /// `ResponseEncoding`) drops the received framing headers and writes its own.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
        "proxy-authorization",
    ]

    /// Headers the gateway owns the framing or routing of; a client's `Connection` header may not
    /// name them for removal, and an identity header may not be one of them.
    public static let protected: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
        "proxy-connection", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "cookie", "expect",
    ]

    /// ASCII case-insensitive equality, without allocating.
    public static func equalsIgnoringCase(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        // Native strings are contiguous UTF-8: compare bytes through pointers (the generic
        // `zip` over two UTF-8 views showed in the request path's profile).
        if let result = a.utf8.withContiguousStorageIfAvailable({ x in
            b.utf8.withContiguousStorageIfAvailable { y in Self.equalsIgnoringCase(x, y) }
        }), let result {
            return result
        }
        for (x, y) in zip(a.utf8, b.utf8) where x != y {
            guard Self.sameLetter(x, y) else { return false }
        }
        return true
    }

    private static func equalsIgnoringCase(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        for index in 0..<a.count where a[index] != b[index] {
            guard Self.sameLetter(a[index], b[index]) else { return false }
        }
        return true
    }

    /// Two different bytes that are the same ASCII letter in different cases.
    @inline(__always)
    private static func sameLetter(_ x: UInt8, _ y: UInt8) -> Bool {
        x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z")
    }

    /// `text` without leading and trailing spaces and tabs (RFC 9110 OWS). Scanned as bytes:
    /// stepping through `Character`s runs grapheme breaking on every step, which showed in the
    /// request path's profile. Only ASCII bytes are removed, so the ends stay on character
    /// boundaries.
    public static func trimmingBlanks(_ text: Substring) -> Substring {
        let utf8 = text.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, Self.isBlank(utf8[start]) { utf8.formIndex(after: &start) }
        while start < end {
            let last = utf8.index(before: end)
            guard Self.isBlank(utf8[last]) else { break }
            end = last
        }
        return text[start..<end]
    }

    @inline(__always)
    static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Whether `name` is one of `protected`, compared without allocating.
    public static func isProtected(_ name: Substring) -> Bool {
        Self.protectedNames.contains { Self.equalsIgnoringCase($0, name) }
    }

    // Sorted: a fixed order keeps the work (and allocation count, in debug builds) the same in every process.
    private static let protectedNames: [String] = Self.protected.sorted()

    /// RFC 9110 §5.6.2 token characters.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
                }
            }
    }

    /// Why `name` cannot carry an identity claim, or nil if it can.
    static func identityHeaderProblem(_ name: String, tokenHeader: String) -> String? {
        guard Self.isValidName(name) else { return "\(JSONValue.quoted(name)) is not a valid header name" }
        let lower = name.lowercased()
        if Self.protected.contains(lower) || Self.hopByHop.contains(lower) {
            return "\(JSONValue.quoted(name)) is managed by the gateway and cannot carry a claim"
        }
        if lower == tokenHeader.lowercased() {
            return "\(JSONValue.quoted(name)) is the token header and cannot carry a claim"
        }
        return nil
    }
}
