import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Everything requests are decided with. Immutable; a reload replaces it whole, and each
/// connection picks up the new one at its next request.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let keys: KeyRegistry
    let settings: DownstreamSettings
    /// Increases with every reload.
    let epoch: Int
    /// Unix time the configuration was loaded.
    let loadedAt: Double

    init(config: GatewayConfig, keys: KeyRegistry, logger: Logger, epoch: Int) {
        self.config = config
        self.keys = keys
        self.epoch = epoch
        self.loadedAt = WallClock.now()
        self.settings = DownstreamSettings(
            planner: RequestPlanner(config: config, keys: keys),
            logger: logger,
            upstreamTimeout: .fromSeconds(config.timeouts.upstreamSeconds),
            connectTimeout: .fromSeconds(config.timeouts.connectSeconds),
            clientIdleTimeout: .fromSeconds(config.timeouts.clientIdleSeconds),
            maxBodyBytes: config.limits.maxBodyBytes, maxHeaderBytes: config.limits.maxHeaderBytes,
            accessLog: config.accessLog.enabled,
            requestIDHeader: config.requestID.enabled ? config.requestID.header : nil,
            tunnelIdleTimeout: .fromSeconds(config.timeouts.tunnelIdleSeconds))
    }
}

/// The runtime in use, readable from any event loop: one atomic load per request tells a
/// connection whether its copy is still current.
final class RuntimeBox: Sendable {
    private let current: NIOLockedValueBox<GatewayRuntime>
    private let currentEpoch: Synchronization.Atomic<Int>

    init(_ runtime: GatewayRuntime) {
        self.current = NIOLockedValueBox(runtime)
        self.currentEpoch = Synchronization.Atomic(runtime.epoch)
    }

    var epoch: Int { self.currentEpoch.load(ordering: .acquiring) }
    var runtime: GatewayRuntime { self.current.withLockedValue { $0 } }

    func replace(with runtime: GatewayRuntime) {
        self.current.withLockedValue { $0 = runtime }
        self.currentEpoch.store(runtime.epoch, ordering: .releasing)
    }
}

extension TimeAmount {
    static func fromSeconds(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}

/// The gateway's listener: accepts client connections, builds their pipelines, and drains them
/// on shutdown. Also runs the admin listener and applies reloads.
public final class GatewayServer: Sendable {
    private let runtimes: RuntimeBox
    private let group: any EventLoopGroup
    private let logger: Logger
    private let quiesce: ServerQuiescingHelper
    private let resources = LoopResourceRegistry()
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let adminChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let draining = Synchronization.Atomic<Bool>(false)
    private let reloads = NIOLockedValueBox((applied: 0, failed: 0))
    let accessLog: AccessLogSink

    /// Every provider's keys (of the configuration in use); remote sets refresh in the background.
    public var keys: KeyRegistry { self.runtimes.runtime.keys }

    /// The configuration in use.
    public var config: GatewayConfig { self.runtimes.runtime.config }
    /// The listener's TLS context, read for every new connection; nil serves plain HTTP.
    private let tlsContext: NIOLockedValueBox<NIOSSLContext?>
    /// Client contexts for https upstreams (a reload adding https routes calls `prepare`).
    let upstreamTLS: UpstreamTLSContexts

    /// - Throws: when the listener's TLS context cannot be built, or a CA file (key sets, https
    ///   upstreams) cannot be loaded.
    public init(config: GatewayConfig, group: any EventLoopGroup, logger: Logger) throws {
        self.group = group
        self.logger = logger
        self.quiesce = ServerQuiescingHelper(group: group)
        self.tlsContext = NIOLockedValueBox(try config.tls?.makeServerContext())
        self.upstreamTLS = try UpstreamTLSContexts(upstreams: config.routes.map(\.upstream))
        let keys = KeyRegistry(providers: config.providers, fetcher: try Self.fetcher(for: config, group: group), logger: logger)
        self.runtimes = RuntimeBox(GatewayRuntime(config: config, keys: keys, logger: logger, epoch: 0))
        self.accessLog = AccessLogSink(path: config.accessLog.path)
    }

