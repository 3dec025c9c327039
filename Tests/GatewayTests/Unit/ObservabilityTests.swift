import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

@Suite("Request ids")
struct RequestIDTests {
    @Test("A client's id passes only when it is 1-128 safe characters")
    func acceptable() {
        for good in ["abc", "0af7651916cd43dd8448eb211c80319c", "req-1_2.3:4/5+6=7@8", String(repeating: "a", count: 128)] {
            #expect(RequestID.isAcceptable(good), "\(good)")
        }
        for bad in ["", String(repeating: "a", count: 129), "a b", "a\"b", "a\\b", "a\r\nX-Auth-Subject: root", "é", "a,b", "a;b"] {
            #expect(!RequestID.isAcceptable(bad), "\(bad)")
        }
    }

    @Test("Generated ids are 32 lowercase hex digits, distinct, and differ between generators")
    func generated() {
        let generator = RequestIDGenerator(prefix: 0x0123_4567_89ab_cdef, counter: 0xff)
        #expect(generator.next() == "0123456789abcdef0000000000000100")
        #expect(generator.next() == "0123456789abcdef0000000000000101")
        let a = RequestIDGenerator()
        let b = RequestIDGenerator()
        let ids = (0..<1000).map { _ in a.next() } + (0..<1000).map { _ in b.next() }
        #expect(Set(ids).count == 2000)
        #expect(ids.allSatisfy { $0.text.utf8.count == 32 && $0.text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) } })
    }

    @Test("Generated digits match String(radix: 16) for edge and random values")
    func generatedDigits() {
        var random = SystemRandomNumberGenerator()
        let edges: [UInt64] = [0, 1, 9, 10, 15, 16, 0xff, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0xa0a0_a0a0_9f9f_9f9f, .max]
        for prefix in edges + (0..<2000).map({ _ in random.next() }) {
            let counter = prefix &* 0x9E37_79B9_7F4A_7C15
            let expected = [prefix, counter].map { value in
                let hex = String(value, radix: 16)
                return String(repeating: "0", count: 16 - hex.count) + hex
            }.joined()
            #expect(RequestID.generated(prefix: prefix, counter: counter).text == expected)
        }
    }

    @Test("A generated id is its digits: equal to and hashed as the same text given, written as it reads")
    func generatedValue() {
        let id = RequestID.generated(prefix: 0xfedc_ba98_7654_3210, counter: 0x0f)
        let text = "fedcba9876543210000000000000000f"
        #expect(id.text == text)
        #expect(id == .given(text))
        #expect(RequestID.given(text) == id)
        #expect(id != .given("fedcba9876543210000000000000001f"))
        #expect(id != .generated(prefix: 0xfedc_ba98_7654_3210, counter: 0x1f))
        #expect(Set<RequestID>([id, .given(text)]).count == 1)
        var buffer = ByteBuffer()
        buffer.writeHead(estimate: 0) { writer in
            writer.writeLine("X-Request-Id", id)
            writer.writeLine("X-Request-Id", RequestID.given("abc-1"))
        }
        #expect(String(buffer: buffer) == "X-Request-Id: \(text)\r\nX-Request-Id: abc-1\r\n")
    }
}

@Suite("Access log lines")
struct AccessLogTests {
    func record(path: String = "/api/orders", subject: String? = "alice") -> AccessLogRecord {
        AccessLogRecord(
            time: 1_795_321_812.345_6, requestID: "0123456789abcdef0000000000000100", method: "GET", path: path,
            route: "/api", status: 200, decision: .allowed, reason: nil, subject: subject,
            upstream: "http://127.0.0.1:9000", client: "192.0.2.1", durationSeconds: 0.001_234_4,
            upstreamSeconds: 0.000_9, requestBytes: 0, responseBytes: 512)
    }

