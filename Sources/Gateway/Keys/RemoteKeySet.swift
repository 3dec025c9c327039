import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One provider's remote key set: fetches, refreshes on a schedule, and on demand.
///
/// The decisions live in `RefreshSchedule`; this class runs them. The last good set stays in use
/// when a fetch fails.
public final class RemoteKeySet: Sendable {
    public struct Stats: Sendable, Equatable {
        public var fetches = 0
        public var failures = 0
        public var keys = 0
        public var lastError: String?
    }

    private struct State {
        var schedule: RefreshSchedule
        var inFlight: EventLoopFuture<Void>?
        /// The JWKS location once known (discovery resolves it on the first fetch).
        var jwksURL: FetchURL?
        var timer: Scheduled<Void>?
        var stopped = false
        var stats = Stats()
        var onUpdate: (@Sendable ([VerificationKey]) -> Void)?
        /// The last set published (nil until the first successful fetch).
        var keys: [VerificationKey]?
    }

    let providerName: String
    let source: RemoteKeySource
    private let fetcher: HTTPFetcher
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    init(providerName: String, source: RemoteKeySource, fetcher: HTTPFetcher, logger: Logger) {
        self.providerName = providerName
        self.source = source
        self.fetcher = fetcher
        self.logger = logger
        var initial = State(schedule: RefreshSchedule(source: source))
        if case .jwks(let url) = source.location { initial.jwksURL = url }
        self.state = NIOLockedValueBox(initial)
    }

    var onUpdate: (@Sendable ([VerificationKey]) -> Void)? {
        get { self.state.withLockedValue { $0.onUpdate } }
        set { self.state.withLockedValue { $0.onUpdate = newValue } }
    }

    var stats: Stats { self.state.withLockedValue { $0.stats } }

    /// The keys last published, nil before the first successful fetch.
    var currentKeys: [VerificationKey]? { self.state.withLockedValue { $0.keys } }

    private static func monotonicSeconds() -> Double {
        Double(NIODeadline.now().uptimeNanoseconds) / 1e9
    }

    /// Starts a fetch, joins the one running, or (for unknown keys, too soon) does nothing.
    func refresh(_ trigger: RefreshSchedule.Trigger) -> EventLoopFuture<Void> {
        let loop = self.fetcher.group.next()
        let promise = loop.makePromise(of: Void.self)
        let decision: RefreshSchedule.Decision = self.state.withLockedValue { state in
            if state.stopped { return .skip }
            let decision = state.schedule.request(trigger, now: Self.monotonicSeconds())
            switch decision {
            case .fetch:
                state.inFlight = promise.futureResult
                state.stats.fetches += 1
            case .join, .skip:
                break
            }
            return decision
        }
        switch decision {
        case .skip:
            promise.succeed(())
            return promise.futureResult
        case .join:
            promise.succeed(())
            return self.state.withLockedValue { $0.inFlight } ?? promise.futureResult
        case .fetch:
            self.fetch().whenComplete { result in
                self.finish(result)
                promise.succeed(())
            }
            return promise.futureResult
        }
    }

    func stop() {
        self.state.withLockedValue { state in
            state.stopped = true
            state.timer?.cancel()
            state.timer = nil
        }
    }

    private func finish(_ result: Result<(keys: [VerificationKey], maxAge: Double?), any Error>) {
        var publish: (@Sendable ([VerificationKey]) -> Void)?
        var keys: [VerificationKey] = []
        let delay: Double = self.state.withLockedValue { state in
            state.inFlight = nil
            switch result {
            case .success(let fetched):
                state.stats.keys = fetched.keys.count
                state.stats.lastError = nil
                publish = state.onUpdate
                keys = fetched.keys
                state.keys = fetched.keys
                return state.schedule.finished(success: true, maxAge: fetched.maxAge)
            case .failure(let error):
                state.stats.failures += 1
                state.stats.lastError = "\(error)"
                return state.schedule.finished(success: false, maxAge: nil)
            }
        }
        switch result {
        case .success:
            self.logger.info(
                "key set refreshed",
                metadata: ["provider": "\(self.providerName)", "keys": "\(keys.count)", "next_refresh_s": "\(delay)"])
        case .failure(let error):
            self.logger.error(
                "key set fetch failed; keeping the last good keys",
                metadata: ["provider": "\(self.providerName)", "error": "\(error)", "retry_in_s": "\(delay)"])
        }
        publish?(keys)
        self.scheduleNext(in: delay)
    }

    private func scheduleNext(in seconds: Double) {
        let loop = self.fetcher.group.next()
        self.state.withLockedValue { state in
            guard !state.stopped else { return }
            state.timer?.cancel()
            state.timer = loop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { [weak self] in
                _ = self?.refresh(.scheduled)
            }
        }
    }

    /// Discovery (first time only), then the JWKS.
    private func fetch() -> EventLoopFuture<(keys: [VerificationKey], maxAge: Double?)> {
        let timeout = TimeAmount.nanoseconds(Int64(self.source.timeoutSeconds * 1e9))
        let known = self.state.withLockedValue { $0.jwksURL }
        let jwksURL: EventLoopFuture<FetchURL>
        if let known {
            jwksURL = self.fetcher.group.next().makeSucceededFuture(known)
        } else if case .discovery(let url, let issuer) = self.source.location {
            jwksURL = self.fetcher.get(url, timeout: timeout).flatMapThrowing { response in
                let resolved = try Self.jwksURI(fromDiscovery: response, expectedIssuer: issuer, url: url)
                self.state.withLockedValue { $0.jwksURL = resolved }
                return resolved
            }
        } else {
            jwksURL = self.fetcher.group.next().makeFailedFuture(KeyError("no key set location"))
        }
        let name = self.providerName
        return jwksURL.flatMap { url in
            self.fetcher.get(url, timeout: timeout).flatMapThrowing { response in
                guard response.status == 200 else { throw KeyError("\(url) answered \(response.status)") }
                let set = try JWK.parseSet(response.body, source: "providers[\(name)] \(url)")
                for skipped in set.skipped {
                    self.logger.warning("skipped unusable key", metadata: ["provider": "\(name)", "key": "\(skipped)"])
                }
                guard !set.keys.isEmpty else { throw KeyError("\(url) holds no usable key") }
                let maxAge = RefreshSchedule.maxAge(cacheControl: response.headers["cache-control"])
                return (set.keys, maxAge)
            }
        }
    }

    /// Reads `jwks_uri` from an OpenID Provider Configuration document after checking its
    /// `issuer` (OpenID Connect Discovery 1.0 §4.3: it must equal the issuer it was fetched for).
    static func jwksURI(fromDiscovery response: HTTPFetcher.Response, expectedIssuer: String, url: FetchURL) throws -> FetchURL {
        guard response.status == 200 else { throw KeyError("\(url) answered \(response.status)") }
        guard let document = (try? JSONParser.parse(response.body))?.objectValue else {
            throw KeyError("\(url) is not a JSON object")
        }
        guard let issuer = document["issuer"]?.stringValue, issuer == expectedIssuer else {
            throw KeyError(
                "\(url) names issuer \(document["issuer"]?.compactText ?? "(none)"), not \(JSONValue.quoted(expectedIssuer))")
        }
        guard let text = document["jwks_uri"]?.stringValue, let jwks = FetchURL.parse(text) else {
            throw KeyError("\(url) has no usable jwks_uri")
        }
        return jwks
    }
}
