import Logging
import NIOCore
import NIOHTTP1

/// How a request's body is framed, as its head declares it.
public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

/// What to do with a request, decided from its head alone.
public enum RequestPlan: Sendable {
    /// Answer locally; nothing reaches an upstream.
    case respond(LocalResponse, reason: String)
    /// Forward to `upstream` with the rewritten head.
    case forward(ForwardPlan)
    /// The token names a key the providers at these indices might fetch: refresh their remote
    /// key sets (`KeyRegistry.refresh`), then plan again with `allowKeyRefresh: false`.
    case refreshKeys([Int])
}

public struct ForwardPlan: Sendable {
    /// The route's upstream (read from the route, not copied into each plan: a copy retains and
    /// releases each of its strings).
    public var upstream: Upstream { self.route.upstream }
    /// The rewritten head, serialized (`HeaderRewriter.requestHead`).
    public var head: ForwardHead
    public var route: Route
    /// The client asked for `100 Continue` before sending its body.
    public var expectContinue: Bool
    public var framing: BodyFraming
    /// The verified subject, for logs (nil on `auth: none` routes).
    public var subject: String?
    /// Close the client connection after this exchange (a request with an `Upgrade` header: NIO's
    /// parser stops reading the connection after one). A tunnelled upgrade that the upstream
    /// switches becomes a tunnel instead; any other answer is relayed, then the connection closes.
    public var closeConnection: Bool
    /// The `Upgrade` value forwarded when the request is tunnelled (`UpgradeDecision.tunnel`);
    /// such a request gets a dedicated upstream connection. Nil for every other request.
    public var upgrade: String?
}

/// What the planner learnt about a request besides the plan, for the access log and metrics.
public struct PlanContext {
    /// The route the request matched (nil when it was refused before routing).
    public var route: Route?
    /// The normalised path (nil when the target was refused).
    public var path: String?
    /// The request id, the client's or generated; nil when request ids are off.
    public var requestID: RequestID?
    /// Where generated request ids come from (one per event loop).
    public let generator: RequestIDGenerator?
    /// A buffer to write the forwarded head into instead of allocating one: the connection's
    /// previous head, whose memory is reused when nothing else holds it any more
    /// (`ByteBuffer.clear(minimumCapacity:)` allocates anew otherwise). Taken by the planner.
    public var headBuffer: ByteBuffer?
    /// The connection's last Host value, reused when the next has the same bytes (a keep-alive
    /// connection sends the same Host on every request). The handler keeps it between requests.
    var hostMemo = StringMemo()

    public init(generator: RequestIDGenerator?) {
        self.generator = generator
    }
}

/// Everything the proxy needs to decide about a request, shared read-only by every connection.
/// A class, not a struct: the handler calls `plan` through its settings on every request, and
/// a struct holding the whole configuration was copied (every field retained) for each call.
public final class RequestPlanner: Sendable {
    public let config: GatewayConfig
    public let routes: RouteTable
    public let keys: KeyRegistry
    public let extractor: TokenExtractor
    /// Removed from requests like identity headers (`HeaderRewriter.foldedNames`).
    private let identityHeaderNames: [[UInt8]]

    public init(config: GatewayConfig, keys: KeyRegistry) {
        self.config = config
        self.routes = RouteTable(config.routes)
        self.keys = keys
        self.extractor = TokenExtractor(source: config.token)
        // The request id header is removed like an identity header, then set by the gateway.
        self.identityHeaderNames = HeaderRewriter.foldedNames(
            config.identityHeaders.map(\.header) + (config.requestID.enabled ? [config.requestID.header] : []))
    }

    /// A planner with the configuration's keys only (remote sets are never fetched).
    public convenience init(config: GatewayConfig) {
        self.init(config: config, keys: KeyRegistry(providers: config.providers, fetcher: nil, logger: .init(label: "authgate")))
    }

    /// Decides what to do with a request: validate framing, normalise, route, authenticate,
    /// authorise, rewrite. Pure: the clock and the client address are parameters.
    /// - Parameters:
    ///   - overTLS: the request came over TLS (`X-Forwarded-Proto: https`).
    ///   - cache: this event loop's verified-token cache, if any.
    public func plan(
        _ head: HTTPRequestHead, clientAddress: String?, overTLS: Bool = false, now: Double,
        allowKeyRefresh: Bool = true, cache: TokenCache? = nil
    ) -> RequestPlan {
        var context = PlanContext(generator: nil)
        return self.plan(
            head, clientAddress: clientAddress, overTLS: overTLS, now: now, allowKeyRefresh: allowKeyRefresh, cache: cache,
            context: &context)
    }

