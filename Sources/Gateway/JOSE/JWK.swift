import Crypto
import _CryptoExtras

/// Reads JSON Web Keys (RFC 7517) into verification keys.
public enum JWK {
    /// The keys of a JWK Set document, and a line for every key that was skipped.
    public struct SetResult: Sendable {
        public var keys: [VerificationKey] = []
        /// Human-readable reasons for skipped keys (`keys[3] (kid "enc-1"): use is "enc", not "sig"`).
        public var skipped: [String] = []
    }

    /// Parses a JWKS document. A document that is not `{"keys": [...]}` throws; a key in it that
    /// cannot be used (wrong `use`, unsupported type, bad parameters) is skipped and reported.
    public static func parseSet(_ bytes: some Sequence<UInt8>, source: String) throws(KeyError) -> SetResult {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw KeyError("not JSON: \(error)")
        }
        guard let keys = document.objectValue?["keys"]?.arrayValue else {
            throw KeyError("not a JWK Set: expected an object with a \"keys\" array")
        }
        var result = SetResult()
        for (index, entry) in keys.enumerated() {
            let where_ = "\(source) keys[\(index)]"
            guard let object = entry.objectValue else {
                result.skipped.append("\(where_): not an object")
                continue
            }
            do {
                if let key = try Self.parseKey(object, source: where_) {
                    result.keys.append(key)
                }
            } catch {
                let kid = object["kid"]?.stringValue.map { " (kid \(JSONValue.quoted($0)))" } ?? ""
                result.skipped.append("\(where_)\(kid): \(error.description)")
            }
        }
        return result
    }

    /// Parses one JWK. Returns nil never; throws with the reason a key is unusable.
    public static func parseKey(_ jwk: JSONObject, source: String) throws(KeyError) -> VerificationKey? {
        guard let kty = jwk["kty"]?.stringValue else { throw KeyError("missing \"kty\"") }
        var kid: String?
        if let value = jwk["kid"] {
            guard let string = value.stringValue else { throw KeyError("\"kid\" is not a string") }
            kid = string
        }
        if let use = jwk["use"] {
            guard use.stringValue == "sig" else {
                throw KeyError("use is \(use.compactText), not \"sig\"")
            }
        }
        if let ops = jwk["key_ops"] {
            guard let list = ops.arrayValue, list.contains(.string("verify")) else {
                throw KeyError("key_ops does not include \"verify\"")
            }
        }
        var pinned: JWSAlgorithm?
        if let alg = jwk["alg"] {
            guard let name = alg.stringValue, let algorithm = JWSAlgorithm(rawValue: name) else {
                throw KeyError("unsupported alg \(alg.compactText)")
            }
            pinned = algorithm
        }

        let material: VerificationKey.Material
        var algorithms: [JWSAlgorithm]
        switch kty {
        case "RSA":
            let n = try Self.bytes(jwk, "n")
            let e = try Self.bytes(jwk, "e")
            let key: _RSA.Signing.PublicKey
            do {
                key = try _RSA.Signing.PublicKey(n: n, e: e)
            } catch {
                // Distinguish a short key from garbage for the operator.
                let bits = Self.significantBits(n)
                if bits > 0 && bits < VerificationKey.minimumRSABits {
                    throw KeyError("RSA key is \(bits) bits; at least \(VerificationKey.minimumRSABits) are required")
                }
                throw KeyError("invalid RSA parameters")
            }
            try VerificationKey.checkRSASize(key)
            material = .rsa(key)
            algorithms = [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512]
        case "EC":
            let crv = jwk["crv"]?.stringValue ?? ""
            let x = try Self.bytes(jwk, "x")
            let y = try Self.bytes(jwk, "y")
            do {
                switch crv {
                case "P-256":
                    guard x.count == 32, y.count == 32 else { throw KeyError("P-256 coordinates must be 32 bytes") }
                    material = .p256(try P256.Signing.PublicKey(rawRepresentation: x + y))
                    algorithms = [.es256]
                case "P-384":
                    guard x.count == 48, y.count == 48 else { throw KeyError("P-384 coordinates must be 48 bytes") }
                    material = .p384(try P384.Signing.PublicKey(rawRepresentation: x + y))
                    algorithms = [.es384]
                case "P-521":
                    guard x.count == 66, y.count == 66 else { throw KeyError("P-521 coordinates must be 66 bytes") }
                    material = .p521(try P521.Signing.PublicKey(rawRepresentation: x + y))
                    algorithms = [.es512]
                default:
                    throw KeyError("unsupported EC curve \(JSONValue.quoted(crv))")
                }
            } catch let error as KeyError {
                throw error
            } catch {
                throw KeyError("EC point is not on the curve")
            }
        case "OKP":
            guard jwk["crv"]?.stringValue == "Ed25519" else {
                throw KeyError("unsupported OKP curve \(jwk["crv"]?.compactText ?? "(missing)")")
            }
            let x = try Self.bytes(jwk, "x")
            guard x.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                throw KeyError("Ed25519 key must be 32 bytes")
            }
            material = .ed25519(key)
            algorithms = [.edDSA]
        case "oct":
            let k = try Self.bytes(jwk, "k")
            algorithms = [.hs256, .hs384, .hs512].filter { k.count >= $0.minimumHMACKeyBytes }
            guard !algorithms.isEmpty else {
                throw KeyError("oct key is \(k.count) bytes; at least 32 are required (RFC 7518 3.2)")
            }
            material = .hmac(SymmetricKey(data: k))
        default:
            throw KeyError("unsupported kty \(JSONValue.quoted(kty))")
        }
        if let pinned {
            guard algorithms.contains(pinned) else {
                throw KeyError("alg \(pinned) does not fit a \(kty) key like this one")
            }
            algorithms = [pinned]
        }
        return VerificationKey(kid: kid, algorithms: algorithms, material: material, source: source)
    }

    private static func bytes(_ jwk: JSONObject, _ name: String) throws(KeyError) -> [UInt8] {
        guard let text = jwk[name]?.stringValue else { throw KeyError("missing \"\(name)\"") }
        guard let bytes = Base64URL.decode(text), !bytes.isEmpty else {
            throw KeyError("\"\(name)\" is not base64url")
        }
        return bytes
    }

    private static func significantBits(_ bigEndian: [UInt8]) -> Int {
        guard let first = bigEndian.firstIndex(where: { $0 != 0 }) else { return 0 }
        let leading = bigEndian[first].leadingZeroBitCount
        return (bigEndian.count - first) * 8 - leading
    }
}
