import Testing
@testable import Gateway

@Suite("Path normalisation and routing")
struct PathAndRoutingTests {
    func normalized(_ target: String) -> String? {
        if case .success(let value) = PathNormalizer.normalize(target) { return value.target }
        return nil
    }

    @Test(
        "Normalises dot segments, //, and unreserved percent-escapes",
        arguments: [
            ("/", "/"), ("/a/b", "/a/b"), ("/public/../admin", "/admin"), ("/a/./b", "/a/b"), ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"), ("/a/", "/a/"), ("/a/b/..", "/a/"), ("/a/.", "/a/"), ("/%61dmin", "/admin"),
            ("/%7euser", "/~user"), ("/a%20b", "/a%20b"), ("/a%3fb", "/a%3Fb"), ("/p/%2e%2e/admin", "/admin"),
            ("/x?q=/../a&b=%2F", "/x?q=/../a&b=%2F"), ("/a/b/../../c?", "/c?"), ("/a;x=1/b", "/a;x=1/b"),
        ])
    func normalises(_ input: String, _ expected: String) {
        #expect(self.normalized(input) == expected)
    }

    @Test(
        "Refuses what cannot be normalised safely",
        arguments: [
            "/..", "/../x", "/a/../../x", "/%2e%2e/x", "/a/%2F", "/a/%2fb", "/a%5Cb", "/a\\b", "/a%00b", "/a%zz", "/a%4",
            "admin", "*", "http://host/x", "/a/..;/b", "/a/.;x/b", "/a#frag",
        ])
    func refuses(_ input: String) {
        #expect(self.normalized(input) == nil)
    }

    @Test("The one-pass case gives what the general normaliser gives, for every target it takes")
    func onePassMatchesGeneral() {
        // Short targets over the bytes that matter to either path (`/`, `.`, `%`, `?`, `#`, `\\`,
        // `;`, NUL, hex digits, a letter) and a combining mark after a leading `/`.
        let alphabet: [String] = ["/", ".", "%", "?", "#", "\\", ";", "\u{0}", "2", "e", "F", "a", "\u{301}", "é"]
        var random = UpstreamResponseParserDifferentialTests.SplitMix64(seed: 0x7061_7468)
        var onePass = 0
        for _ in 0..<20_000 {
            var target = random.below(4) == 0 ? "" : "/"
            for _ in 0..<random.below(9) { target += alphabet[random.below(alphabet.count)] }
            let general = PathNormalizer.normalizeInGeneral(target)
            let result = PathNormalizer.normalize(target)
            #expect(result == general, "\(target.debugDescription)")
            if case .success(let a) = result, case .success(let b) = general {
                #expect(a.target == b.target, "\(target.debugDescription)")
            }
            if case .some(.some) = target.utf8.withContiguousStorageIfAvailable(PathNormalizer.plainPathLength) { onePass += 1 }
        }
        // Both kinds were drawn: the check compares the one-pass case, not only the fallback.
        #expect(onePass > 2_000 && onePass < 18_000, "\(onePass) of 20,000 took the one-pass case")
        #expect(Array("/a/b?x=/../y#z".utf8).withUnsafeBufferPointer(PathNormalizer.plainPathLength) == 4)
    }

    func route(_ prefix: String, index: Int) -> Route {
        Route(
            pathPrefix: prefix, upstream: Upstream(host: "127.0.0.1", port: 9000 + index), auth: .required,
            requireClaims: [], providerIndices: nil, index: index)
    }

    @Test("The longest prefix on a segment boundary wins")
    func longestPrefix() {
        let table = RouteTable([self.route("/", index: 0), self.route("/admin", index: 1), self.route("/admin/users", index: 2)])
        #expect(table.route(for: "/admin")?.index == 1)
        #expect(table.route(for: "/admin/")?.index == 1)
        #expect(table.route(for: "/admin/x")?.index == 1)
        #expect(table.route(for: "/administrator")?.index == 0)
        #expect(table.route(for: "/admin/users/7")?.index == 2)
        #expect(table.route(for: "/admin/usersx")?.index == 1)
        #expect(table.route(for: "/other")?.index == 0)
    }

    @Test("No matching route is nil (→ 404)")
    func noRoute() {
        let table = RouteTable([self.route("/api", index: 0)])
        #expect(table.route(for: "/apix") == nil)
        #expect(table.route(for: "/") == nil)
    }

