/// How a request was decided, for metrics and the access log.
public enum Decision: String, Sendable, Hashable, CaseIterable {
    /// Forwarded to the upstream (whatever the upstream then answered).
    case allowed
    /// A route that requires a token, and no token.
    case missingToken = "missing_token"
    /// A token that failed verification (signature, algorithm, `exp`, `iss`, ...).
    case invalidToken = "invalid_token"
    /// A valid token without the claims the route requires.
    case forbidden
    /// The provider's keys are not available (503).
    case unavailable
    /// Refused before authentication: malformed or ambiguous requests, no route, too large.
    case rejected

    /// The decision behind a local answer, from the planner's reason and the status.
    public static func of(reason: String, status: Int) -> Decision {
        switch reason {
        case "missing_token": .missingToken
        case AuthFailure.insufficientScope.code: .forbidden
        case AuthFailure.keysUnavailable.code: .unavailable
        default: status == 401 ? .invalidToken : .rejected
        }
    }
}

/// A Prometheus histogram with fixed buckets, in seconds.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds: 50 µs to 10 s, covering a cache hit as well as a slow upstream.
    public static let bounds: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]

    /// Observations per bucket (not cumulative); the last counts those above every bound.
    public private(set) var counts = [Int](repeating: 0, count: Self.bounds.count + 1)
    public private(set) var sum: Double = 0
    public private(set) var count = 0

    public init() {}

    public mutating func observe(_ seconds: Double) {
        let value = max(0, seconds)
        var index = 0
        while index < Self.bounds.count, value > Self.bounds[index] { index += 1 }
        self.counts[index] += 1
        self.sum += value
        self.count += 1
    }

    /// Back to no observations, keeping the buckets' storage (no allocation).
    public mutating func reset() {
        for index in self.counts.indices { self.counts[index] = 0 }
        self.sum = 0
        self.count = 0
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for index in self.counts.indices { self.counts[index] += other.counts[index] }
        self.sum += other.sum
        self.count += other.count
    }
}

/// Counters of one event loop, or their sum over loops.
public struct MetricsSnapshot: Sendable, Equatable {
    public struct RequestKey: Hashable, Sendable {
        /// The route's `path_prefix`, or `none` when the request was refused before routing.
        public var route: String
        public var status: Int
        public var decision: Decision
        /// The planner's reason for a local answer (`expired`, `no_route`, ...); empty when forwarded.
        public var reason: String
    }

    public struct UpstreamErrorKey: Hashable, Sendable {
        public var upstream: String
        /// `connect` (refused, unreachable), `connect_timeout`, `timeout` (no response head in
        /// time) or `closed` (closed or reset before a complete response).
        public var kind: String
    }

    public var requests: [RequestKey: Int] = [:]
    /// Time waiting on the upstream, from forwarding the request head to its response head, by route.
    public var upstreamLatency: [String: LatencyHistogram] = [:]
    /// Time the gateway itself adds to a request (see README "Metrics").
    public var gatewayLatency = LatencyHistogram()
    public var upstreamErrors: [UpstreamErrorKey: Int] = [:]
    /// Client connections accepted and currently open.
    public var connectionsAccepted = 0
    public var connectionsOpen = 0
    /// Upstream connections opened, currently open, idle in the pool, and failed connects.
    public var upstreamConnects = 0
    public var upstreamConnectionsOpen = 0
    public var upstreamConnectionsIdle = 0
    public var upstreamConnectionsReused = 0
    public var requestBodyBytes = 0
    public var responseBodyBytes = 0
    public var tokenCache = TokenCache.Stats()
    /// Upgraded connections tunnelled so far, and open now.
    public var tunnels = 0
    public var tunnelsOpen = 0

    public init() {}

    public mutating func merge(_ other: MetricsSnapshot) {
        self.requests.merge(other.requests, uniquingKeysWith: +)
        self.upstreamLatency.merge(other.upstreamLatency) { var a = $0; a.merge($1); return a }
        self.gatewayLatency.merge(other.gatewayLatency)
        self.upstreamErrors.merge(other.upstreamErrors, uniquingKeysWith: +)
        self.connectionsAccepted += other.connectionsAccepted
        self.connectionsOpen += other.connectionsOpen
        self.upstreamConnects += other.upstreamConnects
        self.upstreamConnectionsOpen += other.upstreamConnectionsOpen
        self.upstreamConnectionsIdle += other.upstreamConnectionsIdle
        self.upstreamConnectionsReused += other.upstreamConnectionsReused
        self.requestBodyBytes += other.requestBodyBytes
        self.responseBodyBytes += other.responseBodyBytes
        self.tunnels += other.tunnels
        self.tunnelsOpen += other.tunnelsOpen
        self.tokenCache.hits += other.tokenCache.hits
        self.tokenCache.misses += other.tokenCache.misses
        self.tokenCache.entries += other.tokenCache.entries
        self.tokenCache.bytes += other.tokenCache.bytes
    }
}

