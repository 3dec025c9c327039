import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// `ClientRequestParser` against NIO's llhttp-based `HTTPRequestDecoder` (strict defaults), which
/// it replaced on client connections. The rule: the parser is at least as strict as llhttp.
/// Whatever it accepts (every request up to where it stops, refuses or needs more bytes), NIO
/// accepts too, with the same requests (method, target, version, fields in order with their
/// values trimmed, body bytes, end), and it keeps no connection that NIO would close; where both
/// stop for an upgrade, both leave the same bytes for the tunnel. It may refuse more. And its
/// outcome does not depend on how the input is split into reads.
///
/// Inputs are written as raw strings with `\r \n \t \\ \" \0 \xNN` escapes
/// (`UpstreamResponseParserDifferentialTests.bytes(_:)`), the form in which failures are
/// reported, so that a reported input can be pasted back here.
@Suite("Client request parser, differential against NIO's decoder")
struct ClientRequestParserDifferentialTests {
    /// The response parser's differential test: its escapes, fields, splits and generator serve here too.
    typealias Shared = UpstreamResponseParserDifferentialTests

    // MARK: Corpus

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var bytes: [UInt8]

        init(_ name: String, _ text: String) {
            self.init(name, bytes: Shared.bytes(text))
        }

        init(_ name: String, bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }

