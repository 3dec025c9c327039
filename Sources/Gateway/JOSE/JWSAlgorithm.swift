/// A JWS signature algorithm authgate can verify (RFC 7518 §3, RFC 8037 §3.1).
///
/// `none` has no case: an unsigned token cannot be represented, so it cannot be accepted.
public enum JWSAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    case hs256 = "HS256"
    case hs384 = "HS384"
    case hs512 = "HS512"
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"
    case es256 = "ES256"
    case es384 = "ES384"
    case es512 = "ES512"
    case edDSA = "EdDSA"

    public var description: String { self.rawValue }

    /// The family of key this algorithm needs.
    public enum Family: Sendable {
        case hmac, rsa, ecdsa, edDSA
    }

    public var family: Family {
        switch self {
        case .hs256, .hs384, .hs512: .hmac
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512: .rsa
        case .es256, .es384, .es512: .ecdsa
        case .edDSA: .edDSA
        }
    }

    /// Minimum secret length for HMAC: the hash output size (RFC 7518 §3.2).
    var minimumHMACKeyBytes: Int {
        switch self {
        case .hs384: 48
        case .hs512: 64
        default: 32
        }
    }
}
