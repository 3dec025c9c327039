import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 6: malformed HTTP, limits, keep-alive and pipelining.
    @Suite("Framing")
    struct Framing {
        /// Sends `raw`, expects exactly one response with `status`, the connection closed afterwards,
        /// nothing more on the wire and no request at the upstream.
        private func expectRejected(_ raw: String, status: Int, config: @escaping ([TestUpstream]) -> String = { openConfig($0) })
            async throws
        {
            try await withGateway(config: config) { env in
                let client = try await env.connect()
                await client.sendIgnoringErrors(raw)
                let response = try await client.readResponse()
                #expect(response.status == status, "\(response)")
                #expect(await client.waitForClose(), "connection left open after \(response.status)")
                #expect(client.unreadBytes.isEmpty, "more bytes after the rejection: \(String(decoding: client.unreadBytes, as: UTF8.self))")
                #expect(env.upstreamRequests == 0, "the upstream saw \(env.upstream.snapshot.targets)")
            }
        }

        @Test("Content-Length with Transfer-Encoding: 400, closed, smuggled request never reaches the upstream")
        func contentLengthAndTransferEncoding() async throws {
            let smuggled = httpRequest("GET", "/smuggled")
            let raw =
                "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "0\r\n\r\n" + smuggled
            try await self.expectRejected(raw, status: 400)
            let reversed =
                "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                + "0\r\n\r\n" + smuggled
            try await self.expectRejected(reversed, status: 400)
        }

        @Test("TRACE with content: 400, and the content never reaches an upstream as a request")
        func traceWithContent() async throws {
            // Before the gateway wrote its own request heads, NIO's encoder dropped the framing of a
            // TRACE and sent its body raw: the upstream read it as a second, unauthenticated request.
            let smuggled = httpRequest("GET", "/admin/secret")
            try await self.expectRejected(httpRequest("TRACE", "/public/x", body: smuggled), status: 400)
            let chunked =
                "TRACE /public/x HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(smuggled.utf8.count, radix: 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n"
            try await self.expectRejected(chunked, status: 400)
        }

        @Test("A body on any method is forwarded with its own framing, never as a request of its own")
        func bodyKeepsItsFraming() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                let smuggled = httpRequest("GET", "/smuggled")
                for method in ["GET", "DELETE", "OPTIONS", "POST"] {
                    try await client.send(httpRequest(method, "/echo-\(method)", body: smuggled))
                    let response = try await client.readResponse()
                    #expect(response.status == 200, "\(method): \(response)")
                    let echo = try response.echo()
                    #expect(echo.values("content-length") == [String(smuggled.utf8.count)], "\(method)")
                    #expect(echo.body == smuggled, "\(method)")
                }
                // A bodyless POST says so.
                try await client.send(httpRequest("POST", "/empty"))
                let empty = try await client.readResponse()
                #expect(try empty.echo().values("content-length") == ["0"])
                #expect(env.upstream.snapshot.targets == ["/echo-GET", "/echo-DELETE", "/echo-OPTIONS", "/echo-POST", "/empty"])
            }
        }

        @Test("two different Content-Length values: 400")
        func conflictingContentLength() async throws {
            let raw = "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
            try await self.expectRejected(raw, status: 400)
            let listed = "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 3, 5\r\n\r\nabcde"
            try await self.expectRejected(listed, status: 400)
        }

        @Test("Transfer-Encoding other than exactly chunked: 400",
              arguments: ["gzip, chunked", "identity", "chunked, chunked", "gzip", "chunked;x=1"])
        func unsupportedTransferEncoding(_ value: String) async throws {
            let raw = "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: \(value)\r\n\r\n0\r\n\r\n"
            try await self.expectRejected(raw, status: 400)
        }

        @Test("missing Host: 400")
        func missingHost() async throws {
            try await self.expectRejected(httpRequest("GET", "/x", host: nil), status: 400)
            try await self.expectRejected(httpRequest("GET", "/x", host: ""), status: 400)
        }

        @Test("two Host headers: 400")
        func repeatedHost() async throws {
            try await self.expectRejected(httpRequest("GET", "/x", headers: [("Host", "other.test")]), status: 400)
            try await self.expectRejected(httpRequest("GET", "/x", headers: [("Host", "gateway.test")]), status: 400)
        }

        @Test("header block over max_header_bytes: 431")
        func headersTooLarge() async throws {
            let limits = [#""limits": {"max_header_bytes": 4096}"#]
            let oneBig = httpRequest("GET", "/x", headers: [("X-Big", String(repeating: "a", count: 8000))])
            try await self.expectRejected(oneBig, status: 431, config: { openConfig($0, extra: limits) })
            let many = httpRequest(
                "GET", "/x", headers: (0..<100).map { ("X-Many-\($0)", String(repeating: "b", count: 60)) })
            try await self.expectRejected(many, status: 431, config: { openConfig($0, extra: limits) })
        }

        @Test("request target over max_header_bytes: 414; an HTTP version other than 1.0 and 1.1: 505")
        func targetTooLongAndVersion() async throws {
            let limits = [#""limits": {"max_header_bytes": 4096}"#]
            let long = httpRequest("GET", "/" + String(repeating: "a", count: 5000))
            try await self.expectRejected(long, status: 414, config: { openConfig($0, extra: limits) })
            try await self.expectRejected("GET /x HTTP/2.0\r\nHost: gateway.test\r\n\r\n", status: 505)
        }

        @Test("a tab inside a framing value: 400 (llhttp reads it as part of the value), the request behind it never served")
        func tabInFramingValue() async throws {
            let smuggled = httpRequest("GET", "/smuggled")
            try await self.expectRejected(
                "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 2\t\r\n\r\n" + smuggled, status: 400)
            try await self.expectRejected(
                "POST /upload HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n" + smuggled,
                status: 400)
        }

        @Test("headers just under max_header_bytes pass")
        func headersUnderLimit() async throws {
            try await withGateway(config: { openConfig($0, extra: [#""limits": {"max_header_bytes": 4096}"#]) }) { env in
                let response = try await env.send(
                    httpRequest("GET", "/x", headers: [("X-Big", String(repeating: "a", count: 3000))]))
                #expect(response.status == 200, "\(response)")
            }
        }

        @Test("Content-Length over max_body_bytes: 413 before any body, upstream untouched")
        func contentLengthTooLarge() async throws {
            let raw = "POST /__sink HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 4096\r\n\r\n"
            try await self.expectRejected(
                raw, status: 413, config: { openConfig($0, extra: [#""limits": {"max_body_bytes": 1024}"#]) })
        }

        @Test("chunked body over max_body_bytes: 413 and close; the upstream never gets a complete request")
        func chunkedTooLarge() async throws {
            try await withGateway(config: { openConfig($0, extra: [#""limits": {"max_body_bytes": 1024}"#]) }) { env in
                let client = try await env.connect()
                let chunk = String(repeating: "z", count: 700)
                await client.sendIgnoringErrors(
                    "POST /__sink HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "2bc\r\n\(chunk)\r\n2bc\r\n\(chunk)\r\n2bc\r\n\(chunk)\r\n0\r\n\r\n")
                do {
                    let response = try await client.readResponse()
                    #expect(response.status == 413, "\(response)")
                } catch ClientError.closedBeforeResponse {
                    // Allowed only if a response had started; here none can have.
                    Issue.record("connection closed without a 413")
                }
                #expect(await client.waitForClose())
                #expect(env.upstream.snapshot.ends == 0, "the upstream received a complete oversized request")
            }
        }

        @Test("a body exactly at max_body_bytes passes")
        func bodyAtLimit() async throws {
            try await withGateway(config: { openConfig($0, extra: [#""limits": {"max_body_bytes": 1024}"#]) }) { env in
                let body = String(repeating: "k", count: 1024)
                let response = try await env.send(httpRequest("POST", "/__sink", body: body))
                #expect(response.status == 200, "\(response)")
                #expect(try response.echo().bodyBytes == 1024)
            }
        }

        @Test("keep-alive: two requests on one connection")
        func keepAlive() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/first"))
                let first = try await client.readResponse()
                #expect(first.status == 200)
                #expect(try first.echo().path == "/first")
                try await client.send(httpRequest("POST", "/second", body: "payload"))
                let second = try await client.readResponse()
                #expect(second.status == 200)
                let echo = try second.echo()
                #expect(echo.path == "/second")
                #expect(echo.body == "payload")
                #expect(!client.isClosed)
            }
        }

        @Test("pipelining: three requests written at once are answered in order")
        func pipelining() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    httpRequest("GET", "/__delay?ms=300&n=1") + httpRequest("POST", "/two?n=2", body: "second")
                        + httpRequest("GET", "/three?n=3"))
                var queries: [String?] = []
                for _ in 0..<3 {
                    let response = try await client.readResponse()
                    #expect(response.status == 200, "\(response)")
                    queries.append(try response.echo().query)
                }
                #expect(queries == ["ms=300&n=1", "n=2", "n=3"])
            }
        }

        @Test("pipelining across a local rejection: 401 then 200 on one connection")
        func pipeliningAfterRejection() async throws {
            let token = try Tokens.valid()
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    httpRequest("GET", "/orders/1") + httpRequest("GET", "/orders/2", headers: [bearer(token)]))
                let first = try await client.readResponse()
                #expect(first.status == 401)
                let second = try await client.readResponse()
                #expect(second.status == 200, "\(second)")
                #expect(try second.echo().path == "/orders/2")
                #expect(env.upstream.snapshot.targets == ["/orders/2"])
            }
        }

        @Test("a rejected request's unread body is never parsed as a request")
        func rejectedBodyNotSmuggled() async throws {
            let inner = httpRequest("GET", "/public/smuggled")
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                await client.sendIgnoringErrors(httpRequest("POST", "/orders", body: inner))
                let response = try await client.readResponse()
                #expect(response.status == 401)
                // Either the body is drained and the connection kept, or it is closed; never a 2nd answer.
                if await client.waitForClose(timeout: .seconds(1)) == false {
                    try await client.send(httpRequest("GET", "/public/after"))
                    let next = try await client.readResponse()
                    #expect(try next.echo().path == "/public/after")
                }
                #expect(!env.upstream.snapshot.targets.contains("/public/smuggled"))
            }
        }

        @Test("HTTP/1.0: answered, then the connection is closed")
        func http10() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/old", version: "HTTP/1.0"))
                let response = try await client.readResponse()
                #expect(response.status == 200, "\(response)")
                #expect(response.version == "HTTP/1.0")
                #expect(try response.echo().path == "/old")
                #expect(await client.waitForClose())
            }
        }

        @Test("HTTP/1.0 download of a chunked upstream response is delimited by close")
        func http10Streamed() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/__stream?bytes=100000", version: "HTTP/1.0"))
                let response = try await client.readResponse()
                #expect(response.status == 200)
                #expect(response.values("transfer-encoding").isEmpty)
                #expect(response.body.count == 100_000)
                #expect(client.isClosed)
            }
        }

        @Test("Connection: close on HTTP/1.1 is honoured")
        func connectionClose() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/bye", headers: [("Connection", "close")]))
                let response = try await client.readResponse()
                #expect(response.status == 200)
                #expect(response.closesConnection)
                #expect(await client.waitForClose())
            }
        }

        @Test("HEAD responses carry no body and keep the connection's framing")
        func headRequest() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    httpRequest("HEAD", "/h") + httpRequest("HEAD", "/__stream?bytes=1000") + httpRequest("GET", "/after"))
                let first = try await client.readResponse(headRequest: true)
                #expect(first.status == 200)
                let second = try await client.readResponse(headRequest: true)
                #expect(second.status == 200)
                let third = try await client.readResponse()
                #expect(third.status == 200, "\(third)")
                #expect(try third.echo().path == "/after")
                #expect(client.unreadBytes.isEmpty)
            }
        }

        @Test("a Connection: Upgrade request that is not upgraded does not wedge the connection")
        func upgradeRequestNotWedged() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                // No Sec-WebSocket-Key: the upstream does not switch and answers like any request.
                try await client.send(
                    httpRequest("GET", "/ws", headers: [("Connection", "Upgrade"), ("Upgrade", "websocket")]))
                let first = try await client.readResponse()
                #expect(first.status != 101, "\(first)")
                if first.status == 200 {
                    // Forwarded as an upgrade (the route allows websocket), so the headers are kept.
                    #expect(try first.echo().values("upgrade") == ["websocket"])
                }
                if first.closesConnection {
                    #expect(await client.waitForClose())
                    return
                }
                // Kept alive: the next request must be answered (or the connection closed), not ignored.
                await client.sendIgnoringErrors(httpRequest("GET", "/after-upgrade"))
                do {
                    let next = try await client.readResponse(timeout: .seconds(2))
                    #expect(try next.echo().path == "/after-upgrade")
                } catch ClientError.closedBeforeResponse {
                    // Closing is acceptable.
                } catch let timeout as E2ETimeout {
                    Issue.record("kept-alive connection ignores the request after an Upgrade request: \(timeout)")
                }
            }
        }

        @Test("garbage and non-origin-form targets: 400",
              arguments: ["GARBAGE\r\n\r\n", "GET http://evil.test/x HTTP/1.1\r\nHost: evil.test\r\n\r\n",
                          "GET x HTTP/1.1\r\nHost: a\r\n\r\n", "GET /x HTTP/1.1\r\nHost: a\r\nBad Header: y\r\n\r\n",
                          "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"])
        func malformed(_ raw: String) async throws {
            try await self.expectRejected(raw, status: 400)
        }
    }
}
