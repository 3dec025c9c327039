import Logging
import NIOCore

/// One end of a tunnel: raw bytes read on this channel are written to the partner's channel.
///
/// After a `101 Switching Protocols` the client connection and its dedicated upstream connection
/// each carry one of a pair (`pair(idleTimeout:logger:)`), both on the same event loop, as in
/// SwiftNIO's `GlueHandler` example:
/// - **Backpressure**: a side reads only while its partner's channel is writable, and resumes when
///   it becomes writable again, so a slow reader slows the writer instead of filling memory.
/// - **Half-close**: end of input on one side shuts the partner's output down once what was
///   already written has been sent; a side whose input and output are both shut closes (NIO
///   escalates). A side that closes closes its partner after flushing.
/// - **Idle**: when no byte crossed in either direction for `idleTimeout`, both close.
/// - **Shutdown**: `ChannelShouldQuiesceEvent` (the gateway draining) closes both at once: a tunnel
///   has no request boundary to drain to.
final class TunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Side: String {
        case client
        case upstream
    }

    /// What both sides share: the idle timer and the counts for the closing log line.
    ///
    /// The timer runs until both channels are closed, so a side left draining its output after
    /// the other closed (to a peer that no longer reads) is still closed when the tunnel idles.
    final class Shared {
        let idleTimeout: TimeAmount
        let logger: Logger
        weak var client: TunnelHandler?
        weak var upstream: TunnelHandler?
        var lastActivity = NIODeadline.now()
        var idleTimer: Scheduled<Void>?
        var openSides = 2
        var bytesFromClient = 0
        var bytesFromUpstream = 0
        var logged = false

        init(idleTimeout: TimeAmount, logger: Logger) {
            self.idleTimeout = idleTimeout
            self.logger = logger
        }

        func armIdleTimer(on eventLoop: any EventLoop) {
            let deadline = self.lastActivity + self.idleTimeout
            self.idleTimer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                self.idleTimer = nil
                guard self.openSides > 0 else { return }
                if NIODeadline.now() >= self.lastActivity + self.idleTimeout {
                    self.log("idle")
                    self.client?.context?.close(promise: nil)
                    self.upstream?.context?.close(promise: nil)
                } else {
                    self.armIdleTimer(on: eventLoop)
                }
            }
        }

        func sideClosed() {
            self.openSides -= 1
            if self.openSides == 0 {
                self.idleTimer?.cancel()
                self.idleTimer = nil
            }
        }

        /// The closing log line, once.
        func log(_ reason: String) {
            guard !self.logged else { return }
            self.logged = true
            self.logger.debug(
                "tunnel closed",
                metadata: [
                    "reason": "\(reason)", "bytes_from_client": "\(self.bytesFromClient)",
                    "bytes_from_upstream": "\(self.bytesFromUpstream)",
                ])
        }
    }

    let side: Side
    private let shared: Shared
    private var partner: TunnelHandler?
    private var context: ChannelHandlerContext?
    /// Reads wait until both pipelines have been switched (`start()`); bytes the partner relays
    /// before then (the decoders' left-overs) are queued, because this side's HTTP handlers may
    /// still be leaving.
    private var started = false
    private var queued: [ByteBuffer] = []
    private var pendingRead = false
    private var quiesceRequested = false

    private init(side: Side, shared: Shared) {
        self.side = side
        self.shared = shared
    }

    /// Two joined ends: one for the client connection, one for the upstream connection.
    static func pair(idleTimeout: TimeAmount, logger: Logger) -> (client: TunnelHandler, upstream: TunnelHandler) {
        let shared = Shared(idleTimeout: idleTimeout, logger: logger)
        let client = TunnelHandler(side: .client, shared: shared)
        let upstream = TunnelHandler(side: .upstream, shared: shared)
        client.partner = upstream
        upstream.partner = client
        shared.client = client
        shared.upstream = upstream
        return (client, upstream)
    }

    /// Both pipelines are switched: flush what was relayed meanwhile, start reading, and (on the
    /// client side) start the idle timer.
    func start() {
        guard let context = self.context, !self.started else { return }
        self.started = true
        for buffer in self.queued { context.write(NIOAny(buffer), promise: nil) }
        self.queued = []
        context.flush()
        if self.side == .client {
            if self.quiesceRequested {
                self.closeBoth(reason: "shutdown")
                return
            }
            self.shared.lastActivity = .now()
            self.shared.armIdleTimer(on: context.eventLoop)
        }
        self.read(context: context)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.shared.lastActivity = .now()
        switch self.side {
        case .client: self.shared.bytesFromClient += buffer.readableBytes
        case .upstream: self.shared.bytesFromUpstream += buffer.readableBytes
        }
        self.partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        } else {
            context.flush()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.shared.log("\(self.side.rawValue) closed")
        self.shared.sideClosed()
        let partner = self.partner
        self.partner = nil
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.partner?.partnerInputEnded()
        } else if event is ChannelShouldQuiesceEvent {
            if self.started { self.closeBoth(reason: "shutdown") } else { self.quiesceRequested = true }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.shared.logger.debug("tunnel connection error", metadata: ["side": "\(self.side.rawValue)", "error": "\(error)"])
        self.closeBoth(reason: "\(self.side.rawValue) error")
    }

    func read(context: ChannelHandlerContext) {
        if self.started, self.partner?.isWritable ?? false {
            context.read()
        } else {
            self.pendingRead = true
        }
    }

    // MARK: Called by the partner (same event loop)

    private var isWritable: Bool { self.context?.channel.isWritable ?? false }

    private func partnerWrite(_ buffer: ByteBuffer) {
        guard self.started else {
            self.queued.append(buffer)
            return
        }
        self.context?.write(NIOAny(buffer), promise: nil)
    }

    private func partnerFlush() {
        if self.started { self.context?.flush() }
    }

    private func partnerBecameWritable() {
        guard self.pendingRead, self.started, let context = self.context else { return }
        self.pendingRead = false
        context.read()
    }

    /// The partner will send nothing more: end this side's output once what was written is sent.
    private func partnerInputEnded() {
        guard let context = self.context else { return }
        context.flush()
        context.close(mode: .output, promise: nil)
    }

    /// The partner closed: close this side too, after what was written to it is sent.
    private func partnerClosed() {
        guard let context = self.context else { return }
        let outputDone = context.eventLoop.makePromise(of: Void.self)
        outputDone.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.flush()
        context.close(mode: .output, promise: outputDone)
    }

    // MARK: Teardown

    /// Closes both connections at once, dropping whatever is still queued.
    private func closeBoth(reason: String) {
        self.shared.log(reason)
        self.shared.client?.context?.close(promise: nil)
        self.shared.upstream?.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension TunnelHandler: Sendable {}
