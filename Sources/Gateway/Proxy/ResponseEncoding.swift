import NIOCore
import NIOHTTP1

/// How a response's body goes on the wire to the client.
public enum ResponseBodyFraming: Sendable, Equatable {
    /// No body on the wire: a response to `HEAD`, or a 1xx, 204 or 304.
    case none
    /// The body as it comes: delimited by `Content-Length`, or by closing the connection.
    case asIs
    /// Chunked coding (the upstream gave no length and the client speaks HTTP/1.1).
    case chunked
}

/// The gateway's own HTTP/1.1 response encoding: heads straight into bytes, bodies framed by
/// `ResponseBodyFraming`. Pure: bytes in, bytes out; `DownstreamHandler` writes what it returns.
/// (It replaces NIO's `HTTPResponseEncoder`, which needs a typed head built first and validates
/// every header again: these heads come from llhttp-parsed responses and the gateway's checked
/// values.)
public enum ResponseEncoding {
    /// `HTTP/1.1 200 OK\r\n`.
    public static func writeStatusLine(version: HTTPVersion, status: HTTPResponseStatus, into buffer: inout ByteBuffer) {
        buffer.writeHead(estimate: 64) { Self.writeStatusLine(version: version, status: status, into: &$0) }
    }

    static func writeStatusLine(version: HTTPVersion, status: HTTPResponseStatus, into writer: inout HeadWriter) {
        // Most responses: one constant (the general path below reads the code and the reason
        // phrase through two large switches).
        if version == .http1_1, case .ok = status {
            writer.write("HTTP/1.1 200 OK\r\n")
            return
        }
        if version == .http1_1 {
            writer.write("HTTP/1.1 ")
        } else {
            writer.write("HTTP/")
            writer.write(decimal: version.major)
            writer.write(byte: UInt8(ascii: "."))
            writer.write(decimal: version.minor)
            writer.write(byte: UInt8(ascii: " "))
        }
        let code = Int(status.code)
        writer.write(byte: UInt8(ascii: "0") + UInt8(code / 100 % 10))
        writer.write(byte: UInt8(ascii: "0") + UInt8(code / 10 % 10))
        writer.write(byte: UInt8(ascii: "0") + UInt8(code % 10))
        writer.write(byte: UInt8(ascii: " "))
        writer.write(string: status.reasonPhrase)
        writer.write("\r\n")
    }

    /// A complete head with its headers exactly as given (local answers, `100 Continue`, `101`).
    public static func writeHead(_ head: HTTPResponseHead, into buffer: inout ByteBuffer) {
        buffer.writeHead(estimate: 64 + head.headers.count * 40) { writer in
            Self.writeStatusLine(version: head.version, status: head.status, into: &writer)
            for (name, value) in head.headers { writer.writeLine(name, value) }
            writer.write("\r\n")
        }
    }

    /// A whole local answer in one buffer: head, then the body unless the request was `HEAD`.
    public static func localResponse(
        _ head: HTTPResponseHead, body: String, requestMethod: HTTPMethod?, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128 + head.headers.count * 40 + body.utf8.count)
        Self.writeHead(head, into: &buffer)
        if requestMethod != .HEAD { buffer.writeString(body) }
        return buffer
    }

    /// The size line of a chunk of `count` bytes (`1f4\r\n`); the chunk and `crlf` follow it.
    public static func chunkHeader(_ count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeChunkHeader(count)
        return buffer
    }

    public static let crlf = ByteBuffer(string: "\r\n")

    /// The end of a chunked body, with trailers if any.
    public static func lastChunk(trailers: HTTPHeaders?, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard let trailers, !trailers.isEmpty else { return Self.lastChunkWithoutTrailers }
        var buffer = allocator.buffer(capacity: 64)
        buffer.writeHead(estimate: 64) { writer in
            writer.write("0\r\n")
            for (name, value) in trailers { writer.writeLine(name, value) }
            writer.write("\r\n")
        }
        return buffer
    }

    static let lastChunkWithoutTrailers = ByteBuffer(string: "0\r\n\r\n")

    /// `100 Continue` for a client that asked to be told before sending its body.
    public static func continueHead(version: HTTPVersion) -> ByteBuffer {
        version == .http1_1 ? Self.continue11 : Self.continue10
    }

    private static let continue11 = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")
    private static let continue10 = ByteBuffer(string: "HTTP/1.0 100 Continue\r\n\r\n")
}

extension ByteBuffer {
    /// The size line of an HTTP/1.1 chunk of `count` bytes (`1f4\r\n`), for request and response
    /// bodies alike.
    mutating func writeChunkHeader(_ count: Int) {
        self.writeString(String(count, radix: 16))
        self.writeStaticString("\r\n")
    }
}
