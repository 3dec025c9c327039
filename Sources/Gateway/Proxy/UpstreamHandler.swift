import NIOCore
import NIOHTTP1
import NIOTLS

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
final class UpstreamHandler: ChannelDuplexHandler, BatchFlushable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let endpoint: Upstream.Endpoint
    /// False for a dedicated connection (an `Upgrade` request's), which the pool never takes back.
    let pooled: Bool
    weak var pool: UpstreamConnectionPool?
    /// The exchange using this connection; nil while idle. Strong, not `weak`: every end of a
    /// lease clears it (`close`, the pool taking the connection back, the connection's end,
    /// and the downstream's `finishResponse`, `startTunnel` and `teardown`), and a weak
    /// reference would give every downstream handler a side table, making each retain and
    /// release of it, and each of the five reads of this per request, a slower call.
    var delegate: (any UpstreamHandlerDelegate)?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// In its pool's idle list (since `idleSince`).
    var isIdle = false
    private(set) var idleSince = NIODeadline.now()

    /// Where the TLS handshake stands (https only): a connection is handed out once it completed.
    private enum Handshake {
        case notNeeded
        case inProgress(waiter: ((Result<Void, any Error>) -> Void)?, timer: Scheduled<Void>?)
        case failed(any Error)
    }

    private var handshake: Handshake
    /// The response decoder in front of this handler, told about every request written.
    private let responseDecoder: UpstreamResponseDecoder
    /// The request being written sends its body in chunked coding.
    private var chunked = false

    init(endpoint: Upstream.Endpoint, pooled: Bool = true, responseDecoder: UpstreamResponseDecoder) {
        self.endpoint = endpoint
        self.pooled = pooled
        self.responseDecoder = responseDecoder
        self.handshake = endpoint.tls ? .inProgress(waiter: nil, timer: nil) : .notNeeded
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { self.finishHandshake(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finishHandshake(.failure(ChannelError.eof))
        if self.isIdle { self.pool?.remove(self) }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed(error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.finishHandshake(.failure(error))
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

    // MARK: TLS handshake

    /// Calls `body` once the connection can carry a request: at once for http; for https when the
    /// TLS handshake has completed (peer chain and name verified), failed, or not finished by
    /// `deadline` (then the connection is closed and `body` gets `ChannelError.connectTimeout`).
    func whenReady(by deadline: NIODeadline, timeout: TimeAmount, _ body: @escaping (Result<Void, any Error>) -> Void) {
        switch self.handshake {
        case .notNeeded:
            body(.success(()))
        case .failed(let error):
            body(.failure(error))
        case .inProgress(_, let existing):
            existing?.cancel()
            var timer: Scheduled<Void>?
            if let context = self.context {
                timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                    self?.finishHandshake(.failure(ChannelError.connectTimeout(timeout)))
                    self?.close()
                }
            }
            self.handshake = .inProgress(waiter: body, timer: timer)
        }
    }

    private func finishHandshake(_ result: Result<Void, any Error>) {
        guard case .inProgress(let waiter, let timer) = self.handshake else { return }
        timer?.cancel()
        switch result {
        case .success: self.handshake = .notNeeded
        case .failure(let error): self.handshake = .failed(error)
        }
        waiter?(result)
    }

    // MARK: Used by the downstream side (same event loop)

    /// Writes a request head (the gateway's own encoding: `ForwardHead` is already bytes).
    func writeHead(_ head: ForwardHead) {
        guard let context = self.context else { return }
        self.chunked = head.chunked
        self.responseDecoder.expectResponse(to: head.method)
        context.write(Self.wrapOutboundOut(head.bytes), promise: nil)
    }

    /// Writes a piece of the request body, as a chunk when the request is chunked.
    func writeBody(_ buffer: ByteBuffer) {
        guard let context = self.context else { return }
        guard self.chunked else {
            context.write(Self.wrapOutboundOut(buffer), promise: nil)
            return
        }
        // An empty chunk would end the body.
        guard buffer.readableBytes > 0 else { return }
        let size = ResponseEncoding.chunkHeader(buffer.readableBytes, allocator: context.channel.allocator)
        context.write(Self.wrapOutboundOut(size), promise: nil)
        context.write(Self.wrapOutboundOut(buffer), promise: nil)
        context.write(Self.wrapOutboundOut(ResponseEncoding.crlf), promise: nil)
    }

    /// Ends the request: the last chunk of a chunked body (request trailers are never forwarded).
    func writeEnd() {
        guard let context = self.context, self.chunked else { return }
        self.chunked = false
        context.write(Self.wrapOutboundOut(ResponseEncoding.lastChunkWithoutTrailers), promise: nil)
    }

    /// Set while the connection waits in its loop's `FlushBatch`.
    var flushQueued = false

    func flushNow() {
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
        self.delegate = nil
        self.isIdle = true
        self.idleSince = .now()
        guard let context = self.context, self.pendingRead else { return }
        self.pendingRead = false
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
