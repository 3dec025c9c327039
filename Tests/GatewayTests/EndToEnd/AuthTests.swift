import Crypto
import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 2–4: token extraction, verification, policy.
    @Suite("Auth")
    struct Auth {
        @Test("no token: 401 with a bare Bearer challenge, upstream untouched")
        func missingToken() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/orders"))
                #expect(response.status == 401)
                #expect(response.values("WWW-Authenticate") == [#"Bearer realm="authgate""#])
                #expect(env.upstreamRequests == 0)
            }
        }

        enum BadToken: String, CaseIterable, CustomTestStringConvertible, Sendable {
            case badSignature, expired, algNone, algNoneUppercase, wrongAudience, wrongIssuer, unknownKid
            case hsWithRSAPublicKeyAsSecret, hsWithRSAPublicKeyNoKid, garbage, garbageCharacters, missingExp
            case expAsString, notYetValid

            var testDescription: String { self.rawValue }

            func token() throws -> String {
                switch self {
                case .badSignature:
                    return try Tokens.hs256(Tokens.claims(), secret: "a-different-secret-of-sufficient-length-42")
                case .expired:
                    return try Tokens.hs256(Tokens.claims(exp: Tokens.number(Tokens.now - 3600)))
                case .algNone:
                    return Tokens.raw(header: #"{"alg":"none","typ":"JWT","kid":"hs-1"}"#, payload: Tokens.claims())
                case .algNoneUppercase:
                    return Tokens.raw(header: #"{"alg":"NONE","typ":"JWT"}"#, payload: Tokens.claims())
                case .wrongAudience:
                    return try Tokens.hs256(Tokens.claims(aud: .string("billing")))
                case .wrongIssuer:
                    return try Tokens.hs256(Tokens.claims(iss: "https://evil.test"))
                case .unknownKid:
                    return try Tokens.hs256(Tokens.claims(), kid: "hs-9")
                case .hsWithRSAPublicKeyAsSecret:
                    return try Tokens.hs256(Tokens.claims(), kid: "rs-1", secret: Tokens.rsaPublicPEM)
                case .hsWithRSAPublicKeyNoKid:
                    return try Tokens.hs256(Tokens.claims(), kid: nil, secret: Tokens.rsaPublicPEM)
                case .garbage:
                    return "not-a-jwt-at-all"
                case .garbageCharacters:
                    return "e30.e30.%%%"
                case .missingExp:
                    return try Tokens.hs256(Tokens.claims(exp: nil))
                case .expAsString:
                    return try Tokens.hs256(Tokens.claims(exp: .string(String(Tokens.now + 3600))))
                case .notYetValid:
                    return try Tokens.hs256(Tokens.claims(extra: [("nbf", Tokens.number(Tokens.now + 3600))]))
                }
            }
        }

        @Test("invalid token: 401 invalid_token, JSON body, token not echoed, upstream untouched",
              arguments: BadToken.allCases)
        func invalidToken(_ bad: BadToken) async throws {
            let token = try bad.token()
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(response.status == 401, "\(response)")
                let challenge = try #require(response.header("WWW-Authenticate"))
                #expect(challenge.hasPrefix(#"Bearer realm="authgate""#))
                #expect(challenge.contains(#"error="invalid_token""#))
                #expect(challenge.contains("error_description="))
                let body = try response.json()
                #expect(body["error"]?.stringValue == "invalid_token")
                let description = try #require(body["error_description"]?.stringValue)
                #expect(!description.isEmpty)
                for part in token.split(separator: ".") where part.count >= 6 {
                    #expect(!description.contains(part), "description echoes the token")
                    #expect(!challenge.contains(part), "challenge echoes the token")
                }
                #expect(!response.text.contains(token))
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("valid HS256 and RS256 tokens pass")
        func validTokens() async throws {
            let hs = try Tokens.valid(sub: "alice")
            let rs = try Tokens.rs256(Tokens.claims(sub: "robert"))
            try await withGateway(config: { standardConfig($0) }) { env in
                let first = try await env.send(httpRequest("GET", "/orders/1", headers: [bearer(hs)]))
                #expect(first.status == 200, "\(first)")
                #expect(try first.echo().values("x-auth-subject") == ["alice"])
                let second = try await env.send(httpRequest("GET", "/orders/2", headers: [bearer(rs)]))
                #expect(second.status == 200, "\(second)")
                #expect(try second.echo().values("x-auth-subject") == ["robert"])
                #expect(env.upstreamRequests == 2)
                // On one connection (one event loop, one cache), the same token again comes from
                // the verified-token cache, with the same identity.
                let before = await env.server.tokenCacheStats()
                let client = try await env.connect()
                for _ in 0..<2 {
                    try await client.send(httpRequest("GET", "/orders/3", headers: [bearer(hs)]))
                    #expect(try await client.readResponse().echo().values("x-auth-subject") == ["alice"])
                }
                let after = await env.server.tokenCacheStats()
                #expect(after.hits - before.hits >= 1)
            }
        }

        @Test("token from the access_token cookie among others, quoted value")
        func cookieToken() async throws {
            let token = try Tokens.valid(sub: "cookie-user")
            try await withGateway(config: { standardConfig($0) }) { env in
                let plain = try await env.send(
                    httpRequest("GET", "/orders", headers: [("Cookie", "theme=dark; access_token=\(token); lang=en")]))
                #expect(plain.status == 200, "\(plain)")
                #expect(try plain.echo().values("x-auth-subject") == ["cookie-user"])

                let quoted = try await env.send(
                    httpRequest(
                        "GET", "/orders",
                        headers: [("Cookie", "theme=dark"), ("Cookie", "lang=en;access_token=\"\(token)\"; x=1")]))
                #expect(quoted.status == 200, "\(quoted)")
                #expect(try quoted.echo().values("x-auth-subject") == ["cookie-user"])

                let wrongName = try await env.send(
                    httpRequest("GET", "/orders", headers: [("Cookie", "access_token_old=\(token); Access_Token=\(token)")]))
                #expect(wrongName.status == 401)
                #expect(wrongName.values("WWW-Authenticate") == [#"Bearer realm="authgate""#])
                #expect(env.upstreamRequests == 2)
            }
        }

        @Test("the scheme is case-insensitive", arguments: ["bearer", "BEARER", "bEaReR"])
        func schemeCaseInsensitive(_ scheme: String) async throws {
            let token = try Tokens.valid()
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest("GET", "/orders", headers: [bearer(token, scheme: scheme)]))
                #expect(response.status == 200, "\(response)")
                #expect(env.upstreamRequests == 1)
            }
        }

        @Test("two Authorization headers: 400 or 401, upstream untouched")
        func repeatedAuthorization() async throws {
            let good = try Tokens.valid(sub: "alice")
            let other = try Tokens.valid(sub: "mallory")
            try await withGateway(config: { standardConfig($0) }) { env in
                for second in [good, other, "garbage"] {
                    let response = try await env.send(
                        httpRequest("GET", "/orders", headers: [bearer(good), bearer(second)]))
                    #expect(response.status == 400 || response.status == 401, "\(response)")
                }
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("a malformed Authorization value around a cached token: 401, upstream untouched; the token alone still passes")
        func malformedAroundCachedToken() async throws {
            let token = try Tokens.valid(sub: "alice")
            try await withGateway(config: { standardConfig($0) }) { env in
                // One connection: one event loop, so one cache, which holds the token after this.
                // Each value below starts or ends with the cached token's bytes: a cache that took
                // a prefix or a key match for a hit would forward them (CONTRACT, request
                // semantics 6: malformed tokens never reach the upstream).
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(try await client.readResponse().status == 200)
                for value in ["Bearer \(token),", "Bearer \(token) \(token)", "Bearer \(token)=x", "Bearer ,\(token)"] {
                    try await client.send(httpRequest("GET", "/orders", headers: [("Authorization", value)]))
                    let response = try await client.readResponse()
                    #expect(response.status == 401, "\(value): \(response)")
                    #expect(response.header("WWW-Authenticate")?.contains(#"error="invalid_token""#) == true, "\(value)")
                }
                try await client.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(try await client.readResponse().status == 200)
                #expect(env.upstreamRequests == 2)
            }
        }

        @Test("require_claims: role string or array containing admin passes")
        func requireClaimsAllowed() async throws {
            let single = try Tokens.valid(sub: "root", [("role", .string("admin"))])
            let array = try Tokens.valid(sub: "ops", [("role", .array([.string("user"), .string("admin")]))])
            try await withGateway(config: { standardConfig($0) }) { env in
                for token in [single, array] {
                    let response = try await env.send(httpRequest("GET", "/admin/panel", headers: [bearer(token)]))
                    #expect(response.status == 200, "\(response)")
                }
                #expect(env.upstreamRequests == 2)
            }
        }

        @Test("require_claims: missing or other role is 403 insufficient_scope, upstream untouched")
        func requireClaimsDenied() async throws {
            let tokens = [
                try Tokens.valid(sub: "nobody"),
                try Tokens.valid(sub: "user", [("role", .string("user"))]),
                try Tokens.valid(sub: "users", [("role", .array([.string("user"), .string("viewer")]))]),
                try Tokens.valid(sub: "case", [("role", .string("Admin"))]),
                try Tokens.valid(sub: "nested", [("role", .array([.array([.string("admin")])]))]),
            ]
            try await withGateway(config: { standardConfig($0) }) { env in
                for token in tokens {
                    let response = try await env.send(httpRequest("GET", "/admin", headers: [bearer(token)]))
                    #expect(response.status == 403, "\(response)")
                    let challenge = response.header("WWW-Authenticate") ?? ""
                    #expect(challenge.contains(#"error="insufficient_scope""#), "\(challenge)")
                    #expect(try response.json()["error"]?.stringValue == "insufficient_scope")
                }
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("a route's providers restrict which issuers' tokens it accepts")
        func routeProviders() async throws {
            let main = try Tokens.valid(sub: "alice")
            let partner = try Tokens.partner(sub: "pat")
            try await withGateway(config: { standardConfig($0) }) { env in
                let denied = try await env.send(httpRequest("GET", "/partner/x", headers: [bearer(main)]))
                #expect(denied.status == 401, "\(denied)")
                #expect(denied.header("WWW-Authenticate")?.contains(#"error="invalid_token""#) == true)
                #expect(env.upstreamRequests == 0)

                let allowed = try await env.send(httpRequest("GET", "/partner/x", headers: [bearer(partner)]))
                #expect(allowed.status == 200, "\(allowed)")
                #expect(try allowed.echo().values("x-auth-subject") == ["pat"])

                // Routes without `providers` accept every provider.
                let anywhere = try await env.send(httpRequest("GET", "/orders", headers: [bearer(partner)]))
                #expect(anywhere.status == 200, "\(anywhere)")
                #expect(env.upstreamRequests == 2)
            }
        }

        @Test("a non-Bearer Authorization scheme falls back to the cookie, else 401")
        func otherSchemeFallsBack() async throws {
            let token = try Tokens.valid(sub: "alice")
            try await withGateway(config: { standardConfig($0) }) { env in
                let basic = try await env.send(
                    httpRequest("GET", "/orders", headers: [("Authorization", "Basic YWxpY2U6c2VjcmV0")]))
                #expect(basic.status == 401)
                #expect(env.upstreamRequests == 0)
                let withCookie = try await env.send(
                    httpRequest(
                        "GET", "/orders",
                        headers: [("Authorization", "Basic YWxpY2U6c2VjcmV0"), ("Cookie", "access_token=\(token)")]))
                #expect(withCookie.status == 200, "\(withCookie)")
            }
        }

        @Test("the token cookie twice with different values: 400 or 401, upstream untouched")
        func ambiguousCookie() async throws {
            let alice = try Tokens.valid(sub: "alice")
            let mallory = try Tokens.valid(sub: "mallory")
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(
                    httpRequest(
                        "GET", "/orders",
                        headers: [("Cookie", "access_token=\(alice)"), ("Cookie", "access_token=\(mallory)")]))
                #expect(response.status == 400 || response.status == 401, "\(response)")
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("an identity claim with control characters is refused, never forwarded")
        func controlCharactersInClaim() async throws {
            let token = try Tokens.valid(sub: "alice\r\nX-Injected: 1")
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/orders", headers: [bearer(token)]))
                #expect(response.status == 401, "\(response)")
                #expect(env.upstreamRequests == 0)
            }
        }

        @Test("an auth: none route passes without a token")
        func authNoneRoute() async throws {
            try await withGateway(config: { standardConfig($0) }) { env in
                let response = try await env.send(httpRequest("GET", "/public/info"))
                #expect(response.status == 200, "\(response)")
                #expect(env.upstreamRequests == 1)
            }
        }
    }
}
