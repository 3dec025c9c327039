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
    /// `source.scheme`'s bytes, for `credentials(in:scheme:)`.
    let scheme: [UInt8]

    public init(source: TokenSource) {
        self.source = source
        self.scheme = Array(source.scheme.utf8)
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
        var value = headerValue ?? ""
        return value.withUTF8 { bytes in
            let value = UnsafeRawBufferPointer(bytes)
            switch self.locate(headerValue: headerValue == nil ? nil : value, repeated: repeated, cookieHeaders: cookieHeaders()) {
            case .header(let token):
                guard Self.isToken68(bytes: token) else { return .invalid(.malformedHeader) }
                return .token(Substring(String(decoding: token, as: UTF8.self)))
            case .elsewhere(let extraction):
                return extraction
            }
        }
    }

    /// Where a request's token is, as `locate` finds it.
    enum Location {
        /// In the token header's value: these bytes, a slice of the value `locate` was given
        /// (valid as long as it is). Not yet checked against the token68 rule a header token
        /// must meet (`isToken68`): the caller's check, which the planner makes only when the
        /// token is not in its cache (an entry carries the answer for its bytes).
        case header(UnsafeRawBufferPointer)
        /// In a cookie, nowhere, or sent wrongly.
        case elsewhere(TokenExtraction)
    }

    /// `extract`, reading the header value in place: the planner looks a header token up in its
    /// cache before any of it is copied.
    func locate(
        headerValue: UnsafeRawBufferPointer?, repeated: Bool, cookieHeaders: @autoclosure () -> [String]
    ) -> Location {
        if repeated { return .elsewhere(.invalid(.repeatedHeader)) }
        if let value = headerValue {
            switch Self.credentials(in: value, scheme: self.scheme) {
            case .token(let offsets): return .header(UnsafeRawBufferPointer(rebasing: value[offsets]))
            case .malformed: return .elsewhere(.invalid(.malformedHeader))
            case .missing: break  // another scheme (`Basic ...`) is not a bearer token: fall back to the cookie
            }
        }
        if let cookie = self.source.cookie {
            switch CookieParser.value(named: cookie, in: cookieHeaders()) {
            case .found(let value) where !value.isEmpty: return .elsewhere(.token(value))
            case .found, .notFound: return .elsewhere(.missing)
            case .ambiguous: return .elsewhere(.invalid(.ambiguousCookie))
            }
        }
        return .elsewhere(.missing)
    }

    /// What a token header's value holds, found by `credentials(in:scheme:)`.
    enum Credentials: Equatable {
        /// The byte offsets of the token within the value (not yet checked against token68).
        case token(Range<Int>)
        /// Another scheme, or an empty value: no bearer token here.
        case missing
        /// The scheme, with no token or with a space or tab before it.
        case malformed
    }

    /// `credentials = auth-scheme 1*SP token68` (RFC 7235 §2.1, RFC 6750 §2.1) in a header
    /// value's bytes, but for the token68 rule on the token itself, which is the caller's
    /// (`isToken68`): a `.token` may still fail it. Leading and trailing spaces and tabs are
    /// ignored; the scheme is compared ASCII case-insensitively.
    static func credentials(in value: UnsafeRawBufferPointer, scheme: [UInt8]) -> Credentials {
        var start = 0
        var end = value.count
        while start < end, HeaderRules.isBlank(value[start]) { start &+= 1 }
        while start < end, HeaderRules.isBlank(value[end &- 1]) { end &-= 1 }
        var space = start
        while space < end, value[space] != UInt8(ascii: " ") { space &+= 1 }
        let isScheme = scheme.withUnsafeBufferPointer {
            HTTPFieldLine.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: value[start..<space]), $0)
        }
        // A bare scheme (`Bearer`) is a malformed bearer header; a bare word is another scheme.
        guard isScheme else { return .missing }
        var tokenStart = space
        while tokenStart < end, value[tokenStart] == UInt8(ascii: " ") { tokenStart &+= 1 }
        return tokenStart < end ? .token(tokenStart..<end) : .malformed
    }

    /// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    static func isToken68(_ s: Substring) -> Bool {
        if let result = s.utf8.withContiguousStorageIfAvailable({ Self.isToken68(bytes: UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(s.utf8).withUnsafeBytes { Self.isToken68(bytes: $0) }
    }

    /// Two plain loops over the bytes: token68 characters (looked up in `token68Table`), then
    /// only "=" to the end. (Under callgrind, for the bench's HS256 JWT: 3,500 instructions per
    /// request as a loop over a generic `Sequence` with a flag, 1,900 with the bit masks of
    /// `isToken68Character` in these loops.)
    static func isToken68(bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        var index = Self.token68Table.endOfRun(in: bytes, from: 0, to: count)
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
