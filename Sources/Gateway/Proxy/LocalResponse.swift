import NIOCore
import NIOHTTP1

/// A response the gateway answers itself (401, 403, 404, 502, ...), never reaching an upstream.
public struct LocalResponse: Sendable, Equatable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: String
    /// The connection must close after this response (the request body was not read, or the
    /// request was malformed).
    public var close: Bool

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: String, close: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
    }

    /// `{"error": code, "error_description": description}`.
    static func json(_ status: HTTPResponseStatus, error: String, description: String) -> LocalResponse {
        let body = "{\"error\":\(JSONValue.quoted(error)),\"error_description\":\(JSONValue.quoted(description))}\n"
        return LocalResponse(status: status, headers: ["content-type": "application/json"], body: body)
    }

    /// The answer to an authentication or authorisation failure (RFC 6750 §3).
    public static func auth(_ failure: AuthFailure) -> LocalResponse {
        if failure == .keysUnavailable {
            var response = LocalResponse.json(.serviceUnavailable, error: "temporarily_unavailable", description: failure.description)
            response.headers.add(name: "retry-after", value: "5")
            return response
        }
        var challenge = "Bearer realm=\"authgate\""
        var response: LocalResponse
        if let error = failure.bearerError {
            challenge += ", error=\"\(error)\", error_description=\"\(failure.description)\""
            response = .json(HTTPResponseStatus(statusCode: Int(failure.status)), error: error, description: failure.description)
        } else {
            response = .json(.unauthorized, error: "unauthorized", description: failure.description)
        }
        response.headers.add(name: "www-authenticate", value: challenge)
        return response
    }

    public static func badRequest(_ description: String) -> LocalResponse {
        var response = LocalResponse.json(.badRequest, error: "invalid_request", description: description)
        response.close = true
        return response
    }

    /// An `Upgrade` request this route does not tunnel (`UpgradeDecision.refuse`). No credential
    /// would change the answer, so it is not a 401 or 403. The connection closes: NIO's parser
    /// reads nothing after an upgrade request.
    /// A tunnel asked for from a page on an origin the route does not list (`allowed_origins`).
    public static let forbiddenOrigin: LocalResponse = {
        var response = LocalResponse.json(
            .forbidden, error: "forbidden_origin", description: "this route does not accept upgrades from this Origin")
        response.close = true
        return response
    }()

    public static func upgradeRefused(_ description: String) -> LocalResponse {
        var response = LocalResponse.json(.badRequest, error: "upgrade_refused", description: description)
        response.close = true
        return response
    }

    public static let notFound = LocalResponse.json(.notFound, error: "not_found", description: "no route for this path")
    public static let payloadTooLarge = LocalResponse.json(
        .payloadTooLarge, error: "payload_too_large", description: "request body exceeds the configured limit")
    public static let headersTooLarge = LocalResponse.json(
        .requestHeaderFieldsTooLarge, error: "request_header_fields_too_large",
        description: "request headers exceed the configured limit")
    public static let uriTooLong = LocalResponse.json(
        .uriTooLong, error: "uri_too_long", description: "request target exceeds the configured limit")
    public static let versionNotSupported = LocalResponse.json(
        .httpVersionNotSupported, error: "http_version_not_supported", description: "only HTTP/1.0 and HTTP/1.1 are served")
    public static let requestTimeout = LocalResponse(
        status: .requestTimeout, headers: ["content-type": "application/json"],
        body: "{\"error\":\"request_timeout\",\"error_description\":\"the request body stalled\"}\n", close: true)
    public static let expectationFailed = LocalResponse.json(
        .expectationFailed, error: "expectation_failed", description: "only 100-continue is supported")
    public static let badGateway = LocalResponse.json(
        .badGateway, error: "bad_gateway", description: "the upstream could not be reached")
    public static let gatewayTimeout = LocalResponse.json(
        .gatewayTimeout, error: "gateway_timeout", description: "the upstream did not answer in time")
    public static let serviceUnavailable = LocalResponse.json(
        .serviceUnavailable, error: "unavailable", description: "the gateway is shutting down")

    /// The response head for this response on a connection speaking `version`.
    func head(version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var headers = self.headers
        headers.replaceOrAdd(name: "content-length", value: String(self.body.utf8.count))
        if self.close || !keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: self.status, headers: headers)
    }
}
