import XCTest
import QmailCore
@testable import QmailSend
import TestSupport


final class EnvelopeTests: XCTestCase {
    func testParsesQmailQueueEnvelope() {
        let e = TodoEnvelope.parse(b("u1000\0p4242\0Fme@example.org\0Tyou@example.net\0Tthem@x\0"))
        XCTAssertEqual(e, TodoEnvelope(uid: 1000, pid: 4242, sender: b("me@example.org"), recipients: [b("you@example.net"), b("them@x")]))
    }

    func testEmptySenderAndNoRecipients() {
        XCTAssertEqual(TodoEnvelope.parse(b("u0\0p1\0F\0")), TodoEnvelope(uid: 0, pid: 1, sender: [], recipients: []))
    }

    func testDamagedEnvelopesAreRejected() {
        XCTAssertNil(TodoEnvelope.parse(b("u0\0p1\0")), "no sender")
        XCTAssertNil(TodoEnvelope.parse(b("u0\0p1\0Fme\0Tyou")), "unterminated record")
        XCTAssertNil(TodoEnvelope.parse([]))
    }

    func testChannelFileOffsetsAndDoneMarks() {
        let data = Records.channelFile([b("a@x"), b("b@y"), b("c@z")])
        XCTAssertBytes(data, b("Ta@x\0Tb@y\0Tc@z\0"))
        var marked = data
        marked[5] = UInt8(ascii: "D")
        let r = Records.channel(marked)
        XCTAssertEqual(r.map { $0.offset }, [0, 5, 10])
        XCTAssertEqual(r.map { $0.done }, [false, true, false])
        XCTAssertBytes(r[2].address, b("c@z"))
        XCTAssertEqual(Records.channel(b("Ta@x\0Tpartial")).count, 1)
    }

    func testInfo() {
        XCTAssertBytes(Records.info(sender: b("me@x")), b("Fme@x\0"))
        XCTAssertEqual(Records.sender(fromInfo: b("F\0")), [])
        XCTAssertNil(Records.sender(fromInfo: b("Fabc")))
    }
}

final class RetryTests: XCTestCase {
    func testQmailSchedule() {
        // First retry: local after 100 s, remote after 400 s.
        XCTAssertEqual(Retry.next(birth: 1000, now: 1000, channel: .local), 1100)
        XCTAssertEqual(Retry.next(birth: 1000, now: 1000, channel: .remote), 1400)
        // After 100 s: (10 + 10)^2 = 400.
        XCTAssertEqual(Retry.next(birth: 1000, now: 1100, channel: .local), 1400)
        // sqrt is floored: 399 s -> 19.
        XCTAssertEqual(Retry.next(birth: 0, now: 399, channel: .local), 29 * 29)
        XCTAssertEqual(Retry.next(birth: 0, now: 400, channel: .remote), 40 * 40)
        // A birth in the future (clock moved back) counts as now.
        XCTAssertEqual(Retry.next(birth: 500, now: 100, channel: .local), 600)
    }

    func testIsqrt() {
        for v in [0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 604800, 1 << 40] {
            let r = Retry.isqrt(v)
            XCTAssertLessThanOrEqual(r * r, v)
            XCTAssertGreaterThan((r + 1) * (r + 1), v)
        }
    }
}

final class RouterTests: XCTestCase {
    let router = Router(locals: [b("test.example.com"), b("localhost")],
                        virtualDomains: [b("virt.example.org:joe"), b("one@other.org:solo"), b(".wild.org:w"), b("except.virt.example.org:")],
                        percentHack: [b("relay.example.com")],
                        envNoAtHost: b("test.example.com"))

    func route(_ s: String) -> (DeliveryChannel, String) {
        let (c, a) = router.route(b(s))
        return (c, a.string)
    }

    func testLocalsAreCaseInsensitiveAndExact() {
        XCTAssertTrue(route("User@TEST.example.COM") == (.local, "User@TEST.example.COM"))
        XCTAssertTrue(route("u@sub.test.example.com") == (.remote, "u@sub.test.example.com"))
    }

    func testEnvNoAtHost() {
        XCTAssertTrue(route("bob") == (.local, "bob@test.example.com"))
    }

