import NIOHTTP1

/// Rewrites request and response heads as they cross the gateway. Pure: heads in, heads out.
public enum HeaderRewriter {
    /// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the message's own
    /// `Connection` header names, except names the gateway protects (framing, host).
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var named: [String] = []
        for value in headers[canonicalForm: "connection"] {
            let token = value.lowercased()
            if !HeaderRules.protected.contains(token) { named.append(token) }
        }
        for name in HeaderRules.hopByHop { headers.remove(name: name) }
        for name in named { headers.remove(name: name) }
    }

    /// What the gateway adds to a request it forwards.
    public struct Forwarding: Sendable {
        public var clientAddress: String?
        public var host: String
        public var identity: [(name: String, value: String)]
        /// Remove the token before forwarding (`forward_token: false`).
        public var stripToken: Bool
        public var tokenSource: TokenSource

        public init(
            clientAddress: String?, host: String, identity: [(name: String, value: String)], stripToken: Bool,
            tokenSource: TokenSource
        ) {
            self.clientAddress = clientAddress
            self.host = host
            self.identity = identity
            self.stripToken = stripToken
            self.tokenSource = tokenSource
        }
    }

    /// The headers to send upstream. Order matters: hop-by-hop headers (and those `Connection`
    /// names) go first, then every configured identity header is removed whatever the route,
    /// and only then are the verified identity headers added, so a client can neither spoof
    /// nor delete them.
    public static func requestHeaders(
        _ incoming: HTTPHeaders, identityHeaderNames: [String], forwarding: Forwarding
    ) -> HTTPHeaders {
        var headers = incoming
        Self.removeHopByHop(&headers)
        headers.remove(name: "expect")
        Self.removeIdentityHeaders(identityHeaderNames, from: &headers)
        if forwarding.stripToken {
            headers.remove(name: forwarding.tokenSource.header)
            if let cookie = forwarding.tokenSource.cookie {
                Self.removeCookie(named: cookie, from: &headers)
            }
        }
        var forwardedFor = headers[canonicalForm: "x-forwarded-for"].map(String.init)
        headers.remove(name: "x-forwarded-for")
        if let client = forwarding.clientAddress { forwardedFor.append(client) }
        if !forwardedFor.isEmpty { headers.add(name: "X-Forwarded-For", value: forwardedFor.joined(separator: ", ")) }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
        headers.replaceOrAdd(name: "X-Forwarded-Host", value: forwarding.host)
        for (name, value) in forwarding.identity { headers.add(name: name, value: value) }
        return headers
    }

    /// Removes the identity headers and their look-alikes: CGI-style servers (WSGI, Rack, PHP)
    /// read `X_Auth_Subject` as `X-Auth-Subject`, so both spellings go.
    static func removeIdentityHeaders(_ names: [String], from headers: inout HTTPHeaders) {
        guard !names.isEmpty else { return }
        var doomed: [String] = []
        for (name, _) in headers where names.contains(where: { Self.sameCGIName($0, name) }) {
            doomed.append(name)
        }
        for name in doomed { headers.remove(name: name) }
    }

    /// Case-insensitive equality that also takes `_` for `-`, without allocating.
    static func sameCGIName(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        for (x, y) in zip(a.utf8, b.utf8) where Self.fold(x) != Self.fold(y) {
            return false
        }
        return true
    }

    private static func fold(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte | 0x20
        case UInt8(ascii: "_"): UInt8(ascii: "-")
        default: byte
        }
    }

    /// Removes one cookie from every `Cookie` header, dropping headers left empty.
    static func removeCookie(named name: String, from headers: inout HTTPHeaders) {
        let values = headers["cookie"]
        guard !values.isEmpty else { return }
        headers.remove(name: "cookie")
        for value in values {
            let kept = value.split(separator: ";").filter { pair in
                let key = pair.split(separator: "=", maxSplits: 1).first ?? pair
                return key.trimmingSpaces() != name
            }.map { $0.trimmingSpaces() }
            if !kept.isEmpty { headers.add(name: "cookie", value: kept.joined(separator: "; ")) }
        }
    }

    /// The response head to send downstream for an upstream response.
    /// - Returns: the head and whether the downstream connection must close after it.
    public static func responseHead(
        _ upstream: HTTPResponseHead, requestVersion: HTTPVersion, requestKeepAlive: Bool
    ) -> (head: HTTPResponseHead, close: Bool) {
        var head = upstream
        Self.removeHopByHop(&head.headers)
        head.version = requestVersion
        var close = !requestKeepAlive
        if requestVersion == .http1_0 {
            // HTTP/1.0 has no chunked coding: without a length, the body ends when we close.
            head.headers.remove(name: "transfer-encoding")
            if !head.headers.contains(name: "content-length") && Self.mayHaveBody(head.status) { close = true }
        }
        if close {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        } else if requestVersion == .http1_0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        return (head, close)
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
