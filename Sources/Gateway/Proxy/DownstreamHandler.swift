import Logging
import NIOCore
import NIOHTTP1

/// Settings every downstream connection shares; immutable.
struct DownstreamSettings: Sendable {
    let planner: RequestPlanner
    let logger: Logger
    let upstreamTimeout: TimeAmount
    let connectTimeout: TimeAmount
    let clientIdleTimeout: TimeAmount
    let maxBodyBytes: Int
    /// The longest request header block and request target (`limits.max_header_bytes`).
    let maxHeaderBytes: Int
    /// Write a line per request to the access log.
    let accessLog: Bool
    /// The request id header returned to clients; nil when request ids are off.
    let requestIDHeader: String?

    /// An established tunnel with no traffic this long is closed (`timeouts.tunnel_idle_seconds`).
    let tunnelIdleTimeout: TimeAmount

    func upstreamTimeout(for route: Route) -> TimeAmount {
        route.upstreamSeconds.map { .fromSeconds($0) } ?? self.upstreamTimeout
    }

    func connectTimeout(for route: Route) -> TimeAmount {
        route.connectSeconds.map { .fromSeconds($0) } ?? self.connectTimeout
    }

    func maxBodyBytes(for route: Route) -> Int {
        route.maxBodyBytes ?? self.maxBodyBytes
    }
}

/// What the access log and the metrics record about the request in progress.
struct RequestTrace {
    let started: NIODeadline
    let time: Double
    let method: HTTPMethod
    var path: String
    /// The matched route's `path_prefix` (a retained string, not the whole route).
    var route: String?
    var requestID: RequestID?
    var decision = Decision.allowed
    var reason: String?
    var subject: String?
    /// `http://host:port` of the upstream, for the access log only (nil when it is off).
    var upstream: String?
    /// When the request head was handed to the upstream connection.
    var forwarded: NIODeadline?
    var upstreamSeconds: Double?
    var status = 0
    /// When the response head was written to the client.
    var responded: NIODeadline?
    var requestBytes = 0
    var responseBytes = 0

    init(method: HTTPMethod, started: NIODeadline = .now(), time: Double = WallClock.now()) {
        self.started = started
        self.time = time
        self.method = method
        self.path = ""
    }

    var routeLabel: String { self.route ?? "none" }
}

/// One client connection: decides each request with `RequestPlanner`, answers locally or streams
/// it to an upstream connection leased from this event loop's pool, and streams the response back.
///
/// It reads the connection's bytes itself, with `ClientRequestParser` (no decoder in front of it).
///
/// Backpressure crosses the two channels: this channel reads only while the upstream can take
/// more (`read(context:)`), and the upstream reads only while this channel is writable.
///
/// Writes wrap their bytes with `NIOAny(_:)` and reads unwrap with `self.unwrapInboundIn`, not the
/// static `Self.wrapOutboundOut`/`Self.unwrapInboundIn`: this compiler left those two
/// unspecialised (a generic call and a dynamic cast, about 500 instructions each, twice per
/// request on each side; BENCHMARKS.md, 2026-12-02 evening).
final class DownstreamHandler: ChannelDuplexHandler, UpstreamHandlerDelegate, BatchFlushable {
    typealias InboundIn = ByteBuffer
    /// Bytes left over after an upgrade request, passed on to the tunnel when this handler leaves.
    typealias InboundOut = ByteBuffer
    /// Responses are the gateway's own encoding (`ResponseEncoding`): bytes, with no encoder
    /// between this handler and the socket (or TLS).
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// One request/response exchange with an upstream.
    final class Exchange {
        let plan: ForwardPlan
        let requestVersion: HTTPVersion
        /// False once the connection is to close after this exchange (also set by a drain).
        var requestKeepAlive: Bool
        var connection: UpstreamHandler?
        var reused = false
        var attempts = 0
        /// Body parts (nil: the end) received before the upstream connection was ready.
        var buffered: [ByteBuffer?] = []
        var requestEnded = false
        var requestBodyBytes = 0
        var sentBodyUpstream = false
        var responseHeadSent = false
        /// How the response body goes to the client, once its head is written.
        var responseFraming = ResponseBodyFraming.none
        var upstreamKeepAlive = true
        var closeAfterResponse = false
        /// When the upstream's response head is due (set once the whole request was sent).
        var responseDeadline: NIODeadline?
        /// The `101` to relay once the upstream's response ends (a tunnelled upgrade).
        var switchingHead: HTTPResponseHead?

        /// `plan` comes last so that a caller can read from it in the other arguments, then
        /// `consume` it (a copy would retain each of its references).
        init(requestVersion: HTTPVersion, requestKeepAlive: Bool, plan: consuming ForwardPlan) {
            self.plan = plan
            self.requestVersion = requestVersion
            self.requestKeepAlive = requestKeepAlive
        }
    }

    /// A request held while its providers' keys refresh.
    final class PendingRequest {
        let head: ClientRequestHead
        var parts: [ClientRequestPart] = []
        /// Its end arrived; what follows belongs to the next request.
        var ended = false

        init(head: ClientRequestHead) {
            self.head = head
        }
    }

    private enum State {
        /// Between requests.
        case idle
        /// Answered locally; waiting for the rest of the request before the next one.
        case answered
        /// Waiting for a key-set refresh before deciding; request parts are held meanwhile.
        case awaitingKeys(PendingRequest)
        case proxying(Exchange)
        /// The connection is going away; ignore everything.
        case closing
    }

