import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive connections to upstreams, one pool per event loop.
///
/// A downstream connection only ever leases from the pool of its own loop, so a request and its
/// upstream connection share one thread: no locks, no hops. Touched only on `eventLoop`.
final class UpstreamConnectionPool {
    let eventLoop: any EventLoop
    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// Idle connections kept per upstream; more are closed on release.
    private let maximumIdlePerUpstream: Int
    /// Idle connections per upstream, most recently used last. A class, so taking one out does
    /// not copy the list out of the dictionary.
    private final class IdleList {
        var connections: [UpstreamHandler] = []
    }

    private var idle: [Upstream: IdleList] = [:]
    private var isClosed = false
    /// One sweeper per pool closes connections idle for `idleTimeout`; releasing a connection
    /// only stamps it, so the request path schedules nothing.
    private var sweeper: Scheduled<Void>?

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount, maximumIdlePerUpstream: Int = 256) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maximumIdlePerUpstream = maximumIdlePerUpstream
    }

    /// Hands out an idle connection to `upstream` (most recently used first), or opens one.
    /// `reused` tells the caller whether the connection served a request before.
    func lease(
        _ upstream: Upstream, allowReuse: Bool = true,
        _ completion: @escaping (Result<(connection: UpstreamHandler, reused: Bool), any Error>) -> Void
    ) {
        self.eventLoop.preconditionInEventLoop()
        if allowReuse, let list = self.idle[upstream] {
            while let connection = list.connections.popLast() {
                connection.isIdle = false
                if connection.isActive {
                    completion(.success((connection, true)))
                    return
                }
            }
        }
        self.open(upstream, dedicated: false, completion)
    }

    /// Opens a connection that never joins the pool, for an `Upgrade` request: it either becomes
    /// a tunnel or closes after its one response. Its response decoder hands the bytes that follow
    /// a `101` head on to the tunnel instead of dropping them.
    func connectDedicated(
        _ upstream: Upstream, _ completion: @escaping (Result<(connection: UpstreamHandler, reused: Bool), any Error>) -> Void
    ) {
        self.eventLoop.preconditionInEventLoop()
        self.open(upstream, dedicated: true, completion)
    }

    private func open(
        _ upstream: Upstream, dedicated: Bool,
        _ completion: @escaping (Result<(connection: UpstreamHandler, reused: Bool), any Error>) -> Void
    ) {
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: dedicated ? .forwardBytes : .dropBytes)
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(upstream: upstream, pooled: !dedicated))
                }
            }
        bootstrap.connect(host: upstream.host, port: upstream.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    if !dedicated { handler.pool = self }
                    completion(.success((handler, false)))
                } catch {
                    channel.close(promise: nil)
                    completion(.failure(error))
                }
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Takes a connection back after a complete exchange; closes it if the pool is full or closed.
    func release(_ connection: UpstreamHandler) {
        self.eventLoop.preconditionInEventLoop()
        let list: IdleList
        if let existing = self.idle[connection.upstream] {
            list = existing
        } else {
            list = IdleList()
            self.idle[connection.upstream] = list
        }
        guard connection.pooled, !self.isClosed, connection.isActive, list.connections.count < self.maximumIdlePerUpstream
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

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        self.idle[connection.upstream]?.connections.removeAll { $0 === connection }
    }

    /// Closes every idle connection and refuses to keep any more (shutdown).
    func closeAll() {
        self.eventLoop.preconditionInEventLoop()
        self.isClosed = true
        self.sweeper?.cancel()
        self.sweeper = nil
        let all = self.idle.values.flatMap { $0.connections }
        self.idle = [:]
        for connection in all { connection.close() }
    }
}

@available(*, unavailable)
extension UpstreamConnectionPool: Sendable {}
