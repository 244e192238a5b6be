import XCTest
import Glibc
@testable import QmailCore
@testable import QmailQueue

final class ControlTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = "/tmp/sq-ctl-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(dir, 0o755)
    }

    func write(_ name: String, _ text: String) throws {
        try FileIO.writeAtomic("\(dir)/\(name)", Array(text.utf8))
    }

    func testLineTakesFirstLineAndStripsTrailingWhitespace() throws {
        try write("me", "mail.example.com \t\nsecond\n")
        XCTAssertEqual(try Control(directory: dir).line("me")?.string, "mail.example.com")
    }

    func testDefaultsFollowMe() throws {
        let c = Control(directory: dir)
        XCTAssertNil(try c.lineWithDefault("bouncehost"))
        try write("me", "host.example.com\n")
        XCTAssertEqual(try c.string("bouncehost"), "host.example.com")
        XCTAssertEqual(try c.string("bouncefrom"), "MAILER-DAEMON")
        XCTAssertEqual(try c.string("doublebounceto"), "postmaster")
        XCTAssertEqual(try c.list("locals").map(\.string), ["host.example.com"])
        XCTAssertEqual(try c.list("rcpthosts"), [])
    }

    func testNumbers() throws {
        let c = Control(directory: dir)
        XCTAssertEqual(try c.number("queuelifetime"), 604800)
        XCTAssertEqual(try c.number("concurrencyremote"), 20)
        try write("timeoutremote", "30 seconds\n")
        XCTAssertEqual(try c.number("timeoutremote"), 30)
        try write("databytes", "lots\n")
        XCTAssertEqual(try c.number("databytes"), 0)
    }

    func testListSkipsCommentsAndBlankLines() throws {
        try write("rcpthosts", "# comment\n\na.example  \n.b.example\r\nc\n")
        XCTAssertEqual(try Control(directory: dir).list("rcpthosts").map(\.string), ["a.example", ".b.example", "c"])
    }

    func testUnreadableIsAnErrorNotADefault() throws {
        guard geteuid() != 0 else { return } // root reads everything
        try write("me", "x\n")
        chmod("\(dir)/me", 0)
        XCTAssertThrowsError(try Control(directory: dir).line("me"))
    }

    func testEveryControlFileHasAnEntry() {
        let names = Set(ControlFiles.all.map(\.name))
        for n in ["badmailfrom", "bouncefrom", "bouncehost", "concurrencylocal", "concurrencyremote",
                  "defaultdomain", "defaulthost", "databytes", "doublebouncehost", "doublebounceto",
                  "envnoathost", "helohost", "idhost", "localiphost", "locals", "me", "morercpthosts",
                  "percenthack", "plusdomain", "qmqpservers", "queuelifetime", "rcpthosts", "smtpgreeting",
                  "smtproutes", "timeoutconnect", "timeoutremote", "timeoutsmtpd", "virtualdomains"] {
            XCTAssertTrue(names.contains(n), n)
        }
    }
}

final class DomainMapTests: XCTestCase {
    func testPrefixWildcards() {
        let m = DomainMap<Void>(lines: [Array("example.com".utf8), Array(".example.net".utf8)])
        XCTAssertTrue(m.containsHost(Array("EXAMPLE.com".utf8)))
        XCTAssertFalse(m.containsHost(Array("www.example.com".utf8)))
        XCTAssertTrue(m.containsHost(Array("a.b.example.net".utf8)))
        XCTAssertFalse(m.containsHost(Array("example.net".utf8)))
        XCTAssertFalse(m.containsHost(Array("badexample.net".utf8)))
    }

    func testVirtualDomainOrder() {
        let m = DomainMap<[UInt8]>(colonLines: [
            Array("joe@virt.example:joe-special".utf8),
            Array("virt.example:virt".utf8),
            Array(".sub.example:sub".utf8),
            Array(":catchall".utf8),
        ])
        XCTAssertEqual(m.matchAddress(Array("joe@virt.example".utf8))?.value.string, "joe-special")
        XCTAssertEqual(m.matchAddress(Array("ann@Virt.Example".utf8))?.value.string, "virt")
        XCTAssertEqual(m.matchAddress(Array("ann@x.sub.example".utf8))?.value.string, "sub")
        XCTAssertEqual(m.matchAddress(Array("ann@elsewhere.org".utf8))?.value.string, "catchall")
    }
}

