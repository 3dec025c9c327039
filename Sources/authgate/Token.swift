import ArgumentParser
import Gateway

/// `authgate token`: mints a signed token with a configured key, for testing and demos.
struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a signed token (HMAC with the key's secret; RSA/EC/EdDSA with --private-key).")

    @Option(name: .long, help: "The configuration file.")
    var config = "gateway.json"

    @Option(name: .long, help: "The kid of the configured key to sign for.")
    var key: String

    @Option(name: .long, help: "The subject (sub claim).")
    var sub: String

    @Option(name: .long, parsing: .singleValue, help: "An extra claim, k=v; v is parsed as JSON when it is JSON (role=[\"admin\"], n=5), else taken as a string. Repeatable; overrides the defaults.")
    var claim: [String] = []

    @Option(name: .long, help: "Lifetime: 90s, 15m, 2h, 1d or seconds.")
    var ttl = "15m"

    @Option(name: .long, help: "Issuer (default: the provider's issuer).")
    var iss: String?

    @Option(name: .long, help: "Audience (default: the provider's first audience).")
    var aud: String?

    @Option(name: .long, help: "PEM private key file, for RS*/PS*/ES*/EdDSA keys.")
    var privateKey: String?

    @Option(name: .long, help: "Algorithm, when the key allows several (a JWKS key without alg).")
    var alg: String?

    func validate() throws {
        guard Self.seconds(self.ttl) != nil else { throw ValidationError("--ttl \(self.ttl) is not a duration like 90s, 15m, 2h, 1d") }
        for entry in self.claim where !entry.contains("=") {
            throw ValidationError("--claim \(entry) is not k=v")
        }
        if let alg = self.alg, JWSAlgorithm(rawValue: alg) == nil { throw ValidationError("--alg \(alg) is not supported") }
    }

    func run() throws {
        let config = try ConfigLoader.load(path: self.config)
        let matches = config.providers.flatMap { provider in provider.keys.filter { $0.kid == self.key }.map { (provider, $0) } }
        guard let (provider, key) = matches.first else {
            let known = config.providers.flatMap { $0.keys.compactMap(\.kid) }
            throw CLIFailure("no key with kid \(self.key) in \(self.config) (known: \(known.joined(separator: ", ")))")
        }
        guard matches.count == 1 else { throw CLIFailure("kid \(self.key) is used by more than one provider") }
        let algorithm = try self.algorithm(for: key)
        let signer: TokenSigner
        switch key.material {
        case .hmac(let secret):
            signer = TokenSigner(algorithm: algorithm, key: .hmac(secret), kid: key.kid)
        default:
            guard let path = self.privateKey else {
                throw CLIFailure("kid \(self.key) is an \(algorithm) public key: give the matching --private-key FILE")
            }
            let pem: [UInt8]
            do { pem = try FileReader.read(path) } catch { throw CLIFailure(error.description) }
            do {
                signer = try TokenSigner.privateKey(pem: String(decoding: pem, as: UTF8.self), algorithm: algorithm, kid: key.kid)
            } catch {
                throw CLIFailure("\(path): \(error.description)")
            }
        }
        let now = WallClock.now().rounded(.down)
        var claims: [(name: String, value: JSONValue)] = []
        if let issuer = self.iss ?? provider.issuer { claims.append(("iss", .string(issuer))) }
        claims.append(("sub", .string(self.sub)))
        if let audience = self.aud ?? provider.audiences.first { claims.append(("aud", .string(audience))) }
        claims.append(("iat", .number(String(Int(now)))))
        claims.append(("exp", .number(String(Int(now + Self.seconds(self.ttl)!)))))
        for entry in self.claim {
            let name = String(entry[..<entry.firstIndex(of: "=")!])
            let text = String(entry[entry.index(after: entry.firstIndex(of: "=")!)...])
            let value = (try? JSONParser.parse(text)) ?? .string(text)
            claims.removeAll { $0.name == name }
            claims.append((name, value))
        }
        let token: String
        do { token = try signer.sign(claims: JSONObject(claims)) } catch { throw CLIFailure(error.description) }
        // Catch a private key that does not belong to the configured public key now, not at the gateway.
        let check = TokenVerifier(providers: [Provider(name: provider.name, issuer: nil, audiences: [], clockSkewSeconds: 0, keys: [key])])
        if case .failure(let failure) = check.verify(token, now: now), failure == .badSignature {
            throw CLIFailure("the private key does not match the configured key \(self.key)")
        }
        Output.out(token + "\n")
    }

    private func algorithm(for key: VerificationKey) throws -> JWSAlgorithm {
        if let name = self.alg {
            let algorithm = JWSAlgorithm(rawValue: name)!
            guard key.accepts(algorithm) else { throw CLIFailure("kid \(self.key) does not accept \(name)") }
            return algorithm
        }
        return key.algorithms[0]
    }

    /// `90s`, `15m`, `2h`, `1d` or a plain number of seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = text.last, let unit = units[last], let value = Double(text.dropLast()), value > 0 {
            return value * unit
        }
        if let value = Double(text), value > 0 { return value }
        return nil
    }
}
