import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

/// `ClientRequestParser` without sockets: what it delivers for the requests clients send, however
/// the bytes are split, where it stops, and what it refuses with which error (the differential
/// test against llhttp is in `ClientRequestParserDifferentialTests`).
@Suite("Client request parser")
struct ClientRequestParserTests {
    /// One parsed request, flattened for comparison.
    struct Request: Equatable, CustomStringConvertible {
        var method: String
        var target: String
        var version: HTTPVersion
        var keepAlive: Bool
        var upgrade: Bool
        var framing: BodyFraming
        var headers: [String]  // "name: value"
        var body: [UInt8] = []
        var ended = false

        var description: String {
            "\(self.method) \(self.target) \(self.version) keepAlive=\(self.keepAlive) upgrade=\(self.upgrade) "
                + "\(self.framing) \(self.headers) body=\(String(decoding: self.body, as: UTF8.self)) ended=\(self.ended)"
        }
    }

    struct Outcome: Equatable {
        var requests: [Request] = []
        var error: String?
        var kind: ClientRequestError.Kind?
        /// Bytes left unread at the end (after a close or an upgrade, all that followed).
        var unread: [UInt8] = []
        var stopped = false
    }

    /// Feeds `pieces` one after another, keeping unread bytes for the next, as `DownstreamHandler`
    /// does (the differential test's runner, flattened here).
    static func parse(_ pieces: [[UInt8]], maximumFieldBytes: Int = 64 * 1024) -> Outcome {
        let input = Array(pieces.joined())
        let ours = ClientRequestParserDifferentialTests.ours(
            input, pieces: pieces.map(\.count), maximumFieldBytes: maximumFieldBytes)
        return Outcome(
            requests: ours.requests.map { request in
                Request(
                    method: request.method, target: request.target, version: request.version, keepAlive: request.keepAlive,
                    upgrade: request.upgrade, framing: request.framing, headers: request.fields.map { "\($0.name): \($0.value)" },
                    body: request.body, ended: request.ended)
            },
            error: ours.error, kind: ours.kind, unread: ours.error == nil ? Array(input[ours.consumed...]) : [],
            stopped: ours.stopped)
    }

    static func parse(_ text: String, maximumFieldBytes: Int = 64 * 1024) -> Outcome {
        Self.parse([Array(text.utf8)], maximumFieldBytes: maximumFieldBytes)
    }

    /// `text` fed one byte at a time.
    static func bytewise(_ text: String, maximumFieldBytes: Int = 64 * 1024) -> Outcome {
        Self.parse(Array(text.utf8).map { [$0] }, maximumFieldBytes: maximumFieldBytes)
    }

    static let browser =
        "GET /orders/42?expand=items HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\n"
        + "Accept:  */* \t\r\nauthorization: Bearer abc.def.ghi\r\nX-Empty:\r\n\r\n"

