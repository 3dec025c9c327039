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
    mutating func add(name: String, value: String)
    /// A received field line kept as it is: `line` is the whole line with its CRLF.
    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer)
}

extension HTTPHeaders: HeaderSink {
    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer) {
        self.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }
}

/// Header lines written straight into a head's bytes.
extension ByteBuffer: HeaderSink {
    mutating func add(name: String, value: String) {
        self.writeHeaderLine(name, value)
    }

    mutating func keep(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, line: UnsafeRawBufferPointer) {
        self.writeBytes(line)
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
