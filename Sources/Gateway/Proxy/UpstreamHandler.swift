import NIOCore
import NIOHTTP1
import NIOTLS

/// What an upstream connection reports to the downstream connection that leased it.
protocol UpstreamHandlerDelegate: AnyObject {
    func upstreamReceived(_ part: UpstreamResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// Whether the downstream can take more response data (backpressure on upstream reads).
    var downstreamIsWritable: Bool { get }
}

/// The client end of one upstream connection. Leased to one downstream exchange at a time; idle
/// in its pool otherwise. Reads are gated on the downstream's writability, so a slow client
/// slows the upstream instead of filling memory. It parses the responses itself
/// (`UpstreamResponseParser`): there is no HTTP decoder in front of it.
///
/// Writes wrap their bytes with `NIOAny(_:)` and reads unwrap with `self.unwrapInboundIn`, not the
/// static `Self.wrapOutboundOut`/`Self.unwrapInboundIn`: this compiler left those two
/// unspecialised (a generic call and a dynamic cast, about 500 instructions each, twice per
/// request on each side; BENCHMARKS.md, 2026-12-02 evening).
final class UpstreamHandler: ChannelDuplexHandler, BatchFlushable {
    typealias InboundIn = ByteBuffer
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
    /// That list (its endpoint's in its pool), kept by the pool so that taking the connection
    /// back needs no look-up.
    var idleList: UpstreamConnectionPool.IdleList?
    private(set) var idleSince = NIODeadline.now()

    /// Where the TLS handshake stands (https only): a connection is handed out once it completed.
    private enum Handshake {
        case notNeeded
        case inProgress(waiter: ((Result<Void, any Error>) -> Void)?, timer: Scheduled<Void>?)
        case failed(any Error)
    }

    private var handshake: Handshake
    /// Told about every request written; reads the responses.
    private var parser = UpstreamResponseParser()
    /// Bytes read but not parsed yet: the start of a head or chunk-size line that the next read
    /// completes, or (after a `101`) the tunnel's first bytes.
    private var unparsed: ByteBuffer?
    /// The request being written sends its body in chunked coding.
    private var chunked = false

    init(endpoint: Upstream.Endpoint, pooled: Bool = true) {
        self.endpoint = endpoint
        self.pooled = pooled
        self.handshake = endpoint.tls ? .inProgress(waiter: nil, timer: nil) : .notNeeded
    }

    var channel: (any Channel)? { self.context?.channel }
    /// The connection can still be used: in the pipeline, not closed by `close`, and not gone
    /// inactive. Kept here, not asked of the channel: the pool asks twice per request, and the
    /// channel's answer (an existential call and an atomic load) cost about 70 instructions.
    var isActive: Bool { self.isOpen && self.context != nil }
    private var isOpen = true
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Leaving the pipeline for a tunnel (`TunnelSplice`): the bytes after the `101` go on to it.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        if self.parser.isUpgraded, let bytes = self.unparsed, bytes.readableBytes > 0 {
            self.unparsed = nil
            context.fireChannelRead(NIOAny(bytes))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if var earlier = self.unparsed {
            self.unparsed = nil
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        guard !self.parser.isUpgraded else {
            self.unparsed = buffer  // the tunnel's, once it is set up
            return
        }
        while true {
            let part: UpstreamResponsePart?
            do {
                part = try self.parser.next(&buffer)
            } catch {
                self.refuse(error, context: context)
                return
            }
            guard let part else { break }
            guard let delegate = self.delegate else {
                // Nothing is owed on an idle connection: the upstream broke framing. Drop it.
                context.close(promise: nil)
                return
            }
            if self.parser.isUpgraded {
                self.unparsed = buffer  // before the `.end`, which starts the tunnel
                delegate.upstreamReceived(part)
                return
            }
            delegate.upstreamReceived(part)
            if self.context == nil { return }
        }
        if buffer.readableBytes > 0 { self.unparsed = buffer }
    }

    /// The upstream's bytes are not a response the gateway accepts: end the exchange as for a
    /// broken connection (502, or the client cut off mid-response) and close.
    private func refuse(_ error: UpstreamResponseError, context: ChannelHandlerContext) {
        self.unparsed = nil
        self.errorCaught(context: context, error: error)
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
        self.isOpen = false
        // A body that runs until the close ends here.
        do {
            if let part = try self.parser.finish(unread: self.unparsed?.readableBytes ?? 0) {
                self.delegate?.upstreamReceived(part)
            }
        } catch {
            let delegate = self.delegate
            self.delegate = nil
            delegate?.upstreamClosed(error: error)
        }
        self.unparsed = nil
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
        self.parser.expectResponse(to: head.method)
        context.write(NIOAny(head.bytes), promise: nil)
    }

    /// Writes a piece of the request body, as a chunk when the request is chunked.
    func writeBody(_ buffer: ByteBuffer) {
        guard let context = self.context else { return }
        guard self.chunked else {
            context.write(NIOAny(buffer), promise: nil)
            return
        }
        // An empty chunk would end the body.
        guard buffer.readableBytes > 0 else { return }
        let size = ResponseEncoding.chunkHeader(buffer.readableBytes, allocator: context.channel.allocator)
        context.write(NIOAny(size), promise: nil)
        context.write(NIOAny(buffer), promise: nil)
        context.write(NIOAny(ResponseEncoding.crlf), promise: nil)
    }

    /// Ends the request: the last chunk of a chunked body (request trailers are never forwarded).
    func writeEnd() {
        guard let context = self.context, self.chunked else { return }
        self.chunked = false
        context.write(NIOAny(ResponseEncoding.lastChunkWithoutTrailers), promise: nil)
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
        self.isOpen = false
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
