import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

/// `UpstreamResponseParser` without sockets: what it delivers for the responses upstreams send,
/// however the bytes are split, and what it refuses (the differential test against llhttp is in
/// `UpstreamResponseParserDifferentialTests`).
@Suite("Upstream response parser")
struct UpstreamResponseParserTests {
    /// One parsed response, flattened for comparison.
    struct Response: Equatable, CustomStringConvertible {
        var status: Int
        var version: HTTPVersion
        var keepAlive: Bool
        var headers: [String]  // "name: value"
        var body: [UInt8] = []
        var trailers: [String]?
        var ended = false

        var description: String {
            "\(self.status) keepAlive=\(self.keepAlive) \(self.headers) body=\(String(decoding: self.body, as: UTF8.self)) "
                + "trailers=\(self.trailers ?? []) ended=\(self.ended)"
        }
    }

    struct Outcome: Equatable {
        var responses: [Response] = []
        var error: String?
        /// Bytes left unparsed at the end (after an upgrade, the tunnel's).
        var unread: [UInt8] = []
    }

    /// Feeds `pieces` one after another, keeping unread bytes for the next, as `UpstreamHandler`
    /// does, then ends the input if `close` (the differential test's runner, flattened here).
    static func parse(_ pieces: [[UInt8]], methods: [HTTPMethod] = [.GET], close: Bool = true) -> Outcome {
        let input = Array(pieces.joined())
        let ours = UpstreamResponseParserDifferentialTests.ours(
            input, methods: methods, pieces: pieces.map(\.count), close: close)
        return Outcome(
            responses: ours.responses.map { response in
                Response(
                    status: Int(response.status), version: response.version, keepAlive: response.keepAlive,
                    headers: response.fields.map { "\($0.name): \($0.value)" }, body: response.body,
                    trailers: response.trailers.map { $0.map { "\($0.name): \($0.value)" } }, ended: response.ended)
            },
            error: ours.error, unread: ours.error == nil ? Array(input[ours.consumed...]) : [])
    }

    static func parse(_ text: String, methods: [HTTPMethod] = [.GET], close: Bool = true) -> Outcome {
        Self.parse([Array(text.utf8)], methods: methods, close: close)
    }

    static let nginx =
        "HTTP/1.1 200 OK\r\nServer: nginx/1.26.3\r\nDate: Sun, 22 Nov 2026 08:00:00 GMT\r\n"
        + "Content-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}"

    @Test("A typical head: status, version, keep-alive, the fields as received, then the body and the end")
    func typical() throws {
        let outcome = Self.parse(Self.nginx, close: false)
        #expect(outcome.error == nil)
        #expect(
            outcome.responses == [
                Response(
                    status: 200, version: .http1_1, keepAlive: true,
                    headers: [
                        "Server: nginx/1.26.3", "Date: Sun, 22 Nov 2026 08:00:00 GMT", "Content-Type: application/json",
                        "Content-Length: 11", "Connection: keep-alive",
                    ], body: Array("{\"ok\":true}".utf8), trailers: nil, ended: true)
            ])

