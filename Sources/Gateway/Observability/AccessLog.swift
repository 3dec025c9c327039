import NIOConcurrencyHelpers
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

/// One request as the access log records it. Never holds a token, a cookie or a query string
/// (queries carry secrets often enough: `?access_token=`, signed URLs).
public struct AccessLogRecord: Sendable {
    /// Unix time the request head arrived.
    public var time: Double
    public var requestID: String?
    public var method: String
    /// The normalised path, or the raw path (capped) when the target was refused.
    public var path: String
    /// The route's `path_prefix`; nil when refused before routing.
    public var route: String?
    public var status: Int
    public var decision: Decision
    /// Why the gateway answered itself (`expired`, `no_route`, `upstream_timeout`, ...).
    public var reason: String?
    public var subject: String?
    public var upstream: String?
    public var client: String?
    /// Head received to response complete.
    public var durationSeconds: Double
    /// Request head forwarded to response head received; nil when no upstream answered.
    public var upstreamSeconds: Double?
    public var requestBytes: Int
    public var responseBytes: Int

    public init(
        time: Double, requestID: String?, method: String, path: String, route: String?, status: Int,
        decision: Decision, reason: String?, subject: String?, upstream: String?, client: String?,
        durationSeconds: Double, upstreamSeconds: Double?, requestBytes: Int, responseBytes: Int
    ) {
        self.time = time
        self.requestID = requestID
        self.method = method
        self.path = path
        self.route = route
        self.status = status
        self.decision = decision
        self.reason = reason
        self.subject = subject
        self.upstream = upstream
        self.client = client
        self.durationSeconds = durationSeconds
        self.upstreamSeconds = upstreamSeconds
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
    }

    /// The longest raw path logged for a refused target.
    public static let maximumRawPathLength = 256

    /// The path part of a raw request target, capped, for requests refused before normalisation.
    public static func rawPath(of uri: String) -> String {
        let path = uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(uri[..<$0]) } ?? uri
        guard path.utf8.count > Self.maximumRawPathLength else { return path }
        return String(decoding: path.utf8.prefix(Self.maximumRawPathLength), as: UTF8.self)
    }
}

/// Formats access log records as JSON lines. Pure, and without Foundation.
public enum AccessLogFormatter {
    /// Appends `record` as one JSON object and a newline.
    public static func write(_ record: AccessLogRecord, into buffer: inout ByteBuffer, clock: inout UTCSecondCache) {
        buffer.writeStaticString("{\"time\":\"")
        clock.write(record.time, into: &buffer)
        buffer.writeStaticString("\"")
        if let id = record.requestID { Self.field("request_id", id, into: &buffer) }
        Self.field("method", record.method, into: &buffer)
        Self.field("path", record.path, into: &buffer)
        if let route = record.route { Self.field("route", route, into: &buffer) }
        buffer.writeStaticString(",\"status\":")
        buffer.writeString(String(record.status))
        Self.field("decision", record.decision.rawValue, into: &buffer)
        if let reason = record.reason { Self.field("reason", reason, into: &buffer) }
        if let subject = record.subject { Self.field("subject", subject, into: &buffer) }
        if let upstream = record.upstream { Self.field("upstream", upstream, into: &buffer) }
        if let client = record.client { Self.field("client", client, into: &buffer) }
        buffer.writeStaticString(",\"duration_ms\":")
        Self.writeMilliseconds(record.durationSeconds, into: &buffer)
        if let upstream = record.upstreamSeconds {
            buffer.writeStaticString(",\"upstream_ms\":")
            Self.writeMilliseconds(upstream, into: &buffer)
        }
        buffer.writeStaticString(",\"request_bytes\":")
        buffer.writeString(String(record.requestBytes))
        buffer.writeStaticString(",\"response_bytes\":")
        buffer.writeString(String(record.responseBytes))
        buffer.writeStaticString("}\n")
    }

