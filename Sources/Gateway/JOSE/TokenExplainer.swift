/// Explains, step by step, how the gateway judges a token — for `authgate explain`.
///
/// Informational: the verdict printed with it comes from `RequestPlanner`, the code that serves
/// requests, so the explanation can never claim a different outcome than the gateway's.
public struct TokenExplainer: Sendable {
    public struct Step: Sendable, Equatable, CustomStringConvertible {
        public enum Outcome: String, Sendable {
            case pass = "ok"
            case fail = "FAIL"
            case info = "--"
            case skip = "skip"
        }

        public let outcome: Outcome
        public let text: String

        public var description: String { "[\(self.outcome.rawValue)] \(self.text)" }
    }

    public let verifier: TokenVerifier

    public init(verifier: TokenVerifier) {
        self.verifier = verifier
    }

    public func explain(_ token: String, providerIndices: [Int]?, now: Double) -> [Step] {
        var steps: [Step] = []
        func add(_ outcome: Step.Outcome, _ text: String) { steps.append(Step(outcome: outcome, text: text)) }

        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            add(.fail, "structure: \(parts.count) segments, a compact JWS has 3")
            return steps
        }
        guard let headerBytes = Base64URL.decode(parts[0]), let header = try? JSONParser.parse(headerBytes).objectValue
        else {
            add(.fail, "header: not a base64url JSON object")
            return steps
        }
        add(.pass, "header: \(JSONValue.object(header).compactText)")
        guard let payloadBytes = Base64URL.decode(parts[1]), let claims = try? JSONParser.parse(payloadBytes).objectValue
        else {
            add(.fail, "payload: not a base64url JSON object")
            return steps
        }
        let shown = ["iss", "sub", "aud", "exp", "nbf", "iat"].compactMap { name in
            claims[name].map { "\(name)=\($0.compactText)" }
        }
        add(.info, "claims: \(shown.joined(separator: " "))")
        guard let signature = Base64URL.decode(parts[2]) else {
            add(.fail, "signature: not base64url")
            return steps
        }
        guard let algName = header["alg"]?.stringValue, let algorithm = JWSAlgorithm(rawValue: algName) else {
            add(.fail, "alg: \(header["alg"]?.compactText ?? "missing") is not accepted (none and unknown algorithms never are)")
            return steps
        }
        if header["crit"] != nil { add(.fail, "crit: critical header parameters are refused") }
        let kid = header["kid"]?.stringValue
        for ignored in ["jku", "jwk", "x5u", "x5c"] where header[ignored] != nil {
            add(.info, "\(ignored): present and ignored (keys come only from the configuration)")
        }
        let issuer = claims["iss"]?.stringValue
        let signingInput = Array(token.utf8[..<token.utf8.index(token.utf8.startIndex, offsetBy: parts[0].utf8.count + 1 + parts[1].utf8.count)])
        for index in providerIndices ?? Array(self.verifier.providers.indices) {
            let provider = self.verifier.providers[index]
            if let expected = provider.issuer, expected != issuer {
                add(.skip, "provider \(provider.name): issuer \(JSONValue.quoted(expected)) ≠ token iss \(issuer.map(JSONValue.quoted) ?? "(none)")")
                continue
            }
            add(.info, "provider \(provider.name): \(provider.keys.count) keys\(provider.awaitingKeys ? ", remote set not loaded yet" : "")")
            for key in provider.keys {
                let name = "key \(key.kid.map(JSONValue.quoted) ?? "(no kid)") [\(key.algorithms.map(\.rawValue).joined(separator: ","))] from \(key.source)"
                if let kid, key.kid != kid { continue }
                guard key.accepts(algorithm) else {
                    add(.fail, "\(name): does not accept \(algorithm)")
                    continue
                }
                let valid = signingInput.withUnsafeBytes {
                    SignatureVerifier.isValid(signature: signature, signingInput: $0, algorithm: algorithm, key: key.material)
                }
                add(valid ? .pass : .fail, "\(name): signature \(valid ? "valid" : "invalid")")
                if valid {
                    self.explainClaims(claims, provider: provider, now: now, into: &steps)
                    return steps
                }
            }
            if let kid, !provider.keys.contains(where: { $0.kid == kid }) {
                add(.fail, "provider \(provider.name): no key with kid \(JSONValue.quoted(kid))")
            }
        }
        return steps
    }

    private func explainClaims(_ claims: JSONObject, provider: Provider, now: Double, into steps: inout [Step]) {
        func add(_ outcome: Step.Outcome, _ text: String) { steps.append(Step(outcome: outcome, text: text)) }
        let skew = provider.clockSkewSeconds
        func relative(_ seconds: Double) -> String {
            let delta = Int((seconds - now).rounded())
            return delta >= 0 ? "in \(delta)s" : "\(-delta)s ago"
        }
        if let exp = claims["exp"]?.doubleValue {
            add(now < exp + skew ? .pass : .fail, "exp: \(relative(exp)) (skew \(Int(skew))s)")
        } else {
            add(.fail, "exp: \(claims["exp"] == nil ? "missing (required)" : "not a number")")
        }
        if let nbf = claims["nbf"] {
            let value = nbf.doubleValue
            add(value.map { now + skew >= $0 } ?? false ? .pass : .fail, "nbf: \(value.map(relative) ?? "not a number")")
        }
        if let iat = claims["iat"] {
            let value = iat.doubleValue
            add(value.map { $0 <= now + skew } ?? false ? .pass : .fail, "iat: \(value.map(relative) ?? "not a number")")
        }
        if let expected = provider.issuer {
            add(claims["iss"]?.stringValue == expected ? .pass : .fail, "iss: must be \(JSONValue.quoted(expected))")
        }
        if !provider.audiences.isEmpty {
            let result = TokenVerifier.checkClaims(
                JSONObject([("exp", .number("1e300")), ("aud", claims["aud"] ?? .null)]),
                provider: Provider(name: "", issuer: nil, audiences: provider.audiences, clockSkewSeconds: 0, keys: []), now: 0)
            let ok = (try? result.get()) != nil
            add(ok ? .pass : .fail, "aud: \(claims["aud"]?.compactText ?? "missing"), accepted: \(provider.audiences.joined(separator: ", "))")
        }
    }
}
