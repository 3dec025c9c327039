import Testing
@testable import Gateway

@Suite("Token extraction: Authorization header and cookies")
struct TokenExtractionTests {
    let extractor = TokenExtractor(source: TokenSource())

    @Test("Bearer scheme is case-insensitive and takes exactly one token")
    func bearer() {
        #expect(self.extractor.extract(headerValues: ["Bearer abc.def.ghi"], cookieHeaders: []) == .token("abc.def.ghi"))
        #expect(self.extractor.extract(headerValues: ["bEaReR abc"], cookieHeaders: []) == .token("abc"))
        #expect(self.extractor.extract(headerValues: ["Bearer  abc"], cookieHeaders: []) == .token("abc"))
        #expect(self.extractor.extract(headerValues: ["Bearer abc def"], cookieHeaders: []) == .invalid(.malformedHeader))
        #expect(self.extractor.extract(headerValues: ["Bearer"], cookieHeaders: []) == .invalid(.malformedHeader))
        #expect(self.extractor.extract(headerValues: ["Bearer a,b"], cookieHeaders: []) == .invalid(.malformedHeader))
    }

    @Test("Blanks around the credentials are trimmed; only spaces separate scheme and token")
    func blanks() {
        #expect(self.extractor.extract(headerValues: [" \tBearer abc \t"], cookieHeaders: []) == .token("abc"))
        #expect(self.extractor.extract(headerValues: ["Bearer    abc"], cookieHeaders: []) == .token("abc"))
        // A tab is not the separator: one word, another scheme than Bearer.
        #expect(self.extractor.extract(headerValues: ["Bearer\tabc"], cookieHeaders: []) == .missing)
        #expect(self.extractor.extract(headerValues: ["Bearer \tabc"], cookieHeaders: []) == .invalid(.malformedHeader))
        #expect(self.extractor.extract(headerValues: ["  Bearer  "], cookieHeaders: []) == .invalid(.malformedHeader))
        #expect(self.extractor.extract(headerValues: [""], cookieHeaders: []) == .missing)
        #expect(self.extractor.extract(headerValues: ["Bearer ab\u{301}c"], cookieHeaders: []) == .invalid(.malformedHeader))
        #expect(self.extractor.extract(headerValues: ["Bearér abc"], cookieHeaders: []) == .missing)
        // A combining mark after the space does not hide the separator from a byte scan.
        #expect(self.extractor.extract(headerValues: ["Bearer \u{301}abc"], cookieHeaders: []) == .invalid(.malformedHeader))
    }

    @Test("token68 characters: the bit masks match RFC 7235's list for every byte")
    func token68Characters() {
        let listed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(TokenExtractor.isToken68Character(byte) == listed.contains(byte), "byte \(byte)")
        }
        #expect(TokenExtractor.isToken68("abc.DEF-_~+/09=="))
        #expect(!TokenExtractor.isToken68("abc=d"))
        #expect(!TokenExtractor.isToken68("ab c"))
        #expect(!TokenExtractor.isToken68("ab\u{e9}"))
        #expect(TokenExtractor.isToken68("abc=="))
        #expect(!TokenExtractor.isToken68("abc==x"))
        #expect(!TokenExtractor.isToken68("=a"))
        #expect(!TokenExtractor.isToken68("abc\u{7f}"))
        #expect(!TokenExtractor.isToken68(Substring(String(repeating: "a", count: 300) + "\u{0}")))
        // Every byte value alone, and between two token68 characters.
        for byte in UInt8.min...UInt8.max {
            let alone = [byte].withUnsafeBytes { TokenExtractor.isToken68(bytes: $0) }
            #expect(alone == (TokenExtractor.isToken68Character(byte) || byte == UInt8(ascii: "=")), "byte \(byte)")
            let inside = [UInt8(ascii: "a"), byte, UInt8(ascii: "b")].withUnsafeBytes {
                TokenExtractor.isToken68(bytes: $0)
            }
            #expect(inside == TokenExtractor.isToken68Character(byte), "byte \(byte) inside")
        }
    }

    @Test("More than one Authorization header is refused, never 'pick one'")
    func repeatedHeader() {
        #expect(self.extractor.extract(headerValues: ["Bearer a", "Bearer b"], cookieHeaders: []) == .invalid(.repeatedHeader))
        #expect(self.extractor.extract(headerValues: ["Bearer a", "Bearer a"], cookieHeaders: []) == .invalid(.repeatedHeader))
    }

    @Test("Another scheme is not a bearer token: the cookie is used, else no token")
    func otherScheme() {
        #expect(self.extractor.extract(headerValues: ["Basic dXNlcjpwYXNz"], cookieHeaders: []) == .missing)
        #expect(self.extractor.extract(headerValues: ["Basic dXNlcjpwYXNz"], cookieHeaders: ["access_token=t1"]) == .token("t1"))
    }

    @Test("The cookie is found among several cookies and headers, with spaces and quotes")
    func cookies() {
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["a=1; access_token=tok; b=2"]) == .token("tok"))
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["a=1", "access_token = \"tok\" "]) == .token("tok"))
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["xaccess_token=no; access_token_x=no"]) == .missing)
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["access_token="]) == .missing)
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["access_token=a", "access_token=b"]) == .invalid(.ambiguousCookie))
        #expect(self.extractor.extract(headerValues: [], cookieHeaders: ["access_token=a; access_token=a"]) == .token("a"))
    }

    @Test("The header wins over the cookie; a cookie-less configuration ignores cookies")
    func precedence() {
        #expect(self.extractor.extract(headerValues: ["Bearer h"], cookieHeaders: ["access_token=c"]) == .token("h"))
        let noCookie = TokenExtractor(source: TokenSource(cookie: nil))
        #expect(noCookie.extract(headerValues: [], cookieHeaders: ["access_token=c"]) == .missing)
    }

    @Test("A custom header and scheme are honoured")
    func customSource() {
        let custom = TokenExtractor(source: TokenSource(header: "X-Token", scheme: "JWT", cookie: nil))
        #expect(custom.extract(headerValues: ["jwt abc"], cookieHeaders: []) == .token("abc"))
        #expect(custom.extract(headerValues: ["Bearer abc"], cookieHeaders: []) == .missing)
    }
}
