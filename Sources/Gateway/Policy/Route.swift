/// Where a route sends its requests: an http or https origin, and a base path put in front of
/// every forwarded path.
public struct Upstream: Sendable, Hashable, CustomStringConvertible {
    /// What a connection is made to. Pooled connections are shared only between upstreams with
    /// equal endpoints, so http and https (and https trusting different CAs) never mix.
    public struct Endpoint: Sendable, Hashable {
        public let tls: Bool
        public let host: String
        public let port: Int
        /// PEM CA certificates trusted for https instead of the system store.
        public let caFile: String?
    }

    public let endpoint: Endpoint
    /// The URL's path: empty, or a normalised path such as `/v2` or `/v2/` (never `/` alone).
    public let basePath: String

    public var tls: Bool { self.endpoint.tls }
    public var host: String { self.endpoint.host }
    public var port: Int { self.endpoint.port }

    public init(host: String, port: Int, tls: Bool = false, basePath: String = "", caFile: String? = nil) {
        self.endpoint = Endpoint(tls: tls, host: host, port: port, caFile: caFile)
        self.basePath = basePath
    }

    /// This upstream trusting `caFile` for https.
    public func trusting(caFile: String?) -> Upstream {
        Upstream(host: self.host, port: self.port, tls: self.tls, basePath: self.basePath, caFile: caFile)
    }

    public var description: String {
        "\(self.tls ? "https" : "http")://\(HTTPURL.bracketed(self.host)):\(self.port)\(self.basePath)"
    }

    /// Parses `http(s)://host[:port][/base/path]`. Returns a reason on failure, phrased for the operator.
    public static func parse(_ url: String) -> Result<Upstream, InvalidValue> {
        let quoted = JSONValue.quoted(url)
        let parts: HTTPURL
        switch HTTPURL.parse(url) {
        case .success(let value): parts = value
        case .failure(.notHTTP): return .failure(InvalidValue("\(quoted) is not an http URL (http:// or https://)"))
        case .failure(.credentials): return .failure(InvalidValue("\(quoted) carries credentials; put none in an upstream URL"))
        case .failure(.noHost): return .failure(InvalidValue("\(quoted) has no host"))
        case .failure(.invalidHostOrPort): return .failure(InvalidValue("\(quoted) has an invalid host or port"))
        }
        guard parts.query == nil, parts.fragment == nil else {
            return .failure(InvalidValue("\(quoted) has a query or fragment; an upstream is scheme, host, port and a base path"))
        }
        var basePath = String(parts.path)
        if !basePath.isEmpty {
            // The base path is put in front of normalised paths as it is, so it must be normal
            // itself: no dot segments, `//` or encoded slashes can sneak in through it.
            switch PathNormalizer.normalize(basePath) {
            case .success(let normalized) where normalized.path == basePath:
                break
            case .success(let normalized):
                return .failure(
                    InvalidValue(
                        "\(quoted) has a base path that is not normalised (did you mean \(JSONValue.quoted(normalized.path))?)"))
            case .failure(let rejection):
                return .failure(InvalidValue("\(quoted) has an unusable base path: \(rejection.description)"))
            }
        }
        if basePath == "/" { basePath = "" }
        return .success(Upstream(host: parts.host, port: parts.port, tls: parts.tls, basePath: basePath))
    }
}

/// `host:port`, `[v6]:port`, or (with a default port) a bare host.
enum HostPort {
    static func split(_ text: Substring, defaultPort: Int?) -> (host: String, port: Int)? {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // an IPv6 address needs brackets
        } else {
            host = text
        }
        guard !host.isEmpty else { return nil }
        guard let portText else { return defaultPort.map { (String(host), $0) } }
        guard !portText.isEmpty, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let port = Int(portText),
            (0...65535).contains(port)
        else { return nil }
        return (String(host), port)
    }
}

/// One entry of `routes`: a path prefix, where it goes, and who may pass.
/// One configured route. Immutable, and a class: the request path hands routes around (the
/// plan, the access log's context), and a copy is then one reference, not a dozen.
public final class Route: Sendable {
    public enum Auth: String, Sendable {
        case required
        case none
    }

