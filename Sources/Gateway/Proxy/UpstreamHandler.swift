import NIOCore
import NIOHTTP1

/// What an upstream connection reports to the downstream connection that leased it.
protocol UpstreamHandlerDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// Whether the downstream can take more response data (backpressure on upstream reads).
    var downstreamIsWritable: Bool { get }
}

/// The client end of one upstream connection. Leased to one downstream exchange at a time; idle
/// in its pool otherwise. Reads are gated on the downstream's writability, so a slow client
/// slows the upstream instead of filling memory.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let upstream: Upstream
    /// False for a dedicated connection (an `Upgrade` request's), which the pool never takes back.
    let pooled: Bool
    weak var pool: UpstreamConnectionPool?
    /// The exchange using this connection; nil while idle.
    weak var delegate: (any UpstreamHandlerDelegate)?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// In its pool's idle list (since `idleSince`).
    var isIdle = false
    private(set) var idleSince = NIODeadline.now()

    init(upstream: Upstream, pooled: Bool = true) {
        self.upstream = upstream
        self.pooled = pooled
    }

    var channel: (any Channel)? { self.context?.channel }
    var isActive: Bool { self.context?.channel.isActive ?? false }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        guard let delegate = self.delegate else {
            // Nothing is owed on an idle connection: the upstream broke framing. Drop it.
            context.close(promise: nil)
            return
        }
        delegate.upstreamReceived(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.isIdle { self.pool?.remove(self) }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed(error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed(error: error)
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let delegate = self.delegate, !delegate.downstreamIsWritable {
            self.pendingRead = true
        } else {
            context.read()
        }
    }

    // MARK: Used by the downstream side (same event loop)

    func write(_ part: HTTPClientRequestPart) {
        self.context?.write(Self.wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    /// Called when the downstream becomes writable again.
    func resumeReading() {
        guard self.pendingRead, let context = self.context else { return }
        self.pendingRead = false
        context.read()
    }

    func close() {
        self.delegate = nil
        self.context?.close(promise: nil)
    }

    /// Back in the pool: keep reading, so an upstream that closes the connection is noticed.
    func becameIdle() {
        self.isIdle = true
        self.idleSince = .now()
        guard let context = self.context, self.pendingRead else { return }
        self.pendingRead = false
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
