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
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                return .failure(InvalidValue("\(JSONValue.quoted(url)) has an unclosed IPv6 address"))
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return .failure(InvalidValue("\(JSONValue.quoted(url)) is not an http URL")) }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { return .failure(InvalidValue("\(JSONValue.quoted(url)) has no host")) }
        var port = 80
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                return .failure(InvalidValue("\(JSONValue.quoted(url)) has an invalid port"))
            }
            port = value
        }
        return .success(Upstream(host: String(host), port: port))
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

    public init(
        pathPrefix: String, upstream: Upstream, auth: Auth, requireClaims: [(claim: String, values: [String])],
        providerIndices: [Int]?, index: Int
    ) {
        self.pathPrefix = pathPrefix
        self.upstream = upstream
        self.auth = auth
        self.requireClaims = requireClaims
        self.providerIndices = providerIndices
        self.index = index
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
