import XCTest
@testable import QmailSend

final class RetryTests: XCTestCase {
    func testSchedule() {
        XCTAssertEqual(Retry.next(birth: 1000, now: 1000, channel: .local), 1100)
        XCTAssertEqual(Retry.next(birth: 1000, now: 1000, channel: .remote), 1400)
    }
}
