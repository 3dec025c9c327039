import Crypto
import Foundation
import NIOCore
import Testing

@testable import Gateway

// MARK: - A hand-made WebSocket client (RFC 6455 §5)

struct WSFrame: Equatable, CustomStringConvertible {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA

    var fin = true
    var opcode: UInt8
    var payload: [UInt8]

    var description: String { "opcode \(self.opcode) fin \(self.fin) \(self.payload.count) bytes" }

    /// The frame as a client sends it: masked with a fresh key.
    func masked() -> [UInt8] {
        var bytes: [UInt8] = [(self.fin ? 0x80 : 0) | self.opcode]
        let count = self.payload.count
        if count < 126 {
            bytes.append(0x80 | UInt8(count))
        } else if count <= 0xFFFF {
            bytes.append(0x80 | 126)
            bytes.append(contentsOf: [UInt8(count >> 8), UInt8(count & 0xFF)])
        } else {
            bytes.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((count >> shift) & 0xFF)) }
        }
        let key: [UInt8] = (0..<4).map { _ in UInt8.random(in: 0...255) }
        bytes.append(contentsOf: key)
        for (index, byte) in self.payload.enumerated() { bytes.append(byte ^ key[index % 4]) }
        return bytes
    }

    /// Parses one unmasked (server) frame from the start of `bytes`: the frame and its length.
    static func parse(_ bytes: [UInt8]) -> (WSFrame, Int)? {
        guard bytes.count >= 2 else { return nil }
        var position = 2
        var length = Int(bytes[1] & 0x7F)
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            position = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            position = 10
        }
        guard bytes[1] & 0x80 == 0, bytes.count >= position + length else { return nil }
        let frame = WSFrame(fin: bytes[0] & 0x80 != 0, opcode: bytes[0] & 0x0F, payload: Array(bytes[position..<(position + length)]))
        return (frame, position + length)
    }
}

enum WebSocket {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    /// The handshake request (RFC 6455 §4.1).
    static func handshake(_ target: String = "/ws", headers: [(String, String)] = [], upgrade: String = "websocket") -> String {
        httpRequest(
            "GET", target,
            headers: [("Connection", "Upgrade"), ("Upgrade", upgrade), ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
                + headers)
    }

    /// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2).
    static func accept(_ key: String = key) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }
}

extension RawClient {
    /// Reads the next server frame (consuming its bytes).
    func readFrame(timeout: Duration = .seconds(10)) async throws -> WSFrame {
        try await self.inbox.wait(timeout: timeout, for: "a WebSocket frame") { inbox in
            guard let (frame, consumed) = WSFrame.parse(inbox.bytes) else { return nil }
            inbox.bytes.removeFirst(consumed)
            return frame
        }
    }

    /// Sends a handshake, checks the `101` and returns.
    func openWebSocket(_ target: String = "/ws", headers: [(String, String)] = [], then first: [UInt8] = []) async throws {
        try await self.send(Array(WebSocket.handshake(target, headers: headers).utf8) + first)
        let response = try await self.readResponse()
        guard response.status == 101 else { throw E2EFailure("no switch: \(response)") }
    }
}

extension EndToEnd {
    /// `Upgrade` requests: authenticated like any other, then tunnelled on a dedicated upstream
    /// connection (README "WebSocket and Upgrade").
    @Suite("WebSocket and Upgrade")
    struct WebSocketTunnel {
        @Test("A WebSocket echo through the gateway: 101 relayed, frames (one over 64 KiB) both ways, bytes sent with the handshake kept")
        func echo() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                let early = WSFrame(opcode: WSFrame.text, payload: Array("sent with the handshake".utf8))
                // Handshake and a first frame in one TCP write: the frame must survive the switch.
                try await client.send(Array(WebSocket.handshake(headers: [bearer(try Tokens.valid())]).utf8) + early.masked())
                let response = try await client.readResponse()
                #expect(response.status == 101, "\(response)")
                #expect(response.header("upgrade")?.lowercased() == "websocket")
                #expect(response.header("connection")?.lowercased() == "upgrade")
                #expect(response.header("sec-websocket-accept") == WebSocket.accept())
                #expect(response.header("content-length") == nil && response.header("transfer-encoding") == nil)
                #expect(try await client.readFrame() == early)

                let large = WSFrame(opcode: WSFrame.binary, payload: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                let medium = WSFrame(opcode: WSFrame.text, payload: Array(String(repeating: "m", count: 300).utf8))
                let ping = WSFrame(opcode: WSFrame.ping, payload: Array("p".utf8))
                try await client.send(large.masked() + medium.masked() + ping.masked())
                #expect(try await client.readFrame() == large)
                #expect(try await client.readFrame() == medium)
                #expect(try await client.readFrame() == WSFrame(opcode: WSFrame.pong, payload: Array("p".utf8)))

                let first = WSFrame(fin: false, opcode: WSFrame.text, payload: Array("frag".utf8))
                let last = WSFrame(fin: true, opcode: WSFrame.continuation, payload: Array("ment".utf8))
                try await client.send(first.masked())
                try await client.send(last.masked())
                #expect(try await client.readFrame() == first)
                #expect(try await client.readFrame() == last)

                // The upstream answers a close with a close and hangs up: the client is cut off too.
                let close = WSFrame(opcode: WSFrame.close, payload: [0x03, 0xE8])
                try await client.send(close.masked())
                #expect(try await client.readFrame() == close)
                #expect(await client.waitForClose())
                #expect(env.upstream.snapshot.connections == 1)
            }
        }