    private static func fetcher(for config: GatewayConfig, group: any EventLoopGroup) throws -> HTTPFetcher? {
        let remotes = config.providers.compactMap(\.remote)
        guard !remotes.isEmpty else { return nil }
        // One CA file per gateway: the first configured (validation requires them to agree).
        return try HTTPFetcher(group: group, caFile: remotes.compactMap(\.caFile).first)
    }

    /// Swaps the listener's TLS context (a certificate reload): connections accepted from now on
    /// use `context`; established ones keep theirs. Build it with `ListenerTLS.makeServerContext()`.
    /// nil serves plain HTTP to new connections.
    public func replaceTLSContext(_ context: NIOSSLContext?) {
        self.tlsContext.withLockedValue { $0 = context }
    }

    /// Loads remote key sets (bounded by their timeouts), then binds the listener and the admin
    /// listener. Returns the proxy's bound address (useful with port 0).
    /// - Parameters:
    ///   - listen: overrides the configuration's `listen`.
    ///   - adminListen: overrides `admin_listen`.
    public func start(listen: ListenAddress? = nil, adminListen: ListenAddress? = nil) async throws -> SocketAddress {
        let runtime = self.runtimes.runtime
        let address = listen ?? runtime.config.listen
        await runtime.keys.start()
        let registry = self.resources
        let runtimes = self.runtimes
        let accessLog = self.accessLog
        let upstreamIdle = TimeAmount.fromSeconds(runtime.config.timeouts.upstreamIdleSeconds)
        let quiesce = self.quiesce
        let tlsContext = self.tlsContext
        let upstreamTLS = self.upstreamTLS

        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let resources = registry.resources(
                        for: channel.eventLoop, idleTimeout: upstreamIdle, tls: upstreamTLS, accessLog: accessLog)
                    let sync = channel.pipeline.syncOperations
                    // A client that never completes the handshake is closed by the downstream
                    // handler's idle timer, which starts when the connection does.
                    let tls = tlsContext.withLockedValue { $0 }
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    // One handler: it parses the requests (`ClientRequestParser`), pipelining included,
                    // and writes responses as bytes (`ResponseEncoding`).
                    try sync.addHandler(DownstreamHandler(runtimes: runtimes, resources: resources, overTLS: tls != nil))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        self.serverChannel.withLockedValue { $0 = channel }
        guard let bound = channel.localAddress else { throw ChannelError.unknownLocalAddress }
        self.logger.info(
            "gateway listening",
            metadata: [
                "address": "\(bound.hostAndPort)", "routes": "\(runtime.config.routes.count)",
                "tls": "\(self.tlsContext.withLockedValue { $0 } != nil)",
                "providers": "\(runtime.config.providers.count)",
            ])
        if let admin = adminListen ?? runtime.config.adminListen {
            do {
                let adminBound = try await AdminServer.bind(admin, group: self.group, server: self)
                self.logger.info("admin listening", metadata: ["address": "\(adminBound.localAddress?.hostAndPort ?? "?")"])
                self.adminChannel.withLockedValue { $0 = adminBound }
            } catch {
                try? await channel.close()
                throw AdminListenError(address: admin, underlying: "\(error)")
            }
        }
        return bound
    }

    /// The admin listener's bound address, when it runs.
    public var adminAddress: SocketAddress? { self.adminChannel.withLockedValue { $0?.localAddress } }

    /// The verified-token caches' counters, summed over event loops.
    public func tokenCacheStats() async -> TokenCache.Stats {
        await self.metricsSnapshot().tokenCache
    }

    /// Every loop's counters, summed.
    public func metricsSnapshot() async -> MetricsSnapshot {
        await self.resources.snapshot()
    }

    /// Process-wide values: key sets, reloads, readiness.
    public func processMetrics() -> ProcessMetrics {
        let runtime = self.runtimes.runtime
        var metrics = ProcessMetrics()
        metrics.keySets = runtime.keys.remoteStats()
        for provider in runtime.keys.verifier.providers { metrics.providerKeys[provider.name] = provider.keys.count }
        let reloads = self.reloads.withLockedValue { $0 }
        metrics.reloads = reloads.applied
        metrics.reloadFailures = reloads.failed
        metrics.configLoadedAt = runtime.loadedAt
        metrics.accessLogDropped = self.accessLog.dropped
        metrics.ready = self.readiness().isEmpty
        return metrics
    }

