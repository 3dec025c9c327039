import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One piece of a client's request, as `ClientRequestParser` delivers it.
public enum ClientRequestPart {
    /// The request line and header block.
    case head(ClientRequestHead)
    /// A piece of the body, its transfer coding removed.
    case body(ByteBuffer)
    /// The end of the request. A chunked body's trailer fields were checked and are dropped:
    /// they would carry headers past the rewriting that heads get.
    case end
}

/// A client's request head kept as the bytes it arrived in: the parser checks the header block
/// once; the planner and the rewriter read the field lines from it.
public struct ClientRequestHead {
    public var method: HTTPMethod
    public var version: HTTPVersion
    /// The request target exactly as received (visible ASCII).
    public var target: String
    /// Whether the connection may carry another request after this one: its version and
    /// `Connection` allow it.
    public var keepAlive: Bool
    /// How the body is delimited (checked: ambiguity is refused before this head exists).
    public var framing: BodyFraming
    /// The head has an `Upgrade` field (or the method is `CONNECT`): the parser reads nothing
    /// after this request, whose connection either becomes a tunnel or closes.
    public var upgrade: Bool
    /// A `Connection` field lists more than `close`, `keep-alive` and `upgrade`: perhaps names
    /// of fields to drop (RFC 9110 §7.6.1). Rare.
    public var connectionNamesFields: Bool
    /// The header block as received, without the request line and the empty line that ends it:
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

    /// NIO's typed head with the same fields (a `String` for each name and value).
    public var typed: HTTPRequestHead {
        HTTPRequestHead(
            version: self.version, method: self.method, uri: self.target, headers: HTTPFieldLine.headers(of: self.fields))
    }

    /// A typed head (tests, tools) as the parser reads it once serialized.
    public static func parsing(_ head: HTTPRequestHead, maximumFieldBytes: Int = 64 * 1024) -> Result<
        ClientRequestHead, ClientRequestError
    > {
        var bytes = ByteBuffer()
        bytes.writeString(head.method.rawValue)
        bytes.writeStaticString(" ")
        bytes.writeString(head.uri)
        bytes.writeStaticString(head.version == .http1_0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n")
        for (name, value) in head.headers { bytes.writeHeaderLine(name, value) }
        bytes.writeStaticString("\r\n")
        return Self.parsing(bytes, maximumFieldBytes: maximumFieldBytes)
    }

    /// The head at the start of `bytes` as the parser reads it, or the error it refuses it with.
    public static func parsing(_ bytes: ByteBuffer, maximumFieldBytes: Int = 64 * 1024) -> Result<
        ClientRequestHead, ClientRequestError
    > {
        var bytes = bytes
        var parser = ClientRequestParser(maximumFieldBytes: maximumFieldBytes)
        do {
            guard case .head(let head)? = try parser.next(&bytes) else {
                return .failure(ClientRequestError(.malformed, "the head is incomplete"))
            }
            return .success(head)
        } catch {
            return .failure(error)
        }
    }
}

/// Why a client's bytes are not an acceptable request. The gateway answers it (`response`) and
/// closes the connection: after a refused head or body nothing on it can be delimited.
public struct ClientRequestError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Not HTTP/1.1 syntax (400).
        case malformed
        /// The body's length is ambiguous or unsupported: the request smuggling cases (400).
        case badFraming
        /// The header block (or a trailer section) is over `max_header_bytes` (431).
        case headTooLarge
        /// The request target is over `max_header_bytes` (414).
        case targetTooLong
        /// A version other than HTTP/1.0 and HTTP/1.1 (505).
        case unsupportedVersion
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// The access log's reason.
    public var reason: String {
        switch self.kind {
        case .malformed: "malformed_request"
        case .badFraming: "bad_framing"
        case .headTooLarge: "headers_too_large"
        case .targetTooLong: "uri_too_long"
        case .unsupportedVersion: "unsupported_version"
        }
    }

