import ArgumentParser
import Dispatch
import Gateway
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Options shared by commands that run a gateway.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Event loop threads (default: one per core the process may run on).")
    var threads: Int?

    @Option(name: .long, help: "Seconds to let in-flight requests finish on SIGTERM/SIGINT.")
    var drainSeconds: Double = 30

    func validate() throws {
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("--log-level \(self.logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let threads = self.threads, !(1...256).contains(threads) {
            throw ValidationError("--threads must be between 1 and 256")
        }
        guard self.drainSeconds >= 0 else { throw ValidationError("--drain-seconds must not be negative") }
    }

    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "authgate")
    }
}

/// `authgate serve`: runs the gateway until SIGINT/SIGTERM, then drains and exits 0. SIGHUP
/// reloads the configuration file.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @Option(name: .long, help: "The configuration file.")
    var config = "gateway.json"

    @Option(name: .long, help: "Listen on HOST:PORT instead of the configuration's `listen`.")
    var listen: String?

    @Option(name: .long, help: "Serve /healthz, /readyz and /metrics on HOST:PORT instead of `admin_listen`.")
    var adminListen: String?

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if let listen = self.listen, ListenAddress.parse(listen) == nil {
            throw ValidationError("--listen \(listen) is not HOST:PORT")
        }
        if let admin = self.adminListen, ListenAddress.parse(admin) == nil {
            throw ValidationError("--admin-listen \(admin) is not HOST:PORT")
        }
    }

    func run() async throws {
        let logger = self.runtime.makeLogger()
        let config = try ConfigLoader.load(path: self.config)
        for skipped in config.skippedKeys {
            logger.warning("skipped unusable key", metadata: ["key": "\(skipped)"])
        }
        let path = self.config
        try await runGateway(
            config: config, listen: self.listen.flatMap(ListenAddress.parse),
            adminListen: self.adminListen.flatMap(ListenAddress.parse), runtime: self.runtime, logger: logger,
            reload: { try ConfigLoader.load(path: path) }
        ) { _ in }
    }
}

/// Starts a gateway, calls `started` with its bound address, waits for SIGINT/SIGTERM, drains.
/// On SIGHUP, `reload` (when given) loads the configuration again; a configuration that fails
/// validation is logged and the running one kept.
func runGateway(
    config: GatewayConfig, listen: ListenAddress?, adminListen: ListenAddress? = nil, runtime: RuntimeOptions,
    logger: Logger, reload: (@Sendable () throws -> GatewayConfig)? = nil,
    started: (SocketAddress) async throws -> Void
) async throws {
    let signals = SignalWaiter()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: runtime.threads ?? usableCores())
    // Optional so it can be released before the group shuts down: the quiescing helper inside
    // touches its event loop when deallocated.
    var server: GatewayServer? = try GatewayServer(config: config, group: group, logger: logger)
    let address: SocketAddress
    do {
        address = try await server!.start(listen: listen, adminListen: adminListen)
    } catch {
        server = nil
        try? await group.shutdownGracefully()
        if let admin = error as? AdminListenError { throw CLIFailure("cannot listen on \(admin)") }
        throw CLIFailure("cannot listen on \(listen ?? config.listen): \(error)")
    }
    try await started(address)
    var signal = await signals.next()
    while signal == SIGHUP {
        if let reload, let server {
            await reloadGateway(server, load: reload, logger: logger)
        } else {
            logger.notice("SIGHUP ignored: nothing to reload")
        }
        signal = await signals.next()
    }
    logger.info("shutting down", metadata: ["signal": "\(signal == SIGINT ? "SIGINT" : "SIGTERM")"])
    await server?.shutdown(drainTimeout: .nanoseconds(Int64(runtime.drainSeconds * 1e9)))
    server = nil
    try? await group.shutdownGracefully()
    logger.info("stopped")
}

/// Loads and applies a configuration; logs every problem of one that does not validate.
func reloadGateway(_ server: GatewayServer, load: () throws -> GatewayConfig, logger: Logger) async {
    let config: GatewayConfig
    do {
        config = try load()
    } catch let error as ConfigError {
        server.recordFailedReload()
        for issue in error.issues {
            logger.error("reload rejected; keeping the running configuration", metadata: ["problem": "\(issue)"])
        }
        return
    } catch {
        server.recordFailedReload()
        logger.error("reload rejected; keeping the running configuration", metadata: ["problem": "\(error)"])
        return
    }
    do {
        let notes = try await server.reload(config)
        for note in notes { logger.warning("reload: setting needs a restart", metadata: ["note": "\(note)"]) }
        for skipped in config.skippedKeys { logger.warning("skipped unusable key", metadata: ["key": "\(skipped)"]) }
        logger.info(
            "configuration reloaded",
            metadata: ["routes": "\(config.routes.count)", "providers": "\(config.providers.count)"])
    } catch {
        logger.error("reload rejected; keeping the running configuration", metadata: ["problem": "\(error)"])
    }
}

/// The cores this process may run on: its CPU affinity (taskset, `docker --cpuset-cpus`), not
/// every core of the machine. More event loops than usable cores only adds context switches.
func usableCores() -> Int {
    #if os(Linux)
    // `Cpus_allowed:\t3` (a hex mask, comma-separated in 32-bit groups on large machines).
    if let status = try? FileReader.read("/proc/self/status") {
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Cpus_allowed:") {
            let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { total, character in
                total + (character.hexDigitValue.map { $0.nonzeroBitCount } ?? 0)
            }
            if count > 0 { return min(count, System.coreCount) }
        }
    }
    #endif
    return System.coreCount
}

/// Delivers SIGINT, SIGTERM and SIGHUP as async events instead of killing the process.
final class SignalWaiter {
    private let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        self.sources = [SIGINT, SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    func next() async -> Int32 {
        for await number in self.stream { return number }
        return SIGTERM
    }
}
