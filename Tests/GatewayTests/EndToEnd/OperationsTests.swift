import Foundation
import NIOCore
import Testing

@testable import Gateway

/// Reads the admin listener over a real socket.
func adminGet(_ env: GatewayEnv, _ path: String) async throws -> HTTPResponse {
    guard let port = env.server.adminAddress?.port else { throw E2EFailure("no admin listener") }
    let client = try await RawClient.connect(port: port)
    defer { Task { await client.close() } }
    try await client.send(httpRequest("GET", path, host: "admin"))
    return try await client.readResponse()
}

/// A Prometheus text exposition parsed strictly enough to catch format mistakes: every sample
/// must follow a `# TYPE` of its family, names and labels must be well formed, values numbers.
struct ParsedMetrics {
    var types: [String: String] = [:]
    /// `name{label="value",...}` (labels in the order written) → value.
    var samples: [String: Double] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { continue }
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram"].contains(parts[3]) else {
                    throw E2EFailure("bad TYPE line: \(line)")
                }
                guard self.types[String(parts[2])] == nil else { throw E2EFailure("family declared twice: \(line)") }
                self.types[String(parts[2])] = String(parts[3])
                continue
            }
            guard let match = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)/) else {
                throw E2EFailure("malformed sample: \(line)")
            }
            let name = String(match.1)
            let family = ["_bucket", "_sum", "_count"].first { name.hasSuffix($0) && self.types[String(name.dropLast($0.count))] == "histogram" }
                .map { String(name.dropLast($0.count)) } ?? name
            guard self.types[family] != nil else { throw E2EFailure("sample before its TYPE: \(line)") }
            guard let value = Double(match.3) ?? (match.3 == "+Inf" ? .infinity : nil) else {
                throw E2EFailure("bad value: \(line)")
            }
            self.samples[name + (match.2.map(String.init) ?? "")] = value
        }
    }

    subscript(_ key: String) -> Double? { self.samples[key] }
}

