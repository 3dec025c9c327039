import NIOSSL
import SwiftASN1
import X509

/// TLS on the gateway's listener (`tls` in gateway.json): the certificate chain and private key,
/// read and checked when the configuration is loaded, and the policy the listener enforces.
public struct ListenerTLS: Sendable {
    public enum MinimumVersion: String, Sendable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// Where the chain and key came from (resolved paths), for logs.
    public var certificateFile: String
    public var keyFile: String
    /// The server certificate first, then the intermediates that lead to the client's trust anchor.
    public var certificateChain: [NIOSSLCertificate]
    public var privateKey: NIOSSLPrivateKey
    public var minimumVersion: MinimumVersion

    public init(
        certificateFile: String, keyFile: String, certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey,
        minimumVersion: MinimumVersion = .tls12
    ) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.minimumVersion = minimumVersion
    }

    /// The TLS 1.2 suites offered: ECDHE key exchange (forward secrecy) with AEAD ciphers only,
    /// no CBC, RSA key exchange or SHA-1 MACs. TLS 1.3's suites are all of that kind, and BoringSSL
    /// does not make them configurable.
    public static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// The listener's TLS context. The one place it is built from configuration, so a reload
    /// builds its replacement the same way (`GatewayServer.replaceTLSContext`).
    public func makeServerContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: self.certificateChain.map { .certificate($0) }, privateKey: .privateKey(self.privateKey))
        configuration.minimumTLSVersion = self.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.cipherSuiteValues = Self.tls12CipherSuites
        configuration.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }

    /// Why a certificate or key file cannot be used, and which of the two is at fault.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public enum File: Sendable, Equatable {
            case certificate
            case key
        }

        public let file: File
        public let description: String
    }

    /// Reads a PEM certificate chain and a PEM private key, and checks that they belong together:
    /// at least one certificate, the chain in order (each certificate issued by the next), an
    /// unencrypted key, and the key the leaf certificate's.
    public static func identity(certificatePEM: [UInt8], keyPEM: [UInt8]) throws(Problem) -> (
        chain: [NIOSSLCertificate], key: NIOSSLPrivateKey
    ) {
        let certificateText = String(decoding: certificatePEM, as: UTF8.self)
        let documents: [PEMDocument]
        let certificates: [Certificate]
        do {
            documents = try PEMDocument.parseMultiple(pemString: certificateText).filter { $0.discriminator == "CERTIFICATE" }
            certificates = try documents.map { try Certificate(derEncoded: $0.derBytes) }
        } catch {
            throw Problem(file: .certificate, description: "holds a PEM certificate that cannot be read (\(error))")
        }
        guard let leaf = certificates.first else {
            throw Problem(file: .certificate, description: "holds no PEM certificate")
        }
        for (index, pair) in zip(certificates, certificates.dropFirst()).enumerated() where pair.0.issuer != pair.1.subject {
            throw Problem(
                file: .certificate,
                description: "certificate \(index + 2) did not issue certificate \(index + 1); "
                    + "list the server certificate first, then each issuer in turn")
        }

        let keyText = String(decoding: keyPEM, as: UTF8.self)
        if keyText.contains("ENCRYPTED") {
            throw Problem(file: .key, description: "is encrypted; give the key unencrypted (and protect the file)")
        }
        let keyDocument: PEMDocument
        do {
            guard
                let found = try PEMDocument.parseMultiple(pemString: keyText).first(where: {
                    $0.discriminator.hasSuffix("PRIVATE KEY")
                })
            else {
                throw Problem(file: .key, description: "holds no PEM private key")
            }
            keyDocument = found
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(file: .key, description: "holds no readable PEM private key (\(error))")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemDocument: keyDocument)
        } catch {
            throw Problem(file: .key, description: "holds a private key that cannot be used (\(error))")
        }
        guard key.publicKey == leaf.publicKey else {
            throw Problem(file: .key, description: "does not match the certificate in cert_file")
        }

        do {
            let chain = try documents.map { try NIOSSLCertificate(bytes: $0.derBytes, format: .der) }
            // As PEM: BoringSSL reads every PEM key type (PKCS#8, SEC1, PKCS#1) and skips other blocks.
            let nioKey = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem)
            return (chain, nioKey)
        } catch {
            throw Problem(file: .key, description: "cannot be loaded for TLS (\(error))")
        }
    }
}
