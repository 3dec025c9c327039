// Shared machinery for the end-to-end suite: an in-process gateway in front of a counting echo
// upstream, a raw-TCP HTTP client, token minting and response parsing.
//
// Every test builds its own upstream(s) and gateway on ephemeral ports through `withGateway`,
// which shuts everything down afterwards, also when the test throws.

import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
import _CryptoExtras

@testable import Gateway

/// The parent of every end-to-end suite, so `swift test --filter EndToEnd` selects them all.
@Suite("EndToEnd")
struct EndToEnd {}

// MARK: - Errors and synchronisation

struct E2ETimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(self.what)" }
}

struct E2EFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body(&self.value)
    }

    var current: Value { self.withLock { $0 } }
}

/// A value behind a lock that tasks can wait on (bounded by a timeout) until a condition holds.
final class Watched<State>: @unchecked Sendable {
    private let lock = NSLock()
    private var state: State
    private var version = 0
    private var nextWaiter = 0
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]

    init(_ state: State) { self.state = state }

    /// Changes the state and wakes every waiter.
    @discardableResult
    func update<R>(_ body: (inout State) -> R) -> R {
        self.lock.lock()
        let result = body(&self.state)
        self.version &+= 1
        let woken = self.waiters
        self.waiters = [:]
        self.lock.unlock()
        for waiter in woken.values { waiter.resume() }
        return result
    }

    func read<R>(_ body: (State) -> R) -> R {
        self.lock.lock()
        defer { self.lock.unlock() }
        return body(self.state)
    }

    /// Waits until `check` returns a value (it may also consume from the state), or throws
    /// `E2ETimeout` after `timeout`.
    func wait<R>(timeout: Duration, for what: String, _ check: (inout State) -> R?) async throws -> R {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let (result, seen, id) = self.evaluate(check)
            if let result { return result }
            if ContinuousClock.now >= deadline { throw E2ETimeout(what: what) }
            let timer = Task { [weak self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                self?.wake(id)
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                self.lock.lock()
                if self.version != seen {
                    self.lock.unlock()
                    continuation.resume()
                } else {
                    self.waiters[id] = continuation
                    self.lock.unlock()
                }
            }
            timer.cancel()
        }
    }

    private func evaluate<R>(_ check: (inout State) -> R?) -> (R?, version: Int, waiter: Int) {
        self.lock.lock()
        defer { self.lock.unlock() }
        self.nextWaiter += 1
        return (check(&self.state), self.version, self.nextWaiter)
    }

    private func wake(_ id: Int) {
        self.lock.lock()
        let waiter = self.waiters.removeValue(forKey: id)
        self.lock.unlock()
        waiter?.resume()
    }
}

let e2eLogger = Logger(label: "authgate-e2e", factory: { _ in SwiftLogNoOpLogHandler() })

// MARK: - Tokens

enum Tokens {
    static let secret = "e2e-hs256-secret-0123456789-abcdefghijkl"
    static let partnerSecret = "e2e-partner-secret-0123456789-abcdefgh"
    static let issuer = "https://issuer.test"
    static let partnerIssuer = "https://partner.test"
    static let audience = "orders"

    /// One RSA key for the whole suite (generation is slow in debug builds).
    static let rsaKey: _RSA.Signing.PrivateKey = {
        do { return try _RSA.Signing.PrivateKey(keySize: .bits2048) } catch {
            fatalError("RSA key generation failed: \(error)")
        }
    }()
    static let rsaPublicPEM: String = rsaKey.publicKey.pemRepresentation

    static var now: Int { Int(Date().timeIntervalSince1970) }

    static func number(_ value: Int) -> JSONValue { .number(String(value)) }

    /// Registered claims the standard provider accepts, plus `extra`.
    /// Pass nil to leave a claim out.
    static func claims(
        sub: String? = "alice", iss: String? = issuer, aud: JSONValue? = .string(audience),
        exp: JSONValue? = number(Tokens.now + 3600), extra: [(String, JSONValue)] = []
    ) -> JSONObject {
        var members: [(name: String, value: JSONValue)] = []
        if let sub { members.append(("sub", .string(sub))) }
        if let iss { members.append(("iss", .string(iss))) }
        if let aud { members.append(("aud", aud)) }
        if let exp { members.append(("exp", exp)) }
        members.append(("iat", number(Tokens.now - 10)))
        for (name, value) in extra { members.append((name, value)) }
        return JSONObject(members)
    }

