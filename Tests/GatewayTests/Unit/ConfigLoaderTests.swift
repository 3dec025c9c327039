import Crypto
import Testing
import _CryptoExtras

@testable import Gateway

@Suite("Configuration loading and validation")
struct ConfigLoaderTests {
    static let rsaPEM = (try? _RSA.Signing.PrivateKey(keySize: .bits2048))?.publicKey.pemRepresentation ?? ""
    static let shortRSAPEM = (try? _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)))?.publicKey.pemRepresentation ?? ""

    func loader(env: [String: String] = ["S": TestSupport.secret], files: [String: String] = [:]) -> ConfigLoader {
        ConfigLoader(environment: env, baseDirectory: "/etc/authgate") { path in
            guard let text = files[path] else { throw FileReader.ReadError(description: "cannot read \"\(path)\": No such file or directory") }
            return Array(text.utf8)
        }
    }

    func issues(_ json: String, env: [String: String] = ["S": TestSupport.secret], files: [String: String] = [:]) -> [String] {
        do {
            _ = try self.loader(env: env, files: files).load(Array(json.utf8))
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test("The example gateway.json at the repository root is valid (with its secret set)")
    func exampleConfig() throws {
        let root = FileReader.directory(of: FileReader.directory(of: TestSupport.testsDirectory))
        let config = try ConfigLoader.load(path: root + "/gateway.json", environment: ["AUTHGATE_HS256_SECRET": TestSupport.secret])
        #expect(config.routes.count == 3)
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 8080))
    }

    @Test("Defaults are applied to optional fields")
    func defaults() throws {
        let config = try self.loader().load(Array("""
            {"providers": [{"name": "p", "keys": [{"kid": "k", "alg": "HS256", "secret_env": "S"}]}],
             "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:9000"}]}
            """.utf8))
        #expect(config.token == TokenSource(header: "Authorization", scheme: "Bearer", cookie: "access_token"))
        #expect(config.identityHeaders == [IdentityHeader(claim: "sub", header: "X-Auth-Subject")])
        #expect(config.forwardToken)
        #expect(config.timeouts == Timeouts())
        #expect(config.limits == Limits())
        #expect(config.providers[0].clockSkewSeconds == 30)
        #expect(config.routes[0].auth == .required)
    }

    @Test("Every problem is reported at once, each by its JSON path")
    func allIssuesByPath() {
        let found = self.issues("""
            {
              "listen": "nowhere",
              "providers": [
                {"name": "p", "keys": [
                  {"kid": "a", "alg": "HS256", "secret_env": "MISSING"},
                  {"kid": "b", "alg": "HS256", "secret_env": "SHORT"},
                  {"kid": "c", "alg": "none", "secret_env": "S"},
                  {"kid": "d", "alg": "RS256", "public_key_file": "keys/nope.pem"},
                  {"kid": "e", "alg": "RS256", "public_key_file": "keys/short.pem"},
                  {"kid": "f", "alg": "HS256", "secret_env": "S", "public_key_file": "x"}
                ]},
                {"name": "empty"}
              ],
              "timeouts": {"connect_seconds": -1},
              "limits": {"max_header_bytes": 10},
              "routes": [
                {"path_prefix": "/a", "upstream": "http://127.0.0.1:9000"},
                {"path_prefix": "/b", "upstream": "htp://x", "auth": "maybe"},
                {"path_prefix": "a/../b", "upstream": "http://127.0.0.1:9000", "providers": ["ghost"]},
                {"path_prefix": "/a", "upstream": "http://127.0.0.1:9000", "require_claims": {"role": []}},
                {"path_prefx": "/c", "upstream": "http://127.0.0.1:9000"}
              ]
            }
            """, env: ["S": TestSupport.secret, "SHORT": "too-short"], files: ["/etc/authgate/keys/short.pem": Self.shortRSAPEM])
        let expected: [String] = [
            #"listen: "nowhere" is not HOST:PORT"#,
            "providers[0].keys[0].secret_env: environment variable MISSING is not set",
            "providers[0].keys[1]: HS256 secret is 9 bytes; at least 32 are required (RFC 7518 3.2)",
            "providers[0].keys[2].alg: \"none\" is not supported",
            "providers[0].keys[3]: cannot read \"/etc/authgate/keys/nope.pem\"",
            "providers[0].keys[4]: RSA key is 1024 bits; at least 2048 are required",
            "providers[0].keys[5]: has both secret_env and public_key_file",
            "providers[1]: needs at least one of keys, jwks_file, jwks_url",
            "timeouts.connect_seconds: -1 is outside",
            "limits.max_header_bytes: 10 is outside",
            #"routes[1].upstream: "htp://x" is not an http URL"#,
            #"routes[1].auth: "maybe" is not "required" or "none""#,
            "routes[2].path_prefix:",
            #"routes[2].providers[0]: no provider is named "ghost""#,
            "routes[3].require_claims.role: lists no accepted value",
            #"routes[3].path_prefix: "/a" is already routed by routes[0]"#,
            "routes[4].path_prefx: unknown field",
            "routes[4].path_prefix: is required",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "missing: \(prefix)\nfound:\n\(found.joined(separator: "\n"))")
        }
    }

    @Test("Secrets never appear in error messages")
    func secretsNotEchoed() {
        let found = self.issues("""
            {"providers": [{"name": "p", "keys": [{"kid": "k", "alg": "HS512", "secret_env": "S"}]}],
             "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:9000"}]}
            """)
        #expect(!found.isEmpty)  // 32 bytes is too short for HS512
        #expect(!found.joined().contains(TestSupport.secret))
    }

    @Test("Keys load from secret files (trailing newline dropped), PEM files and JWKS files relative to the config")
    func keySources() throws {
        let jwks = #"{"keys": [{"kty": "oct", "kid": "j1", "k": "\#(Base64URL.encode(Array(TestSupport.secret.utf8)))"}, {"kty": "RSA", "use": "enc", "kid": "x", "n": "AQAB", "e": "AQAB"}]}"#
        let config = try self.loader(files: [
            "/etc/authgate/secrets/hs.key": TestSupport.secret + "\n",
            "/etc/authgate/keys/rs.pem": Self.rsaPEM,
            "/abs/jwks.json": jwks,
        ]).load(Array("""
            {"providers": [{"name": "p", "jwks_file": "/abs/jwks.json", "keys": [
               {"kid": "h", "alg": "HS256", "secret_file": "secrets/hs.key"},
               {"kid": "r", "alg": "RS256", "public_key_file": "keys/rs.pem"}]}],
             "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:9000"}]}
            """.utf8))
        #expect(config.providers[0].keys.map(\.kid) == ["h", "r", "j1"])
        #expect(config.skippedKeys.count == 1)
        let token = try TestSupport.hsToken(TestSupport.claims(), kid: "h")
        let verifier = TokenVerifier(providers: [TestSupport.provider(keys: config.providers[0].keys)])
        #expect((try? verifier.verify(token, now: TestSupport.now).get()) != nil)
    }

    @Test("Not JSON, or not an object, is one clear issue")
    func notJSON() {
        #expect(self.issues("{").first?.hasPrefix("not valid JSON") == true)
        #expect(self.issues("[]").first == "expected an object, got an array")
        #expect(self.issues(#"{"routes": []}"#).contains("routes: at least one route is required"))
    }

    @Test("Identity headers may not take over framing or hop-by-hop headers")
    func identityHeaderNames() {
        let found = self.issues("""
            {"providers": [{"name": "p", "keys": [{"kid": "k", "alg": "HS256", "secret_env": "S"}]}],
             "identity_headers": {"sub": "Content-Length", "role": "Bad Header", "email": "Authorization", "x": "X-Auth-Subject", "y": "x-auth-subject"},
             "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:9000"}]}
            """)
        #expect(found.contains { $0.hasPrefix("identity_headers.sub:") })
        #expect(found.contains { $0.hasPrefix("identity_headers.role:") })
        #expect(found.contains { $0.hasPrefix("identity_headers.email:") })
        #expect(found.contains { $0.hasPrefix("identity_headers.y:") })
        #expect(!found.contains { $0.hasPrefix("identity_headers.x:") })
    }

    @Test("Listen addresses: host:port and [v6]:port")
    func listenAddresses() {
        #expect(ListenAddress.parse("0.0.0.0:8080") == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(ListenAddress.parse("[::1]:0") == ListenAddress(host: "::1", port: 0))
        for bad in ["8080", ":8080", "host:", "host:65536", "::1:80", "[::1]8080"] {
            #expect(ListenAddress.parse(bad) == nil, "\(bad)")
        }
    }
}
