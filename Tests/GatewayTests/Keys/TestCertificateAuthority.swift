import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority made in the test, and a loopback server certificate it signs.
struct TestCertificateAuthority {
    let caKey = P256.Signing.PrivateKey()
    let caCertificate: Certificate
    let serverKey = P256.Signing.PrivateKey()
    let serverCertificate: Certificate

    init() throws {
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
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost")])
            },
            issuerPrivateKey: .init(self.caKey))
    }

    var caPEM: String {
        get throws { try self.caCertificate.serializeAsPEM().pemString }
    }

    func serverContext() throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(try self.serverCertificate.serializeAsPEM().pemString.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(self.serverKey.pemRepresentation.utf8), format: .pem)
        return try NIOSSLContext(
            configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }
}