    static func hs256(_ claims: JSONObject, kid: String? = "hs-1", secret: String = Tokens.secret) throws -> String {
        try TokenSigner(algorithm: .hs256, key: .hmac(SymmetricKey(data: Array(secret.utf8))), kid: kid)
            .sign(claims: claims)
    }

    static func rs256(_ claims: JSONObject, kid: String? = "rs-1") throws -> String {
        try TokenSigner(algorithm: .rs256, key: .rsa(rsaKey), kid: kid).sign(claims: claims)
    }

    /// A valid HS256 token for `sub` with `extra` claims.
    static func valid(sub: String = "alice", _ extra: [(String, JSONValue)] = []) throws -> String {
        try hs256(claims(sub: sub, extra: extra))
    }

    /// A partner-provider token.
    static func partner(sub: String = "pat") throws -> String {
        try hs256(claims(sub: sub, iss: partnerIssuer, aud: nil), kid: "hs-partner", secret: partnerSecret)
    }

    /// `header.payload.signature` with raw JSON texts, for unsigned or hand-made tokens.
    static func raw(header: String, payload: JSONObject, signature: [UInt8] = []) -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(JSONValue.object(payload).compactText.utf8))
            + "." + Base64URL.encode(signature)
    }
}

// MARK: - Configuration

enum ConfigJSON {
    static let environment = ["E2E_SECRET": Tokens.secret, "E2E_PARTNER_SECRET": Tokens.partnerSecret]

    static let providers = """
        [
          {"name": "main", "issuer": "\(Tokens.issuer)", "audiences": ["\(Tokens.audience)"],
           "keys": [
             {"kid": "hs-1", "alg": "HS256", "secret_env": "E2E_SECRET"},
             {"kid": "rs-1", "alg": "RS256", "public_key_file": "keys/rs-1.pub.pem"}
           ]},
          {"name": "partner", "issuer": "\(Tokens.partnerIssuer)",
           "keys": [{"kid": "hs-partner", "alg": "HS256", "secret_env": "E2E_PARTNER_SECRET"}]}
        ]
        """

    static let identityHeaders = """
        {"sub": "X-Auth-Subject", "role": "X-Auth-Role", "groups": "X-Auth-Groups", "meta": "X-Auth-Meta", "level": "X-Auth-Level"}
        """

    /// A full gateway.json with the standard providers and identity headers.
    /// `extra` are top-level members as raw JSON (`"forward_token": false`).
    static func make(routes: [String], extra: [String] = []) -> String {
        var members = [
            "\"providers\": \(providers)",
            "\"identity_headers\": \(identityHeaders)",
        ]
        // Tests run side by side: no fixed admin port, and no access log on standard output
        // unless a test asks for them.
        if !extra.contains(where: { $0.hasPrefix("\"admin_listen\"") }) { members.append("\"admin_listen\": null") }
        if !extra.contains(where: { $0.hasPrefix("\"access_log\"") }) { members.append("\"access_log\": {\"enabled\": false}") }
        members.append(contentsOf: extra)
        members.append("\"routes\": [\n    \(routes.joined(separator: ",\n    "))\n  ]")
        return "{\n  " + members.joined(separator: ",\n  ") + "\n}\n"
    }

    /// One route object.
    static func route(
        _ prefix: String, _ upstream: TestUpstream, auth: String? = nil, requireClaims: String? = nil,
        providers: [String]? = nil
    ) -> String {
        var fields = ["\"path_prefix\": \"\(prefix)\"", "\"upstream\": \"\(upstream.url)\""]
        if let auth { fields.append("\"auth\": \"\(auth)\"") }
        if let requireClaims { fields.append("\"require_claims\": \(requireClaims)") }
        if let providers {
            fields.append("\"providers\": [\(providers.map { "\"\($0)\"" }.joined(separator: ", "))]")
        }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    static func load(_ json: String) throws -> GatewayConfig {
        let pem = Tokens.rsaPublicPEM
        let loader = ConfigLoader(
            environment: environment, baseDirectory: "/e2e",
            readFile: { path in
                guard path.hasSuffix("rs-1.pub.pem") else { return try FileReader.read(path) }  // real files
                return Array(pem.utf8)
            })
        return try loader.load(Array(json.utf8))
    }
}

