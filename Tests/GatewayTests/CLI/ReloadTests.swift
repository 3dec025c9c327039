import Foundation
import NIOCore
import NIOPosix
import Crypto
import Testing

@testable import Gateway

/// Collects a child's output lines as they arrive, for waiting on a particular log line.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    private var partial = Data()

    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            self.lock.lock()
            self.partial.append(data)
            while let newline = self.partial.firstIndex(of: 0x0A) {
                self.lines.append(String(decoding: self.partial[self.partial.startIndex..<newline], as: UTF8.self))
                self.partial = Data(self.partial[self.partial.index(after: newline)...])
            }
            self.lock.unlock()
        }
    }

    var all: [String] {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.lines
    }

    /// Waits (bounded) until `count` lines satisfy `predicate`, and returns those lines.
    func wait(for what: String, count: Int = 1, timeout: Duration = .seconds(15), _ predicate: (String) -> Bool) async throws -> [String] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let matching = self.all.filter(predicate)
            if matching.count >= count { return matching }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw E2ETimeout(what: "\(what); output so far:\n\(self.all.joined(separator: "\n"))")
    }
}

/// Keep-alive clients requesting in a loop until stopped; counts answers other than `expected`.
final class LoadLoop: Sendable {
    private let stopFlag = Locked(false)
    private let results = Locked((ok: 0, failed: [String]()))
    private let tasks: Locked<[Task<Void, Never>]> = Locked([])

    init(port: Int, clients: Int, request: @escaping @Sendable () -> String, expected: Int = 200) {
        let stop = self.stopFlag
        let results = self.results
        let tasks = (0..<clients).map { _ in
            Task {
                var client: RawClient?
                while !stop.current {
                    do {
                        if client == nil { client = try await RawClient.connect(port: port) }
                        try await client!.send(request())
                        let response = try await client!.readResponse(timeout: .seconds(10))
                        if response.status == expected {
                            results.withLock { $0.ok += 1 }
                        } else {
                            results.withLock { $0.failed.append("status \(response.status): \(response.text)") }
                        }
                        if response.closesConnection {
                            await client?.close()
                            client = nil
                        }
                    } catch {
                        results.withLock { $0.failed.append("\(error)") }
                        await client?.close()
                        client = nil
                    }
                }
                await client?.close()
            }
        }
        self.tasks.withLock { $0 = tasks }
    }

    /// Stops the clients and returns (answered as expected, failures).
    func stop() async -> (ok: Int, failed: [String]) {
        self.stopFlag.withLock { $0 = true }
        for task in self.tasks.current { await task.value }
        return self.results.current
    }

    var answered: Int { self.results.current.ok }

