import XCTest
@testable import UserDirectory
@testable import Checkpassword
import QmailCore
#if canImport(Glibc)
import Glibc
#endif

/// A temporary qmail home with HOME/users and HOME/control.
final class TempHome {
    let path: String
    var home: QmailHome { QmailHome(path: path) }

    init() {
        var t = Array("/tmp/udtest.XXXXXX".utf8CString)
        let p = mkdtemp(&t)!
        path = String(cString: p)
        mkdir(path + "/users", 0o755)
        mkdir(path + "/control", 0o755)
        mkdir(path + "/domains", 0o755)
    }

    deinit { try? FileStore.removeTree(path) }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

final class FileBackendTests: XCTestCase {
    var t: TempHome!
    var store: FileStore!
    var dom: VDomain!

    override func setUp() {
        t = TempHome()
        store = FileStore(home: t.home)
        dom = VDomain(name: bytes("example.org"), real: bytes("example.org"), dir: t.path + "/domains/example.org",
                      uid: getuid(), gid: getgid())
        mkdir(dom.dir, 0o700)
    }

    func addUsers(_ users: [VUser], aliases: [(name: [UInt8], target: [UInt8])] = []) throws {
        try store.saveDomainData(dom, users: users, aliases: aliases)
        let alias = VDomain(name: bytes("example.net"), real: dom.name, dir: dom.dir, uid: dom.uid, gid: dom.gid)
        try store.saveDomains([dom, alias])
    }

    func user(_ name: String, _ password: String, flags: Int = 0, quota: Quota = .unlimited, clear: String? = nil) throws -> VUser {
        VUser(name: bytes(name), hash: try PasswordHash.make(bytes(password), scheme: .md5), flags: flags, gecos: bytes("G"),
              dir: dom.dir + "/" + name, quota: quota, clear: clear.map(bytes))
    }

    func testRecordsRoundTrip() throws {
        let u = VUser(name: bytes("a"), hash: bytes("$1$x$y"), uidField: 1, flags: 2, gecos: bytes("A B"), dir: "/d/a",
                      quota: Quota(bytes: 10), clear: bytes("p:w"))
        XCTAssertEqual(u.line.string, "a:$1$x$y:1:2:A B:/d/a:10S:p:w")
        XCTAssertEqual(VUser.parse(line: u.line), u)
        // vpopmail's 7-field form, and its NOQUOTA.
        let v = VUser.parse(line: bytes("pm:$1$a$b:1:0:Postmaster:/home/vpopmail/domains/x.org/pm:NOQUOTA"))
        XCTAssertEqual(v?.quota, .unlimited)
        XCTAssertNil(v?.clear)
        XCTAssertNil(VUser.parse(line: bytes("pm:$1$a$b:1:0:Postmaster:relative/dir:NOQUOTA")))
        XCTAssertNil(VUser.parse(line: bytes("pm:$1$a$b:1:0")))
        XCTAssertEqual(VDomain.parse(line: dom.line), dom)
        XCTAssertEqual(VDomain.parse(name: dom.name, cdbData: dom.cdbData), dom)
        XCTAssertNil(VDomain.parse(line: bytes("a:b:rel:1:1")))
    }

