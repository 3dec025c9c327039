import Crypto
import _CryptoExtras

/// Mints compact JWS tokens, for `authgate token`, the demo and tests. Never on the request path.
public struct TokenSigner: Sendable {
    public enum SigningKey: Sendable {
        case hmac(SymmetricKey)
        case rsa(_RSA.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    public let algorithm: JWSAlgorithm
    public let key: SigningKey
    public let kid: String?

    public init(algorithm: JWSAlgorithm, key: SigningKey, kid: String?) {
        self.algorithm = algorithm
        self.key = key
        self.kid = kid
    }

    /// A signer from a PEM private key (PKCS#8 or the traditional RSA/EC forms) for `algorithm`.
    public static func privateKey(pem: String, algorithm: JWSAlgorithm, kid: String?) throws(KeyError) -> TokenSigner {
        do {
            let key: SigningKey
            switch algorithm.family {
            case .hmac: throw KeyError("\(algorithm) signs with a secret, not a private key")
            case .rsa: key = .rsa(try _RSA.Signing.PrivateKey(pemRepresentation: pem))
            case .ecdsa:
                switch algorithm {
                case .es384: key = .p384(try P384.Signing.PrivateKey(pemRepresentation: pem))
                case .es512: key = .p521(try P521.Signing.PrivateKey(pemRepresentation: pem))
                default: key = .p256(try P256.Signing.PrivateKey(pemRepresentation: pem))
                }
            case .edDSA: key = .ed25519(try Curve25519.Signing.PrivateKey(pemRepresentation: pem))
            }
            return TokenSigner(algorithm: algorithm, key: key, kid: kid)
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("not a PEM private key usable for \(algorithm)")
        }
    }

    /// Signs `claims` (a JSON object) and returns the compact serialisation.
    public func sign(claims: JSONObject) throws(KeyError) -> String {
        var header: [(name: String, value: JSONValue)] = [("alg", .string(self.algorithm.rawValue)), ("typ", .string("JWT"))]
        if let kid { header.append(("kid", .string(kid))) }
        let signingInput = Base64URL.encode(JSONValue.object(JSONObject(header)).compactText.utf8) + "."
            + Base64URL.encode(JSONValue.object(claims).compactText.utf8)
        let input = Array(signingInput.utf8)
        let signature: [UInt8]
        do {
            switch (self.algorithm, self.key) {
            case (.hs256, .hmac(let secret)): signature = Array(HMAC<SHA256>.authenticationCode(for: input, using: secret))
            case (.hs384, .hmac(let secret)): signature = Array(HMAC<SHA384>.authenticationCode(for: input, using: secret))
            case (.hs512, .hmac(let secret)): signature = Array(HMAC<SHA512>.authenticationCode(for: input, using: secret))
            case (.rs256, .rsa(let k)): signature = Array(try k.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            case (.rs384, .rsa(let k)): signature = Array(try k.signature(for: SHA384.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            case (.rs512, .rsa(let k)): signature = Array(try k.signature(for: SHA512.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            case (.ps256, .rsa(let k)): signature = Array(try k.signature(for: SHA256.hash(data: input), padding: .PSS).rawRepresentation)
            case (.ps384, .rsa(let k)): signature = Array(try k.signature(for: SHA384.hash(data: input), padding: .PSS).rawRepresentation)
            case (.ps512, .rsa(let k)): signature = Array(try k.signature(for: SHA512.hash(data: input), padding: .PSS).rawRepresentation)
            case (.es256, .p256(let k)): signature = Array(try k.signature(for: SHA256.hash(data: input)).rawRepresentation)
            case (.es384, .p384(let k)): signature = Array(try k.signature(for: SHA384.hash(data: input)).rawRepresentation)
            case (.es512, .p521(let k)): signature = Array(try k.signature(for: SHA512.hash(data: input)).rawRepresentation)
            case (.edDSA, .ed25519(let k)): signature = Array(try k.signature(for: input))
            default: throw KeyError("the key does not fit \(self.algorithm)")
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError("signing failed: \(error)")
        }
        return signingInput + "." + Base64URL.encode(signature)
    }
}