    /// The line for `record` as a string (tests, tools).
    public static func line(_ record: AccessLogRecord) -> String {
        var buffer = ByteBuffer()
        var clock = UTCSecondCache()
        Self.write(record, into: &buffer, clock: &clock)
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }

    private static func field(_ name: StaticString, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(",\"")
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":")
        Self.writeQuoted(value, into: &buffer)
    }

    /// A JSON string: quotes, backslashes and control characters escaped, UTF-8 otherwise kept
    /// (invalid UTF-8 was already repaired when the bytes became a `String`).
    static func writeQuoted(_ value: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0..<0x20, 0x7F:
                let digits: StaticString = "0123456789abcdef"
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(digits.utf8Start[Int(byte >> 4)])
                buffer.writeInteger(digits.utf8Start[Int(byte & 0xF)])
            default: buffer.writeInteger(byte)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Milliseconds with three decimals (microsecond resolution).
    static func writeMilliseconds(_ seconds: Double, into buffer: inout ByteBuffer) {
        let micros = Int((max(0, seconds) * 1_000_000).rounded())
        buffer.writeString(String(micros / 1000))
        buffer.writeInteger(UInt8(ascii: "."))
        let fraction = micros % 1000
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction / 100))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction % 10))
    }
}

/// Formats Unix times as `2026-11-22T04:30:12.345Z`, calling `gmtime_r` once per second.
public struct UTCSecondCache {
    private var second = Int.min
    private var prefix: [UInt8] = []

    public init() {}

    public mutating func write(_ time: Double, into buffer: inout ByteBuffer) {
        let whole = Int(time.rounded(.down))
        if whole != self.second {
            self.second = whole
            self.prefix = Self.format(whole)
        }
        buffer.writeBytes(self.prefix)
        let millis = min(999, max(0, Int(((time - Double(whole)) * 1000).rounded(.down))))
        buffer.writeInteger(UInt8(ascii: "."))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis / 100))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis / 10 % 10))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis % 10))
        buffer.writeInteger(UInt8(ascii: "Z"))
    }

    /// `YYYY-MM-DDTHH:MM:SS` in UTC.
    static func format(_ seconds: Int) -> [UInt8] {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> [UInt8] { [UInt8(48 + value / 10), UInt8(48 + value % 10)] }
        let year = Int(parts.tm_year) + 1900
        var bytes = Array(String(year).utf8)
        bytes.append(UInt8(ascii: "-"))
        bytes += two(parts.tm_mon + 1)
        bytes.append(UInt8(ascii: "-"))
        bytes += two(parts.tm_mday)
        bytes.append(UInt8(ascii: "T"))
        bytes += two(parts.tm_hour)
        bytes.append(UInt8(ascii: ":"))
        bytes += two(parts.tm_min)
        bytes.append(UInt8(ascii: ":"))
        bytes += two(parts.tm_sec)
        return bytes
    }
}

/// Writes access log lines from every event loop to standard output or a file on a thread of its
/// own, so a slow disk or a blocked pipe never stalls a request. Event loops append to a shared
/// buffer under a short lock and do not wake the writer per line (that would cost two context
/// switches per request): the writer wakes every `flushInterval`, or as soon as
/// `flushThreshold` bytes wait. When it falls more than `maximumPendingBytes` behind, lines are
/// dropped and counted instead of growing memory.
public final class AccessLogSink: Sendable {
    private struct State {
        var pending: [UInt8] = []
        /// Where to write next: nil is standard output. A change makes the writer reopen.
        var path: String?
        var reopen = true
        var closing = false
        var dropped = 0
        var lastError: String?
        /// Mirrors the condition's value (1: the writer should run now), which cannot be read
        /// while holding the condition lock.
        var wakeRequested = false
    }

    public static let maximumPendingBytes = 8 << 20
    /// Lines reach the file at most this late (seconds)...
    public static let flushInterval = 0.1
    /// ...or once this many bytes wait.
    public static let flushThreshold = 64 << 10
    /// Guards `shared`; its value is 1 when the writer should run now. One lock per appended line.
    private let signal = ConditionLock<Int>(value: 0)
    /// Touched only while `signal` is held.
    private final class Shared: @unchecked Sendable {
        var state = State()
    }