    /// Cluster home hosts: vpasswd lines keep vpopmail's form (the host
    /// rides after a NUL in the cdb only); vdomains takes a sixth field;
    /// records from before read as "no home host".
    func testHomeHostRecords() throws {
        var u = VUser(name: bytes("a"), hash: bytes("$1$x$y"), gecos: bytes("A"), dir: "/d/a", quota: .unlimited,
                      clear: bytes("p:w"), homeHost: "b.example.net")
        XCTAssertEqual(u.line.string, "a:$1$x$y:0:0:A:/d/a:NOQUOTA:p:w")
        XCTAssertEqual(VUser.parse(cdbData: u.cdbData), u)
        XCTAssertNil(VUser.parse(cdbData: u.line + [0] + bytes("not a host")))
        // vmoveuser's mark rides after the host (empty when there is none)
        u.movingTo = "c.example.net"
        XCTAssertEqual(VUser.parse(cdbData: u.cdbData), u)
        u.homeHost = nil
        XCTAssertEqual(u.cdbData, u.line + [0, 0] + bytes("c.example.net"))
        XCTAssertEqual(VUser.parse(cdbData: u.cdbData), u)
        XCTAssertNil(VUser.parse(cdbData: u.line + [0, 0] + bytes("not a host")))
        u.movingTo = nil
        XCTAssertEqual(VUser.parse(cdbData: u.line), u)
        var d = VDomain(name: bytes("x.org"), real: bytes("x.org"), dir: "/d", uid: 1, gid: 2, homeHost: "b.example.net")
        XCTAssertEqual(d.line.string, "x.org:x.org:/d:1:2:b.example.net")
        XCTAssertEqual(VDomain.parse(line: d.line), d)
        XCTAssertEqual(VDomain.parse(name: d.name, cdbData: d.cdbData), d)
        XCTAssertNil(VDomain.parse(line: bytes("x.org:x.org:/d:1:2:bad host")))
        // The mailbox's own host wins over its domain's; none: the domain's.
        XCTAssertEqual(u.mailbox(domain: d).homeHost, "b.example.net")
        u.homeHost = "c.example.net"
        XCTAssertEqual(u.mailbox(domain: d).homeHost, "c.example.net")
        d.homeHost = nil
        XCTAssertEqual(VDomain.parse(line: d.line), d)
        u.homeHost = nil
        XCTAssertNil(u.mailbox(domain: d).homeHost)
        XCTAssertEqual(HomeHost.remote(u.mailbox(domain: d), local: "a.example.net"), nil)
        var m = u.mailbox(domain: d)
        m.homeHost = "a.example.net"
        XCTAssertNil(HomeHost.remote(m, local: "a.example.net"))
        XCTAssertEqual(HomeHost.remote(m, local: "b.example.net"), "a.example.net")
        XCTAssertEqual(HomeHost.parse(bytes(" A.Example.NET \r")), "a.example.net")
    }

    func testLookups() throws {
        try addUsers([try user("alice", "pw"), try user("bob", "pw2", flags: VUser.flagNoPOP)],
                     aliases: [(bytes("info"), bytes("x@y.org")), (bytes("info"), bytes("z@y.org"))])
        let b = FileBackend(home: t.home, plainPasswordsEnabled: false)
        guard case .found(let m) = b.lookup(login: bytes("Alice@Example.ORG")) else { return XCTFail() }
        XCTAssertEqual(m.login, bytes("alice@example.org"))
        XCTAssertEqual(m.maildir, dom.dir + "/alice/Maildir")
        XCTAssertEqual(m.uid, getuid())
        XCTAssertFalse(m.initGroups)
        XCTAssertEqual(b.lookup(login: bytes("alice%example.org")), .found(m))
        // An alias domain finds the real domain's users.
        guard case .found(let m2) = b.lookup(login: bytes("alice@example.net")) else { return XCTFail() }
        XCTAssertEqual(m2.login, bytes("alice@example.org"))
        XCTAssertEqual(b.lookup(login: bytes("carol@example.org")), .noSuchUser)
        XCTAssertEqual(b.lookup(login: bytes("alice@example.com")), .noSuchUser)
        XCTAssertEqual(b.lookup(login: bytes("alice")), .noSuchUser)
        XCTAssertEqual(b.lookup(login: bytes("info@example.org")), .noSuchUser)
        XCTAssertEqual(b.lookup(login: bytes("../x@example.org")), .noSuchUser)
        try FileIO.writeAtomic(t.path + "/control/vdefaultdomain", bytes("example.org\n"))
        XCTAssertEqual(b.lookup(login: bytes("alice")), .found(m))
        if case .alias(let targets, _) = b.recipient(user: bytes("info"), domain: bytes("example.org")) {
            XCTAssertEqual(targets, [bytes("x@y.org"), bytes("z@y.org")])
        } else { XCTFail("alias") }
        XCTAssertEqual(b.recipient(user: bytes("x"), domain: bytes("nowhere.org")), .noSuchDomain)
    }

    func testUnreadableBackendIsTemporary() throws {
        try addUsers([try user("alice", "pw")])
        let b = FileBackend(home: t.home, plainPasswordsEnabled: false)
        // The domain's cdb gone while the domain is listed.
        try Sys.rename(dom.dir + "/vpasswd.cdb", dom.dir + "/saved")
        guard case .temporary = b.lookup(login: bytes("alice@example.org")) else { return XCTFail() }
        // The cdb replaced by something unreadable as a cdb.
        mkdir(dom.dir + "/vpasswd.cdb", 0o700)
        guard case .temporary = b.lookup(login: bytes("alice@example.org")) else { return XCTFail() }
        rmdir(dom.dir + "/vpasswd.cdb")
        try Sys.rename(dom.dir + "/saved", dom.dir + "/vpasswd.cdb")
        guard case .found = b.lookup(login: bytes("alice@example.org")) else { return XCTFail() }
        // The domain index missing while its text says domains exist.
        try Sys.unlink(t.path + "/users/vdomains.cdb")
        guard case .temporary = b.lookup(login: bytes("alice@example.org")) else { return XCTFail() }
        // No index and no text: nothing is hosted.
        try Sys.unlink(t.path + "/users/vdomains")
        XCTAssertEqual(b.lookup(login: bytes("alice@example.org")), .noSuchUser)
        // A truncated index is temporary too.
        try FileIO.writeAtomic(t.path + "/users/vdomains.cdb", [1, 2, 3])
        guard case .temporary = b.lookup(login: bytes("alice@example.org")) else { return XCTFail() }
    }

