import Testing
@testable import Gateway

/// Tokens minted by libraries no one here wrote (PyJWT, joserfc) and the RFC 7515 examples.
/// Regenerate with `python3 scripts/gen_jwt_fixtures.py`.
@Suite("Independent fixtures")
struct FixtureTokenTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let token: String
        let expect: String
        let reason: String?
        let sub: String?
        var testDescription: String { self.name }
    }

    static let document: JSONValue = (try? TestSupport.fixture("jwt_fixtures.json")) ?? .null

    static let cases: [Case] = (document.objectValue?["cases"]?.arrayValue ?? []).compactMap { entry in
        guard let object = entry.objectValue, let name = object["name"]?.stringValue,
            let token = object["token"]?.stringValue, let expect = object["expect"]?.stringValue
        else { return nil }
        return Case(
            name: name, token: token, expect: expect, reason: object["reason"]?.stringValue,
            sub: object["sub"]?.stringValue)
    }

    static func verifier() throws -> TokenVerifier {
        let root = try #require(document.objectValue)
        var keys: [VerificationKey] = []
        for entry in try #require(root["keys"]?.arrayValue) {
            let key = try #require(entry.objectValue)
            let kid = try #require(key["kid"]?.stringValue)
            let algName = try #require(key["alg"]?.stringValue)
            let alg = try #require(JWSAlgorithm(rawValue: algName))
            if let secret = key["secret_base64url"]?.stringValue {
                let bytes = try #require(Base64URL.decode(secret))
                keys.append(try VerificationKey.hmac(kid: kid, algorithm: alg, secret: bytes, source: kid))
            } else {
                let pem = try #require(key["public_key_pem"]?.stringValue)
                keys.append(try VerificationKey.publicKey(kid: kid, algorithm: alg, pem: pem, source: kid))
            }
        }
        let jwksDocument = try #require(root["jwks"])
        let jwks = try JWK.parseSet(Array(jwksDocument.compactText.utf8), source: "jwks")
        keys.append(contentsOf: jwks.keys)
        let provider = try #require(root["provider"]?.objectValue)
        return TokenVerifier(providers: [
            Provider(
                name: "fixtures", issuer: provider["issuer"]?.stringValue,
                audiences: provider["audiences"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                clockSkewSeconds: provider["clock_skew_seconds"]?.doubleValue ?? 30, keys: keys)
        ])
    }

    @Test("The fixture file loaded with cases of both outcomes")
    func fixturesLoaded() {
        #expect(Self.cases.count >= 60)
        #expect(Self.cases.contains { $0.expect == "valid" })
        #expect(Self.cases.contains { $0.expect == "invalid" })
    }

    @Test("Each fixture token is accepted or refused for the stated reason", arguments: cases)
    func verify(_ fixture: Case) throws {
        let now = try #require(Self.document.objectValue?["now"]?.doubleValue)
        let result = try Self.verifier().verify(fixture.token, now: now)
        switch (fixture.expect, result) {
        case ("valid", .success(let verified)):
            #expect(verified.claims["sub"]?.stringValue == fixture.sub)
        case ("invalid", .failure(let failure)):
            #expect(failure.code == fixture.reason)
        default:
            Issue.record("\(fixture.name): expected \(fixture.expect) \(fixture.reason ?? ""), got \(result)")
        }
    }

    @Test("The JWKS loads usable keys and skips enc keys, encrypt-only key_ops and unknown kty, with reasons")
    func jwksSkips() throws {
        let root = try #require(Self.document.objectValue)
        let jwksDocument = try #require(root["jwks"])
        let set = try JWK.parseSet(Array(jwksDocument.compactText.utf8), source: "jwks")
        #expect(set.keys.map(\.kid) == ["rs256-jwk", "es256-jwk", "ed-jwk", "es384-jwk", "oct-jwk"])
        #expect(set.keys[0].algorithms == [.rs256])  // a JWK's alg pins it
        #expect(set.keys[1].algorithms == [.es256])  // without alg: the algorithms of its curve
        #expect(set.keys[4].algorithms == [.hs256])  // a 32-byte oct key: too short for HS384/512
        #expect(set.skipped.count == 3)
        #expect(set.skipped.contains { $0.contains("enc-1") && $0.contains("use is") })
        #expect(set.skipped.contains { $0.contains("weird") && $0.contains("unsupported kty") })
        #expect(set.skipped.contains { $0.contains("ops-enc") && $0.contains("key_ops") })
    }

    @Test("Keys under 2048 bits are refused at load time")
    func weakKeys() throws {
        let weak = try #require(Self.document.objectValue?["weak_keys"]?.arrayValue)
        #expect(!weak.isEmpty)
        for entry in weak {
            let pem = try #require(entry.objectValue?["public_key_pem"]?.stringValue)
            #expect(throws: KeyError.self) { try VerificationKey.publicKey(kid: "weak", algorithm: .rs256, pem: pem, source: "t") }
        }
    }

    struct Vector: CustomTestStringConvertible, Sendable {
        let name: String
        let entry: JSONObject
        var testDescription: String { self.name }
    }

    static let vectors: [Vector] = ["rfc7515", "rfc8037", "rfc7520"].flatMap { group in
        (document.objectValue?[group]?.objectValue?.members ?? []).compactMap { member in
            member.value.objectValue.map { Vector(name: "\(group) \(member.name)", entry: $0) }
        }
    }

    @Test("RFC 7515 A.1–A.4, RFC 8037 A.4 and RFC 7520 §4 signatures verify; a flipped bit does not", arguments: vectors)
    func rfcSignature(_ vector: Vector) throws {
        let jwk = try #require(vector.entry["jwk"]?.objectValue)
        let algName = try #require(vector.entry["alg"]?.stringValue)
        let algorithm = try #require(JWSAlgorithm(rawValue: algName))
        let key = try #require(try JWK.parseKey(jwk, source: vector.name))
        #expect(key.accepts(algorithm))
        let compact = try #require(vector.entry["compact"]?.stringValue)
        let dot = try #require(compact.lastIndex(of: "."))
        let signingInput = Array(compact.utf8[..<dot.samePosition(in: compact.utf8)!])
        var signature = try #require(Base64URL.decode(compact[compact.index(after: dot)...]))
        let valid = signingInput.withUnsafeBytes {
            SignatureVerifier.isValid(signature: signature, signingInput: $0, algorithm: algorithm, key: key.material)
        }
        #expect(valid)
        signature[signature.count / 2] ^= 0x01
        let tampered = signingInput.withUnsafeBytes {
            SignatureVerifier.isValid(signature: signature, signingInput: $0, algorithm: algorithm, key: key.material)
        }
        #expect(!tampered)
        // Examples with a JSON payload and exp also pass the full verifier before their exp.
        if vector.entry["payload_is_json"] == .bool(true), vector.entry["has_exp"] == .bool(true) {
            let at = try #require(vector.entry["verify_at"]?.doubleValue)
            let bound = VerificationKey(kid: nil, algorithms: [algorithm], material: key.material, source: vector.name)
            let verifier = TokenVerifier(providers: [Provider(name: "rfc", issuer: nil, audiences: [], clockSkewSeconds: 0, keys: [bound])])
            #expect((try? verifier.verify(compact, now: at).get()) != nil)
        }
    }

    @Test("RFC 7515 A.1 (HS256) and A.2 (RS256) examples verify at a time before their exp")
    func rfc7515() throws {
        let examples = try #require(Self.document.objectValue?["rfc7515"]?.objectValue)
        for name in ["a1", "a2"] {
            let example = try #require(examples[name]?.objectValue)
            let jwk = try #require(example["jwk"]?.objectValue)
            let parsed = try #require(try JWK.parseKey(jwk, source: name))
            let algName = try #require(example["alg"]?.stringValue)
            let algorithm = try #require(JWSAlgorithm(rawValue: algName))
            let key = VerificationKey(kid: nil, algorithms: [algorithm], material: parsed.material, source: name)
            let verifier = TokenVerifier(providers: [Provider(name: name, issuer: nil, audiences: [], clockSkewSeconds: 0, keys: [key])])
            let token = try #require(example["compact"]?.stringValue)
            let before = try #require(example["verify_at"]?.doubleValue)
            let verified = try verifier.verify(token, now: before).get()
            #expect(verified.claims["iss"] == .string("joe"))
            #expect(verified.claims["http://example.com/is_root"] == .bool(true))
            // The same token after its exp (1300819380) is refused as expired.
            #expect(throws: AuthFailure.expired) { try verifier.verify(token, now: 1_300_819_380).get() }
            // A flipped bit in the signature is refused.
            var bytes = Array(token.utf8)
            bytes[bytes.count - 2] = bytes[bytes.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(throws: AuthFailure.badSignature) {
                try verifier.verify(String(decoding: bytes, as: UTF8.self), now: before).get()
            }
        }
    }
}
