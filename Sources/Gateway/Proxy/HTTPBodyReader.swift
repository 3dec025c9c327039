import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why bytes are not an acceptable HTTP/1.1 message, in the words the parsers' errors use.
struct HTTPSyntaxError: Error, Equatable {
    let reason: String
    /// A head or trailer section grew past its limit (431 for a request, not 400).
    var overLimit = false

    init(_ reason: String, overLimit: Bool = false) {
        self.reason = reason
        self.overLimit = overLimit
    }
}

/// Finds where a head (or a trailer section) ends, however its bytes are split across reads:
/// the input is searched once, from where the last search stopped.
struct HTTPHeadScanner {
    /// How many bytes at the front of the unread input are known not to finish the head.
    private var scanned = 0

    /// The offset just past the empty line that ends the head at the start of `buffer`'s unread
    /// bytes, or nil when it has not arrived. Every LF must follow a CR; a head longer than
    /// `limit` bytes is refused as soon as that many arrived without its end.
    mutating func findEmptyLine(_ buffer: ByteBuffer, limit: Int, what: String) throws(HTTPSyntaxError) -> Int? {
        let found: Int?? = buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return nil }
            var index = max(self.scanned, 0)
            // Only the first `limit` bytes can hold the head's last LF; searching no further
            // makes the error the same however the bytes arrive (a bare LF past the limit is not
            // reported before the limit is).
            let count = min(bytes.count, limit)
            // From LF to LF with memchr: a head has about one per 30 bytes.
            while index < count, let hit = memchr(base + index, 0x0A, count - index) {
                let lf = base.distance(to: UnsafeRawPointer(hit))
                guard lf > 0, bytes[lf - 1] == UInt8(ascii: "\r") else { return .some(nil) }
                // An empty line: the head's first line, or CRLF CRLF.
                if lf == 1 || (lf >= 3 && bytes[lf - 2] == UInt8(ascii: "\n")) { return lf + 1 }
                index = lf + 1
            }
            return nil
        }
        switch found {
        case .some(.some(let end)):
            guard end <= limit else { throw HTTPSyntaxError("\(what) over \(limit) bytes", overLimit: true) }
            self.scanned = 0
            return end
        case .some(.none):
            throw HTTPSyntaxError("a line in the \(what) ends in a bare LF")
        case .none:
            guard buffer.readableBytes <= limit else { throw HTTPSyntaxError("\(what) over \(limit) bytes", overLimit: true) }
            // Keep the last byte unscanned: it may be the CR of a CRLF split by the read.
            self.scanned = max(buffer.readableBytes - 1, 0)
            return nil
        }
    }

    /// Forgets what was scanned (the bytes it counted were consumed some other way).
    mutating func reset() {
        self.scanned = 0
    }
}

/// One message body as it arrives, for the request and the response parser: `Content-Length`
/// bytes, chunked coding (removed: chunk sizes, extensions and the trailer section's framing are
/// checked and dropped), or everything until the connection closes. Pure: bytes in, pieces out.
struct HTTPBodyReader {
    static let maximumChunkLineBytes = 4 * 1024

    enum Framing {
        case contentLength(Int)
        case chunked
        case untilClose
    }

    enum Event {
        /// A piece of the body, a slice of the input.
        case body(ByteBuffer)
        /// The body is complete. `trailers`: the trailer section's field lines (each checked,
        /// without the empty line that ends them) when a chunked body had any.
        case end(trailers: ByteBuffer?)
    }

    private enum State {
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var state: State
    private var scanner = HTTPHeadScanner()
    /// The longest trailer section accepted.
    private let trailerLimit: Int

    init(_ framing: Framing, trailerLimit: Int) {
        switch framing {
        case .contentLength(let length): self.state = .fixed(remaining: length)
        case .chunked: self.state = .chunkSize
        case .untilClose: self.state = .untilClose
        }
        self.trailerLimit = trailerLimit
    }

    /// The body runs until the connection closes.
    var isUntilClose: Bool {
        if case .untilClose = self.state { return true }
        return false
    }

    /// The next piece from the unread bytes of `buffer`, which it consumes; nil when they do not
    /// finish one. After `.end`, nil.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTPSyntaxError) -> Event? {
        // A loop, not a recursion: chunk-size lines and CRLFs give no event of their own.
        while true {
            switch self.state {
            case .fixed(let remaining):
                if remaining == 0 {
                    self.state = .done
                    return .end(trailers: nil)
                }
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                self.state = .fixed(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkSize:
                guard let size = try self.parseChunkSize(&buffer) else { return nil }
                self.state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                self.state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .chunkDataEnd:
                guard buffer.readableBytes >= 2 else {
                    if buffer.readableBytes == 1, buffer.readableBytesView.first != UInt8(ascii: "\r") {
                        throw HTTPSyntaxError("chunk data not followed by CRLF")
                    }
                    return nil
                }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                    throw HTTPSyntaxError("chunk data not followed by CRLF")
                }
                self.state = .chunkSize
            case .trailers:
                guard let end = try self.scanner.findEmptyLine(buffer, limit: self.trailerLimit, what: "trailer section")
                else { return nil }
                self.state = .done
                guard end > 2 else {
                    buffer.moveReaderIndex(forwardBy: end)
                    return .end(trailers: nil)
                }
                let fields = buffer.getSlice(at: buffer.readerIndex, length: end - 2)!
                try Self.checkTrailers(fields)
                buffer.moveReaderIndex(forwardBy: end)
                return .end(trailers: fields)
            case .done:
                return nil
            }
        }
    }

