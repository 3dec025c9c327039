import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

@testable import Gateway

/// A key-set server on loopback whose behaviour a test changes at will: serve a set (with an
/// optional Cache-Control), fail with a status, hang, or serve garbage. Counts requests by path.
final class JWKSServer: Sendable {
    enum Mode: Sendable {
        case serve
        case status(Int)
        case hang
        case garbage
    }

    struct State: Sendable {
        var mode: Mode = .serve
        var jwks = #"{"keys":[]}"#
        var discovery: String?
        var cacheControl: String?
        var requests: [String: Int] = [:]
    }

    let state = NIOLockedValueBox(State())
    let channel: any Channel

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var baseURL: String { "http://127.0.0.1:\(self.port)" }
    var tlsBaseURL: String { "https://127.0.0.1:\(self.port)" }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// - Parameter tls: serve https with this context.
    static func start(tls: NIOSSLContext? = nil) async throws -> JWKSServer {
        let state = NIOLockedValueBox<JWKSServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(JWKSHandler(server: { state.withLockedValue { $0 } }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = JWKSServer(channel: channel)
        state.withLockedValue { $0 = server }
        return server
    }

    func set(_ change: (inout State) -> Void) {
        self.state.withLockedValue(change)
    }

    func requests(_ path: String) -> Int {
        self.state.withLockedValue { $0.requests[path] ?? 0 }
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// A P-256 JWK (public) for `key`.
    static func jwk(_ key: P256.Signing.PrivateKey, kid: String) -> String {
        let raw = key.publicKey.rawRepresentation
        return #"{"kty":"EC","crv":"P-256","kid":"\#(kid)","use":"sig","x":"\#(Base64URL.encode(raw.prefix(32)))","y":"\#(Base64URL.encode(raw.suffix(32)))"}"#
    }

    static func jwks(_ keys: [(P256.Signing.PrivateKey, String)]) -> String {
        #"{"keys":[\#(keys.map { jwk($0.0, kid: $0.1) }.joined(separator: ","))]}"#
    }
}

private final class JWKSHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: @Sendable () -> JWKSServer?

    init(server: @escaping @Sendable () -> JWKSServer?) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = Self.unwrapInboundIn(data), let server = self.server() else { return }
        let path = String(head.uri.split(separator: "?").first ?? "")
        let state = server.state.withLockedValue { state in
            state.requests[path, default: 0] += 1
            return state
        }
        var status = HTTPResponseStatus.ok
        var body: String
        switch state.mode {
        case .hang:
            return
        case .garbage:
            body = "<html>not json"
        case .status(let code):
            status = HTTPResponseStatus(statusCode: code)
            body = "{}"
        case .serve:
            if path == "/.well-known/openid-configuration" || path == "/discovery" {
                guard let discovery = state.discovery else {
                    status = .notFound
                    body = "{}"
                    break
                }
                body = discovery
            } else {
                body = state.jwks
            }
        }
        var headers: HTTPHeaders = ["content-type": "application/json", "content-length": String(body.utf8.count)]
        if let cacheControl = state.cacheControl { headers.add(name: "cache-control", value: cacheControl) }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}
