/// When to fetch a remote key set: the pure decisions behind `RemoteKeySet`.
///
/// Times are seconds on a monotonic clock supplied by the caller, so tests drive it directly.
public struct RefreshSchedule: Sendable, Equatable {
    public enum Trigger: Sendable, Equatable {
        /// The periodic timer or startup.
        case scheduled
        /// A token named a `kid` no key has: refresh early, but at most once per minimum interval.
        case unknownKey
    }

    public enum Decision: Sendable, Equatable {
        /// Start a fetch now.
        case fetch
        /// A fetch is already running: wait for it instead of starting another.
        case join
        /// Too soon since the last attempt: answer with the keys at hand.
        case skip
    }

    public let source: RemoteKeySource
    public private(set) var inFlight = false
    public private(set) var lastAttempt: Double?
    public private(set) var consecutiveFailures = 0

    public init(source: RemoteKeySource) {
        self.source = source
    }

    /// Decides what a refresh request does at `now`, and records a started fetch.
    public mutating func request(_ trigger: Trigger, now: Double) -> Decision {
        if self.inFlight { return .join }
        if trigger == .unknownKey, let last = self.lastAttempt, now - last < self.source.minimumRefreshSeconds {
            return .skip
        }
        self.inFlight = true
        self.lastAttempt = now
        return .fetch
    }

    /// Records a finished fetch; returns the delay until the next scheduled refresh.
    ///
    /// On success: the response's `max-age` when shorter than `refreshSeconds` (never below the
    /// minimum interval). On failure: exponential backoff from 1 s, capped at `refreshSeconds`.
    public mutating func finished(success: Bool, maxAge: Double?) -> Double {
        self.inFlight = false
        if success {
            self.consecutiveFailures = 0
            var delay = self.source.refreshSeconds
            if let maxAge, maxAge < delay { delay = maxAge }
            return max(delay, self.source.minimumRefreshSeconds)
        }
        self.consecutiveFailures += 1
        let backoff = Double(1 << min(self.consecutiveFailures - 1, 16))
        return min(backoff, self.source.refreshSeconds)
    }

    /// `max-age` from a `Cache-Control` header value (`no-store`/`no-cache` count as 0).
    public static func maxAge(cacheControl values: [String]) -> Double? {
        var result: Double?
        for value in values {
            for directive in value.split(separator: ",") {
                let trimmed = directive.trimmingCharacters(in: " \t").lowercased()
                if trimmed == "no-store" || trimmed == "no-cache" { return 0 }
                if trimmed.hasPrefix("max-age=") {
                    let number = trimmed.dropFirst("max-age=".count).trimmingCharacters(in: "\"")
                    if let seconds = Double(number), seconds >= 0 { result = min(result ?? seconds, seconds) }
                }
            }
        }
        return result
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s.removeFirst() }
        while let last = s.last, set.contains(last) { s.removeLast() }
        return String(s)
    }
}
