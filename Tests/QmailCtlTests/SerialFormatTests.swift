import XCTest
import QmailSerial
import TestSupport

final class SerialFormatTests: XCTestCase {

    func testEnvelopeFromTopLines() {
        let m = SerialFormat.parse(b("Return-Path: <s@x>\nDelivered-To: pre-joe@c.example\nSubject: a\n\nbody\n"), prefix: b("pre-"))
        XCTAssertBytes(m?.sender, b("s@x"))
        XCTAssertBytes(m?.recipient, b("joe@c.example"))
        XCTAssertBytes(m?.body, b("Subject: a\n\nbody\n"))
        XCTAssertNil(SerialFormat.parse(b("Delivered-To: other@c\n\nx\n"), prefix: b("pre-")))
        XCTAssertNil(SerialFormat.parse(b("Subject: no envelope\nDelivered-To: pre-x@y\n\n"), prefix: b("pre-")))
        XCTAssertEqual(SerialFormat.parse(b("Delivered-To: pre-x@y\n\n"), prefix: b("pre-"))?.sender, [])
    }

    func testDataPayloadStuffsDotsAndEndsLines() {
        XCTAssertBytes(SerialFormat.dataPayload(b(".a\nb\n..c")), b("..a\r\nb\r\n...c\r\n.\r\n"))
        XCTAssertBytes(SerialFormat.dataPayload([]), b(".\r\n"))
    }
}
