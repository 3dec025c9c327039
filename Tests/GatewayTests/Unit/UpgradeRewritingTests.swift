import NIOHTTP1
import Testing

@testable import Gateway

/// `Upgrade` requests in the planner and the header rewriter, without sockets: authentication
/// first, then the headers forwarded upstream and relayed back with a `101`.
@Suite("Protocol upgrades: planning and rewriting")
struct UpgradeRewritingTests {
    static let websocket: [(String, String)] = [
        ("Host", "gw"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]

    func head(
        _ headers: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1, uri: String = "/ws"
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    // MARK: Rewriting

    func forwarding(upgrade: String?) -> HeaderRewriter.Forwarding {
        HeaderRewriter.Forwarding(
            clientAddress: "10.0.0.9", host: "gw", identity: [("X-Auth-Subject", "alice")], stripToken: false,
            tokenSource: TokenSource(), upgrade: upgrade)
    }

    @Test("A tunnelled upgrade keeps exactly Upgrade and Connection: upgrade; spoofed identity and other hop-by-hop headers still go")
    func rewriteKeepsUpgrade() {
        let incoming = HTTPHeaders(
            Self.websocket + [
                ("Connection", "X-Secret, HTTP2-Settings"), ("X-Secret", "1"), ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
                ("x-auth-subject", "mallory"), ("X_Auth_Subject", "mallory"), ("Keep-Alive", "5"), ("Proxy-Authorization", "x"),
            ])
        let out = HeaderRewriter.requestHeaders(incoming, identityHeaderNames: ["X-Auth-Subject"], forwarding: self.forwarding(upgrade: "websocket"))
        #expect(out["connection"] == ["upgrade"])
        #expect(out["upgrade"] == ["websocket"])
        #expect(out["x-auth-subject"] == ["alice"])
        #expect(out["sec-websocket-key"] == ["dGhlIHNhbXBsZSBub25jZQ=="])
        #expect(out["sec-websocket-version"] == ["13"])
        for name in ["x-secret", "http2-settings", "keep-alive", "proxy-authorization", "x_auth_subject"] {
            #expect(!out.contains(name: name), "\(name)")
        }
    }

    @Test("Any other request loses Upgrade and Connection, as before")
    func rewriteDropsUpgrade() {
        let out = HeaderRewriter.requestHeaders(
            HTTPHeaders(Self.websocket), identityHeaderNames: ["X-Auth-Subject"], forwarding: self.forwarding(upgrade: nil))
        #expect(!out.contains(name: "upgrade"))
        #expect(!out.contains(name: "connection"))
    }

    @Test("The upstream's 101 is relayed only for a protocol the client offered, with hop-by-hop headers replaced")
    func switchingProtocols() throws {
        let upstream = HTTPResponseHead(
            version: .http1_1, status: .switchingProtocols,
            headers: [
                "Connection": "Upgrade, X-Internal", "Upgrade": "WebSocket", "X-Internal": "1", "Keep-Alive": "5",
                "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Content-Length": "0",
            ])
        let head = try #require(HeaderRewriter.switchingProtocolsHead(upstream, requested: "websocket"))
        #expect(head.status == .switchingProtocols)
        #expect(head.headers["connection"] == ["upgrade"])
        #expect(head.headers["upgrade"] == ["WebSocket"])
        #expect(head.headers["sec-websocket-accept"] == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="])
        for name in ["x-internal", "keep-alive", "content-length"] { #expect(!head.headers.contains(name: name), "\(name)") }

        var other = upstream
        other.headers.replaceOrAdd(name: "Upgrade", value: "h2c")
        #expect(HeaderRewriter.switchingProtocolsHead(other, requested: "websocket") == nil)
        other.headers.remove(name: "Upgrade")
        #expect(HeaderRewriter.switchingProtocolsHead(other, requested: "websocket") == nil)
        var ok = upstream
        ok.status = .ok
        #expect(HeaderRewriter.switchingProtocolsHead(ok, requested: "websocket") == nil)
    }

    // MARK: Planner

    static let configJSON = """
        {
          "providers": [{"name": "main", "issuer": "https://issuer.test", "audiences": ["orders"],
                         "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "S"}]}],
          "identity_headers": {"sub": "X-Auth-Subject", "role": "X-Auth-Role"},
          "routes": [
            {"path_prefix": "/open", "upstream": "http://127.0.0.1:9001", "auth": "none"},
            {"path_prefix": "/admin", "upstream": "http://127.0.0.1:9002", "require_claims": {"role": ["admin"]}},
            {"path_prefix": "/plain", "upstream": "http://127.0.0.1:9003", "upgrade": []},
            {"path_prefix": "/", "upstream": "http://127.0.0.1:9004"}
          ]
        }
        """

    func plan(_ uri: String, _ headers: [(String, String)]) throws -> RequestPlan {
        let config = try ConfigLoader(environment: ["S": TestSupport.secret]).load(Array(Self.configJSON.utf8))
        return RequestPlanner(config: config).plan(self.head(headers, uri: uri), clientAddress: "192.0.2.1", now: WallClock.now())
    }

    func token(role: String) throws -> (String, String) {
        let now = WallClock.now().rounded(.down)
        let token = try TestSupport.hsToken(
            TestSupport.claims([("role", .string(role)), ("iat", .number(String(Int(now)))), ("exp", .number(String(Int(now + 60))))]))
        return ("Authorization", "Bearer \(token)")
    }

    func status(_ plan: RequestPlan) -> UInt? {
        if case .respond(let response, _) = plan { return response.status.code }
        return nil
    }

    @Test("Upgrades are authenticated and authorised first: 401 without a token, 403 without the claim")
    func authenticatedFirst() throws {
        #expect(self.status(try self.plan("/ws", Self.websocket)) == 401)
        #expect(self.status(try self.plan("/ws", Self.websocket + [("Upgrade", "h2c")])) == 401)
        #expect(self.status(try self.plan("/admin/ws", Self.websocket + [try self.token(role: "user")])) == 403)
        #expect(self.status(try self.plan("/plain/ws", Self.websocket)) == 401)
    }

    @Test("An allowed upgrade is planned with its protocol and a closing exchange; a refused one is a closing 400")
    func planned() throws {
        guard case .forward(let plan) = try self.plan("/admin/ws", Self.websocket + [try self.token(role: "admin")]) else {
            Issue.record("not forwarded")
            return
        }
        #expect(plan.upgrade == "websocket")
        #expect(plan.closeConnection)
        #expect(plan.head.headers["upgrade"] == ["websocket"])
        #expect(plan.head.headers["connection"] == ["upgrade"])
        #expect(plan.head.headers["x-auth-role"] == ["admin"])

        for (uri, headers) in [
            ("/plain/ws", Self.websocket + [try self.token(role: "user")]),
            ("/open/ws", [("Host", "gw"), ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")]),
        ] {
            guard case .respond(let response, let reason) = try self.plan(uri, headers) else {
                Issue.record("\(uri) forwarded")
                continue
            }
            #expect(response.status == .badRequest)
            #expect(response.close)
            #expect(reason == "upgrade_refused")
            #expect(response.body.hasPrefix(#"{"error":"upgrade_refused""#))
        }
    }

    @Test("An Upgrade header without Connection: upgrade is dropped and the connection still closes afterwards")
    func plainWithUpgradeHeader() throws {
        guard case .forward(let plan) = try self.plan("/open/x", [("Host", "gw"), ("Upgrade", "websocket")]) else {
            Issue.record("not forwarded")
            return
        }
        #expect(plan.upgrade == nil)
        #expect(plan.closeConnection)
        #expect(!plan.head.headers.contains(name: "upgrade"))
    }
}
