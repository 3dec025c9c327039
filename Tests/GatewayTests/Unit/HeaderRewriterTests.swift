import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

@Suite("Header rewriting")
struct HeaderRewriterTests {
    func forwarding(identity: [(name: String, value: String)] = [], stripToken: Bool = false) -> HeaderRewriter.Forwarding {
        HeaderRewriter.Forwarding(
            clientAddress: "10.0.0.9", host: "gw.example", identity: identity, stripToken: stripToken,
            tokenSource: TokenSource())
    }

    @Test("Connection tokens: split at commas, blanks trimmed, close and protected names skipped")
    func connectionTokens() throws {
        func tokens(_ value: String) -> [String] {
            var named: [Substring] = []
            HeaderRewriter.connectionTokens(value, into: &named)
            return named.map(String.init)
        }
        #expect(tokens("keep-alive") == [])
        #expect(tokens("close") == [])
        #expect(tokens(" \tX-A ,X-B,\t close , ,, Host,x-c\t") == ["X-A", "X-B", "x-c"])
        #expect(tokens("") == [])
        #expect(tokens(",") == [])
        #expect(tokens("X-\u{e9}t\u{e9}, X-B") == ["X-\u{e9}t\u{e9}", "X-B"])
        // Whether a parsed head's `Connection` may name fields (then the rewriter splits it).
        func namesFields(_ value: String) throws -> Bool {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "h", "Connection": value])
            return try ClientRequestHead.parsing(head).get().connectionNamesFields
        }
        #expect(try namesFields("Keep-Alive, CLOSE") == false)
        #expect(try namesFields("keep-alive, X-Internal") == true)
        #expect(try namesFields("Keep-Alive") == false)
        #expect(try namesFields("close") == false)
        #expect(try namesFields("upgrade") == false)
        #expect(try namesFields("X-Internal") == true)
        #expect(try namesFields(" keep-alive ") == false)
    }

    @Test("Spoofed identity headers are removed and replaced by verified ones, in any case")
    func identitySpoofing() {
        let incoming: HTTPHeaders = ["Host": "gw.example", "x-auth-subject": "mallory", "X-AUTH-ROLE": "admin"]
        let out = HeaderRewriter.requestHeaders(
            incoming, identityHeaderNames: ["X-Auth-Subject", "X-Auth-Role"],
            forwarding: self.forwarding(identity: [("X-Auth-Subject", "alice")]))
        #expect(out["x-auth-subject"] == ["alice"])
        #expect(out["x-auth-role"] == [])
    }

    @Test("Hop-by-hop headers and those Connection names are removed before identity injection")
    func hopByHop() {
        let incoming: HTTPHeaders = [
            "Host": "gw.example", "Connection": "keep-alive, X-Auth-Subject, X-Custom, content-length",
            "Keep-Alive": "timeout=5", "TE": "trailers", "Upgrade": "websocket", "Proxy-Connection": "x",
            "Trailer": "X", "Proxy-Authorization": "Basic x", "X-Custom": "drop me", "Content-Length": "3",
            "Transfer-Encoding": "chunked",
        ]
        let out = HeaderRewriter.requestHeaders(
            incoming, identityHeaderNames: ["X-Auth-Subject"],
            forwarding: self.forwarding(identity: [("X-Auth-Subject", "alice")]))
        for name in ["connection", "keep-alive", "te", "upgrade", "proxy-connection", "trailer", "proxy-authorization", "x-custom"] {
            #expect(!out.contains(name: name), "\(name)")
        }
        #expect(out["x-auth-subject"] == ["alice"])  // `Connection: X-Auth-Subject` cannot delete it
        #expect(out["content-length"] == ["3"])  // framing is protected from Connection
        #expect(out["transfer-encoding"] == ["chunked"])  // the typed view keeps the client's framing
    }

    @Test("The serialized upstream head: exact bytes, the client's framing replaced by the gateway's own")
    func serializedHead() {
        let incoming: HTTPHeaders = [
            "Host": "gw.example", "Connection": "keep-alive", "content-length": "5", "X-Auth-Subject": "mallory",
            "Accept": "*/*",
        ]
        let head = HeaderRewriter.requestHead(
            method: .POST, target: "/v1/items?x=1", incoming: incoming, identityHeaderNames: ["X-Auth-Subject"],
            forwarding: self.forwarding(identity: [("X-Auth-Subject", "alice")]), framing: .contentLength(5))
        #expect(
            head.text == "POST /v1/items?x=1 HTTP/1.1\r\nHost: gw.example\r\nAccept: */*\r\n"
                + "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: gw.example\r\n"
                + "X-Auth-Subject: alice\r\nContent-Length: 5\r\n\r\n")
        #expect(!head.chunked)
        #expect(head.uri == "/v1/items?x=1")
        #expect(head.headers["x-auth-subject"] == ["alice"])

        // Chunked stays chunked (the body is re-chunked as it streams), exactly once.
        let chunked = HeaderRewriter.requestHead(
            method: .PUT, target: "/", incoming: ["Host": "h", "Transfer-Encoding": "chunked"], identityHeaderNames: [],
            forwarding: self.forwarding(), framing: .chunked)
        #expect(chunked.chunked)
        #expect(chunked.headers["transfer-encoding"] == ["chunked"])
        #expect(!chunked.headers.contains(name: "content-length"))

        // No body: a POST says so with Content-Length: 0; a GET says nothing.
        // The request line of a GET (written as a constant) and of another method.
        let getLine = HeaderRewriter.requestHead(
            method: .GET, target: "/g?x=1", incoming: ["Host": "h"], identityHeaderNames: [], forwarding: self.forwarding(),
            framing: .none)
        #expect(getLine.text.hasPrefix("GET /g?x=1 HTTP/1.1\r\nHost: h\r\n"))
        let custom = HeaderRewriter.requestHead(
            method: .RAW(value: "PURGE"), target: "/", incoming: ["Host": "h"], identityHeaderNames: [],
            forwarding: self.forwarding(), framing: .none)
        #expect(custom.text.hasPrefix("PURGE / HTTP/1.1\r\n"))
        let post = HeaderRewriter.requestHead(
            method: .POST, target: "/", incoming: ["Host": "h"], identityHeaderNames: [], forwarding: self.forwarding(),
            framing: .none)
        #expect(post.headers["content-length"] == ["0"])
        let get = HeaderRewriter.requestHead(
            method: .GET, target: "/", incoming: ["Host": "h", "Content-Length": "0"], identityHeaderNames: [],
            forwarding: self.forwarding(), framing: .none)
        #expect(!get.headers.contains(name: "content-length"))
        #expect(!get.headers.contains(name: "transfer-encoding"))
        #expect(get.text.hasPrefix("GET / HTTP/1.1\r\n"))
        #expect(get.text.hasSuffix("\r\n\r\n"))
    }

    @Test("A spare buffer's memory is reused only when nothing else holds it")
    func spareBuffer() {
        func head(_ target: String, reusing spare: ByteBuffer?) -> ForwardHead {
            HeaderRewriter.requestHead(
                method: .GET, target: target, incoming: ["Host": "h"], identityHeaderNames: [], forwarding: self.forwarding(),
                framing: .none, reusing: spare)
        }
        func address(_ buffer: ByteBuffer) -> UInt? {
            buffer.withUnsafeReadableBytes { $0.baseAddress.map { UInt(bitPattern: $0) } }
        }
        let first = head("/first", reusing: nil)
        let firstText = first.text
        let firstAddress = address(first.bytes)

        // Still held (as by a channel that has not written it yet): the new head goes elsewhere
        // and the held one is untouched.
        let second = head("/second", reusing: first.bytes)
        #expect(second.text.hasPrefix("GET /second HTTP/1.1\r\n"))
        #expect(first.text == firstText)
        #expect(address(second.bytes) != firstAddress)

        // Held by nothing else: the same memory, and only the new head in it.
        var spare: ByteBuffer? = second.bytes
        let secondAddress = address(second.bytes)
        _ = consume second
        let third = HeaderRewriter.requestHead(
            method: .GET, target: "/3", incoming: ["Host": "h"], identityHeaderNames: [], forwarding: self.forwarding(),
            framing: .none, reusing: spare.take())
        #expect(address(third.bytes) == secondAddress)
        #expect(third.text == "GET /3 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: gw.example\r\n\r\n")
    }

    @Test("X-Forwarded-For is appended; -Proto and -Host are set")
    func forwardedHeaders() {
        let incoming: HTTPHeaders = [
            "Host": "gw.example", "X-Forwarded-For": "1.1.1.1, 2.2.2.2", "x-forwarded-for": "3.3.3.3",
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil",
        ]
        let out = HeaderRewriter.requestHeaders(incoming, identityHeaderNames: [], forwarding: self.forwarding())
        #expect(out["x-forwarded-for"] == ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9"])
        #expect(out["x-forwarded-proto"] == ["http"])
        #expect(out["x-forwarded-host"] == ["gw.example"])
    }

    @Test("forward_token false removes the Authorization header and only the token cookie")
    func stripToken() {
        let incoming: HTTPHeaders = ["Host": "h", "Authorization": "Bearer t", "Cookie": "a=1; access_token=t; b=2", "cookie": "access_token=t"]
        let out = HeaderRewriter.requestHeaders(incoming, identityHeaderNames: [], forwarding: self.forwarding(stripToken: true))
        #expect(!out.contains(name: "authorization"))
        #expect(out["cookie"] == ["a=1; b=2"])
        let kept = HeaderRewriter.requestHeaders(incoming, identityHeaderNames: [], forwarding: self.forwarding())
        #expect(kept["authorization"] == ["Bearer t"])
    }

    @Test("A rewritten cookie between kept lines keeps the head's order in the serialized head")
    func rewrittenCookieOrder() {
        let incoming: HTTPHeaders = [
            "Host": "h", "A": "1", "Cookie": "access_token=t; other=2", "Authorization": "Bearer t", "B": "3",
            "cookie": "access_token=t", "C": "4",
        ]
        let head = HeaderRewriter.requestHead(
            method: .GET, target: "/", incoming: incoming, identityHeaderNames: [],
            forwarding: self.forwarding(stripToken: true), framing: .none)
        // The runs of kept lines are written around the rewritten Cookie and the dropped lines,
        // each where it came.
        #expect(
            head.text == "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nCookie: other=2\r\nB: 3\r\nC: 4\r\n"
                + "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: gw.example\r\n\r\n")
    }

    @Test("Kept field lines that follow each other are written in one run, others in order")
    func fieldLineRuns() {
        let block = Array("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n".utf8)
        block.withUnsafeBytes { bytes in
            func line(_ index: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[index * 6..<index * 6 + 6]) }
            var buffer = ByteBuffer()
            var counts: [Int] = []
            buffer.writeHead(estimate: 64) { writer in
                var run = FieldLineRun()
                run.flush(into: &writer)  // empty: writes nothing
                counts.append(writer.count)
                run.keep(line(0), into: &writer)
                run.keep(line(1), into: &writer)
                counts.append(writer.count)  // held until something else is written
                run.keep(line(3), into: &writer)  // not adjacent: A and B go out, D starts a run
                counts.append(writer.count)
                run.keep(line(2), into: &writer)  // before D in the block: D goes out first
                run.flush(into: &writer)
                run.flush(into: &writer)  // flushed runs are empty
            }
            #expect(counts == [0, 0, 12])
            #expect(String(buffer: buffer) == "A: 1\r\nB: 2\r\nD: 4\r\nC: 3\r\n")
        }
    }

    @Test("A head written in too little room is written again, whole, in room for all of it")
    func headWriterRetries() {
        let long = String(repeating: "v", count: 300)
        for estimate in [0, 1, 10, 317, 318, 4096] {
            var buffer = ByteBuffer(string: "before|")
            var runs = 0
            buffer.writeHead(estimate: estimate) { writer in
                runs += 1
                writer.write("GET ")
                writer.write(byte: UInt8(ascii: "/"))
                writer.write(" HTTP/1.1\r\n")
                writer.writeLine("X-Long", long)
                writer.writeLine("X-Request-Id", RequestID.generated(prefix: 1, counter: 2))
                writer.write("Content-Length: ")
                writer.write(decimal: 1_234_567)
                writer.write("\r\n\r\n")
            }
            let expected = "before|GET / HTTP/1.1\r\nX-Long: \(long)\r\n"
                + "X-Request-Id: 00000000000000010000000000000002\r\nContent-Length: 1234567\r\n\r\n"
            #expect(String(buffer: buffer) == expected, "estimate \(estimate)")
            // Room for 10 bytes or less (the buffer rounds up to 32) cannot hold the 401-byte head:
            // it runs twice. Room for all of it runs once. (In between the buffer's rounding
            // decides.)
            if estimate <= 10 { #expect(runs == 2, "estimate \(estimate)") }
            if estimate >= 401 { #expect(runs == 1, "estimate \(estimate)") }
            #expect(runs == 1 || runs == 2, "estimate \(estimate)")
        }
    }

    @Test("A forwarded head longer than its estimate (a long Host, copied into X-Forwarded-Host) is written whole")
    func longForwardedHead() {
        // The estimate holds the client's lines and 512 bytes more; X-Forwarded-Host repeats a
        // 3,000-byte Host, so the first pass does not fit and the head is written again.
        let host = String(repeating: "h", count: 3_000)
        let forwarding = HeaderRewriter.Forwarding(
            clientAddress: "10.0.0.9", host: host, identity: [("X-Auth-Subject", "alice")], stripToken: false,
            tokenSource: TokenSource(), requestID: ("X-Request-Id", .given("id-1")))
        let head = HeaderRewriter.requestHead(
            method: .POST, target: "/t", incoming: ["Host": host, "A": "1"], identityHeaderNames: ["X-Auth-Subject"],
            forwarding: forwarding, framing: .contentLength(12_345))
        #expect(
            head.text == "POST /t HTTP/1.1\r\nHost: \(host)\r\nA: 1\r\n"
                + "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: \(host)\r\n"
                + "X-Auth-Subject: alice\r\nX-Request-Id: id-1\r\nContent-Length: 12345\r\n\r\n")
    }

    @Test("The head writer never writes past its room, and counts what did not fit")
    func headWriterBounds() {
        var storage = [UInt8](repeating: 0xEE, count: 8)
        storage.withUnsafeMutableBytes { room in
            var writer = HeadWriter(UnsafeMutableRawBufferPointer(rebasing: room[0..<4]))
            writer.write("abc")
            writer.write("defg")  // does not fit: nothing of it is written
            writer.write(byte: 1)  // would fit alone, past what did not
            #expect(writer.count == 8)
            #expect(!writer.fits)
        }
        #expect(storage == Array("abc".utf8) + [0xEE, 0xEE, 0xEE, 0xEE, 0xEE])
        var empty = HeadWriter(UnsafeMutableRawBufferPointer(start: nil, count: 0))
        empty.write("x")
        #expect(empty.count == 1 && !empty.fits)
    }

    @Test("Integers are written in decimal without a String", arguments: [0, 7, 10, 99, 1_000, 1_234_567_890, Int.max, -1, -42, Int.min])
    func headWriterDecimal(value: Int) {
        var buffer = ByteBuffer()
        buffer.writeHead(estimate: 32) { $0.write(decimal: value) }
        #expect(String(buffer: buffer) == String(value))
    }

    @Test("Response heads lose hop-by-hop headers and take the client's version")
    func responseHead() throws {
        var upstream = HTTPResponseHead(version: .http1_1, status: .ok)
        upstream.headers = ["Connection": "close, X-Internal", "X-Internal": "1", "Keep-Alive": "x", "Content-Length": "2"]
        let (head, close) = try #require(HeaderRewriter.responseHead(upstream, requestVersion: .http1_1, requestKeepAlive: true))
        #expect(!close)
        #expect(!head.headers.contains(name: "x-internal"))
        #expect(!head.headers.contains(name: "keep-alive"))
        #expect(!head.headers.contains(name: "connection"))  // upstream's close is not the client's
        #expect(head.headers["content-length"] == ["2"])

        var chunked = HTTPResponseHead(version: .http1_1, status: .ok)
        chunked.headers = ["Transfer-Encoding": "chunked"]
        let old = try #require(HeaderRewriter.responseHead(chunked, requestVersion: .http1_0, requestKeepAlive: true))
        #expect(old.close)  // HTTP/1.0 without a length: the body ends at close
        #expect(old.head.version == .http1_0)
        #expect(!old.head.headers.contains(name: "transfer-encoding"))
        #expect(old.head.headers["connection"] == ["close"])
    }

    func written(
        _ upstream: HTTPResponseHead, method: HTTPMethod = .GET, version: HTTPVersion = .http1_1, keepAlive: Bool = true,
        requestID: (name: String, value: RequestID)? = nil
    ) -> (text: String, close: Bool, framing: ResponseBodyFraming) {
        var buffer = ByteBuffer()
        guard
            let (close, framing) = HeaderRewriter.writeResponseHead(
                upstream, requestMethod: method, requestVersion: version, requestKeepAlive: keepAlive, requestID: requestID,
                into: &buffer)
        else {
            Issue.record("the parser refused \(upstream)")
            return ("", true, .none)
        }
        return (String(buffer: buffer), close, framing)
    }

    @Test("Response heads as bytes: exact text, and the body framing the client can read")
    func writtenResponseHeads() {
        let withLength = HTTPResponseHead(
            version: .http1_1, status: .ok,
            headers: ["Content-Type": "text/plain", "Connection": "keep-alive", "X-Request-Id": "spoofed", "Content-Length": "2"])
        let plain = self.written(withLength, requestID: ("X-Request-Id", "abc"))
        // The upstream's lines in their order (its Content-Length line as it came), the
        // upstream's request id replaced by the gateway's.
        #expect(plain.text == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Request-Id: abc\r\n\r\n")
        // A generated id (what most requests carry) goes in as its 32 digits.
        let generated = self.written(withLength, requestID: ("X-Request-Id", .generated(prefix: 0xab, counter: 0x1234)))
        #expect(generated.text == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Request-Id: 00000000000000ab0000000000001234\r\n\r\n")
        #expect(!plain.close)
        #expect(plain.framing == .asIs)

        // HEAD: the length of the body it would have had, and no body on the wire.
        let head = self.written(withLength, method: .HEAD)
        #expect(head.text.contains("Content-Length: 2\r\n"))
        #expect(head.framing == .none)

        // No length (the upstream sent it chunked, or until close): chunked for HTTP/1.1 ...
        let unknown = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Transfer-Encoding": "chunked", "A": "b"])
        let chunked = self.written(unknown)
        #expect(chunked.text == "HTTP/1.1 200 OK\r\nA: b\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(chunked.framing == .chunked)
        // ... and until close for HTTP/1.0, which has no chunked coding.
        let old = self.written(unknown, version: .http1_0)
        #expect(old.text == "HTTP/1.0 200 OK\r\nA: b\r\nConnection: close\r\n\r\n")
        #expect(old.close)
        #expect(old.framing == .asIs)
        // HTTP/1.0 with a length stays open when the client asked for keep-alive.
        let oldKept = self.written(withLength, version: .http1_0)
        #expect(oldKept.text.hasSuffix("Content-Length: 2\r\nConnection: keep-alive\r\n\r\n"))
        #expect(!oldKept.close)

        // 204 and 304 never have a body: no framing headers at all.
        for status in [HTTPResponseStatus.noContent, .notModified] {
            let none = self.written(HTTPResponseHead(version: .http1_1, status: status, headers: ["Content-Length": "7", "ETag": "x"]))
            #expect(!none.text.lowercased().contains("content-length"))
            #expect(!none.text.lowercased().contains("transfer-encoding"))
            #expect(none.framing == .none)
        }

        // The client's close wins; the status line keeps the standard reason phrase.
        let closing = self.written(HTTPResponseHead(version: .http1_1, status: .notFound, headers: ["Content-Length": "0"]), keepAlive: false)
        #expect(closing.text == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(closing.close)
    }

    @Test("Headers a Connection names are dropped from the bytes too, wherever they come in the head")
    func connectionNamedInBytes() {
        // The named header comes before the `Connection` that names it: the optimistic single
        // pass has already written it and must start again.
        let incoming: HTTPHeaders = [
            "Host": "h", "X-Custom": "drop me", "Accept": "*/*", "Connection": "keep-alive, X-Custom, Host", "X-Late": "kept",
        ]
        let head = HeaderRewriter.requestHead(
            method: .GET, target: "/", incoming: incoming, identityHeaderNames: [], forwarding: self.forwarding(),
            framing: .none)
        #expect(!head.text.contains("X-Custom"))
        #expect(!head.text.contains("Connection"))
        #expect(head.headers["host"] == ["h"])  // protected: a Connection cannot remove it
        #expect(head.headers["x-late"] == ["kept"])
        #expect(head.headers["accept"] == ["*/*"])
        // Identical to the typed view.
        let typed = HeaderRewriter.requestHeaders(incoming, identityHeaderNames: [], forwarding: self.forwarding())
        #expect(head.headers.map { "\($0.name)=\($0.value)" } == typed.map { "\($0.name)=\($0.value)" })

        let upstream = HTTPResponseHead(
            version: .http1_1, status: .ok,
            headers: ["X-Internal": "secret", "Content-Length": "0", "connection": "X-Internal", "X-Other": "1"])
        let response = self.written(upstream)
        #expect(response.text == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Other: 1\r\n\r\n")
    }

    @Test("Case-insensitive header name comparison: ASCII letters only, any string kind")
    func caseInsensitive() {
        #expect(HeaderRules.equalsIgnoringCase("Content-Length", "content-LENGTH"))
        #expect(HeaderRules.equalsIgnoringCase("x-a", Substring("X-A")))
        #expect(!HeaderRules.equalsIgnoringCase("x-a", "x-b"))
        #expect(!HeaderRules.equalsIgnoringCase("a", "ab"))
        #expect(!HeaderRules.equalsIgnoringCase("[", "{"))  // differ by 0x20 but are not letters
        #expect(!HeaderRules.equalsIgnoringCase("@", "`"))
        #expect(HeaderRules.equalsIgnoringCase("", ""))
        #expect(!HeaderRules.equalsIgnoringCase("é", "É"))  // not ASCII: compared exactly
    }

    @Test("Local answers and chunk framing in the gateway's own encoding")
    func localEncoding() {
        let head = LocalResponse.notFound.head(version: .http1_1, keepAlive: true)
        let bytes = ResponseEncoding.localResponse(
            head, body: LocalResponse.notFound.body, requestMethod: .GET, allocator: ByteBufferAllocator())
        let text = String(buffer: bytes)
        #expect(text.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(text.contains("content-length: \(LocalResponse.notFound.body.utf8.count)\r\n"))
        #expect(text.hasSuffix("\r\n\r\n" + LocalResponse.notFound.body))
        let headOnly = ResponseEncoding.localResponse(
            head, body: LocalResponse.notFound.body, requestMethod: .HEAD, allocator: ByteBufferAllocator())
        #expect(String(buffer: headOnly).hasSuffix("\r\n\r\n"))
        #expect(String(buffer: ResponseEncoding.chunkHeader(500, allocator: ByteBufferAllocator())) == "1f4\r\n")
        #expect(String(buffer: ResponseEncoding.lastChunk(trailers: nil, allocator: ByteBufferAllocator())) == "0\r\n\r\n")
        #expect(
            String(buffer: ResponseEncoding.lastChunk(trailers: ["X-Checksum": "1"], allocator: ByteBufferAllocator()))
                == "0\r\nX-Checksum: 1\r\n\r\n")
        #expect(String(buffer: ResponseEncoding.continueHead(version: .http1_1)) == "HTTP/1.1 100 Continue\r\n\r\n")
    }

    @Test("Status lines: the constant 200 line and the general path agree")
    func statusLines() {
        func line(_ version: HTTPVersion, _ status: HTTPResponseStatus) -> String {
            var buffer = ByteBuffer()
            ResponseEncoding.writeStatusLine(version: version, status: status, into: &buffer)
            return String(buffer: buffer)
        }
        #expect(line(.http1_1, .ok) == "HTTP/1.1 200 OK\r\n")
        #expect(line(.http1_1, HTTPResponseStatus(statusCode: 200)) == "HTTP/1.1 200 OK\r\n")
        #expect(line(.http1_0, .ok) == "HTTP/1.0 200 OK\r\n")
        #expect(line(.http1_1, .notFound) == "HTTP/1.1 404 Not Found\r\n")
        #expect(line(.http1_1, .custom(code: 299, reasonPhrase: "Odd")) == "HTTP/1.1 299 Odd\r\n")
    }

    @Test("Identity header values: arrays joined by comma, objects and numbers as compact JSON, controls refused")
    func claimValues() throws {
        #expect(ClaimPolicy.headerValue(for: .string("alice")) == "alice")
        #expect(ClaimPolicy.headerValue(for: try JSONParser.parse(#"["admin", "dev", 3]"#)) == "admin,dev,3")
        #expect(ClaimPolicy.headerValue(for: try JSONParser.parse(#"{ "id" : 7 }"#)) == #"{"id":7}"#)
        #expect(ClaimPolicy.headerValue(for: .number("42")) == "42")
        #expect(ClaimPolicy.headerValue(for: .bool(true)) == "true")
        #expect(ClaimPolicy.headerValue(for: .string("a\r\nX-Injected: 1")) == nil)
        #expect(ClaimPolicy.headerValue(for: .string("a\u{0}b")) == nil)
    }

    @Test("require_claims: string equals one value, array contains one, all requirements hold")
    func requireClaims() throws {
        let claims = try #require(try JSONParser.parse(#"{"role":"admin","groups":["a","b"],"verified":true,"n":5,"o":{}}"#).objectValue)
        #expect(ClaimPolicy.allows(claims, requirements: [("role", ["admin", "ops"])]))
        #expect(!ClaimPolicy.allows(claims, requirements: [("role", ["ops"])]))
        #expect(ClaimPolicy.allows(claims, requirements: [("groups", ["b"])]))
        #expect(!ClaimPolicy.allows(claims, requirements: [("groups", ["c"])]))
        #expect(ClaimPolicy.allows(claims, requirements: [("verified", ["true"]), ("n", ["5"])]))
        #expect(!ClaimPolicy.allows(claims, requirements: [("role", ["admin"]), ("groups", ["c"])]))
        #expect(!ClaimPolicy.allows(claims, requirements: [("missing", ["x"])]))
        #expect(!ClaimPolicy.allows(claims, requirements: [("o", ["{}"])]))
    }
}

@Suite("Identity header look-alikes")
struct IdentityLookalikeTests {
    @Test("Underscore and case variants of identity headers are removed (CGI servers read _ as -)")
    func lookalikes() {
        let incoming: HTTPHeaders = ["Host": "h", "X_Auth_Subject": "mallory", "x-auth_role": "admin", "X-Auth-Subjects": "keep"]
        let out = HeaderRewriter.requestHeaders(
            incoming, identityHeaderNames: ["X-Auth-Subject", "X-Auth-Role"],
            forwarding: HeaderRewriter.Forwarding(clientAddress: nil, host: "h", identity: [], stripToken: false, tokenSource: TokenSource()))
        #expect(!out.contains(name: "X_Auth_Subject"))
        #expect(!out.contains(name: "x-auth_role"))
        #expect(out["x-auth-subjects"] == ["keep"])
        #expect(HeaderRewriter.sameCGIName("X_AUTH-subject", "x-auth-SUBJECT"))
        #expect(!HeaderRewriter.sameCGIName("X-Auth-Subject", "X-Auth-Subjec"))
    }
}