    /// The answer to the client.
    public var response: LocalResponse {
        var response: LocalResponse
        switch self.kind {
        case .malformed, .badFraming: response = .badRequest(self.description)
        case .headTooLarge: response = .headersTooLarge
        case .targetTooLong: response = .uriTooLong
        case .unsupportedVersion: response = .versionNotSupported
        }
        response.close = true
        return response
    }
}

/// Parses the requests of one client connection (HTTP/1.0 and 1.1, RFC 9112), in order, without
/// I/O: bytes in, `ClientRequestPart`s out. It replaces NIO's llhttp-based decoder, to keep each
/// head as its bytes instead of `String`s, and it is at least as strict; it refuses:
///
/// - a request line that is not `method SP request-target SP HTTP-version CRLF` with a token
///   method and a target of visible ASCII; versions but 1.0 and 1.1 (505);
/// - a line that does not end in CRLF (a bare LF or a bare CR), a field name that is not a
///   token or has whitespace before the colon, control characters in a value, and obsolete line
///   folding (RFC 9112 §5.2 lets a server answer it with 400);
/// - more than one `Content-Length`, one that is not all digits, any `Transfer-Encoding` but a
///   single `chunked`, `Transfer-Encoding` in HTTP/1.0 or beside `Content-Length` (§6.1, §6.3:
///   the request smuggling cases);
/// - a header block or trailer section over `maximumFieldBytes` (431), a target over it (414),
///   a malformed chunk-size line, chunk data not followed by CRLF, framing or hop-by-hop fields
///   in a trailer section.
///
/// Empty lines before a request line are skipped (RFC 9112 §2.2). After a request that closes
/// the connection (`Connection: close`, or HTTP/1.0 without keep-alive) the parser reads no more
/// (§9.6): what follows is never served. After a request with `Upgrade` (or `CONNECT`, which
/// has no body), it leaves every later byte unread, for a tunnel.
public struct ClientRequestParser {
    private enum State {
        /// Waiting for a request line (or inside a head whose end has not arrived).
        case head
        /// Inside the body (`body`).
        case body
        /// A request without a body was read; its `.end` is next.
        case ending
        /// After a request that closes the connection, or an upgrade: nothing more is read.
        case stopped
        /// A refused request: nothing more is parsed on this connection.
        case failed(ClientRequestError)
    }

    private var state = State.head
    private var body = HTTPBodyReader(.contentLength(0), trailerLimit: 0)
    private var scanner = HTTPHeadScanner()
    /// What follows the request being read: another, or nothing.
    private var another = true
    /// The longest header block, trailer section and request target accepted (a change applies
    /// from the next head on).
    public var maximumFieldBytes: Int
    /// The last target, reused while the next one has the same bytes.
    private var targetMemo = StringMemo()

    public init(maximumFieldBytes: Int) {
        self.maximumFieldBytes = maximumFieldBytes
    }

    /// The parser reads no more requests on this connection: the last one closed it or asked
    /// for an upgrade (what is left is a tunnel's), or it was refused.
    public var isStopped: Bool {
        switch self.state {
        case .stopped, .failed: true
        case .head, .body, .ending: false
        }
    }

