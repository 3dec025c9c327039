import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One-shot HTTP GETs for key sets and discovery documents: off the request path, bounded in
/// time and size, https verified against the system trust store or a configured CA file.
public struct HTTPFetcher: Sendable {
    public struct Response: Sendable {
        public var status: UInt
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    public struct FetchError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Largest document accepted; key sets are a few KiB.
    public static let maximumBytes = 1 << 20

    let group: any EventLoopGroup
    let sslContext: NIOSSLContext?

    /// - Parameter caFile: PEM CA certificates to trust instead of the system store.
    public init(group: any EventLoopGroup, caFile: String? = nil) throws {
        self.group = group
        self.sslContext = try ClientTLS.makeContext(caFile: caFile)
    }

    /// GETs `url`; fails on connection errors, timeouts, TLS errors and oversized bodies.
    public func get(_ url: FetchURL, timeout: TimeAmount) -> EventLoopFuture<Response> {
        let loop = self.group.next()
        let promise = loop.makePromise(of: Response.self)
        let sslContext = self.sslContext
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if url.tls, let sslContext {
                        try sync.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: ClientTLS.serverName(for: url.host)))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(NIOHTTPClientResponseAggregator(maxContentLength: Self.maximumBytes))
                    try sync.addHandler(FetchHandler(promise: promise))
                }
            }
        bootstrap.connect(host: url.host, port: url.port).whenComplete { result in
            switch result {
            case .success(let channel):
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target)
                head.headers.add(name: "Host", value: url.hostHeader)
                head.headers.add(name: "Accept", value: "application/json")
                head.headers.add(name: "User-Agent", value: "authgate")
                head.headers.add(name: "Connection", value: "close")
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                let timer = channel.eventLoop.scheduleTask(in: timeout) {
                    promise.fail(FetchError(description: "timed out after \(timeout.nanoseconds / 1_000_000) ms"))
                    channel.close(promise: nil)
                }
                promise.futureResult.whenComplete { _ in
                    timer.cancel()
                    channel.close(promise: nil)
                }
            case .failure(let error):
                promise.fail(FetchError(description: "cannot connect to \(url.host):\(url.port): \(error)"))
            }
        }
        return promise.futureResult
    }
}

/// Completes the fetch promise with the aggregated response, or the first error.
private final class FetchHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPClientResponseFull

    private let promise: EventLoopPromise<HTTPFetcher.Response>

    init(promise: EventLoopPromise<HTTPFetcher.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let full = Self.unwrapInboundIn(data)
        var body: [UInt8] = []
        if var buffer = full.body { body = buffer.readBytes(length: buffer.readableBytes) ?? [] }
        self.promise.succeed(.init(status: full.head.status.code, headers: full.head.headers, body: body))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let message: String
        if error is NIOHTTPObjectAggregatorError {
            message = "response larger than \(HTTPFetcher.maximumBytes) bytes"
        } else {
            message = "\(error)"
        }
        self.promise.fail(HTTPFetcher.FetchError(description: message))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(HTTPFetcher.FetchError(description: "connection closed before a complete response"))
    }
}
