import Crypto
import Testing
import _CryptoExtras

@testable import Gateway

@Suite("Token verification: structure, keys and claims")
struct TokenVerifierTests {
    let now = TestSupport.now

    func verifier(_ providers: [Provider]) -> TokenVerifier { TokenVerifier(providers: providers) }

    func standard() throws -> TokenVerifier {
        self.verifier([TestSupport.provider(keys: [try TestSupport.hsKey()])])
    }

    func failure(_ result: Result<VerifiedToken, AuthFailure>) -> AuthFailure? {
        if case .failure(let failure) = result { return failure }
        return nil
    }

    @Test("A valid token passes and yields its claims")
    func valid() throws {
        let token = try TestSupport.hsToken(TestSupport.claims())
        let verified = try self.standard().verify(token, now: self.now).get()
        #expect(verified.claims["sub"] == .string("alice"))
        #expect(verified.providerName == "main")
        #expect(verified.expiresAt == 1_700_003_600)
    }

    @Test("exp is required, numeric, and honoured with the skew")
    func expiry() throws {
        let v = try self.standard()
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims(dropping: ["exp"])), now: self.now)) == .missingExp)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("exp", .string("1700003600"))])), now: self.now)) == .invalidClaim("exp"))
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("exp", .null)])), now: self.now)) == .invalidClaim("exp"))
        let exp = TestSupport.claims([("exp", .number("1700000000"))])
        // Expired at exactly exp + skew; still valid one second before.
        #expect(self.failure(v.verify(try TestSupport.hsToken(exp), now: self.now + 30)) == .expired)
        #expect((try? v.verify(try TestSupport.hsToken(exp), now: self.now + 29).get()) != nil)
    }

    @Test("nbf and iat are checked with the skew, and must be numbers")
    func notBeforeAndIssuedAt() throws {
        let v = try self.standard()
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("nbf", .number("1700000031"))])), now: self.now)) == .notYetValid)
        #expect((try? v.verify(try TestSupport.hsToken(TestSupport.claims([("nbf", .number("1700000030"))])), now: self.now).get()) != nil)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("iat", .number("1700000031"))])), now: self.now)) == .issuedInFuture)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("nbf", .string("x"))])), now: self.now)) == .invalidClaim("nbf"))
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("iat", .bool(true))])), now: self.now)) == .invalidClaim("iat"))
    }

    @Test("aud may be a string or an array; one configured audience must match")
    func audience() throws {
        let v = try self.standard()
        #expect((try? v.verify(try TestSupport.hsToken(TestSupport.claims([("aud", .array([.string("x"), .string("orders")]))])), now: self.now).get()) != nil)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("aud", .array([.string("x")]))])), now: self.now)) == .wrongAudience)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("aud", .array([]))])), now: self.now)) == .wrongAudience)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims(dropping: ["aud"])), now: self.now)) == .wrongAudience)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("aud", .number("1"))])), now: self.now)) == .invalidClaim("aud"))
        // Without configured audiences, aud is not checked.
        let open = self.verifier([TestSupport.provider(audiences: [], keys: [try TestSupport.hsKey()])])
        #expect((try? open.verify(try TestSupport.hsToken(TestSupport.claims([("aud", .string("anything"))])), now: self.now).get()) != nil)
    }

    @Test("Issuer selects the provider; a token is tried only against matching providers")
    func issuerSelectsProvider() throws {
        let a = TestSupport.provider(name: "a", issuer: "https://a", audiences: [], keys: [try TestSupport.hsKey(kid: "k")])
        let b = TestSupport.provider(
            name: "b", issuer: "https://b", audiences: [],
            keys: [try TestSupport.hsKey(kid: "k", secret: "another-secret-of-at-least-32-bytes!")])
        let v = self.verifier([a, b])
        let forB = try TestSupport.hsToken(
            TestSupport.claims([("iss", .string("https://b"))]), kid: "k", secret: "another-secret-of-at-least-32-bytes!")
        #expect(try v.verify(forB, now: self.now).get().providerName == "b")
        // The same token claiming issuer a is checked against a's key only: bad signature.
        let forged = try TestSupport.hsToken(
            TestSupport.claims([("iss", .string("https://a"))]), kid: "k", secret: "another-secret-of-at-least-32-bytes!")
        #expect(self.failure(v.verify(forged, now: self.now)) == .badSignature)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims([("iss", .string("https://c"))]), kid: "k"), now: self.now)) == .wrongIssuer)
        #expect(self.failure(v.verify(try TestSupport.hsToken(TestSupport.claims(dropping: ["iss"]), kid: "k"), now: self.now)) == .wrongIssuer)
        // Route-level provider restriction.
        #expect(self.failure(v.verify(forB, providerIndices: [0], now: self.now)) == .wrongIssuer)
    }

    @Test("Without kid, the key is chosen among the provider's keys of the token's algorithm")
    func noKid() throws {
        let other = try VerificationKey.hmac(kid: "other", algorithm: .hs256, secret: Array("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz".utf8), source: "t")
        let v = self.verifier([TestSupport.provider(keys: [other, try TestSupport.hsKey()])])
        #expect((try? v.verify(try TestSupport.hsToken(TestSupport.claims(), kid: nil), now: self.now).get()) != nil)
        let wrong = try TestSupport.hsToken(TestSupport.claims(), kid: nil, secret: "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy")
        #expect(self.failure(v.verify(wrong, now: self.now)) == .badSignature)
    }

    @Test("The algorithm comes from the key: RS256 keys never verify HS256 tokens (key confusion)")
    func algorithmConfusion() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let pem = rsa.publicKey.pemRepresentation
        let key = try VerificationKey.publicKey(kid: "rs", algorithm: .rs256, pem: pem, source: "t")
        let v = self.verifier([TestSupport.provider(keys: [key])])
        // HS256 signed with the public key PEM as the secret.
        let confused = try TestSupport.hsToken(TestSupport.claims(), kid: "rs", secret: pem)
        #expect(self.failure(v.verify(confused, now: self.now)) == .algorithmMismatch)
        let noKid = try TestSupport.hsToken(TestSupport.claims(), kid: nil, secret: pem)
        #expect(self.failure(v.verify(noKid, now: self.now)) == .unknownKey)
        // And the genuine RS256 token passes.
        let good = try TokenSigner(algorithm: .rs256, key: .rsa(rsa), kid: "rs").sign(claims: TestSupport.claims())
        #expect((try? v.verify(good, now: self.now).get()) != nil)
        // PS256 with an RS256-bound key is refused too.
        let pss = try TokenSigner(algorithm: .ps256, key: .rsa(rsa), kid: "rs").sign(claims: TestSupport.claims())
        #expect(self.failure(v.verify(pss, now: self.now)) == .algorithmMismatch)
    }

    @Test("alg none in any spelling, unknown alg, crit and non-string kid are refused")
    func headerChecks() throws {
        let v = try self.standard()
        let payload = TestSupport.segment(JSONValue.object(TestSupport.claims()).compactText)
        for alg in ["none", "None", "NONE", "nOnE", "HS1024", ""] {
            let token = TestSupport.segment(#"{"alg":"\#(alg)","kid":"hs-1"}"#) + "." + payload + "."
            #expect(self.failure(v.verify(token, now: self.now)) == .unsupportedAlgorithm)
        }
        let noAlg = TestSupport.segment(#"{"kid":"hs-1"}"#) + "." + payload + ".abc"
        #expect(self.failure(v.verify(noAlg, now: self.now)) == .malformed("header has no alg"))
        let duplicate = TestSupport.segment(#"{"alg":"HS256","alg":"none"}"#) + "." + payload + ".abc"
        #expect(self.failure(v.verify(duplicate, now: self.now))?.code == "malformed")
    }

    @Test("Embedded jwk/jku/x5u/x5c headers are never used as keys")
    func embeddedKeysIgnored() throws {
        let attacker = P256.Signing.PrivateKey()
        let raw = attacker.publicKey.rawRepresentation
        let jwk = #"{"kty":"EC","crv":"P-256","x":"\#(Base64URL.encode(raw.prefix(32)))","y":"\#(Base64URL.encode(raw.suffix(32)))"}"#
        let header = TestSupport.segment(#"{"alg":"ES256","jwk":\#(jwk),"jku":"http://evil/jwks","x5u":"http://evil/c"}"#)
        let input = header + "." + TestSupport.segment(JSONValue.object(TestSupport.claims()).compactText)
        let signature = try attacker.signature(for: Array(input.utf8)).rawRepresentation
        let token = input + "." + Base64URL.encode(signature)
        #expect(self.failure(try self.standard().verify(token, now: self.now)) == .unknownKey)
    }

    @Test("Signature length is checked per algorithm; truncated HMACs fail")
    func truncatedSignature() throws {
        let token = try TestSupport.hsToken(TestSupport.claims())
        let dot = token.lastIndex(of: ".")!
        let mac = try #require(Base64URL.decode(token[token.index(after: dot)...]))
        let truncated = String(token[...dot]) + Base64URL.encode(mac.prefix(16))
        #expect(self.failure(try self.standard().verify(truncated, now: self.now)) == .badSignature)
        let empty = String(token[..<(token.lastIndex(of: ".")!)]) + "."
        #expect(self.failure(try self.standard().verify(empty, now: self.now)) == .badSignature)
    }

    @Test("Every supported algorithm round-trips through our signer and verifier")
    func allAlgorithms() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let p256 = P256.Signing.PrivateKey(), p384 = P384.Signing.PrivateKey(), p521 = P521.Signing.PrivateKey()
        let ed = Curve25519.Signing.PrivateKey()
        let secret = SymmetricKey(data: [UInt8](repeating: 7, count: 64))
        let cases: [(JWSAlgorithm, TokenSigner.SigningKey, VerificationKey.Material)] = [
            (.hs256, .hmac(secret), .hmac(secret)), (.hs384, .hmac(secret), .hmac(secret)),
            (.hs512, .hmac(secret), .hmac(secret)),
            (.rs256, .rsa(rsa), .rsa(rsa.publicKey)), (.rs384, .rsa(rsa), .rsa(rsa.publicKey)),
            (.rs512, .rsa(rsa), .rsa(rsa.publicKey)), (.ps256, .rsa(rsa), .rsa(rsa.publicKey)),
            (.ps384, .rsa(rsa), .rsa(rsa.publicKey)), (.ps512, .rsa(rsa), .rsa(rsa.publicKey)),
            (.es256, .p256(p256), .p256(p256.publicKey)), (.es384, .p384(p384), .p384(p384.publicKey)),
            (.es512, .p521(p521), .p521(p521.publicKey)), (.edDSA, .ed25519(ed), .ed25519(ed.publicKey)),
        ]
        for (algorithm, signing, material) in cases {
            let key = VerificationKey(kid: "k", algorithms: [algorithm], material: material, source: "t")
            let v = self.verifier([TestSupport.provider(keys: [key])])
            let token = try TokenSigner(algorithm: algorithm, key: signing, kid: "k").sign(claims: TestSupport.claims())
            #expect((try? v.verify(token, now: self.now).get()) != nil, "\(algorithm)")
            var tampered = Array(token.utf8)
            let index = token.utf8.count - 5
            tampered[index] = tampered[index] == UInt8(ascii: "A") ? UInt8(ascii: "Q") : UInt8(ascii: "A")
            #expect(self.failure(v.verify(String(decoding: tampered, as: UTF8.self), now: self.now)) != nil, "\(algorithm) tampered")
        }
    }
}
