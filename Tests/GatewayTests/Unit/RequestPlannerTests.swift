import NIOHTTP1
import Testing

@testable import Gateway

@Suite("Request planning: framing, routing, authentication, rewriting")
struct RequestPlannerTests {
    static let configJSON = """
        {
          "providers": [{"name": "main", "issuer": "https://issuer.test", "audiences": ["orders"],
                         "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "S"}]}],
          "identity_headers": {"sub": "X-Auth-Subject", "role": "X-Auth-Role"},
          "limits": {"max_body_bytes": 1000},
          "routes": [
            {"path_prefix": "/healthz", "upstream": "http://127.0.0.1:9001", "auth": "none"},
            {"path_prefix": "/admin", "upstream": "http://127.0.0.1:9002", "require_claims": {"role": ["admin"]}},
            {"path_prefix": "/api", "upstream": "http://127.0.0.1:9003"}
          ]
        }
        """

    let planner: RequestPlanner

    init() throws {
        let config = try ConfigLoader(environment: ["S": TestSupport.secret]).load(Array(Self.configJSON.utf8))
        self.planner = RequestPlanner(config: config)
    }

    func head(_ uri: String, method: HTTPMethod = .GET, _ headers: [(String, String)] = [("Host", "gw")]) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    func plan(_ head: HTTPRequestHead) -> RequestPlan {
        self.planner.plan(head, clientAddress: "192.0.2.1", now: WallClock.now())
    }

    func status(_ plan: RequestPlan) -> UInt? {
        if case .respond(let response, _) = plan { return response.status.code }
        return nil
    }

    func token(role: String = "user") throws -> String {
        let now = WallClock.now().rounded(.down)
        return try TestSupport.hsToken(
            TestSupport.claims([("role", .string(role)), ("iat", .number(String(Int(now)))), ("exp", .number(String(Int(now + 60))))]))
    }

    @Test("CONNECT is refused with 400 and close, whatever its target: a reverse proxy tunnels nothing")
    func connect() {
        for uri in ["/healthz", "/api/x", "gw:443"] {
            let plan = self.plan(self.head(uri, method: .CONNECT))
            #expect(self.status(plan) == 400, "CONNECT \(uri)")
            if case .respond(let response, let reason) = plan {
                #expect(response.close)
                // A path is no CONNECT target (RFC 9112 §3.2.3): the parser refuses it (llhttp
                // did too); an authority reaches the planner, which refuses the method.
                #expect(reason == (uri.hasPrefix("/") ? "malformed_request" : "bad_method"), "CONNECT \(uri)")
            }
        }
        #expect(self.status(self.plan(self.head("/healthz"))) == nil)  // the same target with GET is forwarded
    }