    @Test("Upstream URLs: http or https, host, optional port and base path")
    func upstreams() {
        #expect((try? Upstream.parse("http://127.0.0.1:9000").get()) == Upstream(host: "127.0.0.1", port: 9000))
        #expect((try? Upstream.parse("http://svc/").get()) == Upstream(host: "svc", port: 80))
        #expect((try? Upstream.parse("http://[::1]:81").get()) == Upstream(host: "::1", port: 81))
        #expect((try? Upstream.parse("https://svc").get()) == Upstream(host: "svc", port: 443, tls: true))
        #expect((try? Upstream.parse("HTTPS://svc:8443/v2").get()) == Upstream(host: "svc", port: 8443, tls: true, basePath: "/v2"))
        #expect((try? Upstream.parse("http://svc/v2/").get()) == Upstream(host: "svc", port: 80, basePath: "/v2/"))
        #expect((try? Upstream.parse("http://svc/a%20b/c").get())?.basePath == "/a%20b/c")
        for bad in [
            "htp://x", "http://", "https://", "http://x:0", "http://x:99999", "http://u:p@x", "x:80", "http://x/v2?a=1",
            "http://x/v2#f", "http://x/a/../b", "http://x//v2", "http://x/v2/./", "http://x/a%2Fb", "http://::1/",
        ] {
            #expect((try? Upstream.parse(bad).get()) == nil, "\(bad)")
        }
        if case .failure(let problem) = Upstream.parse("htp://x") {
            #expect(problem.description == #""htp://x" is not an http URL (http:// or https://)"#)
        }
        if case .failure(let problem) = Upstream.parse("http://x/a/../b") {
            #expect(problem.description == #""http://x/a/../b" has a base path that is not normalised (did you mean "/b"?)"#)
        }
    }

    @Test("http and https to the same host and port are different endpoints; base paths share one")
    func endpoints() throws {
        let plain = try Upstream.parse("http://svc:8443").get()
        let secure = try Upstream.parse("https://svc:8443").get()
        let v1 = try Upstream.parse("https://svc:8443/v1").get()
        let v2 = try Upstream.parse("https://svc:8443/v2").get()
        #expect(plain.endpoint != secure.endpoint)
        #expect(v1.endpoint == v2.endpoint)
        #expect(v1.endpoint == secure.endpoint)
        #expect(secure.trusting(caFile: "/ca.pem").endpoint != secure.endpoint)
        #expect(v2.description == "https://svc:8443/v2")
    }

    func target(_ prefix: String, _ upstream: String, strip: Bool, _ request: String) throws -> String {
        let route = Route(
            pathPrefix: prefix, upstream: try Upstream.parse(upstream).get(), stripPrefix: strip, auth: .none,
            requireClaims: [], providerIndices: nil, index: 0)
        let normalized = try PathNormalizer.normalize(request).get()
        try #require(route.matches(normalized.path))
        return route.upstreamTarget(normalized)
    }

    @Test(
        "strip_prefix removes the matched prefix, then the base path goes in front; the query is untouched",
        arguments: [
            // prefix, upstream, strip, request → forwarded
            ("/api", "http://h/v2", true, "/api/users?x=1", "/v2/users?x=1"),
            ("/api", "http://h/v2", true, "/api", "/v2"),
            ("/api", "http://h/v2", true, "/api/", "/v2/"),
            ("/api", "http://h/v2", true, "/api?q", "/v2?q"),
            ("/api", "http://h/v2/", true, "/api", "/v2/"),
            ("/api", "http://h/v2/", true, "/api/users", "/v2/users"),
            ("/api", "http://h/v2", false, "/api/users", "/v2/api/users"),
            ("/api", "http://h/v2/", false, "/api/users?a=/../b", "/v2/api/users?a=/../b"),
            ("/api", "http://h", true, "/api/users", "/users"),
            ("/api", "http://h", true, "/api", "/"),
            ("/api", "http://h", true, "/api?x=%2F", "/?x=%2F"),
            ("/api", "http://h/", true, "/api/", "/"),
            ("/api", "http://h", false, "/api/users?x", "/api/users?x"),
            ("/", "http://h/v2", true, "/users", "/v2/users"),
            ("/", "http://h/v2", false, "/", "/v2/"),
            ("/", "http://h", true, "/x?y", "/x?y"),
            ("/a/b", "http://h/c", true, "/a/b/../b/./d", "/c/d"),
            ("/api", "http://h/v2", true, "/api/%7Euser/x%20y", "/v2/~user/x%20y"),
        ])
    func rewrites(_ prefix: String, _ upstream: String, _ strip: Bool, _ request: String, _ expected: String) throws {
        #expect(try self.target(prefix, upstream, strip: strip, request) == expected)
    }

    @Test("A rewritten path cannot climb out of the base path: dot segments are resolved before routing")
    func rewriteCannotEscape() throws {
        // `/api/../admin` is normalised to `/admin` first, which this route does not match.
        let normalized = try PathNormalizer.normalize("/api/../admin").get()
        let route = Route(
            pathPrefix: "/api", upstream: try Upstream.parse("http://h/v2").get(), stripPrefix: true, auth: .none,
            requireClaims: [], providerIndices: nil, index: 0)
        #expect(!route.matches(normalized.path))
        #expect(try self.target("/api", "http://h/v2", strip: true, "/api/x/../../api/y") == "/v2/y")
    }
}