    /// The next part from the unread bytes of `buffer`, which it consumes. Nil when the bytes do
    /// not finish a part: call again with the same unread bytes and what arrives after them.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ClientRequestError) -> ClientRequestPart? {
        do {
            return try self.step(&buffer)
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(ClientRequestError) -> ClientRequestPart? {
        switch self.state {
        case .head:
            guard let head = try self.parseHead(&buffer) else { return nil }
            return .head(head)
        case .body:
            let event: HTTPBodyReader.Event?
            do {
                event = try self.body.next(&buffer)
            } catch {
                throw ClientRequestError(error.overLimit ? .headTooLarge : .malformed, error.reason)
            }
            switch event {
            case .body(let piece): return .body(piece)
            case .end:
                self.state = self.another ? .head : .stopped
                return .end
            case nil: return nil
            }
        case .ending:
            self.state = self.another ? .head : .stopped
            return .end
        case .stopped:
            return nil
        case .failed(let error):
            throw error
        }
    }

    // MARK: Head

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(ClientRequestError) -> ClientRequestHead? {
        // RFC 9112 §2.2: empty lines before the request line are skipped (some clients send a
        // CRLF after a body).
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            self.scanner.reset()
        }
        if buffer.readableBytes == 1, buffer.readableBytesView.first == UInt8(ascii: "\r") { return nil }
        // The request line (method, target, version) and the header block each have their own
        // limit; the head as a whole is bounded by both.
        let limit = 2 * self.maximumFieldBytes + 64
        let found: Int?
        do {
            found = try self.scanner.findEmptyLine(buffer, limit: limit, what: "head")
        } catch {
            guard error.overLimit else { throw ClientRequestError(.malformed, error.reason) }
            throw self.overflow(buffer)
        }
        guard let end = found else { return nil }
        let parsed: Result<(ParsedRequestHead, String), ClientRequestError> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(ClientRequestError) in
                let head = try ParsedRequestHead(
                    UnsafeRawBufferPointer(rebasing: bytes[..<end]), maximumFieldBytes: self.maximumFieldBytes)
                let target = UnsafeRawBufferPointer(rebasing: bytes[head.targetStart..<(head.targetStart + head.targetLength)])
                return (head, self.targetMemo.string(for: target))
            }
        }
        let (head, target) = try parsed.get()
        let fields = buffer.getSlice(at: buffer.readerIndex + head.fieldsStart, length: end - 2 - head.fieldsStart)!
        buffer.moveReaderIndex(forwardBy: end)

        let method = head.method
        let keepAlive = head.connection.keepsAlive(head.version)
        let upgrade = head.upgrade || method.isCONNECT
        self.another = keepAlive && !upgrade
        let framing: BodyFraming
        if method.isCONNECT {
            // Its body, if any, would be the tunnel's (the gateway refuses CONNECT anyway).
            framing = .none
            self.state = .ending
        } else if head.chunked {
            framing = .chunked
            self.body = HTTPBodyReader(.chunked, trailerLimit: self.maximumFieldBytes)
            self.state = .body
        } else if let length = head.contentLength {
            framing = .contentLength(length)
            self.body = HTTPBodyReader(.contentLength(length), trailerLimit: 0)
            self.state = .body
        } else {
            framing = .none
            self.state = .ending
        }
        return ClientRequestHead(
            method: method, version: head.version, target: target, keepAlive: keepAlive, framing: framing,
            upgrade: upgrade, connectionNamesFields: head.connection.other, fields: fields)
    }

    /// The error for a head that grew past its limit without ending: the target's if its request
    /// line has not ended within the target's limit, else the header block's.
    private func overflow(_ buffer: ByteBuffer) -> ClientRequestError {
        let lineLimit = self.maximumFieldBytes + 64
        let lineEnded = buffer.readableBytesView.prefix(lineLimit).contains(UInt8(ascii: "\n"))
        return lineEnded
            ? ClientRequestError(.headTooLarge, "header block over \(self.maximumFieldBytes) bytes")
            : ClientRequestError(.targetTooLong, "request target over \(self.maximumFieldBytes) bytes")
    }
}

/// What `ClientRequestParser` reads from a complete head (request line and fields).
private struct ParsedRequestHead {
    var method: HTTPMethod
    var version: HTTPVersion
    var targetStart: Int
    var targetLength: Int
    var fieldsStart: Int
    var contentLength: Int?
    var chunked = false
    var connection = HTTPFieldLine.ConnectionOptions()
    var upgrade = false