        var description: String { "\(self.name): input #\"\(Shared.escape(self.bytes))\"#" }
    }

    static let bigCookie = String(repeating: "c", count: 8_000)

    /// Valid requests, as clients send them: ours must accept each, and agree with NIO.
    static let good: [Case] = [
        Case(
            "browser GET",
            #"GET /orders/42?expand=items&sort=-date HTTP/1.1\r\nHost: api.example.com\r\n"#
                + #"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/126.0\r\n"#
                + #"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"#
                + #"Accept-Encoding: gzip, deflate, br\r\nCookie: session=abc; theme=dark\r\n"#
                + #"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig-_x\r\nConnection: keep-alive\r\n\r\n"#),
        Case(
            "POST with Content-Length",
            #"POST /api/items HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"name":"x"}\n"#),
        Case("HEAD", #"HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("PUT", #"PUT /files/a.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"#),
        Case("DELETE", #"DELETE /items/7 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"#),
        Case("PATCH", #"PATCH /items/7 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"#),
        Case("OPTIONS asterisk-form", #"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("OPTIONS with a path", #"OPTIONS /items HTTP/1.1\r\nHost: a\r\nOrigin: https://b\r\nAccess-Control-Request-Method: PUT\r\n\r\n"#),
        Case("TRACE", #"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("PURGE (a method llhttp knows)", #"PURGE /cache/x HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("PROPFIND with a body", #"PROPFIND /dav/ HTTP/1.1\r\nHost: a\r\nDepth: 1\r\nContent-Length: 7\r\n\r\n<x:a/>\n"#),
        Case("MKCOL, REPORT, QUERY, SEARCH", #"MKCOL /d HTTP/1.1\r\nHost: a\r\n\r\nREPORT /d HTTP/1.1\r\nHost: a\r\n\r\nQUERY /q HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nqSEARCH / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("M-SEARCH (NIO names it MSEARCH)", #"M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n"#),
        Case("HTTP/1.0 without keep-alive", #"GET / HTTP/1.0\r\nUser-Agent: curl/7\r\n\r\n"#),
        Case("HTTP/1.0 without any field", #"GET /x HTTP/1.0\r\n\r\n"#),
        Case(
            "HTTP/1.0 keep-alive pipelined",
            #"GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nPOST /b HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.0\r\n\r\n"#),
        Case(
            "pipelined GETs",
            #"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "pipelined POST, chunked POST, GET",
            #"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"#
                + #"2\r\nxy\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "chunked with extensions",
            #"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"#
                + #"3;a=b\r\nabc\r\n2;a="q\\\"x"\r\nde\r\n1;n;m=v;q="\\\\"\r\nf\r\n0;last\r\n\r\n"#),
        Case(
            "chunked with trailers",
            #"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"#
                + #"4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Checksum: abc123\r\nX-Other:  spaced \t\r\n\r\n"#),
        Case("chunked, uppercase coding and hex", #"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"#),
        Case("chunked with OWS around the coding", #"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked  \r\n\r\n1\r\nx\r\n0\r\n\r\n"#),
        Case("chunked with leading zeros in sizes", #"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n000\r\n\r\n"#),
        Case("Content-Length 0", #"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"#),
        Case("Content-Length with leading zeros and OWS", #"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:\t 003 \r\n\r\nabc"#),
        Case(
            "Expect: 100-continue",
            #"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n0123456789"#),
        Case(
            "Expect: 100-continue, chunked",
            #"POST /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"#),
        Case("big header", "GET / HTTP/1.1\\r\\nHost: a\\r\\nCookie: \(bigCookie)\\r\\nX-After: 1\\r\\n\\r\\n"),
        Case("many fields", "GET / HTTP/1.1\\r\\n" + (0..<200).map { "X-F\($0): v\($0)\\r\\n" }.joined() + "\\r\\n"),
        Case(
            "WebSocket upgrade, then frames",
            #"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"#
                + #"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"#),
        Case(
            "WebSocket upgrade, then what looks like a request",
            #"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "h2c upgrade with a body",
            #"POST /h2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"#
                + #"Content-Length: 3\r\n\r\nabcPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"#),
        Case("Upgrade without Connection: upgrade", #"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("CONNECT, then tunnel bytes", #"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\x05hello"#),
        Case("CONNECT with a Content-Length", #"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nContent-Length: 3\r\n\r\nabc"#),
        Case("query string", #"GET /search?q=a+b&lang=en&x=%20y&empty=&flag&arr[]=1&u=http://x/y?z HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("percent-encoded path", #"GET /files/%E2%82%AC%20report%2Fq1.pdf HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("path with sub-delims", #"GET /a/b;v=1/c,d/e!f$g&h'i(j)k*l+m=n:o@p~q_r.s-t HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("fragment in the target", #"GET /page#section HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("dot segments", #"GET /a/./b/../c//d HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("absolute-form target", #"GET http://api.example.com:8080/orders?x=1 HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n"#),
        Case("absolute-form https target with userinfo", #"GET https://u:p@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"#),
        Case("leading CRLFs", #"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "CRLF between pipelined requests",
            #"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "Connection: close, then more",
            #"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case(
            "HTTP/1.0 without keep-alive, then more",
            #"POST /a HTTP/1.0\r\nContent-Length: 2\r\n\r\nokGET /b HTTP/1.0\r\n\r\n"#),
        Case(
            "HTTP/1.0 keep-alive and close (ours closes, llhttp keeps it)",
            #"GET /a HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\nGET /b HTTP/1.0\r\n\r\n"#),
        Case("Connection: close in a list", #"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-hop, CLOSE\r\nX-Hop: 1\r\n\r\nrest"#),
        Case("empty header values", #"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\nX-Tab:\t\r\n\r\n"#),
        Case("obs-text in values", #"GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xE9\r\nX-UTF8: \xC3\xA9t\xC3\xA9\r\n\r\n"#),
        Case("whitespace around values", #"GET / HTTP/1.1\r\nHost: a\r\nX-A:\t value with  inner \t spaces \t \r\nX-B:x\r\n\r\n"#),
        Case("every tchar in a name", #"GET / HTTP/1.1\r\nX-!#$%&'*+-.^_`|~09azAZ: v\r\nHost: a\r\n\r\n"#),
        Case("repeated field names", #"GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\naccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n\r\n"#),
        Case("Host with a port, IPv6 host", #"GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"#),
        Case("Keep-Alive and TE fields", #"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nConnection: TE, keep-alive\r\n\r\n"#),
        Case("no fields at all", #"GET / HTTP/1.1\r\n\r\n"#),
        Case(
            "trailers, then another request",
            #"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("a body that looks like a request", #"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 29\r\n\r\nGET /admin HTTP/1.1\r\nX: y\r\n\r\n"#),
        Case("chunk ext with quoted obs-text and tab", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a="\x80\t"\r\na\r\n0\r\n\r\n"#),
        Case("an unfinished request (the rest has not arrived)", #"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"#),
        Case("an unfinished chunked request", #"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"#),
        Case("an unfinished head", #"GET /a HTTP/1.1\r\nHost: a\r\nX-Long: abc"#),
        Case("a long target", "GET /" + String(repeating: "seg/", count: 2_000) + " HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"),
    ]

    /// Inputs ours must refuse. llhttp refuses most; `badSeeds` prints those it accepts.
    static let bad: [Case] = [
        // Framing: the request smuggling classics.
        Case("CL.TE", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"#),
        Case("TE.CL", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"#),
        Case("TE: chunked twice", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"#),
        Case("TE: chunked, chunked", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"#),
        Case("TE: chunked and TE: identity", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"#),
        Case("TE: gzip, chunked", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"#),
        Case("TE: chunked, gzip", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc"#),
        Case("TE: identity", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc"#),
        Case("TE: xchunked", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"#),
        Case("TE: chunkedx", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n"#),
        Case("TE: chunked with a parameter", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"#),
        Case("TE: quoted chunked", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n"#),
        Case("TE: empty", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc"#),
        Case("TE with a space before the colon", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc"#),
        Case("TE folded onto the previous line", #"POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"#),
        Case("TE with its value folded", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"#),
        Case("TE with a vertical tab", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0Bchunked\r\n\r\n0\r\n\r\n"#),
        Case("TE with a form feed", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0C\r\n\r\n0\r\n\r\n"#),
        Case("TE with NUL", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n0\r\n\r\n"#),
        Case("TE in HTTP/1.0", #"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"#),
        Case("two Content-Lengths", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"#),
        Case("two different Content-Lengths", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"#),
        Case("Content-Length list", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"#),
        Case("Content-Length list without space", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,3\r\n\r\nabc"#),
        Case("Content-Length with a plus sign", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"#),
        Case("Content-Length negative", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc"#),
        Case("Content-Length with an inner space", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nabcdefghijkl"#),
        Case("Content-Length hex", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"#),
        Case("Content-Length empty", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"#),
        Case("Content-Length overflowing", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"#),
        Case("Content-Length with a space before the colon", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc"#),
        // Field lines.
        Case("obs-fold", #"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"#),
        Case("obs-fold with a tab", #"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\ttwo\r\n\r\n"#),
        Case("obs-fold on the first field", #"GET / HTTP/1.1\r\n Host: a\r\n\r\n"#),
        Case("space before colon", #"GET / HTTP/1.1\r\nHost : a\r\n\r\n"#),
        Case("tab before colon", #"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"#),
        Case("no colon", #"GET / HTTP/1.1\r\nHost a\r\n\r\n"#),
        Case("empty field name", #"GET / HTTP/1.1\r\n: a\r\n\r\n"#),
        Case("separator in a name", #"GET / HTTP/1.1\r\nX(a): b\r\n\r\n"#),
        Case("NUL in a value", #"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"#),
        Case("NUL in a name", #"GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"#),
        Case("DEL in a value", #"GET / HTTP/1.1\r\nHost: a\x7Fb\r\n\r\n"#),
        Case("bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n"),
        Case("bare LF after the request line", #"GET / HTTP/1.1\nHost: a\r\n\r\n"#),
        Case("bare LF after a field", #"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"#),
        Case("bare LF ending the head", #"GET / HTTP/1.1\r\nHost: a\r\n\n"#),
        Case("bare CR in a value", #"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"#),
        Case("bare CR ending a line", #"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"#),
        Case("bare CR ending the request line", #"GET / HTTP/1.1\rHost: a\r\n\r\n"#),
        // The request line.
        Case("HTTP/2.0", #"GET / HTTP/2.0\r\nHost: a\r\n\r\n"#),
        Case("HTTP/1.2", #"GET / HTTP/1.2\r\nHost: a\r\n\r\n"#),
        Case("HTTP/0.9 version", #"GET / HTTP/0.9\r\nHost: a\r\n\r\n"#),
        Case("HTTP/0.9 request line", #"GET /\r\n\r\n"#),
        Case("HTTP/3", #"GET / HTTP/3\r\nHost: a\r\n\r\n"#),
        Case("lowercase http", #"GET / http/1.1\r\nHost: a\r\n\r\n"#),
        Case("two spaces after the method", #"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("two spaces before the version", #"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("space after the version", #"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"#),
        Case("tab as a separator", #"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("space in the target", #"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("non-ASCII in the target", #"GET /caf\xC3\xA9 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("control character in the target", #"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("DEL in the target", #"GET /a\x7Fb HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("no method", #" / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("no target", #"GET  HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("separator in the method", #"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"#),
        // Chunked coding.
        Case("LF in the chunk size line", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"#),
        Case("CR alone after the chunk size", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n"#),
        Case("chunk size overflowing", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk size over the limit", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nabc\r\n"#),
        Case("bad chunk size", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\nabc\r\n0\r\n\r\n"#),
        Case("negative chunk size", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk size with 0x", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk size with a space", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n"#),
        Case("chunk size after a space", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk size with a tab", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\t\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk extension with spaces", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a = b\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk extension without a name", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk extension with an open quote", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a="x\r\nabc\r\n0\r\n\r\n"#),
        Case("chunk data without CRLF", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"#),
        Case("chunk data followed by a bare LF", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n"#),
        Case("last chunk followed by a bare LF", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n"#),
        Case("Content-Length in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nContent-Length: 5\r\n\r\n"#),
        Case("Transfer-Encoding in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"#),
        Case("Connection: close in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n"#),
        Case("Upgrade in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nUpgrade: websocket\r\n\r\n"#),
        Case("Keep-Alive in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nKeep-Alive: 5\r\n\r\n"#),
        Case("obs-fold in trailers", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n 2\r\n\r\n"#),
        Case("bad trailer name", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n"#),
        // After a good request.
        Case("a bad request after a good one", #"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n"#),
        Case("a smuggled request after a good one", #"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"#),
        Case("garbage after a good one", #"GET / HTTP/1.1\r\nHost: a\r\n\r\n\x16\x03\x01\0\x05hello\r\n\r\n"#),
        Case("a head over the limit", "GET / HTTP/1.1\\r\\nX-Big: " + String(repeating: "b", count: 70_000) + "\\r\\n\\r\\n"),
        Case("a target over the limit", "GET /" + String(repeating: "t", count: 70_000) + " HTTP/1.1\\r\\n\\r\\n"),
    ]

    /// Requests that ours accepts and NIO refuses, on purpose. Each is checked to be read by ours
    /// exactly as written (`knownDifferences`); the fuzzer counts them apart.
    static let differences: [(Case, method: String)] = [
        // A method is any token (RFC 9110 §9.1); the gateway's routes decide which they allow.
        // llhttp knows a fixed list and refuses the rest with "invalid method". Framing does not
        // depend on the method, so this cannot make the two read a body differently.
        (Case("extension method", #"FROB /x HTTP/1.1\r\nHost: a\r\n\r\n"#), "FROB"),
        (Case("lowercase method", #"get /x HTTP/1.1\r\nHost: a\r\n\r\n"#), "get"),
        (Case("method with tchars", #"X-M!#$%&'*+.^_`|~1 /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz"#), "X-M!#$%&'*+.^_`|~1"),
    ]

    /// The methods llhttp's request parser knows (`HTTP_METHOD_MAP`, by their names on the wire).
    static let llhttpMethods: Set<String> = [
        "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE",
        "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY",
        "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK",
        "UNLINK", "SOURCE", "QUERY",
    ]

    /// Inputs on which the first version of the parser was laxer than llhttp, found by this test
    /// and fixed (kept as seeds): targets in no form RFC 9112 §3.2 has (it took any visible
    /// ASCII), and a tab inside a framing or `Connection` value (it trimmed it as OWS; llhttp
    /// reads it as part of the value). They must be refused by ours, or read alike.
    static let fixed: [Case] = [
        Case("relative path", #"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("relative path with a body", #"PUT files/a.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"#),
        Case("query alone", #"GET ?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("fragment alone", #"GET #a HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("scheme without //", #"GET http:/b HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("a colon", #"GET : HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("CONNECT to an authority with #", #"CONNECT ex#mple.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("CONNECT to an authority with braces", #"CONNECT a{b}:443 HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("chunked HTAB", #"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n1\r\nx\r\n0\r\n\r\n"#),
        Case("chunked in OWS with HTABs", #"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \t\r\n\r\n1\r\nx\r\n0\r\n\r\n"#),
        Case("Content-Length HTAB", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\t\r\n\r\nabc"#),
        Case("Content-Length SP HTAB SP", #"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 \t \r\n\r\nabc"#),
        Case("HTTP/1.0 keep-alive HTAB, then a request", #"GET /a HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\nGET /b HTTP/1.0\r\n\r\n"#),
        Case("HTTP/1.0 keep-alive HTAB in a list", #"GET /a HTTP/1.0\r\nConnection: keep-alive\t, x\r\n\r\nGET /b HTTP/1.0\r\n\r\n"#),
        // Found by 60,000-input runs after the first fixes: a scheme with a digit, characters
        // outside an authority in absolute-form, and a close after a tab in a list.
        Case("scheme with a digit", #"GET htt4p://api.example.com/orders HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("absolute-form authority with a brace", #"GET https://u:p@e}ample.com/ HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("absolute-form authority with #", #"GET http://api.example.com:8#80/orders HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("absolute-form authority with a backslash", #"GET http://api.exam\\ple.com/ HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("absolute-form without an authority", #"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"#),
        Case("close after a tab in a list", #"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-hop,\t CLOSE\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"#),
    ]

    // MARK: Tests

    @Test("Every valid seed is accepted by ours, and NIO reads it the same way")
    func goodSeeds() {
        for seed in Self.good {
            let ours = Self.ours(seed.bytes)
            #expect(ours.error == nil, "ours refuses a valid request: \(seed), error: \(ours.error ?? "")")
            let splits: Shared.Splits = seed.bytes.count > 1_000 ? .oneByteAndRandom(1) : .exhaustive
            if let why = Self.check(seed, splits: splits).failure {
                Issue.record("\(why)\n\(seed)")
            }
        }
    }

    @Test("Every known-bad seed is refused by ours (and llhttp's verdict is noted)")
    func badSeeds() {
        var refusedByBoth = 0
        var nioAccepts: [String] = []
        for seed in Self.bad {
            let ours = Self.ours(seed.bytes)
            #expect(ours.error != nil, "ours accepts a request it must refuse: \(seed), outcome: \(ours.requests)")
            let splits: Shared.Splits = seed.bytes.count > 1_000 ? .oneByteAndRandom(2) : .exhaustive
            if let why = Self.check(seed, splits: splits).failure {
                Issue.record("\(why)\n\(seed)")
            }
            if Self.nio(seed.bytes[...]).error == nil {
                nioAccepts.append(seed.name)
            } else {
                refusedByBoth += 1
            }
        }
        print(
            "ClientRequestParserDifferential bad seeds: \(Self.bad.count), refused by both: \(refusedByBoth), "
                + "refused by ours only: \(nioAccepts.count) \(nioAccepts)")
    }

    @Test("Known differences: extension methods, which ours reads as written and llhttp refuses")
    func knownDifferences() {
        for (seed, method) in Self.differences {
            let ours = Self.ours(seed.bytes)
            #expect(ours.error == nil, "\(seed): \(ours.error ?? "")")
            #expect(ours.requests.map(\.method) == [method], "\(seed)")
            #expect(ours.requests.map(\.ended) == [true], "\(seed)")
            switch Self.check(seed, splits: .exhaustive) {
            case .knownDifference: break
            case let verdict: Issue.record("expected the known difference, got \(verdict)\n\(seed)")
            }
            // Without the stand-in, NIO refuses it.
            #expect(Self.nio(seed.bytes[...]).error == "\(HTTPParserError.invalidMethod)", "\(seed)")
        }
    }

    @Test("Fuzzer: mutated inputs that ours accepts, NIO accepts with the same result, however they are split")
    func fuzz() {
        // Last run (debug, 5,000 inputs, 2.6 s): accepted by ours and NIO alike 1,573, known
        // differences (extension methods, NIO given a stand-in) 97, refused by ours only 115,
        // refused by both 3,215, disagreements 0. Two runs of 60,000 from other seeds
        // (after the fixes in `fixed`): disagreements 0.
        let start = ContinuousClock.now
        var random = Shared.SplitMix64(seed: 0xC11E_47_2E0_0E57)
        // Valid seeds twice as often; not the largest ones, which cost time and reach nothing more.
        let bases = (Self.good + Self.good + Self.bad + Self.fixed).filter { $0.bytes.count < 2_000 }
        let iterations = 5_000
        var accepted = 0
        var known = 0
        var refusedByOursOnly = 0
        var refusedByBoth = 0
        var failures = 0
        var kinds: [String: Int] = [:]
        var recorded = 0
        for iteration in 0..<iterations {
            let input = Self.mutate(bases[random.below(bases.count)], bases: bases, random: &random)
            let splits: Shared.Splits =
                iteration % 8 == 0 && input.bytes.count < 1_000 ? .oneByteAndRandom(random.next()) : .random(random.next())
            // One in four with a small limit, to reach the 414 and 431 paths with every split.
            let limit = iteration % 4 == 0 ? 16 + random.below(200) : 64 * 1024
            switch Self.check(input, splits: splits, maximumFieldBytes: limit) {
            case .accepted: accepted += 1
            case .knownDifference: known += 1
            case .refusedByOursOnly: refusedByOursOnly += 1
            case .refusedByBoth: refusedByBoth += 1
            case .mismatch(let why):
                failures += 1
                // One report per kind of disagreement (its first line), to keep the log readable.
                let kind = String(why.prefix { $0 != "\n" })
                kinds[kind, default: 0] += 1
                if kinds[kind]! <= 4, recorded < 60 {
                    recorded += 1
                    Issue.record("\(why)\n  limit: \(limit)\n\(input)")
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        print(
            "ClientRequestParserDifferential fuzz: \(iterations) inputs in \(elapsed): accepted by ours (and agreed): "
                + "\(accepted), known differences: \(known), refused by ours but accepted by NIO: \(refusedByOursOnly), "
                + "refused by both: \(refusedByBoth), disagreements: \(failures)"
                + kinds.sorted { $0.value > $1.value }.map { "\n  \($0.value) x \($0.key)" }.joined())
        #expect(failures == 0, "\(failures) of \(iterations) mutated inputs broke the property")
        // The fuzzer must exercise acceptance, not only refusals.
        #expect(accepted + failures > iterations / 10, "only \(accepted + failures) of \(iterations) mutated inputs were accepted by ours")
    }

    @Test("Fixed: targets in no RFC 9112 form, and tabs inside framing and Connection values, are not read more loosely than llhttp reads them")
    func fixedSeeds() {
        for seed in Self.fixed {
            if let why = Self.check(seed, splits: .exhaustive).failure { Issue.record("\(why)\n\(seed)") }
        }
    }

    @Test("A head over the limit is refused with the same error however it is split (a bare LF past the limit is not looked at)")
    func errorKindDoesNotDependOnReads() {
        let long = String(repeating: "a", count: 300)
        for text in [
            #"GET / HTTP/1.1\r\nX-A: "# + long + #"\nX-B: b\r\n\r\n"#,
            #"GET /"# + long + #"\n HTTP/1.1\r\n\r\n"#,
            #"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: "# + long + #"\n\r\n"#,
        ] {
            let input = Shared.bytes(text)
            let whole = Self.ours(input, maximumFieldBytes: 64)
            let bytes = Self.ours(input, pieces: Array(repeating: 1, count: input.count), maximumFieldBytes: 64)
            #expect(whole.error != nil)
            #expect(whole.kind == bytes.kind, "whole: \(whole.error ?? ""), byte by byte: \(bytes.error ?? "")")
        }
    }

    @Test("NIO's decoder does what this test assumes: an error after a close, a stop after an upgrade, the rest forwarded")
    func nioAssumptions() {
        // Data after `Connection: close` is an error (the requests before it are read).
        let close = Self.nio(Shared.bytes(#"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n"#)[...])
        #expect(close.requests.map(\.target) == ["/a"])
        #expect(close.error == "\(HTTPParserError.closedConnection)")
        // After `Upgrade` with `Connection: upgrade` it parses nothing, and forwards the rest when removed.
        let head = Shared.bytes(#"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"#)
        let upgrade = Self.nio((head + Shared.bytes(#"\x81\x00GET / HTTP/1.1\r\n\r\n"#))[...], removingTheDecoder: true)
        #expect(upgrade.error == nil)
        #expect(upgrade.requests.map(\.ended) == [true])
        #expect(upgrade.leftover == Shared.bytes(#"\x81\x00GET / HTTP/1.1\r\n\r\n"#))
        #expect(Self.nioStops(after: head))
        #expect(!Self.nioStops(after: Shared.bytes(#"GET / HTTP/1.1\r\n\r\n"#)))
        // `Upgrade` alone: it reads on.
        let alone = Self.nio(Shared.bytes(#"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /b HTTP/1.1\r\n\r\n"#)[...])
        #expect(alone.requests.map(\.target) == ["/", "/b"])
        // Empty lines before a request are skipped; a method it does not know is refused.
        #expect(Self.nio(Shared.bytes(#"\r\n\r\nGET / HTTP/1.1\r\n\r\n"#)[...]).requests.map(\.ended) == [true])
        #expect(Self.nio(Shared.bytes(#"FROB / HTTP/1.1\r\n\r\n"#)[...]).error == "\(HTTPParserError.invalidMethod)")
        #expect(Self.nio(Shared.bytes(#"POST / HTTP/1.1\r\n\r\n"#)[...]).requests.map(\.method) == [Self.standIn])
    }

    // MARK: The property

    enum Verdict {
        /// Ours accepts, NIO accepts with the same outcome, and splitting does not change ours.
        case accepted
        /// Ours accepts a request that NIO refuses for a listed reason (`differences`).
        case knownDifference(String)
        case refusedByOursOnly
        case refusedByBoth
        case mismatch(String)

        /// What a curated seed must not give: any disagreement.
        var failure: String? {
            switch self {
            case .mismatch(let why): why
            case .accepted, .knownDifference, .refusedByOursOnly, .refusedByBoth: nil
            }
        }
    }

    /// The piece sizes to feed `count` bytes in.
    static func pieces(_ count: Int, _ splits: Shared.Splits) -> [[Int]] {
        var pieces: [[Int]] = []
        switch splits {
        case .exhaustive:
            pieces.append(Array(repeating: 1, count: count))
            if count > 1 {
                for cut in 1..<count { pieces.append([cut, count - cut]) }
            }
        case .random(let seed), .oneByteAndRandom(let seed):
            if case .oneByteAndRandom = splits { pieces.append(Array(repeating: 1, count: count)) }
            var random = Shared.SplitMix64(seed: seed)
            var sizes: [Int] = []
            var left = count
            while left > 0 {
                let size = min(left, 1 + random.below(random.below(4) == 0 ? 3 : 40))
                sizes.append(size)
                left -= size
            }
            pieces.append(sizes)
        }
        return pieces
    }

    static func check(_ input: Case, splits: Shared.Splits, maximumFieldBytes: Int = 64 * 1024) -> Verdict {
        let whole = Self.ours(input.bytes, maximumFieldBytes: maximumFieldBytes)
        for sizes in Self.pieces(input.bytes.count, splits) {
            let split = Self.ours(input.bytes, pieces: sizes, maximumFieldBytes: maximumFieldBytes)
            if split != whole {
                let why =
                    "split invariance: ours gives a different outcome when the input arrives in pieces\n"
                    + "  pieces: \(sizes)\n  whole:  \(whole)\n  split:  \(split)"
                return .mismatch(why)
            }
        }

        // What ours consumed (every request it delivered, up to where it stopped, refused or
        // waits), NIO reads alike, without an error.
        let accepted = input.bytes[..<whole.consumed]
        var nio = Self.nio(Self.forNIO(accepted, whole)[...])
        let substituted = whole.requests.indices.filter { !Self.llhttpMethods.contains(whole.requests[$0].method) }
        for index in substituted where index < nio.requests.count && nio.requests[index].method == Self.standIn {
            nio.requests[index].method = whole.requests[index].method
        }
        if let error = nio.error {
            let why = "ours accepts, NIO refuses: \(error)\n  ours: \(whole.requests)\n  NIO before its error: \(nio.requests)"
            return .mismatch(why)
        }
        if nio.requests != whole.requests {
            return .mismatch("ours and NIO read different requests\n  ours: \(whole.requests)\n  NIO:  \(nio.requests)")
        }
        // Ours must not keep a connection that llhttp would close.
        for (index, request) in whole.requests.enumerated() where request.keepAlive && !nio.requests[index].keepAlive {
            let why = "keep-alive: ours keeps the connection after request \(index), NIO does not\n  ours: \(whole.requests)"
            return .mismatch(why)
        }
        // Ours stops after a request that closes the connection or asks for an upgrade, and only then.
        for (index, request) in whole.requests.enumerated() where request.ended && (!request.keepAlive || request.upgrade) {
            guard whole.stopped, index == whole.requests.count - 1 else {
                return .mismatch("ours reads on after request \(index), which closes or upgrades\n  ours: \(whole)")
            }
        }
        if whole.stopped, whole.error == nil, whole.requests.last.map({ !$0.ended || ($0.keepAlive && !$0.upgrade) }) ?? true {
            return .mismatch("ours stops without a reason\n  ours: \(whole)")
        }
        if whole.error == nil, whole.requests.last?.ended == true, !whole.stopped, Self.nioStops(after: Self.forNIO(accepted, whole)) {
            return .mismatch("NIO stops parsing after the last request (an upgrade), ours reads on\n  ours: \(whole)")
        }
        // Where both stop for an upgrade, the same bytes are left for the tunnel.
        if whole.error == nil, whole.stopped, whole.requests.last?.upgrade == true, whole.consumed < input.bytes.count,
            Self.nioStops(after: Self.forNIO(accepted, whole))
        {
            let full = Self.nio(Self.forNIO(input.bytes[...], whole)[...], removingTheDecoder: true)
            let unread = Array(input.bytes[whole.consumed...])
            if full.error != nil || full.requests.count != whole.requests.count || full.leftover != unread {
                return .mismatch(
                    "after an upgrade, ours and NIO leave different bytes\n  ours: \(whole.requests) unread "
                        + "\"\(Shared.escape(unread))\"\n  NIO:  \(full)")
            }
        }

        guard whole.error == nil else {
            return Self.nio(Self.forNIO(input.bytes[...], whole)[...]).error == nil ? .refusedByOursOnly : .refusedByBoth
        }
        return substituted.isEmpty ? .accepted : .knownDifference("extension method")
    }

    /// The method NIO gets in place of one llhttp does not know.
    static let standIn = "POST"

    /// `bytes` (the input's first bytes) with each request's method that llhttp does not know
    /// replaced by `standIn` (`differences`), so that NIO checks the rest of the request.
    static func forNIO(_ bytes: ArraySlice<UInt8>, _ ours: Outcome) -> [UInt8] {
        var bytes = Array(bytes)
        for request in ours.requests.reversed() where !Self.llhttpMethods.contains(request.method) {
            let end = request.start + request.method.utf8.count
            guard end <= bytes.count else { continue }
            bytes.replaceSubrange(request.start..<end, with: Array(Self.standIn.utf8))
        }
        return bytes
    }

    // MARK: Normalised outcomes

    struct Request: Equatable, CustomStringConvertible {
        /// The method as on the wire.
        var method: String
        var target: String
        var version: HTTPVersion
        var fields: [Shared.Field]
        var body: [UInt8] = []
        var ended = false
        /// Compared on their own (see `check`), not by `==`.
        var keepAlive: Bool
        /// Ours only.
        var upgrade = false
        /// Ours only.
        var framing: BodyFraming = .none
        /// Ours only: where its request line starts in the input.
        var start = 0
        /// Ours only: the field lines as received.
        var lines: [[UInt8]] = []

        static func == (a: Request, b: Request) -> Bool {
            a.method == b.method && a.target == b.target && a.version == b.version && a.fields == b.fields
                && a.body == b.body && a.ended == b.ended
        }

        var description: String {
            "\(self.method) \(Shared.escape(Array(self.target.utf8))) \(self.version) \(self.fields) body "
                + "\"\(Shared.escape(self.body))\"" + (self.ended ? " end" : " (no end)")
                + (self.keepAlive ? " keep-alive" : " close") + (self.upgrade ? " upgrade" : "")
        }
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var requests: [Request] = []
        var error: String?
        /// Ours: the kind of its error.
        var kind: ClientRequestError.Kind?
        /// Ours: the bytes consumed when it stopped, refused or waited for more.
        var consumed = 0
        /// Ours: `isStopped` after the input.
        var stopped = false
        /// NIO: what the decoder forwarded when it was removed.
        var leftover: [UInt8] = []

        static func == (a: Outcome, b: Outcome) -> Bool {
            // After an error the consumed count depends on the reads: the empty lines that a read
            // ending before the refused head lets the parser skip are consumed, or not.
            a.requests == b.requests && a.requests.map(\.keepAlive) == b.requests.map(\.keepAlive)
                && a.requests.map(\.upgrade) == b.requests.map(\.upgrade) && a.error == b.error && a.kind == b.kind
                && (a.error != nil || a.consumed == b.consumed) && a.stopped == b.stopped
        }

        var description: String {
            "\(self.requests)" + (self.error.map { " error: \($0)" } ?? "") + (self.stopped ? " stopped" : "")
                + " after \(self.consumed) bytes"
                + (self.leftover.isEmpty ? "" : " leftover \"\(Shared.escape(self.leftover))\"")
        }
    }

    /// Ours, fed `input` in pieces of `pieces` bytes (the whole of it at once by default), keeping
    /// the unread bytes for the next read as `DownstreamHandler` does. Also the unit tests' way
    /// to run the parser.
    static func ours(_ input: [UInt8], pieces: [Int]? = nil, maximumFieldBytes: Int = 64 * 1024) -> Outcome {
        var parser = ClientRequestParser(maximumFieldBytes: maximumFieldBytes)
        var outcome = Outcome()
        var buffer = ByteBuffer()
        func take(_ part: ClientRequestPart) {
            switch part {
            case .head(let head):
                if let last = outcome.requests.last, !last.ended {
                    outcome.error = outcome.error ?? "a head before the end of the previous request"
                }
                var fields: [Shared.Field] = []
                var lines: [[UInt8]] = []
                head.forEachField { name, value, line in
                    fields.append(
                        Shared.Field(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
                    lines.append(Array(line))
                }
                outcome.requests.append(
                    Request(
                        method: head.method.rawValue, target: head.target, version: head.version, fields: fields,
                        keepAlive: head.keepAlive, upgrade: head.upgrade, framing: head.framing, lines: lines))
            case .body(var bytes):
                if outcome.requests.isEmpty || outcome.requests[outcome.requests.count - 1].ended {
                    outcome.error = outcome.error ?? "body outside a request"
                } else {
                    outcome.requests[outcome.requests.count - 1].body += bytes.readBytes(length: bytes.readableBytes)!
                }
            case .end:
                if outcome.requests.isEmpty || outcome.requests[outcome.requests.count - 1].ended {
                    outcome.error = outcome.error ?? "end outside a request"
                } else {
                    outcome.requests[outcome.requests.count - 1].ended = true
                }
            }
        }
        var written = 0
        do {
            for size in pieces ?? [input.count] {
                buffer.writeBytes(input[written..<written + size])
                written += size
                while let part = try parser.next(&buffer) {
                    take(part)
                    outcome.consumed = written - buffer.readableBytes
                    if case .head(let head) = part {
                        let length = head.method.rawValue.utf8.count + head.target.utf8.count + 14 + head.fields.readableBytes
                        outcome.requests[outcome.requests.count - 1].start = outcome.consumed - length
                    }
                }
                outcome.consumed = written - buffer.readableBytes
            }
        } catch {
            outcome.error = outcome.error ?? "\(error.kind): \(error.description)"
            outcome.kind = error.kind
        }
        outcome.stopped = parser.isStopped
        return outcome
    }

    /// NIO's decoder in an `EmbeddedChannel`, fed `input` in one read (without the end of the
    /// connection: what ours does not read yet, NIO does not either). `removingTheDecoder`: then
    /// removes it, as an upgrade does, and collects the bytes it forwards (`.forwardBytes`).
    static func nio(_ input: ArraySlice<UInt8>, removingTheDecoder: Bool = false) -> Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var outcome = Outcome()
        func drain() {
            while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head):
                    // llhttp knows M-SEARCH, which NIO names MSEARCH.
                    let method = head.method == .MSEARCH ? "M-SEARCH" : head.method.rawValue
                    outcome.requests.append(
                        Request(
                            method: method, target: head.uri, version: head.version, fields: Shared.fields(head.headers),
                            keepAlive: head.isKeepAlive))
                case .body(var bytes):
                    if outcome.requests.isEmpty {
                        outcome.error = outcome.error ?? "body outside a request"
                    } else {
                        outcome.requests[outcome.requests.count - 1].body += bytes.readBytes(length: bytes.readableBytes)!
                    }
                case .end(let trailers):
                    if outcome.requests.isEmpty {
                        outcome.error = outcome.error ?? "end outside a request"
                    } else {
                        outcome.requests[outcome.requests.count - 1].ended = true
                    }
                    _ = trailers  // ours drops them; NIO's are not compared
                }
            }
        }
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)), name: "decoder")
            try channel.writeInbound(ByteBuffer(bytes: input))
            drain()
            if removingTheDecoder {
                channel.pipeline.syncOperations.removeHandler(name: "decoder", promise: nil)
                channel.embeddedEventLoop.run()
                while var bytes = try channel.readInbound(as: ByteBuffer.self) {
                    outcome.leftover += bytes.readBytes(length: bytes.readableBytes)!
                }
            }
        } catch {
            outcome.error = outcome.error ?? "\(error)"
        }
        drain()
        return outcome
    }

    /// Whether NIO, after `input` (which ends where a request does), has stopped parsing: a byte
    /// that no request can start with raises no error.
    static func nioStops(after input: [UInt8]) -> Bool {
        Self.nio((input + [0])[...]).error == nil
    }

    // MARK: Mutations

    /// Bytes that matter to the request line: separators, and what a target must not hold.
    static let targetAlphabet: [UInt8] = Array(" /?#%*:@!$&'()+,;=[]{}|\\^`\"<>~".utf8) + [0x00, 0x09, 0x0D, 0x0A, 0x7F, 0x80, 0xFF]

    /// Field lines that change the framing or the connection's fate, as clients get them wrong.
    static let lines: [[UInt8]] = [
        "Transfer-Encoding:  chunked", "Transfer-Encoding: chunked, chunked", "Transfer-Encoding: xchunked",
        "Transfer-Encoding: chunked ", "Transfer-Encoding: identity", "Content-Length: +1", "Content-Length: 1",
        "Content-Length: 01", "Content-Length:3", "Upgrade: websocket", "Connection: Upgrade", "Connection: close",
        "Connection: keep-alive", "Expect: 100-continue", "Host: a", "Trailer: X-T", "TE: trailers",
        "Transfer-Encoding:\tchunked", "Content-Length:\t1 ", "Connection: x, close", "Connection: upgrade, keep-alive",
    ].map { Array($0.utf8) }

    /// The response test's mutations (flips, insertions and deletions of grammar bytes, framing
    /// lines, duplicated and deleted lines, splices), and the request's own: the request line's
    /// parts, framing lines, truncation.
    static func mutate(_ base: Case, bases: [Case], random: inout Shared.SplitMix64) -> Case {
        if random.below(2) == 0 {
            let mutated = Shared.mutate(
                Shared.Case(base.name, bytes: base.bytes, []), bases: bases.map { Shared.Case($0.name, bytes: $0.bytes, []) },
                random: &random)
            return Case(mutated.name, bytes: mutated.bytes)
        }
        var bytes = base.bytes
        var name = base.name
        for _ in 0..<(1 + random.below(3)) {
            // The request line: method, SP, target, SP, version (of the first request).
            let firstSpace = bytes.firstIndex(of: UInt8(ascii: " ")) ?? 0
            let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\r")) ?? bytes.count
            switch random.below(7) {
            case 0:
                // A byte of the target (or around it) replaced or inserted.
                guard firstSpace < lineEnd else { continue }
                let at = firstSpace + random.below(lineEnd - firstSpace)
                let byte = Self.targetAlphabet[random.below(Self.targetAlphabet.count)]
                if random.below(2) == 0 { bytes[at] = byte } else { bytes.insert(byte, at: at) }
                name += " +target"
            case 1:
                // The version's digits.
                guard lineEnd >= 3, lineEnd <= bytes.count else { continue }
                let digits = Array("0123456789".utf8)
                bytes[lineEnd - 1 - 2 * random.below(2)] = digits[random.below(digits.count)]
                name += " +version"
            case 2:
                // The method.
                let methods = ["GET", "POST", "CONNECT", "HEAD", "get", "PURGE", "M-SEARCH", "OPTIONS", "PRI", "G"]
                bytes.replaceSubrange(0..<firstSpace, with: Array(methods[random.below(methods.count)].utf8))
                name += " +method"
            case 3, 4:
                // A framing line after the request line (or after any line).
                var starts = [0] + bytes.indices.filter { bytes[$0] == UInt8(ascii: "\n") }.map { $0 + 1 }
                if starts.count > 1, random.below(2) == 0 { starts = [starts[1]] }
                bytes.insert(contentsOf: Self.lines[random.below(Self.lines.count)] + [13, 10], at: starts[random.below(starts.count)])
                name += " +line"
            case 5:
                // Truncation.
                bytes = Array(bytes.prefix(random.below(bytes.count + 1)))
                name += " +truncated"
            default:
                // A chunk-size line's byte (the first hex digit after the head) replaced.
                let hex = Array("0123456789abcdefABCDEF;= \t\r\n\"".utf8)
                guard let index = bytes.lastIndex(where: { HTTPFieldLine.hexValue($0) != nil }) else { continue }
                bytes[index] = hex[random.below(hex.count)]
                name += " +hex"
            }
        }
        return Case(name, bytes: bytes)
    }
}

