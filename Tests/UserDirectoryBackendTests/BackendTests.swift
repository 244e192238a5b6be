#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory
import UserDirectoryLDAP
import UserDirectorySQL
import XCTest
import TestSupport

final class BackendTests: XCTestCase {

    func testRFC4515Escaping() throws {
        XCTAssertEqual(try LDAPBackend.escape(b("alice@example.org")), "alice@example.org")
        XCTAssertEqual(try LDAPBackend.escape(b("*)(uid=*")), "\\2A\\29\\28uid=\\2A")
        XCTAssertEqual(try LDAPBackend.escape(b("a\\00b")), "a\\5C00b")
        XCTAssertEqual(try LDAPBackend.escape([0x61, 0, 0x62]), "a\\00b")
        // Nothing that ends or opens a filter survives unescaped.
        let nasty = try LDAPBackend.escape(b("x)(|(mail=*))(\\"))
        XCTAssertFalse(nasty.contains("(") || nasty.contains(")") || nasty.contains("*"))
    }

    func testFilterTemplate() {
        XCTAssertEqual(LDAPBackend.fillForTests("(|(mail=%s)(alias=%s))", "a\\2a"), "(|(mail=a\\2a)(alias=a\\2a))")
        XCTAssertEqual(LDAPBackend.fillForTests("(x=100%)(m=%s)", "v"), "(x=100%)(m=v)")
    }

    func testForwardsAreAddressesOnly() {
        XCTAssertEqual(RemoteDirectory.forwardAddresses([b("&a@x"), b("b@y"), b("|rm -rf /"), b("/var/mbox"),
                                                         b("./Maildir/"), b("#c"), b(" c@z")]),
                       [b("a@x"), b("b@y"), b("c@z")])
    }

    func testCryptPrefixAndMailboxDefaults() {
        XCTAssertBytes(RemoteDirectory.cryptHash(b("{CRYPT}$6$s$h")), b("$6$s$h"))
        XCTAssertBytes(RemoteDirectory.cryptHash(b("{crypt}$y$x")), b("$y$x"))
        XCTAssertBytes(RemoteDirectory.cryptHash(b("{SSHA}abc")), b("{SSHA}abc"))
        let dom = VDomain(name: b("example.net"), real: b("example.org"), dir: "/d/example.org", uid: 7, gid: 8)
        var a = AccountRecord(user: b("bob"))
        a.home = ""
        a.quota = b("1000S")
        a.status = b("nologin")
        guard case .success(let m) = RemoteDirectory.mailbox(a, domain: dom) else { return XCTFail() }
        XCTAssertBytes(m.login, b("bob@example.org"))
        XCTAssertEqual(m.home, "/d/example.org/bob")
        XCTAssertEqual(m.maildir, "/d/example.org/bob/Maildir")
        XCTAssertEqual([m.uid, m.gid], [7, 8])
        XCTAssertEqual(m.quota.bytes, 1000)
        XCTAssertFalse(m.active)
        a.status = b("weird")
        if case .success = RemoteDirectory.mailbox(a, domain: dom) { XCTFail("an unknown status must not pass") }
        a.status = nil
        a.uid = b("-1")
        if case .success = RemoteDirectory.mailbox(a, domain: dom) { XCTFail("a bad uid must not pass") }
        // An entry with neither mailbox nor forwards is a directory fault: temporary.
        let empty = AccountRecord(user: b("x"))
        if case .temporary = RemoteDirectory.recipient(empty, domain: dom, aliases: true) {} else { XCTFail() }
    }

    func testNormalizeBoundsAndNames() {
        XCTAssertNil(RemoteDirectory.normalize(user: [UInt8](repeating: 97, count: 65), domain: b("x.org")))
        XCTAssertNil(RemoteDirectory.normalize(user: b("a"), domain: [UInt8](repeating: 97, count: 254)))
        XCTAssertNil(RemoteDirectory.normalize(user: [97, 0], domain: b("x.org")))
        XCTAssertBytes(RemoteDirectory.normalize(user: b("A*"), domain: b("X.Org"))?.user, b("a*"))
        var map = NameMap(defaults: ["users": "users"])
        XCTAssertThrowsError(try map.apply([b("users=u`; DROP")], file: "sqlnames") { $0 >= 97 && $0 <= 122 })
        XCTAssertThrowsError(try map.apply([b("nosuch=x")], file: "sqlnames") { _ in true })
        XCTAssertNoThrow(try map.apply([b("users=mailusers")], file: "sqlnames") { $0 >= 97 && $0 <= 122 })
        XCTAssertEqual(map["users"], "mailusers")
    }

    func testSQLServerForms() throws {
        let s = try SQLBackend.Config(server: "/run/mysqld/mysqld.sock", database: "m", user: "u", password: [])
        XCTAssertEqual(s.servers[0].socket, "/run/mysqld/mysqld.sock")
        let t = try SQLBackend.Config(server: "db.example:3307", database: "m", user: "u", password: [])
        XCTAssertEqual(t.servers[0].host, "db.example")
        XCTAssertEqual(t.servers[0].port, 3307)
        XCTAssertNil(t.servers[0].socket)
        XCTAssertThrowsError(try SQLBackend.Config(server: "db:99999", database: "m", user: "u", password: []))
    }

    /// Nobody listens: every answer is temporary, never "no such user".
    func testUnreachableServersAreTemporary() {
        let home = QmailHome(path: "/nonexistent")
        var lc = LDAPBackend.Config(uris: "ldap://127.0.0.1:1/", base: "dc=x")
        lc.timeout = 1
        let ldap = LDAPBackend(home: home, config: lc)
        if case .temporary = ldap.lookup(login: b("a@b.org")) {} else { XCTFail("LDAP down must be temporary") }
        var sc = try! SQLBackend.Config(server: "127.0.0.1:1", database: "m", user: "u", password: [])
        sc.timeout = 1
        let sql = SQLBackend(home: home, config: sc)
        if case .temporary = sql.recipient(user: b("a"), domain: b("b.org"), aliases: true) {} else { XCTFail("SQL down must be temporary") }
        // Missing configuration: temporary too.
        if case .temporary = LDAPBackend(home: home).lookup(login: b("a@b.org")) {} else { XCTFail() }
        if case .temporary = SQLBackend(home: home).lookup(login: b("a@b.org")) {} else { XCTFail() }
    }
}
