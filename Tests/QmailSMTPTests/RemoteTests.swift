import XCTest
import QmailCore
@testable import QmailNet
@testable import QmailSMTP

final class DNSTests: XCTestCase {
    /// A reply for mx.test MX with a compressed name and a CNAME chain for A.
    func testParseCompressedMXReply() throws {
        let id: UInt16 = 0x1234
        var m: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        m += try DNSResolver.encodeName(Array("mx.test".utf8)) + [0, 15, 0, 1]
        // answer: name pointer to offset 12, MX, IN, ttl, rdlen, pref 10, "mail" + pointer
        let rdata: [UInt8] = [0, 10, 4] + Array("mail".utf8) + [0xc0, 12]
        m += [0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, UInt8(rdata.count)] + rdata
        let r = try DNSResolver.parse(m, id: id, name: Array("MX.test.".utf8), type: 15)
        XCTAssertFalse(r.truncated)
        XCTAssertEqual(r.records.count, 1)
        XCTAssertEqual(r.records[0].preference, 10)
        XCTAssertEqual(r.records[0].name, Array("mail.mx.test".utf8))
    }

    /// Found by Fuzz/dns.swift: an MX record too short to hold a preference
    /// and a name came back without a name, which mxAddresses took for a
    /// null MX (RFC 7505) and so bounced mail for the domain. It is a
    /// damaged reply: a soft error, mail waits.
    func testShortMXRecordIsSoftNotNullMX() throws {
        var m: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        m += try DNSResolver.encodeName(Array("example.com".utf8)) + [0, 15, 0, 1]
        m += [0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 2, 0, 10]
        XCTAssertThrowsError(try DNSResolver.parse(m, id: 0x1234, name: Array("example.com".utf8), type: 15)) {
            XCTAssertEqual($0 as? DNSError, .soft)
        }
        // A real null MX (preference 0, root name) still parses as one.
        m[m.count - 3] = 3
        m += [0]
        let r = try DNSResolver.parse(m, id: 0x1234, name: Array("example.com".utf8), type: 15)
        XCTAssertEqual(r.records.map { $0.name }, [[]])
    }

    func testRcodes() throws {
        var m: [UInt8] = [0, 1, 0x81, 0x83, 0, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertThrowsError(try DNSResolver.parse(m, id: 1, name: [], type: 1)) { XCTAssertEqual($0 as? DNSError, .hard) }
        m[3] = 0x82
        XCTAssertThrowsError(try DNSResolver.parse(m, id: 1, name: [], type: 1)) { XCTAssertEqual($0 as? DNSError, .soft) }
        m[3] = 0x80
        XCTAssertThrowsError(try DNSResolver.parse(m, id: 2, name: [], type: 1)) { XCTAssertEqual($0 as? DNSError, .soft) }
        // a pointer loop is malformed, not a hang
        let loop: [UInt8] = [0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12]
        XCTAssertThrowsError(try DNSResolver.parse(loop, id: 1, name: [], type: 1))
    }

    func testBadNames() {
        XCTAssertThrowsError(try DNSResolver.encodeName(Array("a..b".utf8)))
        XCTAssertThrowsError(try DNSResolver.encodeName(Array(String(repeating: "x", count: 64).utf8)))
    }

    func testReverseNames() {
        XCTAssertEqual(IPAddress("192.0.2.7")!.reverseName, "7.2.0.192.in-addr.arpa")
        XCTAssertTrue(IPAddress("2001:db8::1")!.reverseName.hasPrefix("1.0.0.0.0.0.0.0"))
        XCTAssertEqual(IPAddress("::ffff:10.1.2.3")!.unmapped.description, "10.1.2.3")
    }
}

final class RouteTests: XCTestCase {
    func config(_ lines: String) -> RemoteConfig {
        var c = RemoteConfig()
        for l in lines.split(separator: "\n") {
            let b = Array(l.utf8)
            let colon = b.firstIndex(of: Ascii.colon)!
            if colon == 0 { c.defaultRoute = Array(b[1...]) } else { c.routes.insert(Array(b[..<colon]), Array(b[(colon + 1)...])) }
        }
        return c
    }

    func testSmtproutes() {
        let c = config("example.com:relay.example.net:2525\n.example.org:[192.0.2.1]\nv6.example:[::1]:26\nlocal.example:\n:smarthost.example")
        XCTAssertEqual(c.route(for: Array("EXAMPLE.com".utf8))?.host, Array("relay.example.net".utf8))
        XCTAssertEqual(c.route(for: Array("example.com".utf8))?.port, 2525)
        XCTAssertEqual(c.route(for: Array("a.b.example.org".utf8))?.host, Array("[192.0.2.1]".utf8))
        XCTAssertEqual(c.route(for: Array("v6.example".utf8))?.port, 26)
        XCTAssertNil(c.route(for: Array("local.example".utf8)))
        XCTAssertEqual(c.route(for: Array("other.example".utf8))?.host, Array("smarthost.example".utf8))
    }

    func testNetstrings() {
        XCTAssertEqual(Netstring.encode(Array("abc".utf8)), Array("3:abc,".utf8))
        XCTAssertEqual(Netstring.split(Array("1:a,0:,2:bc,".utf8)), [Array("a".utf8), [], Array("bc".utf8)])
        XCTAssertNil(Netstring.split(Array("3:ab,".utf8)))
        XCTAssertNil(Netstring.split(Array("x:ab,".utf8)))
    }

    func testTcpToMemory() throws {
        let dir = "/tmp/sq-tcpto-\(getpid())"
        try? Sys.mkdir(dir, 0o755)
        try? Sys.mkdir(dir + "/lock", 0o755)
        defer { _ = Glibc.system("rm -rf \(dir)") }
        let t = TcpTo(queue: dir)
        let ip = IPAddress("192.0.2.9")!, ip6 = IPAddress("2001:db8::9")!
        XCTAssertFalse(t.isBad(ip))
        t.record(ip, timedOut: true)
        XCTAssertFalse(t.isBad(ip))
        t.record(ip, timedOut: true)
        XCTAssertTrue(t.isBad(ip))
        t.record(ip6, timedOut: true); t.record(ip6, timedOut: true)
        XCTAssertTrue(t.isBad(ip6))
        XCTAssertTrue(t.report().contains("192.0.2.9 timed out 0 seconds ago; # recent timeouts: 2\n"))
        t.record(ip, timedOut: false)
        XCTAssertFalse(t.isBad(ip))
        try t.clear()
        XCTAssertFalse(t.isBad(ip6))
        XCTAssertEqual(t.report(), "")
    }
}
