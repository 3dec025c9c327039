/// A problem in the configuration, named by its JSON path (`routes[2].upstream`).
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public typealias Message = String

    public let path: String
    public let message: Message

    public init(path: String, message: Message) {
        self.path = path
        self.message = message
    }

    public var description: String { self.path.isEmpty ? self.message : "\(self.path): \(self.message)" }
}

/// Why one configuration value is unusable; becomes a `ConfigIssue` once its path is known.
public struct InvalidValue: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Every problem found in a configuration; thrown when a configuration is not usable.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) {
        self.issues = issues
    }

    public var description: String { self.issues.map(\.description).joined(separator: "\n") }
}

/// `host:port` to listen on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }

    /// Parses `HOST:PORT` or `[IPv6]:PORT`; port 0 means an ephemeral port.
    public static func parse(_ text: String) -> ListenAddress? {
        HostPort.split(Substring(text), defaultPort: nil).map { ListenAddress(host: $0.host, port: $0.port) }
    }
}

/// A claim forwarded to the upstream as a header.
public struct IdentityHeader: Sendable, Equatable {
    public let claim: String
    public let header: String

    public init(claim: String, header: String) {
        self.claim = claim
        self.header = header
    }
}

/// Timeouts, in seconds.
public struct Timeouts: Sendable, Equatable {
    /// Time allowed to open a connection to an upstream (→ 504 when exceeded).
    public var connectSeconds: Double = 5
    /// Time allowed for the upstream's response head after the request was sent (→ 504).
    public var upstreamSeconds: Double = 60
    /// Time a client connection may sit with no request in progress before it is closed; also
    /// bounds how long a client may take to send a request head.
    public var clientIdleSeconds: Double = 60
    /// How long a pooled upstream connection is kept idle before it is closed.
    public var upstreamIdleSeconds: Double = 30
    /// How long an established tunnel (a switched `Upgrade` request) may carry no byte in either
    /// direction before both its connections are closed. The request timeouts above end at the switch.
    public var tunnelIdleSeconds: Double = 3600

    public init() {}
}

/// Size limits.
public struct Limits: Sendable, Equatable {
    /// Largest request body accepted (→ 413). 10 MiB by default.
    public var maxBodyBytes: Int = 10 * 1024 * 1024
    /// Largest request head accepted: request line plus all header lines (→ 431). 64 KiB by default.
    public var maxHeaderBytes: Int = 64 * 1024

    public init() {}
}

/// Where the access log goes: one JSON line per request (`access_log`).
public struct AccessLogSettings: Sendable, Equatable {
    public var enabled = true
    /// A file to append to; nil means standard output.
    public var path: String?

    public init(enabled: Bool = true, path: String? = nil) {
        self.enabled = enabled
        self.path = path
    }
}

/// The request id header (`request_id`): taken from the client when valid, generated otherwise,
/// forwarded upstream and returned to the client.
public struct RequestIDSettings: Sendable, Equatable {
    public var enabled = true
    public var header = "X-Request-Id"
    /// Keep a valid id sent by the client (a trusted edge in front); false always generates.
    public var trustIncoming = true

    public init(enabled: Bool = true, header: String = "X-Request-Id", trustIncoming: Bool = true) {
        self.enabled = enabled
        self.header = header
        self.trustIncoming = trustIncoming
    }
}

/// A complete, validated configuration: everything the gateway needs, keys already loaded.
public struct GatewayConfig: Sendable {
    public var listen: ListenAddress
    /// TLS on the listener; nil serves plain HTTP.
    public var tls: ListenerTLS?
    public var providers: [Provider]
    public var token: TokenSource
    public var identityHeaders: [IdentityHeader]
    public var forwardToken: Bool
    public var timeouts: Timeouts
    public var limits: Limits
    public var routes: [Route]
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`); nil turns it off.
    public var adminListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9901)
    public var accessLog = AccessLogSettings()
    public var requestID = RequestIDSettings()
    /// Keys that were skipped while loading key sets, for the log (never fatal).
    public var skippedKeys: [String]

    public init(
        listen: ListenAddress, providers: [Provider], token: TokenSource = TokenSource(),
        identityHeaders: [IdentityHeader] = [IdentityHeader(claim: "sub", header: "X-Auth-Subject")],
        forwardToken: Bool = true, timeouts: Timeouts = Timeouts(), limits: Limits = Limits(), routes: [Route],
        skippedKeys: [String] = [], tls: ListenerTLS? = nil
    ) {
        self.listen = listen
        self.tls = tls
        self.providers = providers
        self.token = token
        self.identityHeaders = identityHeaders
        self.forwardToken = forwardToken
        self.timeouts = timeouts
        self.limits = limits
        self.routes = routes
        self.skippedKeys = skippedKeys
    }
}