/// The counters one event loop updates as it serves requests. Loop-confined: no lock, no atomics;
/// `/metrics` asks each loop for a snapshot and sums them.
public final class LoopMetrics {
    private var counts = MetricsSnapshot()
    /// Requests counted under `pendingKey` and not yet added to `counts.requests`. Consecutive
    /// requests mostly share their key (same route, 200, allowed), and comparing a key is cheaper
    /// than hashing it per request.
    private var pendingKey: MetricsSnapshot.RequestKey?
    private var pendingCount = 0
    /// Upstream latencies observed for `pendingRoute` and not yet merged into
    /// `counts.upstreamLatency`: the same idea, saving a dictionary look-up (and the route's hash)
    /// per request.
    private var pendingRoute: String?
    private var pendingLatency = LatencyHistogram()

    public init() {}

    /// Everything counted so far.
    public var snapshot: MetricsSnapshot {
        self.foldPending()
        self.foldPendingLatency()
        return self.counts
    }

    public func countRequest(route: String, status: Int, decision: Decision, reason: String) {
        let key = MetricsSnapshot.RequestKey(route: route, status: status, decision: decision, reason: reason)
        if key == self.pendingKey {
            self.pendingCount += 1
            return
        }
        self.foldPending()
        self.pendingKey = key
        self.pendingCount = 1
    }

    private func foldPending() {
        guard let key = self.pendingKey else { return }
        self.counts.requests[key, default: 0] += self.pendingCount
        self.pendingKey = nil
        self.pendingCount = 0
    }

    public func observeUpstream(route: String, seconds: Double) {
        if route != self.pendingRoute {
            self.foldPendingLatency()
            self.pendingRoute = route
        }
        self.pendingLatency.observe(seconds)
    }

    private func foldPendingLatency() {
        guard let route = self.pendingRoute else { return }
        self.counts.upstreamLatency[route, default: LatencyHistogram()].merge(self.pendingLatency)
        self.pendingRoute = nil
        self.pendingLatency.reset()
    }

    public func observeGateway(seconds: Double) {
        self.counts.gatewayLatency.observe(seconds)
    }

    public func countUpstreamError(upstream: String, kind: String) {
        self.counts.upstreamErrors[MetricsSnapshot.UpstreamErrorKey(upstream: upstream, kind: kind), default: 0] += 1
    }

    public func connectionOpened() {
        self.counts.connectionsAccepted += 1
        self.counts.connectionsOpen += 1
    }

    public func connectionClosed() {
        self.counts.connectionsOpen -= 1
    }

    public func tunnelOpened() {
        self.counts.tunnels += 1
        self.counts.tunnelsOpen += 1
    }

    public func tunnelClosed() {
        self.counts.tunnelsOpen -= 1
    }

    public func countBodyBytes(request: Int, response: Int) {
        self.counts.requestBodyBytes += request
        self.counts.responseBodyBytes += response
    }
}

@available(*, unavailable)
extension LoopMetrics: Sendable {}

/// Gateway-wide values that are not per loop: key sets, reloads, the access log.
public struct ProcessMetrics: Sendable {
    public var keySets: [String: RemoteKeySet.Stats] = [:]
    /// Keys usable per provider name.
    public var providerKeys: [String: Int] = [:]
    public var reloads = 0
    public var reloadFailures = 0
    /// Unix time of the configuration in use.
    public var configLoadedAt: Double = 0
    public var accessLogDropped = 0
    public var ready = false

    public init() {}
}