// MARK: - Requests

/// A raw HTTP/1.x request text. Adds `Host` (unless nil) and, with a body, `Content-Length`.
func httpRequest(
    _ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String? = nil,
    host: String? = "gateway.test", version: String = "HTTP/1.1"
) -> String {
    var text = "\(method) \(target) \(version)\r\n"
    if let host { text += "Host: \(host)\r\n" }
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
    text += "\r\n"
    if let body { text += body }
    return text
}

func bearer(_ token: String, scheme: String = "Bearer") -> (String, String) {
    ("Authorization", "\(scheme) \(token)")
}

// MARK: - Responses

struct HTTPResponse: Sendable, CustomStringConvertible {
    var version: String
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return self.headers.filter { $0.name.lowercased() == lower }.map(\.value)
    }

    func header(_ name: String) -> String? { self.values(name).first }

    var text: String { String(decoding: self.body, as: UTF8.self) }

    var closesConnection: Bool {
        self.values("connection").contains { $0.lowercased().contains("close") }
    }

    func json() throws -> JSONObject {
        guard let object = try JSONParser.parse(self.body).objectValue else {
            throw E2EFailure("response body is not a JSON object: \(self.text)")
        }
        return object
    }

    /// The echo upstream's description of the request it received.
    func echo() throws -> EchoView { try EchoView(self) }

    var description: String {
        let head = self.headers.map { "\($0.name): \($0.value)" }.joined(separator: "; ")
        let shown = self.body.count > 512 ? String(decoding: self.body.prefix(512), as: UTF8.self) + "..." : self.text
        return "\(self.version) \(self.status) \(self.reason) [\(head)] \(shown)"
    }
}

/// What the echo upstream says it received.
struct EchoView: Sendable {
    var method: String
    var path: String
    var query: String?
    /// Lower-cased name → values in order.
    var headers: [String: [String]]
    var body: String
    var bodyBytes: Int

    init(_ response: HTTPResponse) throws {
        let object = try response.json()
        guard let method = object["method"]?.stringValue, let path = object["path"]?.stringValue,
            let headerObject = object["headers"]?.objectValue, let bodyBytes = object["body_bytes"]?.doubleValue
        else {
            throw E2EFailure("not an echo response: \(response)")
        }
        self.method = method
        self.path = path
        self.query = object["query"]?.stringValue
        self.body = object["body"]?.stringValue ?? ""
        self.bodyBytes = Int(bodyBytes)
        var headers: [String: [String]] = [:]
        for member in headerObject.members {
            headers[member.name.lowercased()] = (member.value.arrayValue ?? []).compactMap(\.stringValue)
        }
        self.headers = headers
    }

    func values(_ name: String) -> [String] { self.headers[name.lowercased()] ?? [] }
}

enum ResponseParser {
    enum Outcome {
        case incomplete
        case complete(HTTPResponse, consumed: Int)
        case invalid(String)
    }