    /// `plan(_:clientAddress:now:allowKeyRefresh:cache:)`, also filling `context` with the route,
    /// the normalised path and the request id (generated with `context.generator` when the client
    /// sent none; without a generator, no id is generated).
    ///
    /// A typed head (tests, tools) is serialized and read by `ClientRequestParser` first, as the
    /// proxy reads a client's bytes: what the parser refuses gets the answer the proxy gives it.
    public func plan(
        _ head: HTTPRequestHead, clientAddress: String?, overTLS: Bool = false, now: Double, allowKeyRefresh: Bool = true,
        cache: TokenCache? = nil, context: inout PlanContext
    ) -> RequestPlan {
        switch ClientRequestHead.parsing(head, maximumFieldBytes: self.config.limits.maxHeaderBytes) {
        case .success(let parsed):
            return self.plan(
                parsed, clientAddress: clientAddress, overTLS: overTLS, now: now, allowKeyRefresh: allowKeyRefresh,
                cache: cache, context: &context)
        case .failure(let error):
            return .respond(error.response, reason: error.reason)
        }
    }

    /// Decides what to do with a request as `ClientRequestParser` read it (the proxy's path: no
    /// `String` per header; the parser checked the framing).
    public func plan(
        _ head: ClientRequestHead, clientAddress: String?, overTLS: Bool = false, now: Double,
        allowKeyRefresh: Bool = true, cache: TokenCache? = nil, context: inout PlanContext
    ) -> RequestPlan {
        let requestIDs = self.config.requestID
        let summary = HeadSummary(
            head, tokenHeader: self.config.token.header, requestIDHeader: requestIDs.enabled ? requestIDs.header : nil,
            hostMemo: &context.hostMemo)
        if requestIDs.enabled {
            if requestIDs.trustIncoming, summary.requestIDCount == 1, let incoming = summary.requestID,
                RequestID.isAcceptable(incoming)
            {
                context.requestID = .given(incoming)
            } else {
                context.requestID = context.generator?.next()
            }
        }

        // 1. Host (RFC 9112 §3.2). The framing was checked by the parser (§6.3): ambiguity there
        // is how requests get smuggled.
        let framing = head.framing
        guard summary.hostCount == 1, let host = summary.host, !host.isEmpty else {
            return .respond(
                .badRequest(summary.hostCount == 0 ? "missing Host header" : "repeated Host header"), reason: "bad_host")
        }
        var expectContinue = false
        if summary.expectCount > 0 {
            guard summary.expectCount == 1, let expect = summary.expect,
                HeaderRules.equalsIgnoringCase(expect, "100-continue")
            else {
                var response = LocalResponse.expectationFailed
                response.close = true
                return .respond(response, reason: "bad_expect")
            }
            expectContinue = true
        }
        // NIO's parser hands over the connection after a request it sees as an upgrade, so the
        // connection cannot carry another request: answer this one, then close.
        let upgrade = head.upgrade
        let bodyExpected = framing != .none && framing != .contentLength(0) || upgrade
        if head.method.isTRACE, framing != .none, framing != .contentLength(0) {
            // RFC 9110 §9.3.8: a TRACE request has no content. Some servers read none even when
            // the head declares it, and would take the body for the next request.
            return .respond(.badRequest("a TRACE request cannot have content"), reason: "bad_framing")
        }
        if head.method.isCONNECT {
            // CONNECT asks a forward proxy for a tunnel (its target is authority-form, RFC 9112
            // §3.2.3): nothing a reverse proxy forwards. Its parser sees it as an upgrade too.
            var response = LocalResponse.badRequest("CONNECT is not supported: authgate is a reverse proxy")
            response.close = true
            return .respond(response, reason: "bad_method")
        }

        // 2. Target.
        if head.target.utf8.count > self.config.limits.maxHeaderBytes {
            var response = LocalResponse.uriTooLong
            response.close = bodyExpected
            return .respond(response, reason: "uri_too_long")
        }
        let normalized: PathNormalizer.Normalized
        switch PathNormalizer.normalize(head.target) {
        case .success(let value): normalized = value
        case .failure(let rejection): return .respond(.badRequest(rejection.description), reason: "bad_path")
        }
        context.path = normalized.path

        // 3. Route.
        guard let route = self.routes.route(for: normalized.path) else {
            var response = LocalResponse.notFound
            response.close = bodyExpected
            return .respond(response, reason: "no_route")
        }
        context.route = route
        if case .contentLength(let length) = framing, length > route.maxBodyBytes ?? self.config.limits.maxBodyBytes {
            var response = LocalResponse.payloadTooLarge
            response.close = true
            return .respond(response, reason: "body_too_large")
        }

        // 4. Authentication and authorisation.
        var identity: [(name: String, value: String)] = []
        var subject: String?
        if route.auth == .required {
            switch self.authenticate(
                head, summary: summary, route: route, now: now, allowKeyRefresh: allowKeyRefresh, cache: cache)
            {
            case .success(let verified):
                identity = verified.identity
                subject = verified.subject
            case .failure(let failure):
                if let providers = failure.refresh { return .refreshKeys(providers) }
                var response = failure.response
                response.close = response.close || bodyExpected
                return .respond(response, reason: failure.reason)
            }
        }

        // 5. Protocol upgrade: only once the request passed like any other.
        var tunnel: String?
        if upgrade {
            let typed = head.typed  // rare: the upgrade rules read NIO's head
            switch UpgradeDecision.decide(typed, framing: framing, allowed: route.upgrade) {
            case .none: break
            case .tunnel(let protocols):
                guard UpgradeDecision.originAllowed(typed.headers["origin"], allowed: route.allowedOrigins) else {
                    return .respond(.forbiddenOrigin, reason: "forbidden_origin")
                }
                tunnel = protocols
            case .refuse(let reason): return .respond(.upgradeRefused(reason), reason: "upgrade_refused")
            }
        }

        // 6. Rewrite.
        let forwarding = HeaderRewriter.Forwarding(
            clientAddress: clientAddress, host: host, identity: identity,
            stripToken: !self.config.forwardToken && route.auth == .required, tokenSource: self.config.token,
            proto: overTLS ? "https" : "http", requestID: context.requestID.map { (requestIDs.header, $0) },
            upgrade: tunnel)
        let upstreamHead = HeaderRewriter.requestHead(
            method: head.method, target: route.upstreamTarget(normalized), fields: head.fields,
            connectionNamesFields: head.connectionNamesFields, identityHeaderNames: self.identityHeaderNames, forwarding: forwarding, framing: framing,
            reusing: context.headBuffer.take())
        return .forward(
            ForwardPlan(
                head: upstreamHead, route: route, expectContinue: expectContinue,
                framing: framing, subject: subject, closeConnection: upgrade, upgrade: tunnel))
    }

