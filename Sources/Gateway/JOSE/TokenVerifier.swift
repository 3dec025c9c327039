/// Verifies compact JWS tokens against a set of providers (RFC 7515, RFC 7519, RFC 8725).
///
/// Pure and synchronous: bytes and the current time in, a verdict out. The order of checks is
/// fixed: structure, header, provider by `iss`, key by `kid`/`alg`, signature, and only then the
/// claims, so nothing an attacker wrote is trusted before the signature holds.
public struct TokenVerifier: Sendable {
    public let providers: [Provider]

    public init(providers: [Provider]) {
        self.providers = providers
    }

    /// Verifies `token` against the providers at `providerIndices` (all when nil) at time `now`
    /// (seconds since the epoch).
    public func verify(
        _ token: some StringProtocol, providerIndices: [Int]? = nil, now: Double
    ) -> Result<VerifiedToken, AuthFailure> {
        var candidates: [Int] = []
        return self.verify(token, providerIndices: providerIndices, now: now, candidates: &candidates)
    }

    /// Verifies a token given as its ASCII bytes.
    public func verify(
        bytes token: UnsafeRawBufferPointer, providerIndices: [Int]?, now: Double
    ) -> Result<VerifiedToken, AuthFailure> {
        var candidates: [Int] = []
        return self.verify(bytes: token, providerIndices: providerIndices, now: now, candidates: &candidates)
    }

    /// Verifies `token`, recording in `candidates` the providers whose issuer matched: those
    /// whose remote key set might hold an unknown `kid` after a refresh.
    public func verify(
        _ token: some StringProtocol, providerIndices: [Int]?, now: Double, candidates: inout [Int]
    ) -> Result<VerifiedToken, AuthFailure> {
        var found: [Int] = []
        let result: Result<VerifiedToken, AuthFailure>
        if let direct = token.utf8.withContiguousStorageIfAvailable({ buffer in
            self.verify(bytes: UnsafeRawBufferPointer(buffer), providerIndices: providerIndices, now: now, candidates: &found)
        }) {
            result = direct
        } else {
            let copy = Array(token.utf8)
            result = copy.withUnsafeBytes {
                self.verify(bytes: $0, providerIndices: providerIndices, now: now, candidates: &found)
            }
        }
        candidates = found
        return result
    }

