// DKIM keys and their signatures through OpenSSL's EVP interface, the
// library qmail-remote links for TLS already (so signing adds no start-up
// cost of its own): RSA-SHA256 (RFC 6376) and Ed25519-SHA256 (RFC 8463).
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import QmailCore

public enum DKIMAlgorithm: String, CaseIterable, Sendable {
    case rsa
    case ed25519

    /// The a= tag of a signature made with this key type.
    public var tag: String { self == .rsa ? "rsa-sha256" : "ed25519-sha256" }
    /// The k= tag of the DNS record.
    public var keyType: String { rawValue }
    /// Suffix of the key file and of generated selector names.
    public var fileSuffix: String { "." + rawValue }
    public var selectorLetter: String { self == .rsa ? "r" : "e" }

    public init?(tag: [UInt8]) {
        switch String(decoding: tag, as: UTF8.self).lowercased() {
        case "rsa-sha256": self = .rsa
        case "ed25519-sha256": self = .ed25519
        default: return nil
        }
    }
}

public struct DKIMKeyError: Error, CustomStringConvertible {
    public let description: String
    init(_ s: String) { description = s }

    /// OpenSSL's oldest queued error, ": text", and the queue emptied.
    static func openSSLReason() -> String {
        let e = qossl_ERR_get_error()
        qossl_ERR_clear_error()
        if e == 0 { return "" }
        var buf = [CChar](repeating: 0, count: 256)
        qossl_ERR_error_string_n(e, &buf, buf.count)
        return ": " + String(cString: buf)
    }
}

/// A private key (signing) or a public key (verifying).
public final class DKIMKey {
    public let algorithm: DKIMAlgorithm
    let pkey: OpaquePointer

    init(_ pkey: OpaquePointer) throws {
        switch qossl_EVP_PKEY_get_id(pkey) {
        case EVP_PKEY_RSA: algorithm = .rsa
        case EVP_PKEY_ED25519: algorithm = .ed25519
        default:
            qossl_EVP_PKEY_free(pkey)
            throw DKIMKeyError("neither an RSA nor an Ed25519 key")
        }
        self.pkey = pkey
    }

    deinit { qossl_EVP_PKEY_free(pkey) }

    /// A private key from PEM text (PKCS#8 or traditional RSA).
    public convenience init(privatePEM pem: [UInt8]) throws {
        // A memory BIO reads the caller's bytes in place: use it inside the closure only.
        let key = pem.withUnsafeBytes { buf -> OpaquePointer? in
            guard let bio = qossl_BIO_new_mem_buf(buf.baseAddress, Int32(buf.count)) else { return nil }
            defer { qossl_BIO_free(bio) }
            return qossl_PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let k = key else { throw DKIMKeyError("not a PEM private key" + DKIMKeyError.openSSLReason()) }
        try self.init(k)
    }

    /// A public key as a DNS record's p= carries it: DER SubjectPublicKeyInfo
    /// for RSA, the 32 raw bytes for Ed25519.
    public convenience init(algorithm: DKIMAlgorithm, publicKey p: [UInt8]) throws {
        let k: OpaquePointer?
        switch algorithm {
        case .rsa:
            k = p.withUnsafeBufferPointer { buf -> OpaquePointer? in
                var ptr: UnsafePointer<UInt8>? = buf.baseAddress
                return qossl_d2i_PUBKEY(nil, &ptr, buf.count)
            }
        case .ed25519:
            k = p.count == 32 ? qossl_EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, p, 32) : nil
        }
        guard let k else { throw DKIMKeyError("unusable \(algorithm.rawValue) public key") }
        try self.init(k)
        if algorithm != self.algorithm { throw DKIMKeyError("key type is not \(algorithm.rawValue)") }
    }