    private struct Denial: Error {
        var response: LocalResponse
        var reason: String
        /// Not a denial yet: refresh these providers' remote keys and try again.
        var refresh: [Int]? = nil

        /// The token header is not `<scheme> <token68>`.
        static var malformedHeader: Denial {
            Denial(response: .auth(.malformed("bad authorization header")), reason: "malformed")
        }
    }

    /// A request's token, as `authenticate` finds it before verifying anything.
    private enum Presented {
        /// In this event loop's cache, for a provider the route accepts.
        case cached(TokenCache.Entry)
        /// To verify.
        case token(Substring)
    }

    private func authenticate(
        _ head: ClientRequestHead, summary: borrowing HeadSummary, route: Route, now: Double, allowKeyRefresh: Bool,
        cache: TokenCache?
    ) -> Result<(identity: [(name: String, value: String)], subject: String?), Denial> {
        // Read the generation before the keys: an entry is then never stamped newer than the
        // keys that verified it.
        let generation = self.keys.generation
        let token: Substring
        switch self.presentedToken(head, summary: summary, route: route, now: now, generation: generation, cache: cache) {
        case .success(.cached(let entry)):
            guard ClaimPolicy.allows(entry.verified.claims, requirements: route.requireClaims) else {
                return .failure(Denial(response: .auth(.insufficientScope), reason: AuthFailure.insufficientScope.code))
            }
            return .success((entry.identity, entry.subject))
        case .success(.token(let value)):
            token = value
        case .failure(let denial):
            return .failure(denial)
        }
        let verified: VerifiedToken
        var candidates: [Int] = []
        let verifier = self.keys.verifier
        switch verifier.verify(token, providerIndices: route.providerIndices, now: now, candidates: &candidates) {
        case .success(let value): verified = value
        case .failure(let failure):
            if allowKeyRefresh, failure == .unknownKey || failure == .keysUnavailable, self.keys.hasRemote(candidates) {
                return .failure(Denial(response: .auth(failure), reason: failure.code, refresh: candidates))
            }
            return .failure(Denial(response: .auth(failure), reason: failure.code))
        }
        var identity: [(name: String, value: String)] = []
        identity.reserveCapacity(self.config.identityHeaders.count)
        for mapping in self.config.identityHeaders {
            guard let claim = verified.claims[mapping.claim] else { continue }
            guard let value = ClaimPolicy.headerValue(for: claim) else {
                let failure = AuthFailure.unsafeIdentityClaim
                return .failure(Denial(response: .auth(failure), reason: "unsafe_identity_claim"))
            }
            identity.append((mapping.header, value))
        }
        let subject = verified.claims["sub"]?.stringValue
        cache?.insert(
            token, verified: verified, identity: identity, subject: subject, generation: generation,
            skew: verifier.providers[verified.providerIndex].clockSkewSeconds)
        guard ClaimPolicy.allows(verified.claims, requirements: route.requireClaims) else {
            return .failure(Denial(response: .auth(.insufficientScope), reason: AuthFailure.insufficientScope.code))
        }
        return .success((identity, subject))
    }

