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
        let defaultPort = self.tls ? 443 : 80
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.tls ? "https" : "http")://\(host)\(self.port == defaultPort ? "" : ":\(self.port)")\(self.target)"
    }

    /// The `Host` header value.
    var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == (self.tls ? 443 : 80) ? host : "\(host):\(self.port)"
    }

    /// Parses `http(s)://host[:port][/path][?query]`; nil when it is not such a URL.
    public static func parse(_ text: String) -> FetchURL? {
        let lowered = text.lowercased()
        let tls: Bool
        if lowered.hasPrefix("https://") {
            tls = true
        } else if lowered.hasPrefix("http://") {
            tls = false
        } else {
            return nil
        }
        let rest = text.dropFirst(tls ? 8 : 7)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@"), !authority.isEmpty else { return nil }
        guard let (host, port) = HostPort.split(authority, defaultPort: tls ? 443 : 80), port > 0 else { return nil }
        var target = String(rest[authorityEnd...])
        if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return FetchURL(tls: tls, host: host, port: port, target: target)
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