    /// `bytes`: the head up to and including its empty line.
    init(_ bytes: UnsafeRawBufferPointer, maximumFieldBytes: Int) throws(ClientRequestError) {
        // request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3)
        var index = HTTPFieldLine.skipToken(bytes, 0, bytes.count)
        guard index > 0, index < bytes.count, bytes[index] == UInt8(ascii: " ") else {
            throw ClientRequestError(.malformed, "the request line does not start with a method")
        }
        self.method = Self.method(UnsafeRawBufferPointer(rebasing: bytes[..<index]))
        index += 1
        self.targetStart = index
        // Visible ASCII only: a raw space, control character or non-ASCII byte is refused rather
        // than guessed at (RFC 3986 has them percent-encoded).
        while index < bytes.count, bytes[index] > 0x20, bytes[index] < 0x7F { index += 1 }
        self.targetLength = index - self.targetStart
        guard self.targetLength > 0, index < bytes.count, bytes[index] == UInt8(ascii: " ") else {
            throw ClientRequestError(.malformed, "malformed request target")
        }
        guard self.targetLength <= maximumFieldBytes else {
            throw ClientRequestError(.targetTooLong, "request target over \(maximumFieldBytes) bytes")
        }
        let target = UnsafeRawBufferPointer(rebasing: bytes[self.targetStart..<index])
        guard self.method.isCONNECT ? Self.isAuthorityForm(target) : Self.isTargetForm(target) else {
            throw ClientRequestError(.malformed, "malformed request target")
        }
        index += 1
        // HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF.
        guard index + 10 <= bytes.count,
            bytes[index] == UInt8(ascii: "H"), bytes[index + 1] == UInt8(ascii: "T"), bytes[index + 2] == UInt8(ascii: "T"),
            bytes[index + 3] == UInt8(ascii: "P"), bytes[index + 4] == UInt8(ascii: "/"),
            bytes[index + 5] &- UInt8(ascii: "0") < 10, bytes[index + 6] == UInt8(ascii: "."),
            bytes[index + 7] &- UInt8(ascii: "0") < 10, bytes[index + 8] == UInt8(ascii: "\r"),
            bytes[index + 9] == UInt8(ascii: "\n")
        else { throw ClientRequestError(.malformed, "the request line does not end in an HTTP version") }
        switch (bytes[index + 5], bytes[index + 7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): self.version = .http1_1
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): self.version = .http1_0
        default: throw ClientRequestError(.unsupportedVersion, "HTTP versions other than 1.0 and 1.1 are not supported")
        }
        index += 10
        self.fieldsStart = index
        let fieldsEnd = bytes.count - 2
        guard fieldsEnd - index <= maximumFieldBytes else {
            throw ClientRequestError(.headTooLarge, "header block over \(maximumFieldBytes) bytes")
        }
        var transferEncodings = 0
        while index < fieldsEnd {
            let field: HTTPFieldLine.Split
            do {
                field = try HTTPFieldLine.validate(bytes, from: index)
            } catch {
                throw ClientRequestError(.malformed, error.reason)
            }
            let value = UnsafeRawBufferPointer(rebasing: bytes[field.valueStart..<field.valueEnd])
            switch HTTPFieldLine.kind(of: UnsafeRawBufferPointer(rebasing: bytes[index..<field.colon])) {
            case .contentLength:
                guard self.contentLength == nil else { throw ClientRequestError(.badFraming, "more than one Content-Length") }
                guard let length = HTTPFieldLine.decimal(value), !HTTPFieldLine.hasTab(bytes, field) else {
                    throw ClientRequestError(.badFraming, "invalid Content-Length")
                }
                self.contentLength = length
            case .transferEncoding:
                transferEncodings += 1
                guard transferEncodings == 1, HTTPFieldLine.equalsIgnoringCase(value, HTTPFieldLine.chunkedBytes),
                    !HTTPFieldLine.hasTab(bytes, field)
                else {
                    throw ClientRequestError(.badFraming, "unsupported Transfer-Encoding (only a single chunked)")
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
            guard self.contentLength == nil else {
                throw ClientRequestError(.badFraming, "both Content-Length and Transfer-Encoding")
            }
            guard self.version == .http1_1 else {
                throw ClientRequestError(.badFraming, "Transfer-Encoding in an HTTP/1.0 request")
            }
        }
    }

    /// origin-form (`/…`), asterisk-form (`*`) or absolute-form (`scheme://…`), RFC 9112 §3.2;
    /// llhttp refuses anything else too. (Only origin-form is routed: the path normaliser
    /// refuses the others with `400`.)
    private static func isTargetForm(_ target: UnsafeRawBufferPointer) -> Bool {
        if target[0] == UInt8(ascii: "/") { return true }
        if target.count == 1 { return target[0] == UInt8(ascii: "*") }
        // A scheme of letters (RFC 3986 allows digits, "+", "-", "." after the first; llhttp
        // does not, and no scheme an HTTP gateway serves has them), then "://".
        var index = 0
        while index < target.count, Self.isLetter(target[index]) { index += 1 }
        guard index > 0, index + 3 <= target.count, target[index] == UInt8(ascii: ":"),
            target[index + 1] == UInt8(ascii: "/"), target[index + 2] == UInt8(ascii: "/")
        else { return false }
        // The authority, up to the path or the query: not empty, and in its own characters.
        let authority = index + 3
        var end = authority
        while end < target.count, target[end] != UInt8(ascii: "/"), target[end] != UInt8(ascii: "?") { end += 1 }
        return end > authority && Self.isAuthorityForm(UnsafeRawBufferPointer(rebasing: target[authority..<end]))
    }

    /// authority-form (`host:port`, CONNECT's): unreserved, sub-delims, `:`, `@`, `%`, `[`, `]`
    /// (RFC 3986 §3.2). The gateway refuses CONNECT, but with its own answer, once the head is read.
    private static func isAuthorityForm(_ target: UnsafeRawBufferPointer) -> Bool {
        target.allSatisfy { byte in
            Self.isLetter(byte) || byte &- UInt8(ascii: "0") < 10 || "-._~!$&'()*+,;=:@%[]".utf8.contains(byte)
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) &- UInt8(ascii: "a") < 26
    }

    /// The method: the common ones without building a `String`.
    private static func method(_ name: UnsafeRawBufferPointer) -> HTTPMethod {
        switch name.count {
        case 3:
            if Self.equals(name, "GET") { return .GET }
            if Self.equals(name, "PUT") { return .PUT }
        case 4:
            if Self.equals(name, "POST") { return .POST }
            if Self.equals(name, "HEAD") { return .HEAD }
        case 5:
            if Self.equals(name, "PATCH") { return .PATCH }
        case 6:
            if Self.equals(name, "DELETE") { return .DELETE }
        case 7:
            if Self.equals(name, "OPTIONS") { return .OPTIONS }
        default:
            break
        }
        // Methods are case-sensitive (RFC 9110 §9.1): NIO maps the standard ones it knows and
        // keeps any other token as `.RAW`.
        return HTTPMethod(rawValue: String(decoding: name, as: UTF8.self))
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        for index in 0..<bytes.count where bytes[index] != literal.utf8Start[index] { return false }
        return true
    }

}

/// The last `String` made from some bytes, made again only when the bytes differ: for values a
/// connection sends again and again (the Host on every request, often the target). Comparing
/// the bytes costs less than making a `String`, which checks them as UTF-8 (about 300
/// instructions for a short one, callgrind).
struct StringMemo {
    private var last: String?

    init() {}

    mutating func string(for bytes: UnsafeRawBufferPointer) -> String {
        if let last = self.last, last.utf8.count == bytes.count, Self.same(last, bytes) { return last }
        let made = String(decoding: bytes, as: UTF8.self)
        self.last = made
        return made
    }

    private static func same(_ string: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return true }
        // A native string (a small one too) has its UTF-8 in one piece.
        let compared = string.utf8.withContiguousStorageIfAvailable { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
        return compared ?? string.utf8.elementsEqual(bytes)
    }
}