    private static let crlf: [UInt8] = [13, 10]
    private static let headTerminator: [UInt8] = [13, 10, 13, 10]

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var index = start
        let last = bytes.count - needle.count
        while index <= last {
            if bytes[index] == needle[0] {
                var match = true
                for offset in 1..<needle.count where bytes[index + offset] != needle[offset] {
                    match = false
                    break
                }
                if match { return index }
            }
            index += 1
        }
        return nil
    }

    /// Parses one response from the start of `bytes`. `closed`: the peer has closed (a body
    /// without framing ends there). `headRequest`: the response to a HEAD has no body.
    static func parse(_ bytes: [UInt8], closed: Bool, headRequest: Bool = false) -> Outcome {
        guard let headEnd = find(headTerminator, in: bytes, from: 0) else { return .incomplete }
        let lines = String(decoding: bytes[0..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            return .invalid("bad status line: \(lines[0])")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return .invalid("bad header line: \(line)") }
            headers.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = HTTPResponse(
            version: String(statusParts[0]), status: status,
            reason: statusParts.count > 2 ? String(statusParts[2]) : "", headers: headers, body: [])
        var position = headEnd + 4
        if status < 200 || status == 204 || status == 304 || headRequest {
            return .complete(response, consumed: position)
        }
        let transferEncoding = response.values("transfer-encoding").joined(separator: ",").lowercased()
        if transferEncoding.contains("chunked") {
            var body: [UInt8] = []
            while true {
                guard let lineEnd = find(crlf, in: bytes, from: position) else { return .incomplete }
                let sizeLine = String(decoding: bytes[position..<lineEnd], as: UTF8.self)
                let sizeText = sizeLine.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                    return .invalid("bad chunk size line: \(sizeLine)")
                }
                position = lineEnd + 2
                if size == 0 {
                    while true {  // trailers, up to the empty line
                        guard let end = find(crlf, in: bytes, from: position) else { return .incomplete }
                        let empty = end == position
                        position = end + 2
                        if empty { break }
                    }
                    response.body = body
                    return .complete(response, consumed: position)
                }
                guard bytes.count >= position + size + 2 else { return .incomplete }
                body.append(contentsOf: bytes[position..<(position + size)])
                guard bytes[position + size] == 13, bytes[position + size + 1] == 10 else {
                    return .invalid("chunk not followed by CRLF")
                }
                position += size + 2
            }
        }
        if let lengthText = response.header("content-length") {
            guard let length = Int(lengthText), length >= 0 else { return .invalid("bad content-length \(lengthText)") }
            guard bytes.count >= position + length else { return .incomplete }
            response.body = Array(bytes[position..<(position + length)])
            return .complete(response, consumed: position + length)
        }
        // Delimited by close.
        guard closed else { return .incomplete }
        response.body = Array(bytes[position...])
        return .complete(response, consumed: bytes.count)
    }
}

// MARK: - Raw TCP client

struct ClientInbox {
    var bytes: [UInt8] = []
    var closed = false
    var error: String?
}

/// Collects every byte a connection receives into a `Watched<ClientInbox>`.
final class ByteCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let inbox: Watched<ClientInbox>

    init(inbox: Watched<ClientInbox>) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        let bytes = Array(buffer.readableBytesView)
        self.inbox.update { $0.bytes.append(contentsOf: bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inbox.update { $0.closed = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.inbox.update { $0.error = "\(error)" }
        context.close(promise: nil)
    }
}

enum ClientError: Error, CustomStringConvertible {
    case closedBeforeResponse(partial: String)
    case invalidResponse(String)

    var description: String {
        switch self {
        case .closedBeforeResponse(let partial): "connection closed before a complete response (got \(partial.debugDescription))"
        case .invalidResponse(let message): "invalid response: \(message)"
        }
    }
}

/// A TCP connection that sends exact bytes and parses responses from what comes back.
final class RawClient: Sendable {
    let channel: any Channel
    let inbox: Watched<ClientInbox>

    private init(channel: any Channel, inbox: Watched<ClientInbox>) {
        self.channel = channel
        self.inbox = inbox
    }

    /// - Parameter tls: speak TLS with this client context (the server's name is checked against
    ///   `serverName`, or its IP address without one).
    static func connect(
        port: Int, host: String = "127.0.0.1", tls: NIOSSLContext? = nil, serverName: String? = nil
    ) async throws -> RawClient {
        let inbox = Watched(ClientInbox())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(inbox: inbox))
                }
            }
            .connect(host: host, port: port)
            .get()
        return RawClient(channel: channel, inbox: inbox)
    }

    func send(_ text: String) async throws {
        try await self.send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Writes without waiting; for bodies a server may legitimately stop reading.
    func sendIgnoringErrors(_ text: String) async {
        try? await self.channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Reads the next complete response (consuming its bytes).
    func readResponse(timeout: Duration = .seconds(10), headRequest: Bool = false) async throws -> HTTPResponse {
        let outcome: Result<HTTPResponse, ClientError> = try await self.inbox.wait(
            timeout: timeout, for: "an HTTP response"
        ) { inbox in
            switch ResponseParser.parse(inbox.bytes, closed: inbox.closed, headRequest: headRequest) {
            case .complete(let response, let consumed):
                inbox.bytes.removeFirst(consumed)
                return .success(response)
            case .invalid(let message):
                return .failure(.invalidResponse(message))
            case .incomplete:
                if inbox.closed {
                    return .failure(.closedBeforeResponse(partial: String(decoding: inbox.bytes, as: UTF8.self)))
                }
                return nil
            }
        }
        return try outcome.get()
    }

    /// Whether the peer closed the connection within `timeout`.
    func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        do {
            return try await self.inbox.wait(timeout: timeout, for: "the connection to close") { $0.closed ? true : nil }
        } catch {
            return false
        }
    }

    /// Bytes received and not yet consumed by `readResponse`.
    var unreadBytes: [UInt8] { self.inbox.read { $0.bytes } }

    var isClosed: Bool { self.inbox.read { $0.closed } }

    func close() async {
        try? await self.channel.close().get()
    }
}

