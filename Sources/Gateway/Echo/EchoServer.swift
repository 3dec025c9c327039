import NIOCore
import NIOHTTP1
import NIOPosix

/// The echo upstream behind `upstream-echo` and `authgate demo`: answers every request with a
/// JSON description of it (see `EchoHandler`), and echoes WebSocket frames on `GET /ws`
/// (`WebSocketEchoHandler`).
public enum EchoServer {
    /// Binds an echo server; the returned channel's `localAddress` has the bound port.
    public static func bind(host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configure(channel)
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    /// Sets up one echo connection: HTTP with the echo handler, and WebSocket echo on `GET /ws`.
    /// - Parameter before: HTTP handlers to put in front of the echo handler (tests count
    ///   requests this way); they leave the pipeline with it when a connection switches to WebSocket.
    /// Must be called on the channel's event loop.
    public static func configure(_ channel: any Channel, before: [any RemovableChannelHandler] = []) throws {
        let pipeline = channel.pipeline.syncOperations
        let httpHandlers = before + [EchoHandler()]
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: true,
            withServerUpgrade: WebSocketEchoHandler.upgrader(removing: httpHandlers, on: channel.eventLoop),
            withErrorHandling: true)
        for handler in httpHandlers { try pipeline.addHandler(handler) }
    }
}
