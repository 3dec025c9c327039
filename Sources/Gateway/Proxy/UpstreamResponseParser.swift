import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One piece of an upstream's response, as `UpstreamResponseParser` delivers it.
public enum UpstreamResponsePart {
    /// The status line and header block.
    case head(UpstreamResponseHead)
    /// A piece of the body, its transfer coding removed (chunk sizes and extensions are gone).
    case body(ByteBuffer)
    /// The end of the response, with the trailer fields of a chunked body if it had any.
    case end(HTTPHeaders?)
}

/// An upstream response head kept as the bytes it arrived in: the header block is validated
/// once by the parser and then copied line by line by the rewriter, with no `String` per name
/// and value (`typed` builds NIO's head, for the rare paths that want one).
public struct UpstreamResponseHead {
    public var version: HTTPVersion
    public var status: HTTPResponseStatus
    /// Whether the upstream connection can carry another request after this response: its
    /// version and `Connection` allow it, and the body is not delimited by the connection's close.
    public var keepAlive: Bool
    /// The `Content-Length` value, when the head has one.
    public var contentLength: Int?
    /// The body comes in chunked coding.
    public var chunked: Bool
    /// A `Connection` header lists a token other than `close` or `keep-alive` (it may name
    /// headers to drop: the rewriter then looks at the tokens).
    public var connectionHasOtherTokens: Bool
    /// The header block as received, without the status line and the empty line that ends it:
    /// each field is `name ":" OWS value OWS CRLF`, checked against RFC 9112's grammar.
    public var fields: ByteBuffer

    /// Calls `body` with the name and the value (without surrounding whitespace) of each field,
    /// and the whole line with its CRLF, in order.
    public func forEachField(
        _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: UnsafeRawBufferPointer) -> Void
    ) {
        HTTPFieldLine.forEachField(self.fields, body)
    }

    /// The values of the fields named `name` (ASCII case-insensitive).
    public func values(_ name: String) -> [String] {
        HTTPFieldLine.values(name, in: self.fields)
    }

    /// The head at the start of `bytes` as the parser reads it for a request with
    /// `requestMethod`, or nil when it refuses it (tests and the typed rewriter).
    public static func parsing(_ bytes: ByteBuffer, requestMethod: HTTPMethod) -> UpstreamResponseHead? {
        var bytes = bytes
        var parser = UpstreamResponseParser()
        parser.expectResponse(to: requestMethod)
        guard case .head(let head)? = try? parser.next(&bytes) else { return nil }
        return head
    }

    /// NIO's typed head with the same fields (a `String` for each name and value).
    public var typed: HTTPResponseHead {
        HTTPResponseHead(version: self.version, status: self.status, headers: HTTPFieldLine.headers(of: self.fields))
    }
}

/// Why an upstream's bytes are not an acceptable HTTP/1.1 response. The gateway answers 502 (or
/// cuts the client off mid-response) and closes the upstream connection.
public struct UpstreamResponseError: Error, CustomStringConvertible, Equatable {
    public let description: String

    init(_ description: String) {
        self.description = "upstream response: " + description
    }
}

/// Parses the responses of one upstream connection (HTTP/1.0 and 1.1, RFC 9112), in order,
/// without I/O: bytes in, `UpstreamResponsePart`s out. It replaces NIO's llhttp-based decoder
/// on upstream connections, to keep each head as its bytes instead of `String`s, and it is
/// stricter than llhttp on purpose; it refuses:
///
/// - anything but `HTTP/1.0` or `HTTP/1.1`, a status outside 100–599, and control characters
///   in the reason phrase;
/// - a line that does not end in CRLF (a bare LF or a bare CR), a field name that is not a
///   token or has whitespace before the colon, control characters in a value, and obsolete line
///   folding (RFC 9112 §5.2 lets a gateway answer it with 502);
/// - more than one `Content-Length`, one that is not all digits, any `Transfer-Encoding` but a
///   single `chunked`, and `Transfer-Encoding` beside `Content-Length` (§6.3: the request
///   smuggling cases);
/// - a head (or a trailer section) over `maximumHeadBytes`, a chunk-size line over
///   `HTTPBodyReader.maximumChunkLineBytes` or with a malformed size or extension, chunk data not followed by
///   CRLF;
/// - `Content-Length`, `Transfer-Encoding`, `Connection` or another hop-by-hop field in a
///   trailer section, and a `101` without `Upgrade` and `Connection: upgrade`;
/// - bytes that answer no request (`expectResponse` was not called) or that follow a response
///   that closes the connection, and a connection that ends inside a head or a delimited body.
///
/// Interim responses (1xx but 101) are read and dropped, as NIO's decoder did for the gateway.
/// A `101`, or a 2xx to `CONNECT`, ends HTTP on the connection: the parser delivers its head and
/// end, and leaves every later byte unread, for a tunnel. Other responses to `CONNECT` have no
/// body, as llhttp reads them (the gateway refuses `CONNECT` requests, so never sends one).
public struct UpstreamResponseParser {
    public static let maximumHeadBytes = 64 * 1024

