import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Per-connection HTTP handler for upstream-echo (see main.swift for the behaviour).
///
/// Sits behind `configureHTTPServerPipeline(withPipeliningAssistance: true, ...)`, so it sees
/// one request at a time: the pipeline handler holds back pipelined requests until the
/// response `.end` for the current one has been written.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Largest request body that is buffered for echoing; beyond this the answer is 413.
    static let maxBufferedBody = 16 * 1024 * 1024
    /// Chunk size used by `/__stream`.
    static let streamChunkSize = 64 * 1024
    /// One chunk of `x`, shared by every `/__stream` write (ByteBuffer is copy-on-write).
    static let streamChunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: streamChunkSize)

    /// What to do once the request has been fully received.
    private enum Action {
        case echo
        case stream(bytes: Int)
        case delay(milliseconds: Int64)
        case sink
        case close
        case status(Int)
        case badRequest(String)
    }

    private struct PendingRequest {
        var head: HTTPRequestHead
        var path: String
        var query: String?
        var action: Action
        /// Whether body bytes are kept (echo/delay) or only counted.
        var buffering: Bool
        var body: ByteBuffer?
        var bodyBytes: Int = 0
        var tooLarge = false
    }

    private enum State {
        case idle
        case receiving(PendingRequest)
        case delaying(Scheduled<Void>)
        case streaming(remaining: Int, keepAlive: Bool)
        case closed
    }

    private var state: State = .idle

    init() {}

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.receivedHead(context: context, head: head)
        case .body(var chunk):
            guard case .receiving(var request) = self.state else { return }
            self.state = .idle  // avoid a CoW copy of the accumulated body while mutating
            request.bodyBytes += chunk.readableBytes
            if request.buffering && !request.tooLarge {
                if request.bodyBytes > Self.maxBufferedBody {
                    request.tooLarge = true
                    request.body = nil
                } else if request.body == nil {
                    request.body = chunk
                } else {
                    request.body!.writeBuffer(&chunk)
                }
            }
            self.state = .receiving(request)
        case .end:
            guard case .receiving(let request) = self.state else { return }
            self.state = .idle
            self.receivedEnd(context: context, request: request)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.pumpStream(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .delaying(let scheduled) = self.state {
            scheduled.cancel()
        }
        self.state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refused WebSocket upgrade (not `/ws`, or no valid key): the request itself comes next
        // and is answered like any other.
        if error is NIOWebSocketUpgradeError { return }
        // Protocol errors are answered by the HTTP error handler; anything reaching us is fatal
        // for the connection.
        if case .delaying(let scheduled) = self.state {
            scheduled.cancel()
        }
        self.state = .closed
        context.close(promise: nil)
    }

    // MARK: - Request handling

    private func receivedHead(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard case .idle = self.state else { return }

        let path: String
        let query: String?
        if let questionMark = head.uri.firstIndex(of: "?") {
            path = String(head.uri[..<questionMark])
            query = String(head.uri[head.uri.index(after: questionMark)...])
        } else {
            path = head.uri
            query = nil
        }

        let action: Action
        switch path {
        case "/__stream":
            if let bytes = Self.queryParameter("bytes", in: query).flatMap({ Int($0) }), bytes >= 0 {
                action = .stream(bytes: bytes)
            } else {
                action = .badRequest("/__stream needs ?bytes=N with N >= 0")
            }
        case "/__delay":
            if let ms = Self.queryParameter("ms", in: query).flatMap({ Int64($0) }), ms >= 0 {
                action = .delay(milliseconds: ms)
            } else {
                action = .badRequest("/__delay needs ?ms=N with N >= 0")
            }
        case "/__sink":
            action = .sink
        case "/__close":
            action = .close
        case "/__status":
            if let code = Self.queryParameter("code", in: query).flatMap({ Int($0) }), (200...599).contains(code) {
                action = .status(code)
            } else {
                action = .badRequest("/__status needs ?code=N with 200 <= N <= 599")
            }
        default:
            action = .echo
        }

        let buffering: Bool
        switch action {
        case .echo, .delay, .status: buffering = true
        case .stream, .sink, .close, .badRequest: buffering = false
        }

        self.state = .receiving(
            PendingRequest(head: head, path: path, query: query, action: action, buffering: buffering)
        )

        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(
                Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                promise: nil
            )
        }
    }

    private func receivedEnd(context: ChannelHandlerContext, request: PendingRequest) {
        if request.tooLarge {
            let json = EchoJSONWriter.object([
                ("error", .string("request body exceeds \(Self.maxBufferedBody) bytes")),
                ("body_bytes", .int(request.bodyBytes)),
            ])
            self.respond(context: context, head: request.head, status: .payloadTooLarge, json: json)
            return
        }

        switch request.action {
        case .echo:
            self.respond(context: context, head: request.head, status: .ok, json: Self.echoJSON(request))
        case .sink:
            self.respond(context: context, head: request.head, status: .ok, json: Self.echoJSON(request))
        case .status(let code):
            self.respond(
                context: context, head: request.head, status: HTTPResponseStatus(statusCode: code),
                json: Self.echoJSON(request))
        case .badRequest(let message):
            let json = EchoJSONWriter.object([("error", .string(message))])
            self.respond(context: context, head: request.head, status: .badRequest, json: json)
        case .close:
            self.state = .closed
            context.close(promise: nil)
        case .delay(let milliseconds):
            let scheduled = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(milliseconds)) {
                guard case .delaying = self.state else { return }
                self.state = .idle
                self.respond(context: context, head: request.head, status: .ok, json: Self.echoJSON(request))
            }
            self.state = .delaying(scheduled)
        case .stream(let bytes):
            self.startStream(context: context, head: request.head, bytes: bytes)
        }
    }

    // MARK: - Responses

    private static func echoJSON(_ request: PendingRequest) -> ByteBuffer {
        // Group header values by lower-cased name, keeping first-appearance and value order.
        var names: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in request.head.headers {
            let lower = name.lowercased()
            if values[lower] == nil {
                names.append(lower)
                values[lower] = [value]
            } else {
                values[lower]!.append(value)
            }
        }
        let headers = EchoJSONWriter.Value.object(
            names.map { name in (name, .array(values[name]!.map { .string($0) })) }
        )
        let body = request.body.map { String(buffer: $0) } ?? ""
        return EchoJSONWriter.object([
            ("method", .string(request.head.method.rawValue)),
            ("path", .string(request.path)),
            ("query", request.query.map { .string($0) } ?? .null),
            ("headers", headers),
            ("body", .string(body)),
            ("body_bytes", .int(request.bodyBytes)),
        ])
    }

    /// Adds `connection` headers as needed and reports whether the connection stays open.
    private static func applyKeepAlive(request: HTTPRequestHead, to headers: inout HTTPHeaders) -> Bool {
        let keepAlive = request.isKeepAlive
        if !keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if request.version.major == 1 && request.version.minor == 0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        return keepAlive
    }

    private func respond(
        context: ChannelHandlerContext,
        head request: HTTPRequestHead,
        status: HTTPResponseStatus,
        json: ByteBuffer
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(json.readableBytes))
        let keepAlive = Self.applyKeepAlive(request: request, to: &headers)

        context.write(
            Self.wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil
        )
        if request.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(json))), promise: nil)
        }
        self.writeEnd(context: context, keepAlive: keepAlive)
    }

    private func writeEnd(context: ChannelHandlerContext, keepAlive: Bool) {
        if keepAlive {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in
                channel.close(promise: nil)
            }
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: promise)
        }
    }

    // MARK: - /__stream

    private func startStream(context: ChannelHandlerContext, head request: HTTPRequestHead, bytes: Int) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/octet-stream")
        headers.add(name: "transfer-encoding", value: "chunked")
        let keepAlive = Self.applyKeepAlive(request: request, to: &headers)

        context.write(
            Self.wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))),
            promise: nil
        )
        if request.method == .HEAD {
            self.writeEnd(context: context, keepAlive: keepAlive)
            return
        }
        self.state = .streaming(remaining: bytes, keepAlive: keepAlive)
        self.pumpStream(context: context)
    }

    /// Writes chunks while the channel is writable; resumed by `channelWritabilityChanged`.
    private func pumpStream(context: ChannelHandlerContext) {
        guard case .streaming(var remaining, let keepAlive) = self.state else { return }
        while remaining > 0 && context.channel.isWritable {
            let size = min(remaining, Self.streamChunkSize)
            let chunk =
                size == Self.streamChunkSize
                ? Self.streamChunk
                : Self.streamChunk.getSlice(at: Self.streamChunk.readerIndex, length: size)!
            remaining -= size
            // Record progress before writing: the write may re-enter via writability changes.
            self.state = .streaming(remaining: remaining, keepAlive: keepAlive)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
            guard case .streaming = self.state else { return }  // connection went away
        }
        if remaining == 0 {
            self.state = .idle
            self.writeEnd(context: context, keepAlive: keepAlive)
        } else {
            context.flush()
        }
    }

    // MARK: - Helpers

    private static func queryParameter(_ name: String, in query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name {
                return parts.count > 1 ? String(parts[1]) : ""
            }
        }
        return nil
    }
}

@available(*, unavailable)
extension EchoHandler: Sendable {}

extension EchoHandler: RemovableChannelHandler {}