    func testAuthenticate() throws {
        try addUsers([try user("alice", "pw"), try user("bob", "pw2", flags: VUser.flagNoPOP),
                      try user("carol", "pw3", clear: "plain3")])
        let b = FileBackend(home: t.home, plainPasswordsEnabled: false)
        func auth(_ u: String, _ p: String, _ ts: String = "", _ be: UserBackend? = nil) -> AuthResult {
            Authenticator.authenticate(be ?? b, login: bytes(u), password: bytes(p), timestamp: bytes(ts))
        }
        guard case .ok = auth("alice@example.org", "pw") else { return XCTFail() }
        XCTAssertEqual(auth("alice@example.org", "pW"), .mismatch)
        XCTAssertEqual(auth("nobody@example.org", "pw"), .unknownUser)
        XCTAssertEqual(auth("bob@example.org", "pw2"), .disabled)
        XCTAssertEqual(auth("bob@example.org", "bad"), .mismatch)
        // APOP needs plain passwords enabled and a stored clear password.
        let ts = "<1.2@host>"
        let digest = MD5.hex(bytes(ts + "plain3")).string
        XCTAssertEqual(auth("carol@example.org", digest, ts), .mismatch)
        let plain = FileBackend(home: t.home, plainPasswordsEnabled: true)
        guard case .ok = auth("carol@example.org", digest, ts, plain) else { return XCTFail() }
        guard case .ok = auth("carol@example.org", digest.uppercased(), ts, plain) else { return XCTFail() }
        XCTAssertEqual(auth("carol@example.org", MD5.hex(bytes(ts + "wrong")).string, ts, plain), .mismatch)
        XCTAssertEqual(auth("alice@example.org", MD5.hex(bytes(ts + "pw")).string, ts, plain), .mismatch)
        XCTAssertEqual(auth("nobody@example.org", digest, ts, plain), .unknownUser)
        // CRAM-MD5 as qmail-smtpd passes it: challenge as password, digest as timestamp.
        let challenge = "<7.8@mx.example.org>"
        let cram = MD5.hmacHex(key: bytes("plain3"), message: bytes(challenge)).string
        guard case .ok = auth("carol@example.org", challenge, cram, plain) else { return XCTFail() }
        guard case .ok = auth("carol@example.org", challenge, cram.uppercased(), plain) else { return XCTFail() }
        XCTAssertEqual(auth("carol@example.org", challenge, cram), .mismatch)
        XCTAssertEqual(auth("carol@example.org", "<other@challenge>", cram, plain), .mismatch)
        XCTAssertEqual(auth("alice@example.org", challenge, MD5.hmacHex(key: bytes("pw"), message: bytes(challenge)).string,
                            plain), .mismatch)
        // The hash still works when plain passwords are on, with or without
        // the timestamp qmail-popup always sends.
        guard case .ok = auth("carol@example.org", "pw3", "", plain) else { return XCTFail() }
        guard case .ok = auth("carol@example.org", "pw3", ts, plain) else { return XCTFail() }
        guard case .ok = auth("alice@example.org", "pw", ts, plain) else { return XCTFail() }
        guard case .ok = auth("alice@example.org", "pw", ts) else { return XCTFail() }
        // With a hash stored, the hash decides a PASS login.
        XCTAssertEqual(auth("carol@example.org", "plain3", "", plain), .mismatch)
        // Unreadable backend: temporary, never a verdict.
        try Sys.unlink(dom.dir + "/vpasswd.cdb")
        guard case .temporary = auth("alice@example.org", "pw") else { return XCTFail() }
    }

