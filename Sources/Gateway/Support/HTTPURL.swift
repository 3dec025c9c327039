/// An absolute `http` or `https` URL split into what a client needs: one parser for upstreams
/// (`Upstream.parse`) and key-set locations (`FetchURL.parse`), which each decide what they accept
/// beyond it.
struct HTTPURL: Equatable {
    enum Problem: Error, Equatable {
        /// Not `http://` or `https://` (the scheme is case-insensitive).
        case notHTTP
        /// `user[:password]@` before the host.
        case credentials
        case noHost
        /// An unbracketed IPv6 address, or a port that is not 1–65535.
        case invalidHostOrPort
    }

    var tls: Bool
    var host: String
    var port: Int
    /// Everything from the first `/` to `?` or `#`; empty when the URL has no path.
    var path: Substring
    /// After `?`, up to `#`; nil without a `?`.
    var query: Substring?
    /// After `#`; nil without a `#`.
    var fragment: Substring?

    static func parse(_ text: String) -> Result<HTTPURL, Problem> {
        let tls: Bool
        if Self.hasSchemePrefix(text, "https://") {
            tls = true
        } else if Self.hasSchemePrefix(text, "http://") {
            tls = false
        } else {
            return .failure(.notHTTP)
        }
        var rest = text.dropFirst(tls ? 8 : 7)
        var fragment: Substring?
        if let hash = rest.firstIndex(of: "#") {
            fragment = rest[rest.index(after: hash)...]
            rest = rest[..<hash]
        }
        var query: Substring?
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<pathStart]
        guard !authority.isEmpty else { return .failure(.noHost) }
        guard !authority.contains("@") else { return .failure(.credentials) }
        guard let (host, port) = HostPort.split(authority, defaultPort: tls ? 443 : 80), (1...65535).contains(port) else {
            return .failure(.invalidHostOrPort)
        }
        return .success(HTTPURL(tls: tls, host: host, port: port, path: rest[pathStart...], query: query, fragment: fragment))
    }

    private static func hasSchemePrefix(_ text: String, _ scheme: String) -> Bool {
        text.prefix(scheme.count).lowercased() == scheme
    }

    /// `host` as it appears in a URL or a `Host` header: IPv6 addresses in brackets.
    static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}
