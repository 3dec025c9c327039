import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// An upstream that answers each request head with bytes a test scripts by path, written in the
/// given pieces (each flushed, 2 ms apart), so a test can send what no well-behaved server would.
final class ScriptedUpstream: Sendable {
    struct Script: Sendable {
        var pieces: [[UInt8]]
        var closeAfter = false

        init(_ text: String, closeAfter: Bool = false) {
            self.pieces = [Array(text.utf8)]
            self.closeAfter = closeAfter
        }

        /// The response a byte at a time.
        static func trickled(_ text: String) -> Script {
            var script = Script(text)
            script.pieces = Array(text.utf8).map { [$0] }
            return script
        }
    }

    let channel: any Channel
    let port: Int

    private init(channel: any Channel) throws {
        self.channel = channel
        guard let port = channel.localAddress?.port else { throw E2EFailure("scripted upstream has no port") }
        self.port = port
    }

    var url: String { "http://127.0.0.1:\(self.port)" }

    static func start(_ script: @escaping @Sendable (_ path: String) -> Script) async throws -> ScriptedUpstream {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return try ScriptedUpstream(channel: channel)
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// Reads request heads (the gateway sends these tests' GETs without a body) and answers each.
    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: @Sendable (String) -> Script
        var received: [UInt8] = []

        init(script: @escaping @Sendable (String) -> Script) {
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.received += Self.unwrapInboundIn(data).readableBytesView
            while let end = ResponseParser.find([13, 10, 13, 10], in: self.received, from: 0) {
                let line = String(decoding: self.received[..<end], as: UTF8.self).split(separator: " ")
                self.received.removeFirst(end + 4)
                let path = line.count > 1 ? String(line[1]) : "/"
                self.send(self.script(path), piece: 0, context: context)
            }
        }

        private func send(_ script: Script, piece: Int, context: ChannelHandlerContext) {
            guard piece < script.pieces.count else {
                if script.closeAfter { context.close(promise: nil) }
                return
            }
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(bytes: script.pieces[piece])), promise: nil)
            guard piece + 1 < script.pieces.count else { return self.send(script, piece: piece + 1, context: context) }
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(2)) {
                self.send(script, piece: piece + 1, context: context)
            }
        }
    }
}

extension EndToEnd {
    /// The gateway reads upstream responses with its own parser (`UpstreamResponseParser`): what
    /// it refuses is a 502 that leaves the client's connection usable, what it accepts reaches
    /// the client intact, however the upstream splits it.
    @Suite("Upstream response parsing")
    struct UpstreamParsing {
        static let refused: [String: String] = [
            "/length-and-chunked": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            "/folded": "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
            "/bare-lf": "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            "/space-before-colon": "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            "/gzip-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "/http2": "HTTP/2 200\r\n\r\n",
            "/nul": "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 0\r\n\r\n",
        ]