    func testSystemBackendUnknownUser() {
        let s = SystemBackend()
        XCTAssertEqual(s.lookup(login: bytes("no-such-user-\(getpid())")), .noSuchUser)
        XCTAssertEqual(s.lookup(login: bytes("a/b")), .noSuchUser)
        XCTAssertEqual(s.lookup(login: []), .noSuchUser)
        guard case .found(let root) = s.lookup(login: bytes("root")) else { return XCTFail() }
        XCTAssertEqual(root.uid, 0)
        XCTAssertTrue(root.initGroups)
        XCTAssertTrue(SystemBackend.meansNotFound(ENOENT))
        XCTAssertFalse(SystemBackend.meansNotFound(EIO))
    }

    func testCheckpasswordInput() throws {
        let r = try Checkpassword.parse(bytes("u\0p\0ts\0"))
        XCTAssertEqual(r.user, bytes("u"))
        XCTAssertEqual(r.password, bytes("p"))
        XCTAssertEqual(r.timestamp, bytes("ts"))
        XCTAssertEqual(try Checkpassword.parse(bytes("u\0p\0\0extra")).timestamp, [])
        XCTAssertThrowsError(try Checkpassword.parse(bytes("u\0p\0"))) { XCTAssertEqual($0 as? Checkpassword.InputError, .malformed) }
        XCTAssertThrowsError(try Checkpassword.parse(bytes("u"))) { XCTAssertEqual($0 as? Checkpassword.InputError, .malformed) }
        XCTAssertThrowsError(try Checkpassword.parse([UInt8](repeating: 0, count: 513))) {
            XCTAssertEqual($0 as? Checkpassword.InputError, .tooLong)
        }
    }
}

final class MaildirSizeTests: XCTestCase {
    func testSizes() throws {
        XCTAssertEqual(MaildirSize.sizeFromName("123.4_5.host,S=2048:2,S"), 2048)
        XCTAssertEqual(MaildirSize.sizeFromName("123.4_5.host,S=77"), 77)
        XCTAssertNil(MaildirSize.sizeFromName("123.4_5.host"))
        XCTAssertNil(MaildirSize.sizeFromName("123.4_5.host,S="))
    }

    func testQuotaAccounting() throws {
        let t = TempHome()
        let md = t.path + "/Maildir"
        try FileStore.makeMaildir(md, owner: (getuid(), getgid()))
        try FileStore.makeMaildir(md + "/.Sent", owner: (getuid(), getgid()))
        try FileIO.writeAtomic(md + "/cur/1.1.h,S=100:2,S", [UInt8](repeating: 65, count: 100))
        try FileIO.writeAtomic(md + "/.Sent/cur/2.2.h:2,S", [UInt8](repeating: 65, count: 50))
        XCTAssertEqual(try MaildirSize.scan(md), MaildirSize.Usage(bytes: 150, count: 2))
        let q = Quota(bytes: 300, count: 10)
        XCTAssertTrue(try MaildirSize.fits(md, quota: q, size: 150))
        XCTAssertEqual(try FileIO.read(md + "/maildirsize")?.string, "300S,10C\n150 2\n")
        XCTAssertFalse(try MaildirSize.fits(md, quota: q, size: 151))
        try MaildirSize.record(md, bytes: 100, count: 1)
        XCTAssertEqual(try MaildirSize.usage(md, quota: q), MaildirSize.Usage(bytes: 250, count: 3))
        try MaildirSize.record(md, bytes: -100, count: -1)
        XCTAssertEqual(try MaildirSize.usage(md, quota: q), MaildirSize.Usage(bytes: 150, count: 2))
        // Another quota rebuilds the file with the new first line.
        XCTAssertEqual(try MaildirSize.usage(md, quota: Quota(count: 2)), MaildirSize.Usage(bytes: 150, count: 2))
        XCTAssertFalse(try MaildirSize.fits(md, quota: Quota(count: 2), size: 1))
        XCTAssertTrue(try MaildirSize.fits(md, quota: .unlimited, size: 1 << 40))
        // A stale "over quota" is checked again against the Maildir.
        try MaildirSize.record(md, bytes: 10000, count: 0)
        var times = [timespec(tv_sec: Sys.now() - 3600, tv_nsec: 0), timespec(tv_sec: Sys.now() - 3600, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, md + "/maildirsize", &times, 0), 0)
        XCTAssertTrue(try MaildirSize.fits(md, quota: Quota(bytes: 300), size: 100))
        // record() without a maildirsize file does nothing.
        try Sys.unlink(md + "/maildirsize")
        try MaildirSize.record(md, bytes: 5, count: 1)
        XCTAssertFalse(Sys.exists(md + "/maildirsize"))
    }
}
