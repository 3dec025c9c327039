/// Finds one cookie's value in `Cookie` request headers (RFC 6265 §4.2, §5.4).
///
/// Lenient where browsers are (spaces around `;` and `=`, several `Cookie` headers), strict where
/// it matters: names compare exactly, a quoted value loses its quotes, and a cookie that appears
/// more than once is reported so the caller can refuse to pick one.
public enum CookieParser {
    public enum Lookup: Equatable, Sendable {
        case notFound
        case found(Substring)
        /// The cookie appears with different values; choosing one would let an attacker who can
        /// set a cookie on a sibling path or subdomain shadow the real one.
        case ambiguous
    }

    /// Looks up `name` across all `headers` (the values of every `Cookie` header, in order).
    public static func value(named name: String, in headers: some Sequence<String>) -> Lookup {
        var found: Substring?
        for header in headers {
            for pair in header.split(separator: ";", omittingEmptySubsequences: true) {
                guard let equals = pair.firstIndex(of: "=") else { continue }
                let key = Self.trim(pair[..<equals])
                guard key == name else { continue }
                var value = Self.trim(pair[pair.index(after: equals)...])
                if value.count >= 2, value.first == "\"", value.last == "\"" {
                    value = value.dropFirst().dropLast()
                }
                if let previous = found, previous != value { return .ambiguous }
                found = value
            }
        }
        return found.map { .found($0) } ?? .notFound
    }

    private static func trim(_ s: Substring) -> Substring {
        var s = s
        while let first = s.first, first == " " || first == "\t" { s.removeFirst() }
        while let last = s.last, last == " " || last == "\t" { s.removeLast() }
        return s
    }
}
