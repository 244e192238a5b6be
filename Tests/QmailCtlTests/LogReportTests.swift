import XCTest
@testable import QmailCtl

final class LogReportTests: XCTestCase {
    func testTimestampForms() {
        // TAI64N: 2^62 + 10 + unix seconds, then nanoseconds
        XCTAssertEqual(LogLine.parse("@400000005fb8d9aa1dcd6500 new msg 5").time!, 1605949856.5, accuracy: 1e-6)
        XCTAssertEqual(String(LogLine.parse("@400000005fb8d9aa1dcd6500 new msg 5").text), "new msg 5")
        let s = LogLine.parse("Nov 21 06:52:16 host qmail: 1605941536.250000 end msg 7")
        XCTAssertEqual(s.time, 1605941536.25)
        XCTAssertEqual(String(s.text), "end msg 7")
        XCTAssertNil(LogLine.parse("new msg 9").time)
        XCTAssertEqual(String(LogLine.parse("Nov 21 06:52:16 host qmail-send[12]: new msg 9").text), "new msg 9")
    }

    func testCountsAndDelay() {
        let r = LogReport()
        for l in ["1600000100.0 new msg 1", "1600000100.0 info msg 1: bytes 300 from <a@x> qp 5 uid 0",
                  "1600000101.0 starting delivery 1: msg 1 to local b@y", "1600000103.0 delivery 1: success: did_0+0+1/",
                  "1600000103.0 starting delivery 2: msg 1 to remote c@z", "1600000104.0 delivery 2: deferral: Sorry/",
                  "1600000110.0 starting delivery 3: msg 1 to remote c@z", "1600000120.0 delivery 3: failure: No_such_user/",
                  "1600000121.0 end msg 1", "garbage"] {
            r.add(line: Substring(l))
        }
        XCTAssertEqual(r.messages, 1)
        XCTAssertEqual(r.bytes, 300)
        XCTAssertEqual([r.success, r.failure, r.deferral], [1, 1, 1])
        XCTAssertEqual(r.delays, [3, 20])
        XCTAssertEqual(r.unknownLines, 1)
        XCTAssertEqual(r.senders["a@x"]?.recipients, 2)  // completed: 1 success, 1 failure
        XCTAssertEqual(r.delayDistribution().first { $0.limit == 4 }?.count, 1)
        XCTAssertTrue(ReportSVG.render(r).contains("<circle"))
    }
}
