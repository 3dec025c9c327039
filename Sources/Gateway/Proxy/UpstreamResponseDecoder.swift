import NIOCore
import NIOHTTP1

/// NIO's HTTP response decoder (llhttp), told about each request by the gateway rather than by
/// watching typed request heads go by: the gateway writes request heads as bytes
/// (`ForwardHead`), so nothing typed passes it. The decoder needs to know only which responses
/// answer `HEAD` or `CONNECT` (they have no body), and that a response was asked for at all (an
/// unsolicited one is an error). Public for the micro-benchmarks.
public final class UpstreamResponseDecoder: ByteToMessageDecoder {
    public typealias InboundOut = HTTPClientResponsePart

    private let http: HTTPResponseDecoder

    public init(leftOverBytesStrategy: RemoveAfterUpgradeStrategy) {
        self.http = HTTPResponseDecoder(leftOverBytesStrategy: leftOverBytesStrategy)
    }

    /// A request with `method` was written: its response is next.
    public func expectResponse(to method: HTTPMethod) {
        let head: HTTPRequestHead
        switch method {
        case .HEAD: head = Self.head
        case .CONNECT: head = Self.connect
        default: head = Self.other
        }
        self.http.write(data: .head(head))
    }

    // Shared placeholders: the decoder reads only their method.
    private static let head = HTTPRequestHead(version: .http1_1, method: .HEAD, uri: "")
    private static let connect = HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "")
    private static let other = HTTPRequestHead(version: .http1_1, method: .GET, uri: "")

    public func decoderAdded(context: ChannelHandlerContext) {
        self.http.decoderAdded(context: context)
    }

    public func decoderRemoved(context: ChannelHandlerContext) {
        self.http.decoderRemoved(context: context)
    }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try self.http.decode(context: context, buffer: &buffer)
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try self.http.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
}

@available(*, unavailable)
extension UpstreamResponseDecoder: Sendable {}
