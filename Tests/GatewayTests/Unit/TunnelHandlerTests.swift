import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// Counts `read()` calls that pass a handler on their way to the channel.
final class TunnelReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0

    func read(context: ChannelHandlerContext) {
        self.reads += 1
        context.read()
    }
}

/// `TunnelHandler` on two embedded channels: relaying, backpressure and shutdown, without sockets.
@Suite("Tunnel handler")
struct TunnelHandlerTests {
    struct Tunnel {
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let clientSide: TunnelHandler
        let upstreamSide: TunnelHandler
        let clientReads: TunnelReadCounter
        let upstreamReads: TunnelReadCounter
    }

    func makeTunnel() throws -> Tunnel {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let (clientSide, upstreamSide) = TunnelHandler.pair(idleTimeout: .seconds(60), logger: logger)
        let clientReads = TunnelReadCounter()
        let upstreamReads = TunnelReadCounter()
        let client = EmbeddedChannel()
        let upstream = EmbeddedChannel()
        try client.pipeline.syncOperations.addHandlers([clientReads, clientSide])
        try upstream.pipeline.syncOperations.addHandlers([upstreamReads, upstreamSide])
        try client.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: .init(ipAddress: "127.0.0.1", port: 2)).wait()
        return Tunnel(
            client: client, upstream: upstream, clientSide: clientSide, upstreamSide: upstreamSide, clientReads: clientReads,
            upstreamReads: upstreamReads)
    }

    @Test("Bytes relayed before start are queued and sent in order once both sides start; then they flow both ways")
    func relay() throws {
        let tunnel = try self.makeTunnel()
        try tunnel.client.writeInbound(ByteBuffer(string: "early"))
        tunnel.client.pipeline.fireChannelReadComplete()
        #expect(try tunnel.upstream.readOutbound(as: ByteBuffer.self) == nil)
        #expect(tunnel.clientReads.reads == 0 && tunnel.upstreamReads.reads == 0)

        tunnel.clientSide.start()
        tunnel.upstreamSide.start()
        #expect(try tunnel.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "early"))
        #expect(tunnel.clientReads.reads == 1 && tunnel.upstreamReads.reads == 1)

        try tunnel.upstream.writeInbound(ByteBuffer(string: "back"))
        tunnel.upstream.pipeline.fireChannelReadComplete()
        #expect(try tunnel.client.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "back"))
        try tunnel.client.writeInbound(ByteBuffer(string: "forth"))
        tunnel.client.pipeline.fireChannelReadComplete()
        #expect(try tunnel.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "forth"))
    }

    @Test("A side does not read while its partner cannot write, and resumes when it can")
    func backpressure() throws {
        let tunnel = try self.makeTunnel()
        tunnel.clientSide.start()
        tunnel.upstreamSide.start()
        let before = tunnel.clientReads.reads

        tunnel.upstream.isWritable = false
        tunnel.upstream.pipeline.fireChannelWritabilityChanged()
        tunnel.client.read()
        #expect(tunnel.clientReads.reads == before)

        tunnel.upstream.isWritable = true
        tunnel.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(tunnel.clientReads.reads == before + 1)
    }

    @Test("Shutdown (ChannelShouldQuiesceEvent) closes both sides, also when it arrives before the start")
    func quiesce() throws {
        let tunnel = try self.makeTunnel()
        tunnel.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(tunnel.client.isActive && tunnel.upstream.isActive)
        tunnel.clientSide.start()
        tunnel.upstreamSide.start()
        #expect(!tunnel.client.isActive)
        #expect(!tunnel.upstream.isActive)
    }
}