final class AddressTests: XCTestCase {
    func testQuoting() {
        XCTAssertEqual(Address.quote(Array("joe@example.com".utf8)).string, "joe@example.com")
        XCTAssertEqual(Address.quote(Array("joe smith@example.com".utf8)).string, "\"joe smith\"@example.com")
        XCTAssertEqual(Address.quote(Array("a..b@x".utf8)).string, "\"a..b\"@x")
        XCTAssertEqual(Address.quote(Array(".a@x".utf8)).string, "\".a\"@x")
        XCTAssertEqual(Address.quote(Array("a\"b@x".utf8)).string, "\"a\\\"b\"@x")
        XCTAssertEqual(Address.quote(Array("a@b@x".utf8)).string, "\"a@b\"@x")
        XCTAssertEqual(Address.quote([]).string, "")
        XCTAssertEqual(Address.quote(Array("@x".utf8)).string, "\"\"@x")
    }

    func testSplitAtLastAt() {
        let s = Address.split(Array("a@b@c".utf8))
        XCTAssertEqual(s.local.string, "a@b")
        XCTAssertEqual(s.domain?.string, "c")
        XCTAssertNil(Address.split(Array("local".utf8)).domain)
    }
}

final class MiscTests: XCTestCase {
    func testQmailDate() {
        XCTAssertEqual(Date822.qmail(0), "1 Jan 1970 00:00:00 -0000")
        XCTAssertEqual(Date822.qmail(1_795_246_212), "21 Nov 2026 07:30:12 -0000")
    }

    func testRfc5322HasWeekdayAndZone() {
        let s = Date822.rfc5322(1_795_246_212)
        XCTAssertTrue(s.hasPrefix("Sat, "), s)
        let zone = s.split(separator: " ").last.map(String.init) ?? ""
        XCTAssertEqual(zone.count, 5, s)
        XCTAssertTrue(zone.hasPrefix("+") || zone.hasPrefix("-"), s)
    }

    func testQueueExitMapping() {
        XCTAssertNil(QueueExit.failure(forExitCode: 0))
        XCTAssertEqual(QueueExit.failure(forExitCode: 53)?.report, "Zqq write error or disk full (#4.3.0)")
        XCTAssertEqual(QueueExit.failure(forExitCode: 11)?.report, "Denvelope address too long for qq (#5.1.3)")
        XCTAssertEqual(QueueExit.failure(forExitCode: 64)?.report, "Zqq trouble creating files in queue (#4.3.0)")
        XCTAssertEqual(QueueExit.failure(forExitCode: 35)?.kind, .permanent)
        XCTAssertEqual(QueueExit.failure(forExitCode: 99)?.kind, .temporary)
    }

    func testIdsRoundTrip() {
        let ids = QmailIds(singleUser: false, uid: ["alias": 7790, "qmailq": 7792], gid: ["qmail": 2107])
        XCTAssertEqual(QmailIds.parse(Array(ids.render().utf8)), ids)
        XCTAssertNil(QmailIds.parse(Array("alias=x\n".utf8)))
    }

    func testIdsFromPasswdLines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalias:x:7790:2108::/var/qmail/alias:/bin/false\n"
            + "# comment\nbroken\nqmaild::notanumber:1::/:\nalias:x:1:1::/:\n"
        XCTAssertEqual(QmailIds.idsByName(Array(passwd.utf8)), ["root": 0, "alias": 7790])
        XCTAssertEqual(QmailIds.idsByName(Array("nofiles:x:2108:\nqmail:x:2107:alias,qmaild".utf8)),
                       ["nofiles": 2108, "qmail": 2107])
    }

    func testLogSafety() {
        XCTAssertEqual(SendLog.safe(Array("did 0+0+1\n".utf8)), "did_0+0+1/")
        XCTAssertEqual(SendLog.delivery(3, .success, report: Array("ok\n".utf8)), "delivery 3: success: ok/")
    }
}
