/// Turns `gateway.json` into a `GatewayConfig`, reporting every problem at once by JSON path.
///
/// Startup only. Unknown fields are errors: a misspelt `require_claims` must not silently open a
/// route. Relative key and secret paths are resolved against the configuration file's directory.
public struct ConfigLoader {
    public var environment: [String: String]
    public var baseDirectory: String
    public var readFile: (String) throws -> [UInt8]

    public init(
        environment: [String: String] = FileReader.processEnvironment(),
        baseDirectory: String = ".",
        readFile: @escaping (String) throws -> [UInt8] = { try FileReader.read($0) }
    ) {
        self.environment = environment
        self.baseDirectory = baseDirectory
        self.readFile = readFile
    }

    /// Loads the file at `path`; relative paths inside it resolve against its directory.
    public static func load(path: String, environment: [String: String] = FileReader.processEnvironment())
        throws(ConfigError) -> GatewayConfig
    {
        let bytes: [UInt8]
        do {
            bytes = try FileReader.read(path)
        } catch {
            throw ConfigError(issues: [ConfigIssue(path: "", message: error.description)])
        }
        let loader = ConfigLoader(environment: environment, baseDirectory: FileReader.directory(of: path))
        return try loader.load(bytes)
    }

    /// Parses and validates a configuration document.
    public func load(_ bytes: [UInt8]) throws(ConfigError) -> GatewayConfig {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ConfigError(issues: [ConfigIssue(path: "", message: "not valid JSON: \(error)")])
        }
        var reader = Reader(loader: self)
        let config = reader.gateway(document)
        if let config, reader.issues.isEmpty { return config }
        throw ConfigError(issues: reader.issues)
    }
}

/// Walks the document, collecting issues instead of stopping at the first.
private struct Reader {
    let loader: ConfigLoader
    var issues: [ConfigIssue] = []
    var skippedKeys: [String] = []

    init(loader: ConfigLoader) {
        self.loader = loader
    }

    mutating func issue(_ path: String, _ message: String) {
        self.issues.append(ConfigIssue(path: path, message: message))
    }

    // MARK: Typed accessors

    mutating func object(_ value: JSONValue, _ path: String, allowed: Set<String>) -> JSONObject? {
        guard let object = value.objectValue else {
            self.issue(path, "expected an object, got \(value.kindName)")
            return nil
        }
        for name in object.names where !allowed.contains(name) {
            self.issue(Self.join(path, name), "unknown field")
        }
        return object
    }

    mutating func string(_ object: JSONObject, _ name: String, _ path: String, required: Bool = false) -> String? {
        guard let value = object[name] else {
            if required { self.issue(Self.join(path, name), "is required") }
            return nil
        }
        guard let string = value.stringValue else {
            self.issue(Self.join(path, name), "expected a string, got \(value.kindName)")
            return nil
        }
        return string
    }

    mutating func number(_ object: JSONObject, _ name: String, _ path: String, range: ClosedRange<Double>) -> Double? {
        guard let value = object[name] else { return nil }
        guard let number = value.doubleValue else {
            self.issue(Self.join(path, name), "expected a number, got \(value.kindName)")
            return nil
        }
        guard range.contains(number) else {
            self.issue(Self.join(path, name), "\(Self.format(number)) is outside \(Self.format(range.lowerBound))...\(Self.format(range.upperBound))")
            return nil
        }
        return number
    }

    mutating func integer(_ object: JSONObject, _ name: String, _ path: String, range: ClosedRange<Int>) -> Int? {
        guard let number = self.number(object, name, path, range: Double(range.lowerBound)...Double(range.upperBound))
        else { return nil }
        guard number == number.rounded() else {
            self.issue(Self.join(path, name), "expected a whole number")
            return nil
        }
        return Int(number)
    }

    mutating func bool(_ object: JSONObject, _ name: String, _ path: String) -> Bool? {
        guard let value = object[name] else { return nil }
        guard case .bool(let bool) = value else {
            self.issue(Self.join(path, name), "expected true or false, got \(value.kindName)")
            return nil
        }
        return bool
    }

    mutating func stringArray(_ value: JSONValue, _ path: String) -> [String]? {
        guard let array = value.arrayValue else {
            self.issue(path, "expected an array of strings, got \(value.kindName)")
            return nil
        }
        var result: [String] = []
        for (index, element) in array.enumerated() {
            guard let string = element.stringValue else {
                self.issue("\(path)[\(index)]", "expected a string, got \(element.kindName)")
                continue
            }
            result.append(string)
        }
        return result
    }

