import XCTest
@testable import QmailLocal
import QmailCore
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

private func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

final class UsersAssignTests: XCTestCase {
    let assign = """
    +:alias:7790:2108:/var/qmail/alias:-::
    +joe-:joe:507:100:/home/joe:-::
    =joe:joe:507:100:/home/joe:::
    =Joe.Shmoe:joe:507:100:/home/joe:-:shmoe:
    +list=:ml:600:100:/home/ml:-:list-:extra ignored
    .
    =after:the:dot:is:ignored:::

    """

    func testRecords() throws {
        let recs = try UsersAssign.records(b(assign))
        XCTAssertEqual(recs.map { s($0.key) }, ["!", "!joe-", "!joe\0", "!joe.shmoe\0", "!list=", ""])
        XCTAssertEqual(s(recs[2].data), "joe\u{0}507\u{0}100\u{0}/home/joe\u{0}\u{0}")
        XCTAssertEqual(s(recs[4].data), "ml\u{0}600\u{0}100\u{0}/home/ml\u{0}-\u{0}list-")
        XCTAssertEqual(s(recs.last!.data), "-=")
    }

    func testBadFormat() {
        for bad in ["=joe:joe:507:100:/home/joe::\n.\n",   // five colons
                    "=joe:joe:507:100:/home/joe:::",         // no newline, no dot
                    ":joe:507:100:/home/joe:::\n.\n",        // empty address field
                    "=joe\n.\n",
                    "=jo\u{0}e:joe:507:100:/home/joe:::\n.\n"] {
            XCTAssertThrowsError(try UsersAssign.records(b(bad)), bad)
        }
    }

    func testLookup() throws {
        let path = "/tmp/qmaillocal-test-\(getpid()).cdb"
        defer { unlink(path) }
        let recs = try UsersAssign.records(b(assign))
        try CdbWriter.create(path: path) { add in for r in recs { try add(r.key, r.data) } }
        let cdb = try XCTUnwrap(try CdbReader.open(path))
        let cases: [(String, String, String, String)] = [
            // local -> user, dash, ext
            ("joe", "joe", "", ""),
            ("JOE", "joe", "", ""),
            ("joe-Direct", "joe", "-", "Direct"),
            ("joe.shmoe", "joe", "-", "shmoe"),
            ("list=foo", "ml", "-", "list-foo"),
            ("bill", "alias", "-", "bill"),
            ("joex", "alias", "-", "joex"),
        ]
        for (local, user, dash, ext) in cases {
            let a = try XCTUnwrap(try UsersAssign.lookup(cdb, local: b(local)), local)
            XCTAssertEqual([s(a.user), s(a.dash), s(a.ext)], [user, dash, ext], local)
        }
    }
}

final class GetpwTests: XCTestCase {
    func makeGetpw(single: Bool = false) -> Getpw {
        let users: [String: PasswdEntry] = [
            "joe": PasswdEntry(name: b("joe"), uid: 507, gid: 100, home: b("/home/joe")),
            "joe-x": PasswdEntry(name: b("joe-x"), uid: 508, gid: 100, home: b("/home/joex")),
            "root": PasswdEntry(name: b("root"), uid: 0, gid: 0, home: b("/root")),
            "nohome": PasswdEntry(name: b("nohome"), uid: 509, gid: 100, home: b("/nonexistent")),
            "notmine": PasswdEntry(name: b("notmine"), uid: 510, gid: 100, home: b("/home/joe")),
            "alias": PasswdEntry(name: b("alias"), uid: 7790, gid: 2108, home: b("/var/qmail/alias")),
        ]
        let owners: [String: (uid_t, gid_t)] = ["/home/joe": (507, 100), "/home/joex": (508, 100),
                                                "/root": (0, 0), "/var/qmail/alias": (7790, 2108),
                                                "/q/alias": (1000, 1000)]
        return Getpw(getpwnam: { users[s($0)] }, owner: { owners[s($0)].map { (uid: $0.0, gid: $0.1) } },
                     singleUser: single ? (b("/q/alias"), 1000) : nil)
    }