    /// Why the gateway is not ready to take traffic; empty when it is.
    public func readiness() -> [String] {
        var problems: [String] = []
        if self.draining.load(ordering: .relaxed) { problems.append("shutting down") }
        if !(self.serverChannel.withLockedValue { $0?.isActive } ?? false) { problems.append("listener not open") }
        for provider in self.runtimes.runtime.keys.verifier.providers where provider.keys.isEmpty {
            problems.append("provider \(JSONValue.quoted(provider.name)) has no usable keys")
        }
        return problems
    }

    /// Applies a new configuration to new requests (also on open connections) without closing
    /// any connection or disturbing requests in flight. Settings that need a new socket (`listen`,
    /// `admin_listen`) keep their old value until a restart; the returned notes say so.
    /// - Throws: `ConfigError` when a remote key source's CA file cannot be loaded; the running
    ///   configuration is kept.
    @discardableResult
    public func reload(_ config: GatewayConfig) async throws -> [String] {
        let old = self.runtimes.runtime
        var notes: [String] = []
        var config = config
        if config.listen != old.config.listen {
            notes.append("listen stays \(old.config.listen) until a restart")
            config.listen = old.config.listen
        }
        if config.adminListen != old.config.adminListen {
            notes.append("admin_listen stays \(old.config.adminListen.map { "\($0)" } ?? "off") until a restart")
            config.adminListen = old.config.adminListen
        }
        if (config.tls == nil) != (old.config.tls == nil) {
            notes.append(config.tls == nil ? "tls stays on until a restart" : "tls stays off until a restart")
            config.tls = old.config.tls
        }
        // Everything that can fail comes before anything changes.
        let fetcher: HTTPFetcher?
        let serverTLS: NIOSSLContext?
        do {
            fetcher = try Self.fetcher(for: config, group: self.group)
        } catch {
            self.reloads.withLockedValue { $0.failed += 1 }
            throw ConfigError(issues: [ConfigIssue(path: "providers", message: "\(error)")])
        }
        do {
            serverTLS = try config.tls?.makeServerContext()
            try self.upstreamTLS.prepare(config.routes.map(\.upstream))
        } catch {
            self.reloads.withLockedValue { $0.failed += 1 }
            throw ConfigError(issues: [ConfigIssue(path: "tls", message: "\(error)")])
        }
        let keys = KeyRegistry(providers: config.providers, fetcher: fetcher, logger: self.logger, reusing: old.keys)
        await keys.start()
        let runtime = GatewayRuntime(config: config, keys: keys, logger: self.logger, epoch: old.epoch + 1)
        self.runtimes.replace(with: runtime)
        if let serverTLS { self.replaceTLSContext(serverTLS) }
        old.keys.retire(handingOverTo: keys)
        if config.accessLog.path != old.config.accessLog.path || config.accessLog.path != nil {
            // Same file: reopen it, so a rotated log is followed.
            self.accessLog.reopen(path: config.accessLog.path)
        }
        self.reloads.withLockedValue { $0.applied += 1 }
        return notes
    }

    /// Counts a reload that failed validation (the caller logs the reasons).
    public func recordFailedReload() {
        self.reloads.withLockedValue { $0.failed += 1 }
    }

    /// Stops accepting, lets in-flight requests finish (idle connections and tunnels close at
    /// once), then closes pooled upstream connections. Gives up waiting after `drainTimeout`.
    public func shutdown(drainTimeout: TimeAmount = .seconds(30)) async {
        guard self.serverChannel.withLockedValue({ $0 }) != nil else { return }
        self.draining.store(true, ordering: .relaxed)
        let loop = self.group.next()
        let promise = loop.makePromise(of: Void.self)
        self.quiesce.initiateShutdown(promise: promise)
        let timeout = loop.scheduleTask(in: drainTimeout) {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
        do {
            try await promise.futureResult.get()
            self.logger.info("drained all connections")
        } catch {
            self.logger.warning("drain timed out; closing remaining connections")
        }
        timeout.cancel()
        if let admin = self.adminChannel.withLockedValue({ $0 }) { try? await admin.close() }
        self.runtimes.runtime.keys.stop()
        await self.resources.closeAll()
        await self.resources.flushAccessLogs()
        await self.accessLog.close()
    }
}

/// The admin listener could not bind (another gateway on the same host holds the port, say).
public struct AdminListenError: Error, CustomStringConvertible {
    public let address: ListenAddress
    public let underlying: String

