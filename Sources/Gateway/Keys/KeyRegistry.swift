import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The keys of every provider, published as immutable `TokenVerifier` snapshots.
///
/// Requests read the current snapshot (one short lock); remote key sets replace it when they
/// refresh. Fetching never happens on a request's behalf except through `refresh(_:)`, which
/// coalesces and rate-limits, so a flood of unknown `kid`s costs at most one fetch per provider
/// per `jwks_min_refresh_seconds`.
public final class KeyRegistry: Sendable {
    private let snapshot: NIOLockedValueBox<TokenVerifier>
    /// Bumped whenever the snapshot changes: verified-token caches compare it to drop entries
    /// verified with keys that may no longer be trusted.
    private let generationCounter: Synchronization.Atomic<Int>
    private let staticKeys: [[VerificationKey]]
    private let remotes: [Int: RemoteKeySet]
    /// Each registry numbers its generations from its own base, so a token cached under one
    /// configuration never matches the generation of the next (identity headers and providers
    /// may have changed with it).
    private static let registries = Synchronization.Atomic<Int>(0)

    /// - Parameters:
    ///   - fetcher: needed when any provider has a remote source.
    ///   - previous: the registry being replaced by a reload: a provider whose remote source is
    ///     unchanged keeps its key set (and its keys), so a reload neither refetches nor risks
    ///     a provider without keys while the identity provider is down.
    public init(providers: [Provider], fetcher: HTTPFetcher?, logger: Logger, reusing previous: KeyRegistry? = nil) {
        let base = Self.registries.wrappingAdd(1, ordering: .relaxed).newValue << 32
        self.generationCounter = Atomic(base)
        self.staticKeys = providers.map(\.keys)
        var providers = providers
        var remotes: [Int: RemoteKeySet] = [:]
        for (index, provider) in providers.enumerated() {
            guard let source = provider.remote else { continue }
            if let reused = previous?.remotes.values.first(where: { $0.providerName == provider.name && $0.source == source }) {
                remotes[index] = reused
                if let keys = reused.currentKeys {
                    providers[index].keys = provider.keys + keys
                    providers[index].remoteLoaded = true
                }
            } else if let fetcher {
                remotes[index] = RemoteKeySet(providerName: provider.name, source: source, fetcher: fetcher, logger: logger)
            }
        }
        self.snapshot = NIOLockedValueBox(TokenVerifier(providers: providers))
        self.remotes = remotes
        for (index, remote) in remotes {
            remote.onUpdate = { [weak self] keys in self?.publish(providerIndex: index, remoteKeys: keys) }
        }
    }

    /// Stops the refreshes of key sets that `successor` did not take over.
    public func retire(handingOverTo successor: KeyRegistry) {
        let kept = Set(successor.remotes.values.map(ObjectIdentifier.init))
        for remote in self.remotes.values where !kept.contains(ObjectIdentifier(remote)) { remote.stop() }
    }

    /// Whether every provider has at least one key to verify with (`/readyz`).
    public var everyProviderHasKeys: Bool {
        self.verifier.providers.allSatisfy { !$0.keys.isEmpty }
    }

    /// The verifier for the keys as they are now.
    public var verifier: TokenVerifier { self.snapshot.withLockedValue { $0 } }

    /// Changes whenever the keys change.
    public var generation: Int { self.generationCounter.load(ordering: .acquiring) }

    /// Whether any of `providerIndices` fetches keys remotely (so a refresh might help).
    public func hasRemote(_ providerIndices: [Int]) -> Bool {
        providerIndices.contains { self.remotes[$0] != nil }
    }

    /// Fetches every remote set once (bounded by each set's timeout) and starts the periodic
    /// refreshes. A set that fails to load is retried with backoff; its provider answers 503.
    public func start() async {
        await withTaskGroup(of: Void.self) { group in
            for remote in self.remotes.values where remote.currentKeys == nil {
                group.addTask { _ = try? await remote.refresh(.scheduled).get() }
            }
        }
    }

    /// Refreshes the remote sets of `providerIndices` because a token named an unknown key.
    /// The future completes when the refresh is done, or at once when it is rate-limited.
    public func refresh(_ providerIndices: [Int]) -> EventLoopFuture<Void>? {
        let futures = providerIndices.compactMap { self.remotes[$0]?.refresh(.unknownKey) }
        guard let first = futures.first else { return nil }
        return EventLoopFuture.whenAllComplete(futures, on: first.eventLoop).map { _ in () }
    }

    /// Stops periodic refreshes.
    public func stop() {
        for remote in self.remotes.values { remote.stop() }
    }

    /// Counters per remote provider, for tests and operators.
    public func remoteStats() -> [String: RemoteKeySet.Stats] {
        var result: [String: RemoteKeySet.Stats] = [:]
        for remote in self.remotes.values { result[remote.providerName] = remote.stats }
        return result
    }

    private func publish(providerIndex: Int, remoteKeys: [VerificationKey]) {
        self.snapshot.withLockedValue { verifier in
            var providers = verifier.providers
            providers[providerIndex].keys = self.staticKeys[providerIndex] + remoteKeys
            providers[providerIndex].remoteLoaded = true
            verifier = TokenVerifier(providers: providers)
            self.generationCounter.add(1, ordering: .releasing)
        }
    }
}