    private let runtimes: RuntimeBox
    /// The runtime this connection's current request is decided with; refreshed between
    /// requests when a reload published a new one.
    private var runtime: GatewayRuntime
    private var settings: DownstreamSettings
    private let resources: LoopResources
    private let pool: UpstreamConnectionPool
    private let tokenCache: TokenCache?
    /// The connection is TLS (decrypted by a `NIOSSLServerHandler` in front of this handler).
    private let overTLS: Bool
    private var state: State = .idle
    /// The client's requests, read from its bytes.
    private var parser: ClientRequestParser
    /// Bytes received and not parsed yet: the start of a head, or (HTTP/1.1 pipelining) requests
    /// that arrived while an earlier one was still being answered, parsed once it completes.
    /// While they wait the connection reads no more, so this holds at most what one read
    /// brought. After an upgrade request, the bytes that followed it, handed to the tunnel.
    /// (Not parsing ahead replaces NIO's HTTPServerPipelineHandler, which stops reading during
    /// every response and so costs two `epoll_ctl` calls per request.)
    private var unparsed: ByteBuffer
    /// What `unparsed` is once consumed.
    private let noBytes: ByteBuffer
    /// Inside `parseAvailable` (an exchange that completes while a part is processed must not
    /// start another pass).
    private var parsing = false
    /// The connection becomes a tunnel: `unparsed` goes to it when this handler leaves.
    private var splicing = false
    /// The server is draining: finish the exchange in progress, then close.
    private var quiescing = false
    /// The request in progress, for the access log and metrics.
    private var trace: RequestTrace?
    private var context: ChannelHandlerContext?
    private var clientAddress: String?
    private var pendingRead = false
    /// One timer per connection: it wakes at the earliest deadline that matters (client idle,
    /// stalled body, upstream response) and re-arms itself. Requests only move timestamps, so the
    /// request path schedules nothing.
    private var watchdog: Scheduled<Void>?
    private var watchdogDeadline: NIODeadline?
    /// Last time the client sent something (or an exchange ended).
    private var lastClientActivity = NIODeadline.now()
    /// Between `channelRead` and `channelReadComplete` (upstream writes are flushed at the end).
    private var reading = false
    /// Response bytes not handed to the channel yet: the head, with the body pieces that came in
    /// the same read appended while they fit, goes out as one buffer (one `write`, not a
    /// `writev` of several). Written at the end of each upstream read, or of the response.
    private var unwritten: ByteBuffer?
    /// The last request head sent upstream and the last response buffer handed to the channel,
    /// kept to write the next ones into: once the channel has written and released them, their
    /// memory is reused instead of allocating two buffers per request. While the channel still
    /// holds one, writing into it allocates anew (`ByteBuffer.clear(minimumCapacity:)`), so
    /// nothing written is ever overwritten. Buffers that grew past `spareCapacityLimit` (a huge
    /// head) are not kept, so an idle connection holds at most that much.
    private var spareHeadBuffer: ByteBuffer?
    private var spareResponseBuffer: ByteBuffer?
    /// The last Host value, for the planner (`PlanContext.hostMemo`).
    private var hostMemo = StringMemo()
    static let spareCapacityLimit = 4096

    init(runtimes: RuntimeBox, resources: LoopResources, overTLS: Bool = false) {
        self.runtimes = runtimes
        self.runtime = runtimes.runtime
        self.settings = self.runtime.settings
        self.resources = resources
        self.pool = resources.pool
        self.tokenCache = resources.tokenCache
        self.overTLS = overTLS
        self.parser = ClientRequestParser(maximumFieldBytes: self.settings.maxHeaderBytes)
        self.noBytes = ByteBuffer()
        self.unparsed = self.noBytes
    }