    private let shared = Shared()
    private let thread: NIOThreadPool

    /// Starts the writer thread, writing to `path` (nil: standard output).
    public init(path: String?) {
        self.thread = NIOThreadPool(numberOfThreads: 1)
        self.shared.state.path = path
        self.thread.start()
        self.thread.submit { [self] _ in self.run() }
    }

    /// Lines dropped because the writer fell behind, and the last write error.
    public var dropped: Int { self.withState { $0.dropped } }
    public var lastError: String? { self.withState { $0.lastError } }

    /// Runs `body` with the state, holding `signal` without changing its value.
    private func withState<Result>(_ body: (inout State) -> Result) -> Result {
        self.signal.lock()
        defer { self.signal.unlock() }
        return body(&self.shared.state)
    }

    /// Queues whole lines. Never blocks beyond a short lock.
    public func append(_ lines: ByteBuffer, count: Int = 1) {
        self.signal.lock()
        let wake: Bool
        if !self.shared.state.closing, self.shared.state.pending.count + lines.readableBytes <= Self.maximumPendingBytes {
            self.shared.state.pending.append(contentsOf: lines.readableBytesView)
            if self.shared.state.pending.count >= Self.flushThreshold { self.shared.state.wakeRequested = true }
        } else {
            self.shared.state.dropped += count
        }
        wake = self.shared.state.wakeRequested
        // `unlock(withValue:)` wakes the writer (a futex call and a context switch); a plain
        // unlock does not.
        if wake { self.signal.unlock(withValue: 1) } else { self.signal.unlock() }
    }

    /// Switches to another destination, or reopens the same file (after log rotation).
    public func reopen(path: String?) {
        self.signal.lock()
        self.shared.state.path = path
        self.shared.state.reopen = true
        self.shared.state.wakeRequested = true
        self.signal.unlock(withValue: 1)
    }

    /// Writes what is queued, then stops the thread.
    public func close() async {
        self.signal.lock()
        self.shared.state.closing = true
        self.shared.state.wakeRequested = true
        self.signal.unlock(withValue: 1)
        try? await self.thread.shutdownGracefully()
    }

    private func run() {
        var descriptor: Int32 = STDOUT_FILENO
        var ownsDescriptor = false
        // Two buffers trade places, so neither side allocates once both have grown.
        var bytes: [UInt8] = []
        while true {
            if !self.signal.lock(whenValue: 1, timeoutSeconds: Self.flushInterval) {
                self.signal.lock()  // the interval passed: take what is there
            }
            bytes.removeAll(keepingCapacity: true)
            swap(&bytes, &self.shared.state.pending)
            self.shared.state.wakeRequested = false
            let reopenPath: String?? = self.shared.state.reopen ? .some(self.shared.state.path) : .none
            self.shared.state.reopen = false
            let closing = self.shared.state.closing
            self.signal.unlock(withValue: 0)
            if let reopenPath {
                if ownsDescriptor { _ = closeDescriptor(descriptor) }
                descriptor = STDOUT_FILENO
                ownsDescriptor = false
                if let path = reopenPath {
                    let opened = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
                    if opened >= 0 {
                        descriptor = opened
                        ownsDescriptor = true
                    } else {
                        let message = "cannot open \(path): errno \(errno); writing to standard output"
                        self.withState { $0.lastError = message }
                    }
                }
            }
            Self.writeAll(bytes, to: descriptor) { error in self.withState { $0.lastError = error } }
            if closing {
                if ownsDescriptor { _ = closeDescriptor(descriptor) }
                return
            }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, onError: (String) -> Void) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    onError("write failed: errno \(errno)")
                    return
                }
                offset += written
            }
        }
    }
}

/// `close(2)`, named apart from the many `close` methods in scope.
private func closeDescriptor(_ descriptor: Int32) -> Int32 {
    close(descriptor)
}