        @Test("Without a token: 401, the connection closes, and no upstream connection is opened")
        func unauthenticated() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(WebSocket.handshake())
                let response = try await client.readResponse()
                #expect(response.status == 401, "\(response)")
                #expect(response.header("www-authenticate") == #"Bearer realm="authgate""#)
                #expect(response.closesConnection)
                #expect(await client.waitForClose())
                #expect(env.upstream.snapshot.connections == 0)
            }
        }

        @Test("With insufficient claims: 403 and no upstream connection")
        func forbidden() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(WebSocket.handshake("/admin/ws", headers: [bearer(try Tokens.valid())]))
                #expect(response.status == 403, "\(response)")
                #expect(env.upstream.snapshot.connections == 0)
            }
        }

        @Test("h2c is refused with 400 even on an auth none route, and never reaches the upstream")
        func h2c() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                for (target, headers) in [("/public/x", [(String, String)]()), ("/x", [bearer(try Tokens.valid())])] {
                    let client = try await env.connect()
                    try await client.send(
                        httpRequest(
                            "GET", target,
                            headers: [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")]
                                + headers))
                    let response = try await client.readResponse()
                    #expect(response.status == 400, "\(response)")
                    #expect(try response.json()["error"]?.stringValue == "upgrade_refused")
                    #expect(await client.waitForClose())
                }
                #expect(env.upstream.snapshot.connections == 0)
            }
        }

        @Test("A route with \"upgrade\": [] refuses upgrades with 400 but still serves ordinary requests")
        func disabledRoute() async throws {
            try await withGateway(config: { upstreams in
                ConfigJSON.make(routes: [
                    #"{"path_prefix": "/", "upstream": "\#(upstreams[0].url)", "auth": "none", "upgrade": []}"#
                ])
            }) { env in
                let refused = try await env.send(WebSocket.handshake())
                #expect(refused.status == 400, "\(refused)")
                #expect(try refused.json()["error_description"]?.stringValue == "this route does not accept protocol upgrades")
                #expect(env.upstream.snapshot.connections == 0)
                let plain = try await env.send(httpRequest("GET", "/ws"))
                #expect(plain.status == 200)
            }
        }

        @Test("An upstream that answers the upgrade with 200 or 404: the answer is relayed and both connections close",
              arguments: [("/public/plain", 200), ("/__status?code=404", 404)])
        func notSwitched(_ target: String, _ status: Int) async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    WebSocket.handshake(target, headers: [bearer(try Tokens.valid(sub: "bob")), ("X-Auth-Subject", "mallory")]))
                let response = try await client.readResponse()
                #expect(response.status == status, "\(response)")
                #expect(response.closesConnection)
                #expect(response.header("upgrade") == nil)
                let echo = try response.echo()
                #expect(echo.values("upgrade") == ["websocket"])
                #expect(echo.values("connection") == ["upgrade"])
                #expect(echo.values("x-auth-subject") == (target.hasPrefix("/public") ? [] : ["bob"]))
                #expect(await client.waitForClose())
                try await env.upstream.stats.wait(timeout: .seconds(5), for: "the upstream connection to close") {
                    $0.closedConnections == 1 ? () : nil
                }
            }
        }

        @Test("Closing the client closes the tunnel's upstream connection")
        func clientCloses() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                try await client.openWebSocket("/public/ws")
                #expect(env.upstream.snapshot.closedConnections == 0)
                await client.close()
                try await env.upstream.stats.wait(timeout: .seconds(5), for: "the upstream connection to close") {
                    $0.closedConnections == 1 ? () : nil
                }
            }
        }

        @Test("A half-close (FIN) from the client reaches the upstream, whose close then reaches the client")
        func halfClose() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.openWebSocket()
                let frame = WSFrame(opcode: WSFrame.binary, payload: [1, 2, 3])
                try await client.send(frame.masked())
                #expect(try await client.readFrame() == frame)
                try await client.channel.close(mode: .output).get()
                // The echo upstream closes when its input ends; the gateway passes that back.
                try await env.upstream.stats.wait(timeout: .seconds(5), for: "the upstream connection to close") {
                    $0.closedConnections == 1 ? () : nil
                }
                #expect(await client.waitForClose())
            }
        }

        @Test("The request timeouts do not cut an established tunnel; tunnel_idle_seconds does")
        func timeouts() async throws {
            // Wide margins: on a loaded machine (CI runs the suites in parallel) the client may
            // send its handshake or read the 101 late. A client_idle_seconds of 0.3 once closed
            // the new connection before the handshake was written ("I/O on closed channel"), so
            // the request limits are 1 s, the tunnel stays quiet for over twice that, and the
            // tunnel's own idle limit (whose clock starts when the gateway switches) is 4 s.
            let extra = [#""timeouts": {"upstream_seconds": 1, "client_idle_seconds": 1, "tunnel_idle_seconds": 4}"#]
            try await withGateway(config: { openConfig($0, extra: extra) }) { env in
                let client = try await env.connect()
                try await client.openWebSocket()
                try await Task.sleep(for: .milliseconds(2300))
                let frame = WSFrame(opcode: WSFrame.text, payload: Array("still there".utf8))
                try await client.send(frame.masked())
                #expect(try await client.readFrame() == frame)
                #expect(!client.isClosed)
                let (closed, elapsed) = await timed { await client.waitForClose(timeout: .seconds(10)) }
                #expect(closed)
                #expect(elapsed > .milliseconds(2500), "closed after \(elapsed)")
                try await env.upstream.stats.wait(timeout: .seconds(5), for: "the upstream connection to close") {
                    $0.closedConnections == 1 ? () : nil
                }
            }
        }

        @Test("Shutdown closes open tunnels at once instead of waiting for the drain timeout")
        func shutdown() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.openWebSocket()
                let (_, elapsed) = await timed { await env.shutdownGateway(drainTimeout: .seconds(20)) }
                #expect(elapsed < .seconds(5), "shutdown took \(elapsed)")
                #expect(await client.waitForClose())
            }
        }
    }
}

