/// Protocol tokens of `Upgrade` headers (RFC 9110 §7.8) and which of them may be tunnelled.
public enum UpgradeRules {
    /// Protocols that are never tunnelled, whatever a route says. HTTP/2 over the tunnel (h2c, or
    /// h2 offered in clear text) would let a client send any number of requests to the upstream on
    /// one authenticated connection, past the gateway's per-route checks ("h2c smuggling").
    static let forbidden = ["h2c", "h2"]

    /// Why `name` cannot be listed in a route's `upgrade`, or nil if it can.
    public static func configProblem(_ name: String) -> String? {
        guard Self.isProtocolToken(Substring(name)) else {
            return "\(JSONValue.quoted(name)) is not a protocol token (name or name/version)"
        }
        if Self.isForbidden(Substring(name)) {
            return "\(JSONValue.quoted(name)) cannot be tunnelled: HTTP/2 over an upgraded connection would carry requests past per-route authentication"
        }
        return nil
    }

    /// The comma-separated protocols of one or more `Upgrade` values, trimmed; nil when an element
    /// is not a protocol token (or nothing is listed).
    static func protocols(_ values: [String]) -> [Substring]? {
        var result: [Substring] = []
        for value in values {
            for element in value.split(separator: ",", omittingEmptySubsequences: false) {
                let token = Self.trimmed(element)
                if token.isEmpty { continue }  // RFC 9110 §5.6.1: empty list elements are ignored
                guard Self.isProtocolToken(token) else { return nil }
                result.append(token)
            }
        }
        return result.isEmpty ? nil : result
    }

    /// Whether `token` (as requested) is one of `allowed` (a route's lower-cased list). An entry
    /// without a version allows every version of its protocol.
    static func allows(_ allowed: [String], _ token: Substring) -> Bool {
        let name = Self.name(of: token)
        return allowed.contains { entry in
            HeaderRules.equalsIgnoringCase(entry, token)
                || (!entry.contains("/") && HeaderRules.equalsIgnoringCase(entry, name))
        }
    }

    static func isForbidden(_ token: Substring) -> Bool {
        let name = Self.name(of: token)
        return Self.forbidden.contains { HeaderRules.equalsIgnoringCase($0, name) }
    }

    /// Whether a comma-separated header value lists `token` (case-insensitive, OWS trimmed), as
    /// `Connection: keep-alive, Upgrade` lists `upgrade`.
    static func list(_ value: String, contains token: String) -> Bool {
        value.split(separator: ",").contains { HeaderRules.equalsIgnoringCase(Self.trimmed($0), token) }
    }

    private static func name(of token: Substring) -> Substring {
        token.firstIndex(of: "/").map { token[..<$0] } ?? token
    }

    /// `protocol-name ["/" protocol-version]`, both tokens.
    private static func isProtocolToken(_ text: Substring) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.allSatisfy { HeaderRules.isValidName(String($0)) }
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}
