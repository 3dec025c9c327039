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
    private var idle: [Upstream: [UpstreamHandler]] = [:]
    private var isClosed = false

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount, maximumIdlePerUpstream: Int = 256) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maximumIdlePerUpstream = maximumIdlePerUpstream
    }

    /// The number of idle connections, for tests and metrics.
    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.count } }

    /// Hands out an idle connection to `upstream` (most recently used first), or opens one.
    /// `reused` tells the caller whether the connection served a request before.
    func lease(
        _ upstream: Upstream, allowReuse: Bool = true,
        _ completion: @escaping (Result<(connection: UpstreamHandler, reused: Bool), any Error>) -> Void
    ) {
        self.eventLoop.preconditionInEventLoop()
        if allowReuse {
            while let connection = self.idle[upstream]?.popLast() {
                connection.cancelIdleTimer()
                if connection.isActive {
                    completion(.success((connection, true)))
                    return
                }
            }
        }
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(upstream: upstream))
                }
            }
        bootstrap.connect(host: upstream.host, port: upstream.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    handler.pool = self
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
        guard !self.isClosed, connection.isActive,
            self.idle[connection.upstream, default: []].count < self.maximumIdlePerUpstream
        else {
            connection.close()
            return
        }
        self.idle[connection.upstream, default: []].append(connection)
        connection.startIdleTimer(self.idleTimeout)
    }

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        guard var list = self.idle[connection.upstream] else { return }
        list.removeAll { $0 === connection }
        self.idle[connection.upstream] = list.isEmpty ? nil : list
    }

    /// Closes every idle connection and refuses to keep any more (shutdown).
    func closeAll() {
        self.eventLoop.preconditionInEventLoop()
        self.isClosed = true
        let all = self.idle.values.flatMap { $0 }
        self.idle = [:]
        for connection in all { connection.close() }
    }
}

@available(*, unavailable)
extension UpstreamConnectionPool: Sendable {}
