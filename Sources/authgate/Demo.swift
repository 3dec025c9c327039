import ArgumentParser
import Gateway
import NIOCore
import NIOPosix

/// `authgate demo`: an echo upstream and a gateway in one process, with tokens ready to paste.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a gateway in front of a built-in echo upstream and print curl commands to try it.")

    @Option(name: .long, help: "Where the demo gateway listens.")
    var listen = "127.0.0.1:8080"

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard ListenAddress.parse(self.listen) != nil else { throw ValidationError("--listen \(self.listen) is not HOST:PORT") }
    }

    func run() async throws {
        let logger = self.runtime.makeLogger()
        let echo = try await EchoServer.bind(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton)
        guard let echoPort = echo.localAddress?.port else { throw CLIFailure("the echo upstream did not bind") }

        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in String(format2: UInt8.random(in: 0...255, using: &generator)) }.joined()
        let document = Self.configuration(echoPort: echoPort, listen: self.listen)
        let config = try ConfigLoader(environment: ["AUTHGATE_DEMO_SECRET": secret]).load(Array(document.utf8))
        let key = config.providers[0].keys[0]
        guard case .hmac(let symmetric) = key.material else { throw CLIFailure("demo key is not HMAC") }
        let signer = TokenSigner(algorithm: .hs256, key: .hmac(symmetric), kid: key.kid)
        let now = WallClock.now().rounded(.down)
        func token(_ sub: String, role: String, exp: Double) throws -> String {
            try signer.sign(claims: JSONObject([
                ("iss", .string("https://demo.authgate.local")), ("sub", .string(sub)), ("aud", .string("demo")),
                ("role", .string(role)), ("iat", .number(String(Int(now)))), ("exp", .number(String(Int(exp)))),
            ]))
        }
        let alice = try token("alice", role: "user", exp: now + 3600)
        let admin = try token("root", role: "admin", exp: now + 3600)
        let expired = try token("alice", role: "user", exp: now - 3600)

        try await runGateway(config: config, listen: nil, runtime: self.runtime, logger: logger) { address in
            let base = "http://\(address.hostAndPort)"  // the bound address: --listen may say port 0
            Output.out(
                """

                authgate demo: gateway on \(address.hostAndPort), echo upstream on 127.0.0.1:\(echoPort)
                Routes: /healthz (no auth), /admin (needs role=admin), / (any valid token).
                Tokens are HS256, signed with a secret generated for this run, valid for 1 hour.

                  ALICE=\(alice)
                  ADMIN=\(admin)
                  EXPIRED=\(expired)

                # 200: a public route
                curl -i \(base)/healthz
                # 401: no token
                curl -i \(base)/orders
                # 200: the upstream sees X-Auth-Subject: alice (the spoofed header is replaced)
                curl -i -H "Authorization: Bearer $ALICE" -H "X-Auth-Subject: mallory" \(base)/orders
                # 401: expired token
                curl -i -H "Authorization: Bearer $EXPIRED" \(base)/orders
                # 403: alice is not an admin
                curl -i -H "Authorization: Bearer $ALICE" \(base)/admin
                # 200: the admin is
                curl -i --cookie "access_token=$ADMIN" \(base)/admin/users

                Ctrl-C stops the demo.

                """)
        }
        try? await echo.close()
    }

    static func configuration(echoPort: Int, listen: String) -> String {
        """
        {
          "listen": "\(listen)",
          "admin_listen": null,
          "providers": [{
            "name": "demo",
            "issuer": "https://demo.authgate.local",
            "audiences": ["demo"],
            "keys": [{"kid": "demo-hs256", "alg": "HS256", "secret_env": "AUTHGATE_DEMO_SECRET"}]
          }],
          "identity_headers": {"sub": "X-Auth-Subject", "role": "X-Auth-Role"},
          "routes": [
            {"path_prefix": "/healthz", "upstream": "http://127.0.0.1:\(echoPort)", "auth": "none"},
            {"path_prefix": "/admin", "upstream": "http://127.0.0.1:\(echoPort)", "require_claims": {"role": ["admin"]}},
            {"path_prefix": "/", "upstream": "http://127.0.0.1:\(echoPort)"}
          ]
        }
        """
    }
}

extension String {
    /// Two lower-case hex digits.
    init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = byte < 16 ? "0" + hex : hex
    }
}
