import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener, apart from the proxy listener (`admin_listen`, loopback by default):
///
/// - `GET /healthz`: 200 while the process runs.
/// - `GET /readyz`: 200 when the configuration is loaded, every provider has usable keys and the
///   proxy listener is open (not draining); 503 with the reasons otherwise.
/// - `GET /metrics`: Prometheus text format.
///
/// Anything else is 404 (405 for methods other than GET/HEAD). Not on the request path: it may
/// allocate freely.
enum AdminServer {
    static func bind(_ address: ListenAddress, group: any EventLoopGroup, server: GatewayServer) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(AdminHandler(server: server))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }
}

/// What the admin listener answers, decided without I/O.
enum AdminRoute: Equatable {
    case healthz
    case readyz
    case metrics
    case notFound
    case methodNotAllowed

    init(method: HTTPMethod, uri: String) {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        let known: AdminRoute? =
            switch path {
            case "/healthz": .healthz
            case "/readyz": .readyz
            case "/metrics": .metrics
            default: nil
            }
        guard let known else {
            self = .notFound
            return
        }
        self = method == .GET || method == .HEAD ? known : .methodNotAllowed
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: GatewayServer
    private var route: AdminRoute?
    private var isHead = false
    private var keepAlive = true

    init(server: GatewayServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.route = AdminRoute(method: head.method, uri: head.uri)
            self.isHead = head.method == .HEAD
            self.keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            guard let route = self.route else { return }
            self.route = nil
            self.respond(route, context: context)
        }
    }

    private func respond(_ route: AdminRoute, context: ChannelHandlerContext) {
        switch route {
        case .healthz:
            self.write(.ok, "text/plain; charset=utf-8", "ok\n", context: context)
        case .readyz:
            let problems = self.server.readiness()
            if problems.isEmpty {
                self.write(.ok, "text/plain; charset=utf-8", "ready\n", context: context)
            } else {
                let body = problems.map { "not ready: \($0)\n" }.joined()
                self.write(.serviceUnavailable, "text/plain; charset=utf-8", body, context: context)
            }
        case .metrics:
            let server = self.server
            let promise = context.eventLoop.makePromise(of: String.self)
            promise.completeWithTask {
                let loops = await server.metricsSnapshot()
                return PrometheusExposition.render(loops, server.processMetrics())
            }
            promise.futureResult.assumeIsolated().whenSuccess { [self] text in
                self.write(.ok, PrometheusExposition.contentType, text, context: context)
            }
        case .notFound:
            self.write(.notFound, "text/plain; charset=utf-8", "not found: try /healthz, /readyz or /metrics\n", context: context)
        case .methodNotAllowed:
            self.write(.methodNotAllowed, "text/plain; charset=utf-8", "only GET and HEAD\n", context: context)
        }
    }

    private func write(_ status: HTTPResponseStatus, _ contentType: String, _ body: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "cache-control", value: "no-store")
        if !self.keepAlive { headers.add(name: "connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !self.isHead {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        let written = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !self.keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
