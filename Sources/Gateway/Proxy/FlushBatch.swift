import NIOCore

/// A connection whose written bytes `FlushBatch` can flush.
protocol BatchFlushable: AnyObject {
    /// Set by `FlushBatch` while the connection waits in it, so it waits there once.
    var flushQueued: Bool { get set }
    /// Flushes the connection's channel now (nothing if it is gone).
    func flushNow()
}

/// One event loop's deferred flushes. The keep-alive request path writes to its channels as
/// events arrive and flushes them together once the loop has handled every I/O event of the
/// current pass (`EventLoop.execute` runs after them), as haproxy does with its send queue.
///
/// Why: every send on loopback wakes the peer reading the other end when it sleeps, and that
/// wake-up (an inter-processor interrupt, a VM exit on a virtual machine) is charged to the
/// sender. A loop that handles 16 requests in a pass and sends their 32 writes back to back
/// wakes each peer about once; sending each as it is made wakes them up to 32 times.
///
/// A connection that is closed must be flushed first (`flushNow`), or what waits is lost:
/// `Channel.close` fails unflushed writes. Touched only on its event loop.
final class FlushBatch {
    private let eventLoop: any EventLoop
    private var waiting: [any BatchFlushable] = []
    /// The array being flushed, kept to reuse its memory.
    private var flushing: [any BatchFlushable] = []
    private var scheduled = false
    /// The task handed to `execute`, made once: a closure made per pass would be an allocation
    /// per pass.
    private let task: @Sendable () -> Void

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.waiting.reserveCapacity(64)
        self.flushing.reserveCapacity(64)
        let weak = Weak()
        let bound = NIOLoopBound(weak, eventLoop: eventLoop)
        self.task = { bound.value.batch?.flushAll() }
        weak.batch = self
    }

    /// Lets the task reach the batch without keeping it alive.
    private final class Weak {
        weak var batch: FlushBatch?
    }

    /// Flushes `connection` at the end of this pass of the event loop.
    func flushSoon(_ connection: any BatchFlushable) {
        guard !connection.flushQueued else { return }
        connection.flushQueued = true
        self.waiting.append(connection)
        if !self.scheduled {
            self.scheduled = true
            self.eventLoop.execute(self.task)
        }
    }

    private func flushAll() {
        self.scheduled = false
        // A flush can run handlers that queue more (a write error closing a connection): they
        // go to `waiting` and a new pass.
        swap(&self.waiting, &self.flushing)
        for connection in self.flushing {
            connection.flushQueued = false
            connection.flushNow()
        }
        self.flushing.removeAll(keepingCapacity: true)
    }
}

@available(*, unavailable)
extension FlushBatch: Sendable {}
