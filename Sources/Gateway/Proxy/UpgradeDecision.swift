import NIOHTTP1

/// What to do with a request's `Upgrade` header (RFC 9110 §7.8), decided after the request was
/// authenticated and authorised like any other. Pure.
public enum UpgradeDecision: Sendable, Equatable {
    /// Not an upgrade: no `Upgrade` header, or `Connection` does not list `upgrade` (then
    /// `Upgrade` is an ordinary hop-by-hop header and is dropped).
    case none
    /// Forward on a dedicated upstream connection with `Connection: upgrade` and this `Upgrade`
    /// value, and tunnel the connection if the upstream switches.
    case tunnel(String)
    /// Refused with `400`; the reason is for the client.
    case refuse(String)

    /// Decides for `head`, whose body framing is `framing`, on a route allowing `allowed`.
    ///
    /// An upgrade is tunnelled only as RFC 6455 and RFC 9110 describe it: an HTTP/1.1 `GET`
    /// without a body whose every offered protocol the route allows. `h2c`/`h2` are refused on
    /// every route; anything else unusual is refused rather than guessed at, because the bytes
    /// after the head will no longer be parsed as HTTP by the gateway.
    /// Whether an upgrade from `origins` (the request's `Origin` values) may be tunnelled on a
    /// route listing `allowed` (normalised origins; empty allows any). Browsers send `Origin`
    /// with every WebSocket handshake, so a cookie-authenticated handshake started by another
    /// site (cross-site WebSocket hijacking) carries that site's origin; clients that are not
    /// browsers send none, and pass. Two `Origin` headers never pass.
    public static func originAllowed(_ origins: [String], allowed: [String]) -> Bool {
        guard !allowed.isEmpty, !origins.isEmpty else { return true }
        guard origins.count == 1 else { return false }
        let origin = origins[0].lowercased()
        return allowed.contains(origin)
    }

    public static func decide(_ head: HTTPRequestHead, framing: BodyFraming, allowed: [String]) -> UpgradeDecision {
        var values: [String] = []
        var connectionUpgrade = false
        for (name, value) in head.headers {
            if HeaderRules.equalsIgnoringCase(name, "upgrade") {
                values.append(value)
            } else if HeaderRules.equalsIgnoringCase(name, "connection"), UpgradeRules.list(value, contains: "upgrade") {
                connectionUpgrade = true
            }
        }
        guard !values.isEmpty, connectionUpgrade else { return .none }
        guard let protocols = UpgradeRules.protocols(values) else { return .refuse("malformed Upgrade header") }
        if let smuggler = protocols.first(where: UpgradeRules.isForbidden) {
            return .refuse("\(JSONValue.quoted(String(smuggler))) is never tunnelled")
        }
        guard head.version == .http1_1 else { return .refuse("protocol upgrades need HTTP/1.1") }
        guard head.method == .GET else { return .refuse("protocol upgrades are accepted on GET only") }
        guard framing == .none || framing == .contentLength(0) else {
            return .refuse("a protocol upgrade request cannot have a body")
        }
        if allowed.isEmpty { return .refuse("this route does not accept protocol upgrades") }
        if let refused = protocols.first(where: { !UpgradeRules.allows(allowed, $0) }) {
            return .refuse("this route does not tunnel \(JSONValue.quoted(String(refused)))")
        }
        return .tunnel(protocols.joined(separator: ", "))
    }
}
