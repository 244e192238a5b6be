import XCTest
@testable import QmailDKIM
import TestSupport

final class DKIMTests: XCTestCase {
    func crlf(_ s: String) -> [UInt8] { b(s.replacingOccurrences(of: "\n", with: "\r\n")) }

    // RFC 6376 section 3.4.5's example of relaxed canonicalization.
    func testRelaxedHeaderAndBodyExample() {
        let fields = DKIMCanonical.fields(b("A: X\r\nB : Y\t\r\n\tZ  \r\n"))
        XCTAssertEqual(fields.map { $0.name }, [b("a"), b("b")])
        XCTAssertBytes(fields.flatMap { DKIMCanonical.relaxedHeader($0.raw) }, b("a:X\r\nb:Y Z\r\n"))
        XCTAssertEqual(RelaxedBody.hash(b(" C \r\nD \t E\r\n\r\n\r\n")), SHA256Digest.of(b(" C\r\nD E\r\n")))
    }

    func testRelaxedBodyEdges() {
        // An empty body (or one of blank lines) hashes as nothing at all.
        let empty = SHA256Digest.of([])
        XCTAssertEqual(RelaxedBody.hash([]), empty)
        XCTAssertEqual(RelaxedBody.hash(b("\r\n\r\n \t\r\n")), empty)
        XCTAssertBytes(DKIMBase64.encode(empty), b("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="))
        // A last line without CRLF gets one; inner blank lines stay.
        XCTAssertEqual(RelaxedBody.hash(b("a\r\n\r\nb")), SHA256Digest.of(b("a\r\n\r\nb\r\n")))
    }

    /// The DATA text (dots doubled) gives the header and body hash of the
    /// message it carries.
    func testWireScannerUndoesDotStuffing() {
        var s = DKIMWireScanner()
        let wire = crlf("From: a@b.example\n..hdr: x\n\n..dot\nplain\n")
        for chunk in [wire[0..<3], wire[3..<20], wire[20...]] { Array(chunk).withUnsafeBytes { s.feed($0) } }
        XCTAssertEqual(s.header, crlf("From: a@b.example\n.hdr: x\n"))
        XCTAssertEqual(s.bodyHash(), SHA256Digest.of(crlf(".dot\nplain\n")))
    }

    func testFromDomain() {
        XCTAssertEqual(DKIMSigner.fromDomain(crlf("To: x@y\nFrom: \"Joe (at) home\" <Joe@Example.ORG>\n")), "example.org")
        XCTAssertEqual(DKIMSigner.fromDomain(crlf("From: joe@news.example.org (Joe <x@evil.example>)\n")), "news.example.org")
        XCTAssertNil(DKIMSigner.fromDomain(crlf("From: joe@../../etc\n")))
        XCTAssertNil(DKIMSigner.fromDomain(crlf("Subject: none\n")))
        XCTAssertEqual(DKIMDomain.withParents("a.b.example.org"), ["a.b.example.org", "b.example.org", "example.org"])
    }

    // RFC 8463 appendix A: the example message signed with Ed25519 and RSA.
    static let rfc8463 = """
        DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
         d=football.example.com; i=@football.example.com;
         q=dns/txt; s=brisbane; t=1528637909; h=from : to :
         subject : date : message-id : from : subject : date;
         bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
         b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
         Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
        DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
         d=football.example.com; i=@football.example.com;
         q=dns/txt; s=test; t=1528637909; h=from : to : subject :
         date : message-id : from : subject : date;
         bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
         b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
         DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
         dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
        From: Joe SixPack <joe@football.example.com>
        To: Suzie Q <suzie@shopping.example.net>
        Subject: Is dinner ready?
        Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
        Message-ID: <20030712040037.46341.5F8J@football.example.com>

        Hi.

        We lost the game.  Are you hungry yet?

        Joe.

        """
    static let rfc8463Records = [
        "brisbane football.example.com": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        "test football.example.com": "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
    ]

    func testRFC8463BodyHashAndSignatures() {
        let message = crlf(Self.rfc8463)
        let body = crlf("Hi.\n\nWe lost the game.  Are you hungry yet?\n\nJoe.\n")
        XCTAssertBytes(DKIMBase64.encode(RelaxedBody.hash(body)), b("2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="))
        let lookup: (String, String) -> String? = { Self.rfc8463Records["\($0) \($1)"] }
        XCTAssertEqual(DKIMVerifier.verify(message, index: 0, record: lookup), .pass)
        XCTAssertEqual(DKIMVerifier.verify(message, index: 1, record: lookup), .pass)
        // One changed byte in the body, then in a signed header.
        var changed = message
        changed[changed.count - 4] = UInt8(ascii: "X")
        XCTAssertEqual(DKIMVerifier.verify(changed, index: 0, record: lookup), .fail("body hash mismatch"))
        let tampered = b(String(decoding: message, as: UTF8.self).replacingOccurrences(of: "dinner", with: "lunch"))
        XCTAssertEqual(DKIMVerifier.verify(tampered, index: 0, record: lookup), .fail("signature mismatch"))
        XCTAssertEqual(DKIMVerifier.verify(tampered, index: 1, record: lookup), .fail("signature mismatch"))
    }

    func testSignThenVerifyBothKeyTypes() throws {
        let message = crlf("From: Joe <joe@example.org>\nTo: x@y.example\nSubject: a\n  folded\n\nbody\n")
        var s = DKIMWireScanner()
        s.feed(message)
        let bh = s.bodyHash()
        for a in DKIMAlgorithm.allCases {
            let key = try DKIMKey.generate(a)
            let pem = try DKIMKey(privatePEM: try key.privatePEM())
            let sig = try DKIMSigner.signature(header: s.header, bodyHash: bh, key: pem, domain: "example.org",
                                               selector: "sel", time: 1_700_000_000)
            let record = "v=DKIM1; k=\(a.keyType); p=\(try key.publicKeyBase64())"
            XCTAssertEqual(DKIMVerifier.verify(sig + message, record: { _, _ in record }), .pass, "\(a)")
            // A second From: added after signing breaks it (From is oversigned).
            XCTAssertNotEqual(DKIMVerifier.verify(sig + crlf("From: evil@x.example\n") + message,
                                                  record: { _, _ in record }), .pass)
        }
    }
}
