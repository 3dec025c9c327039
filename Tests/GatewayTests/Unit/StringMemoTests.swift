import NIOCore
import Testing

@testable import Gateway

@Suite("String memo: the Host and target a connection repeats")
struct StringMemoTests {
    @Test("The memo gives the string of the bytes, and reuses the last one for the same bytes")
    func stringOfTheBytes() {
        var memo = StringMemo()
        let long = Array("/api/v1/orders/42?expand=items".utf8)
        let samples: [[UInt8]] = [
            Array("a".utf8), Array("a".utf8), Array("b".utf8), [], [], long, long, Array("/api/v1/orders/43?expand=items".utf8),
            [0x63, 0x61, 0x66, 0xC3, 0xA9], [0x63, 0x61, 0x66, 0xC3, 0xA9], [0xFF, 0x41], [0xFF, 0x41],
            Array("example.com:8443".utf8), Array("example.com:8444".utf8),
        ]
        for sample in samples {
            let made = sample.withUnsafeBytes { memo.string(for: $0) }
            #expect(made == String(decoding: sample, as: UTF8.self), "\(sample)")
        }
        // The same long bytes twice: the second is the first string itself (its storage).
        var first = long.withUnsafeBytes { memo.string(for: $0) }
        var second = long.withUnsafeBytes { memo.string(for: $0) }
        #expect(first.withUTF8 { $0.baseAddress } == second.withUTF8 { $0.baseAddress })
    }

    @Test("Requests on one connection each get their own target and Host")
    func parserTargets() throws {
        let targets = ["/a", "/a", "/b", "/api/v1/orders/42?expand=items", "/api/v1/orders/42?expand=items", "/api/v1/orders/43?expand=items", "/"]
        let hosts = ["a", "a", "b", "a", "api.example.com:8443", "api.example.com:8443", "api.example.com:8444"]
        var input = ""
        for (target, host) in zip(targets, hosts) { input += "GET \(target) HTTP/1.1\r\nHost: \(host)\r\n\r\n" }
        var parser = ClientRequestParser(maximumFieldBytes: 1024)
        var buffer = ByteBuffer(string: input)
        var heads: [ClientRequestHead] = []
        while let part = try parser.next(&buffer) {
            if case .head(let head) = part { heads.append(head) }
        }
        #expect(heads.map(\.target) == targets)
        // The planner's Host, with one memo across the requests as a connection keeps it.
        var memo = StringMemo()
        let seen = heads.map { HeadSummary($0, tokenHeader: "Authorization", hostMemo: &memo).host }
        #expect(seen == hosts)
    }
}
