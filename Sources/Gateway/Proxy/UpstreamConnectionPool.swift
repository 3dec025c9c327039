import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keep-alive connections to upstreams, one pool per event loop.
///
/// A downstream connection only ever leases from the pool of its own loop, so a request and its
/// upstream connection share one thread: no locks, no hops. Touched only on `eventLoop`.
///
/// Connections are pooled by `Upstream.Endpoint` (scheme, host, port, trusted CAs), so routes
/// that differ only in base path share connections while http and https never do.
final class UpstreamConnectionPool {
    /// Counters for `/metrics`.
    struct Stats {
        /// Connections opened.
        var connects = 0
        /// Connections open now, busy or idle.
        var open = 0
        /// Connections idle in the pool now.
        var idle = 0
        /// Leases served by an idle connection.
        var reuses = 0
    }

    let eventLoop: any EventLoop
    private let idleTimeout: TimeAmount
    private var counters = Stats()
    /// Client TLS contexts for https upstreams.
    private let tls: UpstreamTLSContexts?
    /// Idle connections kept per upstream; more are closed on release.
    private let maximumIdlePerUpstream: Int
    /// Idle connections per upstream, most recently used last. A class, so taking one out does
    /// not copy the list out of the dictionary. A list is never replaced while the pool is open
    /// (`closeAll` drops them all, and nothing is released after it), so a connection keeps the
    /// one it was first released to (`UpstreamHandler.idleList`): without it, `release` costs
    /// ~100 instructions more (the endpoint compared, or hashed, again).
    final class IdleList {
        var connections: [UpstreamHandler] = []
    }

    private var idle: [Upstream.Endpoint: IdleList] = [:]
    /// The list last looked up: a gateway usually proxies to one upstream or a few, and
    /// comparing an endpoint is cheaper than hashing it twice per request.
    private var lastEndpoint: Upstream.Endpoint?
    private var lastList: IdleList?
    private var isClosed = false
    /// One sweeper per pool closes connections idle for `idleTimeout`; releasing a connection
    /// only stamps it, so the request path schedules nothing.
    private var sweeper: Scheduled<Void>?

    init(
        eventLoop: any EventLoop, idleTimeout: TimeAmount, tls: UpstreamTLSContexts? = nil, maximumIdlePerUpstream: Int = 256
    ) {
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        self.tls = tls
        self.maximumIdlePerUpstream = maximumIdlePerUpstream
    }

    var stats: Stats {
        var stats = self.counters
        stats.idle = self.idle.values.reduce(0) { $0 + $1.connections.count }
        return stats
    }

    /// An idle connection to `upstream` (most recently used first), or nil: then `connect`.
    func takeIdle(_ upstream: Upstream) -> UpstreamHandler? {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed else { return nil }
        let list = self.list(for: upstream.endpoint)
        while let connection = list.connections.popLast() {
            connection.isIdle = false
            if connection.isActive {
                self.counters.reuses += 1
                return connection
            }
        }
        return nil
    }

    private func list(for endpoint: Upstream.Endpoint) -> IdleList {
        if let list = self.lastList, self.lastEndpoint == endpoint { return list }
        let list: IdleList
        if let existing = self.idle[endpoint] {
            list = existing
        } else {
            list = IdleList()
            self.idle[endpoint] = list
        }
        self.lastEndpoint = endpoint
        self.lastList = list
        return list
    }