// MARK: - Upstream

struct UpstreamStats {
    /// Accepted TCP connections.
    var connections = 0
    /// Request heads received.
    var heads = 0
    /// Requests received completely (end of body).
    var ends = 0
    /// Targets of the request heads, in order.
    var targets: [String] = []
    /// Names of request trailer fields received (chunked requests), lower-cased.
    var trailerNames: [String] = []
    /// Accepted TCP connections that have closed since.
    var closedConnections = 0
}

/// Counts closed upstream connections; first in the pipeline, so it sees raw bytes and never
/// touches them (also after a WebSocket upgrade).
final class CloseCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let stats: Watched<UpstreamStats>

    init(stats: Watched<UpstreamStats>) { self.stats = stats }

    func channelInactive(context: ChannelHandlerContext) {
        self.stats.update { $0.closedConnections += 1 }
        context.fireChannelInactive()
    }
}

/// Counts requests before they reach the echo handler.
final class RequestCounter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    let stats: Watched<UpstreamStats>

    init(stats: Watched<UpstreamStats>) { self.stats = stats }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.stats.update { $0.heads += 1; $0.targets.append(head.uri) }
        case .body: break
        case .end(let trailers):
            let names = trailers.map { $0.map { $0.name.lowercased() } } ?? []
            self.stats.update {
                $0.ends += 1
                $0.trailerNames.append(contentsOf: names)
            }
        }
        context.fireChannelRead(data)
    }
}

/// The echo upstream (`EchoHandler`, with its special paths), counting connections and requests.
final class TestUpstream: Sendable {
    let serverChannel: any Channel
    let stats: Watched<UpstreamStats>
    private let accepted: Locked<[any Channel]>
    let port: Int
    let tls: Bool

    private init(
        serverChannel: any Channel, stats: Watched<UpstreamStats>, accepted: Locked<[any Channel]>, tls: Bool
    ) throws {
        self.serverChannel = serverChannel
        self.stats = stats
        self.accepted = accepted
        self.tls = tls
        guard let port = serverChannel.localAddress?.port else { throw E2EFailure("upstream has no port") }
        self.port = port
    }

    var url: String { "\(self.tls ? "https" : "http")://127.0.0.1:\(self.port)" }

