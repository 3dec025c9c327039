/// Normalises a request target's path before routing (RFC 3986 §6.2.2), so that the path the
/// gateway authorises is the path the upstream serves.
///
/// Refuses (→ 400) what cannot be normalised without guessing how the upstream will read it:
/// encoded `/` or `\`, raw `\`, NUL, `..` above the root, `.;`/`..;` segments (which servlet
/// containers treat as dot segments), malformed percent escapes, and targets that are not
/// origin-form.
public enum PathNormalizer {
    public struct Normalized: Equatable, Sendable {
        /// The normalised path, always starting with `/`.
        public var path: String
        /// The query without the `?`, exactly as received; nil if there was no `?`.
        public var query: Substring?
        /// The original target when normalisation changed nothing (saves rebuilding it).
        var unchangedTarget: String?

        public init(path: String, query: Substring?) {
            self.path = path
            self.query = query
        }

        init(path: String, query: Substring?, unchangedTarget: String) {
            self.path = path
            self.query = query
            self.unchangedTarget = unchangedTarget
        }

        /// Path and query, as forwarded upstream.
        public var target: String {
            if let unchangedTarget { return unchangedTarget }
            guard let query else { return self.path }
            return self.path + "?" + query
        }

        public static func == (lhs: Normalized, rhs: Normalized) -> Bool {
            lhs.path == rhs.path && lhs.query == rhs.query
        }
    }

    public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    public static func normalize(_ target: String) -> Result<Normalized, Rejection> {
        // The common case in one pass over the bytes: an origin-form path that is already
        // normal (`plainPathLength`), with or without a query, is forwarded as it came.
        // Everything else, including every refusal, takes the general path below.
        switch target.utf8.withContiguousStorageIfAvailable(Self.plainPathLength) {
        case .some(.some(let pathLength)):
            guard pathLength < target.utf8.count else {
                return .success(Normalized(path: target, query: nil, unchangedTarget: target))
            }
            let mark = target.utf8.index(target.startIndex, offsetBy: pathLength)
            return .success(
                Normalized(
                    path: String(target[..<mark]), query: target[target.utf8.index(after: mark)...],
                    unchangedTarget: target))
        default:
            return Self.normalizeInGeneral(target)
        }
    }

    /// The length of `target`'s path (the bytes before the first `?`, or all of them) when
    /// that path starts with `/`, is ASCII, holds no `#`, and is already normal: no `%`, `\\`,
    /// NUL or `//`, and no segment starting with `.` (which covers `.`, `..`, `.;` and `..;`).
    /// Nil otherwise.
    static func plainPathLength(_ target: UnsafeBufferPointer<UInt8>) -> Int? {
        // Indexed, not `first`: compared as an optional, the debug build allocates for it.
        guard target.count > 0, target[0] == UInt8(ascii: "/") else { return nil }
        var previous: UInt8 = 0
        for index in target.indices {
            let byte = target[index]
            switch byte {
            case UInt8(ascii: "?"): return index
            // Non-ASCII too: the general path compares the first `Character` with `/`.
            case UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "\\"), 0, 0x80...: return nil
            case UInt8(ascii: "/") where previous == UInt8(ascii: "/"): return nil
            case UInt8(ascii: ".") where previous == UInt8(ascii: "/"): return nil
            default: break
            }
            previous = byte
        }
        return target.count
    }

    static func normalizeInGeneral(_ target: String) -> Result<Normalized, Rejection> {
        var pathPart = Substring(target)
        var query: Substring?
        // The first `?` byte (RFC 3986 §3.4), found in the UTF-8 view: no walk over `Character`s.
        if let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            pathPart = target[..<mark]
            query = target[target.utf8.index(after: mark)...]
        }
        guard pathPart.first == "/" else {
            return .failure(Rejection(description: "request target is not an absolute path"))
        }
        if pathPart.utf8.contains(UInt8(ascii: "#")) {
            return .failure(Rejection(description: "request target contains a fragment"))
        }
        // 1. Percent-decoding of unreserved characters only; refuse dangerous escapes.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(pathPart.utf8.count)
        var bytes = pathPart.utf8.makeIterator()
        while let byte = bytes.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = bytes.next().flatMap(Self.hexValue), let low = bytes.next().flatMap(Self.hexValue)
                else {
                    return .failure(Rejection(description: "malformed percent-encoding in path"))
                }
                let value = high << 4 | low
                switch value {
                case UInt8(ascii: "/"), UInt8(ascii: "\\"):
                    return .failure(Rejection(description: "encoded slash or backslash in path"))
                case 0:
                    return .failure(Rejection(description: "NUL in path"))
                case _ where Self.isUnreserved(value):
                    decoded.append(value)
                default:
                    decoded.append(UInt8(ascii: "%"))
                    decoded.append(Self.hexDigit(high))
                    decoded.append(Self.hexDigit(low))
                }
            case UInt8(ascii: "\\"):
                return .failure(Rejection(description: "backslash in path"))
            case 0:
                return .failure(Rejection(description: "NUL in path"))
            default:
                decoded.append(byte)
            }
        }

        // 2. Segments: merge `//`, drop `.`, resolve `..`; keep a trailing slash.
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        let parts = decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for segment in parts {
            let name = segment.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false)
                .first ?? segment
            let isDot = name.elementsEqual(CollectionOfOne(UInt8(ascii: ".")))
            let isDotDot = name.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
            if (isDot || isDotDot) && name.count != segment.count {
                return .failure(Rejection(description: "dot segment with parameters in path"))
            }
            if segment.isEmpty || isDot {
                trailingSlash = true
            } else if isDotDot {
                guard segments.popLast() != nil else {
                    return .failure(Rejection(description: "path climbs above the root"))
                }
                trailingSlash = true
            } else {
                segments.append(segment)
                trailingSlash = false
            }
        }
        var path: [UInt8] = []
        path.reserveCapacity(decoded.count)
        for segment in segments {
            path.append(UInt8(ascii: "/"))
            path.append(contentsOf: segment)
        }
        if path.isEmpty || trailingSlash { path.append(UInt8(ascii: "/")) }
        return .success(Normalized(path: String(decoding: path, as: UTF8.self), query: query))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }
}
