import Crypto
import SwiftASN1
import X509
import _CryptoExtras

/// A public key (or HMAC secret) bound to the algorithms it may verify.
///
/// The binding is the defence against algorithm confusion (RFC 8725 §2.1, §3.1): a token's `alg`
/// must be one of `algorithms`, and an RSA or EC key can never be used as an HMAC secret because
/// the material is typed.
public struct VerificationKey: Sendable {
    public enum Material: Sendable {
        case hmac(SymmetricKey)
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case p521(P521.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    /// The key id tokens select it by, if any.
    public let kid: String?
    /// The algorithms this key verifies; never empty, all of one family.
    public let algorithms: [JWSAlgorithm]
    public let material: Material
    /// Where the key came from (`providers[0].keys[1]`, `providers[0].jwks_file keys[2]`), for operators.
    public let source: String

    public init(kid: String?, algorithms: [JWSAlgorithm], material: Material, source: String) {
        self.kid = kid
        self.algorithms = algorithms
        self.material = material
        self.source = source
    }

    /// Whether this key may verify a token whose header says `algorithm`.
    @inlinable
    public func accepts(_ algorithm: JWSAlgorithm) -> Bool {
        self.algorithms.contains(algorithm)
    }
}

/// Why key material was refused.
public struct KeyError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension VerificationKey {
    /// The smallest RSA modulus accepted (RFC 7518 §3.3, NIST SP 800-131A).
    public static let minimumRSABits = 2048

    /// An HMAC key; refuses secrets shorter than the hash output (RFC 7518 §3.2).
    public static func hmac(
        kid: String?, algorithm: JWSAlgorithm, secret: [UInt8], source: String
    ) throws(KeyError) -> VerificationKey {
        guard algorithm.family == .hmac else { throw KeyError("\(algorithm) is not an HMAC algorithm") }
        guard secret.count >= algorithm.minimumHMACKeyBytes else {
            throw KeyError(
                "\(algorithm) secret is \(secret.count) bytes; at least \(algorithm.minimumHMACKeyBytes) are required (RFC 7518 3.2)"
            )
        }
        return VerificationKey(
            kid: kid, algorithms: [algorithm], material: .hmac(SymmetricKey(data: secret)), source: source)
    }

    /// A public key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) document, or the public key
    /// of a PEM X.509 `CERTIFICATE` (RSA and EC), for one algorithm. A certificate's validity
    /// period and chain are not checked: the configuration pins the key, as with a bare key.
    public static func publicKey(
        kid: String?, algorithm: JWSAlgorithm, pem: String, source: String
    ) throws(KeyError) -> VerificationKey {
        if pem.contains("-----BEGIN CERTIFICATE-----") {
            return try Self.certificateKey(kid: kid, algorithm: algorithm, pem: pem, source: source)
        }
        let material: Material
        do {
            switch algorithm {
            case .hs256, .hs384, .hs512:
                throw KeyError("\(algorithm) takes a secret, not a public key")
            case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512:
                let key = try _RSA.Signing.PublicKey(unsafePEMRepresentation: pem)
                try Self.checkRSASize(key)
                material = .rsa(key)
            case .es256: material = .p256(try P256.Signing.PublicKey(pemRepresentation: pem))
            case .es384: material = .p384(try P384.Signing.PublicKey(pemRepresentation: pem))
            case .es512: material = .p521(try P521.Signing.PublicKey(pemRepresentation: pem))
            case .edDSA: material = .ed25519(try Curve25519.Signing.PublicKey(pemRepresentation: pem))
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("not a PEM public key usable for \(algorithm) (\(Self.describe(error)))")
        }
        return VerificationKey(kid: kid, algorithms: [algorithm], material: material, source: source)
    }

    private static func certificateKey(
        kid: String?, algorithm: JWSAlgorithm, pem: String, source: String
    ) throws(KeyError) -> VerificationKey {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: pem)
        } catch {
            throw KeyError("not a readable PEM certificate")
        }
        let publicKey = certificate.publicKey
        let material: Material?
        switch algorithm.family {
        case .rsa:
            if let key = _RSA.Signing.PublicKey(publicKey) {
                try Self.checkRSASize(key)
                material = .rsa(key)
            } else {
                material = nil
            }
        case .ecdsa:
            switch algorithm {
            case .es384: material = P384.Signing.PublicKey(publicKey).map { .p384($0) }
            case .es512: material = P521.Signing.PublicKey(publicKey).map { .p521($0) }
            default: material = P256.Signing.PublicKey(publicKey).map { .p256($0) }
            }
        case .hmac, .edDSA:
            material = nil
        }
        guard let material else { throw KeyError("the certificate's key is not usable for \(algorithm)") }
        return VerificationKey(kid: kid, algorithms: [algorithm], material: material, source: source)
    }

    static func checkRSASize(_ key: _RSA.Signing.PublicKey) throws(KeyError) {
        guard key.keySizeInBits >= Self.minimumRSABits else {
            throw KeyError("RSA key is \(key.keySizeInBits) bits; at least \(Self.minimumRSABits) are required")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? CryptoKitError {
            switch error {
            case .incorrectKeySize: return "wrong key size"
            case .incorrectParameterSize: return "wrong key size"
            default: return "unreadable key"
            }
        }
        return "unreadable key"
    }

    /// A short fingerprint for operators: SHA-256 over the public key, first 8 bytes in hex.
    /// HMAC secrets get none: even a truncated hash would let a weak secret be guessed offline.
    public var fingerprint: String {
        var hasher = SHA256()
        switch self.material {
        case .hmac(let key):
            return "secret (\(key.bitCount / 8) bytes)"
        case .rsa(let key): hasher.update(data: key.derRepresentation)
        case .p256(let key): hasher.update(data: key.derRepresentation)
        case .p384(let key): hasher.update(data: key.derRepresentation)
        case .p521(let key): hasher.update(data: key.derRepresentation)
        case .ed25519(let key): hasher.update(data: key.rawRepresentation)
        }
        return hasher.finalize().prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