        var bytes = ByteBuffer(string: "HTTP/1.0 404 Not Found\r\nX-A:  spaced value \t\r\ncontent-LENGTH: 0\r\n\r\n")
        let head = try #require(UpstreamResponseHead.parsing(bytes, requestMethod: .GET))
        #expect(head.status == .notFound)
        #expect(head.version == .http1_0)
        #expect(!head.keepAlive)  // HTTP/1.0 without keep-alive
        #expect(head.contentLength == 0)
        #expect(head.values("x-a") == ["spaced value"])
        #expect(head.values("Content-Length") == ["0"])
        #expect(head.typed.headers["content-length"] == ["0"])
        // The fields keep their bytes: lines as they came, without the status line and the empty line.
        #expect(String(buffer: head.fields) == "X-A:  spaced value \t\r\ncontent-LENGTH: 0\r\n")
        bytes.clear()
    }

    static let chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5;name=value;q=\"a \\\"b\\\"\"\r\nhello\r\n"
        + "1;flag\r\n,\r\n"
        + "A\r\n0123456789\r\n"
        + "0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n"

    @Test("Chunked bodies lose their coding; extensions are checked and dropped; trailers come with the end")
    func chunkedBody() {
        let outcome = Self.parse(Self.chunked, close: false)
        #expect(outcome.error == nil)
        #expect(outcome.responses.count == 1)
        #expect(outcome.responses.first?.body == Array("hello,0123456789".utf8))
        #expect(outcome.responses.first?.trailers == ["X-Checksum: abc", "X-Other: d"])
        #expect(outcome.responses.first?.ended == true)
        #expect(outcome.responses.first?.keepAlive == true)

        let plain = Self.parse("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", close: false)
        #expect(plain.responses.first?.body == Array("abc".utf8))
        #expect(plain.responses.first?.trailers == nil)
        #expect(plain.responses.first?.ended == true)
    }

    static let pipelined = [
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",  // answers HEAD: no body
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        "HTTP/1.1 200\r\nConnection: close\r\n\r\nuntil the end",
    ].joined()

    @Test("Back-to-back responses: interim ones dropped; HEAD, 204 and 304 without a body; the last runs until close")
    func framing() {
        let outcome = Self.parse(Self.pipelined, methods: [.POST, .DELETE, .GET, .HEAD, .GET, .GET])
        #expect(outcome.error == nil)
        #expect(outcome.responses.map(\.status) == [201, 204, 304, 200, 200, 200])
        #expect(outcome.responses.map { String(decoding: $0.body, as: UTF8.self) } == ["abc", "", "", "", "hi", "until the end"])
        #expect(outcome.responses.map(\.ended) == Array(repeating: true, count: 6))
        #expect(outcome.responses.map(\.keepAlive) == [true, true, true, true, true, false])
    }

    @Test("Thousands of interim responses in one read are dropped without recursing once per head")
    func manyInterim() {
        let flood = String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 100_000)
        let outcome = Self.parse(flood + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", methods: [.POST])
        #expect(outcome.error == nil)
        #expect(outcome.responses.map(\.status) == [200])
        #expect(outcome.responses.first?.body == Array("ok".utf8))
    }

    @Test("Every split of the input gives the same parts as the whole", arguments: [
        nginx, chunked, pipelined,
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 200 OK\r\n\r\nrest",
    ])
    func splits(_ text: String) {
        let bytes = Array(text.utf8)
        let methods: [HTTPMethod] =
            text == Self.pipelined ? [.POST, .DELETE, .GET, .HEAD, .GET, .GET] : text.hasPrefix("HTTP/1.0") ? [.GET, .GET] : [.GET]
        let whole = Self.parse([bytes], methods: methods)
        #expect(whole.error == nil)
        #expect(!whole.responses.isEmpty)
        for cut in 1..<bytes.count {
            let two = Self.parse([Array(bytes[..<cut]), Array(bytes[cut...])], methods: methods)
            #expect(two == whole, "split at \(cut)")
        }
        let single = Self.parse(bytes.map { [$0] }, methods: methods)
        #expect(single == whole, "byte by byte")
    }

    @Test("A 101 ends HTTP on the connection: its head and end, and every later byte left for the tunnel")
    func upgrade() {
        let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{05}HTTP/1.1 200 OK\r\n"
        for pieces in [[Array(text.utf8)], Array(text.utf8).map { [$0] }] {
            let outcome = Self.parse(pieces, methods: [.GET])
            #expect(outcome.error == nil)
            #expect(outcome.responses.map(\.status) == [101])
            #expect(outcome.responses.first?.ended == true)
            #expect(outcome.unread == Array("\u{81}\u{05}HTTP/1.1 200 OK\r\n".utf8))
        }
        // A 2xx to CONNECT too.
        let connect = Self.parse("HTTP/1.1 200 Connection established\r\n\r\nraw", methods: [.CONNECT])
        #expect(connect.responses.map(\.status) == [200])
        #expect(connect.unread == Array("raw".utf8))
    }

    static let refused: [(String, String)] = [
        ("HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.0 or HTTP/1.1"),
        ("HTTP/1.1 99 OK\r\n\r\n", "three digits"),
        ("HTTP/1.1 600 Odd\r\n\r\n", "outside 100-599"),
        ("HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        ("HTTP/1.1 200 O\u{01}K\r\n\r\n", "reason phrase"),
        ("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nA: b\n\r\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "CRLF"),
        ("HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "not a token"),
        ("HTTP/1.1 200 OK\r\n: b\r\n\r\n", "empty name"),
        ("HTTP/1.1 200 OK\r\nA(b): c\r\n\r\n", "not a token"),
        ("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "folding"),
        ("HTTP/1.1 200 OK\r\n\tA: b\r\n\r\n", "folding"),
        ("HTTP/1.1 200 OK\r\nA: b\u{00}c\r\n\r\n", "control character"),
        ("HTTP/1.1 200 OK\r\nA: b\u{7F}\r\n\r\n", "control character"),
        ("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "not a token"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "more than one Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", "not a length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "not a length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", "not a length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "beside"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "single chunked"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "single chunked"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "single chunked"),
        ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", "without a size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", "malformed chunk extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 ;a\r\nabc\r\n0\r\n\r\n", "malformed chunk extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n", "malformed chunk extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"b\r\nabc\r\n0\r\n\r\n", "malformed chunk extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", "not followed by CRLF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n12345678901234567\r\n", "16 hex digits"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", "not a token"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "answer no request"),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "closed the connection"),
        ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxy", "closed the connection"),
        ("HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "closed the connection"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 0\r\n\r\n", "framing field in the trailer"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\ntransfer-encoding: chunked\r\n\r\n", "framing field in the trailer"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\n", "hop-by-hop field in the trailer"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nKeep-Alive: 5\r\n\r\n", "hop-by-hop field in the trailer"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "a 101 without Upgrade"),
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n", "a 101 without Upgrade"),
    ]

    @Test("Refused: what llhttp refuses, and the framing and grammar cases it lets through", arguments: refused)
    func refusal(_ text: String, _ reason: String) {
        for pieces in [[Array(text.utf8)], Array(text.utf8).map { [$0] }] {
            let outcome = Self.parse(pieces, methods: [.GET], close: false)
            let error = outcome.error ?? "accepted: \(outcome.responses)"
            #expect(error.contains(reason), "\(text.debugDescription): \(error)")
            #expect(error.hasPrefix("upstream response: "))
        }
    }

    @Test("A head or trailer section over 64 KiB is refused, also while it has not ended")
    func tooLarge() {
        let big = String(repeating: "a", count: UpstreamResponseParser.maximumHeadBytes)
        let finished = Self.parse("HTTP/1.1 200 OK\r\nX-Big: \(big)\r\n\r\n", close: false)
        #expect(finished.error?.contains("head over 65536 bytes") == true, "\(finished)")
        let unfinished = Self.parse("HTTP/1.1 200 OK\r\nX-Big: \(big)", close: false)
        #expect(unfinished.error?.contains("head over 65536 bytes") == true, "\(unfinished)")
        let justUnder = String(repeating: "a", count: UpstreamResponseParser.maximumHeadBytes - 100)
        #expect(Self.parse("HTTP/1.1 200 OK\r\nX-Big: \(justUnder)\r\n\r\n", close: false).error == nil)
        let trailers = Self.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: \(big)", close: false)
        #expect(trailers.error?.contains("trailer section over 65536 bytes") == true, "\(trailers)")
        let line = Self.parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "x", count: 5000), close: false)
        #expect(line.error?.contains("chunk-size line over 4096 bytes") == true, "\(line)")
    }

    @Test("The connection's end: the end of a body that runs until it, an error inside a delimited one")
    func endOfInput() {
        #expect(Self.parse("HTTP/1.1 200 OK\r\n\r\nabc").responses.first?.ended == true)
        #expect(Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc").error?.contains("inside a response") == true)
        #expect(Self.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").error?.contains("inside") == true)
        #expect(Self.parse("HTTP/1.1 200 OK\r\nContent-").error?.contains("inside a response") == true)
        #expect(Self.parse("").error?.contains("before a response") == true)
        #expect(Self.parse("", methods: []).error == nil)  // an idle connection closing
    }

    @Test("The token masks hold exactly RFC 9110's tchar, and field values exclude exactly the controls but HTAB")
    func tokenMasksMatchTheGrammar() {
        let specials = Set("!#$%&'*+-.^_`|~".utf8)
        for value in 0...255 {
            let byte = UInt8(value)
            let isAlphaNumeric =
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            #expect(HTTPFieldLine.isTokenByte(byte) == (isAlphaNumeric || specials.contains(byte)), "byte \(value)")
            #expect(HTTPFieldLine.tokenTable.contains(byte) == (isAlphaNumeric || specials.contains(byte)), "byte \(value)")
            // The scan stops at the first non-token byte, at the given end, and not before.
            let line: [UInt8] = [UInt8(ascii: "a"), byte, UInt8(ascii: "b")]
            let end = line.withUnsafeBytes { HTTPFieldLine.skipToken($0, 0, 3) }
            #expect(end == (isAlphaNumeric || specials.contains(byte) ? 3 : 1), "byte \(value)")
            #expect(line.withUnsafeBytes { HTTPFieldLine.skipToken($0, 0, 2) } == (end == 3 ? 2 : 1), "byte \(value)")
            #expect(HTTPFieldLine.isFieldValueByte(byte) == (byte == 9 || (byte >= 32 && byte != 127)), "byte \(value)")
        }
    }

    @Test("The block- and word-at-a-time value scan stops exactly at the first control character but HTAB, or before the last few bytes")
    func valueScanInBlocksAndWords() {
        func skip(_ bytes: [UInt8]) -> Int {
            bytes.withUnsafeBytes { HTTPFieldLine.skipVisible($0, from: 0) }
        }
        func isControl(_ byte: UInt8) -> Bool { (byte < 0x20 && byte != 0x09) || byte == 0x7F }
        // The contract: all before the result is a value byte, and the result is a control
        // character or fewer than eight bytes are left from it.
        func meetsContract(_ bytes: [UInt8], _ end: Int) -> Bool {
            !bytes[..<end].contains(where: isControl) && (end + 8 > bytes.count || isControl(bytes[end]))
        }
        // Every byte value at every position of 20 and of 40 bytes, among visible ASCII and among
        // obs-text (whose high bit must not hide a neighbour or raise a false alarm). In 20 bytes
        // the last four are left to the byte loop; in 40, every position is found exactly: in
        // the 16-byte blocks (0–15, 16–31), or in the 8-byte word after them (32–39).
        for (count, exactBefore) in [(20, 16), (40, 40)] {
            for filler: UInt8 in [UInt8(ascii: "a"), 0x20, 0x7E, 0x80, 0xFF] {
                for value in 0...255 {
                    for position in 0..<count {
                        var bytes = [UInt8](repeating: filler, count: count)
                        bytes[position] = UInt8(value)
                        let end = skip(bytes)
                        #expect(meetsContract(bytes, end), "byte \(value) at \(position) of \(count) among \(filler): \(end)")
                        if isControl(UInt8(value)), position < exactBefore {
                            #expect(end == position, "byte \(value) at \(position) of \(count) among \(filler)")
                        } else if !isControl(UInt8(value)), value != 0x09, count == 40 {  // after a tab, the last bytes may be left
                            #expect(end == 40, "byte \(value) at \(position) of \(count) among \(filler)")
                        }
                    }
                }
            }
        }
        // Random runs with controls and tabs among them: the contract holds at every start.
        var random = UpstreamResponseParserDifferentialTests.SplitMix64(seed: 9112)
        let picks: [UInt8] = [0x09, 0x0D, 0x0A, 0x00, 0x1F, 0x7F, 0x20, 0x7E, 0x80, 0xFF, UInt8(ascii: "a")]
        for _ in 0..<20_000 {
            let count = Int(random.next() % 100)
            let bytes = (0..<count).map { _ -> UInt8 in
                random.next() % 4 == 0 ? picks[Int(random.next() % UInt64(picks.count))] : UInt8(truncatingIfNeeded: random.next())
            }
            let start = count == 0 ? 0 : Int(random.next() % UInt64(count))
            let end = bytes.withUnsafeBytes { HTTPFieldLine.skipVisible($0, from: start) }
            let rest = Array(bytes[start...])
            #expect(end >= start && meetsContract(rest, end - start), "\(bytes) from \(start): \(end)")
        }
        #expect(skip([]) == 0)
        #expect(skip(Array("1234567".utf8)) == 0)  // fewer than eight: left to the byte loop
        #expect(skip(Array("a\tb\tc\td\te\r\nfghijklmnop".utf8)) == 9)  // tabs are passed, the CR is found
        // A tab in the second 16-byte block (16–31) and the CR in the third: the tab's block is
        // left to the words, which pass it and go on to the CR.
        let token = [UInt8](repeating: UInt8(ascii: "x"), count: 20) + [0x09] + [UInt8](repeating: UInt8(ascii: "y"), count: 24)
        #expect(skip(token + Array("\r\nafter the line".utf8)) == 45)
        // A control character after several clean blocks is found exactly.
        #expect(skip([UInt8](repeating: UInt8(ascii: "z"), count: 64) + [0x00] + [UInt8](repeating: UInt8(ascii: "z"), count: 16)) == 64)
    }

    @Test("One list of framing and hop-by-hop names serves the parser and both rewriters; letters alone fold")
    func fieldKinds() {
        func kind(_ name: String) -> HTTPFieldLine.Kind {
            var name = name
            return name.withUTF8 { HTTPFieldLine.kind(of: UnsafeRawBufferPointer($0)) }
        }
        for name in HeaderRules.hopByHop {
            #expect(HeaderRewriter.isHopByHop(name) && HeaderRewriter.isHopByHop(name.uppercased()), "\(name)")
            #expect(kind(name) != .other && kind(name) != .contentLength && kind(name) != .transferEncoding, "\(name)")
        }
        #expect(kind("Content-Length") == .contentLength && kind("TRANSFER-encoding") == .transferEncoding)
        #expect(HeaderRewriter.isFraming("content-LENGTH") && !HeaderRewriter.isHopByHop("Content-Length"))
        #expect(kind("Connection") == .connection && kind("upgrade") == .upgrade)
        // A CR folded with 0x20 would read as "-"; "_" is not "-" either.
        for near in ["content\rlength", "content_length", "keep\ralive", "x-te", "tf", "connectiom"] {
            #expect(kind(near) == .other, "\(near.debugDescription)")
            #expect(!HeaderRewriter.isHopByHop(near) && !HeaderRewriter.isFraming(near), "\(near.debugDescription)")
        }
    }

    @Test("Keep-alive follows the version and Connection; other Connection tokens are flagged for the rewriter")
    func keepAlive() throws {
        func head(_ text: String) throws -> UpstreamResponseHead {
            try #require(UpstreamResponseHead.parsing(ByteBuffer(string: text + "\r\n"), requestMethod: .GET))
        }
        #expect(try head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n").keepAlive)
        #expect(try !head("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n").keepAlive)
        #expect(try !head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n").keepAlive)
        #expect(try head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n").keepAlive)
        #expect(try !head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n").keepAlive)
        #expect(try !head("HTTP/1.1 200 OK\r\n").keepAlive)  // until close
        #expect(try !head("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n").connectionHasOtherTokens)
        #expect(try head("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nContent-Length: 0\r\n").connectionHasOtherTokens)
    }
}
