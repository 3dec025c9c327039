/// Why a request was not let through, in terms the client may see and the operator can count.
///
/// A struct over a private enum (as NIO's error types) so reasons can be added without breaking
/// callers. Descriptions name the reason and never echo the token or a claim value.
public struct AuthFailure: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Base: String, Sendable, Hashable {
        case missingToken = "missing_token"
        case malformed
        case unsupportedAlgorithm = "unsupported_algorithm"
        case algorithmMismatch = "algorithm_mismatch"
        case unknownKey = "unknown_key"
        case badSignature = "bad_signature"
        case criticalHeader = "critical_header"
        case invalidClaim = "invalid_claim"
        case missingExp = "missing_exp"
        case expired
        case notYetValid = "not_yet_valid"
        case issuedInFuture = "issued_in_future"
        case wrongIssuer = "wrong_issuer"
        case wrongAudience = "wrong_audience"
        case insufficientScope = "insufficient_scope"
        case keysUnavailable = "keys_unavailable"
    }

    private let base: Base
    /// A short, fixed explanation for the client and the log. Never contains token bytes.
    public let description: String

    private init(_ base: Base, _ description: String) {
        self.base = base
        self.description = description
    }

    /// A stable machine-readable reason (`expired`, `bad_signature`, ...), used in logs and tests.
    public var code: String { self.base.rawValue }

    /// The HTTP status this failure answers with.
    public var status: UInt {
        switch self.base {
        case .insufficientScope: 403
        case .keysUnavailable: 503
        default: 401
        }
    }

    /// The RFC 6750 §3.1 error code, or nil when no token was presented.
    public var bearerError: String? {
        switch self.base {
        case .missingToken, .keysUnavailable: nil
        case .insufficientScope: "insufficient_scope"
        default: "invalid_token"
        }
    }

    public static let missingToken = AuthFailure(.missingToken, "no bearer token in the request")
    public static func malformed(_ detail: StaticString) -> AuthFailure {
        AuthFailure(.malformed, "malformed token: \(detail)")
    }
    public static let unsupportedAlgorithm = AuthFailure(.unsupportedAlgorithm, "token algorithm is not accepted")
    public static let algorithmMismatch = AuthFailure(.algorithmMismatch, "token algorithm does not match the key")
    public static let unknownKey = AuthFailure(.unknownKey, "no key matches the token")
    public static let badSignature = AuthFailure(.badSignature, "token signature is invalid")
    public static let criticalHeader = AuthFailure(.criticalHeader, "token has critical header parameters")
    public static func invalidClaim(_ name: StaticString) -> AuthFailure {
        AuthFailure(.invalidClaim, "token claim '\(name)' has an invalid type")
    }
    public static let missingExp = AuthFailure(.missingExp, "token has no expiry")
    public static let expired = AuthFailure(.expired, "token has expired")
    public static let notYetValid = AuthFailure(.notYetValid, "token is not valid yet")
    public static let issuedInFuture = AuthFailure(.issuedInFuture, "token was issued in the future")
    public static let wrongIssuer = AuthFailure(.wrongIssuer, "token issuer is not accepted")
    public static let wrongAudience = AuthFailure(.wrongAudience, "token audience is not accepted")
    public static let insufficientScope = AuthFailure(.insufficientScope, "token claims do not grant access to this route")
    /// The token's provider has never loaded a usable key set: 503 with `Retry-After`.
    public static let keysUnavailable = AuthFailure(.keysUnavailable, "the keys for this token's issuer are not available yet")
    /// An identity claim whose value cannot be carried in an HTTP header (control characters).
    public static let unsafeIdentityClaim = AuthFailure(.invalidClaim, "token claim cannot be forwarded as a header")

    public static func == (lhs: AuthFailure, rhs: AuthFailure) -> Bool { lhs.base == rhs.base }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.base) }
}