@Suite("Operations: admin listener, metrics, access log, request ids")
struct OperationsTests {
    static let adminAndLog = [#""admin_listen": "127.0.0.1:0""#]

    @Test("/metrics after a known sequence of requests counts each by route, status and decision")
    func metricsAfterKnownSequence() async throws {
        try await withGateway(config: { standardConfig($0, extra: Self.adminAndLog) }) { env in
            let health = try await adminGet(env, "/healthz")
            #expect(health.status == 200)
            let ready = try await adminGet(env, "/readyz")
            #expect(ready.status == 200, "\(ready)")

            let valid = try Tokens.valid()
            let expired = try Tokens.hs256(Tokens.claims(exp: Tokens.number(Tokens.now - 3600)))
            let client = try await env.connect()
            let sequence: [(String, [(String, String)], Int)] = [
                ("/orders", [bearer(valid)], 200),
                ("/orders/1", [bearer(valid)], 200),
                ("/orders", [], 401),
                ("/orders", [bearer(expired)], 401),
                ("/admin/x", [bearer(valid)], 403),
                ("/public/x", [], 200),
                ("/public/x", [], 200),
                ("/public/x", [], 200),
            ]
            for (path, headers, status) in sequence {
                try await client.send(httpRequest("GET", path, headers: headers))
                let response = try await client.readResponse()
                #expect(response.status == status, "\(path): \(response)")
            }
            let scrape = try await adminGet(env, "/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.header("content-type") == PrometheusExposition.contentType)
            try PrometheusParser.check(scrape.text)
            let metrics = try ParsedMetrics(scrape.text)
            func requests(_ route: String, _ status: Int, _ decision: String, _ reason: String = "") -> Double? {
                metrics[#"authgate_requests_total{route="\#(route)",status="\#(status)",decision="\#(decision)",reason="\#(reason)"}"#]
            }
            #expect(requests("/", 200, "allowed") == 2)
            #expect(requests("/", 401, "missing_token", "missing_token") == 1)
            #expect(requests("/", 401, "invalid_token", "expired") == 1)
            #expect(requests("/admin", 403, "forbidden", "insufficient_scope") == 1)
            #expect(requests("/public", 200, "allowed") == 3)
            #expect(metrics.types["authgate_upstream_latency_seconds"] == "histogram")
            #expect(metrics[#"authgate_upstream_latency_seconds_count{route="/"}"#] == 2)
            #expect(metrics[#"authgate_upstream_latency_seconds_count{route="/public"}"#] == 3)
            #expect(metrics["authgate_gateway_latency_seconds_count"] == 8)
            #expect(metrics["authgate_client_connections"] ?? 0 >= 1)
            #expect(metrics["authgate_upstream_connects_total"] ?? 0 >= 1)
            #expect(metrics["authgate_token_cache_misses_total"] ?? 0 >= 1)
            #expect(metrics[#"authgate_provider_keys{provider="main"}"#] == 2)
            #expect(metrics["authgate_ready"] == 1)
        }
    }

    @Test("/readyz is 503 naming a provider without keys; /healthz stays 200")
    func readiness() async throws {
        let closed = try await EndToEnd.UpstreamFailures.closedPort()
        try await withGateway(config: { u in
            ConfigJSON.make(
                routes: [ConfigJSON.route("/", u[0])],
                extra: Self.adminAndLog).replacingOccurrences(
                    of: #"{"kid": "hs-partner", "alg": "HS256", "secret_env": "E2E_PARTNER_SECRET"}]}"#,
                    with: #"{"kid": "hs-partner", "alg": "HS256", "secret_env": "E2E_PARTNER_SECRET"}]}, {"name": "idp", "jwks_url": "http://127.0.0.1:\#(closed)/jwks", "jwks_timeout_seconds": 0.5}"#)
        }) { env in
            #expect(try await adminGet(env, "/healthz").status == 200)
            let ready = try await adminGet(env, "/readyz")
            #expect(ready.status == 503)
            #expect(ready.text.contains("provider \"idp\" has no usable keys"), "\(ready.text)")
            let metrics = try ParsedMetrics(try await adminGet(env, "/metrics").text)
            #expect(metrics["authgate_ready"] == 0)
            #expect(metrics[#"authgate_key_set_failures_total{provider="idp"}"#] ?? 0 >= 1)
            #expect(try await adminGet(env, "/nope").status == 404)
        }
    }

    @Test("X-Request-Id: generated when absent, kept when valid, replaced when not; upstream and client see the same")
    func requestIDs() async throws {
        try await withGateway(config: { openConfig($0) }) { env in
            let client = try await env.connect()
            try await client.send(httpRequest("GET", "/a"))
            let generated = try await client.readResponse()
            let id = try #require(generated.header("x-request-id"))
            #expect(id.utf8.count == 32)
            #expect(try generated.echo().values("x-request-id") == [id])

            try await client.send(httpRequest("GET", "/a", headers: [("X-Request-Id", "edge-42")]))
            let kept = try await client.readResponse()
            #expect(kept.values("x-request-id") == ["edge-42"])
            #expect(try kept.echo().values("x-request-id") == ["edge-42"])

            try await client.send(httpRequest("GET", "/a", headers: [("X-Request-Id", "bad id\"")]))
            let replaced = try await client.readResponse()
            let newID = try #require(replaced.header("x-request-id"))
            #expect(newID != "bad id\"" && newID.utf8.count == 32)
            #expect(try replaced.echo().values("x-request-id") == [newID])

            // Local answers carry it too.
            try await client.send(httpRequest("GET", "/a/../../etc"))
            let refused = try await client.readResponse()
            #expect(refused.status == 400)
            #expect(refused.header("x-request-id")?.utf8.count == 32)
        }
    }

    @Test("Access log: one JSON line per request to a file, without tokens, cookies or queries")
    func accessLog() async throws {
        let files = try TemporaryFiles(prefix: "authgate-access")
        defer { files.remove() }
        let path = files.path("access.log")
        let token = try Tokens.valid(sub: "alice")
        try await withGateway(config: { standardConfig($0, extra: [#""access_log": {"path": "\#(path)"}"#]) }) { env in
            let client = try await env.connect()
            try await client.send(
                httpRequest(
                    "GET", "/orders/7?access_token=\(token)&q=1",
                    headers: [bearer(token), ("Cookie", "access_token=\(token)"), ("X-Request-Id", "log-test-1")]))
            #expect(try await client.readResponse().status == 200)
            try await client.send(httpRequest("GET", "/admin/x", headers: [bearer(token)]))
            #expect(try await client.readResponse().status == 403)
            try await client.send(httpRequest("GET", "/nothing/../../x"))
            #expect(try await client.readResponse().status == 400)

            var lines: [Substring] = []
            for _ in 0..<100 {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                lines = text.split(separator: "\n")
                if lines.count >= 3 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(lines.count == 3)
            let all = lines.joined(separator: "\n")
            #expect(!all.contains(token))
            #expect(!all.contains(String(token.split(separator: ".")[2])))
            #expect(!all.contains("access_token") && !all.contains("q=1"))
            guard lines.count == 3 else { return }
            let first = try #require(try JSONParser.parse(Array(lines[0].utf8)).objectValue)
            #expect(first["request_id"]?.stringValue == "log-test-1")
            #expect(first["path"]?.stringValue == "/orders/7")
            #expect(first["route"]?.stringValue == "/")
            #expect(first["status"]?.doubleValue == 200)
            #expect(first["decision"]?.stringValue == "allowed")
            #expect(first["subject"]?.stringValue == "alice")
            #expect(first["upstream"]?.stringValue == env.upstream.url)
            #expect(first["client"]?.stringValue == "127.0.0.1")
            #expect(first["upstream_ms"]?.doubleValue != nil)
            #expect((first["response_bytes"]?.doubleValue ?? 0) > 0)
            let second = try #require(try JSONParser.parse(Array(lines[1].utf8)).objectValue)
            #expect(second["decision"]?.stringValue == "forbidden")
            #expect(second["reason"]?.stringValue == "insufficient_scope")
            #expect(second["status"]?.doubleValue == 403)
            let third = try #require(try JSONParser.parse(Array(lines[2].utf8)).objectValue)
            #expect(third["decision"]?.stringValue == "rejected")
            #expect(third["reason"]?.stringValue == "bad_path")
            #expect(third["route"] == nil)
        }
    }

    @Test("Per-route upstream_seconds and max_body_bytes override the global ones")
    func perRouteSettings() async throws {
        try await withGateway(config: { u in
            ConfigJSON.make(
                routes: [
                    #"{"path_prefix": "/__delay", "upstream": "\#(u[0].url)", "auth": "none", "timeouts": {"upstream_seconds": 1}, "max_body_bytes": 10}"#,
                    ConfigJSON.route("/", u[0], auth: "none"),
                ], extra: Self.adminAndLog + [#""timeouts": {"upstream_seconds": 5}"#])
        }) { env in
            // The upstream answers after 3 s, within the global 5 s: only the route's 1 s gives 504.
            // (With 0.3 s, a 50 ms answer once took longer than that on a loaded CI run.)
            let slow = try await env.send(httpRequest("GET", "/__delay?ms=3000"))
            #expect(slow.status == 504)
            #expect(try await env.send(httpRequest("GET", "/__delay?ms=50")).status == 200)
            #expect(try await env.send(httpRequest("POST", "/__delay", body: String(repeating: "b", count: 11))).status == 413)
            #expect(try await env.send(httpRequest("POST", "/x", body: String(repeating: "b", count: 11))).status == 200)
            // Chunked bodies are counted as they stream.
            let client = try await env.connect()
            try await client.send("POST /__delay HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
            #expect(try await client.readResponse().status == 413)
            let metrics = try ParsedMetrics(try await adminGet(env, "/metrics").text)
            #expect(metrics[#"authgate_upstream_errors_total{upstream="\#(env.upstream.url)",kind="timeout"}"#] == 1)
            #expect(metrics[#"authgate_requests_total{route="/__delay",status="504",decision="allowed",reason="upstream_timeout"}"#] == 1)
        }
    }
}

/// Runs Prometheus' own Python parser (prometheus_client) over an exposition when it is installed;
/// CI installs it and sets AUTHGATE_REQUIRE_PROMETHEUS_PARSER=1 so that its absence fails there.
enum PrometheusParser {
    static func check(_ text: String) throws {
        let script = """
            import sys
            try:
                from prometheus_client.parser import text_string_to_metric_families
            except ImportError:
                sys.exit(3)
            families = list(text_string_to_metric_families(sys.stdin.read()))
            print(len(families))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            if ProcessInfo.processInfo.environment["AUTHGATE_REQUIRE_PROMETHEUS_PARSER"] == "1" { throw error }
            return
        }
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if process.terminationStatus == 3 || process.terminationStatus == 127 {
            #expect(
                ProcessInfo.processInfo.environment["AUTHGATE_REQUIRE_PROMETHEUS_PARSER"] != "1",
                "prometheus_client is not installed (pip install prometheus-client)")
            return
        }
        #expect(process.terminationStatus == 0, "prometheus_client refused the exposition: \(String(decoding: stderr, as: UTF8.self))")
    }
}