    /// Finds the request's token and looks it up in the cache. A header token is read where it
    /// lies in the head: on a hit nothing is copied and its token68 check is the entry's
    /// (`Entry.isToken68`, the answer for the same bytes); on a miss it is checked, then copied
    /// for the verifier.
    private func presentedToken(
        _ head: ClientRequestHead, summary: borrowing HeadSummary, route: Route, now: Double, generation: Int, cache: TokenCache?
    ) -> Result<Presented, Denial> {
        /// An entry verified by a provider the route does not accept is a miss here.
        func usable(_ entry: TokenCache.Entry?) -> TokenCache.Entry? {
            guard let entry, route.providerIndices?.contains(entry.verified.providerIndex) ?? true else { return nil }
            return entry
        }
        return head.fields.withUnsafeReadableBytes { fields in
            let value = summary.tokenHeader.map { UnsafeRawBufferPointer(rebasing: fields[$0]) }
            let location = self.extractor.locate(
                headerValue: value, repeated: summary.tokenHeaderCount > 1,
                cookieHeaders: summary.hasCookie ? head.values("cookie") : [])
            switch location {
            case .header(let token):
                if let entry = usable(cache?.lookup(bytes: token, generation: generation, now: now)) {
                    return entry.isToken68 ? .success(.cached(entry)) : .failure(.malformedHeader)
                }
                guard TokenExtractor.isToken68(bytes: token) else { return .failure(.malformedHeader) }
                return .success(.token(Substring(String(decoding: token, as: UTF8.self))))
            case .elsewhere(.token(let token)):
                if let entry = usable(cache?.lookup(token, generation: generation, now: now)) { return .success(.cached(entry)) }
                return .success(.token(token))
            case .elsewhere(.missing):
                return .failure(Denial(response: .auth(.missingToken), reason: "missing_token"))
            case .elsewhere(.invalid(.malformedHeader)):
                return .failure(.malformedHeader)
            case .elsewhere(.invalid(let problem)):
                return .failure(Denial(response: .badRequest(problem.rawValue), reason: "ambiguous_credentials"))
            }
        }
    }

    /// The body framing a request head declares, as the proxy reads it, or why it is refused
    /// (RFC 9112 §6.1–6.3; `ClientRequestParser`).
    public static func framing(of headers: HTTPHeaders) -> Result<BodyFraming, ClientRequestError> {
        ClientRequestHead.parsing(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: headers)).map(\.framing)
    }
}

/// What the planner needs from a request's fields besides the framing, gathered in one pass
/// (a `String` only for the values it keeps; the token header's value stays in the head). Not
/// copyable, like `HeaderRewriter.Forwarding`: the optimiser copied it once per request.
struct HeadSummary: ~Copyable {
    var host: String?
    var hostCount = 0
    var expect: String?
    var expectCount = 0
    /// Where the first token header's value is, as offsets into the head's `fields`.
    var tokenHeader: Range<Int>?
    var tokenHeaderCount = 0
    var hasCookie = false
    var requestID: String?
    var requestIDCount = 0

    init(_ head: ClientRequestHead, tokenHeader: String, requestIDHeader: String? = nil, hostMemo: inout StringMemo) {
        var tokenHeader = tokenHeader
        var requestIDHeader = requestIDHeader ?? ""
        tokenHeader.withUTF8 { tokenHeader in
            requestIDHeader.withUTF8 { requestIDHeader in
                head.fields.withUnsafeReadableBytes { fields in
                    HTTPFieldLine.forEachField(in: fields) { name, value, _ in
                        switch name.count {
                        case 4 where HTTPFieldLine.equalsIgnoringCase(name, "host"):
                            self.host = hostMemo.string(for: value)
                            self.hostCount += 1
                        case 6 where HTTPFieldLine.equalsIgnoringCase(name, "expect"):
                            self.expect = String(decoding: value, as: UTF8.self)
                            self.expectCount += 1
                        case 6 where HTTPFieldLine.equalsIgnoringCase(name, "cookie"):
                            self.hasCookie = true
                        default:
                            break
                        }
                        if HTTPFieldLine.equalsIgnoringCase(name, tokenHeader) {
                            if self.tokenHeaderCount == 0 {
                                // `value` is a slice of `fields`: where it starts there.
                                let offset = value.baseAddress.map { fields.baseAddress!.distance(to: $0) } ?? 0
                                self.tokenHeader = offset..<(offset + value.count)
                            }
                            self.tokenHeaderCount += 1
                        } else if !requestIDHeader.isEmpty, HTTPFieldLine.equalsIgnoringCase(name, requestIDHeader) {
                            self.requestID = String(decoding: value, as: UTF8.self)
                            self.requestIDCount += 1
                        }
                    }
                }
            }
        }
    }
}
