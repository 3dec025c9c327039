import NIOCore
import Testing

@testable import Gateway

extension EndToEnd {
    /// CONTRACT "Request semantics" 5: "the body and the response stream through".
    /// Serialized so the process-RSS guard measures one transfer at a time.
    @Suite("Streaming", .serialized)
    struct Streaming {
        static let size = 256 << 20
        /// Growth of this process's RSS tolerated during one transfer (gateway, upstream and
        /// client all run in-process; buffering the transfer would exceed it).
        static let maximumGrowth = 200 << 20

        private static func config(_ upstreams: [TestUpstream]) -> String {
            openConfig(upstreams, extra: [#""limits": {"max_body_bytes": 1073741824}"#])
        }

        private func upload(chunked: Bool) async throws {
            try await withGateway(config: Self.config) { env in
                let client = try await env.connect()
                let framing = chunked ? "Transfer-Encoding: chunked" : "Content-Length: \(Self.size)"
                let (response, growth) = try await ProcessMemory.measuringGrowth {
                    try await client.send("POST /__sink HTTP/1.1\r\nHost: gateway.test\r\n\(framing)\r\n\r\n")
                    try await uploadBody(on: client, total: Self.size, chunked: chunked)
                    return try await client.readResponse(timeout: .seconds(30))
                }
                #expect(response.status == 200, "\(response)")
                #expect(try response.echo().bodyBytes == Self.size)
                if let growth {
                    #expect(growth < Self.maximumGrowth, "RSS grew by \(growth >> 20) MiB during the upload")
                }
            }
        }

        @Test("256 MiB chunked upload arrives complete", .timeLimit(.minutes(1)))
        func chunkedUpload() async throws {
            try await self.upload(chunked: true)
        }

        @Test("256 MiB Content-Length upload arrives complete", .timeLimit(.minutes(1)))
        func contentLengthUpload() async throws {
            try await self.upload(chunked: false)
        }

        @Test("a client that stops reading does not make the gateway buffer the response", .timeLimit(.minutes(1)))
        func slowReaderBackpressure() async throws {
            try await withGateway(config: Self.config) { env in
                let baseline = ProcessMemory.residentBytes()
                let client = try await env.connect()
                try await client.channel.setOption(ChannelOptions.autoRead, value: false).get()
                try await client.send(httpRequest("GET", "/__stream?bytes=\(Self.size)"))
                try await env.upstream.waitForHeads(1)
                try await Task.sleep(for: .seconds(1))
                if let baseline, let stalled = ProcessMemory.residentBytes() {
                    #expect(stalled - baseline < 64 << 20, "RSS grew by \((stalled - baseline) >> 20) MiB with a stalled reader")
                }
                await client.close()
            }
        }

        @Test("256 MiB download streams through", .timeLimit(.minutes(1)))
        func streamedDownload() async throws {
            try await withGateway(config: Self.config) { env in
                let (result, growth) = try await ProcessMemory.measuringGrowth {
                    try await download(port: env.port, target: "/__stream?bytes=\(Self.size)", timeout: .seconds(30))
                }
                #expect(result.status == 200)
                #expect(result.bodyBytes == Self.size)
                #expect(result.looksLikeStream)
                if let growth {
                    #expect(growth < Self.maximumGrowth, "RSS grew by \(growth >> 20) MiB during the download")
                }
            }
        }
    }
}
