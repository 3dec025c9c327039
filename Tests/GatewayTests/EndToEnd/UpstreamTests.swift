import NIOCore
import NIOPosix
import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 5: "Upstream unreachable: 502; upstream too slow: 504", and
    /// keep-alive pooling towards upstreams.
    @Suite("Upstream")
    struct UpstreamFailures {
        /// A port that was just bound and released: connecting to it is refused.
        static func closedPort() async throws -> Int {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let port = try #require(channel.localAddress?.port)
            try await channel.close().get()
            return port
        }

        @Test("upstream port closed: 502")
        func unreachable() async throws {
            let port = try await Self.closedPort()
            try await withGateway(
                config: { u in
                    ConfigJSON.make(routes: [
                        #"{"path_prefix": "/dead", "upstream": "http://127.0.0.1:\#(port)", "auth": "none"}"#,
                        ConfigJSON.route("/", u[0], auth: "none"),
                    ])
                }
            ) { env in
                let client = try await env.connect()
                let (response, elapsed) = try await timed {
                    try await client.send(httpRequest("GET", "/dead/x"))
                    return try await client.readResponse()
                }
                #expect(response.status == 502, "\(response)")
                #expect(try response.json()["error"]?.stringValue == "bad_gateway")
                #expect(elapsed < .seconds(3))
                // The client connection survives a 502 on a complete request.
                if !client.isClosed && !response.closesConnection {
                    try await client.send(httpRequest("GET", "/alive"))
                    #expect(try await client.readResponse().status == 200)
                }
            }
        }

        @Test("upstream slower than upstream_seconds: 504 from that limit, long before the upstream answers")
        func slowUpstream() async throws {
            try await withGateway(config: { openConfig($0, extra: [#""timeouts": {"upstream_seconds": 0.5}"#]) }) { env in
                // The upstream would answer after 5 s; the 504 must come from the 0.5 s limit, with
                // room for a loaded machine (1.6 s was seen while a build ran beside the suite).
                let (response, elapsed) = try await timed {
                    try await env.send(httpRequest("GET", "/__delay?ms=5000"), timeout: .seconds(8))
                }
                #expect(response.status == 504, "\(response)")
                #expect(try response.json()["error"]?.stringValue == "gateway_timeout")
                #expect(elapsed >= .milliseconds(450), "answered after \(elapsed)")
                #expect(elapsed < .milliseconds(3000), "answered after \(elapsed)")

                // A fast request on the same gateway is unaffected.
                let fast = try await env.send(httpRequest("GET", "/__delay?ms=10"))
                #expect(fast.status == 200)
            }
        }

        @Test("upstream_seconds counts from the end of the request: a slow upload is not a 504")
        func slowUploadIsNotTimeout() async throws {
            try await withGateway(config: { openConfig($0, extra: [#""timeouts": {"upstream_seconds": 0.5}"#]) }) { env in
                let client = try await env.connect()
                try await client.send("POST /__sink HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 8\r\n\r\n")
                for _ in 0..<8 {
                    try await Task.sleep(for: .milliseconds(120))
                    await client.sendIgnoringErrors("u")
                }
                let response = try await client.readResponse(timeout: .seconds(3))
                #expect(response.status == 200, "\(response)")
                #expect(try response.echo().bodyBytes == 8)
            }
        }

        @Test("a client that stalls mid-body for client_idle_seconds gets 408 and is closed; steady uploads are not")
        func stalledBodyTimesOut() async throws {
            // 1 s against one byte per 150 ms leaves room for a loaded machine's scheduling (0.6 s
            // did not, with parallel builds running beside the suite).
            try await withGateway(config: { openConfig($0, extra: [#""timeouts": {"client_idle_seconds": 1.0}"#]) }) { env in
                // Steady: one byte every 150 ms for ~1.5 s, longer than the idle limit in total.
                let steady = try await env.connect()
                try await steady.send("POST /__sink HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 10\r\n\r\n")
                for _ in 0..<10 {
                    try await Task.sleep(for: .milliseconds(150))
                    await steady.sendIgnoringErrors("u")
                }
                let ok = try await steady.readResponse(timeout: .seconds(3))
                #expect(ok.status == 200, "\(ok)")

                // Stalled: half the body, then nothing.
                let stalled = try await env.connect()
                try await stalled.send("POST /__sink HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 10\r\n\r\nhalf")
                let (response, elapsed) = try await timed { try await stalled.readResponse(timeout: .seconds(4)) }
                #expect(response.status == 408, "\(response)")
                #expect(elapsed < .milliseconds(2500), "answered after \(elapsed)")
                #expect(await stalled.waitForClose())
            }
        }

        @Test("upstream closes without answering: 502")
        func upstreamClosesWithoutAnswer() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/__close"), timeout: .seconds(5))
                #expect(response.status == 502, "\(response)")
                let post = try await env.send(httpRequest("POST", "/__close", body: "data"), timeout: .seconds(5))
                #expect(post.status == 502, "\(post)")
            }
        }

        @Test("each upstream has its own pooled connection, also when requests alternate between them")
        func poolingPerUpstream() async throws {
            try await withGateway(
                upstreams: 2,
                config: { u in
                    ConfigJSON.make(routes: [
                        ConfigJSON.route("/a", u[0], auth: "none"), ConfigJSON.route("/b", u[1], auth: "none"),
                    ])
                }
            ) { env in
                let client = try await env.connect()
                for path in ["/a/1", "/b/1", "/a/2", "/a/3", "/b/2", "/a/4", "/b/3"] {
                    try await client.send(httpRequest("GET", path))
                    let response = try await client.readResponse()
                    #expect(response.status == 200, "\(response)")
                    #expect(try response.echo().path == path)
                }
                #expect(env.upstreams[0].snapshot.connections == 1, "\(env.upstreams[0].snapshot.connections) connections to a")
                #expect(env.upstreams[1].snapshot.connections == 1, "\(env.upstreams[1].snapshot.connections) connections to b")
                #expect(env.upstreams[0].snapshot.targets == ["/a/1", "/a/2", "/a/3", "/a/4"])
                #expect(env.upstreams[1].snapshot.targets == ["/b/1", "/b/2", "/b/3"])
            }
        }

        @Test("upstream connections are pooled and survive the upstream closing idle ones")
        func pooling() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                // One client connection: its requests share an event loop, hence one pool.
                let client = try await env.connect()
                for index in 1...3 {
                    try await client.send(httpRequest("GET", "/pooled/\(index)"))
                    let response = try await client.readResponse()
                    #expect(response.status == 200, "\(response)")
                }
                #expect(env.upstream.snapshot.connections == 1, "\(env.upstream.snapshot.connections) upstream connections")
                #expect(await env.server.metricsSnapshot().upstreamConnectionsIdle == 1)

                // The upstream drops its idle keep-alive connections; the next requests still work,
                // without or with time for the gateway to notice.
                await env.upstream.closeAcceptedConnections()
                try await client.send(httpRequest("GET", "/after-close/1"))
                let immediately = try await client.readResponse()
                #expect(immediately.status == 200, "\(immediately)")

                await env.upstream.closeAcceptedConnections()
                // Time for the gateway to see the close of its idle connection: a request with a body
                // cannot be replayed on a new connection, so it must not be sent on a dead one.
                try await Task.sleep(for: .milliseconds(300))
                // The pool forgot the closed one (`remove`), not only skips it when asked for one.
                #expect(await env.server.metricsSnapshot().upstreamConnectionsIdle == 0)
                try await client.send(httpRequest("POST", "/after-close/2", body: "with body"))
                let later = try await client.readResponse()
                #expect(later.status == 200, "\(later)")
                #expect(try later.echo().body == "with body")

                try await client.send(httpRequest("GET", "/after-close/3"))
                #expect(try await client.readResponse().status == 200)
                #expect(env.upstream.snapshot.connections == 3, "\(env.upstream.snapshot.connections) upstream connections")
            }
        }
    }

    /// CONTRACT "Commands": serve "drains in-flight requests" on shutdown.
    @Suite("Shutdown")
    struct Shutdown {
        @Test("an in-flight request completes during shutdown; new connections are refused")
        func drainsInFlight() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let idle = try await env.connect()
                try await idle.send(httpRequest("GET", "/warmup"))
                #expect(try await idle.readResponse().status == 200)

                let busy = try await env.connect()
                try await busy.send(httpRequest("GET", "/__delay?ms=500"))
                try await env.upstream.waitForHeads(2)

                let (_, elapsed) = try await timed {
                    async let drained: Void = env.shutdownGateway(drainTimeout: .seconds(5))
                    // While draining: the listener is closed (bounded retry while it closes).
                    var refused = false
                    for _ in 0..<100 {
                        do {
                            let probe = try await RawClient.connect(port: env.port)
                            await probe.close()
                            try await Task.sleep(for: .milliseconds(10))
                        } catch {
                            refused = true
                            break
                        }
                    }
                    #expect(refused, "the gateway still accepted connections while draining")
                    let response = try await busy.readResponse(timeout: .seconds(5))
                    #expect(response.status == 200, "\(response)")
                    #expect(try response.echo().path == "/__delay")
                    await drained
                }
                #expect(elapsed < .seconds(4), "shutdown took \(elapsed)")
                #expect(await idle.waitForClose(timeout: .seconds(1)), "idle keep-alive connection left open")
                #expect(await busy.waitForClose(timeout: .seconds(1)), "drained connection left open")

                var connected = false
                do {
                    let late = try await RawClient.connect(port: env.port)
                    connected = true
                    await late.close()
                } catch {}
                #expect(!connected, "the gateway accepted a connection after shutdown")
            }
        }
    }

    /// RFC 9110 §10.1.1 through the gateway.
    @Suite("ExpectContinue")
    struct ExpectContinue {
        @Test("valid token: 100 Continue, then the final response")
        func continueWithToken() async throws {
            let token = try Tokens.valid()
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    "POST /orders HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer \(token)\r\n"
                        + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                let interim = try await client.readResponse(timeout: .seconds(5))
                #expect(interim.status == 100, "\(interim)")
                try await client.send("hello")
                let final = try await client.readResponse()
                #expect(final.status == 200, "\(final)")
                let echo = try final.echo()
                #expect(echo.body == "hello")
                #expect(echo.values("expect").isEmpty)
                #expect(client.unreadBytes.isEmpty, "extra bytes: \(String(decoding: client.unreadBytes, as: UTF8.self))")
            }
        }

        @Test("no token: 401 without waiting for the body, no 100 Continue, upstream untouched")
        func rejectWithoutBody() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    "POST /orders HTTP/1.1\r\nHost: gateway.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                let response = try await client.readResponse(timeout: .seconds(3))
                #expect(response.status == 401, "\(response)")
                #expect(await client.waitForClose(timeout: .seconds(3)))
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("an unsupported expectation: 417")
        func unsupportedExpectation() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let response = try await env.send(
                    "POST /x HTTP/1.1\r\nHost: gateway.test\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello")
                #expect(response.status == 417, "\(response)")
                #expect(env.upstreamRequests == 0)
            }
        }
    }
}