    /// The size on a chunk-size line, consuming the line; nil until the whole line has arrived.
    private mutating func parseChunkSize(_ buffer: inout ByteBuffer) throws(HTTPSyntaxError) -> Int? {
        let result: Result<(size: Int, length: Int)?, HTTPSyntaxError> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(HTTPSyntaxError) in try Self.chunkLine(bytes) }
        }
        guard let (size, length) = try result.get() else {
            guard buffer.readableBytes <= Self.maximumChunkLineBytes else {
                throw HTTPSyntaxError("chunk-size line over \(Self.maximumChunkLineBytes) bytes")
            }
            return nil
        }
        guard length <= Self.maximumChunkLineBytes else {
            throw HTTPSyntaxError("chunk-size line over \(Self.maximumChunkLineBytes) bytes")
        }
        buffer.moveReaderIndex(forwardBy: length)
        return size
    }

    /// Parses a chunk-size line at the start of `bytes`: its size and its length with CRLF, or nil
    /// if no LF has arrived. `chunk-size [ chunk-ext ] CRLF`, with `chunk-ext = *( ";" token [ "="
    /// ( token / quoted-string ) ] )` (RFC 9112 §7.1.1 without its optional whitespace).
    static func chunkLine(_ bytes: UnsafeRawBufferPointer) throws(HTTPSyntaxError) -> (size: Int, length: Int)? {
        // The line is at most `maximumChunkLineBytes` long: searched again from its start at each
        // read, it is never searched far.
        var lf = 0
        while lf < bytes.count, bytes[lf] != UInt8(ascii: "\n") { lf += 1 }
        guard lf < bytes.count else { return nil }
        guard lf > 0, bytes[lf - 1] == UInt8(ascii: "\r") else { throw HTTPSyntaxError("chunk-size line ends in a bare LF") }
        let end = lf - 1  // the CR
        var index = 0
        var size = 0
        while index < end, let digit = HTTPFieldLine.hexValue(bytes[index]) {
            guard index < 16 else { throw HTTPSyntaxError("chunk size over 16 hex digits") }
            size = size << 4 | digit
            index += 1
        }
        guard index > 0 else { throw HTTPSyntaxError("chunk-size line without a size") }
        guard size <= Int(Int32.max) * 1024 else { throw HTTPSyntaxError("chunk size too large") }
        // Extensions, without whitespace around their parts: llhttp refuses it too (it has a
        // leniency flag for it), and a gateway should not read a chunk boundary more loosely
        // than the parsers behind it.
        while index < end {
            guard bytes[index] == UInt8(ascii: ";") else { throw HTTPSyntaxError("malformed chunk extension") }
            let name = index + 1
            index = HTTPFieldLine.skipToken(bytes, name, end)
            guard index > name else { throw HTTPSyntaxError("malformed chunk extension") }
            guard index < end, bytes[index] == UInt8(ascii: "=") else { continue }
            index += 1
            guard index < end else { throw HTTPSyntaxError("malformed chunk extension") }
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                while true {
                    guard index < end else { throw HTTPSyntaxError("malformed chunk extension") }
                    let byte = bytes[index]
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == UInt8(ascii: "\\") {
                        index += 1
                        guard index < end, HTTPFieldLine.isFieldValueByte(bytes[index]) else {
                            throw HTTPSyntaxError("malformed chunk extension")
                        }
                    } else if !HTTPFieldLine.isFieldValueByte(byte) {
                        throw HTTPSyntaxError("malformed chunk extension")
                    }
                    index += 1
                }
                index += 1
            } else {
                let value = index
                index = HTTPFieldLine.skipToken(bytes, index, end)
                guard index > value else { throw HTTPSyntaxError("malformed chunk extension") }
            }
        }
        return (size, lf + 1)
    }

    /// Checks each line of a trailer section: well formed, and no framing or connection control,
    /// which have no meaning there (RFC 9110 §6.5.1; llhttp refuses framing there too, and would
    /// act on a `Connection: close` it found).
    private static func checkTrailers(_ fields: ByteBuffer) throws(HTTPSyntaxError) {
        let result: Result<Void, HTTPSyntaxError> = fields.withUnsafeReadableBytes { bytes in
            Result { () throws(HTTPSyntaxError) in
                var start = 0
                while start < bytes.count {
                    let field = try HTTPFieldLine.validate(bytes, from: start)
                    switch HTTPFieldLine.kind(of: UnsafeRawBufferPointer(rebasing: bytes[start..<field.colon])) {
                    case .contentLength, .transferEncoding:
                        throw HTTPSyntaxError("a framing field in the trailer section")
                    case .connection, .hopByHop, .upgrade:
                        throw HTTPSyntaxError("a hop-by-hop field in the trailer section")
                    case .other:
                        break
                    }
                    start = field.next
                }
            }
        }
        try result.get()
    }
}
