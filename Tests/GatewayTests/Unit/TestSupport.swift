import Crypto
@testable import Gateway

/// Helpers shared by the unit tests (no sockets).
enum TestSupport {
    /// The directory holding this test target's sources.
    static let testsDirectory: String = {
        let file = #filePath
        let unit = FileReader.directory(of: file)
        return FileReader.directory(of: unit)
    }()

    static func fixture(_ name: String) throws -> JSONValue {
        try JSONParser.parse(try FileReader.read(testsDirectory + "/Fixtures/" + name))
    }

    static let secret = "0123456789abcdef0123456789abcdef"  // 32 bytes

    static func hsKey(kid: String? = "hs-1", secret: String = secret) throws -> VerificationKey {
        try VerificationKey.hmac(kid: kid, algorithm: .hs256, secret: Array(secret.utf8), source: "test")
    }

    static func provider(
        name: String = "main", issuer: String? = "https://issuer.test", audiences: [String] = ["orders"],
        skew: Double = 30, keys: [VerificationKey]
    ) -> Provider {
        Provider(name: name, issuer: issuer, audiences: audiences, clockSkewSeconds: skew, keys: keys)
    }

    static let now: Double = 1_700_000_000

    /// Standard claims for `now`, plus `extra` (which replaces same-named claims).
    static func claims(_ extra: [(String, JSONValue)] = [], dropping: Set<String> = []) -> JSONObject {
        var members: [(name: String, value: JSONValue)] = [
            ("iss", .string("https://issuer.test")), ("sub", .string("alice")), ("aud", .string("orders")),
            ("iat", .number("1699999990")), ("exp", .number("1700003600")),
        ]
        for (name, value) in extra {
            members.removeAll { $0.name == name }
            members.append((name, value))
        }
        members.removeAll { dropping.contains($0.name) }
        return JSONObject(members)
    }

    static func hsToken(_ claims: JSONObject, kid: String? = "hs-1", secret: String = secret) throws -> String {
        try TokenSigner(algorithm: .hs256, key: .hmac(SymmetricKey(data: Array(secret.utf8))), kid: kid)
            .sign(claims: claims)
    }

    /// A base64url JSON segment, for hand-built tokens.
    static func segment(_ json: String) -> String {
        Base64URL.encode(json.utf8)
    }
}
