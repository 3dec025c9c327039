/// One request as the access log records it. Never holds a token, a cookie or a query string
/// (queries carry secrets often enough: `?access_token=`, signed URLs).
public struct AccessLogRecord: Sendable {
    /// Unix time the request head arrived.
    public var time: Double
    public var requestID: RequestID?
    public var method: String
    /// The normalised path, or the raw path (capped) when the target was refused.
    public var path: String
    /// The route's `path_prefix`; nil when refused before routing.
    public var route: String?
    public var status: Int
    public var decision: Decision
    /// Why the gateway answered itself (`expired`, `no_route`, `upstream_timeout`, ...).
    public var reason: String?
    public var subject: String?
    public var upstream: String?
    public var client: String?
    /// Head received to response complete.
    public var durationSeconds: Double
    /// Request head forwarded to response head received; nil when no upstream answered.
    public var upstreamSeconds: Double?
    public var requestBytes: Int
    public var responseBytes: Int

    public init(
        time: Double, requestID: RequestID?, method: String, path: String, route: String?, status: Int,
        decision: Decision, reason: String?, subject: String?, upstream: String?, client: String?,
        durationSeconds: Double, upstreamSeconds: Double?, requestBytes: Int, responseBytes: Int
    ) {
        self.time = time
        self.requestID = requestID
        self.method = method
        self.path = path
        self.route = route
        self.status = status
        self.decision = decision
        self.reason = reason
        self.subject = subject
        self.upstream = upstream
        self.client = client
        self.durationSeconds = durationSeconds
        self.upstreamSeconds = upstreamSeconds
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
    }

    /// The longest raw path logged for a refused target.
    public static let maximumRawPathLength = 256

    /// The path part of a raw request target, capped, for requests refused before normalisation.
    public static func rawPath(of uri: String) -> String {
        let path = uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(uri[..<$0]) } ?? uri
        guard path.utf8.count > Self.maximumRawPathLength else { return path }
        return String(decoding: path.utf8.prefix(Self.maximumRawPathLength), as: UTF8.self)
    }
}
