import XCTest
import QmailCore
@testable import QmailNet

/// tcp-env and rblsmtpd decide, and their mains act: the library returns
/// the server to run or the exit code instead of exec'ing or exiting.
final class HandoffTests: XCTestCase {

    func testUsageErrorsAreAPermanentExit() {
        XCTAssertEqual(TcpEnv.main(["tcp-env"]), .exit(QmailExit.permanent))
        XCTAssertEqual(TcpEnv.main(["tcp-env", "-x", "/bin/true"]), .exit(QmailExit.permanent))
        XCTAssertEqual(RBLSMTPD.main(["rblsmtpd"]), .exit(QmailExit.permanent))
        XCTAssertEqual(RBLSMTPD.main(["rblsmtpd", "-r"]), .exit(QmailExit.permanent))
        XCTAssertEqual(RBLSMTPD.main(["rblsmtpd", "-t", "x", "smtpd"]), .exit(QmailExit.permanent))
    }

    func testAnEmptyRBLSMTPDRunsTheServer() {
        setenv("RBLSMTPD", "", 1)
        defer { unsetenv("RBLSMTPD") }
        XCTAssertEqual(RBLSMTPD.main(["rblsmtpd", "-r", "bl.example", "/bin/smtpd", "-v"]), .exec(["/bin/smtpd", "-v"]))
    }

    func testAFailedExecIsATemporaryExit() {
        XCTAssertEqual(Handoff.exec(["/nonexistent/smtpd"]).perform(), QmailExit.temporary)
        XCTAssertEqual(Handoff.exit(0).perform(), 0)
    }
}