    /// - Parameter tls: serve https with this context.
    static func start(tls: NIOSSLContext? = nil) async throws -> TestUpstream {
        let stats = Watched(UpstreamStats())
        let accepted = Locked<[any Channel]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { channel in
                stats.update { $0.connections += 1 }
                accepted.withLock { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.addHandler(CloseCounter(stats: stats))
                    try EchoServer.configure(channel, before: [RequestCounter(stats: stats)])
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return try TestUpstream(serverChannel: channel, stats: stats, accepted: accepted, tls: tls != nil)
    }

    var snapshot: UpstreamStats { self.stats.read { $0 } }

    /// Waits until at least `count` request heads arrived.
    func waitForHeads(_ count: Int, timeout: Duration = .seconds(5)) async throws {
        try await self.stats.wait(timeout: timeout, for: "\(count) upstream request(s)") { $0.heads >= count ? () : nil }
    }

    /// Closes every connection the upstream accepted (as an upstream closing idle keep-alives).
    func closeAcceptedConnections() async {
        let channels = self.accepted.withLock { list in
            defer { list = [] }
            return list
        }
        for channel in channels { try? await channel.close().get() }
    }

    func stop() async {
        try? await self.serverChannel.close().get()
        await self.closeAcceptedConnections()
    }
}

// MARK: - Gateway

/// A running gateway with its upstreams, for one test.
final class GatewayEnv: Sendable {
    let server: GatewayServer
    let port: Int
    let upstreams: [TestUpstream]
    private let clients = Locked<[RawClient]>([])
    private let shutDown = Locked(false)

    init(server: GatewayServer, port: Int, upstreams: [TestUpstream]) {
        self.server = server
        self.port = port
        self.upstreams = upstreams
    }

    var upstream: TestUpstream { self.upstreams[0] }

    /// A new client connection to the gateway (TLS with `tls`), closed when the test ends.
    func connect(tls: NIOSSLContext? = nil, serverName: String? = nil) async throws -> RawClient {
        let client = try await RawClient.connect(port: self.port, tls: tls, serverName: serverName)
        self.clients.withLock { $0.append(client) }
        return client
    }

    /// Sends `request` on a new connection and reads one response.
    func send(_ request: String, timeout: Duration = .seconds(10)) async throws -> HTTPResponse {
        let client = try await self.connect()
        try await client.send(request)
        return try await client.readResponse(timeout: timeout)
    }

    /// Total request heads seen by all upstreams.
    var upstreamRequests: Int { self.upstreams.reduce(0) { $0 + $1.snapshot.heads } }

    func shutdownGateway(drainTimeout: TimeAmount = .seconds(5)) async {
        let already = self.shutDown.withLock { value in
            defer { value = true }
            return value
        }
        if !already { await self.server.shutdown(drainTimeout: drainTimeout) }
    }

    func tearDown() async {
        for client in self.clients.withLock({ $0 }) { await client.close() }
        await self.shutdownGateway(drainTimeout: .seconds(2))
        for upstream in self.upstreams { await upstream.stop() }
    }
}

/// Starts `upstreamCount` upstreams and a gateway configured by `config` (given the upstreams),
/// runs `body`, and tears everything down, also when `body` throws.
/// `upstreamTLS`: the upstreams serve https with this context.
func withGateway(
    upstreams upstreamCount: Int = 1, upstreamTLS: NIOSSLContext? = nil, config: ([TestUpstream]) -> String,
    _ body: (GatewayEnv) async throws -> Void
) async throws {
    var upstreams: [TestUpstream] = []
    do {
        for _ in 0..<upstreamCount { upstreams.append(try await TestUpstream.start(tls: upstreamTLS)) }
    } catch {
        for upstream in upstreams { await upstream.stop() }
        throw error
    }
    let env: GatewayEnv
    do {
        let gatewayConfig = try ConfigJSON.load(config(upstreams))
        let server = try GatewayServer(config: gatewayConfig, group: MultiThreadedEventLoopGroup.singleton, logger: e2eLogger)
        let address = try await server.start(listen: ListenAddress(host: "127.0.0.1", port: 0))
        guard let port = address.port else { throw E2EFailure("gateway has no port") }
        env = GatewayEnv(server: server, port: port, upstreams: upstreams)
    } catch {
        for upstream in upstreams { await upstream.stop() }
        throw error
    }
    do {
        try await body(env)
    } catch {
        await env.tearDown()
        throw error
    }
    await env.tearDown()
}

/// The common single-upstream layout: `/public` (auth none), `/admin` (role admin),
/// `/partner` (partner provider only) and `/` (auth required).
func standardConfig(_ upstreams: [TestUpstream], extra: [String] = []) -> String {
    let u = upstreams[0]
    return ConfigJSON.make(
        routes: [
            ConfigJSON.route("/public", u, auth: "none"),
            ConfigJSON.route("/admin", u, requireClaims: #"{"role": ["admin"]}"#),
            ConfigJSON.route("/partner", u, providers: ["partner"]),
            ConfigJSON.route("/", u),
        ], extra: extra)
}

/// A single route `/` with auth none: for framing and transport tests.
func openConfig(_ upstreams: [TestUpstream], extra: [String] = []) -> String {
    ConfigJSON.make(routes: [ConfigJSON.route("/", upstreams[0], auth: "none")], extra: extra)
}

// MARK: - Process memory and large transfers

enum ProcessMemory {
    /// Resident set size of this process (Linux), or nil where unavailable.
    static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.dropFirst("VmRSS:".count).filter(\.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }

    /// Runs `body` while sampling RSS; returns its result and the peak growth over the start.
    static func measuringGrowth<R>(_ body: () async throws -> R) async throws -> (R, growth: Int?) {
        guard let baseline = residentBytes() else { return (try await body(), nil) }
        let sampler = Task {
            var peak = baseline
            while !Task.isCancelled {
                peak = max(peak, residentBytes() ?? 0)
                try? await Task.sleep(for: .milliseconds(25))
            }
            return peak
        }
        let result: R
        do {
            result = try await body()
        } catch {
            sampler.cancel()
            _ = await sampler.value
            throw error
        }
        sampler.cancel()
        let peak = max(await sampler.value, residentBytes() ?? 0)
        return (result, peak - baseline)
    }
}

struct DownloadResult: Sendable {
    var status: Int
    var bodyBytes: Int
    /// Every received byte was `x` (checked on the first and last byte of each read).
    var looksLikeStream: Bool
}

/// Counts a response body without keeping it.
final class DownloadCounter: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<DownloadResult>
    private var result = DownloadResult(status: 0, bodyBytes: 0, looksLikeStream: true)
    private var done = false

    init(promise: EventLoopPromise<DownloadResult>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.result.status = Int(head.status.code)
        case .body(let buffer):
            self.result.bodyBytes += buffer.readableBytes
            if let first = buffer.readableBytesView.first, let last = buffer.readableBytesView.last,
                first != UInt8(ascii: "x") || last != UInt8(ascii: "x")
            {
                self.result.looksLikeStream = false
            }
        case .end:
            self.finish(.success(self.result))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(.failure(E2EFailure("connection closed after \(self.result.bodyBytes) body bytes")))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.finish(.failure(error))
        context.close(promise: nil)
    }

    func finish(_ result: Result<DownloadResult, any Error>) {
        guard !self.done else { return }
        self.done = true
        self.promise.completeWith(result)
    }
}

/// GETs `target` through the gateway with NIO's HTTP client codec, counting the body.
func download(port: Int, target: String, headers: [(String, String)] = [], timeout: TimeAmount) async throws
    -> DownloadResult
{
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let promise = loop.makePromise(of: DownloadResult.self)
    let channel = try await ClientBootstrap(group: loop)
        .connectTimeout(.seconds(5))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(DownloadCounter(promise: promise))
            }
        }
        .connect(host: "127.0.0.1", port: port)
        .get()
    let timer = loop.scheduleTask(in: timeout) {
        promise.fail(E2ETimeout(what: "download of \(target)"))
        channel.close(promise: nil)
    }
    var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
    head.headers.add(name: "Host", value: "gateway.test")
    for (name, value) in headers { head.headers.add(name: name, value: value) }
    channel.write(HTTPClientRequestPart.head(head), promise: nil)
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    defer { timer.cancel() }
    do {
        let result = try await promise.futureResult.get()
        try? await channel.close().get()
        return result
    } catch {
        try? await channel.close().get()
        throw error
    }
}

/// Writes `total` bytes of body on `client` in 1 MiB writes, waiting for each (backpressure).
/// `chunked` frames every write as one chunk and ends with the last chunk.
func uploadBody(on client: RawClient, total: Int, chunked: Bool) async throws {
    let slab = ByteBuffer(repeating: UInt8(ascii: "u"), count: 1 << 20)
    var remaining = total
    while remaining > 0 {
        let size = min(remaining, slab.readableBytes)
        let piece = size == slab.readableBytes ? slab : slab.getSlice(at: 0, length: size)!
        if chunked {
            client.channel.write(ByteBuffer(string: String(size, radix: 16) + "\r\n"), promise: nil)
            client.channel.write(piece, promise: nil)
            try await client.channel.writeAndFlush(ByteBuffer(string: "\r\n")).get()
        } else {
            try await client.channel.writeAndFlush(piece).get()
        }
        remaining -= size
    }
    if chunked { try await client.channel.writeAndFlush(ByteBuffer(string: "0\r\n\r\n")).get() }
}

/// Elapsed wall time of `body`.
func timed<R>(_ body: () async throws -> R) async rethrows -> (R, Duration) {
    let start = ContinuousClock.now
    let result = try await body()
    return (result, ContinuousClock.now - start)
}