    /// Normalised prefix without a trailing slash (except the root `/`).
    public let pathPrefix: String
    public let upstream: Upstream
    /// Remove `pathPrefix` from the forwarded path (`strip_prefix`).
    public let stripPrefix: Bool
    public let auth: Auth
    /// Claim name → accepted values; all entries must hold.
    public let requireClaims: [(claim: String, values: [String])]
    /// Indices into the provider list; nil means every provider.
    public let providerIndices: [Int]?
    /// The route's position in the configuration, for logs.
    public let index: Int
    /// Overrides `limits.max_body_bytes` for this route.
    public let maxBodyBytes: Int?
    /// Overrides `timeouts.connect_seconds` for this route.
    public let connectSeconds: Double?
    /// Overrides `timeouts.upstream_seconds` for this route.
    public let upstreamSeconds: Double?
    /// Protocols an `Upgrade` request may switch to on this route (lower-cased tokens, `name` or
    /// `name/version`); empty: no upgrades. Never `h2c` or `h2` (see `UpgradeRules`).
    public let upgrade: [String]
    /// Origins (`https://app.example.com`, lower-cased) whose pages may open a tunnel on this
    /// route; empty: any. See `UpgradeDecision.originAllowed`.
    public let allowedOrigins: [String]

    public init(
        pathPrefix: String, upstream: Upstream, stripPrefix: Bool = false, auth: Auth,
        requireClaims: [(claim: String, values: [String])], providerIndices: [Int]?, index: Int,
        upgrade: [String] = ["websocket"], allowedOrigins: [String] = [], maxBodyBytes: Int? = nil,
        connectSeconds: Double? = nil, upstreamSeconds: Double? = nil
    ) {
        self.pathPrefix = pathPrefix
        self.upstream = upstream
        self.stripPrefix = stripPrefix
        self.auth = auth
        self.requireClaims = requireClaims
        self.providerIndices = providerIndices
        self.index = index
        self.upgrade = upgrade
        self.allowedOrigins = allowedOrigins
        self.maxBodyBytes = maxBodyBytes
        self.connectSeconds = connectSeconds
        self.upstreamSeconds = upstreamSeconds
    }

    /// Whether `path` (normalised) is under this route's prefix on a segment boundary.
    public func matches(_ path: String) -> Bool {
        if self.pathPrefix == "/" { return true }
        guard path.hasPrefix(self.pathPrefix) else { return false }
        let rest = path.utf8.dropFirst(self.pathPrefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// The request target sent upstream for a request this route matched (`normalized` is its
    /// normalised path and query). With `strip_prefix` the matched prefix is removed; then the
    /// upstream's base path is put in front. The query is kept exactly as received.
    ///
    /// The prefix alone maps to the base path as configured (`/v2` or `/v2/`), or to `/` without
    /// one; anything below it is joined with a single `/`. Both parts are normalised paths, so the
    /// result is one too: no dot segments or `//` can appear. Routes with neither a base path nor
    /// `strip_prefix` forward the target unchanged, without copying it.
    public func upstreamTarget(_ normalized: PathNormalizer.Normalized) -> String {
        let base = self.upstream.basePath
        let strips = self.stripPrefix && self.pathPrefix != "/"
        guard strips || !base.isEmpty else { return normalized.target }
        let path = normalized.path
        var rest = Substring(path)
        if strips {
            // `matches` guarantees the prefix and a segment boundary (`/` or the end) after it.
            rest = path[path.utf8.index(path.startIndex, offsetBy: self.pathPrefix.utf8.count)...]
        }
        var target = ""
        target.reserveCapacity(base.utf8.count + rest.utf8.count + 2 + (normalized.query?.utf8.count ?? 0))
        if rest.isEmpty {
            target += base.isEmpty ? "/" : base
        } else {
            target += base.hasSuffix("/") ? base.dropLast() : Substring(base)
            target += rest
        }
        if let query = normalized.query {
            target += "?"
            target += query
        }
        return target
    }
}

/// Routes ordered for longest-prefix matching.
public struct RouteTable: Sendable {
    public let routes: [Route]

    public init(_ routes: [Route]) {
        // Longest prefix first; the configuration forbids duplicates, so order among equals is moot.
        self.routes = routes.sorted { $0.pathPrefix.utf8.count > $1.pathPrefix.utf8.count }
    }

    /// The route whose prefix is the longest segment-boundary match for `path`.
    public func route(for path: String) -> Route? {
        self.routes.first { $0.matches(path) }
    }
}