extension EndToEnd.WebSocketTunnel {
    @Test("wss end to end: TLS from the client, an https upstream behind; the tunnel carries frames both ways and is logged as 101")
    func overTLS() async throws {
        let ca = try TestCertificateAuthority()
        let files = try TemporaryFiles()
        defer { files.remove() }
        let caFile = try files.write("ca.pem", try ca.caPEM)
        let listener = try EndToEnd.TLS.listenerTLS(ca, files)
        let log = try files.write("access.log", "")
        try await withGateway(
            upstreamTLS: try ca.serverContext(),
            config: { u in
                ConfigJSON.make(
                    routes: [#"{"path_prefix": "/", "upstream": "\#(u[0].url)", "upstream_ca_file": "\#(caFile)"}"#],
                    extra: [listener, #""access_log": {"path": "\#(log)"}"#])
            }
        ) { env in
            let client = try await env.connect(tls: try ca.clientContext())
            try await client.openWebSocket(headers: [bearer(try Tokens.valid(sub: "wss-user")), ("X-Request-Id", "ws-1")])
            let frame = WSFrame(opcode: WSFrame.binary, payload: (0..<20_000).map { UInt8(truncatingIfNeeded: $0) })
            try await client.send(frame.masked())
            #expect(try await client.readFrame() == frame)
            let during = await env.server.metricsSnapshot()
            #expect(during.tunnels == 1 && during.tunnelsOpen == 1)
            await client.close()
            var after = await env.server.metricsSnapshot()
            for _ in 0..<100 where after.tunnelsOpen != 0 {
                try await Task.sleep(for: .milliseconds(20))
                after = await env.server.metricsSnapshot()
            }
            #expect(after.tunnels == 1 && after.tunnelsOpen == 0)

            var line = ""
            for _ in 0..<100 where line.isEmpty {
                line = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").first.map(String.init) ?? ""
                if line.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            let entry = try #require(try JSONParser.parse(Array(line.utf8)).objectValue)
            #expect(entry["status"]?.doubleValue == 101)
            #expect(entry["request_id"]?.stringValue == "ws-1")
            #expect(entry["subject"]?.stringValue == "wss-user")
            #expect(entry["decision"]?.stringValue == "allowed")
        }
    }
}

extension EndToEnd.WebSocketTunnel {
    @Test("allowed_origins: a handshake from a listed origin (or none) is tunnelled; another site's page gets 403 and never reaches the upstream")
    func allowedOrigins() async throws {
        try await withGateway(config: { u in
            ConfigJSON.make(routes: [
                #"{"path_prefix": "/", "upstream": "\#(u[0].url)", "allowed_origins": ["https://App.example.com", "http://localhost:3000"]}"#
            ])
        }) { env in
            let token = try Tokens.valid()
            let listed = try await env.connect()
            try await listed.openWebSocket(headers: [bearer(token), ("Origin", "https://app.example.com")])
            let local = try await env.connect()
            try await local.openWebSocket(headers: [bearer(token), ("Origin", "http://localhost:3000")])
            let noOrigin = try await env.connect()
            try await noOrigin.openWebSocket(headers: [bearer(token)])
            let connections = env.upstream.snapshot.connections

            for origins in [["https://evil.example"], ["https://app.example.com:444"], ["https://app.example.com", "https://evil.example"]] {
                let hijack = try await env.connect()
                try await hijack.send(WebSocket.handshake(headers: [bearer(token)] + origins.map { ("Origin", $0) }))
                let refused = try await hijack.readResponse()
                #expect(refused.status == 403, "\(origins): \(refused)")
                #expect(try refused.json()["error"]?.stringValue == "forbidden_origin")
                #expect(await hijack.waitForClose())
            }
            #expect(env.upstream.snapshot.connections == connections)
        }
    }
}
