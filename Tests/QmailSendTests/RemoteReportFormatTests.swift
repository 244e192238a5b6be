import XCTest
@testable import QmailSend

/// qmail-rspawn reading what qmail-remote really writes (qmail-remote(8)):
/// a recipient report 'r', 'h' or 's', then the message report K/Z/D.
final class RemoteReportFormatTests: XCTestCase {
    func report(_ s: String) -> String {
        RemoteSpawn.report(status: .exited(0), output: Array(s.utf8)).bytes.string
    }

    func testAcceptedRecipient() {
        XCTAssertEqual(report("r\0K192.0.2.1 accepted message.\nRemote host said: 250 ok\n\0"),
                       "K192.0.2.1 accepted message.\nRemote host said: 250 ok\n")
        XCTAssertEqual(report("r\0Z192.0.2.1 failed after I sent the message.\nRemote host said: 451 x\n\0"),
                       "Z192.0.2.1 failed after I sent the message.\nRemote host said: 451 x\n")
        XCTAssertEqual(report("r\0D192.0.2.1 failed on DATA command.\n\0"), "D192.0.2.1 failed on DATA command.\n")
    }

    func testRefusedRecipient() {
        XCTAssertEqual(report("h192.0.2.1 does not like recipient.\nRemote host said: 550 no\n\0DGiving up on 192.0.2.1.\n\0"),
                       "D192.0.2.1 does not like recipient.\nRemote host said: 550 no\nGiving up on 192.0.2.1.\n")
        XCTAssertEqual(report("s192.0.2.1 does not like recipient.\nRemote host said: 450 later\n\0DGiving up on 192.0.2.1.\n\0"),
                       "Z192.0.2.1 does not like recipient.\nRemote host said: 450 later\nGiving up on 192.0.2.1.\n")
    }

    func testMessageReportAlone() {
        XCTAssertEqual(report("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"),
                       "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
        XCTAssertEqual(report("DSorry, I couldn't find any host named x. (#5.1.2)\n\0"),
                       "DSorry, I couldn't find any host named x. (#5.1.2)\n")
        XCTAssertEqual(report("K\0"), "Zqmail-remote produced improper output.\n")
        XCTAssertEqual(report("r\0"), "Zqmail-remote produced improper output.\n")
    }
}