        static func script(_ path: String) -> ScriptedUpstream.Script {
            if let bad = Self.refused[path] { return .init(bad) }
            switch path {
            case "/trickled":
                return .trickled(
                    "HTTP/1.1 200 OK\r\nX-Spaced:   kept value  \r\nContent-Length: 5\r\n\r\nhello")
            case "/chunked":
                return .trickled(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nchun\r\n3;q=\"x y\"\r\nked\r\n0\r\n\r\n")
            case "/interim":
                return .init(
                    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
            case "/broken-chunk":
                return .init("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n")
            case "/extra":
                return .init("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmuggl")
            case "/until-close":
                return .init("HTTP/1.1 200 OK\r\n\r\nthe rest", closeAfter: true)
            default:
                return .init("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            }
        }

        static func withScripted(_ body: (GatewayEnv) async throws -> Void) async throws {
            let upstream = try await ScriptedUpstream.start { Self.script($0) }
            do {
                try await withGateway(config: { _ in
                    ConfigJSON.make(
                        routes: [#"{"path_prefix": "/", "upstream": "\#(upstream.url)", "auth": "none"}"#],
                        extra: [#""admin_listen": "127.0.0.1:0""#])
                }) { env in try await body(env) }
            } catch {
                await upstream.stop()
                throw error
            }
            await upstream.stop()
        }

        @Test("A response the parser refuses is a 502 bad_gateway, and the client's connection goes on",
              arguments: refused.keys.sorted())
        func refusedResponse(_ path: String) async throws {
            try await Self.withScripted { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", path))
                let response = try await client.readResponse()
                #expect(response.status == 502, "\(path): \(response)")
                #expect(try response.json()["error"]?.stringValue == "bad_gateway")
                // Counted as what it is, and answered once: not retried as a closed connection.
                let metrics = try ParsedMetrics(try await adminGet(env, "/metrics").text)
                let errors = metrics.samples.filter { $0.key.hasPrefix("authgate_upstream_errors_total{") }
                #expect(errors.filter { $0.key.hasSuffix(#"kind="invalid_response"}"#) }.values.reduce(0, +) == 1, "\(errors)")
                #expect(errors.filter { $0.key.hasSuffix(#"kind="closed"}"#) }.isEmpty, "\(errors)")
                try await client.send(httpRequest("GET", "/ok"))
                let next = try await client.readResponse()
                #expect(next.status == 200, "\(next)")
                #expect(next.text == "ok")
            }
        }

        @Test("A head and body that arrive a byte at a time are forwarded whole; chunked bodies lose their extensions")
        func trickled() async throws {
            try await Self.withScripted { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/trickled"))
                let response = try await client.readResponse()
                #expect(response.status == 200, "\(response)")
                #expect(response.text == "hello")
                #expect(response.header("x-spaced") == "kept value")
                #expect(response.header("content-length") == "5")
                try await client.send(httpRequest("GET", "/chunked"))
                let chunked = try await client.readResponse()
                #expect(chunked.text == "chunked", "\(chunked)")
                #expect(chunked.header("transfer-encoding") == "chunked")
            }
        }

        @Test("An interim 103 is not relayed; the final response is")
        func interim() async throws {
            try await Self.withScripted { env in
                let response = try await env.send(httpRequest("GET", "/interim"))
                #expect(response.status == 200, "\(response)")
                #expect(response.text == "final")
            }
        }

        @Test("A chunk that breaks its framing after the head cuts the client off without a complete response")
        func brokenChunk() async throws {
            try await Self.withScripted { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/broken-chunk"))
                #expect(await client.waitForClose())
                let bytes = String(decoding: client.inbox.read { $0.bytes }, as: UTF8.self)
                // Nothing, or the start of the response (as much as was written before the error
                // arrived), but never a complete body.
                #expect(bytes.isEmpty || bytes.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(bytes)")
                #expect(!bytes.hasSuffix("0\r\n\r\n"), "the client must not see a complete body: \(bytes)")
            }
        }

        @Test("Bytes after a complete response answer nothing: that upstream connection is dropped, never read as the next response")
        func extraBytes() async throws {
            try await Self.withScripted { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/extra"))
                let first = try await client.readResponse()
                #expect(first.status == 200)
                #expect(first.text == "ok")
                for _ in 0..<3 {
                    try await client.send(httpRequest("GET", "/ok"))
                    let next = try await client.readResponse()
                    #expect(next.status == 200, "\(next)")
                    #expect(next.text == "ok", "the upstream's extra bytes were read as a response: \(next)")
                }
            }
        }

        @Test("A body that runs until the upstream closes reaches the client whole, re-framed")
        func untilClose() async throws {
            try await Self.withScripted { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/until-close"))
                let response = try await client.readResponse()
                #expect(response.status == 200, "\(response)")
                #expect(response.text == "the rest")
                #expect(response.header("transfer-encoding") == "chunked")
                try await client.send(httpRequest("GET", "/ok"))
                #expect(try await client.readResponse().text == "ok")
            }
        }
    }
}
