import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes access log lines from every event loop to standard output or a file on a thread of its
/// own, so a slow disk or a blocked pipe never stalls a request. Event loops append batches of
/// lines (`AccessLogBatcher`) to a shared buffer under a short lock and do not wake the writer
/// per batch (that would cost two context switches each): the writer wakes every
/// `flushInterval`, or as soon as `flushThreshold` bytes wait. When it falls more than
/// `maximumPendingBytes` behind, lines are dropped and counted instead of growing memory.
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
    /// Lines reach the file at most this late after they were appended (seconds); with the
    /// event loops' `AccessLogBatcher.batchDelay`, at most 100 ms after their request ended...
    public static let flushInterval = 0.05
    /// ...or once this many bytes wait.
    public static let flushThreshold = 64 << 10
    /// Guards `shared`; its value is 1 when the writer should run now. One lock per appended batch.
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

    /// Queues whole lines (`count` of them: what `dropped` counts when they do not fit). Never
    /// blocks beyond a short lock.
    public func append(_ lines: ByteBuffer, count: Int = 1) {
        self.signal.lock()
        let wake: Bool
        if !self.shared.state.closing, self.shared.state.pending.count + lines.readableBytes <= Self.maximumPendingBytes {
            lines.withUnsafeReadableBytes { self.shared.state.pending.append(contentsOf: $0) }
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
