import ArgumentParser
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Loads a configuration and fetches its remote key sets (for `keys` and `explain`).
func loadKeys(configPath: String, logLevel: Logger.Level = .critical) async throws -> (GatewayConfig, KeyRegistry) {
    let config = try ConfigLoader.load(path: configPath)
    let remotes = config.providers.compactMap(\.remote)
    let fetcher = remotes.isEmpty
        ? nil : try HTTPFetcher(group: MultiThreadedEventLoopGroup.singleton, caFile: remotes.compactMap(\.caFile).first)
    var logger = Logger(label: "authgate")
    logger.logLevel = logLevel
    let registry = KeyRegistry(providers: config.providers, fetcher: fetcher, logger: logger)
    await registry.start()
    registry.stop()
    return (config, registry)
}

/// `authgate keys`: every key the gateway would use, remote sets fetched.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every key the gateway would use (provider, kid, algorithms, source, fingerprint); fetches remote sets.")

    @Option(name: .long, help: "The configuration file.")
    var config = "gateway.json"

    func run() async throws {
        let (config, registry) = try await loadKeys(configPath: self.config)
        let verifier = registry.verifier
        var rows = [["PROVIDER", "KID", "ALG", "SOURCE", "FINGERPRINT"]]
        for provider in verifier.providers {
            for key in provider.keys {
                rows.append([
                    provider.name, key.kid ?? "-", key.algorithms.map(\.rawValue).joined(separator: ","), key.source,
                    key.fingerprint,
                ])
            }
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let padded = zip(row.dropLast(), widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }
            Output.out((padded + [row[row.count - 1]]).joined(separator: "  ") + "\n")
        }
        for skipped in config.skippedKeys { Output.err("note: skipped key \(skipped)\n") }
        var failed = false
        for (name, stats) in registry.remoteStats().sorted(by: { $0.key < $1.key }) where stats.lastError != nil {
            Output.err("error: provider \(name): remote key set not loaded: \(stats.lastError ?? "")\n")
            failed = true
        }
        if failed { throw ExitCode(1) }
    }
}

/// `authgate explain`: how the gateway would judge a token on a path, step by step.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain which route, provider and key a token meets, each check's result, and the gateway's answer.")

    @Option(name: .long, help: "The configuration file.")
    var config = "gateway.json"

    @Option(name: .long, help: "The request path to route.")
    var path = "/"

    @Argument(help: "The token (or '-' to read it from standard input).")
    var token: String

    func run() async throws {
        let (config, registry) = try await loadKeys(configPath: self.config)
        var token = self.token
        if token == "-" { token = readLine(strippingNewline: true) ?? "" }
        token = token.trimmed
        let planner = RequestPlanner(config: config, keys: registry)
        let now = WallClock.now()

        switch PathNormalizer.normalize(self.path) {
        case .failure(let rejection):
            Output.out("route: \(self.path) is refused: \(rejection.description) (400)\n")
        case .success(let normalized):
            if let route = planner.routes.route(for: normalized.path) {
                let providers = route.providerIndices.map { $0.map { config.providers[$0].name }.joined(separator: ", ") } ?? "all"
                Output.out("route: \(normalized.path) → routes[\(route.index)] \(route.pathPrefix) → \(route.upstream) (auth \(route.auth.rawValue), providers: \(providers))\n")
                if route.auth == .required {
                    let steps = TokenExplainer(verifier: registry.verifier).explain(token, providerIndices: route.providerIndices, now: now)
                    for step in steps { Output.out("  \(step)\n") }
                    if !route.requireClaims.isEmpty {
                        Output.out("  [--] require_claims: \(route.requireClaims.map { "\($0.claim) in [\($0.values.joined(separator: ", "))]" }.joined(separator: "; "))\n")
                    }
                }
            } else {
                Output.out("route: no route for \(normalized.path) (404)\n")
            }
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: self.path)
        head.headers.add(name: "Host", value: "explain")
        head.headers.add(name: "Authorization", value: "Bearer \(token)")
        switch planner.plan(head, clientAddress: nil, now: now, allowKeyRefresh: false) {
        case .respond(let response, let reason):
            Output.out("verdict: \(response.status.code) \(response.status.reasonPhrase) (\(reason))\n")
            throw ExitCode(1)
        case .forward(let plan):
            let identity = planner.config.identityHeaders.compactMap { mapping in
                plan.head.headers[mapping.header].first.map { "\(mapping.header): \($0)" }
            }
            Output.out("verdict: forwarded to \(plan.upstream)\(plan.head.uri)\(identity.isEmpty ? "" : " with " + identity.joined(separator: ", "))\n")
        case .refreshKeys:
            Output.out("verdict: unknown key (the gateway would refresh the remote key set first)\n")
            throw ExitCode(1)
        }
    }
}

extension String {
    /// Without leading and trailing white space (no Foundation in this tool).
    fileprivate var trimmed: String {
        var s = Substring(self)
        while let first = s.first, first.isWhitespace { s.removeFirst() }
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }
}
