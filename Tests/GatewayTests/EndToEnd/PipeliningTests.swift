import NIOCore
import Testing

@testable import Gateway

extension EndToEnd {
    /// HTTP/1.1 pipelining (RFC 9112 §9.3.2): requests sent back to back on one connection are
    /// answered one at a time, in order, whatever each one's fate (forwarded, refused, with a body).
    @Suite("Pipelining")
    struct Pipelining {
        @Test("Requests in one write are answered in order: forwarded, refused, with bodies, slow and fast")
        func inOrder() async throws {
            let token = try Tokens.valid(sub: "piper")
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                let batch = [
                    httpRequest("GET", "/public/__delay?ms=200"),  // slow first: the rest must wait
                    httpRequest("GET", "/orders/1", headers: [bearer(token)]),
                    httpRequest("GET", "/orders/2"),  // no token: 401 from the gateway
                    httpRequest("POST", "/public/__sink", body: "twelve bytes"),
                    httpRequest("GET", "/nowhere/../../x"),  // 400, and the connection closes
                    httpRequest("GET", "/public/never"),
                ].joined()
                try await client.send(batch)
                let slow = try await client.readResponse()
                #expect(slow.status == 200)
                #expect(try slow.echo().path == "/public/__delay")
                let first = try await client.readResponse()
                #expect(first.status == 200)
                #expect(try first.echo().path == "/orders/1")
                #expect(try first.echo().values("x-auth-subject") == ["piper"])
                #expect(try await client.readResponse().status == 401)
                let upload = try await client.readResponse()
                #expect(upload.status == 200)
                #expect(try upload.echo().bodyBytes == 12)
                let refused = try await client.readResponse()
                #expect(refused.status == 400)
                #expect(await client.waitForClose())
                #expect(!String(decoding: client.unreadBytes, as: UTF8.self).contains("HTTP/1.1"))
                #expect(env.upstream.snapshot.targets.contains("/public/never") == false)
            }
        }

        @Test("Connection: close in a pipelined request: answered, then the connection closes and later requests are not served")
        func closeInTheMiddle() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(
                    httpRequest("GET", "/a") + httpRequest("GET", "/b", headers: [("Connection", "close")])
                        + httpRequest("GET", "/c"))
                #expect(try await client.readResponse().status == 200)
                let last = try await client.readResponse()
                #expect(last.status == 200)
                #expect(last.closesConnection)
                #expect(await client.waitForClose())
                #expect(env.upstream.snapshot.targets == ["/a", "/b"])
            }
        }

        @Test("Draining: the request in flight is answered with Connection: close; the one pipelined behind it is not served")
        func drainWithPipelined() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/__delay?ms=500") + httpRequest("GET", "/next"))
                try await env.upstream.waitForHeads(1)
                let shutdown = Task { await env.shutdownGateway(drainTimeout: .seconds(5)) }
                let answered = try await client.readResponse()
                #expect(answered.status == 200)
                #expect(answered.closesConnection, "\(answered)")
                #expect(await client.waitForClose())
                await shutdown.value
                #expect(env.upstream.snapshot.targets == ["/__delay?ms=500"])
            }
        }

        @Test("A malformed request pipelined behind a good one: the good one is answered first, then 400 and close")
        func malformedBehind() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                try await client.send(httpRequest("GET", "/__delay?ms=100") + "GET /x HTTP/1.1\r\nHost: g\r\nBad Header\r\n\r\n")
                let good = try await client.readResponse()
                #expect(good.status == 200)
                let bad = try await client.readResponse()
                #expect(bad.status == 400)
                #expect(await client.waitForClose())
                #expect(env.upstream.snapshot.targets == ["/__delay?ms=100"])
            }
        }

        @Test("Randomised: 60 mixed requests pipelined in random-sized writes are answered in order, each as if alone")
        func randomised() async throws {
            var random = SystemRandomNumberGenerator()
            let valid = try Tokens.valid(sub: "rnd")
            let expired = try Tokens.hs256(Tokens.claims(exp: Tokens.number(Tokens.now - 3600)))
            var requests: [(text: String, status: Int, path: String?, bodyBytes: Int?)] = []
            for index in 0..<60 {
                switch Int.random(in: 0..<6, using: &random) {
                case 0: requests.append((httpRequest("GET", "/public/g\(index)"), 200, "/public/g\(index)", nil))
                case 1: requests.append((httpRequest("GET", "/orders/\(index)"), 401, nil, nil))
                case 2: requests.append((httpRequest("GET", "/orders/\(index)", headers: [bearer(valid)]), 200, "/orders/\(index)", nil))
                case 3: requests.append((httpRequest("GET", "/orders/\(index)", headers: [bearer(expired)]), 401, nil, nil))
                case 4: requests.append((httpRequest("GET", "/admin/\(index)", headers: [bearer(valid)]), 403, nil, nil))
                default:
                    let length = Int.random(in: 0...3000, using: &random)
                    requests.append(
                        (httpRequest("POST", "/public/p\(index)", body: String(repeating: "x", count: length)), 200, "/public/p\(index)", length))
                }
            }
            try await withGateway(config: { standardConfig($0) }) { env in
                let client = try await env.connect()
                var bytes = Array(requests.map(\.text).joined().utf8)[...]
                let writer = Task {
                    while !bytes.isEmpty {
                        let size = min(bytes.count, Int.random(in: 1...700))
                        try await client.send(Array(bytes.prefix(size)))
                        bytes = bytes.dropFirst(size)
                        if Bool.random() { try await Task.sleep(for: .milliseconds(1)) }
                    }
                }
                for (index, expected) in requests.enumerated() {
                    let response = try await client.readResponse()
                    #expect(response.status == expected.status, "request \(index): \(response)")
                    if let path = expected.path { #expect(try response.echo().path == path, "request \(index)") }
                    if let length = expected.bodyBytes { #expect(try response.echo().bodyBytes == length, "request \(index)") }
                    if response.status != expected.status { break }
                }
                try await writer.value
            }
        }

        @Test("Keep-alive without pipelining reads on: many sequential requests on one connection")
        func sequential() async throws {
            try await withGateway(config: { openConfig($0) }) { env in
                let client = try await env.connect()
                for index in 0..<200 {
                    try await client.send(httpRequest("GET", "/n/\(index)"))
                    let response = try await client.readResponse()
                    #expect(response.status == 200)
                    if response.status != 200 { break }
                }
                #expect(env.upstream.snapshot.heads == 200)
            }
        }
    }
}