    public var description: String {
        "admin_listen \(self.address): \(self.underlying) (choose another port, or \"admin_listen\": null to turn the admin listener off)"
    }
}

/// What one event loop owns: its upstream pool, verified-token cache, metrics, request id
/// generator and access log buffer. Created on first use on that loop and touched only there.
final class LoopResources {
    let pool: UpstreamConnectionPool
    let tokenCache = TokenCache()
    let metrics = LoopMetrics()
    let requestIDs = RequestIDGenerator()
    let accessLog: AccessLogBatcher
    let flushes: FlushBatch
    /// `http://host:port` per upstream, made once rather than per logged request.
    private var upstreamLabels: [Upstream: String] = [:]

    init(pool: UpstreamConnectionPool, accessLog: AccessLogBatcher, flushes: FlushBatch) {
        self.pool = pool
        self.accessLog = accessLog
        self.flushes = flushes
    }

    func label(for upstream: Upstream) -> String {
        if let label = self.upstreamLabels[upstream] { return label }
        let label = "\(upstream)"
        if self.upstreamLabels.count < 1024 { self.upstreamLabels[upstream] = label }
        return label
    }

    /// Formats `record` and queues it for the access log writer (in batches per loop).
    func log(_ record: AccessLogRecord) {
        self.accessLog.log(record)
    }

    func snapshot() -> MetricsSnapshot {
        var snapshot = self.metrics.snapshot
        snapshot.tokenCache = self.tokenCache.stats
        let pool = self.pool.stats
        snapshot.upstreamConnects = pool.connects
        snapshot.upstreamConnectionsOpen = pool.open
        snapshot.upstreamConnectionsIdle = pool.idle
        snapshot.upstreamConnectionsReused = pool.reuses
        return snapshot
    }
}

@available(*, unavailable)
extension LoopResources: Sendable {}

final class LoopResourceRegistry: Sendable {
    private let all = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopResources>]>([:])

    /// Must be called on `eventLoop` (once per connection, not per request).
    func resources(
        for eventLoop: any EventLoop, idleTimeout: TimeAmount, tls: UpstreamTLSContexts?, accessLog: AccessLogSink
    ) -> LoopResources {
        let key = ObjectIdentifier(eventLoop)
        return self.all.withLockedValue { all in
            if let existing = all[key] { return existing.value }
            let pool = UpstreamConnectionPool(eventLoop: eventLoop, idleTimeout: idleTimeout, tls: tls)
            let batcher = AccessLogBatcher(eventLoop: eventLoop, sink: accessLog)
            let resources = LoopResources(pool: pool, accessLog: batcher, flushes: FlushBatch(eventLoop: eventLoop))
            all[key] = NIOLoopBound(resources, eventLoop: eventLoop)
            return resources
        }
    }

    func closeAll() async {
        let all = self.all.withLockedValue { Array($0.values) }
        for bound in all {
            try? await bound.eventLoop.submit { bound.value.pool.closeAll() }.get()
        }
    }

    /// Hands every loop's waiting access log lines to the sink (before it closes).
    func flushAccessLogs() async {
        let all = self.all.withLockedValue { Array($0.values) }
        for bound in all {
            try? await bound.eventLoop.submit { bound.value.accessLog.flush() }.get()
        }
    }

    /// Every loop's counters, summed.
    func snapshot() async -> MetricsSnapshot {
        let all = self.all.withLockedValue { Array($0.values) }
        var total = MetricsSnapshot()
        for bound in all {
            if let snapshot = try? await bound.eventLoop.submit({ bound.value.snapshot() }).get() {
                total.merge(snapshot)
            }
        }
        return total
    }
}

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, for messages.
    public var hostAndPort: String {
        guard let ip = self.ipAddress, let port = self.port else { return "\(self)" }
        if case .v6 = self { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}