    func testRules() throws {
        let g = makeGetpw()
        let cases: [(String, [String])] = [
            ("joe", ["joe", "507", "100", "/home/joe", "", ""]),
            ("Joe", ["joe", "507", "100", "/home/joe", "", ""]),
            ("joe-foo-bar", ["joe", "507", "100", "/home/joe", "-", "foo-bar"]),
            ("joe-x-y", ["joe-x", "508", "100", "/home/joex", "-", "y"]),   // longest user wins
            ("root", ["alias", "7790", "2108", "/var/qmail/alias", "-", "root"]),   // uid 0
            ("nohome", ["alias", "7790", "2108", "/var/qmail/alias", "-", "nohome"]),
            ("notmine", ["alias", "7790", "2108", "/var/qmail/alias", "-", "notmine"]),
            ("joey", ["alias", "7790", "2108", "/var/qmail/alias", "-", "joey"]),
            (String(repeating: "j", count: 40), ["alias", "7790", "2108", "/var/qmail/alias", "-", String(repeating: "j", count: 40)]),
        ]
        for (local, want) in cases {
            let a = try g.lookup(b(local))
            XCTAssertEqual([a.user, a.uid, a.gid, a.home, a.dash, a.ext].map(s), want, local)
        }
        XCTAssertBytes(try g.lookup(b("joe")).nulTerminated, b("joe\u{0}507\u{0}100\u{0}/home/joe\u{0}\u{0}\u{0}"))
    }

    func testSingleUserSendsOthersToAlias() throws {
        let a = try makeGetpw(single: true).lookup(b("joe-foo"))
        XCTAssertEqual([a.user, a.uid, a.gid, a.home, a.dash, a.ext].map(s), ["alias", "1000", "1000", "/q/alias", "-", "joe-foo"])
    }

    func testNoAlias() {
        let g = Getpw(getpwnam: { _ in nil }, owner: { _ in nil })
        XCTAssertThrowsError(try g.lookup(b("x"))) { XCTAssertEqual(($0 as? GetpwError)?.code, QLX.noAlias) }
    }

    func testTemporaryErrorPropagates() {
        let g = Getpw(getpwnam: { _ in throw GetpwError(code: QLX.sys) }, owner: { _ in nil })
        XCTAssertThrowsError(try g.lookup(b("x"))) { XCTAssertEqual(($0 as? GetpwError)?.code, QLX.sys) }
    }
}

final class Pw2uTests: XCTestCase {
    func make() -> Pw2u {
        var p = Pw2u()
        p.owner = { ["/home/joe": 507, "/var/qmail/alias": 7790, "/home/bob": 1][s($0)] }
        return p
    }

    func testDefault() throws {
        var p = make()
        XCTAssertEqual(s(try p.account(b("joe:x:507:100:Joe:/home/joe:/bin/sh"))),
                       "=joe:joe:507:100:/home/joe:::\n+joe-:joe:507:100:/home/joe:-::\n")
        XCTAssertEqual(s(try p.account(b("alias:*:7790:2108::/var/qmail/alias:/bin/true"))),
                       "+:alias:7790:2108:/var/qmail/alias:-::\n=alias:alias:7790:2108:/var/qmail/alias:::\n+alias-:alias:7790:2108:/var/qmail/alias:-::\n")
        XCTAssertTrue(p.sawAlias)
        XCTAssertEqual(try p.account(b("root:x:0:0:root:/root:/bin/sh")), [])
        XCTAssertEqual(try p.account(b("Joe:x:507:100:Joe:/home/joe:/bin/sh")), [])     // uppercase
        XCTAssertEqual(try p.account(b("bob:x:2:100::/home/bob:/bin/sh")), [])          // not owner
        XCTAssertEqual(try p.account(b("gone:x:3:100::/nonexistent:/bin/sh")), [])      // no home
        XCTAssertEqual(try p.account(b("short:x:3")), [])
    }

    func testOptions() throws {
        var p = make()
        XCTAssertTrue(p.parseOptions(["-H", "-u", "-c", "+", "-/"].map(b)))
        XCTAssertEqual(s(try p.account(b("Bob:x:2:100::/home/bob:/bin/sh"))),
                       "=Bob:Bob:2:100:/home/bob:::\n+Bob+:Bob:2:100:/home/bob:-/::\n")
        var q = make()
        XCTAssertTrue(q.parseOptions(["-C"].map(b)))
        XCTAssertEqual(s(try q.account(b("joe:x:507:100:Joe:/home/joe:/bin/sh"))), "=joe:joe:507:100:/home/joe:::\n")
        var h = make()
        XCTAssertTrue(h.parseOptions(["-h"].map(b)))
        XCTAssertThrowsError(try h.account(b("gone:x:3:100::/nonexistent:/bin/sh")))
        var bad = make()
        XCTAssertFalse(bad.parseOptions(["-z"].map(b)))
    }

    func testSubuser() throws {
        var p = make()
        _ = try p.account(b("joe:x:507:100:Joe:/home/joe:/bin/sh"))
        XCTAssertEqual(s(try p.subuser(b("jsub:joe:pre:"))),
                       "=jsub:joe:507:100:/home/joe:-:pre:\n+jsub-:joe:507:100:/home/joe:-:pre-:\n")
        XCTAssertThrowsError(try p.subuser(b("x:nobody:pre:")))
    }
}
