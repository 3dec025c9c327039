import Logging
import NIOCore
import NIOHTTP1

/// Turns a client connection and its dedicated upstream connection into a tunnel once the
/// upstream has switched protocols: relays the `101`, takes the HTTP handlers out of both
/// pipelines and joins them with a `TunnelHandler` pair.
///
/// Bytes that arrived after the request (client) or after the `101` head (upstream) sit in
/// `DownstreamHandler` and `UpstreamHandler`, whose parsers stop at an upgrade; each hands what
/// it holds to the handler after it when it leaves, so removing them passes those bytes to the
/// tunnel in order.
enum TunnelSplice {
    /// - Parameters:
    ///   - downstream: the `DownstreamHandler`'s context on the client connection; that handler
    ///     leaves the pipeline here and must not use its context afterwards.
    ///   - upstream: the dedicated upstream connection, whose `101` head and end were received.
    ///   - head: the `101` head to relay (`HeaderRewriter.switchingProtocolsHead`).
    static func splice(
        downstream: ChannelHandlerContext, upstream: UpstreamHandler, head: HTTPResponseHead, idleTimeout: TimeAmount,
        logger: Logger
    ) {
        let client = downstream.channel
        guard let server = upstream.channel, server.eventLoop === client.eventLoop else {
            client.close(promise: nil)
            upstream.close()
            return
        }
        let (clientSide, upstreamSide) = TunnelHandler.pair(idleTimeout: idleTimeout, logger: logger)
        let clientOps = client.pipeline.syncOperations
        let serverOps = server.pipeline.syncOperations
        do {
            // The tunnel ends go last, behind the HTTP handlers that leave below: the bytes those
            // hold reach them as they leave.
            try clientOps.addHandler(clientSide)
            try serverOps.addHandler(upstreamSide)
            // The 101 in the gateway's own encoding (no NIO response encoder in the pipeline).
            var bytes = client.allocator.buffer(capacity: 256)
            ResponseEncoding.writeHead(head, into: &bytes)
            downstream.writeAndFlush(NIOAny(bytes), promise: nil)
            try client.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            try server.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            // Last: each parser's handler forwards the bytes it holds as it leaves, in order.
            let decoders = [
                clientOps.removeHandler(context: downstream),
                serverOps.removeHandler(context: try serverOps.context(handlerType: UpstreamHandler.self)),
            ]
            EventLoopFuture.whenAllComplete(decoders, on: client.eventLoop).assumeIsolated().whenSuccess { results in
                for case .failure(let error) in results {
                    logger.warning("could not switch a connection to a tunnel", metadata: ["error": "\(error)"])
                    client.close(promise: nil)
                    server.close(promise: nil)
                    return
                }
                clientSide.start()
                upstreamSide.start()
            }
            logger.debug(
                "tunnel open",
                metadata: ["upstream": "\(upstream.endpoint)", "protocol": "\(head.headers["upgrade"].first ?? "")"])
        } catch {
            logger.warning("could not switch a connection to a tunnel", metadata: ["error": "\(error)"])
            client.close(promise: nil)
            server.close(promise: nil)
        }
    }
}

extension DownstreamHandler: RemovableChannelHandler {}
extension UpstreamHandler: RemovableChannelHandler {}
