import NIOCore

/// One event loop's access log: formats each record into a buffer of the loop's own and hands
/// the lines to the sink in batches, so the sink's lock is taken once per batch rather than once
/// per request, and event loops do not contend for it.
///
/// A batch is handed over once it holds `batchBytes`, and at the latest `batchDelay` after its
/// first line, so a quiet loop does not hold its lines. A loop with nothing to log schedules
/// nothing. Touched only on its event loop.
final class AccessLogBatcher {
    /// Hand over once this many bytes wait...
    static let batchBytes = 16 << 10
    /// ...or this long after the first line (with the sink's own interval, lines reach the
    /// destination within `AccessLogSink.flushInterval` + `batchDelay`).
    static let batchDelay = TimeAmount.milliseconds(50)

    private let eventLoop: any EventLoop
    /// Receives each batch and its number of lines (`AccessLogSink.append(_:count:)`).
    private let handOver: (ByteBuffer, Int) -> Void
    private var clock = UTCSecondCache()
    private var lines: ByteBuffer
    private var count = 0
    private var handOverScheduled = false

    init(eventLoop: any EventLoop, handOver: @escaping (ByteBuffer, Int) -> Void) {
        self.eventLoop = eventLoop
        self.handOver = handOver
        self.lines = ByteBuffer()
        self.lines.reserveCapacity(Self.batchBytes + 1024)
    }

    convenience init(eventLoop: any EventLoop, sink: AccessLogSink) {
        self.init(eventLoop: eventLoop) { lines, count in sink.append(lines, count: count) }
    }

    /// Formats `record` and queues it.
    func log(_ record: AccessLogRecord) {
        AccessLogFormatter.write(record, into: &self.lines, clock: &self.clock)
        self.count += 1
        if self.lines.readableBytes >= Self.batchBytes {
            self.flush()
        } else if !self.handOverScheduled {
            self.handOverScheduled = true
            self.eventLoop.assumeIsolated().scheduleTask(in: Self.batchDelay) { [self] in
                self.handOverScheduled = false
                self.flush()
            }
        }
    }

    /// Hands what waits to the sink now (also before the sink closes).
    func flush() {
        guard self.count > 0 else { return }
        self.handOver(self.lines, self.count)
        self.lines.clear()
        self.count = 0
    }
}

@available(*, unavailable)
extension AccessLogBatcher: Sendable {}
