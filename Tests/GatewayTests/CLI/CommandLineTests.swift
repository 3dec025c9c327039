import Crypto
import Foundation
import Testing
import _CryptoExtras

@testable import Gateway

/// Runs the real `authgate` and `upstream-echo` binaries, as a user or a script would.
@Suite("Command line: exit codes, check, token, serve and drain")
struct CommandLineTests {
    /// The directory of the test binary; `swift build` puts the executables beside it.
    static let binDirectory: URL = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent()
    }()

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a binary to completion (bounded by `timeout`).
    static func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 20) throws -> Outcome {
        let process = Process()
        process.executableURL = binDirectory.appendingPathComponent(tool)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// A scratch directory with a configuration (and whatever else the test writes there).
    static func scratch(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("authgate-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return dir
    }

    static let secret = "cli-test-secret-0123456789abcdef-0123"

    static func config(upstreamPort: Int = 9, extraKeys: String = "") -> String {
        """
        {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "access_log": {"enabled": false},
         "providers": [{"name": "main", "issuer": "https://issuer.test", "audiences": ["orders"],
                        "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "CLI_SECRET"}\(extraKeys)]}],
         "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:\(upstreamPort)"}]}
        """
    }

    @Test("check: exit 0 on a usable config, 1 naming every problem by JSON path")
    func check() throws {
        let dir = try Self.scratch(["good.json": Self.config(), "bad.json": """
            {"providers": [{"name": "p", "keys": [{"kid": "k", "alg": "HS256", "secret_env": "NOPE_NOT_SET"}]}],
             "routes": [{"path_prefix": "/", "upstream": "htp://x"}, {"path_prefix": "/a"}]}
            """])
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try Self.run("authgate", ["check", "--config", dir.appendingPathComponent("good.json").path], environment: ["CLI_SECRET": Self.secret])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("OK"))
        #expect(good.stdout.contains("; admin 127.0.0.1:0, access log off)"), "\(good.stdout)")
        let bad = try Self.run("authgate", ["check", "--config", dir.appendingPathComponent("bad.json").path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("providers[0].keys[0].secret_env: environment variable NOPE_NOT_SET is not set"))
        #expect(bad.stderr.contains(#"routes[0].upstream: "htp://x" is not an http URL"#))
        #expect(bad.stderr.contains("routes[1].upstream: is required"))
        #expect(!bad.stderr.contains("Fatal error"))
        let missing = try Self.run("authgate", ["check", "--config", "/nonexistent/gateway.json"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/gateway.json"))
    }

    @Test("Bad command lines exit 2, help exits 0")
    func commandLineErrors() throws {
        #expect(try Self.run("authgate", ["--bogus"]).status == 2)
        #expect(try Self.run("authgate", ["serve", "--listen", "nowhere"]).status == 2)
        #expect(try Self.run("authgate", ["token", "--sub", "x"]).status == 2)  // --key missing
        #expect(try Self.run("authgate", ["token", "--key", "k", "--sub", "x", "--ttl", "soon"]).status == 2)
        #expect(try Self.run("upstream-echo", ["--listen", "nope"]).status == 2)
        let help = try Self.run("authgate", ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("serve"))
    }

    @Test("token: HS256 from the config's secret, RS256 with --private-key, verified by the gateway's verifier")
    func token() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let other = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let dir = try Self.scratch([
            "gateway.json": Self.config(extraKeys: #", {"kid": "rs-1", "alg": "RS256", "public_key_file": "rs.pub.pem"}"#),
            "rs.pub.pem": rsa.publicKey.pemRepresentation, "rs.key.pem": rsa.pemRepresentation,
            "other.key.pem": other.pemRepresentation,
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let configPath = dir.appendingPathComponent("gateway.json").path
        let env = ["CLI_SECRET": Self.secret]
        let config = try ConfigLoader.load(path: configPath, environment: env)
        let verifier = TokenVerifier(providers: config.providers)

        let hs = try Self.run("authgate", ["token", "--config", configPath, "--key", "hs-1", "--sub", "alice", "--claim", "role=[\"admin\",\"dev\"]", "--claim", "team=blue", "--ttl", "5m"], environment: env)
        #expect(hs.status == 0, "\(hs.stderr)")
        let claims = try verifier.verify(hs.stdout.trimmingCharacters(in: .whitespacesAndNewlines), now: WallClock.now()).get().claims
        #expect(claims["sub"] == .string("alice"))
        #expect(claims["iss"] == .string("https://issuer.test"))
        #expect(claims["aud"] == .string("orders"))
        #expect(claims["role"] == .array([.string("admin"), .string("dev")]))
        #expect(claims["team"] == .string("blue"))
        let exp = try #require(claims["exp"]?.doubleValue)
        #expect(abs(exp - WallClock.now() - 300) < 5)

        let rs = try Self.run("authgate", ["token", "--config", configPath, "--key", "rs-1", "--sub", "bob", "--private-key", dir.appendingPathComponent("rs.key.pem").path], environment: env)
        #expect(rs.status == 0, "\(rs.stderr)")
        #expect((try? verifier.verify(rs.stdout.trimmingCharacters(in: .whitespacesAndNewlines), now: WallClock.now()).get()) != nil)

        let mismatch = try Self.run("authgate", ["token", "--config", configPath, "--key", "rs-1", "--sub", "bob", "--private-key", dir.appendingPathComponent("other.key.pem").path], environment: env)
        #expect(mismatch.status == 1)
        #expect(mismatch.stderr.contains("does not match"))
        let noKey = try Self.run("authgate", ["token", "--config", configPath, "--key", "rs-1", "--sub", "bob"], environment: env)
        #expect(noKey.status == 1)
        #expect(noKey.stderr.contains("--private-key"))
        let unknown = try Self.run("authgate", ["token", "--config", configPath, "--key", "zz", "--sub", "bob"], environment: env)
        #expect(unknown.status == 1)

        // --iss and --aud replace the provider's issuer and audience (CONTRACT: `token`): the
        // token carries them, so the configured provider refuses it, and a verifier that checks
        // neither accepts it with exactly those values.
        let overridden = try Self.run(
            "authgate", ["token", "--config", configPath, "--key", "hs-1", "--sub", "carol", "--iss", "https://other.test", "--aud", "billing"],
            environment: env)
        #expect(overridden.status == 0, "\(overridden.stderr)")
        let otherToken = overridden.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(throws: (any Error).self) { try verifier.verify(otherToken, now: WallClock.now()).get() }
        let unchecked = TokenVerifier(providers: config.providers.map {
            Provider(name: $0.name, issuer: nil, audiences: [], clockSkewSeconds: 0, keys: $0.keys)
        })
        let otherClaims = try unchecked.verify(otherToken, now: WallClock.now()).get().claims
        #expect(otherClaims["iss"] == .string("https://other.test"))
        #expect(otherClaims["aud"] == .string("billing"))
        #expect(otherClaims["sub"] == .string("carol"))
    }

    @Test("serve: proxies, then on SIGTERM finishes the request in flight and exits 0")
    func serveAndDrain() async throws {
        let echo = Process()
        echo.executableURL = Self.binDirectory.appendingPathComponent("upstream-echo")
        echo.arguments = ["--listen", "127.0.0.1:0"]
        let echoOut = Pipe()
        echo.standardOutput = echoOut
        try echo.run()
        defer { if echo.isRunning { echo.terminate() } }
        let echoLine = try Self.readLine(echoOut, timeout: 10)
        let echoPort = try #require(Int(echoLine.split(separator: ":").last ?? ""))

        let dir = try Self.scratch(["gateway.json": Self.config(upstreamPort: echoPort)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let gateway = Process()
        gateway.executableURL = Self.binDirectory.appendingPathComponent("authgate")
        gateway.arguments = ["serve", "--config", dir.appendingPathComponent("gateway.json").path, "--drain-seconds", "10"]
        gateway.environment = ProcessInfo.processInfo.environment.merging(["CLI_SECRET": Self.secret]) { $1 }
        let gatewayErr = Pipe()
        gateway.standardError = gatewayErr
        try gateway.run()
        defer { if gateway.isRunning { gateway.terminate() } }
        let listening = try Self.readLine(gatewayErr, timeout: 10)
        #expect(listening.contains("gateway listening"))
        let address = try #require(listening.firstMatch(of: /"address":"127\.0\.0\.1:(\d+)"/))
        let port = try #require(Int(address.1))

        let token = try TestSupport.hsToken(
            JSONObject([
                ("iss", .string("https://issuer.test")), ("aud", .string("orders")), ("sub", .string("carol")),
                ("exp", .number(String(Int(WallClock.now()) + 60))),
            ]), secret: Self.secret)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(port)/__delay?ms=1000"]
        let curlOut = Pipe()
        curl.standardOutput = curlOut
        try curl.run()
        try await Task.sleep(for: .milliseconds(300))
        gateway.terminate()  // SIGTERM while the request waits on the upstream
        let output = String(decoding: curlOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        #expect(output.hasSuffix("\n200"), "\(output)")
        #expect(output.contains("\"x-auth-subject\": [\"carol\"]"))
        let deadline = Date().addingTimeInterval(10)
        while gateway.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!gateway.isRunning)
        #expect(gateway.terminationReason == .exit)
        #expect(gateway.terminationStatus == 0)
    }

    /// Reads the first line a child writes to `pipe` (bounded).
    static func readLine(_ pipe: Pipe, timeout: TimeInterval) throws -> String {
        let handle = pipe.fileHandleForReading
        var data = Data()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            data.append(chunk)
            if let newline = data.firstIndex(of: 0x0A) {
                return String(decoding: data[..<newline], as: UTF8.self)
            }
        }
        throw CocoaError(.fileReadUnknown)
    }
}

@Suite("Command line: keys and explain")
struct KeysAndExplainCommandTests {
    @Test("keys lists configured and remote keys; an unreachable set is an error")
    func keys() async throws {
        let server = try await JWKSServer.start()
        let key = P256.Signing.PrivateKey()
        server.set { $0.jwks = JWKSServer.jwks([(key, "remote-1")]) }
        let dir = try CommandLineTests.scratch([
            "good.json": CommandLineTests.config(extraKeys: "").replacingOccurrences(
                of: #""keys": ["#, with: #""jwks_url": "\#(server.baseURL)/jwks", "keys": ["#),
            "down.json": CommandLineTests.config().replacingOccurrences(
                of: #""keys": ["#, with: #""jwks_url": "http://127.0.0.1:1/jwks", "jwks_timeout_seconds": 1, "keys": ["#),
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ["CLI_SECRET": CommandLineTests.secret]
        let good = try CommandLineTests.run("authgate", ["keys", "--config", dir.appendingPathComponent("good.json").path], environment: env)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("hs-1"))
        #expect(good.stdout.contains("remote-1"))
        #expect(good.stdout.contains("ES256"))
        #expect(good.stdout.contains("\(server.baseURL)/jwks"))
        #expect(!good.stdout.contains(CommandLineTests.secret))
        let down = try CommandLineTests.run("authgate", ["keys", "--config", dir.appendingPathComponent("down.json").path], environment: env)
        #expect(down.status == 1)
        #expect(down.stderr.contains("remote key set not loaded"))
        await server.stop()
    }

    @Test("explain shows the route, key and each claim check, and the gateway's own verdict")
    func explain() throws {
        let dir = try CommandLineTests.scratch(["gateway.json": CommandLineTests.config()])
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("gateway.json").path
        let env = ["CLI_SECRET": CommandLineTests.secret]
        let now = Int(WallClock.now())
        func token(exp: Int) throws -> String {
            try TestSupport.hsToken(
                JSONObject([("iss", .string("https://issuer.test")), ("aud", .string("orders")), ("sub", .string("dan")), ("exp", .number(String(exp)))]),
                secret: CommandLineTests.secret)
        }
        let good = try CommandLineTests.run("authgate", ["explain", "--config", path, "--path", "/a/../b", try token(exp: now + 60)], environment: env)
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        #expect(good.stdout.contains("route: /b → routes[0]"))
        #expect(good.stdout.contains(#"[ok] key "hs-1" [HS256] from providers[0].keys[0]: signature valid"#))
        #expect(good.stdout.contains("verdict: forwarded to http://127.0.0.1:9/b with X-Auth-Subject: dan"))
        let expired = try CommandLineTests.run("authgate", ["explain", "--config", path, try token(exp: now - 600)], environment: env)
        #expect(expired.status == 1)
        #expect(expired.stdout.contains("[FAIL] exp: 60"))  // "600s ago" or "601s ago"
        #expect(expired.stdout.contains("verdict: 401 Unauthorized (expired)"))
    }
}

@Suite("Command line: demo")
struct DemoCommandTests {
    @Test("demo prints working curl commands: 200, 401, 403, and exits 0 on SIGTERM")
    func demo() async throws {
        let demo = Process()
        demo.executableURL = CommandLineTests.binDirectory.appendingPathComponent("authgate")
        demo.arguments = ["demo", "--listen", "127.0.0.1:0", "--log-level", "warning"]
        let out = Pipe()
        demo.standardOutput = out
        try demo.run()
        defer { if demo.isRunning { demo.terminate() } }
        // Read until the last line of the banner.
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while !text.contains("Ctrl-C stops the demo.") && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        func value(_ name: String) throws -> String {
            let line = try #require(text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name + "=") })
            return String(line.trimmingCharacters(in: .whitespaces).dropFirst(name.count + 1))
        }
        let base = try #require(text.firstMatch(of: /curl -i (http:\/\/127\.0\.0\.1:\d+)\/healthz/)).1
        let alice = try value("ALICE"), admin = try value("ADMIN"), expired = try value("EXPIRED")
        func status(_ arguments: [String]) throws -> String {
            try CommandLineTests.runCurl(arguments + ["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        }
        #expect(try status(["\(base)/healthz"]) == "200")
        #expect(try status(["\(base)/orders"]) == "401")
        #expect(try status(["-H", "Authorization: Bearer \(alice)", "\(base)/orders"]) == "200")
        #expect(try status(["-H", "Authorization: Bearer \(expired)", "\(base)/orders"]) == "401")
        #expect(try status(["-H", "Authorization: Bearer \(alice)", "\(base)/admin"]) == "403")
        #expect(try status(["--cookie", "access_token=\(admin)", "\(base)/admin/users"]) == "200")
        demo.terminate()
        demo.waitUntilExit()
        #expect(demo.terminationReason == .exit)
        #expect(demo.terminationStatus == 0)
    }
}

extension CommandLineTests {
    /// Runs curl with `arguments` (bounded) and returns its standard output.
    static func runCurl(_ arguments: [String]) throws -> String {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "--max-time", "10"] + arguments
        let pipe = Pipe()
        curl.standardOutput = pipe
        try curl.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        return output
    }
}
