/// Where the gateway looks for a token: a header with a scheme, then a cookie.
public struct TokenSource: Sendable, Equatable {
    /// Header name, compared case-insensitively (`Authorization`).
    public var header: String
    /// Authentication scheme, compared case-insensitively (`Bearer`, RFC 6750 §2.1).
    public var scheme: String
    /// Cookie name, compared exactly; nil to never read cookies.
    public var cookie: String?

    public init(header: String = "Authorization", scheme: String = "Bearer", cookie: String? = "access_token") {
        self.header = header
        self.scheme = scheme
        self.cookie = cookie
    }
}

/// The outcome of looking for a token in a request.
public enum TokenExtraction: Equatable, Sendable {
    case token(Substring)
    /// No token anywhere: 401 with a bare challenge.
    case missing
    /// Something is wrong with how the token was sent: 400 or 401 with this reason.
    case invalid(InvalidRequest)

    public enum InvalidRequest: String, Sendable {
        /// Several token headers; picking one would let a client smuggle a second credential.
        case repeatedHeader = "more than one authorization header"
        /// The header is present but not `<scheme> <token>` with exactly one token.
        case malformedHeader = "malformed authorization header"
        /// The token cookie appears more than once with different values.
        case ambiguousCookie = "token cookie is set more than once"
    }
}

/// Pure token extraction over header values; the proxy passes the values it decoded.
public struct TokenExtractor: Sendable {
    public let source: TokenSource

    public init(source: TokenSource) {
        self.source = source
    }

    /// - Parameters:
    ///   - headerValues: every value of the configured token header, in order.
    ///   - cookieHeaders: every `Cookie` header value, in order.
    public func extract(headerValues: [String], cookieHeaders: [String]) -> TokenExtraction {
        self.extract(headerValue: headerValues.first, repeated: headerValues.count > 1, cookieHeaders: cookieHeaders)
    }

    /// The same, for a caller that scanned the headers itself: the first value of the token
    /// header, and whether there was more than one.
    public func extract(headerValue: String?, repeated: Bool, cookieHeaders: @autoclosure () -> [String]) -> TokenExtraction {
        let found = self.extractDeferringSyntaxCheck(headerValue: headerValue, repeated: repeated, cookieHeaders: cookieHeaders())
        if found.fromHeader, case .token(let token) = found.extraction, !Self.isToken68(token) {
            return .invalid(.malformedHeader)
        }
        return found.extraction
    }

    /// `extract`, less one check it leaves to the caller: that a token from the header is a
    /// token68 (`isToken68`; `fromHeader` says whether the token came from the header). A header
    /// token that fails it is `.invalid(.malformedHeader)`. The planner makes the check only
    /// when the token is not in its cache, whose entries carry the answer for their bytes.
    func extractDeferringSyntaxCheck(
        headerValue: String?, repeated: Bool, cookieHeaders: @autoclosure () -> [String]
    ) -> (extraction: TokenExtraction, fromHeader: Bool) {
        if repeated { return (.invalid(.repeatedHeader), false) }
        if let value = headerValue {
            let credentials = self.parseCredentials(value)
            // Another scheme (`Basic ...`) is not a bearer token: fall back to the cookie.
            if credentials != .missing { return (credentials, true) }
        }
        if let cookie = self.source.cookie {
            switch CookieParser.value(named: cookie, in: cookieHeaders()) {
            case .found(let value) where !value.isEmpty: return (.token(value), false)
            case .found, .notFound: return (.missing, false)
            case .ambiguous: return (.invalid(.ambiguousCookie), false)
            }
        }
        return (.missing, false)
    }

    /// `credentials = auth-scheme 1*SP token68` (RFC 7235 §2.1, RFC 6750 §2.1), but for the
    /// token68 rule on the token itself, which is the caller's (`isToken68`): a `.token` may
    /// still fail it.
    func parseCredentials(_ value: String) -> TokenExtraction {
        // Scanned as bytes (see `HeaderRules.trimmingBlanks`); every byte looked for is ASCII,
        // so each index found is a character boundary of `value`.
        let rest = HeaderRules.trimmingBlanks(Substring(value))
        guard let space = rest.utf8.firstIndex(of: UInt8(ascii: " ")) else {
            // A bare scheme (`Bearer`) is a malformed bearer header; a bare word is another scheme.
            return HeaderRules.equalsIgnoringCase(rest, self.source.scheme) ? .invalid(.malformedHeader) : .missing
        }
        let scheme = rest[..<space]
        guard HeaderRules.equalsIgnoringCase(scheme, self.source.scheme) else {
            return .missing
        }
        let afterScheme = rest.utf8[space...]
        let tokenStart = afterScheme.firstIndex { $0 != UInt8(ascii: " ") } ?? afterScheme.endIndex
        let token = rest[tokenStart...]
        guard !token.isEmpty else { return .invalid(.malformedHeader) }
        return .token(token)
    }

    /// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    static func isToken68(_ s: Substring) -> Bool {
        if let result = s.utf8.withContiguousStorageIfAvailable({ Self.isToken68(bytes: $0) }) { return result }
        return Array(s.utf8).withUnsafeBufferPointer { Self.isToken68(bytes: $0) }
    }

    /// Two plain loops over the bytes: token68 characters (looked up in `token68Table`), then
    /// only "=" to the end. (Under callgrind, for the bench's HS256 JWT: 3,500 instructions per
    /// request as a loop over a generic `Sequence` with a flag, 1,900 with the bit masks of
    /// `isToken68Character` in these loops.)
    static func isToken68(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = bytes.count
        var index = Self.token68Table.endOfRun(in: UnsafeRawBufferPointer(bytes), from: 0, to: count)
        while index < count, bytes[index] == UInt8(ascii: "=") { index &+= 1 }
        return index == count
    }

    /// The token68 characters, as `isToken68Character` defines them.
    static let token68Table = ByteTable(Self.isToken68Character)

    /// ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", as two 64-bit masks over the ASCII
    /// bytes: the definition `token68Table` is built from (once), checked against RFC 7235's
    /// list in the tests.
    static func isToken68Character(_ byte: UInt8) -> Bool {
        // Bit b: byte b ("+", "-", ".", "/", "0"..."9"); bit b - 64: byte b ("A"..."Z", "_", "a"..."z", "~").
        let low: UInt64 = 0x03FF_E800_0000_0000
        let high: UInt64 = 0x47FF_FFFE_87FF_FFFE
        switch byte {
        case 0..<64: return (low >> UInt64(byte)) & 1 == 1
        case 64..<128: return (high >> UInt64(byte - 64)) & 1 == 1
        default: return false
        }
    }
}
