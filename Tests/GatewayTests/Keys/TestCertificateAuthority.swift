import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority made in the test, and a server certificate it signs (by default for
/// loopback: IP 127.0.0.1 and DNS localhost).
struct TestCertificateAuthority {
    static let loopbackNames: [GeneralName] = [
        .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost"),
    ]

    let caKey = P256.Signing.PrivateKey()
    let caCertificate: Certificate
    let serverKey = P256.Signing.PrivateKey()
    let serverCertificate: Certificate

    /// - Parameter serverNames: the server certificate's subject alternative names.
    init(serverNames: [GeneralName] = Self.loopbackNames) throws {
        let now = Date()
        let caName = try DistinguishedName { CommonName("authgate test CA") }
        self.caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(self.caKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 3600, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(self.caKey))
        self.serverCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(self.serverKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 3600, issuer: caName,
            subject: try DistinguishedName { CommonName("127.0.0.1") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames(serverNames)
            },
            issuerPrivateKey: .init(self.caKey))
    }

    var caPEM: String {
        get throws { try self.caCertificate.serializeAsPEM().pemString }
    }

    var serverCertificatePEM: String {
        get throws { try self.serverCertificate.serializeAsPEM().pemString }
    }

    /// PKCS#8 PEM.
    var serverKeyPEM: String { self.serverKey.pemRepresentation }

    func serverContext() throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(try self.serverCertificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(self.serverKeyPEM.utf8), format: .pem)
        return try NIOSSLContext(
            configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }

    /// A client context that trusts only this CA. `maximumVersion`/`cipherSuites` narrow what the
    /// client offers (to check what the server refuses).
    func clientContext(
        minimumVersion: TLSVersion = .tlsv1, maximumVersion: TLSVersion? = nil, cipherSuites: String? = nil
    ) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(try self.caPEM.utf8), format: .pem)])
        configuration.minimumTLSVersion = minimumVersion
        configuration.maximumTLSVersion = maximumVersion
        if let cipherSuites { configuration.cipherSuites = cipherSuites }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Files in a fresh temporary directory, deleted by `remove()`.
final class TemporaryFiles: Sendable {
    let directory: String

    init(prefix: String = "authgate-tls") throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` in the directory; returns the absolute path.
    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let path = self.directory + "/" + name
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The absolute path of `name` in the directory (nothing is written).
    func path(_ name: String) -> String {
        self.directory + "/" + name
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}