    var downstreamIsWritable: Bool { self.context?.channel.isWritable ?? false }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.clientAddress = context.channel.remoteAddress?.ipAddress
        if context.channel.isActive { self.connectionStarted() }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.connectionStarted()
        context.fireChannelActive()
    }

    private var counted = false

    private func connectionStarted() {
        self.clientAddress = self.context?.channel.remoteAddress?.ipAddress
        if !self.counted {
            self.counted = true
            self.resources.metrics.connectionOpened()
        }
        self.startIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.teardown()
        self.context = nil
        if self.splicing, self.unparsed.readableBytes > 0 {
            // What the client sent after its upgrade request belongs to the tunnel, in order.
            context.fireChannelRead(Self.wrapInboundOut(self.unparsed))
        }
        self.unparsed = self.noBytes
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.teardown()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.reading = true
        var bytes = self.unwrapInboundIn(data)
        if case .closing = self.state { return }
        if self.unparsed.readableBytes > 0 {
            self.unparsed.writeBuffer(&bytes)
        } else {
            self.unparsed = bytes
        }
        self.parseAvailable(context: context)
    }

    /// Parses and processes the unread bytes, up to the end of the current request: a request
    /// pipelined behind it waits, unparsed, until it is answered (`exchangeCompleted`).
    private func parseAvailable(context: ChannelHandlerContext) {
        guard !self.parsing else { return }
        self.parsing = true
        defer { self.parsing = false }
        // Not `while unparsed has bytes`: the end of a request may need none.
        while true {
            if case .closing = self.state {
                self.unparsed = self.noBytes
                return
            }
            // The next request waits for this one's answer; after a request that closes the
            // connection nothing is read; after an upgrade, the bytes are a tunnel's.
            if self.currentRequestComplete || self.parser.isStopped { break }
            let part: ClientRequestPart?
            do {
                part = try self.parser.next(&self.unparsed)
            } catch {
                self.refuse(error, context: context)
                return
            }
            guard let part else { break }
            self.process(part, context: context)
        }
        // Holding no view of a consumed read lets the channel reuse its buffer.
        if self.unparsed.readableBytes == 0 { self.unparsed = self.noBytes }
    }

    private func process(_ part: ClientRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head): self.receivedHead(head, context: context)
        case .body(let buffer): self.receivedBody(buffer, context: context)
        case .end: self.receivedEnd(context: context)
        }
    }

    /// The current request was received in full (its response may still be under way).
    private var currentRequestComplete: Bool {
        switch self.state {
        case .proxying(let exchange): exchange.requestEnded
        case .awaitingKeys(let pending): pending.ended
        case .idle, .answered, .closing: false
        }
    }

    /// Called whenever an exchange completed and the connection stays open: closes a draining
    /// connection, else replays pipelined requests that waited, then reads again.
    private func exchangeCompleted(context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        if self.quiescing {
            self.unparsed = self.noBytes
            self.state = .closing
            self.closeConnection(context)
            return
        }
        self.parseAvailable(context: context)
        self.readIfPending(context: context)
    }

    /// Issues a read held back earlier, if nothing holds it back any more.
    private func readIfPending(context: ChannelHandlerContext) {
        guard self.pendingRead else { return }
        self.pendingRead = false
        self.read(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // Draining: idle connections close now; a connection with an exchange under way closes
        // after it (with `Connection: close` when its response has not started); requests
        // pipelined behind it are not served.
        self.quiescing = true
        if self.currentRequestComplete { self.unparsed = self.noBytes }  // pipelined requests are not served
        switch self.state {
        case .idle:
            self.state = .closing
            self.closeConnection(context)
        case .proxying(let exchange):
            if exchange.responseHeadSent { exchange.closeAfterResponse = true } else { exchange.requestKeepAlive = false }
        case .answered, .awaitingKeys, .closing:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.reading = false
        if case .proxying(let exchange) = self.state, let connection = exchange.connection {
            self.resources.flushes.flushSoon(connection)
        }
        context.fireChannelReadComplete()
    }

    /// Flushes what was written to the upstream at the end of the event loop's pass
    /// (`FlushBatch`), unless this channel is inside a read: then `channelReadComplete` asks
    /// once for everything the read brought.
    private func flushUpstream(_ connection: UpstreamHandler) {
        if !self.reading { self.resources.flushes.flushSoon(connection) }
    }

    /// Set while the connection waits in its loop's `FlushBatch`.
    var flushQueued = false

    func flushNow() {
        self.context?.flush()
    }

    /// Closes the client connection after flushing what waits for `FlushBatch`: a close fails
    /// unflushed writes, and a response written this pass would be lost.
    private func closeConnection(_ context: ChannelHandlerContext) {
        context.flush()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .proxying(let exchange) = self.state {
            exchange.connection?.resumeReading()
        } else if !context.channel.isWritable {
            context.flush()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.parser.isStopped || (self.unparsed.readableBytes > 0 && self.currentRequestComplete) {
            // Pipelined requests are waiting: read no more until they are served. Nothing is
            // read after a request that closes the connection or asks for an upgrade (a tunnel
            // reads once it starts).
            self.pendingRead = true
            return
        }
        if case .awaitingKeys = self.state {
            self.pendingRead = true
            return
        }
        if case .proxying(let exchange) = self.state, !exchange.requestEnded,
            !(exchange.connection?.isWritable ?? false)
        {
            // No upstream yet, or it cannot take more: hold the client's bytes in the kernel.
            self.pendingRead = true
            return
        }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.settings.logger.debug("client connection error", metadata: ["error": "\(error)"])
        self.state = .closing
        self.closeConnection(context)
    }

    /// The client's bytes are not an acceptable request: answer it if no response is under way,
    /// then close (nothing after them can be delimited).
    private func refuse(_ error: ClientRequestError, context: ChannelHandlerContext) {
        self.settings.logger.debug("rejected malformed request", metadata: ["error": "\(error)"])
        if self.canStartResponse {
            self.abandonExchange()
            if self.trace == nil { self.trace = RequestTrace(method: .RAW(value: "-")) }
            self.trace?.decision = .rejected
            self.trace?.reason = error.reason
            self.answer(error.response, version: .http1_1, keepAlive: false, context: context)
        }
        self.unparsed = self.noBytes
        self.state = .closing
        self.closeConnection(context)
    }

    // MARK: Request

    private func receivedHead(_ head: ClientRequestHead, context: ChannelHandlerContext) {
        guard case .idle = self.state else {
            // `channelRead` queues a request until the one before it completes; anything else
            // is a bug.
            self.state = .closing
            self.closeConnection(context)
            return
        }
        // One reading of each clock serves the idle timer, the trace and the token's time checks.
        let started = NIODeadline.now()
        let time = WallClock.now()
        self.lastClientActivity = started
        if self.runtimes.epoch != self.runtime.epoch {
            self.runtime = self.runtimes.runtime
            self.settings = self.runtime.settings
            // From the next request on (this one was read with the limit it started with).
            self.parser.maximumFieldBytes = self.settings.maxHeaderBytes
        }
        self.trace = RequestTrace(method: head.method, started: started, time: time)
        self.dispatch(head, allowKeyRefresh: true, now: time, context: context)
    }

    /// Plans a request and starts answering or forwarding it.
    /// - Parameters:
    ///   - requestEnded: the request's end was already received (a request replayed after a key
    ///     refresh); a local answer then completes the exchange at once, because the pipelining
    ///     handler may deliver the next request as soon as the answer is written.
    ///   - now: the wall clock for the token's time checks (read here when not given: a request
    ///     replayed after a key refresh is checked at the time it is replayed).
    private func dispatch(
        _ head: ClientRequestHead, allowKeyRefresh: Bool, requestEnded: Bool = false, now: Double? = nil,
        context: ChannelHandlerContext
    ) {
        let keepAlive = head.keepAlive && !self.quiescing
        var planContext = PlanContext(generator: self.resources.requestIDs)
        planContext.headBuffer = self.spareHeadBuffer.take()
        planContext.hostMemo = exchange(&self.hostMemo, with: StringMemo())
        let plan = self.settings.planner.plan(
            head, clientAddress: self.clientAddress, overTLS: self.overTLS, now: now ?? WallClock.now(),
            allowKeyRefresh: allowKeyRefresh, cache: self.tokenCache, context: &planContext)
        self.hostMemo = exchange(&planContext.hostMemo, with: StringMemo())
        // Not taken when the request is answered locally.
        if let unused = planContext.headBuffer.take() { self.spareHeadBuffer = unused }
        if self.trace != nil {
            self.trace?.route = planContext.route?.pathPrefix
            self.trace?.path = planContext.path ?? AccessLogRecord.rawPath(of: head.target)
            self.trace?.requestID = planContext.requestID
        }
        switch consume plan {
        case .respond(let response, let reason):
            self.settings.logger.debug(
                "answered locally",
                metadata: ["status": "\(response.status.code)", "reason": "\(reason)", "method": "\(head.method)"])
            self.trace?.decision = Decision.of(reason: reason, status: Int(response.status.code))
            self.trace?.reason = reason
            self.state = requestEnded ? .idle : .answered
            self.answer(response, version: head.version, keepAlive: keepAlive, context: context)
            if requestEnded, case .idle = self.state {
                self.startIdleTimer()
                self.exchangeCompleted(context: context)
            }
        case .forward(let plan):
            if plan.head.bytes.capacity <= Self.spareCapacityLimit { self.spareHeadBuffer = plan.head.bytes }
            self.trace?.subject = plan.subject
            if self.settings.accessLog { self.trace?.upstream = self.resources.label(for: plan.upstream) }
            let exchange = Exchange(
                requestVersion: head.version, requestKeepAlive: keepAlive && !plan.closeConnection, plan: consume plan)
            self.state = .proxying(exchange)
            // Until the request ends, a client that stalls mid-body gets 408 (the watchdog).
            self.startIdleTimer()
            self.connect(exchange, allowReuse: true)
        case .refreshKeys(let providers):
            guard let refresh = self.settings.planner.keys.refresh(providers) else {
                self.dispatch(head, allowKeyRefresh: false, context: context)
                return
            }
            let pending = PendingRequest(head: head)
            self.state = .awaitingKeys(pending)
            refresh.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] _ in
                guard case .awaitingKeys(let current) = self.state, current === pending, let context = self.context else {
                    return
                }
                self.state = .idle
                defer { self.readIfPending(context: context) }
                let ended = pending.ended
                self.dispatch(pending.head, allowKeyRefresh: false, requestEnded: ended, context: context)
                guard case .proxying = self.state else { return }  // answered locally: parts are moot
                for part in pending.parts {
                    switch part {
                    case .head: break
                    case .body(let buffer): self.receivedBody(buffer, context: context)
                    case .end: self.receivedEnd(context: context)
                    }
                }
            }
        }
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        if case .awaitingKeys(let pending) = self.state {
            pending.parts.append(.body(buffer))
            return
        }
        guard case .proxying(let exchange) = self.state else { return }  // answered or closing: discard
        self.lastClientActivity = .now()
        exchange.requestBodyBytes += buffer.readableBytes
        self.trace?.requestBytes = exchange.requestBodyBytes
        let limit = self.settings.maxBodyBytes(for: exchange.plan.route)
        if exchange.requestBodyBytes > limit {
            self.settings.logger.debug("request body over the limit", metadata: ["limit": "\(limit)"])
            self.fail(exchange, with: .payloadTooLarge, reason: "body_too_large", context: context)
            return
        }
        self.send(buffer, exchange: exchange)
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch self.state {
        case .awaitingKeys(let pending):
            pending.parts.append(.end)
            pending.ended = true
        case .answered:
            self.state = .idle
            self.startIdleTimer()
            self.exchangeCompleted(context: context)
        case .proxying(let exchange):
            exchange.requestEnded = true
            // Request trailers are dropped: they would carry headers (identity headers among
            // them) past the rewriting that heads get, and upstreams rarely read them.
            self.send(nil, exchange: exchange)
            if let connection = exchange.connection {
                self.flushUpstream(connection)
                self.armResponseTimer(exchange, context: context)
            }
        case .idle, .closing:
            break
        }
    }

    /// Sends a piece of the request body upstream, or its end (nil), or holds it until the
    /// upstream connection is ready.
    private func send(_ part: ByteBuffer?, exchange: Exchange) {
        if let connection = exchange.connection {
            Self.write(part, to: connection, exchange: exchange)
        } else {
            exchange.buffered.append(part)
        }
    }

    private static func write(_ part: ByteBuffer?, to connection: UpstreamHandler, exchange: Exchange) {
        if let body = part {
            exchange.sentBodyUpstream = true
            connection.writeBody(body)
        } else {
            connection.writeEnd()
        }
    }

    // MARK: Upstream

    private func connect(_ exchange: Exchange, allowReuse: Bool) {
        exchange.attempts += 1
        // An idle pooled connection, else a new one (`allowReuse` is false for the retry of a
        // request whose reused connection had just been closed by the upstream).
        if allowReuse, exchange.plan.upgrade == nil, let context = self.context,
            let connection = self.pool.takeIdle(exchange.plan.upstream)
        {
            self.attach(connection, reused: true, to: exchange, context: context)
            return
        }
        let timeout = self.settings.connectTimeout(for: exchange.plan.route)
        // Never a pooled connection for an upgrade: it becomes a tunnel or closes after this exchange.
        self.pool.connect(exchange.plan.upstream, dedicated: exchange.plan.upgrade != nil, connectTimeout: timeout) {
            [self] result in
            guard case .proxying(let current) = self.state, current === exchange, let context = self.context else {
                // The client went away or the exchange failed meanwhile.
                if case .success(let connection) = result { connection.close() }
                return
            }
            switch result {
            case .success(let connection):
                self.attach(connection, reused: false, to: exchange, context: context)
            case .failure(let error):
                self.settings.logger.warning(
                    error is UpstreamTLSFailure ? "upstream TLS failed" : "upstream unreachable",
                    metadata: ["upstream": "\(exchange.plan.upstream)", "error": "\(error)"])
                let timedOut: Bool
                if case ChannelError.connectTimeout = error { timedOut = true } else { timedOut = false }
                self.resources.metrics.countUpstreamError(
                    upstream: "\(exchange.plan.upstream)", kind: timedOut ? "connect_timeout" : "connect")
                self.fail(
                    exchange, with: timedOut ? .gatewayTimeout : .badGateway,
                    reason: timedOut ? "upstream_connect_timeout" : "upstream_unreachable", context: context)
            }
        }
    }

    private func attach(_ connection: UpstreamHandler, reused: Bool, to exchange: Exchange, context: ChannelHandlerContext) {
        exchange.connection = connection
        exchange.reused = reused
        connection.delegate = self
        self.trace?.forwarded = .now()
        connection.writeHead(exchange.plan.head)
        for part in exchange.buffered { Self.write(part, to: connection, exchange: exchange) }
        exchange.buffered = []
        self.flushUpstream(connection)
        if exchange.plan.expectContinue && !exchange.requestEnded && exchange.attempts == 1 {
            context.writeAndFlush(NIOAny(ResponseEncoding.continueHead(version: exchange.requestVersion)), promise: nil)
        }
        if exchange.requestEnded { self.armResponseTimer(exchange, context: context) }
        self.readIfPending(context: context)
    }

    /// `upstream_seconds` counts from the moment the whole request was handed to the upstream
    /// until its response head arrives; a long upload does not eat into it.
    private func armResponseTimer(_ exchange: Exchange, context: ChannelHandlerContext) {
        guard exchange.responseDeadline == nil, !exchange.responseHeadSent else { return }
        let deadline = NIODeadline.now() + self.settings.upstreamTimeout(for: exchange.plan.route)
        exchange.responseDeadline = deadline
        self.ensureWatchdog(by: deadline, context: context)
    }

    func upstreamReceived(_ part: UpstreamResponsePart) {
        guard case .proxying(let exchange) = self.state, let context = self.context else { return }
        switch part {
        case .head(let upstreamHead) where upstreamHead.status == .switchingProtocols:
            self.upstreamSwitching(upstreamHead, exchange: exchange, context: context)
        case .end where exchange.switchingHead != nil:
            self.startTunnel(exchange, context: context)
        case .head(let upstreamHead):
            exchange.responseDeadline = nil
            exchange.upstreamKeepAlive = upstreamHead.keepAlive
            // Room for a typical head and a small body (a larger head grows the buffer).
            var bytes = self.spareResponseBuffer.take() ?? context.channel.allocator.buffer(capacity: 1024)
            bytes.clear(minimumCapacity: 1024)  // keeps the memory only if the channel let go of it
            let (close, framing) = HeaderRewriter.writeResponseHead(
                upstreamHead, requestMethod: exchange.plan.head.method, requestVersion: exchange.requestVersion,
                requestKeepAlive: exchange.requestKeepAlive, requestID: self.requestIDHeader, into: &bytes)
            exchange.closeAfterResponse = close
            exchange.responseFraming = framing
            exchange.responseHeadSent = true
            let arrived = NIODeadline.now()
            if let forwarded = self.trace?.forwarded {
                self.trace?.upstreamSeconds = Double((arrived - forwarded).nanoseconds) / 1e9
            }
            self.traceResponse(status: upstreamHead.status, at: arrived)
            self.writeUnwritten(context: context)
            self.unwritten = bytes
        case .body(var buffer):
            switch exchange.responseFraming {
            case .asIs:
                self.trace?.responseBytes += buffer.readableBytes
                if var pending = self.unwritten, pending.writableBytes >= buffer.readableBytes {
                    self.unwritten = nil  // `pending` is then the buffer's only owner: no copy on write
                    pending.writeBuffer(&buffer)
                    self.unwritten = pending
                } else {
                    self.writeUnwritten(context: context)
                    context.write(NIOAny(buffer), promise: nil)
                }
            case .chunked where buffer.readableBytes > 0:  // an empty chunk would end the body
                let count = buffer.readableBytes
                self.trace?.responseBytes += count
                if var pending = self.unwritten, pending.writableBytes >= count + 20 {
                    self.unwritten = nil
                    pending.writeChunkHeader(count)
                    pending.writeBuffer(&buffer)
                    pending.writeStaticString("\r\n")
                    self.unwritten = pending
                } else {
                    self.writeUnwritten(context: context)
                    context.write(
                        NIOAny(ResponseEncoding.chunkHeader(count, allocator: context.channel.allocator)),
                        promise: nil)
                    context.write(NIOAny(buffer), promise: nil)
                    context.write(NIOAny(ResponseEncoding.crlf), promise: nil)
                }
            case .chunked, .none:
                break  // a body where none may be: not for the client
            }
        case .end(let trailers):
            self.finishResponse(exchange, trailers: trailers, context: context)
        }
    }

    func upstreamReadComplete() {
        guard let context = self.context else { return }
        self.writeUnwritten(context: context)
        self.resources.flushes.flushSoon(self)
    }

    /// Hands `unwritten` to the channel (not flushed).
    private func writeUnwritten(context: ChannelHandlerContext) {
        guard let bytes = self.unwritten else { return }
        self.unwritten = nil
        self.keepAsSpare(bytes)
        context.write(NIOAny(bytes), promise: nil)
    }

    /// Keeps the first buffer of a response handed to the channel (the one its head was written
    /// into, taken from `spareResponseBuffer`), to write the next response head into. Later
    /// buffers of the same response, such as a chunked body's small last chunk, do not replace
    /// it. Call it after the last change to `bytes`: a change made while the spare holds it too
    /// would copy it.
    private func keepAsSpare(_ bytes: ByteBuffer) {
        guard self.spareResponseBuffer == nil, bytes.capacity <= Self.spareCapacityLimit else { return }
        self.spareResponseBuffer = bytes
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        guard isWritable, let context = self.context else { return }
        self.readIfPending(context: context)
    }

    func upstreamClosed(error: (any Error)?) {
        guard case .proxying(let exchange) = self.state, let context = self.context else { return }
        exchange.connection = nil
        exchange.responseDeadline = nil
        if let invalid = error as? UpstreamResponseError {
            // The upstream answered with bytes the parser refuses: not a closed connection to
            // retry on.
            self.settings.logger.warning(
                "upstream sent an invalid response",
                metadata: ["upstream": "\(exchange.plan.upstream)", "error": "\(invalid)"])
            self.resources.metrics.countUpstreamError(upstream: "\(exchange.plan.upstream)", kind: "invalid_response")
            if exchange.responseHeadSent {
                self.cutOff(reason: "upstream_invalid_response", context: context)
            } else {
                self.fail(exchange, with: .badGateway, reason: "upstream_invalid_response", context: context)
            }
            return
        }
        if exchange.responseHeadSent {
            self.resources.metrics.countUpstreamError(upstream: "\(exchange.plan.upstream)", kind: "closed")
            self.cutOff(reason: "upstream_closed_mid_response", context: context)
            return
        }
        // A reused keep-alive connection may have been closed by the upstream just as we sent on
        // it. Retry once on a new connection when nothing but the head was sent.
        let bodiless = exchange.plan.framing == .none || exchange.plan.framing == .contentLength(0)
        if exchange.reused && exchange.attempts == 1 && !exchange.sentBodyUpstream && bodiless {
            exchange.buffered = exchange.requestEnded ? [nil] : []
            self.connect(exchange, allowReuse: false)
            return
        }
        self.settings.logger.warning(
            "upstream closed before responding",
            metadata: ["upstream": "\(exchange.plan.upstream)", "error": "\(error.map { "\($0)" } ?? "eof")"])
        self.resources.metrics.countUpstreamError(upstream: "\(exchange.plan.upstream)", kind: "closed")
        self.fail(exchange, with: .badGateway, reason: "upstream_closed", context: context)
    }

    /// The upstream failed mid-response: there is no way to signal it but to cut the client off too.
    private func cutOff(reason: String, context: ChannelHandlerContext) {
        self.trace?.reason = reason
        self.state = .closing
        self.closeConnection(context)
    }

    private func finishResponse(_ exchange: Exchange, trailers: HTTPHeaders?, context: ChannelHandlerContext) {
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.delegate = nil
            if exchange.requestEnded && exchange.upstreamKeepAlive && exchange.plan.upgrade == nil {
                self.pool.release(connection)
            } else {
                connection.close()
            }
        }
        // The upstream answered before the client finished sending: the rest of the request can't
        // be delimited from the next one without reading it, so close after this response.
        let close = exchange.closeAfterResponse || !exchange.requestEnded
        self.state = close ? .closing : .idle
        // What is left to write: the unwritten bytes, then the last chunk of a chunked body.
        var last = self.unwritten
        self.unwritten = nil
        if exchange.responseFraming == .chunked {
            let end = ResponseEncoding.lastChunk(trailers: trailers, allocator: context.channel.allocator)
            if var pending = last, pending.writableBytes >= end.readableBytes {
                last = nil
                pending.writeImmutableBuffer(end)
                last = pending
            } else {
                if let pending = last {
                    self.keepAsSpare(pending)
                    context.write(NIOAny(pending), promise: nil)
                }
                last = end
            }
        }
        self.finishTrace()
        if close {
            // Close once everything before it is on the wire.
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(NIOAny(last ?? ByteBuffer()), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            if let last {
                self.keepAsSpare(last)
                context.write(NIOAny(last), promise: nil)
            }
            self.resources.flushes.flushSoon(self)
            self.startIdleTimer()
            self.exchangeCompleted(context: context)
        }
    }

    /// Ends an exchange that has not sent a response head with a local error response.
    private func fail(_ exchange: Exchange, with response: LocalResponse, reason: String, context: ChannelHandlerContext) {
        exchange.responseDeadline = nil
        self.trace?.reason = reason
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.close()
        }
        guard !exchange.responseHeadSent else {
            self.state = .closing
            self.closeConnection(context)
            return
        }
        exchange.responseHeadSent = true
        // Keep the connection only if the request is complete; otherwise its remaining body bytes
        // would be read as the next request.
        let keepAlive = exchange.requestEnded && exchange.requestKeepAlive && !response.close
        self.state = keepAlive ? .idle : .closing
        self.answer(response, version: exchange.requestVersion, keepAlive: keepAlive, context: context)
        if keepAlive {
            self.startIdleTimer()
            self.exchangeCompleted(context: context)
        }
    }

    // MARK: Protocol upgrade

    /// A `101` head from the upstream: for a tunnelled upgrade that switched to a protocol the
    /// client offered, wait for its end and then tunnel; anything else is a bad gateway (the
    /// parser reads nothing more on that connection after a 101).
    private func upstreamSwitching(_ upstreamHead: UpstreamResponseHead, exchange: Exchange, context: ChannelHandlerContext) {
        guard let requested = exchange.plan.upgrade, exchange.requestEnded,
            let head = HeaderRewriter.switchingProtocolsHead(upstreamHead.typed, requested: requested)
        else {
            self.settings.logger.warning(
                "upstream switched protocols unasked",
                metadata: ["upstream": "\(exchange.plan.upstream)", "upgrade": "\(upstreamHead.values("upgrade"))"])
            self.fail(exchange, with: .badGateway, reason: "upstream_switched_unasked", context: context)
            return
        }
        exchange.responseDeadline = nil
        exchange.switchingHead = head
    }

    /// The `101` is complete: hand both connections to a tunnel. This handler leaves the pipeline.
    private func startTunnel(_ exchange: Exchange, context: ChannelHandlerContext) {
        guard let connection = exchange.connection, var head = exchange.switchingHead else { return }
        exchange.connection = nil
        exchange.responseHeadSent = true
        connection.delegate = nil
        self.cancelWatchdog()
        self.state = .closing
        self.splicing = true
        if let requestID = self.requestIDHeader { head.headers.replaceOrAdd(name: requestID.name, value: requestID.value.text) }
        // The exchange ends here for the access log and metrics: the tunnel is not a request.
        if let forwarded = self.trace?.forwarded {
            self.trace?.upstreamSeconds = Double((NIODeadline.now() - forwarded).nanoseconds) / 1e9
        }
        self.traceResponse(status: head.status)
        self.finishTrace()
        let metrics = self.resources.metrics
        metrics.tunnelOpened()
        context.channel.closeFuture.assumeIsolated().whenComplete { _ in metrics.tunnelClosed() }
        TunnelSplice.splice(
            downstream: context, upstream: connection, head: head, idleTimeout: self.settings.tunnelIdleTimeout,
            logger: self.settings.logger)
    }

    // MARK: Helpers

    /// The request id header and value to return with the response, if any.
    private var requestIDHeader: (name: String, value: RequestID)? {
        guard let header = self.settings.requestIDHeader, let id = self.trace?.requestID else { return nil }
        return (header, id)
    }

    private var canStartResponse: Bool {
        switch self.state {
        case .idle, .awaitingKeys: true
        case .proxying(let exchange): !exchange.responseHeadSent
        case .answered, .closing: false
        }
    }

    private func abandonExchange() {
        guard case .proxying(let exchange) = self.state else { return }
        exchange.responseDeadline = nil
        exchange.connection?.close()
        exchange.connection = nil
    }

    /// Writes a complete local response; closes afterwards unless `keepAlive` and the response allow.
    private func answer(_ response: LocalResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        let keep = keepAlive && !response.close
        var head = response.head(version: version, keepAlive: keep)
        if let header = self.settings.requestIDHeader, let id = self.trace?.requestID {
            head.headers.replaceOrAdd(name: header, value: id.text)
        }
        self.traceResponse(status: head.status)
        let method = self.trace?.method
        let bytes = ResponseEncoding.localResponse(
            head, body: response.body, requestMethod: method, allocator: context.channel.allocator)
        if method != .HEAD { self.trace?.responseBytes += response.body.utf8.count }
        self.finishTrace()
        if keep {
            context.writeAndFlush(NIOAny(bytes), promise: nil)
        } else {
            self.state = .closing
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(NIOAny(bytes), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Notes client activity and makes sure the watchdog will look at the connection by
    /// `client_idle_seconds` from now: it closes an idle connection and answers 408 to a request
    /// whose body stalls that long.
    private func startIdleTimer() {
        guard let context = self.context else { return }
        self.lastClientActivity = .now()
        self.ensureWatchdog(by: self.lastClientActivity + self.settings.clientIdleTimeout, context: context)
    }

    /// Schedules the watchdog for `deadline` unless it already wakes up by then.
    private func ensureWatchdog(by deadline: NIODeadline, context: ChannelHandlerContext) {
        if self.watchdog != nil, let current = self.watchdogDeadline, current <= deadline { return }
        self.watchdog?.cancel()
        self.watchdogDeadline = deadline
        // Holds the handler until it fires or is cancelled (`teardown` does): no `weak`, which
        // would give the handler a side table and slow down every retain and release of it.
        self.watchdog = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.watchdogFired()
        }
    }

    private func watchdogFired() {
        self.watchdog = nil
        self.watchdogDeadline = nil
        guard let context = self.context else { return }
        let now = NIODeadline.now()
        let idleDeadline = self.lastClientActivity + self.settings.clientIdleTimeout
        switch self.state {
        case .idle, .answered:
            if now >= idleDeadline {
                self.state = .closing
                self.closeConnection(context)
            } else {
                self.ensureWatchdog(by: idleDeadline, context: context)
            }
        case .proxying(let exchange) where !exchange.requestEnded:
            if now >= idleDeadline {
                self.settings.logger.debug("client stalled while sending the request body")
                self.fail(exchange, with: .requestTimeout, reason: "client_body_timeout", context: context)
            } else {
                self.ensureWatchdog(by: idleDeadline, context: context)
            }
        case .proxying(let exchange):
            guard let responseDeadline = exchange.responseDeadline else { return }  // streaming a response
            if now >= responseDeadline {
                self.settings.logger.warning("upstream timed out", metadata: ["upstream": "\(exchange.plan.upstream)"])
                self.resources.metrics.countUpstreamError(upstream: "\(exchange.plan.upstream)", kind: "timeout")
                self.fail(exchange, with: .gatewayTimeout, reason: "upstream_timeout", context: context)
            } else {
                self.ensureWatchdog(by: responseDeadline, context: context)
            }
        case .awaitingKeys, .closing:
            break
        }
    }

    private func cancelWatchdog() {
        self.watchdog?.cancel()
        self.watchdog = nil
        self.watchdogDeadline = nil
    }

    private func teardown() {
        self.unwritten = nil
        self.cancelWatchdog()
        self.abandonExchange()
        self.state = .closing
        if self.trace != nil {
            // The connection ended mid-request: 499 (nginx's "client closed") unless a status
            // was already sent.
            if self.trace?.status == 0 {
                let reason = self.trace?.reason ?? "client_closed"
                self.trace?.status = 499
                self.trace?.reason = reason
            }
            self.finishTrace()
        }
        if self.counted {
            self.counted = false
            self.resources.metrics.connectionClosed()
        }
    }

    // MARK: Access log and metrics

    /// Records the finished request in the metrics and the access log.
    private func finishTrace() {
        // Moved out, not copied (a copy retains, and later releases, each of its strings).
        guard let trace = self.trace.take() else { return }
        let metrics = self.resources.metrics
        let route = trace.routeLabel
        metrics.countRequest(route: route, status: trace.status, decision: trace.decision, reason: trace.reason ?? "")
        metrics.countBodyBytes(request: trace.requestBytes, response: trace.responseBytes)
        if let upstream = trace.upstreamSeconds { metrics.observeUpstream(route: route, seconds: upstream) }
        if let responded = trace.responded {
            let total = Double((responded - trace.started).nanoseconds) / 1e9
            metrics.observeGateway(seconds: total - (trace.upstreamSeconds ?? 0))
        }
        guard self.settings.accessLog else { return }
        let duration = Double((NIODeadline.now() - trace.started).nanoseconds) / 1e9
        self.resources.log(
            AccessLogRecord(
                time: trace.time, requestID: trace.requestID, method: trace.method.rawValue, path: trace.path,
                route: trace.route, status: trace.status, decision: trace.decision, reason: trace.reason,
                subject: trace.subject, upstream: trace.upstream, client: self.clientAddress,
                durationSeconds: duration, upstreamSeconds: trace.upstreamSeconds, requestBytes: trace.requestBytes,
                responseBytes: trace.responseBytes))
    }

    /// Notes the status of a response whose head is being written.
    private func traceResponse(status: HTTPResponseStatus, at time: NIODeadline = .now()) {
        guard self.trace != nil else { return }
        self.trace?.status = Int(status.code)
        self.trace?.responded = time
    }
}

@available(*, unavailable)
extension DownstreamHandler: Sendable {}