    @Test("One JSON object per line with every field, times in UTC with milliseconds")
    func fields() throws {
        let line = AccessLogFormatter.line(self.record())
        #expect(line.hasSuffix("}\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONParser.parse(Array(line.utf8)).objectValue)
        #expect(object["time"]?.stringValue == "2026-11-22T04:30:12.345Z")
        #expect(object["request_id"]?.stringValue == "0123456789abcdef0000000000000100")
        #expect(object["method"]?.stringValue == "GET")
        #expect(object["path"]?.stringValue == "/api/orders")
        #expect(object["route"]?.stringValue == "/api")
        #expect(object["status"]?.doubleValue == 200)
        #expect(object["decision"]?.stringValue == "allowed")
        #expect(object["reason"] == nil)
        #expect(object["subject"]?.stringValue == "alice")
        #expect(object["upstream"]?.stringValue == "http://127.0.0.1:9000")
        #expect(object["client"]?.stringValue == "192.0.2.1")
        #expect(object["duration_ms"]?.doubleValue == 1.234)
        #expect(object["upstream_ms"]?.doubleValue == 0.9)
        #expect(object["response_bytes"]?.doubleValue == 512)
    }

    @Test("Hostile paths and subjects stay inside their JSON strings")
    func escaping() throws {
        let hostile = "/a\"b\\c\n{\"x\":1}\u{7}\r\t"
        let line = AccessLogFormatter.line(self.record(path: hostile, subject: "evil\"\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONParser.parse(Array(line.utf8)).objectValue)
        #expect(object["path"]?.stringValue == hostile)
        #expect(object["subject"]?.stringValue == "evil\"\n")
    }

    @Test("A refused target is logged without its query and capped")
    func rawPath() {
        #expect(AccessLogRecord.rawPath(of: "/a/../b?access_token=secret") == "/a/../b")
        #expect(AccessLogRecord.rawPath(of: "/" + String(repeating: "x", count: 1000)).utf8.count == 256)
    }

    @Test("The second cache formats each second once and keeps milliseconds exact")
    func clock() {
        var cache = UTCSecondCache()
        var buffer = ByteBuffer()
        cache.write(0, into: &buffer)
        cache.write(0.999, into: &buffer)
        cache.write(951_782_400.5, into: &buffer)  // 2000-02-29
        #expect(String(buffer: buffer) == "1970-01-01T00:00:00.000Z1970-01-01T00:00:00.999Z2000-02-29T00:00:00.500Z")
    }
}

@Suite("Metrics")
struct MetricsTests {
    @Test("Decisions follow the planner's reasons")
    func decisions() {
        #expect(Decision.of(reason: "missing_token", status: 401) == .missingToken)
        #expect(Decision.of(reason: "expired", status: 401) == .invalidToken)
        #expect(Decision.of(reason: "malformed", status: 401) == .invalidToken)
        #expect(Decision.of(reason: "insufficient_scope", status: 403) == .forbidden)
        #expect(Decision.of(reason: "keys_unavailable", status: 503) == .unavailable)
        #expect(Decision.of(reason: "no_route", status: 404) == .rejected)
        #expect(Decision.of(reason: "bad_path", status: 400) == .rejected)
    }

    @Test("Histograms count each observation in one bucket; the exposition is cumulative")
    func histogram() {
        var histogram = LatencyHistogram()
        histogram.observe(0.00001)  // first bucket
        histogram.observe(0.00005)  // on the bound: still the first (le = less or equal)
        histogram.observe(0.003)
        histogram.observe(60)  // above every bound
        #expect(histogram.counts[0] == 2)
        #expect(histogram.counts[LatencyHistogram.bounds.firstIndex(of: 0.005)!] == 1)
        #expect(histogram.counts.last == 1)
        #expect(histogram.count == 4)

        var snapshot = MetricsSnapshot()
        snapshot.gatewayLatency = histogram
        let text = PrometheusExposition.render(snapshot, ProcessMetrics())
        #expect(text.contains("authgate_gateway_latency_seconds_bucket{le=\"5e-05\"} 2\n"))
        #expect(text.contains("authgate_gateway_latency_seconds_bucket{le=\"0.005\"} 3\n"))
        #expect(text.contains("authgate_gateway_latency_seconds_bucket{le=\"10\"} 3\n"))
        #expect(text.contains("authgate_gateway_latency_seconds_bucket{le=\"+Inf\"} 4\n"))
        #expect(text.contains("authgate_gateway_latency_seconds_count 4\n"))
    }

    @Test("Request counts are exact whether keys repeat, alternate or come back, and between snapshots")
    func requestCountsFold() {
        let loop = LoopMetrics()
        let ok = MetricsSnapshot.RequestKey(route: "/a", status: 200, decision: .allowed, reason: "")
        let denied = MetricsSnapshot.RequestKey(route: "/a", status: 401, decision: .invalidToken, reason: "expired")
        func count(_ key: MetricsSnapshot.RequestKey) {
            loop.countRequest(route: key.route, status: key.status, decision: key.decision, reason: key.reason)
        }
        #expect(loop.snapshot.requests.isEmpty)
        for _ in 0..<3 { count(ok) }
        #expect(loop.snapshot.requests == [ok: 3])
        #expect(loop.snapshot.requests == [ok: 3])  // reading twice counts nothing twice
        count(ok)
        count(denied)
        count(ok)
        count(denied)
        count(denied)
        #expect(loop.snapshot.requests == [ok: 5, denied: 3])
        // The same key spelled by another string instance is the same key.
        loop.countRequest(route: String("/a".utf8.map { Character(UnicodeScalar($0)) }), status: 200, decision: .allowed, reason: "")
        #expect(loop.snapshot.requests == [ok: 6, denied: 3])
    }

    @Test("Upstream latencies are exact per route whether routes repeat or alternate, and between snapshots")
    func upstreamLatencyFold() {
        let loop = LoopMetrics()
        func expected(_ values: [Double]) -> LatencyHistogram {
            var histogram = LatencyHistogram()
            for value in values { histogram.observe(value) }
            return histogram
        }
        #expect(loop.snapshot.upstreamLatency.isEmpty)
        loop.observeUpstream(route: "/a", seconds: 0.001)
        loop.observeUpstream(route: "/a", seconds: 0.2)
        #expect(loop.snapshot.upstreamLatency == ["/a": expected([0.001, 0.2])])
        #expect(loop.snapshot.upstreamLatency == ["/a": expected([0.001, 0.2])])  // read twice, counted once
        loop.observeUpstream(route: "/b", seconds: 3)
        loop.observeUpstream(route: "/a", seconds: 0.00001)
        loop.observeUpstream(route: "/b", seconds: 0.04)
        loop.observeUpstream(route: "/b", seconds: 0.04)
        #expect(
            loop.snapshot.upstreamLatency == ["/a": expected([0.001, 0.2, 0.00001]), "/b": expected([3, 0.04, 0.04])])
    }

    @Test("Request counters are labelled by route, status, decision and reason, and labels are escaped")
    func exposition() {
        let loop = LoopMetrics()
        loop.countRequest(route: "/api", status: 200, decision: .allowed, reason: "")
        loop.countRequest(route: "/api", status: 200, decision: .allowed, reason: "")
        loop.countRequest(route: "/api", status: 401, decision: .invalidToken, reason: "expired")
        loop.countRequest(route: "/we\"ird\\\n", status: 404, decision: .rejected, reason: "no_route")
        var total = MetricsSnapshot()
        total.merge(loop.snapshot)
        total.merge(loop.snapshot)
        var process = ProcessMetrics()
        process.providerKeys = ["main": 2]
        process.reloads = 3
        let text = PrometheusExposition.render(total, process)
        #expect(text.contains("authgate_requests_total{route=\"/api\",status=\"200\",decision=\"allowed\",reason=\"\"} 4\n"))
        #expect(text.contains("authgate_requests_total{route=\"/api\",status=\"401\",decision=\"invalid_token\",reason=\"expired\"} 2\n"))
        #expect(text.contains("route=\"/we\\\"ird\\\\\\n\""))
        #expect(text.contains("authgate_provider_keys{provider=\"main\"} 2\n"))
        #expect(text.contains("authgate_config_reloads_total 3\n"))
        // Every sample belongs to a family declared just before it.
        var declared: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                declared.insert(String(line.split(separator: " ")[2]))
            } else if !line.hasPrefix("#") {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = ["_bucket", "_sum", "_count"].reduce(name) { name, suffix in
                    name.hasSuffix(suffix) && declared.contains(String(name.dropLast(suffix.count))) ? String(name.dropLast(suffix.count)) : name
                }
                #expect(declared.contains(family), "\(line)")
            }
        }
    }

    @Test("Admin paths: GET and HEAD only, queries ignored")
    func adminRoutes() {
        #expect(AdminRoute(method: .GET, uri: "/healthz") == .healthz)
        #expect(AdminRoute(method: .HEAD, uri: "/readyz") == .readyz)
        #expect(AdminRoute(method: .GET, uri: "/metrics?x=1") == .metrics)
        #expect(AdminRoute(method: .POST, uri: "/metrics") == .methodNotAllowed)
        #expect(AdminRoute(method: .GET, uri: "/metrics/") == .notFound)
        #expect(AdminRoute(method: .GET, uri: "/") == .notFound)
    }
}

