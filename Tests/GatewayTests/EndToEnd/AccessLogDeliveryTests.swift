import Foundation
import NIOCore
import Testing

@testable import Gateway

/// Lines wait on their event loop for up to `AccessLogBatcher.batchDelay`: none may be lost when
/// the gateway stops or reopens its log at that moment.
extension OperationsTests {
    func lines(_ path: String) -> [Substring] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    @Test("Access log: shutting down right after a request still writes its line")
    func accessLogShutdown() async throws {
        let files = try TemporaryFiles(prefix: "authgate-delivery")
        defer { files.remove() }
        let path = files.path("access.log")
        try await withGateway(config: { openConfig($0, extra: [#""access_log": {"path": "\#(path)"}"#]) }) { env in
            let client = try await env.connect()
            try await client.send(httpRequest("GET", "/last", headers: [("X-Request-Id", "last-1")]))
            #expect(try await client.readResponse().status == 200)
            await client.close()
            await env.shutdownGateway()
            let lines = self.lines(path)
            #expect(lines.count == 1)
            #expect(lines.first?.contains(#""request_id":"last-1""#) == true)
            #expect(env.server.accessLog.dropped == 0)
        }
    }

    @Test("Access log: after the file is moved away, a reload makes later lines go to a new file")
    func accessLogReopen() async throws {
        let files = try TemporaryFiles(prefix: "authgate-delivery")
        defer { files.remove() }
        let path = files.path("access.log")
        let rotated = files.path("access.log.1")
        let config = { (upstreams: [TestUpstream]) in openConfig(upstreams, extra: [#""access_log": {"path": "\#(path)"}"#]) }
        try await withGateway(config: config) { env in
            let client = try await env.connect()
            try await client.send(httpRequest("GET", "/before", headers: [("X-Request-Id", "before-1")]))
            #expect(try await client.readResponse().status == 200)
            for _ in 0..<100 where self.lines(path).isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            try FileManager.default.moveItem(atPath: path, toPath: rotated)
            try await env.server.reload(try ConfigJSON.load(config(env.upstreams)))
            try await client.send(httpRequest("GET", "/after", headers: [("X-Request-Id", "after-1")]))
            #expect(try await client.readResponse().status == 200)
            var all: [Substring] = []
            for _ in 0..<100 {
                all = self.lines(rotated) + self.lines(path)
                if all.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(all.count == 2)
            #expect(self.lines(rotated).count == 1)
            #expect(self.lines(rotated).first?.contains(#""request_id":"before-1""#) == true)
            #expect(self.lines(path).last?.contains(#""request_id":"after-1""#) == true)
        }
    }
}
