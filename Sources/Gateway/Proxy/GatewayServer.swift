import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix

/// The gateway's listener: accepts client connections, builds their pipelines, and drains them
/// on shutdown.
public final class GatewayServer: Sendable {
    private let config: GatewayConfig
    private let group: any EventLoopGroup
    private let logger: Logger
    private let quiesce: ServerQuiescingHelper
    private let pools = PoolRegistry()
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    /// Every provider's keys; remote sets refresh in the background.
    public let keys: KeyRegistry

    /// - Throws: when a remote key source's CA file cannot be loaded.
    public init(config: GatewayConfig, group: any EventLoopGroup, logger: Logger) throws {
        self.config = config
        self.group = group
        self.logger = logger
        self.quiesce = ServerQuiescingHelper(group: group)
        let remotes = config.providers.compactMap(\.remote)
        var fetcher: HTTPFetcher?
        if !remotes.isEmpty {
            // One CA file per gateway: the first configured (validation requires them to agree).
            fetcher = try HTTPFetcher(group: group, caFile: remotes.compactMap(\.caFile).first)
        }
        self.keys = KeyRegistry(providers: config.providers, fetcher: fetcher, logger: logger)
    }

    /// Loads remote key sets (bounded by their timeouts), then binds the listener. Returns the
    /// bound address (useful with port 0).
    public func start(listen: ListenAddress? = nil) async throws -> SocketAddress {
        let address = listen ?? self.config.listen
        await self.keys.start()
        let settings = DownstreamSettings(
            planner: RequestPlanner(config: self.config, keys: self.keys),
            logger: self.logger,
            upstreamTimeout: .nanoseconds(Int64(self.config.timeouts.upstreamSeconds * 1e9)),
            clientIdleTimeout: .nanoseconds(Int64(self.config.timeouts.clientIdleSeconds * 1e9)),
            maxBodyBytes: self.config.limits.maxBodyBytes,
            tunnelIdleTimeout: .nanoseconds(Int64(self.config.timeouts.tunnelIdleSeconds * 1e9)))
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = self.config.limits.maxHeaderBytes
        limits.maxHeaderListSize = self.config.limits.maxHeaderBytes
        let decoderLimits = limits
        let pools = self.pools
        let connectTimeout = TimeAmount.nanoseconds(Int64(self.config.timeouts.connectSeconds * 1e9))
        let upstreamIdle = TimeAmount.nanoseconds(Int64(self.config.timeouts.upstreamIdleSeconds * 1e9))
        let quiesce = self.quiesce

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
                    let (pool, cache) = pools.resources(
                        for: channel.eventLoop, connectTimeout: connectTimeout, idleTimeout: upstreamIdle)
                    let sync = channel.pipeline.syncOperations
                    // An upgrade configuration without upgraders: NIO's own upgrade handler only
                    // passes the first request on and leaves, but the request decoder is then set up
                    // to hand the bytes after an upgrade request to whatever follows it when removed
                    // (`.forwardBytes`), which a tunnel needs (`TunnelSplice`).
                    try sync.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withServerUpgrade: (upgraders: [], completionHandler: { _ in }),
                        withErrorHandling: false, withOutboundHeaderValidation: true, withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits)
                    try sync.addHandler(DownstreamHandler(settings: settings, pool: pool, tokenCache: cache))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        self.serverChannel.withLockedValue { $0 = channel }
        guard let bound = channel.localAddress else { throw ChannelError.unknownLocalAddress }
        self.logger.info(
            "gateway listening",
            metadata: [
                "address": "\(bound.hostAndPort)", "routes": "\(self.config.routes.count)",
                "providers": "\(self.config.providers.count)",
            ])
        return bound
    }

    /// The verified-token caches' counters, summed over event loops.
    public func tokenCacheStats() async -> TokenCache.Stats {
        await self.pools.cacheStats()
    }

    /// Stops accepting, lets in-flight requests finish (idle connections and tunnels close at
    /// once), then closes pooled upstream connections. Gives up waiting after `drainTimeout`.
    public func shutdown(drainTimeout: TimeAmount = .seconds(30)) async {
        guard self.serverChannel.withLockedValue({ $0 }) != nil else { return }
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
        self.keys.stop()
        await self.pools.closeAll()
    }
}

/// What each event loop owns: its upstream pool and its verified-token cache, created on first
/// use on that loop and touched only there.
final class PoolRegistry: Sendable {
    private let pools = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<(UpstreamConnectionPool, TokenCache)>]>([:])

    /// Must be called on `eventLoop` (once per connection, not per request).
    func resources(
        for eventLoop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount
    ) -> (UpstreamConnectionPool, TokenCache) {
        let key = ObjectIdentifier(eventLoop)
        return self.pools.withLockedValue { pools in
            if let existing = pools[key] { return existing.value }
            let pool = UpstreamConnectionPool(eventLoop: eventLoop, connectTimeout: connectTimeout, idleTimeout: idleTimeout)
            let resources = (pool, TokenCache())
            pools[key] = NIOLoopBound(resources, eventLoop: eventLoop)
            return resources
        }
    }

    func closeAll() async {
        let all = self.pools.withLockedValue { Array($0.values) }
        for bound in all {
            try? await bound.eventLoop.submit { bound.value.0.closeAll() }.get()
        }
    }

    /// Token cache statistics summed over every loop.
    func cacheStats() async -> TokenCache.Stats {
        let all = self.pools.withLockedValue { Array($0.values) }
        var total = TokenCache.Stats()
        for bound in all {
            if let stats = try? await bound.eventLoop.submit({ bound.value.1.stats }).get() {
                total.hits += stats.hits
                total.misses += stats.misses
                total.entries += stats.entries
                total.bytes += stats.bytes
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
