import XCTest
import TestSupport

/// The shared test helpers show bytes as text.
final class TestSupportTests: XCTestCase {
    func testEscapedShowsBytesAsText() {
        XCTAssertEqual(b("250 ok\r\n").escaped, #""250 ok\r\n""#)
        XCTAssertEqual([0, 9, 0x22, 0x5c, 0x7f, 0xff].escaped, #""\0\t\"\\\x7F\xFF""#)
        XCTAssertBytes(b("a\0b")[...], [0x61, 0, 0x62])
        XCTAssertBytes(nil, nil)
    }
}
