import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 1: normalisation and longest segment-prefix routing.
    @Suite("Routing")
    struct Routing {
        @Test("the longest prefix on a segment boundary wins")
        func longestSegmentPrefix() async throws {
            // upstreams: 0 → "/", 1 → "/admin", 2 → "/administrator", 3 → "/admin/x"
            try await withGateway(
                upstreams: 4,
                config: { u in
                    ConfigJSON.make(routes: [
                        ConfigJSON.route("/", u[0], auth: "none"),
                        ConfigJSON.route("/admin", u[1], auth: "none"),
                        ConfigJSON.route("/administrator", u[2], auth: "none"),
                        ConfigJSON.route("/admin/x", u[3], auth: "none"),
                    ])
                }
            ) { env in
                let cases: [(target: String, upstream: Int)] = [
                    ("/admin", 1), ("/admin/", 1), ("/admin/y", 1), ("/admin/xy", 1), ("/admin?x=1", 1),
                    ("/administrator", 2), ("/administrator/users", 2),
                    ("/admin/x", 3), ("/admin/x/", 3), ("/admin/x/deeper", 3),
                    ("/adminx", 0), ("/admi", 0), ("/", 0), ("/other/admin", 0),
                ]
                for (index, item) in cases.enumerated() {
                    let before = env.upstreams.map { $0.snapshot.heads }
                    let response = try await env.send(httpRequest("GET", item.target))
                    #expect(response.status == 200, "\(item.target): \(response)")
                    let after = env.upstreams.map { $0.snapshot.heads }
                    let hit = zip(before, after).enumerated().filter { $0.element.1 > $0.element.0 }.map(\.offset)
                    #expect(hit == [item.upstream], "case \(index): \(item.target) went to upstream(s) \(hit)")
                }
            }
        }

        @Test("no matching route: 404, upstream untouched")
        func noRoute() async throws {
            try await withGateway(
                config: { u in ConfigJSON.make(routes: [ConfigJSON.route("/api", u[0], auth: "none")]) }
            ) { env in
                for target in ["/", "/apix", "/nowhere", "/API"] {
                    let response = try await env.send(httpRequest("GET", target))
                    #expect(response.status == 404, "\(target): \(response)")
                }
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("dot segments are resolved before routing: /public/../admin needs auth")
        func dotSegmentsRouteToTarget() async throws {
            let admin = try Tokens.valid(sub: "root", [("role", .string("admin"))])
            try await withGateway(config: { standardConfig($0) }) { env in
                for target in ["/public/../admin", "/public/./../admin/panel", "/public/%2e%2e/admin", "/public/%2E./admin"] {
                    let denied = try await env.send(httpRequest("GET", target))
                    #expect(denied.status == 401, "\(target): \(denied)")
                }
                #expect(env.upstreamRequests == 0)

                let allowed = try await env.send(httpRequest("GET", "/public/../admin/panel", headers: [bearer(admin)]))
                #expect(allowed.status == 200, "\(allowed)")
                #expect(try allowed.echo().path == "/admin/panel")
            }
        }

        @Test("paths that cannot be normalised safely: 400, upstream untouched",
              arguments: ["/%2e%2e/x", "/a/%2F", "/a/%2fb", "/a%5Cb", "/a%5cb", "/..", "/../public", "/public/../../x",
                          "/public/%00", "/public/%zz", "/public/..;/admin", "/public/.;/x"])
        func unsafePaths(_ target: String) async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", target))
                #expect(response.status == 400, "\(target): \(response)")
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("// is merged: //admin routes as /admin")
        func doubleSlash() async throws {
            let admin = try Tokens.valid(sub: "root", [("role", .string("admin"))])
            let user = try Tokens.valid(sub: "user", [("role", .string("user"))])
            try await withGateway(config: { standardConfig($0) }) { env in
                let anonymous = try await env.send(httpRequest("GET", "//admin"))
                #expect(anonymous.status == 401, "\(anonymous)")
                let wrongRole = try await env.send(httpRequest("GET", "//admin//x", headers: [bearer(user)]))
                #expect(wrongRole.status == 403, "\(wrongRole)")
                let openSpoof = try await env.send(httpRequest("GET", "/public//..//admin"))
                #expect(openSpoof.status == 401 || openSpoof.status == 400, "\(openSpoof)")
                #expect(env.upstreamRequests == 0)

                let allowed = try await env.send(httpRequest("GET", "//admin", headers: [bearer(admin)]))
                #expect(allowed.status == 200, "\(allowed)")
                #expect(try allowed.echo().path == "/admin")
            }
        }

        @Test("the upstream receives the normalised path and the query untouched")
        func normalisedTargetForwarded() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let cases: [(sent: String, path: String, query: String?)] = [
                    ("/public/%7Ebob/./x//y/../z?q=a%20b&r=%2F..&s=/../x", "/public/~bob/x/z", "q=a%20b&r=%2F..&s=/../x"),
                    ("/public/a%20b/%41?", "/public/a%20b/A", ""),
                    ("/public/dir/", "/public/dir/", nil),
                    ("/public/dir/.", "/public/dir/", nil),
                    ("/public/x/..", "/public/", nil),
                ]
                for item in cases {
                    let response = try await env.send(httpRequest("GET", item.sent))
                    #expect(response.status == 200, "\(item.sent): \(response)")
                    let echo = try response.echo()
                    #expect(echo.path == item.path, "\(item.sent)")
                    #expect(echo.query == item.query, "\(item.sent)")
                }
            }
        }
    }
}
