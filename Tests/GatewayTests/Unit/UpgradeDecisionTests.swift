import NIOHTTP1
import Testing

@testable import Gateway

/// Whether an `Upgrade` request may be tunnelled, and the route field that says so. No sockets.
@Suite("Protocol upgrades: decisions and configuration")
struct UpgradeDecisionTests {
    static let websocket: [(String, String)] = [
        ("Host", "gw"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]

    func head(
        _ headers: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1, uri: String = "/ws"
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    func decide(
        _ headers: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1,
        framing: BodyFraming = .none, allowed: [String] = ["websocket"]
    ) -> UpgradeDecision {
        UpgradeDecision.decide(self.head(headers, method: method, version: version), framing: framing, allowed: allowed)
    }

    // MARK: Decision

    @Test("A WebSocket handshake on a route allowing websocket is tunnelled, whatever the case of its tokens")
    func allowed() {
        #expect(self.decide(Self.websocket) == .tunnel("websocket"))
        #expect(self.decide([("Connection", "keep-alive, UPGRADE"), ("Upgrade", "WebSocket")]) == .tunnel("WebSocket"))
        #expect(self.decide([("Connection", "keep-alive"), ("connection", " upgrade "), ("Upgrade", "websocket")]) == .tunnel("websocket"))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "foo/2, websocket")], allowed: ["websocket", "foo"]) == .tunnel("foo/2, websocket"))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "foo/2")], allowed: ["foo/2"]) == .tunnel("foo/2"))
        #expect(self.decide(Self.websocket, framing: .contentLength(0)) == .tunnel("websocket"))
    }

    @Test("Without upgrade in Connection (or without Upgrade) it is an ordinary request")
    func notAnUpgrade() {
        #expect(self.decide([("Upgrade", "websocket")]) == .none)
        #expect(self.decide([("Connection", "keep-alive"), ("Upgrade", "websocket")]) == .none)
        #expect(self.decide([("Connection", "upgrades"), ("Upgrade", "websocket")]) == .none)
        #expect(self.decide([("Connection", "x upgrade"), ("Upgrade", "websocket")]) == .none)
        #expect(self.decide([("Connection", "upgrade")]) == .none)
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "h2c")], method: .POST) == .refuse(#""h2c" is never tunnelled"#))
    }

    @Test("h2c and h2 are refused on every route, also next to an allowed protocol")
    func h2cRefused() {
        for value in ["h2c", "H2C", "websocket, h2c", "h2c/1", "h2"] {
            guard case .refuse(let reason) = self.decide([("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", value)], allowed: ["websocket", "h2c"]) else {
                Issue.record("\(value) not refused")
                continue
            }
            #expect(reason.contains("never tunnelled"), "\(reason)")
        }
    }

    @Test("A disabled route, an unlisted protocol, a body, a method other than GET, HTTP/1.0 and a malformed Upgrade are refused")
    func refused() {
        #expect(self.decide(Self.websocket, allowed: []) == .refuse("this route does not accept protocol upgrades"))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "websocket, irc")]) == .refuse(#"this route does not tunnel "irc""#))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "foo/3")], allowed: ["foo/2"]) == .refuse(#"this route does not tunnel "foo/3""#))
        #expect(self.decide(Self.websocket, framing: .contentLength(5)) == .refuse("a protocol upgrade request cannot have a body"))
        #expect(self.decide(Self.websocket, framing: .chunked) == .refuse("a protocol upgrade request cannot have a body"))
        #expect(self.decide(Self.websocket, method: .POST) == .refuse("protocol upgrades are accepted on GET only"))
        #expect(self.decide(Self.websocket, version: .http1_0) == .refuse("protocol upgrades need HTTP/1.1"))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", "web socket")]) == .refuse("malformed Upgrade header"))
        #expect(self.decide([("Connection", "upgrade"), ("Upgrade", " , ")]) == .refuse("malformed Upgrade header"))
    }

    // MARK: Configuration