@Suite("Planning with request ids and per-route limits")
struct OperationsPlanningTests {
    static func planner(_ extra: String = "") throws -> RequestPlanner {
        let json = """
            {
              "providers": [{"name": "main", "issuer": "https://issuer.test", "audiences": ["orders"],
                             "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "S"}]}],
              \(extra)
              "limits": {"max_body_bytes": 1000},
              "routes": [
                {"path_prefix": "/open", "upstream": "http://127.0.0.1:9001", "auth": "none"},
                {"path_prefix": "/upload", "upstream": "http://127.0.0.1:9001", "auth": "none", "max_body_bytes": 5000,
                 "timeouts": {"upstream_seconds": 300, "connect_seconds": 1}}
              ]
            }
            """
        return RequestPlanner(config: try ConfigLoader(environment: ["S": TestSupport.secret]).load(Array(json.utf8)))
    }

    func plan(
        _ planner: RequestPlanner, _ uri: String, _ headers: [(String, String)] = [], generator: RequestIDGenerator? = nil
    ) -> (RequestPlan, PlanContext) {
        var context = PlanContext(generator: generator ?? RequestIDGenerator(prefix: 1, counter: 0))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: HTTPHeaders([("Host", "gw")] + headers))
        let plan = planner.plan(head, clientAddress: "192.0.2.1", now: WallClock.now(), context: &context)
        return (plan, context)
    }

    @Test("A valid client id is kept and forwarded once; a bad or repeated one is replaced")
    func requestIDs() throws {
        let planner = try Self.planner()
        let (kept, keptContext) = self.plan(planner, "/open/x", [("X-Request-Id", "abc-123")])
        guard case .forward(let forward) = kept else { Issue.record("not forwarded"); return }
        #expect(keptContext.requestID == "abc-123")
        #expect(forward.head.headers["x-request-id"] == ["abc-123"])

        for hostile in [[("X-Request-Id", "a b")], [("X-Request-Id", "a"), ("X-Request-Id", "b")], [("X_Request_Id", "spoof")]] {
            let (plan, context) = self.plan(planner, "/open/x", hostile)
            guard case .forward(let forward) = plan else { Issue.record("not forwarded"); return }
            #expect(context.requestID == "00000000000000010000000000000001")
            #expect(forward.head.headers["x-request-id"] == ["00000000000000010000000000000001"])
            #expect(!forward.head.headers.contains { $0.name == "X_Request_Id" })
        }
    }

    @Test("trust_incoming false always generates; enabled false leaves the header alone")
    func requestIDSettings() throws {
        let untrusting = try Self.planner(#""request_id": {"trust_incoming": false, "header": "X-Correlation-Id"},"#)
        let (plan, context) = self.plan(untrusting, "/open", [("X-Correlation-Id", "client-chosen")])
        guard case .forward(let forward) = plan else { Issue.record("not forwarded"); return }
        #expect(context.requestID == "00000000000000010000000000000001")
        #expect(forward.head.headers["x-correlation-id"] == ["00000000000000010000000000000001"])

        let off = try Self.planner(#""request_id": {"enabled": false},"#)
        let (offPlan, offContext) = self.plan(off, "/open", [("X-Request-Id", "whatever it is")])
        guard case .forward(let offForward) = offPlan else { Issue.record("not forwarded"); return }
        #expect(offContext.requestID == nil)
        #expect(offForward.head.headers["x-request-id"] == ["whatever it is"])
    }

    @Test("A route's max_body_bytes replaces the global limit for declared lengths; context names the route")
    func routeLimits() throws {
        let planner = try Self.planner()
        let (small, smallContext) = self.plan(planner, "/open/a", [("Content-Length", "2000")])
        if case .respond(let response, let reason) = small {
            #expect(response.status == .payloadTooLarge)
            #expect(reason == "body_too_large")
        } else {
            Issue.record("2000 bytes passed a 1000-byte limit")
        }
        #expect(smallContext.route?.pathPrefix == "/open")
        let (large, largeContext) = self.plan(planner, "/upload/a", [("Content-Length", "2000")])
        guard case .forward(let forward) = large else { Issue.record("2000 bytes refused on a 5000-byte route"); return }
        #expect(forward.route.maxBodyBytes == 5000)
        #expect(forward.route.upstreamSeconds == 300)
        #expect(forward.route.connectSeconds == 1)
        #expect(largeContext.path == "/upload/a")
        let (_, refused) = self.plan(planner, "/nowhere/../../x")
        #expect(refused.route == nil)
        #expect(refused.requestID != nil)
    }

    @Test("Operations settings are validated with their JSON paths")
    func configErrors() throws {
        let json = """
            {"listen": "127.0.0.1:8080", "admin_listen": "127.0.0.1:8080",
             "access_log": {"path": "", "format": "text"},
             "request_id": {"header": "Host"},
             "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:1", "auth": "none",
                         "max_body_bytes": -1, "timeouts": {"upstream_seconds": 0, "client_idle_seconds": 1}}]}
            """
        do {
            _ = try ConfigLoader(environment: [:]).load(Array(json.utf8))
            Issue.record("accepted")
        } catch {
            let messages = error.issues.map(\.description)
            #expect(messages.contains("admin_listen: \"127.0.0.1:8080\" is the proxy's own `listen` address"))
            #expect(messages.contains("access_log.format: unknown field"))
            #expect(messages.contains("access_log.path: is empty (leave it out to log to standard output)"))
            #expect(messages.contains("request_id.header: \"Host\" is managed by the gateway or carries the token"))
            #expect(messages.contains { $0.hasPrefix("routes[0].max_body_bytes:") })
            #expect(messages.contains { $0.hasPrefix("routes[0].timeouts.upstream_seconds:") })
            #expect(messages.contains("routes[0].timeouts.client_idle_seconds: unknown field"))
        }
        let defaults = try ConfigLoader(environment: [:]).load(
            Array(#"{"routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:1", "auth": "none"}]}"#.utf8))
        #expect(defaults.adminListen == ListenAddress(host: "127.0.0.1", port: 9901))
        #expect(defaults.accessLog == AccessLogSettings(enabled: true, path: nil))
        #expect(defaults.requestID == RequestIDSettings())
        let off = try ConfigLoader(environment: [:], baseDirectory: "/var/lib/authgate").load(
            Array(#"{"admin_listen": null, "access_log": {"path": "logs/access.log"}, "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:1", "auth": "none"}]}"#.utf8))
        #expect(off.adminListen == nil)
        #expect(off.accessLog.path == "/var/lib/authgate/logs/access.log")
    }
}
