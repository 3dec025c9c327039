/// Where a provider's remote key set comes from, and how often it is refreshed.
public struct RemoteKeySource: Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// A JWK Set document.
        case jwks(FetchURL)
        /// An OpenID Connect discovery document whose `jwks_uri` names the set and whose
        /// `issuer` must equal `expectedIssuer`.
        case discovery(FetchURL, expectedIssuer: String)
    }

    public var location: Location
    /// Regular refresh period (`jwks_refresh_seconds`, default 300); a shorter `max-age` wins.
    public var refreshSeconds: Double = 300
    /// The least time between two refreshes triggered by unknown `kid`s (`jwks_min_refresh_seconds`).
    public var minimumRefreshSeconds: Double = 5
    /// Time allowed for one fetch (`jwks_timeout_seconds`).
    public var timeoutSeconds: Double = 10
    /// A PEM file of CA certificates to trust for https instead of the system store (`jwks_ca_file`).
    public var caFile: String?

    public init(location: Location) {
        self.location = location
    }
}

/// An `http` or `https` URL, split for a client: scheme, host, port, and the request target.
public struct FetchURL: Sendable, Equatable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// Path and query, starting with `/`.
    public var target: String

    public init(tls: Bool, host: String, port: Int, target: String) {
        self.tls = tls
        self.host = host
        self.port = port
        self.target = target
    }

    public var description: String {
        "\(self.tls ? "https" : "http")://\(self.hostHeader)\(self.target)"
    }

    /// The `Host` header value.
    var hostHeader: String {
        let host = HTTPURL.bracketed(self.host)
        return self.port == (self.tls ? 443 : 80) ? host : "\(host):\(self.port)"
    }

    /// Parses `http(s)://host[:port][/path][?query]` (a fragment is dropped); nil when it is not
    /// such a URL.
    public static func parse(_ text: String) -> FetchURL? {
        guard case .success(let url) = HTTPURL.parse(text) else { return nil }
        var target = url.path.isEmpty ? "/" : String(url.path)
        if let query = url.query { target += "?" + query }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return FetchURL(tls: url.tls, host: url.host, port: url.port, target: target)
    }

    /// This URL with `path` appended to its path (for `/.well-known/openid-configuration`).
    func appendingPath(_ path: String) -> FetchURL {
        var copy = self
        var base = copy.target
        if let query = base.firstIndex(of: "?") { base = String(base[..<query]) }
        if base.hasSuffix("/") { base.removeLast() }
        copy.target = base + path
        return copy
    }
}
