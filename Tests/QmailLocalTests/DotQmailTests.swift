import XCTest
@testable import QmailLocal
import QmailCore
import TestSupport

private func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

final class DotQmailTests: XCTestCase {
    func testSearchOrderTable() {
        // (dash, ext) -> [file, DEFAULT value or nil]
        let cases: [(String, String, [(String, String?)])] = [
            ("", "", [(".qmail", nil), (".qmaildefault", "")]),
            ("-", "", [(".qmail-", nil), (".qmail-default", "")]),
            ("-", "a", [(".qmail-a", nil), (".qmail-default", "a")]),
            ("-", "a-", [(".qmail-a-", nil), (".qmail-a-default", ""), (".qmail-default", "a-")]),
            ("-", "a-b", [(".qmail-a-b", nil), (".qmail-a-default", "b"), (".qmail-default", "a-b")]),
            ("-", "a-b-c", [(".qmail-a-b-c", nil), (".qmail-a-b-default", "c"),
                            (".qmail-a-default", "b-c"), (".qmail-default", "a-b-c")]),
            // lowercased for the file name, DEFAULT keeps the case; '.' -> ':'
            ("-", "Foo.Bar-X", [(".qmail-foo:bar-x", nil), (".qmail-foo:bar-default", "X"),
                                (".qmail-default", "Foo.Bar-X")]),
            ("-", "../../etc", [(".qmail-::/::/etc", nil), (".qmail-default", "../../etc")]),
            // an extension literally ending in "default"
            ("-", "x-default", [(".qmail-x-default", "default"), (".qmail-x-default", "default"),
                                (".qmail-default", "x-default")]),
        ]
        for (dash, ext, want) in cases {
            let got = DotQmail.searchOrder(dash: b(dash), ext: b(ext))
            XCTAssertEqual(got.map { s($0.name) }, want.map { $0.0 }, "dash=\(dash) ext=\(ext)")
            XCTAssertEqual(got.map { $0.defaultValue.map(s) }, want.map { $0.1 }, "dash=\(dash) ext=\(ext)")
        }
    }

    func testParseInstructions() {
        let file = b("# comment\n|preline prog  \n&me@x.org\nyou@y.org\n./Mailbox\n/var/mail/joe\n./Maildir/\t\n+list\n+other\n\n")
        XCTAssertEqual(DotQmail.parse(file), [
            .comment, .program(b("preline prog")), .forward(b("me@x.org")), .forward(b("you@y.org")),
            .mbox(b("./Mailbox")), .mbox(b("/var/mail/joe")), .maildir(b("./Maildir/")),
            .forwardOnly, .ignored, .blank,
        ])
        XCTAssertEqual(DotQmail.parse(b("./Maildir/")), [.maildir(b("./Maildir/"))])
        XCTAssertEqual(DotQmail.parse([]), [])
        XCTAssertEqual(DotQmail.parse(b("\n#x\n")), [.blank, .comment])
        XCTAssertEqual(DotQmail.parse(b("&a@b\u{0}Tevil@x\n|prog \u{0}rest\n\u{0}\n")),
                       [.forward(b("a@b")), .program(b("prog ")), .blank])
    }

    func testNewSender() {
        let cases: [(String, Bool, Bool, String)] = [
            ("a@b", false, false, "a@b"),
            ("a@b", true, false, "list-owner@h.org"),
            ("a@b", true, true, "list-owner-@h.org-@[]"),
            ("", true, true, ""),
            ("#@[]", true, true, "#@[]"),
        ]
        for (sender, o, od, want) in cases {
            XCTAssertEqual(s(DotQmail.newSender(sender: b(sender), local: b("list"), host: b("h.org"),
                                                ownerExists: o, ownerDefaultExists: od)), want)
        }
    }

    func testExtAndHostParts() {
        XCTAssertEqual(DotQmail.extParts(b("a-b-c-d")).map(s), ["b-c-d", "c-d", "d"])
        XCTAssertEqual(DotQmail.extParts(b("a")).map(s), ["", "", ""])
        XCTAssertEqual(DotQmail.extParts(b("")).map(s), ["", "", ""])
        XCTAssertEqual(DotQmail.hostParts(b("mail.a.b.example.com")).map(s), ["mail.a.b.example", "mail.a.b", "mail.a"])
        XCTAssertEqual(DotQmail.hostParts(b("example.com")).map(s), ["example", "example", "example"])
        XCTAssertEqual(DotQmail.hostParts(b("localhost")).map(s), ["localhost", "localhost", "localhost"])
    }

    func testArguments() {
        let a = LocalArguments.parse(["-n", "joe", "/home/joe", "joe-x", "-", "x", "h.org", "s@t", "./Mailbox"].map(b))
        XCTAssertEqual(a?.deliver, false)
        XCTAssertEqual(a.map { s($0.ext) }, "x")
        XCTAssertNotNil(LocalArguments.parse(["-nN", "joe", "/h", "joe", "", "", "h", "", "./M"].map(b)).flatMap { $0.deliver ? $0 : nil })
        XCTAssertNil(LocalArguments.parse(["joe", "relative", "joe", "", "", "h", "", "./M"].map(b)))
        XCTAssertNil(LocalArguments.parse(["joe", "/h", "joe", "", "", "h", ""].map(b)))
        XCTAssertNil(LocalArguments.parse(["-x", "joe", "/h", "joe", "", "", "h", "", "./M"].map(b)))
    }
}

final class MailboxFormatTests: XCTestCase {
    func testMaildirName() {
        XCTAssertEqual(s(MaildirName.make(time: 1700000000, pid: 42, seq: 3, host: b("mx.example.com"))),
                       "1700000000.42_3.mx.example.com")
        XCTAssertEqual(s(MaildirName.make(time: 1, pid: 2, seq: 1, host: b("a/b:c"))), "1.2_1.a\\057b\\072c")
    }

    func testFromQuoting() {
        for (line, want) in [("From x", true), (">From x", true), (">>From ", true), ("From", false),
                             ("from x", false), (" From x", false), ("", false), (">", false)] {
            XCTAssertEqual(Mbox.needsQuoting(b(line)), want, line)
        }
    }

    func testFromLine() {
        XCTAssertEqual(s(Mbox.fromLine(sender: b("a b@c"), time: 0)), "From a-b@c Thu Jan 01 00:00:00 1970\n")
        XCTAssertEqual(s(Mbox.fromLine(sender: [], time: 86400 * 31)), "From MAILER-DAEMON Sun Feb 01 00:00:00 1970\n")
    }
}
