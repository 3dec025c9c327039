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

    @Test("Upstream URLs: http with host and optional port only")
    func upstreams() {
        #expect((try? Upstream.parse("http://127.0.0.1:9000").get()) == Upstream(host: "127.0.0.1", port: 9000))
        #expect((try? Upstream.parse("http://svc/").get()) == Upstream(host: "svc", port: 80))
        #expect((try? Upstream.parse("http://[::1]:81").get()) == Upstream(host: "::1", port: 81))
        for bad in ["htp://x", "https://x", "http://", "http://x:0", "http://x:99999", "http://x/path", "http://u:p@x", "x:80"] {
            #expect((try? Upstream.parse(bad).get()) == nil, "\(bad)")
        }
        if case .failure(let problem) = Upstream.parse("htp://x") {
            #expect(problem.description == #""htp://x" is not an http URL"#)
        }
    }
}
