import Testing
@testable import Gateway

@Suite("Strict base64url")
struct Base64URLTests {
    @Test("RFC 4648 test vectors, without padding, round-trip")
    func vectors() {
        let cases: [(String, String)] = [
            ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in cases {
            #expect(Base64URL.encode(plain.utf8) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test("Uses the URL alphabet: - and _ instead of + and /")
    func urlAlphabet() {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
    }

    @Test(
        "Rejects padding, the standard alphabet, whitespace, bad lengths and non-canonical tails",
        arguments: ["Zg==", "Zm8=", "+_8", "/_8", "Zm9 v", "Zm9v\n", "Z", "Zh", "Zm9", "Zm9vY", "é"])
    func rejects(_ text: String) {
        // "Zh" decodes to the same byte as "Zg" with non-zero leftover bits: not canonical.
        #expect(Base64URL.decode(text) == nil)
    }
}
