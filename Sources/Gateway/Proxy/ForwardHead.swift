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

/// Where request headers are written: a typed list (`HTTPHeaders`) or a serialized head.
protocol HeaderSink {
    /// A header the gateway adds (after `flush`ing the lines kept before it).
    mutating func add(name: String, value: String)
    /// A received field line kept as it is: `line` is the whole line with its CRLF. A sink that
    /// writes bytes may hold it in `run` to copy it with the lines that follow it.
    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer, run: inout FieldLineRun)
    /// Writes what `run` holds: before the received bytes `run` points into go out of scope.
    mutating func flush(_ run: inout FieldLineRun)
}

extension HTTPHeaders: HeaderSink {
    mutating func keep(
        name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer, run: inout FieldLineRun
    ) {
        self.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    mutating func flush(_ run: inout FieldLineRun) {}
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

/// Header lines written straight into a head's bytes.
extension ByteBuffer: HeaderSink {
    mutating func add(name: String, value: String) {
        self.writeHeaderLine(name, value)
    }

    mutating func keep(
        name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer, run: inout FieldLineRun
    ) {
        run.keep(line, into: &self)
    }

    mutating func flush(_ run: inout FieldLineRun) {
        run.flush(into: &self)
    }

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
