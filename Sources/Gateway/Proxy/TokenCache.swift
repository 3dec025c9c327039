#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Verified tokens of one event loop, so a token seen before costs a hash and a compare instead
/// of base64, JSON and a signature check. Loop-confined: no lock.
///
/// Safety: an entry is used only while the key generation it was verified under is current, and
/// only for the provider that verified it; `exp` and `nbf` are re-checked on every hit, and an
/// entry never outlives its token's `exp` (plus skew). Failures are never cached.
public final class TokenCache {
    public struct Entry {
        public let token: String
        public let verified: VerifiedToken
        /// Identity header values, computed once per token.
        public let identity: [(name: String, value: String)]
        public let subject: String?
        let generation: Int
        let notBefore: Double?
        let skew: Double
    }

    public struct Stats: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var entries = 0
        public var bytes = 0
    }

    public let maximumEntries: Int
    public let maximumBytes: Int
    private var entries: [Int: Entry] = [:]
    public private(set) var stats = Stats()

    public init(maximumEntries: Int = 10_000, maximumBytes: Int = 32 << 20) {
        self.maximumEntries = maximumEntries
        self.maximumBytes = maximumBytes
    }

    /// The entry for `token` if it is still good at `now` under key `generation`.
    public func lookup(_ token: Substring, generation: Int, now: Double) -> Entry? {
        let key = Self.key(token)
        guard let entry = self.entries[key] else {
            self.stats.misses += 1
            return nil
        }
        guard Self.sameBytes(entry.token, token), entry.generation == generation else {
            self.stats.misses += 1
            return nil
        }
        if now >= entry.verified.expiresAt + entry.skew {
            self.remove(key)
            self.stats.misses += 1
            return nil
        }
        if let nbf = entry.notBefore, now + entry.skew < nbf {
            self.stats.misses += 1
            return nil
        }
        self.stats.hits += 1
        return entry
    }

    /// Remembers a token that just verified.
    public func insert(
        _ token: Substring, verified: VerifiedToken, identity: [(name: String, value: String)], subject: String?,
        generation: Int, skew: Double
    ) {
        let size = Self.cost(token: token, identity: identity, claims: verified.claims)
        guard size <= self.maximumBytes / 64 else { return }  // a huge token is not worth keeping
        while self.entries.count >= self.maximumEntries || self.stats.bytes + size > self.maximumBytes,
            let victim = self.entries.keys.first
        {
            // Arbitrary eviction: hashing spreads keys, so the dictionary's first key is as good
            // as a random one, at no bookkeeping cost.
            self.remove(victim)
        }
        let key = Self.key(token)
        self.remove(key)
        self.entries[key] = Entry(
            token: String(token), verified: verified, identity: identity, subject: subject, generation: generation,
            notBefore: verified.claims["nbf"]?.doubleValue, skew: skew)
        self.stats.bytes += size
        self.stats.entries = self.entries.count
    }

    /// The dictionary key: a hash of the token's bytes in one pass over contiguous memory (the
    /// per-process seed of `Hasher` keeps it unpredictable to clients).
    static func key(_ token: Substring) -> Int {
        var hasher = Hasher()
        let hashed: Void? = token.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil { hasher.combine(token) }
        return hasher.finalize()
    }

    /// Byte equality of the stored token and the presented one, compared as memory.
    static func sameBytes(_ stored: String, _ token: Substring) -> Bool {
        let result: Bool?? = stored.utf8.withContiguousStorageIfAvailable { a in
            token.utf8.withContiguousStorageIfAvailable { b in
                a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
            }
        }
        if let result, let result { return result }
        return stored.utf8.elementsEqual(token.utf8)
    }

    private func remove(_ key: Int) {
        guard let old = self.entries.removeValue(forKey: key) else { return }
        self.stats.bytes -= Self.cost(token: Substring(old.token), identity: old.identity, claims: old.verified.claims)
        self.stats.entries = self.entries.count
    }

    /// Rough resident cost of an entry: the token, its identity values and its claims' text.
    private static func cost(token: Substring, identity: [(name: String, value: String)], claims: JSONObject) -> Int {
        var size = 256 + token.utf8.count
        for (name, value) in identity { size += name.utf8.count + value.utf8.count + 32 }
        size += claims.members.count * 64
        return size
    }
}

@available(*, unavailable)
extension TokenCache: Sendable {}
