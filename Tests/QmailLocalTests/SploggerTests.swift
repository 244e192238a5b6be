import XCTest
@testable import QmailLocal
#if canImport(Glibc)
import Glibc
#endif

final class SploggerTests: XCTestCase {
    func run(_ input: [UInt8]) -> [(Int32, String)] {
        var out: [(Int32, String)] = []
        var n = 0
        var s = Helpers.SploggerLines(stamp: { n += 1; return "T\(n)" }, emit: { out.append(($0, $1)) })
        for c in input { s.feed(c) }
        s.finish()
        return out
    }

    func testLines() {
        let got = run(Array("hello\nwarning: w\nalert: a\nbad\u{1}\u{7f}\n\nunterminated".utf8))
        XCTAssertEqual(got.map { $0.1 }, ["T1 hello", "T2 warning: w", "T3 alert: a", "T4 bad??", "T5 unterminated"])
        XCTAssertEqual(got.map { $0.0 }, [LOG_INFO, LOG_WARNING, LOG_ALERT, LOG_INFO, LOG_INFO])
    }

    func testLongLineIsContinued() {
        let got = run(Array("warning: ".utf8) + [UInt8](repeating: 120, count: 1700) + [10])
        XCTAssertEqual(got.count, 3)
        XCTAssertTrue(got[0].1.hasPrefix("T1 warning: x"))
        XCTAssertEqual(got[0].1.count, 3 + 799)
        XCTAssertEqual(got[1].1, "T1+" + String(repeating: "x", count: 799))
        XCTAssertEqual(got[2].1, "T1+" + String(repeating: "x", count: 1709 - 799 * 2))
        XCTAssertEqual(got.map { $0.0 }, [LOG_WARNING, LOG_WARNING, LOG_WARNING])
    }
}
