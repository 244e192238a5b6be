import XCTest
@testable import UserDirectory
import QmailCore
import TestSupport

final class NamesTests: XCTestCase {

    func testUsers() throws {
        XCTAssertBytes(try Names.user(b("Alice.Smith")), b("alice.smith"))
        for ok in ["a", "john_doe", "x-y", "a+b", "0", String(repeating: "a", count: 64)] {
            XCTAssertNoThrow(try Names.user(b(ok)), ok)
        }
        let bad: [[UInt8]] = [b(""), b("a/b"), b(".."), b("a..b"), b(".hidden"), b("-x"), b("a b"), b("a\nb"),
                              [97, 0, 98], b("a:b"), b("a@b"), b(String(repeating: "a", count: 65)), b("é")]
        for n in bad { XCTAssertThrowsError(try Names.user(n), n.string) }
    }

    func testDomains() throws {
        XCTAssertBytes(try Names.domain(b("Example.COM")), b("example.com"))
        for ok in ["example.com", "a.b-c.d", "localhost", "x1.y2"] { XCTAssertNoThrow(try Names.domain(b(ok)), ok) }
        let bad: [[UInt8]] = [b(""), b("."), b(".example.com"), b("example.com."), b("a..b"), b("../etc"), b("a/b"),
                              b("a b"), b("a\nb"), [97, 0], b("-a.com"), b("a-.com"), b("a_b.com"),
                              b(String(repeating: "a", count: 64) + ".com"),
                              b(String(repeating: "abcdefghi.", count: 26) + "com")]
        for n in bad { XCTAssertThrowsError(try Names.domain(n), n.string) }
    }

    func testAddressAndPassword() throws {
        let (u, d) = try Names.address(b("Bob@Example.org"))
        XCTAssertBytes(u, b("bob"))
        XCTAssertBytes(d, b("example.org"))
        XCTAssertBytes(try Names.address(b("bob%example.org")).domain, b("example.org"))
        XCTAssertThrowsError(try Names.address(b("bob")))
        XCTAssertThrowsError(try Names.address(b("../x@example.org")))
        XCTAssertNoThrow(try Names.password(b("p:a s$s")))
        XCTAssertThrowsError(try Names.password(b("")))
        XCTAssertThrowsError(try Names.password(b("a\nb")))
        XCTAssertThrowsError(try Names.password([97, 0]))
        XCTAssertThrowsError(try Names.password(b(String(repeating: "x", count: 257))))
        XCTAssertThrowsError(try Names.gecos(b("a:b")))
        XCTAssertNoThrow(try Names.forwardTarget(b("x@y.org")))
        XCTAssertNoThrow(try Names.forwardTarget(b("/var/mail/x/Maildir/")))
        XCTAssertThrowsError(try Names.forwardTarget(b("/a/../b/")))
        XCTAssertThrowsError(try Names.forwardTarget(b("|rm -rf /")))
        XCTAssertThrowsError(try Names.forwardTarget(b("x@y\nz")))
    }

    func testErrorsSayWhat() {
        XCTAssertEqual(NameError.badCharacter("user name", 47).description, "user name contains '/', which is not allowed")
        XCTAssertEqual(NameError.badCharacter("user name", 10).description, "user name contains byte 10, which is not allowed")
    }

    func testQuota() {
        XCTAssertEqual(Quota.parse(b("NOQUOTA")), .unlimited)
        XCTAssertEqual(Quota.parse(b("")), .unlimited)
        XCTAssertEqual(Quota.parse(b("1000")), Quota(bytes: 1000))
        XCTAssertEqual(Quota.parse(b("1000S,20C")), Quota(bytes: 1000, count: 20))
        XCTAssertEqual(Quota.parse(b("20C")), Quota(count: 20))
        XCTAssertEqual(Quota.parse(b("10M")), Quota(bytes: 10 << 20))
        XCTAssertEqual(Quota.parse(b("2k")), Quota(bytes: 2048))
        for bad in ["x", "10S,20S", "-5", "1,", "S"] { XCTAssertNil(Quota.parse(b(bad)), bad) }
        XCTAssertEqual(Quota(bytes: 5, count: 2).text, "5S,2C")
        XCTAssertEqual(Quota.unlimited.text, "NOQUOTA")
        XCTAssertEqual(Quota.unlimited.maildirsizeLine, "")
    }
}