    func testVirtualDomainsAndUsers() {
        XCTAssertTrue(route("bob@virt.example.org") == (.local, "joe-bob@virt.example.org"))
        XCTAssertTrue(route("one@other.org") == (.local, "solo-one@other.org"))
        XCTAssertTrue(route("two@other.org") == (.remote, "two@other.org"))
        XCTAssertTrue(route("x@a.b.wild.org") == (.local, "w-x@a.b.wild.org"))
        // An empty prepend is an exception: remote.
        XCTAssertTrue(route("x@except.virt.example.org") == (.remote, "x@except.virt.example.org"))
    }

    func testEmptyVirtualDomainEntryCatchesEverything() {
        let r = Router(locals: [b("me.org")], virtualDomains: [b(":alias-catch")], percentHack: [], envNoAtHost: b("me.org"))
        XCTAssertEqual(r.route(b("x@far.away")).1.string, "alias-catch-x@far.away")
        XCTAssertEqual(r.route(b("x@me.org")).0, .local)
        XCTAssertEqual(r.route(b("x@me.org")).1.string, "x@me.org")
    }

    func testPercentHack() {
        XCTAssertTrue(route("a%test.example.com@relay.example.com") == (.local, "a@test.example.com"))
        XCTAssertTrue(route("a%b%far.org@relay.example.com") == (.remote, "a%b@far.org"))
        XCTAssertTrue(route("a%far.org@other.com") == (.remote, "a%far.org@other.com"))
    }
}

final class BounceTests: XCTestCase {
    let settings = Bounce.Settings(bounceFrom: b("MAILER-DAEMON"), bounceHost: b("mx.example.com"),
                                   doubleBounceTo: b("postmaster"), doubleBounceHost: b("mx.example.com"))

    func testRecordFormat() {
        XCTAssertEqual(Bounce.record(recipient: b("a@x"), report: b("Sorry. (#5.1.1)\n")).string, "<a@x>:\nSorry. (#5.1.1)\n\n")
        XCTAssertEqual(Bounce.record(recipient: b("a@x"), report: b("no newline")).string, "<a@x>:\nno newline\n\n")
        // A blank line inside the report would end the record early.
        XCTAssertEqual(Bounce.record(recipient: b("a\n@x"), report: b("one\n\ntwo\n")).string, "<a_@x>:\none\n/two\n\n")
    }

    func testPlan() {
        XCTAssertEqual(Bounce.plan(originalSender: b("me@x"), settings: settings), .send(sender: [], recipient: b("me@x"), double: false))
        XCTAssertEqual(Bounce.plan(originalSender: [], settings: settings),
                       .send(sender: b("#@[]"), recipient: b("postmaster@mx.example.com"), double: true))
        XCTAssertEqual(Bounce.plan(originalSender: b("#@[]"), settings: settings), .discard)
        var s = settings
        s.doubleBounceTo = []
        XCTAssertEqual(Bounce.plan(originalSender: [], settings: s), .discard)
    }

    func testQSBMFText() {
        let head = Bounce.head(recipient: b("me@x"), double: false, records: b("<a@x>:\nSorry.\n\n"), settings: settings, now: 0).string
        XCTAssertEqual(head, """
            Date: 1 Jan 1970 00:00:00 -0000
            From: MAILER-DAEMON@mx.example.com
            To: me@x
            Subject: failure notice

            Hi. This is the qmail-send program at mx.example.com.
            I'm afraid I wasn't able to deliver your message to the following addresses.
            This is a permanent error; I've given up. Sorry it didn't work out.

            <a@x>:
            Sorry.

            --- Below this line is a copy of the message.


            """)
        let dbl = Bounce.head(recipient: b("postmaster@mx"), double: true, records: [], settings: settings, now: 0).string
        XCTAssertTrue(dbl.contains("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n"))
        XCTAssertTrue(dbl.hasSuffix("--- Below this line is the original bounce.\n\n"))
    }
}

