import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

@Suite("Flushes batched per event loop pass")
struct FlushBatchTests {
    final class Connection: BatchFlushable {
        var flushQueued = false
        var flushes = 0
        var onFlush: (() -> Void)?

        func flushNow() {
            self.flushes += 1
            self.onFlush?()
        }
    }

    @Test("Nothing is flushed until the loop's pass ends; then each connection once, however often it asked")
    func oncePerPass() {
        let loop = EmbeddedEventLoop()
        let batch = FlushBatch(eventLoop: loop)
        let a = Connection()
        let b = Connection()
        batch.flushSoon(a)
        batch.flushSoon(b)
        batch.flushSoon(a)
        #expect(a.flushes == 0 && b.flushes == 0)
        loop.run()
        #expect(a.flushes == 1 && b.flushes == 1)
        #expect(!a.flushQueued && !b.flushQueued)
        loop.run()
        #expect(a.flushes == 1 && b.flushes == 1)  // nothing was queued again

        batch.flushSoon(a)
        loop.run()
        #expect(a.flushes == 2 && b.flushes == 1)
    }

    @Test("A connection queued while the batch flushes is flushed in a following pass, not lost")
    func queuedDuringFlush() {
        let loop = EmbeddedEventLoop()
        let batch = FlushBatch(eventLoop: loop)
        let a = Connection()
        let b = Connection()
        a.onFlush = { batch.flushSoon(b) }
        batch.flushSoon(a)
        loop.run()
        #expect(a.flushes == 1)
        #expect(b.flushes == 1)  // EmbeddedEventLoop.run() also runs tasks queued while running
        #expect(!b.flushQueued)
    }
}
