import NIOHTTP1
import Testing

@testable import Gateway

@Suite("Verified-token cache")
struct TokenCacheTests {
    let planner: RequestPlanner

    init() throws {
        let config = try ConfigLoader(environment: ["S": TestSupport.secret]).load(Array(RequestPlannerTests.configJSON.utf8))
        self.planner = RequestPlanner(config: config)
    }

    func head(_ uri: String, token: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["Host": "gw", "Authorization": "Bearer \(token)"])
    }

    func token(role: String = "user", exp: Int) throws -> String {
        try TestSupport.hsToken(TestSupport.claims([("role", .string(role)), ("exp", .number(String(exp)))]))
    }

    func status(_ plan: RequestPlan) -> UInt? {
        switch plan {
        case .respond(let response, _): response.status.code
        case .forward: 200
        case .refreshKeys: nil
        }
    }

    @Test("A repeated token is served from the cache with the same identity headers")
    func hit() throws {
        let cache = TokenCache()
        let token = try self.token(exp: 1_700_000_100)
        let first = self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)
        let second = self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now + 1, cache: cache)
        #expect(cache.stats.misses == 1)
        #expect(cache.stats.hits == 1)
        guard case .forward(let a) = first, case .forward(let b) = second else {
            Issue.record("not forwarded")
            return
        }
        #expect(a.head.headers["x-auth-subject"] == b.head.headers["x-auth-subject"])
        #expect(b.head.headers["x-auth-role"] == ["user"])
    }

    @Test("Time claims are re-checked on every hit: a cached token expires on time")
    func expiry() throws {
        let cache = TokenCache()
        let token = try self.token(exp: 1_700_000_100)
        #expect(self.status(self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)) == 200)
        // exp + 30 s skew has passed.
        #expect(self.status(self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: 1_700_000_130, cache: cache)) == 401)
        #expect(cache.stats.entries == 0)
    }

    @Test("require_claims is evaluated per route on a hit")
    func policyOnHit() throws {
        let cache = TokenCache()
        let token = try self.token(role: "user", exp: 1_700_000_100)
        #expect(self.status(self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)) == 200)
        #expect(self.status(self.planner.plan(self.head("/admin", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)) == 403)
        #expect(cache.stats.hits == 1)
    }

    @Test("An entry from another key generation is not used")
    func generation() throws {
        let cache = TokenCache()
        let token = try self.token(exp: 1_700_000_100)
        let verified = try self.planner.keys.verifier.verify(token, now: TestSupport.now).get()
        cache.insert(Substring(token), verified: verified, identity: [], subject: "alice", generation: 1, skew: 30)
        #expect(cache.lookup(Substring(token), generation: 1, now: TestSupport.now) != nil)
        #expect(cache.lookup(Substring(token), generation: 2, now: TestSupport.now) == nil)
    }

    @Test("The cache is bounded in entries and bytes")
    func bounded() throws {
        let cache = TokenCache(maximumEntries: 3, maximumBytes: 1 << 20)
        for i in 0..<10 {
            let token = try TestSupport.hsToken(TestSupport.claims([("sub", .string("u\(i)"))]))
            let verified = try self.planner.keys.verifier.verify(token, now: TestSupport.now).get()
            cache.insert(Substring(token), verified: verified, identity: [("X-Auth-Subject", "u\(i)")], subject: "u\(i)", generation: 0, skew: 30)
        }
        #expect(cache.stats.entries == 3)
        let small = TokenCache(maximumEntries: 1000, maximumBytes: 64 * 1024)
        for i in 0..<200 {
            let token = try TestSupport.hsToken(TestSupport.claims([("sub", .string("u\(i)"))]))
            let verified = try self.planner.keys.verifier.verify(token, now: TestSupport.now).get()
            small.insert(Substring(token), verified: verified, identity: [], subject: nil, generation: 0, skew: 30)
        }
        #expect(small.stats.bytes <= 64 * 1024)
        #expect(small.stats.entries < 200)
    }

    @Test("Invalid tokens are never cached")
    func failuresNotCached() throws {
        let cache = TokenCache()
        let bad = try self.token(exp: 1_700_000_100) + "A"
        for _ in 0..<3 {
            #expect(self.status(self.planner.plan(self.head("/api", token: bad), clientAddress: nil, now: TestSupport.now, cache: cache)) == 401)
        }
        #expect(cache.stats.entries == 0)
        #expect(cache.stats.hits == 0)
    }

    @Test("The key is the hash of the token's bytes, wherever the bytes are")
    func keyOfBytes() throws {
        let token = try self.token(exp: 1_700_000_100)
        let header = "Bearer \(token) trailing"
        let slice = header.dropFirst(7).prefix(token.utf8.count)
        #expect(slice == Substring(token))
        #expect(TokenCache.key(slice) == TokenCache.key(Substring(token)))
        #expect(TokenCache.key(Substring(token)) == TokenCache.key(Substring(String(token))))
        #expect(Array(token.utf8).withUnsafeBytes { TokenCache.hash($0, seed: TokenCache.seed) } == TokenCache.key(slice))
    }

    @Test("The last 64 bytes, the length and the seed go into the key; a hit still compares every byte")
    func keySpreads() throws {
        let token = Array(try self.token(exp: 1_700_000_100).utf8)
        try #require(token.count > 100)
        var keys = Set<Int>()
        // Each prefix (so each tail length, 0 to 7 bytes after the last full word, and each
        // window of the last 64 bytes).
        for length in 0...token.count {
            keys.insert(token[..<length].withUnsafeBytes { TokenCache.hash($0, seed: 1) })
        }
        #expect(keys.count == token.count + 1)
        // Each byte of the last 64 changed on its own, in a full word or in the tail.
        keys = []
        let window = (token.count - TokenCache.hashedBytes)..<token.count
        for position in window {
            var changed = token
            changed[position] ^= 0x01
            keys.insert(changed.withUnsafeBytes { TokenCache.hash($0, seed: 1) })
        }
        keys.insert(token.withUnsafeBytes { TokenCache.hash($0, seed: 1) })
        #expect(keys.count == TokenCache.hashedBytes + 1)
        // A change before the window keeps the key: the lookup's byte comparison refuses it.
        var early = token
        early[window.lowerBound - 1] ^= 0x01
        #expect(early.withUnsafeBytes { TokenCache.hash($0, seed: 1) } == token.withUnsafeBytes { TokenCache.hash($0, seed: 1) })
        let stored = String(decoding: token, as: UTF8.self)
        #expect(!early.withUnsafeBytes { TokenCache.sameBytes(stored, $0) })
        // Zero bytes at the end still change the length.
        #expect([UInt8]([1, 0]).withUnsafeBytes { TokenCache.hash($0, seed: 1) } != [UInt8]([1]).withUnsafeBytes { TokenCache.hash($0, seed: 1) })
        #expect(token.withUnsafeBytes { TokenCache.hash($0, seed: 1) } != token.withUnsafeBytes { TokenCache.hash($0, seed: 2) })
    }

    @Test("A hit needs every byte of the token to match, not only its key")
    func hitComparesBytes() {
        func same(_ stored: String, _ presented: Substring) -> Bool {
            Array(presented.utf8).withUnsafeBytes { TokenCache.sameBytes(stored, $0) }
        }
        #expect(same("abc.def.ghi", "abc.def.ghi"))
        #expect(!same("abc.def.ghi", "abc.def.ghj"))
        #expect(!same("abc.def.ghi", "abc.def.gh"))
        #expect(!same("abc.def.gh", "abc.def.ghi"))
        #expect(same("", ""))
        let header = "Bearer abc.def.ghi"
        #expect(same("abc.def.ghi", header.dropFirst(7)))
    }

    @Test("A token read in place, inside a larger buffer, finds the entry its String made")
    func lookupInPlace() throws {
        let token = try self.token(exp: 1_700_000_100)
        let verified = try self.planner.keys.verifier.verify(token, now: TestSupport.now).get()
        let generation = self.planner.keys.generation
        let cache = TokenCache()
        cache.insert(Substring(token), verified: verified, identity: [], subject: "alice", generation: generation, skew: 30)
        let line = Array("Authorization: Bearer \(token)\r\n".utf8)
        let start = "Authorization: Bearer ".utf8.count
        line.withUnsafeBytes { line in
            let inPlace = UnsafeRawBufferPointer(rebasing: line[start..<(start + token.utf8.count)])
            #expect(cache.lookup(bytes: inPlace, generation: generation, now: TestSupport.now)?.subject == "alice")
            // One byte more or less is another token.
            let longer = UnsafeRawBufferPointer(rebasing: line[start..<(start + token.utf8.count + 1)])
            #expect(cache.lookup(bytes: longer, generation: generation, now: TestSupport.now) == nil)
            let shorter = UnsafeRawBufferPointer(rebasing: line[start..<(start + token.utf8.count - 1)])
            #expect(cache.lookup(bytes: shorter, generation: generation, now: TestSupport.now) == nil)
        }
        #expect(cache.stats.hits == 1)
        #expect(cache.stats.misses == 2)
        // A token that differs only before the hashed end has the entry's key, and is a miss.
        var forged = Array(token.utf8)
        forged[10] ^= 0x01
        #expect(forged.withUnsafeBytes { TokenCache.hash($0, seed: TokenCache.seed) } == TokenCache.key(Substring(token)))
        #expect(forged.withUnsafeBytes { cache.lookup(bytes: $0, generation: generation, now: TestSupport.now) } == nil)
        #expect(cache.stats.hits == 1)
        #expect(cache.stats.misses == 3)
    }

    @Test("A header token that is not a token68 is refused on a cache hit as on a miss; the same bytes in the cookie pass")
    func token68OnHit() throws {
        // Bytes that are a cookie value but not a token68 (`!`), cached as if they had verified
        // (no JWS has them: this stands for any entry a cookie could put there).
        let odd = "abc!def"
        #expect(!TokenExtractor.isToken68(Substring(odd)))
        let verified = try self.planner.keys.verifier.verify(try self.token(exp: 1_700_000_100), now: TestSupport.now).get()
        let generation = self.planner.keys.generation
        let cache = TokenCache()
        // A miss: refused before any verification, and counted as a lookup that missed.
        #expect(self.status(self.planner.plan(self.head("/api", token: odd), clientAddress: nil, now: TestSupport.now, cache: cache)) == 401)
        #expect(cache.stats.misses == 1)
        #expect(cache.stats.entries == 0)
        cache.insert(Substring(odd), verified: verified, identity: [], subject: "alice", generation: generation, skew: 30)
        #expect(cache.lookup(Substring(odd), generation: generation, now: TestSupport.now)?.isToken68 == false)
        // A hit, in the header: still malformed.
        let hits = cache.stats.hits
        let plan = self.planner.plan(self.head("/api", token: odd), clientAddress: nil, now: TestSupport.now, cache: cache)
        #expect(self.status(plan) == 401)
        #expect(cache.stats.hits == hits + 1)
        if case .respond(_, let reason) = plan { #expect(reason == "malformed") }
        // The same bytes as the cookie: no token68 rule there.
        let cookie = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api", headers: ["Host": "gw", "Cookie": "access_token=\(odd)"])
        #expect(self.status(self.planner.plan(cookie, clientAddress: nil, now: TestSupport.now, cache: cache)) == 200)
        // A token68 header token that is cached passes, and its entry says so.
        let token = try self.token(exp: 1_700_000_100)
        #expect(self.status(self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)) == 200)
        #expect(cache.lookup(Substring(token), generation: generation, now: TestSupport.now)?.isToken68 == true)
        #expect(self.status(self.planner.plan(self.head("/api", token: token), clientAddress: nil, now: TestSupport.now, cache: cache)) == 200)
    }
}
