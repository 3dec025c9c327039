/// A token issuer the gateway trusts: its keys and the claims its tokens must carry.
public struct Provider: Sendable {
    public let name: String
    /// When set, a token's `iss` must equal it, and only tokens with this `iss` are tried here.
    public let issuer: String?
    /// When non-empty, a token's `aud` (string or array) must contain one of these.
    public let audiences: [String]
    /// Leeway applied to `exp`, `nbf` and `iat`, in seconds.
    public let clockSkewSeconds: Double
    /// The keys in use now: configured keys and `jwks_file` first, then the remote set's.
    public var keys: [VerificationKey]
    /// Where remote keys come from (`jwks_url` or discovery), if anywhere.
    public let remote: RemoteKeySource?
    /// Whether the remote set has loaded at least once.
    public var remoteLoaded: Bool

    public init(
        name: String, issuer: String?, audiences: [String], clockSkewSeconds: Double, keys: [VerificationKey],
        remote: RemoteKeySource? = nil, remoteLoaded: Bool = false
    ) {
        self.name = name
        self.issuer = issuer
        self.audiences = audiences
        self.clockSkewSeconds = clockSkewSeconds
        self.keys = keys
        self.remote = remote
        self.remoteLoaded = remoteLoaded
    }

    /// No usable key yet: the remote set has never loaded and nothing is configured locally.
    /// Tokens for this provider get 503, not a misleading 401.
    public var awaitingKeys: Bool { self.remote != nil && !self.remoteLoaded && self.keys.isEmpty }
}

/// A token whose signature and claims have been checked.
public struct VerifiedToken: Sendable {
    public let claims: JSONObject
    public let providerName: String
    /// The provider's position in the configuration.
    public let providerIndex: Int
    public let algorithm: JWSAlgorithm
    public let kid: String?
    /// The `exp` claim, seconds since the epoch.
    public let expiresAt: Double
}
