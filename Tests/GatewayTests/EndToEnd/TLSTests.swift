import NIOCore
import NIOPosix
import NIOSSL
import Testing
import X509

@testable import Gateway

extension EndToEnd {
    /// TLS on the listener, https upstreams, and the paths upstreams receive with base paths and
    /// `strip_prefix`. Every certificate comes from a CA made in the test.
    @Suite("TLS and upstream paths")
    struct TLS {
        /// The listener's `tls` member for a chain and key written to `files`.
        static func listenerTLS(_ ca: TestCertificateAuthority, _ files: TemporaryFiles, minVersion: String? = nil) throws
            -> String
        {
            let certificate = try files.write("server.pem", try ca.serverCertificatePEM)
            let key = try files.write("server.key", ca.serverKeyPEM)
            let minimum = minVersion.map { #", "min_version": "\#($0)""# } ?? ""
            return #""tls": {"cert_file": "\#(certificate)", "key_file": "\#(key)"\#(minimum)}"#
        }

        @Test("over TLS: a valid token gets 200 with X-Forwarded-Proto https, no token 401; plain HTTP gets no answer")
        func tlsListener() async throws {
            let ca = try TestCertificateAuthority()
            let files = try TemporaryFiles()
            defer { files.remove() }
            let tls = try Self.listenerTLS(ca, files)
            let token = try Tokens.valid(sub: "alice")
            try await withGateway(config: { standardConfig($0, extra: [tls]) }) { env in
                // Verifies the gateway's certificate against the test CA and 127.0.0.1.
                let client = try await env.connect(tls: try ca.clientContext())
                try await client.send(httpRequest("GET", "/orders", headers: [bearer(token), ("X-Forwarded-Proto", "http")]))
                let ok = try await client.readResponse()
                #expect(ok.status == 200, "\(ok)")
                let echo = try ok.echo()
                #expect(echo.values("x-forwarded-proto") == ["https"])
                #expect(echo.values("x-auth-subject") == ["alice"])

                try await client.send(httpRequest("GET", "/orders"))
                let refused = try await client.readResponse()
                #expect(refused.status == 401, "\(refused)")

                // A client checking the name `localhost` (sent as SNI) is served too.
                let named = try await env.connect(tls: try ca.clientContext(), serverName: "localhost")
                try await named.send(httpRequest("GET", "/public/x"))
                #expect(try await named.readResponse().status == 200)

                let plain = try await env.connect()
                await plain.sendIgnoringErrors(httpRequest("GET", "/public/x"))
                #expect(await plain.waitForClose())
                #expect(!String(decoding: plain.unreadBytes, as: UTF8.self).contains("200"))
                #expect(env.upstreamRequests == 2)
            }
        }

        @Test("clients offering only TLS 1.0/1.1, or TLS 1.2 without ECDHE+AEAD suites, are refused; TLS 1.2 with them is served")
        func oldProtocolsRefused() async throws {
            let ca = try TestCertificateAuthority()
            let files = try TemporaryFiles()
            defer { files.remove() }
            let tls = try Self.listenerTLS(ca, files)
            try await withGateway(config: { openConfig($0, extra: [tls]) }) { env in
                let refusedClients: [(String, NIOSSLContext)] = [
                    ("TLS 1.1", try ca.clientContext(maximumVersion: .tlsv11)),
                    ("TLS 1.0", try ca.clientContext(maximumVersion: .tlsv1)),
                    ("TLS 1.2, CBC suites", try ca.clientContext(maximumVersion: .tlsv12, cipherSuites: "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")),
                ]
                for (name, context) in refusedClients {
                    let client = try await env.connect(tls: context)
                    await client.sendIgnoringErrors(httpRequest("GET", "/x"))
                    #expect(await client.waitForClose(), "\(name): the connection stayed open")
                    #expect(client.unreadBytes.isEmpty, "\(name): got \(String(decoding: client.unreadBytes, as: UTF8.self))")
                }
                #expect(env.upstreamRequests == 0)

                let tls12 = try await env.connect(tls: try ca.clientContext(maximumVersion: .tlsv12))
                try await tls12.send(httpRequest("GET", "/x"))
                #expect(try await tls12.readResponse().status == 200)
            }
        }

        @Test("min_version 1.3 refuses TLS 1.2 clients")
        func minimumTLS13() async throws {
            let ca = try TestCertificateAuthority()
            let files = try TemporaryFiles()
            defer { files.remove() }
            let tls = try Self.listenerTLS(ca, files, minVersion: "1.3")
            try await withGateway(config: { openConfig($0, extra: [tls]) }) { env in
                let tls12 = try await env.connect(tls: try ca.clientContext(maximumVersion: .tlsv12))
                await tls12.sendIgnoringErrors(httpRequest("GET", "/x"))
                #expect(await tls12.waitForClose())
                #expect(tls12.unreadBytes.isEmpty)

                let tls13 = try await env.connect(tls: try ca.clientContext(minimumVersion: .tlsv13))
                try await tls13.send(httpRequest("GET", "/x"))
                #expect(try await tls13.readResponse().status == 200)
            }
        }

        @Test("a client that never completes the handshake is closed after client_idle_seconds; others are still served")
        func stalledHandshakeClosed() async throws {
            let ca = try TestCertificateAuthority()
            let files = try TemporaryFiles()
            defer { files.remove() }
            let tls = try Self.listenerTLS(ca, files)
            try await withGateway(config: { openConfig($0, extra: [tls, #""timeouts": {"client_idle_seconds": 1}"#]) }) { env in
                // Timed from before the connections exist, so a slow connect on a loaded machine
                // cannot make the gateway's idle timer look early.
                let started = ContinuousClock.now
                let silent = try await env.connect()
                // A TLS record header announcing a handshake message that never comes. (On a slow
                // machine the gateway may already have closed the connection: that is fine too.)
                let partial = try await env.connect()
                try? await partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                let closed = (await silent.waitForClose(timeout: .seconds(5)), await partial.waitForClose(timeout: .seconds(5)))
                let elapsed = ContinuousClock.now - started
                #expect(closed.0 && closed.1, "silent closed: \(closed.0), partial closed: \(closed.1)")
                #expect(elapsed >= .milliseconds(800))

                let client = try await env.connect(tls: try ca.clientContext())
                try await client.send(httpRequest("GET", "/x"))
                #expect(try await client.readResponse().status == 200)
            }
        }

        @Test("https upstream: 200 when its CA is configured, 502 with the system store, 502 for http to the same port")
        func httpsUpstream() async throws {
            let upstreamCA = try TestCertificateAuthority()
            let files = try TemporaryFiles()
            defer { files.remove() }
            let caFile = try files.write("upstream-ca.pem", try upstreamCA.caPEM)
            try await withGateway(
                upstreamTLS: try upstreamCA.serverContext(),
                config: { upstreams in
                    let u = upstreams[0]
                    return ConfigJSON.make(routes: [
                        #"{"path_prefix": "/trusted", "upstream": "\#(u.url)/base", "upstream_ca_file": "\#(caFile)", "strip_prefix": true, "auth": "none"}"#,
                        #"{"path_prefix": "/named", "upstream": "https://localhost:\#(u.port)", "upstream_ca_file": "\#(caFile)", "auth": "none"}"#,
                        #"{"path_prefix": "/untrusted", "upstream": "\#(u.url)", "auth": "none"}"#,
                        #"{"path_prefix": "/plain", "upstream": "http://127.0.0.1:\#(u.port)", "auth": "none"}"#,
                    ])
                }
            ) { env in
                // One client connection, so both requests use the same event loop's pool.
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/trusted/x?y=1"))
                let first = try await client.readResponse()
                #expect(first.status == 200, "\(first)")
                try await client.send(httpRequest("GET", "/trusted/z"))
                let second = try await client.readResponse()
                #expect(second.status == 200, "\(second)")
                #expect(env.upstream.snapshot.targets == ["/base/x?y=1", "/base/z"])
                #expect(env.upstream.snapshot.connections == 1, "the https connection was not reused")

                // SNI and the certificate's DNS name `localhost`.
                let named = try await env.send(httpRequest("GET", "/named/a"))
                #expect(named.status == 200, "\(named)")

                try await client.send(httpRequest("GET", "/untrusted/x"))
                let untrusted = try await client.readResponse()
                #expect(untrusted.status == 502, "\(untrusted)")
                // An idle https connection to this host and port is in this loop's pool, but an
                // http route must open its own (plaintext, which the TLS upstream refuses).
                try await client.send(httpRequest("GET", "/plain/x"))
                let plain = try await client.readResponse()
                #expect(plain.status == 502, "\(plain)")
                #expect(env.upstream.snapshot.heads == 3)
            }
        }

        @Test("https upstream whose certificate names another host: 502")
        func httpsUpstreamWrongName() async throws {
            let upstreamCA = try TestCertificateAuthority(serverNames: [.dnsName("upstream.test")])
            let files = try TemporaryFiles()
            defer { files.remove() }
            let caFile = try files.write("upstream-ca.pem", try upstreamCA.caPEM)
            try await withGateway(
                upstreamTLS: try upstreamCA.serverContext(),
                config: { upstreams in
                    let u = upstreams[0]
                    return ConfigJSON.make(
                        routes: [
                            #"{"path_prefix": "/ip", "upstream": "https://127.0.0.1:\#(u.port)", "auth": "none"}"#,
                            #"{"path_prefix": "/name", "upstream": "https://localhost:\#(u.port)", "auth": "none"}"#,
                        ], extra: [#""upstream_ca_file": "\#(caFile)""#])
                }
            ) { env in
                for target in ["/ip/x", "/name/x"] {
                    let response = try await env.send(httpRequest("GET", target))
                    #expect(response.status == 502, "\(target): \(response)")
                }
                #expect(env.upstream.snapshot.heads == 0)
            }
        }

        @Test("an https upstream that accepts but never completes the handshake: 504 after connect_seconds")
        func upstreamHandshakeTimeout() async throws {
            // Accepts connections and never says anything.
            let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let port = try #require(silent.localAddress?.port)
            do {
                try await withGateway(config: { _ in
                    ConfigJSON.make(
                        routes: [#"{"path_prefix": "/", "upstream": "https://127.0.0.1:\#(port)", "auth": "none"}"#],
                        extra: [#""timeouts": {"connect_seconds": 0.5, "upstream_seconds": 30}"#])
                }) { env in
                    let (response, elapsed) = try await timed { try await env.send(httpRequest("GET", "/x")) }
                    #expect(response.status == 504, "\(response)")
                    #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(5), "\(elapsed)")
                }
            } catch {
                try? await silent.close().get()
                throw error
            }
            try? await silent.close().get()
        }

        @Test("strip_prefix and base paths: the upstream sees the rewritten path and the untouched query")
        func rewrittenPaths() async throws {
            try await withGateway(config: { upstreams in
                let u = upstreams[0]
                return ConfigJSON.make(routes: [
                    #"{"path_prefix": "/api", "upstream": "\#(u.url)/v2", "strip_prefix": true, "auth": "none"}"#,
                    #"{"path_prefix": "/keep", "upstream": "\#(u.url)/base/", "auth": "none"}"#,
                    #"{"path_prefix": "/bare", "upstream": "\#(u.url)", "strip_prefix": true, "auth": "none"}"#,
                    ConfigJSON.route("/", u),
                ])
            }) { env in
                let cases: [(String, String)] = [
                    ("/api/users?x=1&next=/../admin", "/v2/users?x=1&next=/../admin"),
                    ("/api", "/v2"),
                    ("/api/", "/v2/"),
                    ("/keep/a", "/base/keep/a"),
                    ("/bare/x/../y", "/y"),
                    ("/bare", "/"),
                    ("/api/%7Eu/./v", "/v2/~u/v"),
                ]
                for (request, expected) in cases {
                    let response = try await env.send(httpRequest("GET", request))
                    #expect(response.status == 200, "\(request): \(response)")
                    #expect(try response.echo().path == String(expected.split(separator: "?")[0]), "\(request)")
                }
                #expect(env.upstream.snapshot.targets == cases.map(\.1))

                // Dot segments are resolved before routing: this leaves /api and needs a token.
                let escape = try await env.send(httpRequest("GET", "/api/%2e%2e/admin"))
                #expect(escape.status == 401, "\(escape)")
                #expect(env.upstream.snapshot.heads == cases.count)
            }
        }
    }
}