    func issues(_ upgrade: String) -> [String] {
        let json = """
            {"routes": [{"path_prefix": "/a", "upstream": "http://127.0.0.1:9000", "auth": "none"},
                        {"path_prefix": "/b", "upstream": "http://127.0.0.1:9000", "auth": "none", "upgrade": \(upgrade)}]}
            """
        do {
            _ = try ConfigLoader(environment: [:]).load(Array(json.utf8))
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test("routes[].upgrade: default websocket, [] disables, tokens lower-cased; h2c, h2 and non-tokens are errors by path")
    func config() throws {
        let json = """
            {"routes": [{"path_prefix": "/a", "upstream": "http://127.0.0.1:9000", "auth": "none"},
                        {"path_prefix": "/b", "upstream": "http://127.0.0.1:9000", "auth": "none", "upgrade": []},
                        {"path_prefix": "/c", "upstream": "http://127.0.0.1:9000", "auth": "none", "upgrade": ["WebSocket", "foo/2", "websocket"]}],
             "timeouts": {"tunnel_idle_seconds": 90}}
            """
        let config = try ConfigLoader(environment: [:]).load(Array(json.utf8))
        #expect(config.routes.map(\.upgrade) == [["websocket"], [], ["websocket", "foo/2"]])
        #expect(config.timeouts.tunnelIdleSeconds == 90)
        #expect(Timeouts().tunnelIdleSeconds == 3600)

        let h2c = self.issues(#"["websocket", "h2c"]"#)
        #expect(h2c.count == 1)
        #expect(h2c.first?.hasPrefix(#"routes[1].upgrade[1]: "h2c" cannot be tunnelled"#) == true, "\(h2c)")
        #expect(self.issues(#"["h2"]"#).first?.hasPrefix(#"routes[1].upgrade[0]: "h2" cannot be tunnelled"#) == true)
        #expect(self.issues(#"["web socket"]"#) == [#"routes[1].upgrade[0]: "web socket" is not a protocol token (name or name/version)"#])
        #expect(self.issues(#""websocket""#) == ["routes[1].upgrade: expected an array of strings, got a string"])
        #expect(self.issues("[1]") == ["routes[1].upgrade[0]: expected a string, got a number"])
    }
}

@Suite("Upgrade origins")
struct UpgradeOriginTests {
    @Test("Origins must be listed exactly (case-insensitive); none passes; two never do; an empty list allows any")
    func originAllowed() {
        let allowed = ["https://app.example.com", "http://localhost:3000"]
        #expect(UpgradeDecision.originAllowed(["https://app.example.com"], allowed: allowed))
        #expect(UpgradeDecision.originAllowed(["HTTPS://APP.example.com"], allowed: allowed))
        #expect(UpgradeDecision.originAllowed([], allowed: allowed))
        #expect(!UpgradeDecision.originAllowed(["https://app.example.com.evil"], allowed: allowed))
        #expect(!UpgradeDecision.originAllowed(["http://app.example.com"], allowed: allowed))
        #expect(!UpgradeDecision.originAllowed(["null"], allowed: allowed))
        #expect(!UpgradeDecision.originAllowed(["https://app.example.com", "https://app.example.com"], allowed: allowed))
        #expect(UpgradeDecision.originAllowed(["https://anything"], allowed: []))
    }

    @Test("allowed_origins entries are checked with their JSON paths")
    func config() {
        let json = """
            {"routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:1", "auth": "none",
                         "allowed_origins": ["https://ok.example", "app.example.com", "https://x.example/", "https://a@b", "https://h:99999"]},
                        {"path_prefix": "/n", "upstream": "http://127.0.0.1:1", "auth": "none", "upgrade": [], "allowed_origins": ["https://ok.example"]}]}
            """
        do {
            _ = try ConfigLoader(environment: [:]).load(Array(json.utf8))
            Issue.record("accepted")
        } catch {
            let messages = error.issues.map(\.description)
            #expect(messages.contains { $0.hasPrefix("routes[0].allowed_origins[1]: \"app.example.com\" is not an origin") })
            #expect(messages.contains { $0.hasPrefix("routes[0].allowed_origins[2]:") })
            #expect(messages.contains { $0.hasPrefix("routes[0].allowed_origins[3]:") })
            #expect(messages.contains { $0.hasPrefix("routes[0].allowed_origins[4]:") })
            #expect(!messages.contains { $0.hasPrefix("routes[0].allowed_origins[0]") })
            #expect(messages.contains("routes[1].allowed_origins: has no effect on a route without upgrades"))
        }
    }
}
