import XCTest
@testable import QmailCore

final class SHA1Tests: XCTestCase {
    func hex(_ b: [UInt8]) -> String { b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testSHA1KnownAnswers() {
        XCTAssertEqual(hex(SHA1.hash([])), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(hex(SHA1.hash(bytes("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(hex(SHA1.hash(bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
                       "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        // A million 'a's, fed in uneven pieces across block boundaries.
        var s = SHA1()
        var left = 1_000_000
        var piece = 1
        while left > 0 {
            let n = min(piece, left)
            s.update([UInt8](repeating: 0x61, count: n))
            left -= n
            piece = piece % 97 + 1
        }
        XCTAssertEqual(hex(s.finish()), "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    // RFC 2202 section 3: the seven HMAC-SHA1 test cases.
    func testHMACSHA1RFC2202() {
        let cases: [([UInt8], [UInt8], String)] = [
            ([UInt8](repeating: 0x0b, count: 20), bytes("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (bytes("Jefe"), bytes("what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            (Array(1...25), [UInt8](repeating: 0xcd, count: 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            ([UInt8](repeating: 0x0c, count: 20), bytes("Test With Truncation"), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
            ([UInt8](repeating: 0xaa, count: 80), bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
            ([UInt8](repeating: 0xaa, count: 80),
             bytes("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
             "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
        ]
        for (key, data, want) in cases {
            XCTAssertEqual(hex(HMACSHA1.mac(key: key, message: data)), want)
        }
    }
}

final class SRSTests: XCTestCase {
    let now = 1_700_000_000
    let srs = SRS(secrets: [Array("secret-one".utf8)])
    func b(_ s: String) -> [UInt8] { Array(s.utf8) }
    func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    // Made by a second implementation (Python srslib 0.1.5, the same
    // secret and clock): ours must give the same bytes.
    func testForwardMatchesSrslib() {
        XCTAssertEqual(s(srs.forward(b("Alice@Example.org"), domain: b("srs.example.com"), now: now)),
                       "SRS0=or4i=G3=Example.org=Alice@srs.example.com")
        XCTAssertEqual(s(srs.forward(b("SRS0=abcd=AB=orig.example=bob@first.example"), domain: b("srs.example.com"), now: now)),
                       "SRS1=T8W0=first.example==abcd=AB=orig.example=bob@srs.example.com")
        XCTAssertEqual(s(srs.forward(b("SRS1=wxyz=first.example==abcd=AB=orig.example=bob@second.example"),
                                     domain: b("srs.example.com"), now: now)),
                       "SRS1=T8W0=first.example==abcd=AB=orig.example=bob@srs.example.com")
    }

    func testSendersLeftAlone() {
        XCTAssertEqual(s(srs.forward(b("joe@SRS.example.com"), domain: b("srs.example.com"), now: now)), "joe@SRS.example.com")
        XCTAssertEqual(s(srs.forward(b("no-at-sign"), domain: b("srs.example.com"), now: now)), "no-at-sign")
    }

    func testRoundTripsAndCaseFolding() {
        let a = srs.forward(b("Alice@Example.org"), domain: b("srs.example.com"), now: now)
        XCTAssertEqual(srs.reverse(a, now: now).map(s), .success("Alice@Example.org"))
        XCTAssertEqual(srs.reverse(a.lowercasedASCII(), now: now).map(s), .success("alice@example.org"))
        XCTAssertEqual(srs.reverse(b(s(a).uppercased()), now: now).map(s), .success("ALICE@EXAMPLE.ORG"))
        let one = srs.forward(b("SRS0=abcd=AB=orig.example=bob@first.example"), domain: b("srs.example.com"), now: now)
        XCTAssertEqual(srs.reverse(one, now: now).map(s), .success("SRS0=abcd=AB=orig.example=bob@first.example"))
        // A local part holding '=' and a '-' separator (libsrs2 accepts = - +).
        let eq = srs.forward(b("a=b@example.org"), domain: b("srs.example.com"), now: now)
        XCTAssertEqual(srs.reverse(eq, now: now).map(s), .success("a=b@example.org"))
        XCTAssertEqual(srs.reverse(b("SRS0-" + s(Array(eq.dropFirst(5)))), now: now).map(s), .success("a=b@example.org"))
    }

    func testAgeLimit() {
        let a = srs.forward(b("alice@example.org"), domain: b("srs.example.com"), now: now)
        XCTAssertEqual(srs.reverse(a, now: now + 21 * 86400).map(s), .success("alice@example.org"))
        XCTAssertEqual(srs.reverse(a, now: now + 22 * 86400), .failure(.expired))
        // The 1024-day wrap: a stamp "ahead" of today is an old one.
        XCTAssertEqual(srs.reverse(a, now: now - 86400), .failure(.expired))
        XCTAssertEqual(s(SRS.timestamp(now)), "G3")
    }

    func testForgeriesAndMalformed() {
        let a = s(srs.forward(b("alice@example.org"), domain: b("srs.example.com"), now: now))
        let forged = a.replacing("alice", with: "mallory")
        XCTAssertEqual(srs.reverse(b(forged), now: now), .failure(.badHash))
        XCTAssertEqual(SRS(secrets: [b("other")]).reverse(b(a), now: now), .failure(.badHash))
        XCTAssertEqual(srs.reverse(b("SRS0=abc=G3=example.org=alice@x"), now: now), .failure(.badHash))
        XCTAssertEqual(srs.reverse(b("SRS0=abcd=G3=example.org@x"), now: now), .failure(.malformed))
        XCTAssertEqual(srs.reverse(b("SRS0=abcd=G!=example.org=a@x"), now: now), .failure(.malformed))
        XCTAssertEqual(srs.reverse(b("SRS0=abcd=G3==a@x"), now: now), .failure(.malformed))
        XCTAssertEqual(srs.reverse(b("SRS1=abcd=first@x"), now: now), .failure(.malformed))
        XCTAssertEqual(srs.reverse(b("alice@x"), now: now), .failure(.notSRS))
        XCTAssertEqual(srs.reverse(b("SRS2=abcd=G3=e=a@x"), now: now), .failure(.notSRS))
        XCTAssertEqual(srs.reverse(b("SRS0="), now: now), .failure(.notSRS))
    }

    func testRotation() {
        let old = SRS(secrets: [b("old")])
        let a = old.forward(b("alice@example.org"), domain: b("srs.example.com"), now: now)
        let rotated = SRS(secrets: [b("new"), b("old")])
        XCTAssertEqual(rotated.reverse(a, now: now).map(s), .success("alice@example.org"))
        let signed = rotated.forward(b("alice@example.org"), domain: b("srs.example.com"), now: now)
        XCTAssertEqual(SRS(secrets: [b("new")]).reverse(signed, now: now).map(s), .success("alice@example.org"))
        XCTAssertEqual(old.reverse(signed, now: now), .failure(.badHash))
    }
}
