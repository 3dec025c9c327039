/// upstream-echo — a small HTTP/1.1 upstream server used by authgate's tests and demos.
///
/// Usage:
///
///     upstream-echo [--listen HOST:PORT]      (default 127.0.0.1:9000; port 0 = ephemeral)
///
/// On start it prints exactly one line to stdout, `listening on HOST:PORT`, with the
/// actually bound address and port (IPv6 hosts are bracketed), and flushes it. Argument
/// errors exit with status 2; SIGINT/SIGTERM exit with status 0.
///
/// Every request is answered with `200`, `content-type: application/json`, a
/// `content-length`-framed body (keep-alive and pipelining are supported):
///
///     {"method": "POST", "path": "/a/b", "query": "x=1&y=2" | null,
///      "headers": {"lower-cased-name": ["value", ...], ...},
///      "body": "<request body as UTF-8, invalid bytes replaced by U+FFFD>",
///      "body_bytes": <number of body bytes received>}
///
/// `path` excludes the query; `query` is everything after the first `?` (or `null` if the
/// target has no `?`). Header names are lower-cased, repeated headers keep all values in
/// order. Request bodies are buffered up to 16 MiB; a larger body is drained (not buffered)
/// and answered with `413` (JSON `{"error": ..., "body_bytes": N}`). A request carrying
/// `expect: 100-continue` gets an interim `100 Continue` first.
///
/// Special paths (any method; the request body is counted but never echoed for
/// `/__stream`, `/__sink` and `/__close`):
///
/// - `/__stream?bytes=N` — `200`, `content-type: application/octet-stream`,
///   `transfer-encoding: chunked`, N bytes of `x` written in 64 KiB chunks only while the
///   channel is writable (resumed from `channelWritabilityChanged`), so multi-GiB downloads
///   run in flat memory. Missing/invalid `bytes` → `400`.
/// - `/__delay?ms=N` — waits N milliseconds (a task scheduled on the event loop; nothing
///   blocks) and then answers with the normal echo JSON. Missing/invalid `ms` → `400`.
/// - `/__sink` — consumes the request body without buffering it (bytes are only counted)
///   and answers the echo JSON with `"body": ""` and `body_bytes` set; for multi-GiB uploads.
/// - `/__close` — once the request has been fully received, closes the connection without
///   sending any response.
/// - `/__status?code=N` — the normal echo JSON with status N (200–599).
/// - `/ws` (or any path ending in `/ws`) — a WebSocket echo (RFC 6455) when the request is a
///   WebSocket upgrade (on the first request of a connection): text, binary and continuation frames are sent back as received,
///   pings answered with pongs, a close with a close. Frames up to 1 MiB.
///
/// Responses to `HEAD` carry the same headers but no body. A request with
/// `connection: close` (or HTTP/1.0 without keep-alive) gets its response and then the
/// connection is closed.

import ArgumentParser
import Gateway
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `text` to a file descriptor unbuffered (avoids the non-Sendable `stdout`/`stderr` globals).
func writeFully(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { raw in
            write(fd, raw.baseAddress! + offset, raw.count - offset)
        }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Runs async work from synchronous `main` code by waiting on a semaphore-free future.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: T.self)
    promise.completeWithTask(body)
    return try promise.futureResult.wait()
}

/// libc `exit` (inside `ParsableCommand` types, `exit` names ArgumentParser's static member).
func terminate(_ status: Int32) -> Never {
    exit(status)
}

struct UpstreamEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upstream-echo",
        abstract: "HTTP/1.1 echo upstream for authgate tests and demos.",
        discussion: """
            Answers every request with a JSON description of it. Special paths: \
            /__stream?bytes=N, /__delay?ms=N, /__sink, /__close, /__status?code=N;             WebSocket echo on /ws.
            """
    )

    @Option(name: .long, help: "Address to listen on, HOST:PORT (port 0 picks an ephemeral port).")
    var listen: String = "127.0.0.1:9000"

    func validate() throws {
        guard ListenAddress.parse(self.listen) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a port in 0-65535 (got '\(self.listen)')")
        }
    }

    func run() throws {
        guard let address = ListenAddress.parse(self.listen) else { throw ValidationError("bad --listen") }

        // Exit 0 on SIGINT/SIGTERM. The default dispositions are ignored so that only the
        // dispatch sources see the signals.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let signalSources = ([SIGINT, SIGTERM] as [Int32]).map { signalNumber in
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                terminate(0)
            }
            source.resume()
            return source
        }

        let serverChannel = try runBlocking {
            try await EchoServer.bind(host: address.host, port: address.port, group: MultiThreadedEventLoopGroup.singleton)
        }

        let boundHost: String
        let boundPort: Int
        if let local = serverChannel.localAddress, let ip = local.ipAddress, let port = local.port {
            if case .v6 = local {
                boundHost = "[\(ip)]"
            } else {
                boundHost = ip
            }
            boundPort = port
        } else {
            boundHost = address.host
            boundPort = address.port
        }
        writeFully(STDOUT_FILENO, "listening on \(boundHost):\(boundPort)\n")

        try withExtendedLifetime(signalSources) {
            try serverChannel.closeFuture.wait()
        }
    }
}

// Custom entry point: argument errors exit with status 2 (ArgumentParser would use 64).
let command: UpstreamEcho
do {
    command = try UpstreamEcho.parse()
} catch {
    let message = UpstreamEcho.fullMessage(for: error)
    if UpstreamEcho.exitCode(for: error) == .success {
        if !message.isEmpty { writeFully(STDOUT_FILENO, message + "\n") }
        exit(0)
    }
    writeFully(STDERR_FILENO, message + "\n")
    exit(2)
}

do {
    try command.run()
} catch {
    writeFully(STDERR_FILENO, "upstream-echo: \(error)\n")
    exit(1)
}
exit(0)