    /// Opens a new connection to `upstream`. A pooled one comes back to the pool by `release`; a
    /// `dedicated` one never joins it, for an `Upgrade` request: it either becomes a tunnel or
    /// closes after its one response, and its response decoder hands the bytes that follow a
    /// `101` head on to the tunnel instead of dropping them. A new https connection is handed out
    /// once its TLS handshake succeeded.
    /// - Parameter connectTimeout: the route's `connect_seconds` (TCP connect and TLS handshake
    ///   together).
    func connect(
        _ upstream: Upstream, dedicated: Bool, connectTimeout: TimeAmount,
        _ completion: @escaping (Result<UpstreamHandler, any Error>) -> Void
    ) {
        self.eventLoop.preconditionInEventLoop()
        let endpoint = upstream.endpoint
        let sslContext = endpoint.tls ? self.tls?.context(for: endpoint) : nil
        if endpoint.tls && sslContext == nil {
            completion(.failure(UpstreamTLSFailure(description: "no TLS context was prepared for \(upstream)")))
            return
        }
        let deadline = NIODeadline.now() + connectTimeout
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: ClientTLS.serverName(for: endpoint.host)))
                    }
                    // No request encoder: request heads are written as bytes (`ForwardHead`).
                    // No response decoder either: `UpstreamHandler` parses the responses.
                    try sync.addHandler(UpstreamHandler(endpoint: endpoint, pooled: !dedicated))
                }
            }
        bootstrap.connect(host: endpoint.host, port: endpoint.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.counters.connects += 1
                self.counters.open += 1
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.counters.open -= 1 }
                let handler: UpstreamHandler
                do {
                    handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                } catch {
                    channel.close(promise: nil)
                    completion(.failure(error))
                    return
                }
                if !dedicated { handler.pool = self }
                handler.whenReady(by: deadline, timeout: connectTimeout) { ready in
                    switch ready {
                    case .success:
                        completion(.success(handler))
                    case .failure(let error as ChannelError):
                        completion(.failure(error))
                    case .failure(let error):
                        handler.close()
                        completion(.failure(UpstreamTLSFailure(description: "TLS handshake failed: \(error)")))
                    }
                }
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Takes a connection back after a complete exchange; closes it if the pool is full or closed.
    func release(_ connection: UpstreamHandler) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.isClosed else {
            connection.close()
            return
        }
        let list: IdleList
        if let known = connection.idleList {
            list = known
        } else {
            list = self.list(for: connection.endpoint)
            connection.idleList = list
        }
        guard connection.pooled, connection.isActive, list.connections.count < self.maximumIdlePerUpstream
        else {
            connection.close()
            return
        }
        list.connections.append(connection)
        connection.becameIdle()
        if self.sweeper == nil { self.scheduleSweep(in: self.idleTimeout) }
    }

    private func scheduleSweep(in delay: TimeAmount) {
        self.sweeper = self.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.sweep()
        }
    }

    /// Closes connections idle for `idleTimeout`; comes back for the next one to expire.
    private func sweep() {
        self.sweeper = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        for list in self.idle.values {
            // Oldest first: the list is ordered by release time.
            while let oldest = list.connections.first, oldest.idleSince + self.idleTimeout <= now {
                list.connections.removeFirst()
                oldest.close()
            }
            if let oldest = list.connections.first {
                let expiry = oldest.idleSince + self.idleTimeout
                next = next.map { min($0, expiry) } ?? expiry
            }
        }
        if let next, !self.isClosed { self.scheduleSweep(in: next - now) }
    }

    /// Forgets a connection that closed while idle (it was released, so it knows its list).
    func remove(_ connection: UpstreamHandler) {
        connection.idleList?.connections.removeAll { $0 === connection }
    }

    /// Closes every idle connection and refuses to keep any more (shutdown).
    func closeAll() {
        self.eventLoop.preconditionInEventLoop()
        self.isClosed = true
        self.sweeper?.cancel()
        self.sweeper = nil
        let all = self.idle.values.flatMap { $0.connections }
        self.idle = [:]
        self.lastEndpoint = nil
        self.lastList = nil
        for connection in all { connection.close() }
    }
}

@available(*, unavailable)
extension UpstreamConnectionPool: Sendable {}

/// An https upstream that could not be used: its certificate chain or name did not verify, or
/// the handshake failed otherwise (→ 502).
struct UpstreamTLSFailure: Error, CustomStringConvertible {
    let description: String
}