    private enum State {
        /// Waiting for a status line (or inside a head whose end has not arrived).
        case head
        /// Inside the body (`body`).
        case body
        /// The response is complete; its `.end` is next, then `next`.
        case ending(next: Next)
        /// After a `101` or a 2xx to `CONNECT`: the bytes are not HTTP any more.
        case upgraded
        /// After a response that closes the connection: any byte is an error (as for llhttp).
        case closed
        /// A refused response: nothing more is parsed on this connection.
        case failed
    }

    private enum Next {
        case head, upgraded, closed
    }

    private var state = State.head
    private var body = HTTPBodyReader(.contentLength(0), trailerLimit: 0)
    private var scanner = HTTPHeadScanner()
    /// Whether the connection stays open after the response being read.
    private var keepAlive = true
    /// The methods of the requests written and not yet answered, oldest first.
    private var expected: CircularBuffer<HTTPMethod>

    public init() {
        self.expected = CircularBuffer(initialCapacity: 2)
    }

    /// A request with `method` was written: its response comes after those already expected.
    public mutating func expectResponse(to method: HTTPMethod) {
        self.expected.append(method)
    }

    /// Whether the connection switched protocols: the bytes after the `101` head are a tunnel's.
    public var isUpgraded: Bool {
        if case .upgraded = self.state { return true }
        return false
    }

    /// The next part from the unread bytes of `buffer`, which it consumes. Nil when the bytes do
    /// not finish a part: call again with the same unread bytes and what arrives after them.
    public mutating func next(_ buffer: inout ByteBuffer) throws(UpstreamResponseError) -> UpstreamResponsePart? {
        do {
            return try self.step(&buffer)
        } catch {
            self.state = .failed
            throw error
        }
    }

