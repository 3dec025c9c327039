import NIOCore
import NIOHTTP1

/// Rewrites request and response heads as they cross the gateway. Pure: heads in, heads out.
public enum HeaderRewriter {
    /// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the message's own
    /// `Connection` header names, except names the gateway protects (framing, host).
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        let named = Self.connectionNamed(headers)
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count)
        for (name, value) in headers {
            if Self.isHopByHop(name) { continue }
            if !named.isEmpty, named.contains(where: { HeaderRules.equalsIgnoringCase(name, $0) }) { continue }
            kept.add(name: name, value: value)
        }
        headers = kept
    }

    /// The header names a message's `Connection` header lists beyond `close` and the protected
    /// names (RFC 9110 §7.6.1). Rare, so the array is only allocated when there are some, and
    /// tokens are scanned without copying.
    static func connectionNamed(_ headers: HTTPHeaders) -> [Substring] {
        var named: [Substring] = []
        for (name, value) in headers where HeaderRules.equalsIgnoringCase(name, "connection") {
            Self.connectionTokens(value, into: &named)
        }
        return named
    }

    /// Appends the header names one `Connection` value lists (see `connectionNamed`).
    static func connectionTokens(_ value: String, into named: inout [Substring]) {
        let whole = Substring(value)
        let bytes = whole.utf8
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let comma = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex
            let token = HeaderRules.trimmingBlanks(whole[start..<comma])
            if !token.isEmpty, !HeaderRules.isProtected(token), !HeaderRules.equalsIgnoringCase(token, "close") {
                named.append(token)
            }
            start = comma == bytes.endIndex ? comma : bytes.index(after: comma)
        }
    }

    /// What the gateway adds to a request it forwards. Not copyable: it is made once per request
    /// and only read, and the optimiser copied it anyway (nine retains and their releases per
    /// request) until it could not.
    public struct Forwarding: Sendable, ~Copyable {
        public var clientAddress: String?
        public var host: String
        public var identity: [(name: String, value: String)]
        /// Remove the token before forwarding (`forward_token: false`).
        public var stripToken: Bool
        public var tokenSource: TokenSource
        /// `X-Forwarded-Proto`: the scheme the client used to reach the gateway.
        public var proto: String
        /// The request id header to set (the client's own copies are removed as identity headers).
        public var requestID: (name: String, value: RequestID)?
        /// The protocols of a tunnelled upgrade (`UpgradeDecision.tunnel`): sent as `Upgrade`, with
        /// `Connection: upgrade`. Nil for every other request, whose `Upgrade` is dropped.
        public var upgrade: String?

        public init(
            clientAddress: String?, host: String, identity: [(name: String, value: String)], stripToken: Bool,
            tokenSource: TokenSource, proto: String = "http", requestID: (name: String, value: RequestID)? = nil,
            upgrade: String? = nil
        ) {
            self.proto = proto
            self.clientAddress = clientAddress
            self.host = host
            self.identity = identity
            self.stripToken = stripToken
            self.tokenSource = tokenSource
            self.requestID = requestID
            self.upgrade = upgrade
        }
    }

    /// The headers to send upstream, built in one pass over the client's headers (typed, for
    /// tests and tools: the headers are serialized and rewritten as the proxy rewrites the
    /// field lines it received).
    ///
    /// Dropped: hop-by-hop headers and those the client's `Connection` names (never framing or
    /// host), `Expect`, every configured identity header and its `_` look-alikes (whatever the
    /// route), the client's `X-Forwarded-Proto`/`-Host`, and with `forward_token: false` the token
    /// header and cookie. Then `X-Forwarded-*` and the verified identity headers are added, so a
    /// client can neither spoof nor delete them. A tunnelled upgrade (`forwarding.upgrade`) gets
    /// back exactly `Connection: upgrade` and its `Upgrade`: nothing else the client's `Connection`
    /// named survives.
    public static func requestHeaders(
        _ incoming: HTTPHeaders, identityHeaderNames: [String], forwarding: borrowing Forwarding
    ) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(incoming.count + 4 + forwarding.identity.count)
        let fields = Self.fieldLines(incoming)
        Self.rewriteRequestFields(
            fields, identityHeaderNames: Self.foldedNames(identityHeaderNames), forwarding: forwarding, keepFraming: true,
            connectionNamed: Self.connectionNamed(fields), into: &headers)
        return headers
    }

    /// `requestHead(method:target:fields:...)` for typed headers (tests, benchmarks): they are
    /// serialized, then rewritten as received field lines are.
    public static func requestHead(
        method: HTTPMethod, target: String, incoming: HTTPHeaders, identityHeaderNames: [String],
        forwarding: borrowing Forwarding, framing: BodyFraming, allocator: ByteBufferAllocator = ByteBufferAllocator(),
        reusing spare: consuming ByteBuffer? = nil
    ) -> ForwardHead {
        let fields = Self.fieldLines(incoming)
        return Self.requestHead(
            method: method, target: target, fields: fields, connectionNamesFields: !Self.connectionNamed(fields).isEmpty,
            identityHeaderNames: Self.foldedNames(identityHeaderNames), forwarding: forwarding, framing: framing,
            allocator: allocator, reusing: spare)
    }

    /// The request head to send upstream, serialized: `METHOD target HTTP/1.1`, the client's field
    /// lines as received less those `requestHeaders` drops, what the gateway adds, and the framing
    /// headers for `framing` (the client's own `Content-Length`/`Transfer-Encoding` are replaced
    /// by them). Written straight into bytes: no header list, no `String` per field, and nothing
    /// re-validates what the parser checked (identity values and request ids were checked when
    /// they were made).
    /// - Parameters:
    ///   - fields: the header block as `ClientRequestParser` checked it.
    ///   - connectionNamesFields: the client's `Connection` lists more than `close`,
    ///     `keep-alive` and `upgrade` (`ClientRequestHead.connectionNamesFields`).
    ///   - identityHeaderNames: the names to remove, folded (`foldedNames`).
    ///   - spare: a buffer to write into, whose memory is reused if nothing else holds it any more
    ///     (a connection's previous head); without one, or if it is still held, a new buffer is
    ///     allocated.
    static func requestHead(
        method: HTTPMethod, target: String, fields: ByteBuffer, connectionNamesFields: Bool, identityHeaderNames: [[UInt8]],
        forwarding: borrowing Forwarding, framing: BodyFraming, allocator: ByteBufferAllocator = ByteBufferAllocator(),
        reusing spare: consuming ByteBuffer? = nil
    ) -> ForwardHead {
        // Room for the client's head and what is added: the client's lines are at most kept, the
        // identity lines are known, 512 is for the forwarding lines and the request id. (A head
        // that needs more is written again in room for all of it, `writeHead`.)
        var capacity = 512 + target.utf8.count + fields.readableBytes
        let identity = forwarding.identity
        for index in identity.indices { capacity += identity[index].name.utf8.count + identity[index].value.utf8.count + 4 }
        var buffer = spare.take() ?? allocator.buffer(capacity: capacity)
        buffer.clear(minimumCapacity: capacity)  // keeps the memory only if nothing else holds it
        let connectionNamed = connectionNamesFields ? Self.connectionNamed(fields) : []
        buffer.writeHead(estimate: capacity) { writer in
            if case .GET = method {
                writer.write("GET ")  // `rawValue` is a switch that makes a String
            } else {
                writer.write(string: method.rawValue)
                writer.write(byte: UInt8(ascii: " "))
            }
            writer.write(string: target)
            writer.write(" HTTP/1.1\r\n")
            var serialized = SerializedFields(into: writer)
            Self.rewriteRequestFields(
                fields, identityHeaderNames: identityHeaderNames, forwarding: forwarding, keepFraming: false,
                connectionNamed: connectionNamed, into: &serialized)
            writer = serialized.finish()
            switch framing {
            case .contentLength(let length):
                writer.write("Content-Length: ")
                writer.write(decimal: length)
                writer.write("\r\n\r\n")
            case .chunked:
                writer.write("Transfer-Encoding: chunked\r\n\r\n")
            case .none where method.usuallyHasContent:
                // Methods whose requests normally have content: say "none" rather than leave the
                // upstream to infer it.
                writer.write("Content-Length: 0\r\n\r\n")
            case .none:
                writer.write("\r\n")
            }
        }
        return ForwardHead(method: method, bytes: buffer, chunked: framing == .chunked)
    }

    /// Identity header names as `rewriteRequestFields` compares them: lowercase, `_` as `-`.
    static func foldedNames(_ names: [String]) -> [[UInt8]] {
        names.map { $0.utf8.map(Self.fold) }
    }

    /// Typed headers as field lines (`name: value` CRLF).
    static func fieldLines(_ headers: HTTPHeaders) -> ByteBuffer {
        var fields = ByteBuffer()
        for (name, value) in headers { fields.writeHeaderLine(name, value) }
        return fields
    }

    /// The names the `Connection` fields among `fields` list beyond `close` and the protected
    /// names (RFC 9110 §7.6.1). Rare, so the array is only allocated when there are some.
    static func connectionNamed(_ fields: ByteBuffer) -> [Substring] {
        var named: [Substring] = []
        HTTPFieldLine.forEachField(fields) { name, value, _ in
            guard HTTPFieldLine.kind(of: name) == .connection else { return }
            Self.connectionTokens(String(decoding: value, as: UTF8.self), into: &named)
        }
        return named
    }

    /// The one pass behind `requestHeaders` and `requestHead`, over checked field lines.
    /// `keepFraming: false` leaves out the client's `Content-Length` and `Transfer-Encoding` (the
    /// caller writes its own).
    /// - Parameter connectionNamed: what the client's `Connection` names (`connectionNamed`).
    private static func rewriteRequestFields<Sink: HeaderSink>(
        _ fields: ByteBuffer, identityHeaderNames: [[UInt8]], forwarding: borrowing Forwarding, keepFraming: Bool,
        connectionNamed: [Substring], into headers: inout Sink
    ) {
        var forwardedFor: String?
        var tokenHeader = forwarding.tokenSource.header
        // What the pass below needs of `forwarding`, read out so that the closure captures these
        // and not a copy of the whole value (a retain for each of its references).
        let stripToken = forwarding.stripToken
        let tokenCookie = forwarding.tokenSource.cookie
        let stripCookie = stripToken && tokenCookie != nil
        tokenHeader.withUTF8 { tokenHeader in
            // In the bytes' scope: `keep`'s lines are valid until `endOfFields`.
            fields.withUnsafeReadableBytes { fields in
                HTTPFieldLine.forEachField(in: fields) { name, value, line in
                    switch HTTPFieldLine.kind(of: name) {
                    case .contentLength, .transferEncoding:
                        if !keepFraming { return }
                    case .connection, .upgrade, .hopByHop:
                        return
                    case .other:
                        break
                    }
                    switch name.count {
                    case 6 where HTTPFieldLine.equalsIgnoringCase(name, "expect"): return
                    case 16 where HTTPFieldLine.equalsIgnoringCase(name, "x-forwarded-host"): return
                    case 17 where HTTPFieldLine.equalsIgnoringCase(name, "x-forwarded-proto"): return
                    default: break
                    }
                    if !connectionNamed.isEmpty {
                        let text = String(decoding: name, as: UTF8.self)
                        if connectionNamed.contains(where: { HeaderRules.equalsIgnoringCase(text, $0) }) { return }
                    }
                    for identity in identityHeaderNames where Self.sameCGIName(name, identity) { return }
                    if name.count == 15, HTTPFieldLine.equalsIgnoringCase(name, "x-forwarded-for") {
                        let value = String(decoding: value, as: UTF8.self)
                        forwardedFor = forwardedFor.map { $0 + ", " + value } ?? value
                        return
                    }
                    if stripToken {
                        if HTTPFieldLine.equalsIgnoringCase(name, tokenHeader) { return }
                        if stripCookie, name.count == 6, HTTPFieldLine.equalsIgnoringCase(name, "cookie"),
                            let cookie = tokenCookie
                        {
                            let text = String(decoding: value, as: UTF8.self)
                            if let kept = Self.removingCookie(named: cookie, from: text) {
                                headers.add(name: String(decoding: name, as: UTF8.self), value: kept)
                            }
                            return
                        }
                    }
                    headers.keep(name: name, value: value, line: line)
                }
                headers.endOfFields()
            }
        }
        if let client = forwarding.clientAddress { forwardedFor = forwardedFor.map { $0 + ", " + client } ?? client }
        if let forwardedFor { headers.add(name: "X-Forwarded-For", value: forwardedFor) }
        headers.add(name: "X-Forwarded-Proto", value: forwarding.proto)
        headers.add(name: "X-Forwarded-Host", value: forwarding.host)
        for (name, value) in forwarding.identity { headers.add(name: name, value: value) }
        if let requestID = forwarding.requestID { headers.add(name: requestID.name, requestID: requestID.value) }
        if let upgrade = forwarding.upgrade {
            headers.add(name: "Connection", value: "upgrade")
            headers.add(name: "Upgrade", value: upgrade)
        }
    }

    /// `Content-Length` or `Transfer-Encoding`, compared without allocating.
    static func isFraming(_ name: String) -> Bool {
        switch Self.kind(of: name) {
        case .contentLength, .transferEncoding: true
        case .connection, .upgrade, .hopByHop, .other: false
        }
    }

    /// `HTTPFieldLine.kind(of:)`, the one list of framing and hop-by-hop names, for a `String`.
    private static func kind(of name: String) -> HTTPFieldLine.Kind {
        // Most names have none of the list's lengths: no need to reach their bytes.
        switch name.utf8.count {
        case 2, 7, 10, 14, 16, 17, 18, 19: break
        default: return .other
        }
        var name = name
        return name.withUTF8 { HTTPFieldLine.kind(of: UnsafeRawBufferPointer($0)) }
    }

    /// The `101 Switching Protocols` head to relay for an upstream's `101`, or nil when the upstream
    /// switched to something the client did not ask for (`requested`: the forwarded `Upgrade`
    /// value), which is then a bad gateway. Hop-by-hop headers are removed as in any response, then
    /// `Connection: upgrade` and the upstream's `Upgrade` are set again.
    public static func switchingProtocolsHead(_ upstream: HTTPResponseHead, requested: String) -> HTTPResponseHead? {
        guard upstream.status == .switchingProtocols,
            let offered = UpgradeRules.protocols([requested]),
            let chosen = UpgradeRules.protocols(upstream.headers["upgrade"]),
            chosen.allSatisfy({ token in offered.contains { HeaderRules.equalsIgnoringCase($0, token) } })
        else { return nil }
        var head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: upstream.headers)
        Self.removeHopByHop(&head.headers)
        head.headers.remove(name: "content-length")
        head.headers.remove(name: "transfer-encoding")
        head.headers.add(name: "Connection", value: "upgrade")
        head.headers.add(name: "Upgrade", value: chosen.joined(separator: ", "))
        return head
    }

    /// One of `HeaderRules.hopByHop`, compared without allocating.
    static func isHopByHop(_ name: String) -> Bool {
        switch Self.kind(of: name) {
        case .connection, .upgrade, .hopByHop: true
        case .contentLength, .transferEncoding, .other: false
        }
    }

    /// Case-insensitive equality that also takes `_` for `-`, without allocating.
    static func sameCGIName(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        for (x, y) in zip(a.utf8, b.utf8) where Self.fold(x) != Self.fold(y) {
            return false
        }
        return true
    }

    /// `sameCGIName` of a received name and a folded one (`foldedNames`).
    static func sameCGIName(_ name: UnsafeRawBufferPointer, _ folded: [UInt8]) -> Bool {
        guard name.count == folded.count else { return false }
        for index in 0..<name.count where Self.fold(name[index]) != folded[index] { return false }
        return true
    }

    private static func fold(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte | 0x20
        case UInt8(ascii: "_"): UInt8(ascii: "-")
        default: byte
        }
    }

    /// One `Cookie` header value without the named cookie; nil when nothing is left.
    static func removingCookie(named name: String, from value: String) -> String? {
        let kept = value.split(separator: ";").filter { pair in
            let key = pair.split(separator: "=", maxSplits: 1).first ?? pair
            return key.trimmingSpaces() != name
        }.map { $0.trimmingSpaces() }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    /// The response head to send downstream for an upstream response, typed (tests, tools): the
    /// typed head is encoded, parsed and rewritten as the proxy does it (`writeResponseHead`).
    /// - Returns: the head and whether the downstream connection must close after it; nil when
    ///   the head is not one the gateway accepts from an upstream (`UpstreamResponseParser`).
    public static func responseHead(
        _ upstream: HTTPResponseHead, requestMethod: HTTPMethod = .GET, requestVersion: HTTPVersion,
        requestKeepAlive: Bool, requestID: (name: String, value: RequestID)? = nil
    ) -> (head: HTTPResponseHead, close: Bool)? {
        var bytes = ByteBuffer()
        guard
            let (close, _) = Self.writeResponseHead(
                upstream, requestMethod: requestMethod, requestVersion: requestVersion, requestKeepAlive: requestKeepAlive,
                requestID: requestID, into: &bytes),
            let written = UpstreamResponseHead.parsing(bytes, requestMethod: requestMethod)
        else { return nil }
        return (written.typed, close)
    }

    /// `writeResponseHead` for a typed upstream head (tests, benchmarks), encoded and parsed as
    /// an upstream's bytes would be; nil when the parser refuses it.
    public static func writeResponseHead(
        _ upstream: HTTPResponseHead, requestMethod: HTTPMethod, requestVersion: HTTPVersion, requestKeepAlive: Bool,
        requestID: (name: String, value: RequestID)?, into buffer: inout ByteBuffer
    ) -> (close: Bool, framing: ResponseBodyFraming)? {
        var bytes = ByteBuffer()
        ResponseEncoding.writeHead(upstream, into: &bytes)
        guard let parsed = UpstreamResponseHead.parsing(bytes, requestMethod: requestMethod) else { return nil }
        return Self.writeResponseHead(
            parsed, requestMethod: requestMethod, requestVersion: requestVersion, requestKeepAlive: requestKeepAlive,
            requestID: requestID, into: &buffer)
    }

    /// Writes the head to send downstream for an upstream response: the status line in the
    /// client's version, the upstream's header lines as they came, without hop-by-hop ones (and
    /// those its `Connection` names), the request id, framing headers the client can read, and
    /// `Connection`.
    /// - Returns: whether the client connection must close after the response, and how its body
    ///   goes on the wire.
    public static func writeResponseHead(
        _ upstream: UpstreamResponseHead, requestMethod: HTTPMethod, requestVersion: HTTPVersion, requestKeepAlive: Bool,
        requestID: (name: String, value: RequestID)?, into buffer: inout ByteBuffer
    ) -> (close: Bool, framing: ResponseBodyFraming) {
        // Names the upstream's `Connection` lists (rare: usually it says keep-alive or close).
        var named: [Substring] = []
        if upstream.connectionHasOtherTokens {
            for value in upstream.values("connection") { Self.connectionTokens(value, into: &named) }
        }
        let mayHaveBody = Self.mayHaveBody(upstream.status)
        // The received `Content-Length` line goes on as it came when the response may have a body
        // (the parser checked it is the only one, all digits, and not beside chunked coding).
        let keepLength = mayHaveBody && upstream.contentLength != nil
        let isHead = requestMethod.isHEAD
        var close = !requestKeepAlive
        let framing: ResponseBodyFraming
        let chunk: Bool
        if !mayHaveBody {
            framing = .none
            chunk = false
        } else if keepLength {
            framing = isHead ? .none : .asIs
            chunk = false
        } else if requestVersion == .http1_1 {
            // The upstream's body had no length (it came chunked, or ends at its close): chunk it.
            framing = isHead ? .none : .chunked
            chunk = true
        } else {
            // HTTP/1.0 has no chunked coding: without a length, the body ends when we close.
            close = true
            framing = isHead ? .none : .asIs
            chunk = false
        }
        // Room for the status line, the upstream's lines (at most all kept), the request id and
        // the framing lines (a head that needs more is written again, `writeHead`).
        let estimate = 128 + upstream.fields.readableBytes + (requestID.map { $0.name.utf8.count + $0.value.utf8Count + 4 } ?? 0)
        var idName = requestID?.name ?? ""
        idName.withUTF8 { idName in
            upstream.fields.withUnsafeReadableBytes { fields in
                buffer.writeHead(estimate: estimate) { writer in
                    ResponseEncoding.writeStatusLine(version: requestVersion, status: upstream.status, into: &writer)
                    // Kept lines that follow each other are copied in one write.
                    var run = FieldLineRun()
                    HTTPFieldLine.forEachField(in: fields) { name, _, line in
                        switch HTTPFieldLine.kind(of: name) {
                        case .contentLength:
                            if keepLength { run.keep(line, into: &writer) }
                            return
                        case .transferEncoding, .connection, .upgrade, .hopByHop:
                            return  // framing is the gateway's own; hop-by-hop fields end here
                        case .other:
                            break
                        }
                        if !idName.isEmpty, HTTPFieldLine.equalsIgnoringCase(name, idName) { return }
                        if !named.isEmpty {
                            let text = String(decoding: name, as: UTF8.self)
                            if named.contains(where: { HeaderRules.equalsIgnoringCase(text, $0) }) { return }
                        }
                        run.keep(line, into: &writer)
                    }
                    run.flush(into: &writer)
                    if let requestID { writer.writeLine(requestID.name, requestID.value) }
                    if chunk { writer.write("Transfer-Encoding: chunked\r\n") }
                    if close {
                        writer.write("Connection: close\r\n\r\n")
                    } else if requestVersion == .http1_0 {
                        writer.write("Connection: keep-alive\r\n\r\n")
                    } else {
                        writer.write("\r\n")
                    }
                }
            }
        }
        return (close, framing)
    }

    static func mayHaveBody(_ status: HTTPResponseStatus) -> Bool {
        !(status.code < 200 || status.code == 204 || status.code == 304)
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
