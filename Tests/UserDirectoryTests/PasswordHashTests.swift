import XCTest
@testable import UserDirectory
import QmailCore

final class PasswordHashTests: XCTestCase {
    func testEverySchemeRoundTrips() throws {
        for scheme in PasswordHash.Scheme.allCases {
            let h = try PasswordHash.make(Array("s3cret pass".utf8), scheme: scheme)
            XCTAssertTrue(h.hasPrefix(Array(scheme.rawValue.utf8)), "\(scheme): \(h.string)")
            XCTAssertEqual(PasswordHash.scheme(of: h), scheme)
            XCTAssertTrue(PasswordHash.verify(Array("s3cret pass".utf8), hash: h), "\(scheme)")
            XCTAssertFalse(PasswordHash.verify(Array("s3cret pasS".utf8), hash: h), "\(scheme)")
            XCTAssertFalse(PasswordHash.verify([], hash: h), "\(scheme)")
        }
    }

    func testDefaultIsYescryptAndSaltsDiffer() throws {
        let a = try PasswordHash.make(Array("x".utf8))
        let b = try PasswordHash.make(Array("x".utf8))
        XCTAssertTrue(a.hasPrefix(Array("$y$".utf8)))
        XCTAssertNotEqual(a, b)
    }

    func testKnownSha512CryptVector() {
        // From the SHA-crypt specification's test vectors.
        let h = Array("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1".utf8)
        XCTAssertTrue(PasswordHash.verify(Array("Hello world!".utf8), hash: h))
        XCTAssertFalse(PasswordHash.verify(Array("Hello world".utf8), hash: h))
    }

    func testLockedEmptyAndForeignHashesNeverMatch() {
        for h in ["", "*", "!", "!!", "*LK*", "abJnggxhB/yWI", "{PLAIN}x", "x"] {
            XCTAssertFalse(PasswordHash.verify(Array("x".utf8), hash: Array(h.utf8)), h)
            XCTAssertNil(PasswordHash.scheme(of: Array(h.utf8)), h)
        }
        XCTAssertFalse(PasswordHash.verify(Array("a\0b".utf8), hash: PasswordHash.dummy))
        XCTAssertThrowsError(try PasswordHash.make(Array("a\0b".utf8)))
    }

    func testDummyIsAValidYescryptHash() {
        XCTAssertEqual(PasswordHash.scheme(of: PasswordHash.dummy), .yescrypt)
        XCTAssertNotNil(PasswordHash.compute(Array("anything".utf8), setting: PasswordHash.dummy))
    }

    func testConstantTimeEquals() {
        XCTAssertTrue(ConstantTime.equals([], []))
        XCTAssertTrue(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2]))
        XCTAssertFalse(ConstantTime.equals([1, 2], [1, 2, 0]))
    }

    func testMD5Vectors() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("12345678901234567890123456789012345678901234567890123456789012345678901234567890",
             "57edf4a22be3c955ac49da2e2107b67a"),
            // RFC 1939's APOP example.
            ("<1896.697170952@dbc.mtview.ca.us>tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"),
        ]
        for (input, want) in cases {
            XCTAssertEqual(MD5.hex(Array(input.utf8)).string, want, input)
        }
    }

    func testHMACMD5Vectors() {
        // RFC 2202 cases 2 and 6 (a key longer than a block), and RFC 2195's CRAM-MD5 example.
        XCTAssertEqual(MD5.hmacHex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)).string,
                       "750c783e6ab0b503eaa86e310a5db738")
        XCTAssertEqual(MD5.hmacHex(key: [UInt8](repeating: 0xaa, count: 80),
                                   message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)).string,
                       "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
        XCTAssertEqual(MD5.hmacHex(key: Array("tanstaaftanstaaf".utf8),
                                   message: Array("<1896.697170952@postoffice.reston.mci.net>".utf8)).string,
                       "b913a602c7eda7a495b4e6e7334d3890")
    }

    func testSchemeNames() {
        XCTAssertEqual(PasswordHash.Scheme(name: "SHA512"), .sha512)
        XCTAssertEqual(PasswordHash.Scheme(name: "yescrypt"), .yescrypt)
        XCTAssertEqual(PasswordHash.Scheme(name: "md5-crypt"), .md5)
        XCTAssertNil(PasswordHash.Scheme(name: "des"))
    }
}