    /// The connection ended; `unread` bytes were left unparsed. Returns the end of a body that
    /// runs until the close, nil when the connection ended between responses (or after an
    /// upgrade), and throws when it ended inside a response.
    public mutating func finish(unread: Int) throws(UpstreamResponseError) -> UpstreamResponsePart? {
        switch self.state {
        case .body where self.body.isUntilClose:
            self.state = .head
            return .end(nil)
        case .head where unread == 0:
            if !self.expected.isEmpty { throw UpstreamResponseError("the connection closed before a response") }
            return nil
        case .upgraded, .failed, .closed:
            return nil
        case .ending(let next):
            self.state = Self.state(after: next)
            return .end(nil)
        case .head, .body:
            self.state = .failed
            throw UpstreamResponseError("the connection closed inside a response")
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(UpstreamResponseError) -> UpstreamResponsePart? {
        switch self.state {
        case .head:
            // A loop, not a recursion: one read may hold thousands of interim heads.
            while buffer.readableBytes > 0 {
                guard let method = self.expected.first else {
                    throw UpstreamResponseError("bytes that answer no request")
                }
                guard let head = try self.parseHead(&buffer, requestMethod: method) else { return nil }
                if head.status.code < 200 && head.status != .switchingProtocols {
                    // Interim (100 Continue, 103 Early Hints): dropped, the final response
                    // follows, unless this one closed the connection.
                    guard head.keepAlive else {
                        self.state = .closed
                        return try self.step(&buffer)
                    }
                    continue
                }
                self.expected.removeFirst()
                return .head(head)
            }
            return nil
        case .body:
            let event: HTTPBodyReader.Event?
            do {
                event = try self.body.next(&buffer)
            } catch {
                throw UpstreamResponseError(error.reason)
            }
            switch event {
            case .body(let piece): return .body(piece)
            case .end(let trailers):
                self.state = Self.state(after: self.afterBody)
                return .end(trailers.map(HTTPFieldLine.headers(of:)))
            case nil: return nil
            }
        case .ending(let next):
            self.state = Self.state(after: next)
            return .end(nil)
        case .upgraded:
            return nil
        case .closed:
            guard buffer.readableBytes == 0 else {
                throw UpstreamResponseError("bytes after a response that closed the connection")
            }
            return nil
        case .failed:
            throw UpstreamResponseError("a refused response came before")
        }
    }

    /// What follows the end of the current response's body.
    private var afterBody: Next { self.keepAlive ? .head : .closed }

    private static func state(after next: Next) -> State {
        switch next {
        case .head: .head
        case .upgraded: .upgraded
        case .closed: .closed
        }
    }

    // MARK: Head

    private mutating func parseHead(_ buffer: inout ByteBuffer, requestMethod: HTTPMethod) throws(UpstreamResponseError)
        -> UpstreamResponseHead?
    {
        let found: Int?
        do {
            found = try self.scanner.findEmptyLine(buffer, limit: Self.maximumHeadBytes, what: "head")
        } catch {
            throw UpstreamResponseError(error.reason)
        }
        guard let end = found else { return nil }
        let parsed: Result<ParsedHead, UpstreamResponseError> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(UpstreamResponseError) in try ParsedHead(UnsafeRawBufferPointer(rebasing: bytes[..<end])) }
        }
        let head = try parsed.get()
        let fields = buffer.getSlice(at: buffer.readerIndex + head.fieldsStart, length: end - 2 - head.fieldsStart)!
        buffer.moveReaderIndex(forwardBy: end)

        let status = HTTPResponseStatus(statusCode: head.status)
        var keepAlive = head.connection.keepsAlive(head.version)
        if head.status < 200 && head.status != 101 {
            // Interim: no body; the caller drops it.
        } else if head.status == 101 {
            // RFC 9110 §7.8: a 101 names the protocol in Upgrade, and Upgrade in Connection
            // (llhttp switches only then, and would go on reading HTTP otherwise).
            guard head.upgrade && head.connection.upgrade else {
                throw UpstreamResponseError("a 101 without Upgrade and Connection: upgrade")
            }
            self.state = .ending(next: .upgraded)
        } else if requestMethod.isCONNECT && head.status < 300 {
            self.state = .ending(next: .upgraded)
        } else if requestMethod.isHEAD || requestMethod.isCONNECT || head.status == 204 || head.status == 304 {
            // No body. For a refused CONNECT, as llhttp reads it: the gateway never sends one.
            self.state = .ending(next: keepAlive ? .head : .closed)
        } else if head.chunked {
            self.body = HTTPBodyReader(.chunked, trailerLimit: Self.maximumHeadBytes)
            self.state = .body
        } else if let length = head.contentLength {
            self.body = HTTPBodyReader(.contentLength(length), trailerLimit: 0)
            self.state = .body
        } else {
            self.body = HTTPBodyReader(.untilClose, trailerLimit: 0)
            self.state = .body
            keepAlive = false
        }
        self.keepAlive = keepAlive
        return UpstreamResponseHead(
            version: head.version, status: status, keepAlive: keepAlive, contentLength: head.contentLength,
            chunked: head.chunked, connectionHasOtherTokens: head.connection.other, fields: fields)
    }
}

/// What `UpstreamResponseParser` reads from a complete head (status line and fields).
private struct ParsedHead {
    var version: HTTPVersion
    var status: Int
    var fieldsStart: Int
    var contentLength: Int?
    var chunked = false
    var connection = HTTPFieldLine.ConnectionOptions()
    var upgrade = false

