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
    /// A class: a hit hands the planner one reference, not a copy of every field (a struct
    /// cost four retains and an outlined copy per hit).
    public final class Entry {
        public let token: String
        public let verified: VerifiedToken
        /// Identity header values, computed once per token.
        public let identity: [(name: String, value: String)]
        public let subject: String?
        /// The token is a token68 (`TokenExtractor.isToken68`), as a token from the
        /// `Authorization` header must be: checked once, at insertion, for these bytes.
        public let isToken68: Bool
        let generation: Int
        let notBefore: Double?
        let skew: Double

        init(
            token: String, verified: VerifiedToken, identity: [(name: String, value: String)], subject: String?,
            isToken68: Bool, generation: Int, notBefore: Double?, skew: Double
        ) {
            self.token = token
            self.verified = verified
            self.identity = identity
            self.subject = subject
            self.isToken68 = isToken68
            self.generation = generation
            self.notBefore = notBefore
            self.skew = skew
        }
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
        if let entry = token.utf8.withContiguousStorageIfAvailable({
            self.lookup(bytes: UnsafeRawBufferPointer($0), generation: generation, now: now)
        }) {
            return entry
        }
        return Array(token.utf8).withUnsafeBytes { self.lookup(bytes: $0, generation: generation, now: now) }
    }

    /// `lookup` for a token read in place (the planner's header path: no `String` on a hit).
    public func lookup(bytes token: UnsafeRawBufferPointer, generation: Int, now: Double) -> Entry? {
        let key = Self.hash(token, seed: Self.seed)
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
            token: String(token), verified: verified, identity: identity, subject: subject,
            isToken68: TokenExtractor.isToken68(token), generation: generation,
            notBefore: verified.claims["nbf"]?.doubleValue, skew: skew)
        self.stats.bytes += size
        self.stats.entries = self.entries.count
    }

    /// The dictionary key: a hash of the token's bytes (see `hash(_:seed:)`).
    static func key(_ token: Substring) -> Int {
        if let key = token.utf8.withContiguousStorageIfAvailable({ Self.hash(UnsafeRawBufferPointer($0), seed: Self.seed) }) {
            return key
        }
        return Array(token.utf8).withUnsafeBytes { Self.hash($0, seed: Self.seed) }
    }

    /// Chosen once per process, so keys are not predictable from outside.
    static let seed = UInt64.random(in: .min ... .max)

    /// A 64-bit hash of the last `hashedBytes` of `bytes` and their length, eight at a time: each
    /// word is mixed in with a multiply and a shift, the last bytes and the length go into a final
    /// word, and the result goes through SplitMix64's finaliser. A signed token ends in its
    /// signature, so two tokens that differ differ there; hashing only that end costs the same for
    /// every token (an RS256 token's 600 bytes took 712 instructions per request, callgrind;
    /// `Hasher`, SipHash-1-3 over an HS256 token, 1,169). Enough here: the key only spreads
    /// entries. A key never stands for a token (a hit compares every byte), and only tokens that
    /// verified are inserted, each under one key, so a client who finds two tokens with one key
    /// gains only a miss.
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> Int {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var state = seed ^ (UInt64(truncatingIfNeeded: bytes.count) &* multiplier)
        var index = max(bytes.count - Self.hashedBytes, 0)
        if let base = bytes.baseAddress {
            while index &+ 8 <= bytes.count {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                state = (state ^ word) &* multiplier
                state ^= state >> 29
                index &+= 8
            }
        }
        var last: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.count {
            last |= UInt64(bytes[index]) << shift
            shift &+= 8
            index &+= 1
        }
        state = (state ^ last) &* multiplier
        // SplitMix64's finaliser.
        state = (state ^ (state >> 30)) &* 0xBF58_476D_1CE4_E5B9
        state = (state ^ (state >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: state ^ (state >> 31))
    }

    /// How much of a token's end `hash` reads: more than an HS256 signature (43 characters), and
    /// all of a short token.
    static var hashedBytes: Int { 64 }

    /// Byte equality of the stored token and the presented one, compared as memory.
    static func sameBytes(_ stored: String, _ token: UnsafeRawBufferPointer) -> Bool {
        let result = stored.utf8.withContiguousStorageIfAvailable { a in
            a.count == token.count && (a.count == 0 || memcmp(a.baseAddress!, token.baseAddress!, a.count) == 0)
        }
        if let result { return result }
        return stored.utf8.elementsEqual(token)
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
