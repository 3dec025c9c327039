/// A token issuer the gateway trusts: its keys and the claims its tokens must carry.
public struct Provider: Sendable {
    public let name: String
    /// When set, a token's `iss` must equal it, and only tokens with this `iss` are tried here.
    public let issuer: String?
    /// When non-empty, a token's `aud` (string or array) must contain one of these.
    public let audiences: [String]
    /// Leeway applied to `exp`, `nbf` and `iat`, in seconds.
    public let clockSkewSeconds: Double
    public let keys: [VerificationKey]

    public init(name: String, issuer: String?, audiences: [String], clockSkewSeconds: Double, keys: [VerificationKey]) {
        self.name = name
        self.issuer = issuer
        self.audiences = audiences
        self.clockSkewSeconds = clockSkewSeconds
        self.keys = keys
    }
}

/// A token whose signature and claims have been checked.
public struct VerifiedToken: Sendable {
    public let claims: JSONObject
    public let providerName: String
    public let algorithm: JWSAlgorithm
    public let kid: String?
    /// The `exp` claim, seconds since the epoch.
    public let expiresAt: Double
}
