/// alloc-probe: counts heap allocations per proxied request, for the allocation regression test
/// (`Tests/GatewayTests/CLI/AllocationTests.swift`) and for profiling.
///
/// Runs, in one process, a minimal upstream and a gateway on one event loop, and drives them
/// from a blocking client on the main thread that itself allocates nothing per request. Prints
/// one JSON object: allocations per request for each scenario (the whole process is counted:
/// gateway and upstream). Linux/glibc only; elsewhere it prints -1.

import CAllocationCounter
import Crypto
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Answers every request with `200 ok`, keep-alive, as cheaply as NIO allows.
final class StaticHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "2"])
    let body = ByteBuffer(string: "ok")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = Self.unwrapInboundIn(data) else { return }
        context.write(Self.wrapOutboundOut(.head(Self.head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(self.body))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

@available(*, unavailable)
extension StaticHandler: Sendable {}

/// A blocking keep-alive client over a raw socket with fixed buffers.
struct BlockingClient {
    let fd: Int32
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(port: Int) {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(result == 0, "connect failed")
        var one: Int32 = 1
        setsockopt(self.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends `request` and reads one response whose body is `ok` (ends with "\r\n\r\nok").
    /// Returns the status code's first digit as a sanity check.
    mutating func roundTrip(_ request: [UInt8]) -> UInt8 {
        request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(self.fd, raw.baseAddress! + sent, raw.count - sent, 0)
                precondition(n > 0, "send failed")
                sent += n
            }
        }
        var received = 0
        return self.buffer.withUnsafeMutableBytes { raw -> UInt8 in
            while true {
                let n = recv(self.fd, raw.baseAddress! + received, raw.count - received, 0)
                precondition(n > 0, "connection closed")
                received += n
                // Done when the head has ended and the body "ok" (or a JSON error body) is complete.
                if let end = Self.headEnd(raw, received), let length = Self.contentLength(raw, end), received >= end + length {
                    return raw[9]
                }
            }
        }
    }

    static func headEnd(_ raw: UnsafeMutableRawBufferPointer, _ count: Int) -> Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where raw[i] == 13 && raw[i + 1] == 10 && raw[i + 2] == 13 && raw[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    static func contentLength(_ raw: UnsafeMutableRawBufferPointer, _ end: Int) -> Int? {
        let name: StaticString = "content-length: "
        let count = name.utf8CodeUnitCount
        var i = 0
        while i + count < end {
            var match = true
            for j in 0..<count where raw[i + j] | 0x20 != name.utf8Start[j] | 0x20 {
                match = false
                break
            }
            if match {
                var value = 0
                var k = i + count
                while k < end, raw[k] >= 48, raw[k] <= 57 {
                    value = value * 10 + Int(raw[k] - 48)
                    k += 1
                }
                return value
            }
            i += 1
        }
        return nil
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let upstream = try ServerBootstrap(group: group)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(StaticHandler())
        }
    }
    .bind(host: "127.0.0.1", port: 0).wait()
let upstreamPort = upstream.localAddress!.port!
let secret = "alloc-probe-secret-0123456789abcdef"
let configText = """
    {"providers": [{"name": "p", "issuer": "https://issuer.test", "audiences": ["orders"],
                    "keys": [{"kid": "hs-1", "alg": "HS256", "secret_env": "SECRET"}]}],
     "identity_headers": {"sub": "X-Auth-Subject", "role": "X-Auth-Role"},
     "admin_listen": null, "access_log": {"path": "/dev/null"},
     "routes": [{"path_prefix": "/open", "upstream": "http://127.0.0.1:\(upstreamPort)", "auth": "none"},
                {"path_prefix": "/", "upstream": "http://127.0.0.1:\(upstreamPort)"}]}
    """
let config = try ConfigLoader(environment: ["SECRET": secret]).load(Array(configText.utf8))
let gateway = try GatewayServer(
    config: config, group: group, logger: Logger(label: "alloc-probe", factory: { _ in SwiftLogNoOpLogHandler() }))
let gatewayPort = try group.next().makeFutureWithTask {
    try await gateway.start(listen: ListenAddress(host: "127.0.0.1", port: 0)).port!
}.wait()

let now = Int(WallClock.now())
let token = try TokenSigner(
    algorithm: .hs256, key: .hmac(.init(data: Array(secret.utf8))), kid: "hs-1"
).sign(
    claims: JSONObject([
        ("iss", .string("https://issuer.test")), ("sub", .string("alice")), ("aud", .string("orders")),
        ("role", .string("reader")), ("exp", .number(String(now + 3600))),
    ]))

let tracing = getenv("ALLOC_PROBE_TRACE") != nil

func measure(_ request: String, iterations: Int = tracing ? 1 : 1000) -> Double {
    var client = BlockingClient(port: gatewayPort)
    let bytes = Array(request.utf8)
    for _ in 0..<200 { precondition(client.roundTrip(bytes) == UInt8(ascii: "2"), "warm-up request failed") }
    authgate_allocation_reset()
    if tracing { authgate_allocation_tracing(1) }
    authgate_allocation_counting(1)
    for _ in 0..<iterations { _ = client.roundTrip(bytes) }
    authgate_allocation_counting(0)
    authgate_allocation_tracing(0)
    close(client.fd)
    return Double(authgate_allocation_count()) / Double(iterations)
}

/// The least of three measurements: allocations that depend on timing (a read split in two by a
/// busy machine) only ever add, so the minimum is the request path's own count.
func leastOf3(_ request: String) -> Double {
    (0..<(tracing ? 1 : 3)).map { _ in measure(request) }.min()!
}

let authenticated = leastOf3(
    "GET /orders/7?x=1 HTTP/1.1\r\nHost: gateway.test\r\nUser-Agent: probe\r\nAccept: */*\r\nConnection: keep-alive\r\nAuthorization: Bearer \(token)\r\n\r\n")
let open = leastOf3("GET /open/x HTTP/1.1\r\nHost: gateway.test\r\nUser-Agent: probe\r\nAccept: */*\r\n\r\n")
print(#"{"authenticated_cached_token": \#(authenticated), "no_auth": \#(open)}"#)
exit(0)