    /// Why `text` is not a serialised origin (RFC 6454 §6.2: `scheme://host[:port]`), or nil.
    static func originProblem(_ text: String) -> String? {
        let lower = text.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") else {
            return "is not an origin (http:// or https://, a host and an optional port)"
        }
        let rest = lower.drop { $0 != "/" }.dropFirst(2)
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("?"), !rest.contains("#"), !rest.contains("@") else {
            return "is not an origin: no path, query, credentials or trailing slash"
        }
        guard HostPort.split(rest, defaultPort: 443) != nil else { return "has an invalid host or port" }
        return nil
    }

    static func join(_ path: String, _ name: String) -> String {
        path.isEmpty ? name : "\(path).\(name)"
    }

    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }

    // MARK: Sections

    mutating func gateway(_ document: JSONValue) -> GatewayConfig? {
        let fields: Set<String> = [
            "listen", "tls", "providers", "token", "identity_headers", "forward_token", "timeouts", "limits",
            "upstream_ca_file", "routes", "admin_listen", "access_log", "request_id",
        ]
        guard let root = self.object(document, "", allowed: fields) else { return nil }

        var listen = ListenAddress(host: "127.0.0.1", port: 8080)
        if let text = self.string(root, "listen", "") {
            if let parsed = ListenAddress.parse(text) {
                listen = parsed
            } else {
                self.issue("listen", "\(JSONValue.quoted(text)) is not HOST:PORT")
            }
        }
        let tls = root["tls"].flatMap { self.tls($0) }

        var providers: [Provider] = []
        if let value = root["providers"] {
            if let array = value.arrayValue {
                for (index, entry) in array.enumerated() {
                    if let provider = self.provider(entry, "providers[\(index)]") { providers.append(provider) }
                }
                var seen: Set<String> = []
                for (index, provider) in providers.enumerated() where !seen.insert(provider.name).inserted {
                    self.issue("providers[\(index)].name", "\(JSONValue.quoted(provider.name)) is used twice")
                }
            } else {
                self.issue("providers", "expected an array, got \(value.kindName)")
            }
        }

        var token = TokenSource()
        if let value = root["token"], let object = self.object(value, "token", allowed: ["header", "scheme", "cookie"]) {
            if let header = self.string(object, "header", "token") {
                if HeaderRules.isValidName(header) { token.header = header } else {
                    self.issue("token.header", "\(JSONValue.quoted(header)) is not a valid header name")
                }
            }
            if let scheme = self.string(object, "scheme", "token") {
                if HeaderRules.isValidName(scheme) { token.scheme = scheme } else {
                    self.issue("token.scheme", "\(JSONValue.quoted(scheme)) is not a valid authentication scheme")
                }
            }
            if object["cookie"] == .null {
                token.cookie = nil
            } else if let cookie = self.string(object, "cookie", "token") {
                if HeaderRules.isValidName(cookie) { token.cookie = cookie } else {
                    self.issue("token.cookie", "\(JSONValue.quoted(cookie)) is not a valid cookie name")
                }
            }
        }

        var identityHeaders = [IdentityHeader(claim: "sub", header: "X-Auth-Subject")]
        if let value = root["identity_headers"] {
            if let object = value.objectValue {
                identityHeaders = []
                for member in object.members {
                    let path = "identity_headers.\(member.name)"
                    guard let header = member.value.stringValue else {
                        self.issue(path, "expected a header name, got \(member.value.kindName)")
                        continue
                    }
                    if let problem = HeaderRules.identityHeaderProblem(header, tokenHeader: token.header) {
                        self.issue(path, problem)
                    } else if identityHeaders.contains(where: { $0.header.lowercased() == header.lowercased() }) {
                        self.issue(path, "header \(JSONValue.quoted(header)) is already used for another claim")
                    } else {
                        identityHeaders.append(IdentityHeader(claim: member.name, header: header))
                    }
                }
            } else {
                self.issue("identity_headers", "expected an object of claim → header name, got \(value.kindName)")
            }
        }

        let forwardToken = self.bool(root, "forward_token", "") ?? true

        var timeouts = Timeouts()
        if let value = root["timeouts"],
            let object = self.object(
                value, "timeouts",
                allowed: [
                    "connect_seconds", "upstream_seconds", "client_idle_seconds", "upstream_idle_seconds",
                    "tunnel_idle_seconds",
                ])
        {
            let range = 0.001...86_400.0
            timeouts.connectSeconds = self.number(object, "connect_seconds", "timeouts", range: range) ?? timeouts.connectSeconds
            timeouts.upstreamSeconds = self.number(object, "upstream_seconds", "timeouts", range: range) ?? timeouts.upstreamSeconds
            timeouts.clientIdleSeconds = self.number(object, "client_idle_seconds", "timeouts", range: range) ?? timeouts.clientIdleSeconds
            timeouts.upstreamIdleSeconds = self.number(object, "upstream_idle_seconds", "timeouts", range: range) ?? timeouts.upstreamIdleSeconds
            timeouts.tunnelIdleSeconds = self.number(object, "tunnel_idle_seconds", "timeouts", range: range) ?? timeouts.tunnelIdleSeconds
        }

        var limits = Limits()
        if let value = root["limits"], let object = self.object(value, "limits", allowed: ["max_body_bytes", "max_header_bytes"]) {
            limits.maxBodyBytes = self.integer(object, "max_body_bytes", "limits", range: 0...(1 << 50)) ?? limits.maxBodyBytes
            limits.maxHeaderBytes = self.integer(object, "max_header_bytes", "limits", range: 1024...(1 << 20)) ?? limits.maxHeaderBytes
        }

        let upstreamCAFile = self.caFile(root, "upstream_ca_file", "")
        var routes: [Route] = []
        if let value = root["routes"] {
            if let array = value.arrayValue {
                if array.isEmpty { self.issue("routes", "at least one route is required") }
                for (index, entry) in array.enumerated() {
                    if let route = self.route(entry, index: index, providers: providers, defaultCAFile: upstreamCAFile) {
                        routes.append(route)
                    }
                }
                if root["upstream_ca_file"] != nil, !routes.isEmpty, !routes.contains(where: \.upstream.tls) {
                    self.issue("upstream_ca_file", "has no effect: no route has an https upstream")
                }
                var seen: [String: Int] = [:]
                for route in routes {
                    if let first = seen[route.pathPrefix] {
                        self.issue("routes[\(route.index)].path_prefix", "\(JSONValue.quoted(route.pathPrefix)) is already routed by routes[\(first)]")
                    } else {
                        seen[route.pathPrefix] = route.index
                    }
                }
            } else {
                self.issue("routes", "expected an array, got \(value.kindName)")
            }
        } else {
            self.issue("routes", "is required")
        }
        let declaresProviders = !(root["providers"]?.arrayValue?.isEmpty ?? true)
        if routes.contains(where: { $0.auth == .required }) && !declaresProviders {
            self.issue("providers", "routes require authentication but no provider is configured")
        }

        var config = GatewayConfig(
            listen: listen, providers: providers, token: token, identityHeaders: identityHeaders,
            forwardToken: forwardToken, timeouts: timeouts, limits: limits, routes: routes,
            skippedKeys: self.skippedKeys, tls: tls)
        self.operations(root, into: &config)
        return config
    }

    /// `tls`: the listener's certificate chain and key (PEM files), checked to belong together.
    mutating func tls(_ value: JSONValue) -> ListenerTLS? {
        guard let object = self.object(value, "tls", allowed: ["cert_file", "key_file", "min_version"]) else { return nil }
        var minimumVersion = ListenerTLS.MinimumVersion.tls12
        if let text = self.string(object, "min_version", "tls") {
            if let parsed = ListenerTLS.MinimumVersion(rawValue: text) {
                minimumVersion = parsed
            } else {
                self.issue("tls.min_version", "\(JSONValue.quoted(text)) is not \"1.2\" or \"1.3\"")
            }
        }
        let certificate = self.pemFile(object, "cert_file", "tls")
        let key = self.pemFile(object, "key_file", "tls")
        guard let certificate, let key else { return nil }
        let tls: ListenerTLS
        do {
            let identity = try ListenerTLS.identity(certificatePEM: certificate.bytes, keyPEM: key.bytes)
            tls = ListenerTLS(
                certificateFile: certificate.resolved, keyFile: key.resolved, certificateChain: identity.chain,
                privateKey: identity.key, minimumVersion: minimumVersion)
        } catch {
            let (field, file) = error.file == .certificate ? ("cert_file", certificate.name) : ("key_file", key.name)
            self.issue("tls.\(field)", "\(JSONValue.quoted(file)) \(error.description)")
            return nil
        }
        do {
            _ = try tls.makeServerContext()
        } catch {
            self.issue("tls", "cannot set up TLS with this certificate and key: \(error)")
            return nil
        }
        return tls
    }

    /// A file named by a required string field, read now: its name as written, resolved path and bytes.
    mutating func pemFile(_ object: JSONObject, _ name: String, _ path: String) -> (name: String, resolved: String, bytes: [UInt8])? {
        guard let file = self.string(object, name, path, required: true) else { return nil }
        let resolved = FileReader.resolve(file, relativeTo: self.loader.baseDirectory)
        do {
            return (file, resolved, try self.loader.readFile(resolved))
        } catch {
            self.issue(Self.join(path, name), "\(error)")
            return nil
        }
    }

    /// A PEM file of CA certificates (`jwks_ca_file`, `upstream_ca_file`), checked now so that a
    /// missing or unusable file is reported with the configuration. Returns the resolved path,
    /// from which the TLS context loads it.
    mutating func caFile(_ object: JSONObject, _ name: String, _ path: String) -> String? {
        guard let file = self.string(object, name, path) else { return nil }
        let resolved = FileReader.resolve(file, relativeTo: self.loader.baseDirectory)
        do {
            if let problem = ClientTLS.caBundleProblem(try self.loader.readFile(resolved)) {
                self.issue(Self.join(path, name), "\(JSONValue.quoted(file)) \(problem)")
            }
        } catch {
            self.issue(Self.join(path, name), "\(error)")
        }
        return resolved
    }

    /// `admin_listen`, `access_log` and `request_id`.
    mutating func operations(_ root: JSONObject, into config: inout GatewayConfig) {
        if root["admin_listen"] == .null {
            config.adminListen = nil
        } else if let text = self.string(root, "admin_listen", "") {
            if let parsed = ListenAddress.parse(text) {
                config.adminListen = parsed
                if parsed.host == config.listen.host && parsed.port == config.listen.port && parsed.port != 0 {
                    self.issue("admin_listen", "\(JSONValue.quoted(text)) is the proxy's own `listen` address")
                }
            } else {
                self.issue("admin_listen", "\(JSONValue.quoted(text)) is not HOST:PORT (use null to turn the admin listener off)")
            }
        }
        if let value = root["access_log"], let object = self.object(value, "access_log", allowed: ["enabled", "path"]) {
            config.accessLog.enabled = self.bool(object, "enabled", "access_log") ?? true
            if let path = self.string(object, "path", "access_log") {
                if path.isEmpty {
                    self.issue("access_log.path", "is empty (leave it out to log to standard output)")
                } else if path != "-" {
                    config.accessLog.path = FileReader.resolve(path, relativeTo: self.loader.baseDirectory)
                }
            }
        }
        if let value = root["request_id"],
            let object = self.object(value, "request_id", allowed: ["enabled", "header", "trust_incoming"])
        {
            config.requestID.enabled = self.bool(object, "enabled", "request_id") ?? true
            config.requestID.trustIncoming = self.bool(object, "trust_incoming", "request_id") ?? true
            if let header = self.string(object, "header", "request_id") {
                if !HeaderRules.isValidName(header) {
                    self.issue("request_id.header", "\(JSONValue.quoted(header)) is not a valid header name")
                } else if HeaderRules.identityHeaderProblem(header, tokenHeader: config.token.header) != nil {
                    self.issue("request_id.header", "\(JSONValue.quoted(header)) is managed by the gateway or carries the token")
                } else if config.identityHeaders.contains(where: { HeaderRules.equalsIgnoringCase($0.header, header) }) {
                    self.issue("request_id.header", "\(JSONValue.quoted(header)) is already an identity header")
                } else {
                    config.requestID.header = header
                }
            }
        }
    }

    mutating func provider(_ value: JSONValue, _ path: String) -> Provider? {
        let fields: Set<String> = [
            "name", "issuer", "audiences", "clock_skew_seconds", "keys", "jwks_file", "jwks_url", "jwks_refresh_seconds",
            "jwks_min_refresh_seconds", "jwks_timeout_seconds", "jwks_ca_file", "discovery", "discovery_url",
        ]
        guard let object = self.object(value, path, allowed: fields) else { return nil }
        let name = self.string(object, "name", path, required: true)
        if let name, name.isEmpty { self.issue("\(path).name", "must not be empty") }
        let issuer = self.string(object, "issuer", path)
        if let issuer, issuer.isEmpty { self.issue("\(path).issuer", "must not be empty (leave it out to accept any issuer)") }
        var audiences: [String] = []
        if let value = object["audiences"] {
            audiences = self.stringArray(value, "\(path).audiences") ?? []
        }
        let skew = self.number(object, "clock_skew_seconds", path, range: 0...3600) ?? 30
        let remote = self.remoteSource(object, path, issuer: issuer)

        var keys: [VerificationKey] = []
        if let value = object["keys"] {
            if let array = value.arrayValue {
                for (index, entry) in array.enumerated() {
                    if let key = self.key(entry, "\(path).keys[\(index)]") { keys.append(key) }
                }
            } else {
                self.issue("\(path).keys", "expected an array, got \(value.kindName)")
            }
        }
        if let file = self.string(object, "jwks_file", path) {
            let resolved = FileReader.resolve(file, relativeTo: self.loader.baseDirectory)
            do {
                let set = try JWK.parseSet(try self.loader.readFile(resolved), source: "\(path).jwks_file")
                keys.append(contentsOf: set.keys)
                self.skippedKeys.append(contentsOf: set.skipped)
                if set.keys.isEmpty { self.issue("\(path).jwks_file", "\(JSONValue.quoted(file)) holds no usable key") }
            } catch let error as KeyError {
                self.issue("\(path).jwks_file", "\(JSONValue.quoted(file)): \(error.description)")
            } catch {
                self.issue("\(path).jwks_file", "\(error)")
            }
        }
        if object["keys"] == nil && object["jwks_file"] == nil && object["jwks_url"] == nil
            && object["discovery"] == nil && object["discovery_url"] == nil
        {
            self.issue(path, "needs at least one of keys, jwks_file, jwks_url, discovery")
        }
        var seenKids: Set<String> = []
        for key in keys {
            if let kid = key.kid, !seenKids.insert(kid).inserted {
                self.issue(path, "kid \(JSONValue.quoted(kid)) is used by more than one key")
            }
        }
        guard let name else { return nil }
        return Provider(name: name, issuer: issuer, audiences: audiences, clockSkewSeconds: skew, keys: keys, remote: remote)
    }

    /// `jwks_url`, or `discovery`/`discovery_url`, and their tuning fields.
    mutating func remoteSource(_ object: JSONObject, _ path: String, issuer: String?) -> RemoteKeySource? {
        var location: RemoteKeySource.Location?
        let discovery = self.bool(object, "discovery", path) ?? false
        let discoveryURL = self.string(object, "discovery_url", path)
        if let text = self.string(object, "jwks_url", path) {
            if discovery || discoveryURL != nil {
                self.issue("\(path).jwks_url", "give jwks_url or discovery, not both")
            } else if let url = FetchURL.parse(text) {
                location = .jwks(url)
            } else {
                self.issue("\(path).jwks_url", "\(JSONValue.quoted(text)) is not an http or https URL")
            }
        } else if discovery || discoveryURL != nil {
            guard let issuer else {
                self.issue("\(path).discovery", "needs issuer: the discovery document's issuer must equal it")
                return nil
            }
            if let text = discoveryURL {
                if let url = FetchURL.parse(text) {
                    location = .discovery(url, expectedIssuer: issuer)
                } else {
                    self.issue("\(path).discovery_url", "\(JSONValue.quoted(text)) is not an http or https URL")
                }
            } else if let base = FetchURL.parse(issuer) {
                location = .discovery(base.appendingPath("/.well-known/openid-configuration"), expectedIssuer: issuer)
            } else {
                self.issue("\(path).issuer", "\(JSONValue.quoted(issuer)) is not an http(s) URL, so discovery cannot use it")
            }
        }
        let refresh = self.number(object, "jwks_refresh_seconds", path, range: 1...86_400)
        let minimum = self.number(object, "jwks_min_refresh_seconds", path, range: 0...3_600)
        let timeout = self.number(object, "jwks_timeout_seconds", path, range: 0.1...120)
        let caFile = self.caFile(object, "jwks_ca_file", path)
        guard let location else {
            for field in ["jwks_refresh_seconds", "jwks_min_refresh_seconds", "jwks_timeout_seconds", "jwks_ca_file"]
            where object[field] != nil {
                self.issue("\(path).\(field)", "has no effect without jwks_url or discovery")
            }
            return nil
        }
        var source = RemoteKeySource(location: location)
        if let refresh { source.refreshSeconds = refresh }
        if let minimum { source.minimumRefreshSeconds = minimum }
        if let timeout { source.timeoutSeconds = timeout }
        source.caFile = caFile
        return source
    }

    mutating func key(_ value: JSONValue, _ path: String) -> VerificationKey? {
        let fields: Set<String> = ["kid", "alg", "secret_env", "secret_file", "public_key_file"]
        guard let object = self.object(value, path, allowed: fields) else { return nil }
        let kid = self.string(object, "kid", path)
        if let kid, kid.isEmpty { self.issue("\(path).kid", "must not be empty") }
        guard let algName = self.string(object, "alg", path, required: true) else { return nil }
        guard let algorithm = JWSAlgorithm(rawValue: algName) else {
            let names = JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
            self.issue("\(path).alg", "\(JSONValue.quoted(algName)) is not supported (one of \(names))")
            return nil
        }
        let sources = ["secret_env", "secret_file", "public_key_file"].filter { object[$0] != nil }
        guard sources.count == 1 else {
            self.issue(path, sources.isEmpty
                ? "needs one of secret_env, secret_file (HMAC) or public_key_file"
                : "has both \(sources.joined(separator: " and ")); give exactly one")
            return nil
        }
        do {
            if algorithm.family == .hmac {
                var secret: [UInt8]
                if let name = self.string(object, "secret_env", path) {
                    guard let text = self.loader.environment[name] else {
                        self.issue("\(path).secret_env", "environment variable \(name) is not set")
                        return nil
                    }
                    secret = Array(text.utf8)
                } else if let file = self.string(object, "secret_file", path) {
                    secret = try self.loader.readFile(FileReader.resolve(file, relativeTo: self.loader.baseDirectory))
                    // A file written by `echo` ends in a newline that is not part of the secret.
                    if secret.last == UInt8(ascii: "\n") { secret.removeLast() }
                    if secret.last == UInt8(ascii: "\r") { secret.removeLast() }
                } else {
                    self.issue("\(path).public_key_file", "\(algorithm) takes secret_env or secret_file, not a public key")
                    return nil
                }
                return try VerificationKey.hmac(kid: kid, algorithm: algorithm, secret: secret, source: path)
            } else {
                guard let file = self.string(object, "public_key_file", path) else {
                    self.issue(path, "\(algorithm) takes public_key_file, not a secret")
                    return nil
                }
                let bytes = try self.loader.readFile(FileReader.resolve(file, relativeTo: self.loader.baseDirectory))
                return try VerificationKey.publicKey(
                    kid: kid, algorithm: algorithm, pem: String(decoding: bytes, as: UTF8.self), source: path)
            }
        } catch let error as KeyError {
            self.issue(path, error.description)
        } catch {
            self.issue(path, "\(error)")
        }
        return nil
    }

    mutating func route(_ value: JSONValue, index: Int, providers: [Provider], defaultCAFile: String?) -> Route? {
        let path = "routes[\(index)]"
        let fields: Set<String> = [
            "path_prefix", "upstream", "strip_prefix", "upstream_ca_file", "auth", "require_claims", "providers",
            "max_body_bytes", "timeouts", "upgrade", "allowed_origins",
        ]
        guard let object = self.object(value, path, allowed: fields) else { return nil }
        var prefix = self.string(object, "path_prefix", path, required: true)
        if let raw = prefix {
            switch PathNormalizer.normalize(raw) {
            case .success(let normalized) where normalized.query == nil && normalized.path == raw:
                prefix = raw.count > 1 && raw.hasSuffix("/") ? String(raw.dropLast()) : raw
            case .success(let normalized):
                self.issue("\(path).path_prefix", "\(JSONValue.quoted(raw)) is not a normalised path (did you mean \(JSONValue.quoted(normalized.path))?)")
                prefix = nil
            case .failure(let rejection):
                self.issue("\(path).path_prefix", "\(JSONValue.quoted(raw)): \(rejection.description)")
                prefix = nil
            }
        }
        var upstream: Upstream?
        if let url = self.string(object, "upstream", path, required: true) {
            switch Upstream.parse(url) {
            case .success(let parsed): upstream = parsed
            case .failure(let problem): self.issue("\(path).upstream", problem.description)
            }
        }
        let caFile = self.caFile(object, "upstream_ca_file", path)
        if let parsed = upstream {
            if parsed.tls {
                upstream = parsed.trusting(caFile: caFile ?? defaultCAFile)
            } else if caFile != nil {
                self.issue("\(path).upstream_ca_file", "has no effect on an http upstream")
            }
        }
        let stripPrefix = self.bool(object, "strip_prefix", path) ?? false
        var auth = Route.Auth.required
        if let text = self.string(object, "auth", path) {
            if let parsed = Route.Auth(rawValue: text) { auth = parsed } else {
                self.issue("\(path).auth", "\(JSONValue.quoted(text)) is not \"required\" or \"none\"")
            }
        }
        var requireClaims: [(claim: String, values: [String])] = []
        if let value = object["require_claims"] {
            if auth == .none { self.issue("\(path).require_claims", "has no effect on a route with auth \"none\"") }
            if let claims = value.objectValue {
                for member in claims.members {
                    let claimPath = "\(path).require_claims.\(member.name)"
                    var values: [String]?
                    if let single = member.value.stringValue {
                        values = [single]
                    } else {
                        values = self.stringArray(member.value, claimPath)
                    }
                    if let values {
                        if values.isEmpty { self.issue(claimPath, "lists no accepted value; no token could pass") }
                        requireClaims.append((member.name, values))
                    }
                }
            } else {
                self.issue("\(path).require_claims", "expected an object of claim → accepted values, got \(value.kindName)")
            }
        }
        var providerIndices: [Int]?
        if let value = object["providers"] {
            if auth == .none { self.issue("\(path).providers", "has no effect on a route with auth \"none\"") }
            if let names = self.stringArray(value, "\(path).providers") {
                if names.isEmpty { self.issue("\(path).providers", "lists no provider; no token could pass") }
                var indices: [Int] = []
                for (position, name) in names.enumerated() {
                    if let found = providers.firstIndex(where: { $0.name == name }) {
                        indices.append(found)
                    } else {
                        self.issue("\(path).providers[\(position)]", "no provider is named \(JSONValue.quoted(name))")
                    }
                }
                providerIndices = indices
            }
        }
        var upgrade = ["websocket"]
        if let value = object["upgrade"], let names = self.stringArray(value, "\(path).upgrade") {
            upgrade = []
            for (position, name) in names.enumerated() {
                if let problem = UpgradeRules.configProblem(name) {
                    self.issue("\(path).upgrade[\(position)]", problem)
                } else if !upgrade.contains(name.lowercased()) {
                    upgrade.append(name.lowercased())
                }
            }
        }
        let maxBodyBytes = self.integer(object, "max_body_bytes", path, range: 0...(1 << 50))
        var allowedOrigins: [String] = []
        if let value = object["allowed_origins"], let origins = self.stringArray(value, "\(path).allowed_origins") {
            if origins.isEmpty { self.issue("\(path).allowed_origins", "is empty (leave it out to accept any origin)") }
            if upgrade.isEmpty { self.issue("\(path).allowed_origins", "has no effect on a route without upgrades") }
            for (position, origin) in origins.enumerated() {
                if let problem = Self.originProblem(origin) {
                    self.issue("\(path).allowed_origins[\(position)]", "\(JSONValue.quoted(origin)) \(problem)")
                } else {
                    allowedOrigins.append(origin.lowercased())
                }
            }
        }
        var connectSeconds: Double?
        var upstreamSeconds: Double?
        if let value = object["timeouts"],
            let timeouts = self.object(value, "\(path).timeouts", allowed: ["connect_seconds", "upstream_seconds"])
        {
            let range = 0.001...86_400.0
            connectSeconds = self.number(timeouts, "connect_seconds", "\(path).timeouts", range: range)
            upstreamSeconds = self.number(timeouts, "upstream_seconds", "\(path).timeouts", range: range)
        }
        guard let prefix, let upstream else { return nil }
        return Route(
            pathPrefix: prefix, upstream: upstream, stripPrefix: stripPrefix, auth: auth, requireClaims: requireClaims,
            providerIndices: providerIndices, index: index, upgrade: upgrade, allowedOrigins: allowedOrigins,
            maxBodyBytes: maxBodyBytes, connectSeconds: connectSeconds, upstreamSeconds: upstreamSeconds)
    }
}
