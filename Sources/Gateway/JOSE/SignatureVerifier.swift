import Crypto
import _CryptoExtras

/// Checks one signature with one key: pure, synchronous, constant-time for HMAC.
public enum SignatureVerifier {
    /// Whether `signature` is a valid `algorithm` signature of `signingInput` under `key`.
    ///
    /// The caller has already checked that `key` accepts `algorithm`; a mismatch of material and
    /// algorithm family here is still answered `false`, never trapped.
    public static func isValid(
        signature: [UInt8],
        signingInput: UnsafeRawBufferPointer,
        algorithm: JWSAlgorithm,
        key: VerificationKey.Material
    ) -> Bool {
        switch (algorithm, key) {
        case (.hs256, .hmac(let secret)):
            return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: secret)
        case (.hs384, .hmac(let secret)):
            return HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: signingInput, using: secret)
        case (.hs512, .hmac(let secret)):
            return HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: signingInput, using: secret)
        case (.rs256, .rsa(let publicKey)), (.ps256, .rsa(let publicKey)):
            return Self.rsa(publicKey, signature, SHA256.hash(data: signingInput), algorithm)
        case (.rs384, .rsa(let publicKey)), (.ps384, .rsa(let publicKey)):
            return Self.rsa(publicKey, signature, SHA384.hash(data: signingInput), algorithm)
        case (.rs512, .rsa(let publicKey)), (.ps512, .rsa(let publicKey)):
            return Self.rsa(publicKey, signature, SHA512.hash(data: signingInput), algorithm)
        case (.es256, .p256(let publicKey)):
            // JWS carries ECDSA signatures as raw r||s (RFC 7518 §3.4), never DER.
            guard signature.count == 64,
                let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return publicKey.isValidSignature(parsed, for: SHA256.hash(data: signingInput))
        case (.es384, .p384(let publicKey)):
            guard signature.count == 96,
                let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return publicKey.isValidSignature(parsed, for: SHA384.hash(data: signingInput))
        case (.es512, .p521(let publicKey)):
            guard signature.count == 132,
                let parsed = try? P521.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return publicKey.isValidSignature(parsed, for: SHA512.hash(data: signingInput))
        case (.edDSA, .ed25519(let publicKey)):
            guard signature.count == 64 else { return false }
            return publicKey.isValidSignature(signature, for: signingInput)
        default:
            return false
        }
    }

    private static func rsa(
        _ key: _RSA.Signing.PublicKey, _ signature: [UInt8], _ digest: some Digest, _ algorithm: JWSAlgorithm
    ) -> Bool {
        // An RSA signature is exactly as long as the modulus (RFC 8017 §8.2.2 step 1).
        guard signature.count == (key.keySizeInBits + 7) / 8 else { return false }
        let parsed = _RSA.Signing.RSASignature(rawRepresentation: signature)
        switch algorithm {
        case .ps256, .ps384, .ps512:
            return key.isValidSignature(parsed, for: digest, padding: .PSS)
        default:
            return key.isValidSignature(parsed, for: digest, padding: .insecurePKCS1v1_5)
        }
    }
}