    /// `bytes`: the head up to and including its empty line.
    init(_ bytes: UnsafeRawBufferPointer) throws(UpstreamResponseError) {
        // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF; the SP before an
        // empty reason is optional, as llhttp has it.
        guard bytes.count >= 14,
            bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
            bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"), bytes[5] == UInt8(ascii: "1"),
            bytes[6] == UInt8(ascii: "."), bytes[7] == UInt8(ascii: "0") || bytes[7] == UInt8(ascii: "1"),
            bytes[8] == UInt8(ascii: " ")
        else { throw UpstreamResponseError("the status line does not start with HTTP/1.0 or HTTP/1.1") }
        self.version = bytes[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        var status = 0
        for index in 9..<12 {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw UpstreamResponseError("the status code is not three digits") }
            status = status * 10 + Int(digit)
        }
        guard (100...599).contains(status) else { throw UpstreamResponseError("status code \(status) is outside 100-599") }
        self.status = status
        var index = 12
        if bytes[index] == UInt8(ascii: " ") {
            index += 1
            while bytes[index] != UInt8(ascii: "\r") {
                guard HTTPFieldLine.isFieldValueByte(bytes[index]) else {
                    throw UpstreamResponseError("a control character in the reason phrase")
                }
                index += 1
            }
        }
        guard bytes[index] == UInt8(ascii: "\r"), bytes[index + 1] == UInt8(ascii: "\n") else {
            throw UpstreamResponseError("malformed status line")
        }
        index += 2
        self.fieldsStart = index
        let fieldsEnd = bytes.count - 2
        var transferEncodings = 0
        while index < fieldsEnd {
            let field: HTTPFieldLine.Split
            do {
                field = try HTTPFieldLine.validate(bytes, from: index)
            } catch {
                throw UpstreamResponseError(error.reason)
            }
            let name = UnsafeRawBufferPointer(rebasing: bytes[index..<field.colon])
            let value = UnsafeRawBufferPointer(rebasing: bytes[field.valueStart..<field.valueEnd])
            switch HTTPFieldLine.kind(of: name) {
            case .contentLength:
                guard self.contentLength == nil else { throw UpstreamResponseError("more than one Content-Length") }
                guard !HTTPFieldLine.hasTab(bytes, field) else { throw UpstreamResponseError("a tab in Content-Length") }
                guard let length = HTTPFieldLine.decimal(value) else {
                    throw UpstreamResponseError("a Content-Length that is not a length")
                }
                self.contentLength = length
            case .transferEncoding:
                transferEncodings += 1
                guard transferEncodings == 1, HTTPFieldLine.equalsIgnoringCase(value, HTTPFieldLine.chunkedBytes),
                    !HTTPFieldLine.hasTab(bytes, field)
                else {
                    throw UpstreamResponseError("a Transfer-Encoding other than a single chunked")
                }
                self.chunked = true
            case .connection:
                // The raw value: `ConnectionOptions` trims spaces only (see there).
                self.connection.add(UnsafeRawBufferPointer(rebasing: bytes[(field.colon + 1)..<(field.next - 2)]))
            case .upgrade:
                self.upgrade = true
            case .hopByHop, .other:
                break
            }
            index = field.next
        }
        if self.chunked {
            guard self.contentLength == nil else { throw UpstreamResponseError("Content-Length beside Transfer-Encoding") }
            guard self.version == .http1_1 else { throw UpstreamResponseError("Transfer-Encoding in an HTTP/1.0 response") }
        }
    }

}

/// Header field lines as bytes (RFC 9110 §5, RFC 9112 §5), for `UpstreamResponseParser` and the
/// response rewriter.
enum HTTPFieldLine {
    /// Where the parts of a field line starting at `start` are: the colon, the value without
    /// surrounding whitespace, and the start of the next line.
    struct Split {
        var colon: Int
        var valueStart: Int
        var valueEnd: Int
        var next: Int
    }

