import Crypto
import Testing

@testable import Gateway

/// `tls`, `upstream_ca_file`, https upstreams with base paths and `strip_prefix` in gateway.json.
/// Certificates come from a CA made in the test; files are served from memory.
@Suite("TLS and upstream configuration")
struct TLSConfigTests {
    static let provider = #"{"name": "p", "keys": [{"kid": "k", "alg": "HS256", "secret_env": "S"}]}"#

    let ca: TestCertificateAuthority
    let files: [String: String]

    init() throws {
        self.ca = try TestCertificateAuthority()
        let other = try TestCertificateAuthority()
        self.files = [
            "/etc/authgate/server.pem": try self.ca.serverCertificatePEM,
            "/etc/authgate/server.key": self.ca.serverKeyPEM,
            "/etc/authgate/chain.pem": try self.ca.serverCertificatePEM + self.ca.caPEM,
            "/etc/authgate/reversed.pem": try self.ca.caPEM + self.ca.serverCertificatePEM,
            "/etc/authgate/other.key": other.serverKeyPEM,
            "/etc/authgate/ca.pem": try self.ca.caPEM,
            "/etc/authgate/other-ca.pem": try other.caPEM,
            "/etc/authgate/encrypted.key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0=\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "/etc/authgate/empty.pem": "nothing here\n",
            "/etc/authgate/garbled.pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ]
    }

    /// A configuration with one HMAC provider, the top-level `members` and `routes`.
    static func document(_ members: String, routes: String, provider: String = provider) -> String {
        let comma = members.isEmpty ? "" : ", "
        return #"{"providers": [\#(provider)]\#(comma)\#(members), "routes": [\#(routes)]}"#
    }

    static let plainRoute = #"{"path_prefix": "/", "upstream": "http://127.0.0.1:9000"}"#

    func load(_ members: String, routes: String = plainRoute) throws -> GatewayConfig {
        try self.loadDocument(Self.document(members, routes: routes))
    }

    func loadDocument(_ json: String) throws(ConfigError) -> GatewayConfig {
        let loader = ConfigLoader(environment: ["S": TestSupport.secret], baseDirectory: "/etc/authgate") { path in
            guard let text = self.files[path] else {
                throw FileReader.ReadError(description: "cannot read \"\(path)\": No such file or directory")
            }
            return Array(text.utf8)
        }
        return try loader.load(Array(json.utf8))
    }

    func issues(_ members: String, routes: String = plainRoute) -> [String] {
        self.issues(document: Self.document(members, routes: routes))
    }

    func issues(document: String) -> [String] {
        do {
            _ = try self.loadDocument(document)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test("tls loads a certificate chain and its key relative to the configuration; TLS 1.2 is the default minimum")
    func listenerTLS() throws {
        let plain = try self.load("")
        #expect(plain.tls == nil)

        let config = try self.load(#""tls": {"cert_file": "chain.pem", "key_file": "server.key"}"#)
        let tls = try #require(config.tls)
        #expect(tls.certificateChain.count == 2)
        #expect(tls.certificateFile == "/etc/authgate/chain.pem")
        #expect(tls.keyFile == "/etc/authgate/server.key")
        #expect(tls.minimumVersion == .tls12)
        _ = try tls.makeServerContext()

        let strict = try self.load(#""tls": {"cert_file": "server.pem", "key_file": "server.key", "min_version": "1.3"}"#)
        #expect(strict.tls?.minimumVersion == .tls13)
    }

    @Test(
        "tls problems name the field and the file",
        arguments: [
            (#"{"cert_file": "nope.pem", "key_file": "server.key"}"#, #"tls.cert_file: cannot read "/etc/authgate/nope.pem": No such file"#),
            (#"{"cert_file": "server.pem", "key_file": "nope.key"}"#, #"tls.key_file: cannot read "/etc/authgate/nope.key": No such file"#),
            (#"{"cert_file": "server.pem", "key_file": "other.key"}"#, #"tls.key_file: "other.key" does not match the certificate in cert_file"#),
            (#"{"cert_file": "server.key", "key_file": "server.key"}"#, #"tls.cert_file: "server.key" holds no PEM certificate"#),
            (#"{"cert_file": "empty.pem", "key_file": "server.key"}"#, #"tls.cert_file: "empty.pem" holds no PEM certificate"#),
            (#"{"cert_file": "server.pem", "key_file": "server.pem"}"#, #"tls.key_file: "server.pem" holds no PEM private key"#),
            (#"{"cert_file": "server.pem", "key_file": "encrypted.key"}"#, #"tls.key_file: "encrypted.key" is encrypted"#),
            (#"{"cert_file": "reversed.pem", "key_file": "server.key"}"#, #"tls.cert_file: "reversed.pem" certificate 2 did not issue certificate 1"#),
            (#"{"cert_file": "server.pem", "key_file": "server.key", "min_version": "1.1"}"#, #"tls.min_version: "1.1" is not "1.2" or "1.3""#),
            (#"{"cert_file": "server.pem", "key_file": "server.key", "ciphers": "ALL"}"#, "tls.ciphers: unknown field"),
            (#"{"key_file": "server.key"}"#, "tls.cert_file: is required"),
            (#"{"cert_file": "server.pem"}"#, "tls.key_file: is required"),
            (#""on""#, "tls: expected an object, got a string"),
        ])
    func listenerTLSProblems(_ tls: String, _ expected: String) {
        let found = self.issues(#""tls": \#(tls)"#)
        #expect(found.contains { $0.hasPrefix(expected) }, "expected \(expected)\nfound:\n\(found.joined(separator: "\n"))")
    }

    @Test("https upstreams trust their route's upstream_ca_file, else the top-level one, else the system store")
    func upstreamCAFiles() throws {
        let config = try self.load(
            #""upstream_ca_file": "ca.pem""#,
            routes: """
                {"path_prefix": "/a", "upstream": "https://a.internal/v1", "upstream_ca_file": "/etc/authgate/other-ca.pem"},
                {"path_prefix": "/b", "upstream": "https://b.internal:8443"},
                {"path_prefix": "/c", "upstream": "http://c.internal:8080/v2", "strip_prefix": true}
                """)
        let routes = Dictionary(uniqueKeysWithValues: config.routes.map { ($0.pathPrefix, $0) })
        #expect(routes["/a"]?.upstream == Upstream(host: "a.internal", port: 443, tls: true, basePath: "/v1", caFile: "/etc/authgate/other-ca.pem"))
        #expect(routes["/b"]?.upstream == Upstream(host: "b.internal", port: 8443, tls: true, caFile: "/etc/authgate/ca.pem"))
        #expect(routes["/c"]?.upstream == Upstream(host: "c.internal", port: 8080, basePath: "/v2"))
        #expect(routes["/c"]?.stripPrefix == true)
        #expect(routes["/a"]?.stripPrefix == false)

        let system = try self.load("", routes: #"{"path_prefix": "/", "upstream": "https://api.example.com"}"#)
        #expect(system.routes[0].upstream.endpoint.caFile == nil)
    }

    @Test("upstream_ca_file, upstream URL and strip_prefix problems are reported by path")
    func upstreamProblems() {
        let found = self.issues(
            #""upstream_ca_file": "empty.pem""#,
            routes: """
                {"path_prefix": "/a", "upstream": "http://a.internal", "upstream_ca_file": "ca.pem"},
                {"path_prefix": "/b", "upstream": "https://b.internal", "upstream_ca_file": "missing.pem"},
                {"path_prefix": "/c", "upstream": "https://c.internal/v2?x=1"},
                {"path_prefix": "/d", "upstream": "https://d.internal/v2/../v3"},
                {"path_prefix": "/e", "upstream": "http://e.internal", "strip_prefix": "yes"}
                """)
        let expected = [
            #"upstream_ca_file: "empty.pem" holds no PEM certificate"#,
            "routes[0].upstream_ca_file: has no effect on an http upstream",
            #"routes[1].upstream_ca_file: cannot read "/etc/authgate/missing.pem""#,
            #"routes[2].upstream: "https://c.internal/v2?x=1" has a query or fragment"#,
            #"routes[3].upstream: "https://d.internal/v2/../v3" has a base path that is not normalised (did you mean "/v3"?)"#,
            "routes[4].strip_prefix: expected true or false, got a string",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "missing: \(prefix)\nfound:\n\(found.joined(separator: "\n"))")
        }
        let unused = self.issues(#""upstream_ca_file": "ca.pem""#)
        #expect(unused == ["upstream_ca_file: has no effect: no route has an https upstream"])
    }

    @Test("A CA file must hold certificates that can be read", arguments: ["server.key", "garbled.pem"])
    func unreadableCAFile(_ file: String) {
        let expected = file == "server.key" ? "holds no PEM certificate" : "holds a PEM certificate that cannot be read"
        let jwks = self.issues(
            document: Self.document(
                "", routes: Self.plainRoute,
                provider: #"{"name": "r", "jwks_url": "https://idp/jwks", "jwks_ca_file": "\#(file)"}"#))
        #expect(jwks.contains { $0.hasPrefix(#"providers[0].jwks_ca_file: "\#(file)" \#(expected)"#) }, "\(jwks)")
        let upstream = self.issues(
            "", routes: #"{"path_prefix": "/", "upstream": "https://svc", "upstream_ca_file": "\#(file)"}"#)
        #expect(upstream.contains { $0.hasPrefix(#"routes[0].upstream_ca_file: "\#(file)" \#(expected)"#) }, "\(upstream)")
    }
}
