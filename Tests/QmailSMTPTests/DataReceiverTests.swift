import XCTest
@testable import QmailSMTP
import QmailCore
import QmailNet

final class DataReceiverTests: XCTestCase {
    func receive(_ s: String, databytes: Int = 0) -> (DataReceiver.Outcome, String, Int) {
        var rx = DataReceiver(databytes: databytes)
        let bytes = Array(s.utf8)
        let r = bytes.withUnsafeBufferPointer { rx.feed($0) }
        return (r.outcome, String(decoding: rx.output, as: UTF8.self), r.consumed)
    }

    func testPlainMessage() {
        let (o, out, n) = receive("Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\nMAIL")
        XCTAssertEqual(o, .done)
        XCTAssertEqual(out, "Subject: x\n\nbody\n.dot\n")
        XCTAssertEqual(n, "Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n".utf8.count)
    }

    func testBareLFIsRefused() {
        XCTAssertEqual(receive("a\nb\r\n.\r\n").0, .strayNewline)
    }

    func testSmugglingSequencesNeverEnd() {
        XCTAssertEqual(receive("a\r\n\n.\r\nMAIL FROM:<x>\r\n").0, .strayNewline)
        XCTAssertEqual(receive("a\r\n.\n").0, .strayNewline)
        let (o, out, _) = receive("a\r.\r\nMAIL FROM:<x>\r\n")
        XCTAssertEqual(o, .more)
        XCTAssertEqual(out, "a\r.\nMAIL FROM:<x>\n")
    }

    func testLoneCRKept() {
        let (o, out, _) = receive("a\rb\r\r\n.\r\n")
        XCTAssertEqual(o, .done)
        XCTAssertEqual(out, "a\rb\r\n")
    }

    func testDatabytes() {
        var rx = DataReceiver(databytes: 5)
        let bytes = Array("123456789\r\n.\r\n".utf8)
        let r = bytes.withUnsafeBufferPointer { rx.feed($0) }
        XCTAssertEqual(r.outcome, .done)
        XCTAssertTrue(rx.overflowed)
    }

    func testHops() {
        var s = ""
        for _ in 0..<100 { s += "Received: x\r\n" }
        var rx = DataReceiver(databytes: 0)
        let bytes = Array((s + "Delivered-To: y\r\n\r\nReceived: body\r\n.\r\n").utf8)
        _ = bytes.withUnsafeBufferPointer { rx.feed($0) }
        XCTAssertEqual(rx.hops, 101)
    }
}

final class AddressParseTests: XCTestCase {
    func parse(_ s: String) -> String? {
        AddressParse.parse(Array(s.utf8)).map { String(decoding: $0.address, as: UTF8.self) }
    }

    func testForms() {
        XCTAssertEqual(parse("FROM:<a@b>"), "a@b")
        XCTAssertEqual(parse("TO:<@x,@y:u@z>"), "u@z")
        XCTAssertEqual(parse("TO:<\"u@o\"@ours>"), "u@o@ours")
        XCTAssertEqual(parse("FROM: a@b"), "a@b")
        XCTAssertEqual(parse("FROM:<>"), "")
        XCTAssertEqual(parse("TO:<a\\>b@c>"), "a>b@c")
        XCTAssertNil(parse("TO:<" + String(repeating: "x", count: 901) + ">"))
        let p = AddressParse.parse(Array("FROM:<a@b> size=100 BODY=8BITMIME smtputf8".utf8))!
        XCTAssertEqual(p.parameter("SIZE"), Array("100".utf8))
        XCTAssertNotNil(p.parameter("SMTPUTF8"))
    }

    func testLocalIPHost() {
        let me: Set<IPAddress> = [IPAddress("127.0.0.1")!, IPAddress("::1")!]
        func f(_ s: String) -> String {
            String(decoding: AddressParse.applyLocalIPHost(Array(s.utf8), localIPHost: Array("me.org".utf8), ipme: me), as: UTF8.self)
        }
        XCTAssertEqual(f("u@[127.0.0.1]"), "u@me.org")
        XCTAssertEqual(f("u@[IPv6:::1]"), "u@me.org")
        XCTAssertEqual(f("u@[10.9.9.9]"), "u@[10.9.9.9]")
        XCTAssertEqual(f("u@[1.2.3]"), "u@[1.2.3]")
    }

    func testRelayTricks() throws {
        let rh = RcptHosts(lines: [Array("ours.org".utf8), Array(".hosted.net".utf8)], more: nil)
        func ok(_ s: String) throws -> Bool { try rh.acceptsWithoutRelay(Array(s.utf8)) }
        XCTAssertTrue(try ok("u@ours.org"))
        XCTAssertTrue(try ok("u@OURS.ORG"))
        XCTAssertTrue(try ok("u@a.hosted.net"))
        XCTAssertFalse(try ok("u@hosted.net"))
        XCTAssertFalse(try ok("u@ours.org."))
        XCTAssertFalse(try ok("u@other.com"))
        XCTAssertFalse(try ok("u%other.com@ours.org"))
        XCTAssertFalse(try ok("other.com!u@ours.org"))
        XCTAssertFalse(try ok("u@other.com@ours.org"))
        XCTAssertTrue(try ok("u%x.hosted.net@ours.org"))
        XCTAssertTrue(try ok("postmaster"))
        XCTAssertFalse(try ok("other.com!u"))
    }

    func testBase64() {
        XCTAssertEqual(Base64.encode(Array("\0u\0p".utf8)), Array("AHUAcA==".utf8))
        XCTAssertEqual(Base64.decode(Array("AHUAcA==".utf8)), Array("\0u\0p".utf8))
        XCTAssertNil(Base64.decode(Array("A*==".utf8)))
    }

    func testReceived() {
        let r = Received.line(protocol: "SMTP", local: Array("mx.x".utf8), remoteIP: Array("1.2.3.4".utf8),
                              remoteHost: Array("h.y".utf8), remoteInfo: Array("joe".utf8), helo: Array("a b\n".utf8), now: 0)
        XCTAssertEqual(String(decoding: r, as: UTF8.self),
                       "Received: from h.y (HELO a?b?) (joe@1.2.3.4)\n  by mx.x with SMTP; 1 Jan 1970 00:00:00 -0000\n")
    }
}