    func verify(
        bytes token: UnsafeRawBufferPointer, providerIndices: [Int]?, now: Double, candidates: inout [Int]
    ) -> Result<VerifiedToken, AuthFailure> {
        // Structure: exactly three segments (found without allocating).
        var firstDot: Int?
        var secondDot: Int?
        for index in token.indices where token[index] == UInt8(ascii: ".") {
            if firstDot == nil {
                firstDot = index
            } else if secondDot == nil {
                secondDot = index
            } else {
                return .failure(.malformed("not three segments"))
            }
        }
        guard let firstDot, let secondDot else { return .failure(.malformed("not three segments")) }
        let headerSegment = UnsafeRawBufferPointer(rebasing: token[..<firstDot])
        let payloadSegment = UnsafeRawBufferPointer(rebasing: token[(firstDot + 1)..<secondDot])
        let signatureSegment = UnsafeRawBufferPointer(rebasing: token[(secondDot + 1)...])
        let signingInput = UnsafeRawBufferPointer(rebasing: token[..<secondDot])

        // Header.
        guard let headerBytes = Base64URL.decode(headerSegment) else {
            return .failure(.malformed("header is not base64url"))
        }
        guard let header = try? JSONParser.parse(headerBytes).objectValue else {
            return .failure(.malformed("header is not a JSON object"))
        }
        guard let algName = header["alg"]?.stringValue else {
            return .failure(.malformed("header has no alg"))
        }
        guard let algorithm = JWSAlgorithm(rawValue: algName) else {
            return .failure(.unsupportedAlgorithm)  // `none`, any case of it, and anything unknown
        }
        // RFC 7515 §4.1.11: extensions we do not understand must be refused; we understand none.
        if header["crit"] != nil { return .failure(.criticalHeader) }
        var kid: String?
        if let value = header["kid"] {
            guard let string = value.stringValue else { return .failure(.invalidClaim("kid")) }
            kid = string
        }
        // `jku`, `jwk`, `x5u`, `x5c` are deliberately never read: keys come from configuration only.

        // Payload and signature.
        guard let payloadBytes = Base64URL.decode(payloadSegment) else {
            return .failure(.malformed("payload is not base64url"))
        }
        guard let claims = try? JSONParser.parse(payloadBytes).objectValue else {
            return .failure(.malformed("payload is not a JSON object"))
        }
        guard let signature = Base64URL.decode(signatureSegment) else {
            return .failure(.malformed("signature is not base64url"))
        }

        // Providers: only those whose issuer matches the token's (or that name no issuer).
        let tokenIssuer = claims["iss"]
        if let tokenIssuer, tokenIssuer.stringValue == nil { return .failure(.invalidClaim("iss")) }
        let issuer = tokenIssuer?.stringValue
        var sawKid = false
        var sawProvider = false
        var sawBadSignature = false
        for providerIndex in providerIndices ?? Array(self.providers.indices) {
            let provider = self.providers[providerIndex]
            if let expected = provider.issuer, expected != issuer { continue }
            sawProvider = true
            candidates.append(providerIndex)
            for key in provider.keys {
                if let kid {
                    guard key.kid == kid else { continue }
                    sawKid = true
                    guard key.accepts(algorithm) else { continue }
                } else if !key.accepts(algorithm) {
                    continue
                }
                guard
                    SignatureVerifier.isValid(
                        signature: signature, signingInput: signingInput, algorithm: algorithm, key: key.material)
                else {
                    sawBadSignature = true
                    continue
                }
                return Self.checkClaims(claims, provider: provider, now: now).map { expiresAt in
                    VerifiedToken(
                        claims: claims, providerName: provider.name, providerIndex: providerIndex,
                        algorithm: algorithm, kid: kid,
                        expiresAt: expiresAt)
                }
            }
        }
        if !sawProvider { return .failure(.wrongIssuer) }
        if sawBadSignature { return .failure(.badSignature) }
        if kid != nil, sawKid { return .failure(.algorithmMismatch) }
        if candidates.contains(where: { self.providers[$0].awaitingKeys }) { return .failure(.keysUnavailable) }
        return .failure(.unknownKey)
    }

    /// Checks the registered claims (RFC 7519 §4.1) of a token whose signature holds.
    /// Returns `exp` on success.
    static func checkClaims(_ claims: JSONObject, provider: Provider, now: Double) -> Result<Double, AuthFailure> {
        let skew = provider.clockSkewSeconds
        guard let expClaim = claims["exp"] else { return .failure(.missingExp) }
        guard let exp = expClaim.doubleValue, exp.isFinite else { return .failure(.invalidClaim("exp")) }
        if now >= exp + skew { return .failure(.expired) }
        if let nbfClaim = claims["nbf"] {
            guard let nbf = nbfClaim.doubleValue, nbf.isFinite else { return .failure(.invalidClaim("nbf")) }
            if now + skew < nbf { return .failure(.notYetValid) }
        }
        if let iatClaim = claims["iat"] {
            guard let iat = iatClaim.doubleValue, iat.isFinite else { return .failure(.invalidClaim("iat")) }
            if iat > now + skew { return .failure(.issuedInFuture) }
        }
        if let expected = provider.issuer, claims["iss"]?.stringValue != expected {
            return .failure(.wrongIssuer)
        }
        if !provider.audiences.isEmpty {
            switch claims["aud"] {
            case .string(let audience):
                guard provider.audiences.contains(audience) else { return .failure(.wrongAudience) }
            case .array(let values):
                var matched = false
                for value in values {
                    guard let audience = value.stringValue else { return .failure(.invalidClaim("aud")) }
                    if provider.audiences.contains(audience) { matched = true }
                }
                guard matched else { return .failure(.wrongAudience) }
            case nil:
                return .failure(.wrongAudience)
            default:
                return .failure(.invalidClaim("aud"))
            }
        }
        return .success(exp)
    }
}