/// Renders metrics in the Prometheus text exposition format (version 0.0.4).
public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ loops: MetricsSnapshot, _ process: ProcessMetrics) -> String {
        var out = Writer()
        out.family("authgate_requests_total", "counter", "Requests answered, by route, status and decision.")
        for (key, value) in loops.requests.sorted(by: { Self.order($0.key, $1.key) }) {
            out.sample(
                "authgate_requests_total",
                [("route", key.route), ("status", String(key.status)), ("decision", key.decision.rawValue), ("reason", key.reason)],
                value)
        }
        out.family(
            "authgate_upstream_latency_seconds", "histogram",
            "Time from forwarding a request head to receiving the upstream's response head, by route.")
        for (route, histogram) in loops.upstreamLatency.sorted(by: { $0.key < $1.key }) {
            out.histogram("authgate_upstream_latency_seconds", [("route", route)], histogram)
        }
        out.family(
            "authgate_gateway_latency_seconds", "histogram",
            "Time the gateway adds to a request: head received to response head sent, minus upstream latency.")
        out.histogram("authgate_gateway_latency_seconds", [], loops.gatewayLatency)
        out.family("authgate_upstream_errors_total", "counter", "Failed upstream exchanges, by upstream and kind.")
        for (key, value) in loops.upstreamErrors.sorted(by: { ($0.key.upstream, $0.key.kind) < ($1.key.upstream, $1.key.kind) }) {
            out.sample("authgate_upstream_errors_total", [("upstream", key.upstream), ("kind", key.kind)], value)
        }
        out.gauge("authgate_client_connections", "Client connections open.", loops.connectionsOpen)
        out.counter("authgate_client_connections_accepted_total", "Client connections accepted.", loops.connectionsAccepted)
        out.gauge("authgate_upstream_connections", "Upstream connections open (busy or idle).", loops.upstreamConnectionsOpen)
        out.gauge("authgate_upstream_connections_idle", "Upstream connections idle in the pools.", loops.upstreamConnectionsIdle)
        out.counter("authgate_upstream_connects_total", "Upstream connections opened.", loops.upstreamConnects)
        out.counter("authgate_upstream_connection_reuses_total", "Requests sent on a pooled connection.", loops.upstreamConnectionsReused)
        out.gauge("authgate_tunnels", "Upgraded connections (WebSocket) tunnelled now.", loops.tunnelsOpen)
        out.counter("authgate_tunnels_total", "Upgraded connections tunnelled.", loops.tunnels)
        out.counter("authgate_request_body_bytes_total", "Request body bytes forwarded upstream.", loops.requestBodyBytes)
        out.counter("authgate_response_body_bytes_total", "Response body bytes sent to clients.", loops.responseBodyBytes)
        out.counter("authgate_token_cache_hits_total", "Verified-token cache hits.", loops.tokenCache.hits)
        out.counter("authgate_token_cache_misses_total", "Verified-token cache misses.", loops.tokenCache.misses)
        out.gauge("authgate_token_cache_entries", "Tokens in the verified-token caches.", loops.tokenCache.entries)
        out.gauge("authgate_token_cache_bytes", "Approximate bytes held by the verified-token caches.", loops.tokenCache.bytes)

        out.family("authgate_provider_keys", "gauge", "Keys usable per provider.")
        for (name, count) in process.providerKeys.sorted(by: { $0.key < $1.key }) {
            out.sample("authgate_provider_keys", [("provider", name)], count)
        }
        out.family("authgate_key_set_fetches_total", "counter", "Remote key set fetches, by provider.")
        for (name, stats) in process.keySets.sorted(by: { $0.key < $1.key }) {
            out.sample("authgate_key_set_fetches_total", [("provider", name)], stats.fetches)
        }
        out.family("authgate_key_set_failures_total", "counter", "Remote key set fetches that failed, by provider.")
        for (name, stats) in process.keySets.sorted(by: { $0.key < $1.key }) {
            out.sample("authgate_key_set_failures_total", [("provider", name)], stats.failures)
        }
        out.counter("authgate_config_reloads_total", "Configuration reloads applied.", process.reloads)
        out.counter("authgate_config_reload_failures_total", "Configuration reloads rejected.", process.reloadFailures)
        out.family("authgate_config_loaded_timestamp_seconds", "gauge", "Unix time the configuration in use was loaded.")
        out.sample("authgate_config_loaded_timestamp_seconds", [], process.configLoadedAt)
        out.counter("authgate_access_log_dropped_total", "Access log lines dropped because the writer fell behind.", process.accessLogDropped)
        out.gauge("authgate_ready", "1 when /readyz answers 200.", process.ready ? 1 : 0)
        return out.text
    }

    private static func order(_ a: MetricsSnapshot.RequestKey, _ b: MetricsSnapshot.RequestKey) -> Bool {
        (a.route, a.status, a.decision.rawValue, a.reason) < (b.route, b.status, b.decision.rawValue, b.reason)
    }

    /// A label value with `\`, `"` and newlines escaped.
    static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == 0x0A }) else {
            return value
        }
        var escaped = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// Prometheus' float format: integers without a fraction, `+Inf`.
    static func format(_ value: Double) -> String {
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.isNaN { return "NaN" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }

    private struct Writer {
        var text = ""

        mutating func family(_ name: String, _ type: String, _ help: String) {
            self.text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Int) {
            self.sample(name, labels, Double(value))
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            self.text += name
            if !labels.isEmpty {
                self.text += "{"
                self.text += labels.map { "\($0.0)=\"\(PrometheusExposition.escape($0.1))\"" }.joined(separator: ",")
                self.text += "}"
            }
            self.text += " \(PrometheusExposition.format(value))\n"
        }

        mutating func counter(_ name: String, _ help: String, _ value: Int) {
            self.family(name, "counter", help)
            self.sample(name, [], value)
        }

        mutating func gauge(_ name: String, _ help: String, _ value: Int) {
            self.family(name, "gauge", help)
            self.sample(name, [], value)
        }

        mutating func histogram(_ name: String, _ labels: [(String, String)], _ histogram: LatencyHistogram) {
            var cumulative = 0
            for (index, bound) in LatencyHistogram.bounds.enumerated() {
                cumulative += histogram.counts[index]
                self.sample("\(name)_bucket", labels + [("le", PrometheusExposition.format(bound))], cumulative)
            }
            self.sample("\(name)_bucket", labels + [("le", "+Inf")], histogram.count)
            self.sample("\(name)_sum", labels, histogram.sum)
            self.sample("\(name)_count", labels, histogram.count)
        }
    }
}
