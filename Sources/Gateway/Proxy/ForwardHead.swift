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
    private var buffer: ByteBuffer
    private var run = FieldLineRun()

    init(into buffer: consuming ByteBuffer) {
        self.buffer = buffer
    }

    mutating func add(name: String, value: String) {
        self.run.flush(into: &self.buffer)
        self.buffer.writeHeaderLine(name, value)
    }

    mutating func add(name: String, requestID: RequestID) {
        self.run.flush(into: &self.buffer)
        self.buffer.writeHeaderLine(name, requestID)
    }

    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer) {
        self.run.keep(line, into: &self.buffer)
    }

    mutating func endOfFields() {
        self.run.flush(into: &self.buffer)
    }

    /// The bytes written, held by nothing else, so the next write needs no copy: call it as
    /// `(consume serialized).finish()`, since a `var` of a copyable type otherwise lives (and holds
    /// its reference) to the end of its scope in a debug build.
    consuming func finish() -> ByteBuffer {
        self.buffer
    }
}

/// Received field lines kept as they came, copied in as few writes as there are runs of them: a
/// line that starts where the previous kept one ended extends the run, which is written when
/// something else is written or the pass ends. Each `ByteBuffer.write…` call pays its capacity,
/// uniqueness and exclusivity checks (some 75 instructions) whatever its length, and most lines
/// of a head are kept, so a head of ten kept lines costs one call where it cost ten.
///
/// The run points into the received header block: it is only valid inside that block's
/// `withUnsafeReadableBytes`, and must be flushed before it returns.
struct FieldLineRun {
    private var start: UnsafeRawPointer?
    private var count = 0

    init() {}

    /// Adds `line` to the run, or writes the run and starts a new one when `line` does not
    /// follow it.
    mutating func keep(_ line: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        guard let base = line.baseAddress else { return }
        if let start = self.start, start + self.count == base {
            self.count += line.count
            return
        }
        self.flush(into: &buffer)
        self.start = base
        self.count = line.count
    }

    /// Writes the run, if any, and empties it.
    mutating func flush(into buffer: inout ByteBuffer) {
        guard let start = self.start else { return }
        buffer.writeBytes(UnsafeRawBufferPointer(start: start, count: self.count))
        self.start = nil
        self.count = 0
    }
}

extension ByteBuffer {
    /// `name: value\r\n`, copied in one write (each `ByteBuffer.write…` call pays its own
    /// capacity, uniqueness and exclusivity checks). The strings' bytes are read in place
    /// (`withContiguousStorageIfAvailable` needs no mutable copy, so no retain, where
    /// `withUTF8` does); a string without contiguous UTF-8 is copied out first.
    mutating func writeHeaderLine(_ name: String, _ value: String) {
        let written: Void?? = name.utf8.withContiguousStorageIfAvailable { name in
            value.utf8.withContiguousStorageIfAvailable { value in
                self.writeHeaderLine(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value))
            }
        }
        if case .some(.some) = written { return }
        Array(name.utf8).withUnsafeBytes { name in
            Array(value.utf8).withUnsafeBytes { value in self.writeHeaderLine(name, value) }
        }
    }

    /// `name: id` and CRLF: the id's bytes as `RequestID.withUTF8` gives them (a generated id's
    /// digits without a `String`), the name's read in place as above. (Routing the `String`
    /// version through this too cost some 190 instructions per request: its nested closures.)
    mutating func writeHeaderLine(_ name: String, _ id: RequestID) {
        id.withUTF8 { value in
            let written: Void? = name.utf8.withContiguousStorageIfAvailable { name in
                self.writeHeaderLine(UnsafeRawBufferPointer(name), value)
            }
            if written == nil { Array(name.utf8).withUnsafeBytes { name in self.writeHeaderLine(name, value) } }
        }
    }

    private mutating func writeHeaderLine(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let count = name.count + value.count + 4
        self.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
            // `count` ≥ 4, so the target has an address.
            let base = target.baseAddress!
            if let from = name.baseAddress { base.copyMemory(from: from, byteCount: name.count) }
            var at = name.count
            base.storeBytes(of: UInt8(ascii: ":"), toByteOffset: at, as: UInt8.self)
            base.storeBytes(of: UInt8(ascii: " "), toByteOffset: at + 1, as: UInt8.self)
            at += 2
            if let from = value.baseAddress { (base + at).copyMemory(from: from, byteCount: value.count) }
            at += value.count
            base.storeBytes(of: UInt8(ascii: "\r"), toByteOffset: at, as: UInt8.self)
            base.storeBytes(of: UInt8(ascii: "\n"), toByteOffset: at + 1, as: UInt8.self)
            return count
        }
    }
}