final class SpawnTests: XCTestCase {
    func testLocalReports() {
        XCTAssertEqual(LocalSpawn.report(status: .exited(0), output: b("did 0+1+0\n")).bytes.string, "Kdid 0+1+0\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(111), output: b("busy\n")).bytes.string, "Zbusy\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(100), output: b("no\n")).bytes.string, "Dno\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(100), output: []).bytes.string, "DSorry, no mailbox here by that name. (#5.1.1)\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(75), output: []).bytes.first, UInt8(ascii: "Z"))
        XCTAssertEqual(LocalSpawn.report(status: .signaled(9), output: b("x")).bytes.string, "Zqmail-local crashed.\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(QLX.execSoft), output: []).bytes.string, "ZUnable to run qmail-local.\n")
        XCTAssertEqual(LocalSpawn.report(status: .exited(QLX.root), output: []).bytes.first, UInt8(ascii: "Z"))
        // Text stops at a NUL: it would end the report early.
        XCTAssertEqual(LocalSpawn.report(status: .exited(0), output: b("a\0b")).bytes.string, "Ka")
    }

    func testRemoteReports() {
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: b("rK1.2.3.4 accepted\0K1.2.3.4 accepted message.\0")).bytes.string,
                       "K1.2.3.4 accepted message.")
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: b("rDSorry, no such user.\0DGiving up.\0")).bytes.string,
                       "DSorry, no such user.")
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: b("ZConnected but timed out.\0")).bytes.string,
                       "ZConnected but timed out.")
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: b("rK ok\0ZLost connection.\0")).bytes.first, UInt8(ascii: "Z"))
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: []).bytes.first, UInt8(ascii: "Z"))
        XCTAssertEqual(RemoteSpawn.report(status: .exited(0), output: b("garbage\0")).bytes.string, "Zqmail-remote produced improper output.\n")
        XCTAssertEqual(RemoteSpawn.report(status: .exited(111), output: []).bytes.first, UInt8(ascii: "Z"))
        XCTAssertEqual(RemoteSpawn.report(status: .exited(1), output: []).bytes.first, UInt8(ascii: "D"))
        XCTAssertEqual(RemoteSpawn.report(status: .signaled(11), output: []).bytes.string, "Zqmail-remote crashed.\n")
    }

    func testUserEntry() {
        XCTAssertEqual(UserEntry.parse(b("joe\01000\0100\0/home/joe\0-\0ext\0")),
                       UserEntry(user: b("joe"), uid: 1000, gid: 100, home: b("/home/joe"), dash: b("-"), ext: b("ext")))
        XCTAssertNil(UserEntry.parse(b("joe\0x\0100\0/home/joe\0-\0ext\0")))
        XCTAssertNil(UserEntry.parse(b("joe\01000\0")))
        // qmail-newu's exact entries may end without a NUL and with empty dash and ext.
        XCTAssertEqual(UserEntry.parse(b("joe\01\02\0/h\0\0")),
                       UserEntry(user: b("joe"), uid: 1, gid: 2, home: b("/h"), dash: [], ext: []))
        XCTAssertNil(UserEntry.parse(b("joe\01\02\0/h\0")))
    }

    func testUsersCdbExactAndWildcard() throws {
        let dir = "/tmp/qsend-cdb-\(getpid())"
        mkdir(dir, 0o700)
        defer { unlink(dir + "/cdb"); rmdir(dir) }
        let fd = open(dir + "/cdb", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let w = try CdbWriter(fd: fd)
        try w.add(b("!joe\0"), b("joe\01\02\0/h\0\0"))
        try w.add(b("!list-"), b("list\03\04\0/l\0-\0"))
        try w.add([], b("-"))
        try w.finish()
        close(fd)
        XCTAssertBytes(try UsersCdb.lookup(path: dir + "/cdb", local: b("JOE")), b("joe\01\02\0/h\0\0\0"))
        XCTAssertBytes(try UsersCdb.lookup(path: dir + "/cdb", local: b("list-foo")), b("list\03\04\0/l\0-\0foo\0"))
        XCTAssertNil(try UsersCdb.lookup(path: dir + "/cdb", local: b("nobody")))
        XCTAssertNil(try UsersCdb.lookup(path: dir + "/missing", local: b("joe")))
    }

    func testVerp() {
        XCTAssertEqual(Scheduler.verp(sender: b("list-@example.com-@[]"), recipient: b("bob@far.org")).string, "list-bob=far.org@example.com")
        XCTAssertEqual(Scheduler.verp(sender: b("plain@x"), recipient: b("bob@far.org")).string, "plain@x")
    }

    func testCleanRequests() {
        XCTAssertEqual(Clean.parse(b("foop/123")), .finished(123))
        XCTAssertEqual(Clean.parse(b("todo/45")), .todo(45))
        XCTAssertNil(Clean.parse(b("todo/")))
        XCTAssertNil(Clean.parse(b("mess/12")))
        XCTAssertNil(Clean.parse(b("foop/1x")))
        XCTAssertNil(Clean.parse(b("foop/" + String(repeating: "1", count: 200))))
    }
}
