import NIOConcurrencyHelpers
import NIOSSL

/// The gateway as a TLS client: to https upstreams and to https key sets.
enum ClientTLS {
    /// A client context: TLS 1.2 or later, ALPN `http/1.1`, and full verification — the peer's
    /// chain against the system trust store or, when given, only the CA certificates in `caFile`;
    /// its name against `serverName(for:)` (NIOSSL does that check when the handler is created
    /// with a server name, and checks IP addresses against the certificate's IP entries).
    static func makeContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.applicationProtocols = ["http/1.1"]
        if let caFile { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Why a CA file (`jwks_ca_file`, `upstream_ca_file`) cannot serve as trust roots, phrased to
    /// follow its name; nil when it holds at least one certificate and BoringSSL (which will load
    /// it) reads all of them. A whole system bundle passes, whatever its oldest certificates are.
    static func caBundleProblem(_ pem: [UInt8]) -> String? {
        guard String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            return "holds no PEM certificate"
        }
        do {
            return try NIOSSLCertificate.fromPEMBytes(pem).isEmpty ? "holds no PEM certificate" : nil
        } catch {
            return "holds a PEM certificate that cannot be read (\(error))"
        }
    }

    /// The name sent as SNI and checked against the certificate: the host, unless it is an IP
    /// address, which SNI cannot carry.
    static func serverName(for host: String) -> String? {
        let isIPAddress = host.contains(":") || host.utf8.allSatisfy { $0 == UInt8(ascii: ".") || ($0 >= 48 && $0 <= 57) }
        return isIPAddress ? nil : host
    }
}

/// Client contexts for https upstreams, one per trust configuration (the system store, or one CA
/// file), built before they are needed: loading trust roots reads files and is slow, and a context
/// serves every event loop.
final class UpstreamTLSContexts: Sendable {
    private let contexts = NIOLockedValueBox<[String?: NIOSSLContext]>([:])

    /// - Throws: when a CA file cannot be loaded.
    init(upstreams: [Upstream]) throws {
        try self.prepare(upstreams)
    }

    /// Builds the contexts the https upstreams among `upstreams` need and that do not exist yet
    /// (for a reload that adds routes).
    func prepare(_ upstreams: [Upstream]) throws {
        for upstream in upstreams where upstream.tls {
            let caFile = upstream.endpoint.caFile
            guard self.contexts.withLockedValue({ $0[caFile] }) == nil else { continue }
            let context = try ClientTLS.makeContext(caFile: caFile)
            self.contexts.withLockedValue { $0[caFile] = context }
        }
    }

    /// The context for an https endpoint; nil when `prepare` never saw its trust configuration.
    func context(for endpoint: Upstream.Endpoint) -> NIOSSLContext? {
        self.contexts.withLockedValue { $0[endpoint.caFile] }
    }
}
