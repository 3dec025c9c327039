import Testing
@testable import Gateway

@Suite("Strict JSON parser")
struct JSONParserTests {
    @Test("Parses every value kind and keeps member order and number text")
    func parsesValues() throws {
        let value = try JSONParser.parse(#"{"b": [1, -2.5e3, true, false, null], "a": "x\u00e9\n", "c": {}}"#)
        let object = try #require(value.objectValue)
        #expect(object.names == ["b", "a", "c"])
        #expect(object["b"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        #expect(object["a"] == .string("xé\n"))
        #expect(object["c"] == .object(JSONObject()))
    }

    @Test(
        "Rejects what RFC 8259 and RFC 7515 say to reject",
        arguments: [
            #"{"a":1,"a":2}"#,  // duplicate member (RFC 7515 §4)
            #"{"a":1} x"#,  // trailing data
            #"{"a":01}"#,  // leading zero
            #"{"a":1.}"#,
            #"{"a":.5}"#,
            #"{'a':1}"#,
            #"{"a":"\ud800"}"#,  // lone surrogate
            #"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",  // raw control character
            #"[1,]"#,
            #"{"a":1,}"#,
            "",
            "nul",
            #"{"a":NaN}"#,
        ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("Rejects invalid UTF-8 inside strings")
    func rejectsInvalidUTF8() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test("Bounds nesting depth instead of recursing without limit")
    func boundsDepth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }

    @Test("Decodes surrogate pairs and escapes")
    func decodesEscapes() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00 \"q\" \/ \\""#) == .string("😀 \"q\" / \\"))
    }

    @Test("Compact text round-trips and escapes control characters")
    func compactText() throws {
        let value = try JSONParser.parse(#"{ "id" : 7, "tags" : [ "a", "b\"c" ], "n": null, "ctl": "\u0001" }"#)
        #expect(value.compactText == #"{"id":7,"tags":["a","b\"c"],"n":null,"ctl":"\u0001"}"#)
        #expect(try JSONParser.parse(value.compactText) == value)
    }
}
