import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

@Suite("Access log batching per event loop, and the sink's limits")
struct AccessLogBatchingTests {
    func record(_ index: Int) -> AccessLogRecord {
        AccessLogRecord(
            time: 1_795_321_812.345_6, requestID: .given("id-\(index)"), method: "GET", path: "/orders/\(index)", route: "/",
            status: 200, decision: .allowed, reason: nil, subject: "alice", upstream: "http://127.0.0.1:9000",
            client: "192.0.2.1", durationSeconds: 0.001, upstreamSeconds: 0.000_9, requestBytes: 0, responseBytes: 512)
    }

    /// Batches as the batcher hands them over: the lines' text and the count it gave.
    final class Batches {
        var all: [(text: String, count: Int)] = []
        var lines: [Substring] { self.all.flatMap { $0.text.split(separator: "\n") } }
    }

    func batcher(on loop: EmbeddedEventLoop) -> (AccessLogBatcher, Batches) {
        let batches = Batches()
        let batcher = AccessLogBatcher(eventLoop: loop) { lines, count in
            batches.all.append((String(buffer: lines), count))
        }
        return (batcher, batches)
    }

    @Test("A quiet loop's lines are handed over in one batch, in order, within the batch delay")
    func withinDelay() {
        let loop = EmbeddedEventLoop()
        let (batcher, batches) = self.batcher(on: loop)
        loop.advanceTime(by: .seconds(1))  // nothing logged: nothing to hand over
        #expect(batches.all.isEmpty)
        for index in 0..<3 { batcher.log(self.record(index)) }
        loop.advanceTime(by: AccessLogBatcher.batchDelay - .milliseconds(1))
        #expect(batches.all.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(batches.all.count == 1)
        #expect(batches.all.first?.count == 3)
        #expect(batches.lines == (0..<3).map { Substring(AccessLogFormatter.line(self.record($0)).dropLast()) })
        // The next line starts a new delay; an idle stretch hands over nothing more.
        loop.advanceTime(by: .seconds(5))
        batcher.log(self.record(3))
        loop.advanceTime(by: AccessLogBatcher.batchDelay)
        loop.advanceTime(by: .seconds(5))
        #expect(batches.all.map(\.count) == [3, 1])
    }

    @Test("A busy loop hands a batch over as soon as it holds batchBytes; the delay still bounds the rest")
    func bySize() {
        let loop = EmbeddedEventLoop()
        let (batcher, batches) = self.batcher(on: loop)
        var logged = 0
        while batches.all.isEmpty {
            batcher.log(self.record(logged))
            logged += 1
            #expect(logged < 1000)
        }
        #expect(batches.all[0].count == logged)
        #expect(batches.all[0].text.utf8.count >= AccessLogBatcher.batchBytes)
        #expect(batches.all[0].text.utf8.count < AccessLogBatcher.batchBytes + 1024)
        batcher.log(self.record(logged))
        loop.advanceTime(by: AccessLogBatcher.batchDelay)
        #expect(batches.all.map(\.count) == [logged, 1])
        #expect(batches.lines.count == logged + 1)
        #expect(batches.lines.last == Substring(AccessLogFormatter.line(self.record(logged)).dropLast()))
    }

    @Test("flush hands over what waits at once, and nothing when nothing waits")
    func flush() {
        let loop = EmbeddedEventLoop()
        let (batcher, batches) = self.batcher(on: loop)
        batcher.flush()
        #expect(batches.all.isEmpty)
        batcher.log(self.record(0))
        batcher.log(self.record(1))
        batcher.flush()
        #expect(batches.all.map(\.count) == [2])
        loop.advanceTime(by: .seconds(1))  // the scheduled hand-over finds nothing
        #expect(batches.all.map(\.count) == [2])
    }

    @Test("Lines flushed before the sink closes reach the file; lines after it are dropped and counted")
    func flushOnClose() async throws {
        let files = try TemporaryFiles(prefix: "authgate-batch")
        defer { files.remove() }
        let path = files.path("access.log")
        let sink = AccessLogSink(path: path)
        let loop = EmbeddedEventLoop()
        let batcher = AccessLogBatcher(eventLoop: loop, sink: sink)
        for index in 0..<5 { batcher.log(self.record(index)) }
        batcher.flush()  // as GatewayServer.shutdown does before closing the sink
        await sink.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == (0..<5).map { AccessLogFormatter.line(self.record($0)) }.joined())
        var late = ByteBuffer()
        late.writeString(AccessLogFormatter.line(self.record(5)))
        sink.append(late, count: 1)
        #expect(sink.dropped == 1)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }

    @Test("A batch that would put the writer more than maximumPendingBytes behind is dropped, counted by its lines")
    func oversizedBatch() async throws {
        let sink = AccessLogSink(path: "/dev/null")
        var huge = ByteBuffer()
        huge.writeRepeatingByte(UInt8(ascii: "x"), count: AccessLogSink.maximumPendingBytes + 1)
        sink.append(huge, count: 7)
        #expect(sink.dropped == 7)
        var line = ByteBuffer()
        line.writeString("{}\n")
        sink.append(line, count: 1)
        await sink.close()
        #expect(sink.dropped == 7)
    }

    @Test("A writer stuck on its destination never blocks appends: past 8 MiB, batches are dropped and counted; the rest arrives")
    func stuckWriter() async throws {
        let files = try TemporaryFiles(prefix: "authgate-fifo")
        defer { files.remove() }
        let fifo = files.path("access.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        // Opening a FIFO for writing blocks until a reader opens it: the writer thread is stuck.
        let sink = AccessLogSink(path: fifo)
        let loop = EmbeddedEventLoop()
        let batcher = AccessLogBatcher(eventLoop: loop, sink: sink)
        var logged = 0
        let started = ContinuousClock.now
        while sink.dropped == 0 && logged < 200_000 {
            batcher.log(self.record(logged))
            logged += 1
        }
        // Appending never waited for the writer (had it, this loop would not have ended).
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(sink.dropped > 0)
        let dropped = sink.dropped
        batcher.flush()
        #expect(sink.dropped >= dropped)

        // Drain the FIFO on a thread of its own while the sink closes.
        let reader = FIFOReader(path: fifo)
        await sink.close()
        let received = await reader.result()
        let lines = received.split(separator: UInt8(ascii: "\n"))
        #expect(lines.count + sink.dropped == logged)
        #expect(received.count >= AccessLogSink.maximumPendingBytes - AccessLogBatcher.batchBytes - 1024)
    }
}

/// Reads a FIFO to its end on a thread of its own (opening it unblocks the writer's open).
final class FIFOReader: @unchecked Sendable {
    private var bytes: [UInt8] = []
    private let done = DispatchSemaphore(value: 0)

    init(path: String) {
        Thread.detachNewThread { [self] in
            let descriptor = open(path, O_RDONLY)
            if descriptor >= 0 {
                var chunk = [UInt8](repeating: 0, count: 64 << 10)
                while true {
                    let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                    if count <= 0 { break }
                    self.bytes += chunk[..<count]
                }
                close(descriptor)
            }
            self.done.signal()
        }
    }

    func result() async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [self] in
                self.done.wait()
                continuation.resume(returning: self.bytes)
            }
        }
    }
}