    @Test("A typical GET: method, target, version, keep-alive, no body, the fields as received")
    func typical() throws {
        var parser = ClientRequestParser(maximumFieldBytes: 1024)
        var buffer = ByteBuffer(string: Self.browser)
        guard case .head(let head)? = try parser.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(head.method == .GET)
        if case .GET = head.method {} else { Issue.record("method \(head.method) is not the .GET case") }
        #expect(head.version == .http1_1)
        #expect(head.target == "/orders/42?expand=items")
        #expect(head.keepAlive)
        #expect(!head.upgrade)
        #expect(head.framing == BodyFraming.none)
        // The field lines as they came, without the request line and the empty line.
        #expect(
            String(buffer: head.fields)
                == "Host: api.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept:  */* \t\r\n"
                + "authorization: Bearer abc.def.ghi\r\nX-Empty:\r\n")
        var fields: [String] = []
        var lines: [String] = []
        head.forEachField { name, value, line in
            fields.append(String(decoding: name, as: UTF8.self) + "=" + String(decoding: value, as: UTF8.self))
            lines.append(String(decoding: line, as: UTF8.self))
        }
        #expect(
            fields == ["Host=api.example.com", "User-Agent=curl/8.5.0", "Accept=*/*", "authorization=Bearer abc.def.ghi", "X-Empty="])
        #expect(lines.first == "Host: api.example.com\r\n")
        #expect(lines[2] == "Accept:  */* \t\r\n")
        #expect(lines.joined() == String(buffer: head.fields))
        let typed = head.typed
        #expect(typed.method == .GET && typed.uri == "/orders/42?expand=items" && typed.version == .http1_1)
        #expect(typed.headers["accept"] == ["*/*"])
        #expect(typed.headers["Authorization"] == ["Bearer abc.def.ghi"])
        #expect(typed.headers.map(\.name) == ["Host", "User-Agent", "Accept", "authorization", "X-Empty"])
        // No body: the end comes next, then nothing until more bytes arrive.
        guard case .end? = try parser.next(&buffer) else {
            Issue.record("no end")
            return
        }
        #expect(try parser.next(&buffer) == nil)
        #expect(buffer.readableBytes == 0)
        #expect(!parser.isStopped)

        let outcome = Self.parse(Self.browser)
        #expect(outcome == Self.bytewise(Self.browser))
        #expect(outcome.requests.map(\.ended) == [true])
        #expect(outcome.unread.isEmpty && !outcome.stopped && outcome.error == nil)
        #expect(try ClientRequestHead.parsing(ByteBuffer(string: Self.browser)).get().target == "/orders/42?expand=items")
        if case .success = ClientRequestHead.parsing(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n")) {
            Issue.record("an unfinished head parsed")
        }
    }

    @Test("Methods map to NIO's: the common ones to their cases, any other token to .RAW, case-sensitively")
    func methods() throws {
        func method(_ name: String) throws -> HTTPMethod {
            // CONNECT's target is an authority (RFC 9112 §3.2.3), every other method's a path here.
            let target = name == "CONNECT" ? "example.com:443" : "/"
            return try ClientRequestHead.parsing(ByteBuffer(string: "\(name) \(target) HTTP/1.1\r\nHost: a\r\n\r\n")).get().method
        }
        #expect(try method("GET") == .GET)
        #expect(try method("POST") == .POST)
        #expect(try method("PUT") == .PUT)
        #expect(try method("HEAD").isHEAD)
        #expect(try method("PATCH") == .PATCH)
        #expect(try method("DELETE") == .DELETE)
        #expect(try method("OPTIONS") == .OPTIONS)
        #expect(try method("CONNECT").isCONNECT)
        #expect(try method("TRACE").isTRACE)
        #expect(try method("PURGE") == .PURGE)
        for name in ["FROB", "get", "Post", "M-SEARCH", "X_Y.Z~1"] {
            guard case .RAW(let value) = try method(name) else {
                Issue.record("\(name) is not .RAW")
                continue
            }
            #expect(value == name)
        }
        if case .RAW = try method("POST") { Issue.record("POST read as .RAW") }
    }

    static let chunked =
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5;name=value;q=\"a \\\"b\\\"\"\r\nhello\r\n"
        + "1;flag\r\n,\r\n"
        + "A\r\n0123456789\r\n"
        + "0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n"

    @Test("Bodies arrive intact: by Content-Length, and chunked with the extensions and trailers dropped")
    func bodies() throws {
        let fixed = Self.parse("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
        #expect(fixed.requests.map(\.framing) == [.contentLength(11)])
        #expect(fixed.requests.first?.body == Array("hello world".utf8))
        #expect(fixed.requests.first?.ended == true)

        let chunked = Self.parse(Self.chunked + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(chunked.error == nil)
        #expect(chunked.requests.map(\.framing) == [.chunked, BodyFraming.none])
        #expect(chunked.requests.first?.body == Array("hello,0123456789".utf8))
        // The trailers are consumed (the next request parses) and not delivered.
        #expect(chunked.requests.map(\.target) == ["/upload", "/next"])
        #expect(chunked.requests.map(\.ended) == [true, true])

        // A body piece comes out of each read: the parser holds no body bytes back.
        var parser = ClientRequestParser(maximumFieldBytes: 1024)
        var buffer = ByteBuffer(string: "POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\nab")
        guard case .head? = try parser.next(&buffer), case .body(let first)? = try parser.next(&buffer) else {
            Issue.record("no head and body")
            return
        }
        #expect(String(buffer: first) == "ab")
        #expect(try parser.next(&buffer) == nil)
        buffer.writeString("cdefGET")
        guard case .body(let second)? = try parser.next(&buffer), case .end? = try parser.next(&buffer) else {
            Issue.record("no second piece and end")
            return
        }
        #expect(String(buffer: second) == "cdef")
        #expect(String(buffer: buffer) == "GET")  // the next request's start, kept for the next read

        // Content-Length: 0 is a body of no bytes: the end comes right after the head.
        let empty = Self.parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(empty.requests.map(\.framing) == [.contentLength(0)])
        #expect(empty.requests.map(\.ended) == [true])
        #expect(empty.requests.first?.body == [])
    }

    static let pipelined = [
        "\r\n",
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        "\r\n",  // a stray CRLF after a body
        chunked,
        "GET /4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "DELETE /5 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nokGET /never HTTP/1.1\r\n\r\n",
    ].joined()

    @Test("Pipelined requests give the same parts however the bytes are split")
    func splits() {
        let whole = Self.parse(Self.pipelined)
        #expect(whole.error == nil)
        #expect(whole.requests.map(\.target) == ["/1", "/2", "/upload", "/4", "/5"])
        #expect(whole.requests.map(\.method) == ["GET", "POST", "POST", "GET", "DELETE"])
        #expect(whole.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["", "abc", "hello,0123456789", "", "ok"])
        #expect(whole.requests.map(\.keepAlive) == [true, true, true, true, false])
        #expect(whole.requests.map(\.ended) == Array(repeating: true, count: 5))
        #expect(whole.stopped)
        #expect(whole.unread == Array("GET /never HTTP/1.1\r\n\r\n".utf8))
        let bytes = Array(Self.pipelined.utf8)
        for cut in 1..<bytes.count {
            let two = Self.parse([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(two == whole, "split at \(cut)")
        }
        #expect(Self.bytewise(Self.pipelined) == whole, "byte by byte")
    }

    @Test("Empty lines before a request are skipped; a bare LF or CR there is not")
    func leadingEmptyLines() {
        let outcome = Self.parse("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n")
        #expect(outcome.error == nil)
        #expect(outcome.requests.map(\.target) == ["/"])
        #expect(outcome.unread.isEmpty)  // the last CRLF too
        #expect(Self.bytewise("\r\n\r\nGET / HTTP/1.1\r\n\r\n") == Self.parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        // Nothing but empty lines: consumed, no request yet; a lone CR waits for its LF.
        #expect(Self.parse("\r\n\r\n") == Outcome())
        #expect(Self.parse("\r\n\r").unread == Array("\r".utf8))
        #expect(Self.parse(["\r\n\r", "\nGET / HTTP/1.1\r\n\r\n"].map { Array($0.utf8) }).requests.map(\.target) == ["/"])
        #expect(Self.parse("\nGET / HTTP/1.1\r\n\r\n").kind == .malformed)
        #expect(Self.parse("\r\rGET / HTTP/1.1\r\n\r\n").kind == .malformed)
    }

    @Test("After a request that closes the connection nothing more is parsed, and the bytes stay unread")
    func close() throws {
        let rest = "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
        for head in [
            "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: a\r\nConnection: x\r\nconnection: close\r\n\r\n",
            "GET /a HTTP/1.0\r\nHost: a\r\n\r\n",
            "POST /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        ] {
            for outcome in [Self.parse(head + rest), Self.bytewise(head + rest)] {
                #expect(outcome.error == nil, "\(head.debugDescription)")
                #expect(outcome.requests.map(\.target) == ["/a"], "\(head.debugDescription)")
                #expect(outcome.requests.map(\.keepAlive) == [false], "\(head.debugDescription)")
                #expect(outcome.requests.map(\.ended) == [true], "\(head.debugDescription)")
                #expect(outcome.stopped, "\(head.debugDescription)")
                #expect(outcome.unread == Array(rest.utf8), "\(head.debugDescription)")
            }
        }
        // Stopped, the parser leaves every later byte alone, even one it would refuse.
        var parser = ClientRequestParser(maximumFieldBytes: 1024)
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(!parser.isStopped)
        guard case .head? = try parser.next(&buffer), case .end? = try parser.next(&buffer) else {
            Issue.record("no head and end")
            return
        }
        #expect(parser.isStopped)
        buffer.writeString("\u{0}garbage\n\n")
        #expect(try parser.next(&buffer) == nil)
        #expect(try parser.next(&buffer) == nil)
        #expect(String(buffer: buffer) == "\u{0}garbage\n\n")
    }

    @Test("After an upgrade request the bytes after its end stay unread, for the tunnel")
    func upgrade() {
        let frames = "\u{81}\u{05}hello" + "GET /admin HTTP/1.1\r\n\r\n"
        let cases: [(head: String, body: String)] = [
            ("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", ""),
            ("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", ""),  // without Connection: upgrade too
            ("POST /h2 HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nContent-Length: 3\r\n\r\n", "abc"),
        ]
        for (head, body) in cases {
            let text = head + body + frames
            for outcome in [Self.parse(text), Self.bytewise(text)] {
                #expect(outcome.error == nil, "\(head.debugDescription)")
                #expect(outcome.requests.map(\.upgrade) == [true], "\(head.debugDescription)")
                #expect(outcome.requests.map(\.keepAlive) == [true], "\(head.debugDescription)")
                #expect(outcome.requests.first?.body == Array(body.utf8), "\(head.debugDescription)")
                #expect(outcome.requests.map(\.ended) == [true], "\(head.debugDescription)")
                #expect(outcome.stopped, "\(head.debugDescription)")
                #expect(outcome.unread == Array(frames.utf8), "\(head.debugDescription)")
            }
        }
        // A field that names the upgrade only in Connection is no upgrade.
        let plain = Self.parse("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        #expect(plain.requests.map(\.upgrade) == [false, false])
        #expect(!plain.stopped)
    }

    @Test("CONNECT has no body, whatever its head says, and stops the parser")
    func connect() {
        let text =
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nContent-Length: 5\r\n\r\n\u{16}\u{03}\u{01}\u{00}\u{05}"
        for outcome in [Self.parse(text), Self.bytewise(text)] {
            #expect(outcome.error == nil)
            #expect(outcome.requests.map(\.method) == ["CONNECT"])
            #expect(outcome.requests.map(\.target) == ["example.com:443"])
            #expect(outcome.requests.map(\.framing) == [BodyFraming.none])
            #expect(outcome.requests.map(\.upgrade) == [true])
            #expect(outcome.requests.first?.body == [])
            #expect(outcome.requests.map(\.ended) == [true])
            #expect(outcome.stopped)
            #expect(outcome.unread == [0x16, 0x03, 0x01, 0x00, 0x05])
        }
    }

    @Test("Keep-alive follows the version and Connection: HTTP/1.1 unless close, HTTP/1.0 only with keep-alive")
    func keepAlive() throws {
        func keepAlive(_ head: String) throws -> Bool {
            try ClientRequestHead.parsing(ByteBuffer(string: head + "\r\n")).get().keepAlive
        }
        #expect(try keepAlive("GET / HTTP/1.1\r\n"))
        #expect(try keepAlive("GET / HTTP/1.1\r\nConnection: keep-alive\r\n"))
        #expect(try keepAlive("GET / HTTP/1.1\r\nConnection: closed, x-close\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.1\r\nConnection: CLOSE\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.1\r\nConnection: te,close\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.0\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.0\r\nConnection: x\r\n"))
        #expect(try keepAlive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n"))
        #expect(try keepAlive("GET / HTTP/1.0\r\nConnection: x, keep-alive\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n"))
        #expect(try !keepAlive("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n"))  // the Keep-Alive field is no Connection token

        // HTTP/1.0 with keep-alive carries the next request; without, it is the last.
        let text =
            "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n"
        for outcome in [Self.parse(text), Self.bytewise(text)] {
            #expect(outcome.error == nil)
            #expect(outcome.requests.map(\.target) == ["/a", "/b"])
            #expect(outcome.requests.map(\.version) == [.http1_0, .http1_0])
            #expect(outcome.requests.map(\.keepAlive) == [true, false])
            #expect(outcome.stopped)
            #expect(outcome.unread == Array("GET /c HTTP/1.0\r\n\r\n".utf8))
        }
    }

    static let chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

    static let refused: [(String, ClientRequestError.Kind, String)] = [
        // Not HTTP/1.1 syntax.
        ("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, "request target"),
        ("GET ?a=1 HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, "request target"),
        ("GET http:/b HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, "request target"),
        ("GET http://a{b}/ HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, "request target"),
        ("CONNECT a#b:443 HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, "request target"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\t\r\n\r\nabc", .badFraming, "Content-Length"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", .badFraming, "Transfer-Encoding"),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", .malformed, "bare LF"),
        ("GET / HTTP/1.1\r\nHost: a\n\r\n", .malformed, "bare LF"),
        ("GET / HTTP/1.1\r\nHost: a\r\n\n", .malformed, "bare LF"),
        ("GET / HTTP/1.1\rHost: a\r\n\r\n", .malformed, "HTTP version"),
        ("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", .malformed, "CRLF"),
        ("GET / HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n", .malformed, "control character"),
        ("GET / HTTP/1.1\r\nHost: a\u{7F}\r\n\r\n", .malformed, "control character"),
        ("GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", .malformed, "folding"),
        ("GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n", .malformed, "folding"),
        ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", .malformed, "folding"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\nHo\u{0}st: a\r\n\r\n", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\nNo colon\r\n\r\n", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\n: a\r\n\r\n", .malformed, "empty name"),
        (" / HTTP/1.1\r\n\r\n", .malformed, "method"),
        ("GE(T / HTTP/1.1\r\n\r\n", .malformed, "method"),
        ("GET\t/ HTTP/1.1\r\n\r\n", .malformed, "method"),
        ("GET  / HTTP/1.1\r\n\r\n", .malformed, "request target"),
        ("GET /caf\u{E9} HTTP/1.1\r\n\r\n", .malformed, "request target"),
        ("GET /a\u{1}b HTTP/1.1\r\n\r\n", .malformed, "request target"),
        ("GET /\r\n\r\n", .malformed, "request target"),  // HTTP/0.9
        ("GET /a b HTTP/1.1\r\n\r\n", .malformed, "HTTP version"),
        ("GET / http/1.1\r\n\r\n", .malformed, "HTTP version"),
        ("GET / HTTP/1.1 \r\n\r\n", .malformed, "HTTP version"),
        ("GET / HTTP/3\r\n\r\n", .malformed, "HTTP version"),
        ("GET / HTTP/1.10\r\n\r\n", .malformed, "HTTP version"),
        // Framing: the request smuggling cases.
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .badFraming, "both"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", .badFraming, "both"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", .badFraming, "more than one"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabcd", .badFraming, "more than one"),
        ("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", .badFraming, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", .badFraming, "single chunked"),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .badFraming, "HTTP/1.0"),
        // Chunked coding.
        (chunkedHead + "3\nabc\r\n0\r\n\r\n", .malformed, "bare LF"),
        (chunkedHead + "z\r\n", .malformed, "without a size"),
        (chunkedHead + "-3\r\nabc\r\n", .malformed, "without a size"),
        (chunkedHead + " 3\r\nabc\r\n", .malformed, "without a size"),
        (chunkedHead + "3 \r\nabc\r\n", .malformed, "chunk extension"),
        (chunkedHead + "3 ;a=b\r\nabc\r\n", .malformed, "chunk extension"),
        (chunkedHead + "3;\r\nabc\r\n", .malformed, "chunk extension"),
        (chunkedHead + "3;a=\"b\r\nabc\r\n", .malformed, "chunk extension"),
        (chunkedHead + "10000000000000003\r\n", .malformed, "16 hex digits"),
        (chunkedHead + "ffffffffffff\r\n", .malformed, "too large"),
        (chunkedHead + "1;" + String(repeating: "x", count: 5_000), .malformed, "chunk-size line over 4096 bytes"),
        (chunkedHead + "3\r\nabcd\r\n0\r\n\r\n", .malformed, "not followed by CRLF"),
        (chunkedHead + "3\r\nabc\n0\r\n\r\n", .malformed, "not followed by CRLF"),
        (chunkedHead + "0\r\n\n", .malformed, "bare LF"),
        (chunkedHead + "0\r\nContent-Length: 5\r\n\r\n", .malformed, "framing field in the trailer"),
        (chunkedHead + "0\r\ntransfer-encoding: chunked\r\n\r\n", .malformed, "framing field in the trailer"),
        (chunkedHead + "0\r\nConnection: close\r\n\r\n", .malformed, "hop-by-hop field in the trailer"),
        (chunkedHead + "0\r\nUpgrade: websocket\r\n\r\n", .malformed, "hop-by-hop field in the trailer"),
        (chunkedHead + "0\r\nKeep-Alive: 5\r\n\r\n", .malformed, "hop-by-hop field in the trailer"),
        (chunkedHead + "0\r\nX-A: 1\r\n 2\r\n\r\n", .malformed, "folding"),
        (chunkedHead + "0\r\nBad Trailer: x\r\n\r\n", .malformed, "not a token"),
        // Versions.
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion, "1.0 and 1.1"),
        ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion, "1.0 and 1.1"),
        ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", .unsupportedVersion, "1.0 and 1.1"),
        ("GET / HTTP/9.9\r\nHost: a\r\n\r\n", .unsupportedVersion, "1.0 and 1.1"),
        // After a good request, the bad one is refused (the good one was delivered).
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n", .malformed, "not a token"),
        ("GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", .badFraming, "both"),
    ]

    @Test("Refused, with the error's kind, however the bytes arrive", arguments: refused)
    func refusal(_ text: String, _ kind: ClientRequestError.Kind, _ reason: String) {
        for outcome in [Self.parse(text), Self.bytewise(text)] {
            #expect(outcome.kind == kind, "\(text.debugDescription): \(outcome.error ?? "accepted: \(outcome.requests)")")
            #expect(outcome.error?.contains(reason) == true, "\(text.debugDescription): \(outcome.error ?? "accepted")")
            #expect(outcome.stopped)
        }
        // The error stays: every later call throws it again, and reads nothing.
        var parser = ClientRequestParser(maximumFieldBytes: 64 * 1024)
        var buffer = ByteBuffer(string: text)
        var first: ClientRequestError?
        do {
            while try parser.next(&buffer) != nil {}
        } catch {
            first = error
        }
        #expect(first?.kind == kind)
        #expect(parser.isStopped)
        let unread = buffer.readableBytes
        do {
            _ = try parser.next(&buffer)
            Issue.record("\(text.debugDescription): no error on the next call")
        } catch {
            #expect(error == first)
        }
        #expect(buffer.readableBytes == unread)
    }

    @Test("The answer and log reason of each kind of error: 400, 431, 414, 505, each closing the connection")
    func errorResponses() throws {
        func error(_ text: String, limit: Int = 1024) -> ClientRequestError? {
            guard case .failure(let error) = ClientRequestHead.parsing(ByteBuffer(string: text), maximumFieldBytes: limit) else {
                return nil
            }
            return error
        }
        let cases: [(String, HTTPResponseStatus, String)] = [
            ("GET / HTTP/1.1\r\nA : b\r\n\r\n", .badRequest, "malformed_request"),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", .badRequest, "bad_framing"),
            ("GET / HTTP/1.1\r\nX: \(String(repeating: "x", count: 1100))\r\n\r\n", .requestHeaderFieldsTooLarge, "headers_too_large"),
            ("GET /\(String(repeating: "x", count: 1100)) HTTP/1.1\r\n\r\n", .uriTooLong, "uri_too_long"),
            ("GET / HTTP/2.0\r\n\r\n", .httpVersionNotSupported, "unsupported_version"),
        ]
        for (text, status, reason) in cases {
            let refusal = try #require(error(text), "\(text.prefix(40).debugDescription)")
            #expect(refusal.response.status == status, "\(refusal)")
            #expect(refusal.response.close, "\(refusal)")
            #expect(refusal.reason == reason, "\(refusal)")
        }
    }

    @Test("With a small limit: a long target is 414, a long header block or trailer section 431, finished or not")
    func limits() {
        let limit = 1024
        func kind(_ text: String) -> ClientRequestError.Kind? {
            let whole = Self.parse(text, maximumFieldBytes: limit)
            let bytewise = Self.bytewise(text, maximumFieldBytes: limit)
            #expect(whole.kind == bytewise.kind, "whole: \(whole.error ?? "accepted"), byte by byte: \(bytewise.error ?? "accepted")")
            return whole.kind
        }
        func target(_ length: Int) -> String { "/" + String(repeating: "t", count: length - 1) }
        func field(_ length: Int) -> String {  // one field line of `length` bytes with its CRLF
            "X-Big: " + String(repeating: "b", count: length - 9) + "\r\n"
        }

        // The target: up to the limit; one byte more is 414, finished, far over, or still arriving.
        #expect(kind("GET \(target(limit)) HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(kind("GET \(target(limit + 1)) HTTP/1.1\r\nHost: a\r\n\r\n") == .targetTooLong)
        #expect(kind("GET \(target(5 * limit)) HTTP/1.1\r\nHost: a\r\n\r\n") == .targetTooLong)
        #expect(kind("GET \(target(5 * limit))") == .targetTooLong)
        #expect(kind("GET \(target(limit / 2))") == nil)  // waits for the rest

        // The header block (without the request line and the empty line): up to the limit; over is 431.
        #expect(kind("GET / HTTP/1.1\r\n\(field(limit))\r\n") == nil)
        #expect(kind("GET / HTTP/1.1\r\n\(field(limit + 1))\r\n") == .headTooLarge)
        let many = String(repeating: "X-Many: 123456789\r\n", count: 60)  // 1,140 bytes in short lines
        #expect(kind("GET / HTTP/1.1\r\nHost: a\r\n" + many + "\r\n") == .headTooLarge)
        #expect(kind("GET / HTTP/1.1\r\n\(field(5 * limit))\r\n") == .headTooLarge)
        #expect(kind("GET / HTTP/1.1\r\n" + String(repeating: "X-Many: 123456789\r\n", count: 300)) == .headTooLarge)
        // A target and a header block each under the limit: the head may be longer than it.
        #expect(kind("GET \(target(limit - 24)) HTTP/1.1\r\n\(field(limit))\r\n") == nil)
        // Both too long: the target's error.
        #expect(kind("GET \(target(2 * limit)) HTTP/1.1\r\n\(field(2 * limit))\r\n") == .targetTooLong)

        // The trailer section: up to the limit with its empty line; over is 431.
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
        #expect(kind(chunked + field(limit - 2) + "\r\n") == nil)
        #expect(kind(chunked + field(limit - 1) + "\r\n") == .headTooLarge)
        #expect(kind(chunked + field(3 * limit) + "\r\n") == .headTooLarge)
        #expect(kind(chunked + field(3 * limit)) == .headTooLarge)
        // The trailer limit is the parser's, not a fixed one.
        #expect(Self.parse(chunked + field(2 * limit) + "\r\n", maximumFieldBytes: 4 * limit).error == nil)
    }
}