    /// A new key: RSA of `bits` bits, or Ed25519.
    public static func generate(_ algorithm: DKIMAlgorithm, bits: Int = 2048) throws -> DKIMKey {
        guard let ctx = qossl_EVP_PKEY_CTX_new_id(algorithm == .rsa ? EVP_PKEY_RSA : EVP_PKEY_ED25519, nil) else {
            throw DKIMKeyError("out of memory")
        }
        defer { qossl_EVP_PKEY_CTX_free(ctx) }
        guard qossl_EVP_PKEY_keygen_init(ctx) == 1 else { throw DKIMKeyError("key generation failed") }
        if algorithm == .rsa, qossl_EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) != 1 {
            throw DKIMKeyError("bad RSA key size \(bits)")
        }
        var k: OpaquePointer? = nil
        guard qossl_EVP_PKEY_keygen(ctx, &k) == 1, let k else { throw DKIMKeyError("key generation failed") }
        return try DKIMKey(k)
    }

    public var bits: Int { Int(qossl_EVP_PKEY_get_bits(pkey)) }

    /// The private key as PKCS#8 PEM (what OpenDKIM and dkimpy read too).
    public func privatePEM() throws -> [UInt8] {
        guard let bio = qossl_BIO_new(qossl_BIO_s_mem()) else { throw DKIMKeyError("out of memory") }
        defer { qossl_BIO_free(bio) }
        guard qossl_PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else { throw DKIMKeyError("cannot write key") }
        var p: UnsafeMutablePointer<CChar>? = nil
        let n = qdkim_bio_mem_data(bio, &p)
        guard n > 0, let p else { throw DKIMKeyError("cannot write key") }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
    }

    /// The p= value of the DNS record, base64.
    public func publicKeyBase64() throws -> String {
        var der: [UInt8]
        switch algorithm {
        case .rsa:
            let n = qossl_i2d_PUBKEY(pkey, nil)
            guard n > 0 else { throw DKIMKeyError("cannot encode public key") }
            der = [UInt8](repeating: 0, count: Int(n))
            _ = der.withUnsafeMutableBufferPointer { buf -> Int32 in
                var p: UnsafeMutablePointer<UInt8>? = buf.baseAddress
                return qossl_i2d_PUBKEY(pkey, &p)
            }
        case .ed25519:
            var len = 32
            der = [UInt8](repeating: 0, count: 32)
            guard qossl_EVP_PKEY_get_raw_public_key(pkey, &der, &len) == 1 else { throw DKIMKeyError("cannot encode public key") }
            der = Array(der[..<len])
        }
        return String(decoding: DKIMBase64.encode(der), as: UTF8.self)
    }

    /// The b= signature of `data` (the canonical header block): RSA signs
    /// with SHA-256 and PKCS#1 v1.5; Ed25519 signs the SHA-256 digest of the
    /// data (RFC 8463 section 3).
    public func sign(_ data: [UInt8]) throws -> [UInt8] {
        guard let ctx = qossl_EVP_MD_CTX_new() else { throw DKIMKeyError("out of memory") }
        defer { qossl_EVP_MD_CTX_free(ctx) }
        let input = algorithm == .rsa ? data : SHA256Digest.of(data)
        guard qossl_EVP_DigestSignInit(ctx, nil, algorithm == .rsa ? qossl_EVP_sha256() : nil, nil, pkey) == 1 else {
            throw DKIMKeyError("signing failed")
        }
        var len = 0
        guard qossl_EVP_DigestSign(ctx, nil, &len, input, input.count) == 1 else { throw DKIMKeyError("signing failed") }
        var sig = [UInt8](repeating: 0, count: len)
        guard qossl_EVP_DigestSign(ctx, &sig, &len, input, input.count) == 1 else { throw DKIMKeyError("signing failed") }
        return Array(sig[..<len])
    }

    /// True when `signature` is this (public) key's signature of `data`.
    public func verify(_ signature: [UInt8], of data: [UInt8]) -> Bool {
        guard let ctx = qossl_EVP_MD_CTX_new() else { return false }
        defer { qossl_EVP_MD_CTX_free(ctx) }
        let input = algorithm == .rsa ? data : SHA256Digest.of(data)
        guard qossl_EVP_DigestVerifyInit(ctx, nil, algorithm == .rsa ? qossl_EVP_sha256() : nil, nil, pkey) == 1 else { return false }
        return qossl_EVP_DigestVerify(ctx, signature, signature.count, input, input.count) == 1
    }
}

/// SHA-256 over data given in pieces (the body hash).
public final class SHA256Digest {
    let ctx: OpaquePointer

    public init() {
        ctx = qossl_EVP_MD_CTX_new()!
        qossl_EVP_DigestInit_ex(ctx, qossl_EVP_sha256(), nil)
    }

    deinit { qossl_EVP_MD_CTX_free(ctx) }

    public func update(_ p: UnsafeRawBufferPointer) {
        if !p.isEmpty { qossl_EVP_DigestUpdate(ctx, p.baseAddress, p.count) }
    }

    public func update(_ b: [UInt8]) { b.withUnsafeBytes { update($0) } }

    public func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        qossl_EVP_DigestFinal_ex(ctx, &out, &n)
        return out
    }

    public static func of(_ b: [UInt8]) -> [UInt8] {
        let d = SHA256Digest()
        d.update(b)
        return d.finish()
    }
}

/// Base64 of DKIM tag values: QmailCore's coder, with the folding white
/// space a tag value may hold removed before decoding.
enum DKIMBase64 {
    static func encode(_ b: [UInt8]) -> [UInt8] { Base64.encode(b) }

    static func decode(_ s: [UInt8]) -> [UInt8]? {
        Base64.decode(s.filter { $0 != 32 && $0 != 9 && $0 != 13 && $0 != 10 })
    }
}
