import XCTest
import QmailCore
@testable import QmailPOP3
import TestSupport

final class PopupTests: XCTestCase {
    func reply(_ s: String) -> PopupAction { .reply(b(s)) }

    func session(tls: Bool = false, active: Bool = false, need: Bool = false) -> PopupSession {
        PopupSession(config: PopupConfig(timestamp: b("<1.2@h>"), tlsAvailable: tls, tlsActive: active, plaintextNeedsTLS: need))
    }

    func testUserPass() {
        let s = session()
        XCTAssertBytes(s.greeting, b("+OK <1.2@h>\r\n"))
        XCTAssertEqual(s.handle(b("pass x")), [reply("-ERR USER first\r\n")])
        XCTAssertEqual(s.handle(b("USER   joe")), [reply("+OK \r\n")])
        XCTAssertEqual(s.handle(b("PASS")), [reply("-ERR syntax error\r\n")])
        XCTAssertEqual(s.handle(b("PASS a b")), [.login(user: b("joe"), password: b("a b"))])
    }

    func testApopAndUnknown() {
        let s = session()
        XCTAssertEqual(s.handle(b("APOP joe 0123")), [.login(user: b("joe"), password: b("0123"))])
        XCTAssertEqual(s.handle(b("APOP joe")), [reply("-ERR syntax error\r\n")])
        XCTAssertEqual(s.handle(b("STAT")), [reply("-ERR authorization first\r\n")])
        XCTAssertEqual(s.handle(b("US\0ER joe")), [reply("-ERR syntax error\r\n")])
        XCTAssertEqual(s.handle(b("quit")), [reply("+OK \r\n"), .quit])
    }

    func testStlsAndRequiredTLS() {
        let s = session(tls: true, need: true)
        XCTAssertEqual(s.greeting, b("+OK \r\n"))  // no timestamp: APOP is not offered
        XCTAssertFalse(s.capabilities().string.contains("USER"))
        XCTAssertTrue(s.capabilities().string.contains("STLS"))
        XCTAssertEqual(s.handle(b("USER joe")), [reply("-ERR [AUTH] plaintext login refused before STLS\r\n")])
        XCTAssertEqual(s.handle(b("APOP joe secret")), [reply("-ERR [AUTH] plaintext login refused before STLS\r\n")])
        XCTAssertEqual(s.handle(b("STLS")), [reply("+OK begin TLS negotiation\r\n"), .startTLS])
        s.tlsStarted()
        XCTAssertEqual(s.handle(b("STLS")), [reply("-ERR already using TLS\r\n")])
        XCTAssertTrue(s.capabilities().string.contains("USER"))
        XCTAssertFalse(s.capabilities().string.contains("STLS"))
        XCTAssertEqual(s.handle(b("APOP joe 0123")), [.login(user: b("joe"), password: b("0123"))])
        XCTAssertEqual(s.handle(b("USER joe")), [reply("+OK \r\n")])
        XCTAssertEqual(session().handle(b("STLS")), [reply("-ERR STLS not available\r\n")])
    }

    func testAuthPlain() {
        let s = session()
        XCTAssertEqual(s.handle(b("AUTH PLAIN ") + Base64.encode(b("\0joe\0pw"))), [.login(user: b("joe"), password: b("pw"))])
        XCTAssertEqual(s.handle(b("AUTH plain")), [reply("+ \r\n")])
        XCTAssertEqual(s.handle(Base64.encode(b("joe\0joe\0pw"))), [.login(user: b("joe"), password: b("pw"))])
        XCTAssertEqual(s.handle(b("AUTH PLAIN")), [reply("+ \r\n")])
        XCTAssertEqual(s.handle(b("*")), [reply("-ERR AUTH cancelled\r\n")])
        XCTAssertEqual(s.handle(b("AUTH PLAIN ") + Base64.encode(b("\0joe\0"))), [reply("-ERR malformed AUTH input\r\n")])
    }

    func testBase64() {
        for s in ["", "a", "ab", "abc", "abcd", "\0joe\0secret"] {
            XCTAssertEqual(Base64.decode(Base64.encode(b(s))), b(s))
        }
        XCTAssertNil(Base64.decode(b("abc")))
        XCTAssertNil(Base64.decode(b("ab=c")))
        XCTAssertNil(Base64.decode(b("a!==")))
    }

    func testCommandSplit() {
        let c = POP3Command(b("ReTr   12 x"))
        XCTAssertTrue(c.isVerb("retr"))
        XCTAssertBytes(c.arg, b("12 x"))
    }