    @Test("Conflicting or unknown framing is refused with 400 and close")
    func framing() {
        let cases: [[(String, String)]] = [
            [("Host", "gw"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
            [("Host", "gw"), ("Content-Length", "3"), ("Content-Length", "4")],
            [("Host", "gw"), ("Transfer-Encoding", "gzip, chunked")],
            [("Host", "gw"), ("Transfer-Encoding", "identity")],
            [("Host", "gw"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
            [("Host", "gw"), ("Content-Length", "-1")],
            [("Host", "gw"), ("Content-Length", "1e3")],
            [("Host", "gw"), ("Content-Length", "99999999999999999999999")],
            // Repeated even when equal (RFC 9110 §8.6 allows either; llhttp, which read requests
            // before the gateway's own parser, refused it too).
            [("Host", "gw"), ("Content-Length", "5"), ("content-length", "5")],
            [("Host", "gw"), ("Content-Length", "5, 5")],
        ]
        for headers in cases {
            guard case .respond(let response, let reason) = self.plan(self.head("/healthz", method: .POST, headers)) else {
                Issue.record("forwarded \(headers)")
                continue
            }
            #expect(response.status == .badRequest)
            #expect(response.close)
            #expect(reason == "bad_framing")
        }
        #expect(RequestPlanner.framing(of: ["Content-Length": "5"]) == .success(.contentLength(5)))
        #expect(RequestPlanner.framing(of: ["Transfer-Encoding": "Chunked"]) == .success(.chunked))
        #expect(RequestPlanner.framing(of: [:]) == .success(.none))
    }

    @Test("Host must appear exactly once")
    func host() {
        #expect(self.status(self.plan(self.head("/healthz", []))) == 400)
        #expect(self.status(self.plan(self.head("/healthz", [("Host", "a"), ("Host", "b")]))) == 400)
        #expect(self.status(self.plan(self.head("/healthz", [("Host", "")]))) == 400)
    }

    @Test("Bad paths 400, unknown paths 404, bodies over the limit 413, odd Expect 417")
    func localAnswers() {
        #expect(self.status(self.plan(self.head("/healthz/../../x"))) == 400)
        #expect(self.status(self.plan(self.head("/nothing"))) == 404)
        #expect(self.status(self.plan(self.head("/healthz", method: .POST, [("Host", "gw"), ("Content-Length", "1001")]))) == 413)
        #expect(self.status(self.plan(self.head("/healthz", method: .POST, [("Host", "gw"), ("Expect", "magic")]))) == 417)
        #expect(self.status(self.plan(self.head("/" + String(repeating: "a", count: 70_000)))) == 414)
    }

    @Test("auth none forwards without a token but still strips spoofed identity headers")
    func publicRoute() throws {
        guard case .forward(let plan) = self.plan(self.head("/healthz/x?y=1", [("Host", "gw"), ("X-Auth-Subject", "mallory")])) else {
            Issue.record("not forwarded")
            return
        }
        #expect(plan.upstream == Upstream(host: "127.0.0.1", port: 9001))
        #expect(plan.head.uri == "/healthz/x?y=1")
        #expect(!plan.head.headers.contains(name: "x-auth-subject"))
        #expect(plan.head.headers["x-forwarded-for"] == ["192.0.2.1"])
    }

    @Test("X-Forwarded-Proto says how the client reached the gateway; a client's own value is replaced")
    func forwardedProto() throws {
        let head = self.head("/healthz", [("Host", "gw"), ("X-Forwarded-Proto", "https")])
        guard case .forward(let plain) = self.planner.plan(head, clientAddress: nil, now: WallClock.now()),
            case .forward(let secure) = self.planner.plan(head, clientAddress: nil, overTLS: true, now: WallClock.now())
        else {
            Issue.record("not forwarded")
            return
        }
        #expect(plain.head.headers["x-forwarded-proto"] == ["http"])
        #expect(secure.head.headers["x-forwarded-proto"] == ["https"])
    }

    @Test("The upstream head carries the path rewritten by strip_prefix and the base path")
    func rewrittenTarget() throws {
        let config = try ConfigLoader(environment: ["S": TestSupport.secret]).load(Array("""
            {"routes": [{"path_prefix": "/api", "upstream": "https://svc:8443/v2", "strip_prefix": true, "auth": "none"}]}
            """.utf8))
        let planner = RequestPlanner(config: config)
        guard case .forward(let plan) = planner.plan(self.head("/api/./users/../items?x=%2F"), clientAddress: nil, now: 0)
        else {
            Issue.record("not forwarded")
            return
        }
        #expect(plan.head.uri == "/v2/items?x=%2F")
        #expect(plan.upstream == Upstream(host: "svc", port: 8443, tls: true, basePath: "/v2"))
        #expect(plan.head.headers["host"] == ["gw"])
    }

    @Test("Missing token: 401 with a bare challenge; invalid: invalid_token with a description")
    func unauthorised() throws {
        guard case .respond(let missing, _) = self.plan(self.head("/api")) else { Issue.record("forwarded"); return }
        #expect(missing.status == .unauthorized)
        #expect(missing.headers["www-authenticate"] == [#"Bearer realm="authgate""#])

        let bad = try self.token() + "x"
        guard case .respond(let invalid, let reason) = self.plan(self.head("/api", [("Host", "gw"), ("Authorization", "Bearer \(bad)")])) else {
            Issue.record("forwarded")
            return
        }
        #expect(invalid.status == .unauthorized)
        #expect(reason == "malformed" || reason == "bad_signature")
        let challenge = try #require(invalid.headers["www-authenticate"].first)
        #expect(challenge.hasPrefix(#"Bearer realm="authgate", error="invalid_token", error_description=""#))
        #expect(invalid.body.hasPrefix(#"{"error":"invalid_token","error_description":"#))
        #expect(!invalid.body.contains(bad))
    }

    @Test("require_claims: 403 insufficient_scope when the role is wrong, forward with identity when right")
    func forbidden() throws {
        let user = try self.token(role: "user")
        guard case .respond(let denied, _) = self.plan(self.head("/admin", [("Host", "gw"), ("Authorization", "Bearer \(user)")])) else {
            Issue.record("forwarded")
            return
        }
        #expect(denied.status == .forbidden)
        #expect(denied.headers["www-authenticate"].first?.contains(#"error="insufficient_scope""#) == true)

        let admin = try self.token(role: "admin")
        guard case .forward(let plan) = self.plan(self.head("/admin/x", [("Host", "gw"), ("Authorization", "Bearer \(admin)"), ("X-Auth-Role", "spoof")])) else {
            Issue.record("not forwarded")
            return
        }
        #expect(plan.head.headers["x-auth-subject"] == ["alice"])
        #expect(plan.head.headers["x-auth-role"] == ["admin"])
        #expect(plan.head.headers["authorization"] == ["Bearer \(admin)"])
        #expect(plan.head.version == .http1_1)
    }

    @Test("A rejected request that still has a body to send closes the connection")
    func rejectionWithBodyCloses() {
        guard case .respond(let response, _) = self.plan(self.head("/api", method: .POST, [("Host", "gw"), ("Content-Length", "10")])) else {
            Issue.record("forwarded")
            return
        }
        #expect(response.status == .unauthorized)
        #expect(response.close)
        guard case .respond(let noBody, _) = self.plan(self.head("/api")) else { Issue.record("forwarded"); return }
        #expect(!noBody.close)
    }

    @Test("Two Authorization headers are a 400 that never reaches an upstream")
    func twoAuthorizationHeaders() throws {
        let t = try self.token()
        let plan = self.plan(self.head("/api", [("Host", "gw"), ("Authorization", "Bearer \(t)"), ("Authorization", "Bearer \(t)")]))
        #expect(self.status(plan) == 400)
    }
}
