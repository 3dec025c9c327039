import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 5: identity headers, hop-by-hop headers, X-Forwarded-*, token forwarding.
    @Suite("Forwarding")
    struct Forwarding {
        @Test("a client-sent identity header is replaced by the verified claim on auth routes")
        func spoofedIdentityReplaced() async throws {
            let token = try Tokens.valid(sub: "alice", [("role", .string("user"))])
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest(
                        "GET", "/orders",
                        headers: [
                            ("X-Auth-Subject", "mallory"), bearer(token), ("x-auth-subject", "mallory2"),
                            ("X-Auth-Role", "admin"),
                        ]))
                #expect(response.status == 200, "\(response)")
                let echo = try response.echo()
                #expect(echo.values("x-auth-subject") == ["alice"])
                #expect(echo.values("x-auth-role") == ["user"])
            }
        }

        @Test("identity headers are removed on auth: none routes and when the claim is absent")
        func identityRemovedWithoutAuth() async throws {
            let token = try Tokens.valid(sub: "alice")  // no role, groups, meta, level claims
            try await withGateway(config: { standardConfig($0) }) { env in
                let open = try await env.send(
                    httpRequest(
                        "GET", "/public/x",
                        headers: [
                            ("X-Auth-Subject", "mallory"), ("X-Auth-Role", "admin"), ("X-AUTH-GROUPS", "root"),
                        ]))
                #expect(open.status == 200, "\(open)")
                let openEcho = try open.echo()
                for name in ["x-auth-subject", "x-auth-role", "x-auth-groups"] {
                    #expect(openEcho.values(name).isEmpty, "\(name) reached the upstream on an auth: none route")
                }

                let authed = try await env.send(
                    httpRequest("GET", "/orders", headers: [bearer(token), ("X-Auth-Role", "admin"), ("X-Auth-Level", "9")]))
                #expect(authed.status == 200, "\(authed)")
                let authedEcho = try authed.echo()
                #expect(authedEcho.values("x-auth-subject") == ["alice"])
                #expect(authedEcho.values("x-auth-role").isEmpty)
                #expect(authedEcho.values("x-auth-level").isEmpty)
            }
        }

        @Test("array claims are joined by commas; objects and numbers are compact JSON")
        func claimEncoding() async throws {
            let token = try Tokens.valid(
                sub: "alice",
                [
                    ("groups", .array([.string("eng"), .string("ops"), .string("on call")])),
                    ("meta", .object(JSONObject([("team", .string("core")), ("n", .number("1")), ("ok", .bool(true))]))),
                    ("level", .number("42")),
                    ("role", .array([.string("admin")])),
                ])
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(response.status == 200, "\(response)")
                let echo = try response.echo()
                #expect(echo.values("x-auth-groups") == ["eng,ops,on call"])
                #expect(echo.values("x-auth-meta") == [#"{"team":"core","n":1,"ok":true}"#])
                #expect(echo.values("x-auth-level") == ["42"])
                #expect(echo.values("x-auth-role") == ["admin"])
            }
        }

        @Test("Connection naming an identity header cannot remove the injected header")
        func connectionCannotRemoveIdentity() async throws {
            let token = try Tokens.valid(sub: "alice")
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest(
                        "GET", "/orders",
                        headers: [
                            ("Connection", "keep-alive, X-Auth-Subject"), ("Connection", "x-forwarded-for"),
                            bearer(token),
                        ]))
                #expect(response.status == 200, "\(response)")
                let echo = try response.echo()
                #expect(echo.values("x-auth-subject") == ["alice"])
                #expect(echo.values("x-forwarded-for") == ["127.0.0.1"])
            }
        }

        @Test("hop-by-hop headers and those Connection names are not forwarded")
        func hopByHopRemoved() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest(
                        "GET", "/public/hop",
                        headers: [
                            ("Connection", "keep-alive, X-Hop-Secret"), ("X-Hop-Secret", "1"),
                            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Upgrade", "websocket"),
                            ("Proxy-Connection", "keep-alive"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                            ("X-End-To-End", "kept"),
                        ]))
                #expect(response.status == 200, "\(response)")
                let echo = try response.echo()
                for name in [
                    "connection", "x-hop-secret", "keep-alive", "te", "upgrade", "proxy-connection", "proxy-authorization",
                ] {
                    #expect(echo.values(name).isEmpty, "\(name) was forwarded: \(echo.values(name))")
                }
                #expect(echo.values("x-end-to-end") == ["kept"])
            }
        }

        @Test("X-Forwarded-For is appended to, X-Forwarded-Proto is http, X-Forwarded-Host is the Host")
        func forwardedHeaders() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest(
                        "GET", "/public/fwd",
                        headers: [
                            ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"),
                            ("X-Forwarded-For", "198.51.100.7, 192.0.2.1"),
                            ("X-Forwarded-Host", "evil.test"),
                        ], host: "shop.example:8443"))
                #expect(response.status == 200, "\(response)")
                let echo = try response.echo()
                let forwardedFor = echo.values("x-forwarded-for").joined(separator: ", ")
                #expect(forwardedFor == "203.0.113.9, 198.51.100.7, 192.0.2.1, 127.0.0.1")
                #expect(echo.values("x-forwarded-proto") == ["http"])
                #expect(echo.values("x-forwarded-host") == ["shop.example:8443"])

                let fresh = try await env.send(httpRequest("GET", "/public/fwd", host: "a.test"))
                let freshEcho = try fresh.echo()
                #expect(freshEcho.values("x-forwarded-for") == ["127.0.0.1"])
                #expect(freshEcho.values("x-forwarded-proto") == ["http"])
                #expect(freshEcho.values("x-forwarded-host") == ["a.test"])
            }
        }

        @Test("request trailers cannot carry identity headers to the upstream")
        func identityInTrailers() async throws {
            let token = try Tokens.valid(sub: "alice")
            try await withGateway(config: { standardConfig($0) }) { env in
                for (target, auth) in [("/public/upload", [(String, String)]()), ("/orders", [bearer(token)])] {
                    let client = try await env.connect()
                    let head = httpRequest("POST", target, headers: auth + [("Transfer-Encoding", "chunked")])
                    try await client.send(head + "3\r\nabc\r\n0\r\nX-Auth-Subject: mallory\r\nX-Auth-Role: admin\r\n\r\n")
                    let response = try await client.readResponse()
                    #expect(response.status == 200 || response.status == 400, "\(target): \(response)")
                }
                let trailers = env.upstream.snapshot.trailerNames
                #expect(!trailers.contains("x-auth-subject"), "X-Auth-Subject reached the upstream as a trailer")
                #expect(!trailers.contains("x-auth-role"), "X-Auth-Role reached the upstream as a trailer")
            }
        }

        @Test("identity header look-alikes with underscores are not forwarded (CGI/WSGI/Rack read them as the same header)")
        func underscoreLookalike() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest("GET", "/public/x", headers: [("X_Auth_Subject", "mallory"), ("X-Auth_Role", "admin")]))
                #expect(response.status == 200 || response.status == 400, "\(response)")
                if response.status == 200 {
                    let echo = try response.echo()
                    #expect(echo.values("x_auth_subject").isEmpty, "X_Auth_Subject reached the upstream")
                    #expect(echo.values("x-auth_role").isEmpty, "X-Auth_Role reached the upstream")
                }
            }
        }

        @Test("forward_token true (default) forwards the Authorization header")
        func tokenForwardedByDefault() async throws {
            let token = try Tokens.valid()
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(try response.echo().values("authorization") == ["Bearer \(token)"])
            }
        }

        @Test("forward_token false strips the Authorization header and the token cookie, keeps other cookies")
        func tokenNotForwarded() async throws {
            let token = try Tokens.valid()
            try await withGateway(config: { standardConfig($0, extra: [#""forward_token": false"#]) }) { env in
                let viaHeader = try await env.send(
                    httpRequest("GET", "/orders", headers: [bearer(token), ("Cookie", "theme=dark")]))
                #expect(viaHeader.status == 200, "\(viaHeader)")
                let headerEcho = try viaHeader.echo()
                #expect(headerEcho.values("authorization").isEmpty)
                #expect(headerEcho.values("cookie") == ["theme=dark"])

                let viaCookie = try await env.send(
                    httpRequest("GET", "/orders", headers: [("Cookie", "theme=dark; access_token=\(token); lang=en")]))
                #expect(viaCookie.status == 200, "\(viaCookie)")
                let cookies = try viaCookie.echo().values("cookie").joined(separator: "; ")
                #expect(!cookies.contains("access_token"))
                #expect(!cookies.contains(token))
                #expect(cookies.contains("theme=dark"))
                #expect(cookies.contains("lang=en"))
            }
        }
    }
}