    func testCommandReaderBoundsLines() throws {
        let p = try Sys.pipeCloexec()
        let data = b("short\r\n") + [UInt8](repeating: 65, count: 100_000) + b("\nlast")
        let writer = Thread { try? Sys.writeAll(p.write, data); close(p.write) }
        writer.start()
        for exact in [false] {
            let r = CommandReader(fd: p.read, exact: exact, timeout: 0)
            XCTAssertEqual(r.next(limit: 100), .line(b("short")))
            XCTAssertEqual(r.next(limit: 100), .tooLong)
            XCTAssertEqual(r.next(limit: 100), .line(b("last")))
            XCTAssertEqual(r.next(limit: 100), .eof)
        }
        close(p.read)
    }
}

final class Pop3dTests: XCTestCase {
    var dir = ""
    var saved = ""

    override func setUp() {
        dir = "/tmp/pop3d-unit-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        for d in ["", "/new", "/cur", "/tmp"] { mkdir(dir + d, 0o700) }
        var buf = [CChar](repeating: 0, count: 4096)
        saved = String(cString: getcwd(&buf, buf.count))
        chdir(dir)
    }

    override func tearDown() {
        chdir(saved)
        ChildProcess.run(.init(["rm", "-rf", dir]))
    }

    func put(_ path: String, _ s: String, mtime: Int) throws {
        try FileIO.writeAtomic(path, Array(s.utf8))
        var times = [timespec(tv_sec: mtime, tv_nsec: 0), timespec(tv_sec: mtime, tv_nsec: 0)]
        utimensat(AT_FDCWD, path, &times, 0)
    }

    func run(_ lines: [String]) throws -> String {
        let out = ReplyWriter(fd: -1, timeout: 0)
        let s = Pop3dSession(messages: try MaildirBox.scan(), out: out)
        for l in lines { if !s.handle(Array(l.utf8)) { break } }
        return out.buffer.string
    }

    func testRetrTopAndQuit() throws {
        try put("new/200.a.h", "S: 1\n\nbody1\n.dot\nb2\nb3\n", mtime: 200)
        try put("cur/100.b.h:2,S", "S: 2\n\nx\n", mtime: 100)
        XCTAssertEqual(try run(["UIDL", "TOP 2 1", "TOP 2 0", "RETR 2"]),
                       "+OK \r\n1 100.b.h\r\n2 200.a.h\r\n.\r\n"
                       + "+OK \r\nS: 1\r\n\r\nbody1\r\n.\r\n"
                       + "+OK \r\nS: 1\r\n\r\n.\r\n"
                       + "+OK \r\nS: 1\r\n\r\nbody1\r\n..dot\r\nb2\r\nb3\r\n.\r\n")
        XCTAssertEqual(try run(["DELE 1", "STAT", "QUIT"]), "+OK \r\n+OK 1 23\r\n+OK \r\n")
        XCTAssertEqual(try Sys.listDirectory("cur"), ["200.a.h:2,"])
        XCTAssertEqual(try Sys.listDirectory("new"), [])
    }

    func blast(_ msg: [UInt8], chunk: Int, lines: Int) -> String {
        let out = ReplyWriter(fd: -1, timeout: 0)
        var b = Blaster(out: out, bodyLines: lines)
        var i = 0
        while i < msg.count && !b.done {
            let end = min(msg.count, i + chunk)
            msg[i..<end].withUnsafeBufferPointer { b.feed($0) }
            i = end
        }
        b.finish()
        return out.buffer.string
    }

    func testBlasterIsIndependentOfChunking() {
        let msg = Array("A: 1\r\nB: 2\n\r\n.x\r\n..\n.\nlast\r".utf8)
        let whole = blast(msg, chunk: 1 << 16, lines: -1)
        XCTAssertEqual(whole, "A: 1\r\nB: 2\r\n\r\n..x\r\n...\r\n..\r\nlast\r\n.\r\n")
        for chunk in 1...7 {
            XCTAssertEqual(blast(msg, chunk: chunk, lines: -1), whole, "chunk \(chunk)")
            XCTAssertEqual(blast(msg, chunk: chunk, lines: 2), "A: 1\r\nB: 2\r\n\r\n..x\r\n...\r\n.\r\n", "chunk \(chunk)")
            XCTAssertEqual(blast(msg, chunk: chunk, lines: 0), "A: 1\r\nB: 2\r\n\r\n.\r\n", "chunk \(chunk)")
        }
    }

    func testCleanTmpRemovesOldFilesOnly() throws {
        try put("tmp/old", "x", mtime: 1000)
        try put("tmp/new", "x", mtime: Sys.now())
        MaildirBox.cleanTmp()
        XCTAssertEqual(try Sys.listDirectory("tmp"), ["new"])
    }
}
