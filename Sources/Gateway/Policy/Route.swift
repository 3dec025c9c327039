/// Where a route sends its requests.
public struct Upstream: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "http://\(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)" }

    /// Parses `http://host[:port][/]`. Returns a reason on failure, phrased for the operator.
    public static func parse(_ url: String) -> Result<Upstream, InvalidValue> {
        let lowered = url.lowercased()
        if lowered.hasPrefix("https://") {
            return .failure(InvalidValue("\(JSONValue.quoted(url)) is https, which this version cannot reach (use http)"))
        }
        guard lowered.hasPrefix("http://") else {
            return .failure(InvalidValue("\(JSONValue.quoted(url)) is not an http URL"))
        }
        var rest = Substring(url.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("/") || rest.contains("?") || rest.contains("#") {
            return .failure(InvalidValue("\(JSONValue.quoted(url)) has a path; an upstream is scheme, host and port only"))
        }
        if rest.contains("@") {
            return .failure(InvalidValue("\(JSONValue.quoted(url)) carries credentials; put none in an upstream URL"))
        }
        guard !rest.isEmpty else { return .failure(InvalidValue("\(JSONValue.quoted(url)) has no host")) }
        guard let (host, port) = HostPort.split(rest, defaultPort: 80), (1...65535).contains(port) else {
            return .failure(InvalidValue("\(JSONValue.quoted(url)) has an invalid host or port"))
        }
        return .success(Upstream(host: host, port: port))
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
public struct Route: Sendable {
    public enum Auth: String, Sendable {
        case required
        case none
    }

    /// Normalised prefix without a trailing slash (except the root `/`).
    public let pathPrefix: String
    public let upstream: Upstream
    public let auth: Auth
    /// Claim name → accepted values; all entries must hold.
    public let requireClaims: [(claim: String, values: [String])]
    /// Indices into the provider list; nil means every provider.
    public let providerIndices: [Int]?
    /// The route's position in the configuration, for logs.
    public let index: Int
    /// Protocols an `Upgrade` request may switch to on this route (lower-cased tokens, `name` or
    /// `name/version`); empty: no upgrades. Never `h2c` or `h2` (see `UpgradeRules`).
    public let upgrade: [String]

    public init(
        pathPrefix: String, upstream: Upstream, auth: Auth, requireClaims: [(claim: String, values: [String])],
        providerIndices: [Int]?, index: Int, upgrade: [String] = ["websocket"]
    ) {
        self.pathPrefix = pathPrefix
        self.upstream = upstream
        self.auth = auth
        self.requireClaims = requireClaims
        self.providerIndices = providerIndices
        self.index = index
        self.upgrade = upgrade
    }

    /// Whether `path` (normalised) is under this route's prefix on a segment boundary.
    public func matches(_ path: String) -> Bool {
        if self.pathPrefix == "/" { return true }
        guard path.hasPrefix(self.pathPrefix) else { return false }
        let rest = path.utf8.dropFirst(self.pathPrefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
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