    /// Checks the field line at `start` (`field-name ":" OWS field-value OWS CRLF`): the name a
    /// token, the value visible characters, spaces, tabs and obs-text; a line starting with
    /// whitespace is obsolete folding.
    static func validate(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(HTTPSyntaxError) -> Split {
        var index = Self.skipToken(bytes, start, bytes.count)
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
            if index == start, index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") {
                throw HTTPSyntaxError("obsolete line folding in a header")
            }
            throw HTTPSyntaxError("a header name that is not a token, or without a colon")
        }
        guard index > start else { throw HTTPSyntaxError("a header with an empty name") }
        let colon = index
        index = Self.skipBlanks(bytes, index + 1, bytes.count)
        let valueStart = index
        // Up to the first control character, which must be the CR of the line's CRLF (HTAB is
        // the one allowed inside): eight bytes at a time (`skipVisible`), byte by byte in the
        // last few bytes of the block.
        index = Self.skipVisible(bytes, from: index)
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20 || byte == 0x7F {
                guard byte == UInt8(ascii: "\t") else { break }
            }
            index += 1
        }
        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\r") else {
            throw HTTPSyntaxError("a control character in a header value")
        }
        guard bytes[index + 1] == UInt8(ascii: "\n") else {
            throw HTTPSyntaxError("a header line that does not end in CRLF")
        }
        return Split(colon: colon, valueStart: valueStart, valueEnd: Self.trimBlanks(bytes, valueStart, index), next: index + 2)
    }

    /// The offset of the first control character (but HTAB) or DEL at or after `start`, found
    /// sixteen and then eight bytes at a time; or, when fewer than eight bytes are left before
    /// it, the offset where they start. Everything before the offset is VCHAR, SP, HTAB or
    /// obs-text.
    ///
    /// Sixteen at a time (`SIMD16`, three vector instructions and a mask test on x86-64) passes
    /// over the blocks that hold none; the first block that holds one (the line's CR, or a tab)
    /// is left to the eight-byte words, whose tests for "a byte below 0x20" and "a byte equal to
    /// 0x7F" are Bit Twiddling Hacks' `hasless` and `haszero` (bytes of 0x80 and above set
    /// neither): their lowest flagged byte is exact, so the first control character is found in
    /// its word without a byte loop. Long values are tokens (an RS256 JWT is 500 bytes and more),
    /// where the vector loop takes half the instructions of the words.
    @inline(__always)
    static func skipVisible(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return start }
        var index = start
        let space = SIMD16<UInt8>(repeating: 0x20)
        let delete = SIMD16<UInt8>(repeating: 0x7F)
        // `index &+ 16` cannot overflow: `index` is an offset into the buffer.
        while index &+ 16 <= bytes.count {
            let block = base.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)
            if any((block .< space) .| (block .== delete)) { break }
            index &+= 16
        }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while index + 8 <= bytes.count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let below = (word &- ones &* 0x20) & ~word & highs
            let del = word ^ (ones &* 0x7F)
            let isDel = (del &- ones) & ~del & highs
            let flagged = below | isDel
            if flagged == 0 {
                index += 8
                continue
            }
            index += flagged.trailingZeroBitCount >> 3
            guard bytes[index] == UInt8(ascii: "\t") else { return index }
            index += 1
        }
        return index
    }

    /// The same split of a line `validate` accepted before. Such a line has its first colon
    /// right after the name (a token holds none) and its first CR at the end of the value (a
    /// value holds none), so both are found with `memchr`, which looks at many bytes at a time.
    static func split(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Split {
        let colon = Self.offset(of: UInt8(ascii: ":"), in: bytes, from: start)
        let valueStart = Self.skipBlanks(bytes, colon + 1, bytes.count)
        let lineEnd = Self.offset(of: UInt8(ascii: "\r"), in: bytes, from: valueStart)
        return Split(colon: colon, valueStart: valueStart, valueEnd: Self.trimBlanks(bytes, valueStart, lineEnd), next: lineEnd + 2)
    }

    /// The offset of the first `byte` at or after `start`, which must be there.
    @inline(__always)
    private static func offset(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        let base = bytes.baseAddress!
        let found = memchr(base + start, Int32(byte), bytes.count - start)!
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// NIO's header list for field lines `validate` accepted (`String`s for each name and value).
    static func headers(of fields: ByteBuffer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        Self.forEachField(fields) { name, value, _ in
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }
        return headers
    }

    /// Calls `body` with the name, the value (without surrounding whitespace) and the whole line
    /// with its CRLF of each field line in `fields`, which `validate` accepted, in order.
    static func forEachField(
        _ fields: ByteBuffer,
        _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: UnsafeRawBufferPointer) -> Void
    ) {
        fields.withUnsafeReadableBytes { Self.forEachField(in: $0, body) }
    }

    /// `forEachField` over the bytes of a header block, for a caller that keeps offsets into it.
    static func forEachField(
        in bytes: UnsafeRawBufferPointer,
        _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: UnsafeRawBufferPointer) -> Void
    ) {
        var start = 0
        while start < bytes.count {
            let field = HTTPFieldLine.split(bytes, from: start)
            body(
                UnsafeRawBufferPointer(rebasing: bytes[start..<field.colon]),
                UnsafeRawBufferPointer(rebasing: bytes[field.valueStart..<field.valueEnd]),
                UnsafeRawBufferPointer(rebasing: bytes[start..<field.next]))
            start = field.next
        }
    }

    /// The values of the fields in `fields` named `name` (ASCII case-insensitive).
    static func values(_ name: String, in fields: ByteBuffer) -> [String] {
        var found: [String] = []
        var name = name
        name.withUTF8 { wanted in
            Self.forEachField(fields) { fieldName, value, _ in
                if Self.equalsIgnoringCase(fieldName, wanted) { found.append(String(decoding: value, as: UTF8.self)) }
            }
        }
        return found
    }

    /// The options a message's `Connection` fields list (RFC 9110 §7.6.1).
    struct ConnectionOptions {
        var close = false
        var keepAlive = false
        var upgrade = false
        /// A token other than those three: it may name fields to drop.
        var other = false

        /// Adds the tokens of one `Connection` value.
        mutating func add(_ value: UnsafeRawBufferPointer) {
            var start = 0
            while start <= value.count {
                var end = start
                while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
                // Blanks before a token, spaces only after it: llhttp reads a tab after a token
                // as part of it, and a `keep-alive` or `close` it does not see must not be seen
                // here either.
                let tokenStart = HTTPFieldLine.skipBlanks(value, start, end)
                var tokenEnd = end
                while tokenEnd > tokenStart, value[tokenEnd - 1] == UInt8(ascii: " ") { tokenEnd -= 1 }
                let token = UnsafeRawBufferPointer(rebasing: value[tokenStart..<tokenEnd])
                if HTTPFieldLine.equalsIgnoringCase(token, HTTPFieldLine.closeBytes) {
                    self.close = true
                } else if HTTPFieldLine.equalsIgnoringCase(token, HTTPFieldLine.keepAliveBytes) {
                    self.keepAlive = true
                } else if HTTPFieldLine.equalsIgnoringCase(token, HTTPFieldLine.upgradeBytes) {
                    self.upgrade = true
                } else if !token.isEmpty {
                    self.other = true
                }
                start = end + 1
            }
        }

        /// Whether a message of `version` with these options leaves the connection open: HTTP/1.1
        /// unless `close`, HTTP/1.0 only with `keep-alive` (RFC 9112 §9.3).
        func keepsAlive(_ version: HTTPVersion) -> Bool {
            version == .http1_1 ? !self.close : self.keepAlive && !self.close
        }
    }

    /// Whether the field line split as `field` has a tab after the start of its value (inside
    /// it or in the whitespace after it). `validate` trims tabs around a value as RFC 9110's OWS
    /// allows, but llhttp, which skips them before a value, reads them after its start as part
    /// of it and refuses such a framing value: the parsers refuse it there too, so that no
    /// parser behind the gateway reads a framing field differently.
    static func hasTab(_ bytes: UnsafeRawBufferPointer, _ field: Split) -> Bool {
        var index = field.valueStart
        while index < field.next - 2 {
            if bytes[index] == UInt8(ascii: "\t") { return true }
            index += 1
        }
        return false
    }

    /// A `Content-Length` value: 1 to 18 digits (a larger one could overflow), nothing else.
    static func decimal(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var length = 0
        for byte in value {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            length = length * 10 + Int(digit)
        }
        return length
    }

    enum Kind {
        case contentLength, transferEncoding, connection, upgrade, hopByHop, other
    }

    /// The framing and hop-by-hop fields (`HeaderRules.hopByHop`), by name.
    static func kind(of name: UnsafeRawBufferPointer) -> Kind {
        switch name.count {
        case 2: return Self.equalsIgnoringCase(name, Self.teBytes) ? .hopByHop : .other
        case 7:
            if Self.equalsIgnoringCase(name, Self.upgradeBytes) { return .upgrade }
            return Self.equalsIgnoringCase(name, Self.trailerBytes) ? .hopByHop : .other
        case 10:
            if Self.equalsIgnoringCase(name, Self.connectionBytes) { return .connection }
            return Self.equalsIgnoringCase(name, Self.keepAliveBytes) ? .hopByHop : .other
        case 14: return Self.equalsIgnoringCase(name, Self.contentLengthBytes) ? .contentLength : .other
        case 16: return Self.equalsIgnoringCase(name, Self.proxyConnectionBytes) ? .hopByHop : .other
        case 17: return Self.equalsIgnoringCase(name, Self.transferEncodingBytes) ? .transferEncoding : .other
        case 18: return Self.equalsIgnoringCase(name, Self.proxyAuthenticateBytes) ? .hopByHop : .other
        case 19: return Self.equalsIgnoringCase(name, Self.proxyAuthorizationBytes) ? .hopByHop : .other
        default: return .other
        }
    }

    // Computed, not stored: a stored global array is reached through `swift_once` on every use.
    static var teBytes: StaticString { "te" }
    static var trailerBytes: StaticString { "trailer" }
    static var upgradeBytes: StaticString { "upgrade" }
    static var connectionBytes: StaticString { "connection" }
    static var keepAliveBytes: StaticString { "keep-alive" }
    static var contentLengthBytes: StaticString { "content-length" }
    static var proxyConnectionBytes: StaticString { "proxy-connection" }
    static var transferEncodingBytes: StaticString { "transfer-encoding" }
    static var proxyAuthenticateBytes: StaticString { "proxy-authenticate" }
    static var proxyAuthorizationBytes: StaticString { "proxy-authorization" }
    static var chunkedBytes: StaticString { "chunked" }
    static var closeBytes: StaticString { "close" }

    /// ASCII case-insensitive equality with a lowercase literal (letters, digits and "-"; the
    /// header names and tokens of this file): a letter of `bytes` may be its
    /// capital, every other byte must be the literal's own (folding those with 0x20 would take a
    /// CR for `-`).
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let literal = lowercase.utf8Start
        for index in 0..<bytes.count where bytes[index] != literal[index] {
            // The literal's bytes are lowercase letters and "-": only a letter (>= "a") folds.
            guard literal[index] >= UInt8(ascii: "a"), bytes[index] | 0x20 == literal[index] else { return false }
        }
        return true
    }

    /// ASCII case-insensitive equality of two byte strings (only letters fold).
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ other: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == other.count else { return false }
        for index in 0..<bytes.count where bytes[index] != other[index] {
            let folded = bytes[index] | 0x20
            guard folded == other[index] | 0x20, folded >= UInt8(ascii: "a"), folded <= UInt8(ascii: "z") else {
                return false
            }
        }
        return true
    }

    static func skipBlanks(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        var index = start
        while index < end, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
        return index
    }

    /// The end of `bytes[start..<end]` without its trailing spaces and tabs.
    static func trimBlanks(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        var index = end
        while index > start, bytes[index - 1] == UInt8(ascii: " ") || bytes[index - 1] == UInt8(ascii: "\t") { index -= 1 }
        return index
    }

    /// The end of the `tchar`s from `start`: one look-up in `tokenTable` per byte. (Eight bytes
    /// at a time, with range tests for letters, digits and `-`, was tried: names are short, and it
    /// cost as much as it saved.)
    static func skipToken(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        Self.tokenTable.endOfRun(in: bytes, from: start, to: end)
    }

    /// The `tchar`s, as `isTokenByte` defines them.
    static let tokenTable = ByteTable(Self.isTokenByte)

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// `tchar` (RFC 9110 §5.6.2): a bit test in two constant masks, for bytes 0–63 and 64–127
    /// (`tokenMasksMatchTheGrammar` in the tests checks every byte against the grammar).
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return (Self.tokenMaskLow >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (Self.tokenMaskHigh >> UInt64(byte - 64)) & 1 == 1 }
        return false
    }

    static let tokenMaskLow: UInt64 = 0x03FF_6CFA_0000_0000
    static let tokenMaskHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    /// A byte of a field value or reason phrase: VCHAR, SP, HTAB or obs-text.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\t") || (byte >= 0x20 && byte != 0x7F)
    }
}

extension HTTPMethod {
    // Tag checks: `==` on `HTTPMethod` compares the methods' raw value strings.
    var isHEAD: Bool {
        if case .HEAD = self { return true }
        return false
    }

    var isCONNECT: Bool {
        if case .CONNECT = self { return true }
        return false
    }

    var isTRACE: Bool {
        if case .TRACE = self { return true }
        return false
    }

    /// POST, PUT or PATCH: the methods whose requests normally have content.
    var usuallyHasContent: Bool {
        switch self {
        case .POST, .PUT, .PATCH: return true
        default: return false
        }
    }
}