    /// Waits (at most `timeout`) until `count` requests were answered as expected, so a loaded
    /// machine that schedules the clients late does not make a test see too few of them.
    func waitUntilAnswered(_ count: Int, timeout: Duration = .seconds(10)) async {
        let deadline = ContinuousClock.now + timeout
        while self.answered < count, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

@Suite("Live reload")
struct ReloadTests {
    static func config(_ upstream: TestUpstream, lockedAuth: String, extraRoute: String = "") -> String {
        ConfigJSON.make(routes: [
            ConfigJSON.route("/open", upstream, auth: "none"),
            #"{"path_prefix": "/locked", "upstream": "\#(upstream.url)", "auth": "\#(lockedAuth)"}"#,
        ] + (extraRoute.isEmpty ? [] : [extraRoute]))
    }

    @Test("Reloads under load: zero failed requests; open keep-alive connections get the new routes; in-flight requests finish")
    func reloadUnderLoad() async throws {
        try await withGateway(config: { Self.config($0[0], lockedAuth: "required") }) { env in
            let load = LoadLoop(port: env.port, clients: 4, request: { httpRequest("GET", "/open/x") })
            // One keep-alive connection opened before the reload, and a slow request in flight.
            let before = try await env.connect()
            try await before.send(httpRequest("GET", "/locked/x"))
            #expect(try await before.readResponse().status == 401)
            let slow = try await env.connect()
            try await slow.send(httpRequest("GET", "/open/__delay?ms=800"))

            for round in 0..<6 {
                try await Task.sleep(for: .milliseconds(100))
                let open = round % 2 == 0
                let text = Self.config(
                    env.upstream, lockedAuth: open ? "none" : "required",
                    extraRoute: open ? ConfigJSON.route("/added", env.upstream, auth: "none") : "")
                try await env.server.reload(try ConfigJSON.load(text))
                try await before.send(httpRequest("GET", "/locked/x"))
                #expect(try await before.readResponse().status == (open ? 200 : 401), "round \(round)")
                try await before.send(httpRequest("GET", "/added"))
                #expect(try await before.readResponse().status == (open ? 200 : 404), "round \(round)")
            }
            #expect(try await slow.readResponse(timeout: .seconds(5)).status == 200)
            await load.waitUntilAnswered(21)
            let (ok, failed) = await load.stop()
            #expect(failed.isEmpty, "\(failed.prefix(5))")
            #expect(ok > 20)
            #expect(env.server.processMetrics().reloads == 6)
        }
    }

    @Test("A reload keeps remote key sets whose source did not change (no refetch, no gap)")
    func keySetsSurviveReload() async throws {
        let jwks = try await JWKSServer.start()
        let key = P256.Signing.PrivateKey()
        jwks.set { $0.jwks = JWKSServer.jwks([(key, "remote-1")]) }
        let keys = RemoteKeysTests()
        try await withGateway(config: {
            RemoteKeysTests.config($0[0], provider: #""jwks_url": "\#(jwks.baseURL)/jwks""#)
        }) { env in
            let token = try keys.token(key, kid: "remote-1")
            #expect(try await keys.get(env, token).status == 200)
            #expect(jwks.requests("/jwks") == 1)
            jwks.set { $0.mode = .status(500) }  // the identity provider goes down
            let same = RemoteKeysTests.config(env.upstream, provider: #""jwks_url": "\#(jwks.baseURL)/jwks""#)
            try await env.server.reload(try ConfigJSON.load(same))
            #expect(try await keys.get(env, token).status == 200)
            #expect(jwks.requests("/jwks") == 1)
            #expect(env.server.readiness().isEmpty)
            // A changed source is a new set: fetched (and failing, so that provider has no keys).
            let moved = RemoteKeysTests.config(env.upstream, provider: #""jwks_url": "\#(jwks.baseURL)/jwks2", "jwks_timeout_seconds": 1"#)
            try await env.server.reload(try ConfigJSON.load(moved))
            #expect(jwks.requests("/jwks2") >= 1)
            #expect(try await keys.get(env, token).status == 503)
            #expect(env.server.readiness() == ["provider \"idp\" has no usable keys"])
        }
        await jwks.stop()
    }
}

extension ReloadTests {
    @Test("A reload picks up a renewed certificate for new connections; open ones keep theirs; a broken key is rejected")
    func certificateReload() async throws {
        let oldCA = try TestCertificateAuthority()
        let newCA = try TestCertificateAuthority()
        let files = try TemporaryFiles()
        defer { files.remove() }
        let tls = try EndToEnd.TLS.listenerTLS(oldCA, files)
        try await withGateway(config: { openConfig($0, extra: [tls]) }) { env in
            let before = try await env.connect(tls: try oldCA.clientContext())
            try await before.send(httpRequest("GET", "/x"))
            #expect(try await before.readResponse().status == 200)

            // Renewal writes new files at the same paths, then SIGHUP (here: reload).
            _ = try EndToEnd.TLS.listenerTLS(newCA, files)
            let text = openConfig(env.upstreams, extra: [tls])
            try await env.server.reload(try ConfigJSON.load(text))

            let renewed = try await env.connect(tls: try newCA.clientContext())
            try await renewed.send(httpRequest("GET", "/x"))
            #expect(try await renewed.readResponse().status == 200)
            let stale = try await env.connect(tls: try oldCA.clientContext())
            await stale.sendIgnoringErrors(httpRequest("GET", "/x"))
            #expect(await stale.waitForClose(), "a client trusting only the old CA was served")
            try await before.send(httpRequest("GET", "/x"))
            #expect(try await before.readResponse().status == 200)

            // A key that does not load: the configuration is refused before anything changes.
            _ = try files.write("server.key", "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n")
            #expect(throws: ConfigError.self) { try ConfigJSON.load(text) }
            let still = try await env.connect(tls: try newCA.clientContext())
            try await still.send(httpRequest("GET", "/x"))
            #expect(try await still.readResponse().status == 200)
        }
    }
}

@Suite("Command line: SIGHUP reload")
struct SignalReloadTests {
    @Test("SIGHUP under load: a bad config is rejected with its reasons and the old one kept; a good one applies; zero failed requests")
    func sighup() async throws {
        let upstream = try await TestUpstream.start()
        defer { Task { await upstream.stop() } }
        func config(extraRoute: String) -> String {
            """
            {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "access_log": {"enabled": false},
             "providers": [{"name": "main", "issuer": "https://issuer.test", "audiences": ["orders"],
                            "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "CLI_SECRET"}]}],
             "routes": [{"path_prefix": "/open", "upstream": "\(upstream.url)", "auth": "none"},
                        {"path_prefix": "/", "upstream": "\(upstream.url)"}\(extraRoute)]}
            """
        }
        let dir = try CommandLineTests.scratch(["gateway.json": config(extraRoute: "")])
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("gateway.json")
        let gateway = Process()
        gateway.executableURL = CommandLineTests.binDirectory.appendingPathComponent("authgate")
        gateway.arguments = ["serve", "--config", path.path]
        gateway.environment = ProcessInfo.processInfo.environment.merging(["CLI_SECRET": CommandLineTests.secret]) { $1 }
        let stderr = Pipe()
        gateway.standardError = stderr
        let lines = LineCollector(stderr)
        try gateway.run()
        defer { if gateway.isRunning { gateway.terminate() } }
        let listening = try await lines.wait(for: "gateway listening") { $0.contains("gateway listening") }
        let address = try #require(listening[0].firstMatch(of: /"address":"127\.0\.0\.1:(\d+)"/))
        let port = try #require(Int(address.1))

        let load = LoadLoop(port: port, clients: 3, request: { httpRequest("GET", "/open/x") })
        try await Task.sleep(for: .milliseconds(200))

        // A config with two mistakes: both are logged by path, and nothing changes.
        try #"{"routes": [{"path_prefix": "/x", "upstream": "htp://nowhere"}], "colour": 1}"#
            .write(to: path, atomically: true, encoding: .utf8)
        kill(gateway.processIdentifier, SIGHUP)
        let rejected = try await lines.wait(for: "rejection", count: 2) { $0.contains("reload rejected") }
        #expect(rejected.contains { $0.contains("routes[0].upstream") })
        #expect(rejected.contains { $0.contains("colour: unknown field") })
        let stillOld = try await RawClient.connect(port: port)
        try await stillOld.send(httpRequest("GET", "/open/y"))
        #expect(try await stillOld.readResponse().status == 200)
        try await stillOld.send(httpRequest("GET", "/added"))
        #expect(try await stillOld.readResponse().status == 401)  // the "/" route, token required

        try config(extraRoute: #", {"path_prefix": "/added", "upstream": "\#(upstream.url)", "auth": "none"}"#)
            .write(to: path, atomically: true, encoding: .utf8)
        kill(gateway.processIdentifier, SIGHUP)
        _ = try await lines.wait(for: "reloaded") { $0.contains("configuration reloaded") }
        try await stillOld.send(httpRequest("GET", "/added"))
        #expect(try await stillOld.readResponse().status == 200)  // same connection, new route
        await stillOld.close()

        // The load goes on after the reload: ten more answered than when it applied. (A fixed
        // 200 ms here once saw only 7 in all on a loaded machine.)
        let atReload = load.answered
        await load.waitUntilAnswered(max(atReload + 10, 11))
        let (ok, failed) = await load.stop()
        #expect(failed.isEmpty, "\(failed.prefix(5))")
        #expect(ok > 10)
        #expect(ok >= atReload + 10, "\(ok) answered, \(atReload) of them before the reload applied")
        gateway.terminate()
        let deadline = Date().addingTimeInterval(10)
        while gateway.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(gateway.terminationStatus == 0)
    }
}

extension SignalReloadTests {
    @Test("An admin port already taken: serve exits 1 naming admin_listen and how to turn it off")
    func adminPortTaken() async throws {
        let taken = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(taken.localAddress?.port)
        let config = CommandLineTests.config().replacingOccurrences(
            of: #""admin_listen": "127.0.0.1:0""#, with: #""admin_listen": "127.0.0.1:\#(port)""#)
        let dir = try CommandLineTests.scratch(["gateway.json": config])
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcome = try CommandLineTests.run(
            "authgate", ["serve", "--config", dir.appendingPathComponent("gateway.json").path],
            environment: ["CLI_SECRET": CommandLineTests.secret], timeout: 20)
        try await taken.close()
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("admin_listen 127.0.0.1:\(port)"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains(#""admin_listen": null"#))
    }
}
