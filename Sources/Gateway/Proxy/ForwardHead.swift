import NIOCore
import NIOHTTP1

/// A request head as it goes to the upstream: already serialized, so the request path never
/// builds a header list for it, and no encoder re-reads or re-validates it.
public struct ForwardHead: Sendable {
    public var method: HTTPMethod
    /// `METHOD target HTTP/1.1`, the header lines and the blank line that ends the head.
    public var bytes: ByteBuffer
    /// The body follows in chunked coding (the client sent it chunked; it is forwarded chunk by
    /// chunk as it arrives). Otherwise it is sent as is, delimited by `Content-Length`.
    public var chunked: Bool

    public init(method: HTTPMethod, bytes: ByteBuffer, chunked: Bool) {
        self.method = method
        self.bytes = bytes
        self.chunked = chunked
    }

    // Decoding the bytes back, for tests, `explain` and debugging; never on the request path.

    /// The request line's target.
    public var uri: String { self.decoded.uri }
    public var version: HTTPVersion { self.decoded.version }
    public var headers: HTTPHeaders { self.decoded.headers }
    /// The head as text (CRLFs included).
    public var text: String { String(buffer: self.bytes) }

    private var decoded: (uri: String, version: HTTPVersion, headers: HTTPHeaders) {
        var lines = self.text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        let requestLine = lines.popFirst()?.split(separator: " ") ?? []
        var headers = HTTPHeaders()
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
        let version: HTTPVersion = requestLine.count > 2 && requestLine[2] == "HTTP/1.0" ? .http1_0 : .http1_1
        return (requestLine.count > 1 ? String(requestLine[1]) : "", version, headers)
    }
}

/// Where request headers are written: a typed list (`HTTPHeaders`) or a serialized head
/// (`SerializedFields`).
protocol HeaderSink {
    /// A header the gateway adds.
    mutating func add(name: String, value: String)
    /// The request id header the gateway adds (a generated id is written without a `String`).
    mutating func add(name: String, requestID: RequestID)
    /// A received field line kept as it is: `line` is the whole line with its CRLF, valid until
    /// `endOfFields`.
    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer)
    /// The pass over the received lines ends: what the sink holds of them is written now, while
    /// their bytes are still in scope.
    mutating func endOfFields()
}

extension HTTPHeaders: HeaderSink {
    mutating func add(name: String, requestID: RequestID) {
        self.add(name: name, value: requestID.text)
    }

    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer) {
        self.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    mutating func endOfFields() {}
}

/// Header lines written straight into a head's bytes, the kept ones in runs (`FieldLineRun`):
/// a line the gateway adds writes the run before it first, so the head keeps its order.
struct SerializedFields: HeaderSink {
    private var writer: HeadWriter
    private var run = FieldLineRun()

    init(into writer: HeadWriter) {
        self.writer = writer
    }

    mutating func add(name: String, value: String) {
        self.run.flush(into: &self.writer)
        self.writer.writeLine(name, value)
    }

    mutating func add(name: String, requestID: RequestID) {
        self.run.flush(into: &self.writer)
        self.writer.writeLine(name, requestID)
    }

    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer) {
        self.run.keep(line, into: &self.writer)
    }

    mutating func endOfFields() {
        self.run.flush(into: &self.writer)
    }

    /// The writer, to go on with the rest of the head.
    func finish() -> HeadWriter {
        self.writer
    }
}

/// Received field lines kept as they came, copied in as few copies as there are runs of them: a
/// line that starts where the previous kept one ended extends the run, which is written when
/// something else is written or the pass ends. Most lines of a head are kept, so a head of ten
/// kept lines costs one copy where it cost ten.
///
/// The run points into the received header block: it is only valid inside that block's
/// `withUnsafeReadableBytes`, and must be flushed before it returns.
struct FieldLineRun {
    private var start: UnsafeRawPointer?
    private var count = 0

    init() {}

    /// Adds `line` to the run, or writes the run and starts a new one when `line` does not
    /// follow it.
    mutating func keep(_ line: UnsafeRawBufferPointer, into writer: inout HeadWriter) {
        guard let base = line.baseAddress else { return }
        if let start = self.start, start + self.count == base {
            self.count += line.count
            return
        }
        self.flush(into: &writer)
        self.start = base
        self.count = line.count
    }

    /// Writes the run, if any, and empties it.
    mutating func flush(into writer: inout HeadWriter) {
        guard let start = self.start else { return }
        writer.write(UnsafeRawBufferPointer(start: start, count: self.count))
        self.start = nil
        self.count = 0
    }
}

extension ByteBuffer {
    /// `name: value\r\n`, in one write (`HeadWriter.writeLine`).
    mutating func writeHeaderLine(_ name: String, _ value: String) {
        self.writeHead(estimate: name.utf8.count + value.utf8.count + 4) { $0.writeLine(name, value) }
    }
}
