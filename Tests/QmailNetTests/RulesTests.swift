import XCTest
import QmailCore
@testable import QmailNet
import TestSupport

final class RulesTests: XCTestCase {

    func testParseAllowDenyAndVariables() throws {
        let r = try RulesCompiler.parse(b("# c\n127.0.0.1:allow,A=\"x y\",B=/z/\n10.:deny\n\n:allow\n"))
        XCTAssertEqual(r.map { $0.0 }, [b("127.0.0.1"), b("10."), b("")])
        XCTAssertEqual(r[0].1, b("+A=x y") + [0] + b("+B=z") + [0])
        XCTAssertEqual(r[1].1, [UInt8(ascii: "D"), 0])
        XCTAssertEqual(r[2].1, [])
    }

    func testRangesExpandAndCapAt255() throws {
        let r = try RulesCompiler.parse(b("1.2.3.250-300:deny\n4.5-6.:allow\n7.9-8.1:allow\n"))
        XCTAssertEqual(r.map { $0.0.string }, (250...255).map { "1.2.3.\($0)" } + ["4.5.", "4.6."])
    }

    func testBadLines() {
        for l in ["1:allow,A", "1:allow,A=", "1:allow,A=\"x", "1:allow x", "1:allowance", "1:foo"] {
            XCTAssertThrowsError(try RulesCompiler.parse(b(l + "\n")), l)
        }
        XCTAssertEqual(try RulesCompiler.parse(b("no colon here\n   \n")).count, 0)
    }

    func testIPv6AddressWithColons() throws {
        let r = try RulesCompiler.parse(b("::1:allow,X=\"1\"\n2001:db8::/x:deny\n"))
        XCTAssertBytes(r[0].0, b("::1"))
        XCTAssertBytes(r[1].0, b("2001:db8::/x"))
    }

    func testLookupOrderIsUcspis() {
        let keys = RulesLookup.keys(ip: b("1.2.3.4"), host: b("a.example.com"), info: b("joe")).map { $0.string }
        XCTAssertEqual(keys, ["joe@1.2.3.4", "joe@=a.example.com", "1.2.3.4", "=a.example.com",
                              "1.2.3.", "1.2.", "1.", "=.example.com", "=.com", "=", ""])
        XCTAssertEqual(RulesLookup.keys(ip: b("1.2.3.4"), host: nil, info: nil).map { $0.string },
                       ["1.2.3.4", "1.2.3.", "1.2.", "1.", ""])
    }

    func testIPv6Keys() {
        let keys = RulesLookup.keys(ip: b("::1"), host: nil, info: nil).map { $0.string }
        XCTAssertEqual(keys.first, "::1")
        XCTAssertEqual(keys[1], "0000:0000:0000:0000:0000:0000:0000:0001")
        XCTAssertTrue(keys.contains("0000:0000:"))
        XCTAssertEqual(keys.last, "")
    }

    func testVerdictDecoding() {
        let v = RuleVerdict(data: [UInt8(ascii: "D"), 0] + b("+A=1") + [0] + b("+junk") + [0] + b("+B=") + [0] + b("+C=trailing"))
        XCTAssertTrue(v.deny)
        XCTAssertEqual(v.env.map { $0.name.string + "=" + $0.value.string }, ["A=1", "B="])
    }

    func testLookupInCdb() throws {
        let recs = try RulesCompiler.parse(b("10.0.:deny\n:allow,D=\"1\"\n"))
        let dir = "/tmp/qmailnet-test-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = unlink(dir + "/r.cdb"); rmdir(dir) }
        try CdbWriter.create(path: dir + "/r.cdb") { add in for (k, d) in recs { try add(k, d) } }
        let cdb = try XCTUnwrap(try CdbReader.open(dir + "/r.cdb"))
        XCTAssertEqual(try RulesLookup.lookup(cdb, ip: b("10.0.9.9"), host: nil, info: nil)?.deny, true)
        XCTAssertBytes(try RulesLookup.lookup(cdb, ip: b("10.1.9.9"), host: nil, info: nil)?.env.first?.value, b("1"))
    }

    func testAddresses() {
        XCTAssertEqual(IPAddress("127.0.0.1")?.unmapped.description, "127.0.0.1")
        XCTAssertEqual(IPAddress("::ffff:10.1.2.3")?.unmapped.description, "10.1.2.3")
        XCTAssertEqual(IPAddress("2001:DB8::1")?.unmapped.description, "2001:db8::1")
        XCTAssertNil(IPAddress("1.2.3")?.unmapped)
        XCTAssertEqual(NameLookup.port("110"), 110)
        XCTAssertEqual(NameLookup.port("pop3"), 110)
        XCTAssertNil(NameLookup.port("no-such-service-xyz"))
    }

    func testOptions() throws {
        let o = try XCTUnwrap(TCPServerOptions.parse(["-vRHl0", "-c", "100", "-x", "r.cdb", "-Dp", "0", "pop3", "prog", "-a"]))
        XCTAssertEqual(o.verbosity, 2)
        XCTAssertFalse(o.ident)
        XCTAssertFalse(o.remoteHost)
        XCTAssertEqual(o.localName, "0")
        XCTAssertEqual(o.limit, 100)
        XCTAssertEqual(o.rulesPath, "r.cdb")
        XCTAssertTrue(o.noDelay && o.paranoid)
        XCTAssertEqual(o.program, ["prog", "-a"])
        XCTAssertNil(TCPServerOptions.parse(["-c", "0", "0", "1", "x"]))
        XCTAssertNil(TCPServerOptions.parse(["0", "1"]))
    }
}
