import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The echo upstream's WebSocket endpoint (`GET /ws`, or any path ending in `/ws`; RFC 6455): text, binary and continuation
/// frames come back as they were sent, a ping gets its pong, a close is answered with a close and
/// the connection closed.
final class WebSocketEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Upgrades a path whose last segment is this (`/ws`, `/public/ws`), without a query.
    static let segment = "/ws"
    /// Largest frame accepted; larger frames close the connection (status 1009).
    static let maxFrameSize = 1 << 20

    private var closing = false

    init() {}

    /// Upgrades `GET …/ws` and leaves every other request to the HTTP echo.
    /// - Parameter httpHandlers: handlers after NIO's upgrade handler that speak HTTP; they leave
    ///   the pipeline when a connection switches to WebSocket.
    static func upgrader(
        removing httpHandlers: [any RemovableChannelHandler], on eventLoop: any EventLoop
    ) -> NIOHTTPServerUpgradeConfiguration {
        let httpHandlers = NIOLoopBound(httpHandlers, eventLoop: eventLoop)
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: Self.maxFrameSize, automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeSucceededFuture(head.uri.hasSuffix(Self.segment) ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WebSocketEchoHandler())
                }
            })
        return (
            upgraders: [upgrader],
            completionHandler: { context in
                for handler in httpHandlers.value { context.pipeline.syncOperations.removeHandler(handler, promise: nil) }
            }
        )
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(echo), promise: nil)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            guard !self.closing else {
                context.close(promise: nil)
                return
            }
            self.closing = true
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension WebSocketEchoHandler: Sendable {}
