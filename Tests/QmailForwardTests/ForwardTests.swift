import XCTest
@testable import QmailForward
import QmailCore
import TestSupport

final class Token822Tests: XCTestCase {

    func testTokenKinds() throws {
        let r = try XCTUnwrap(Token822Scanner.parse(b("Joe (x (y)) <a.b@[1.2.3.4]>, \"q\\\"t\";:")))
        let t = r.list
        XCTAssertEqual(t.map(\.kind), [.atom, .comment, .left, .atom, .dot, .atom, .at, .literal, .right,
                                       .comma, .quote, .semi, .colon])
        XCTAssertEqual(Array(r.text(t[1])), b("x y")) // nested parentheses are dropped
        XCTAssertBytes(Array(r.text(t[7])), b("1.2.3.4"))
        XCTAssertBytes(Array(r.text(t[10])), b("q\"t"))
    }

    func testAtomWithCloseParenBecomesQuoted() throws {
        let r = try XCTUnwrap(Token822Scanner.parse(b("b)")))
        XCTAssertEqual(r.list.count, 1)
        XCTAssertEqual(r.list[0].kind, .quote)
        XCTAssertBytes(Array(r.text(r.list[0])), b("b)"))
    }

    func testUnbalancedIsRefused() {
        for s in ["\"open", "(open", "[open", ")", "]", "a (b\\", "\"a\\"] {
            XCTAssertNil(Token822Scanner.parse(b(s)), s)
        }
    }

    func testBackslashAtEndOfAtom() throws {
        let r = try XCTUnwrap(Token822Scanner.parse(b("ab\\")))
        XCTAssertEqual(r.list.map { Array(r.text($0)) }, [b("ab")])
    }
}

final class AliasTests: XCTestCase {
    let q = Qualifier(me: Array("example.com".utf8), defaultHost: Array("example.com".utf8),
                      defaultDomain: Array("example.com".utf8), plusDomain: Array("plus.example".utf8))

    func records(_ line: String) throws -> [(String, String)] {
        var builder = AliasEntryBuilder(qualifier: q)
        return try builder.records(forLine: Array(line.utf8)).map { ($0.key.string, $0.data.string) }
    }

    func testRightToLeftOrderAndBareTarget() throws {
        let r = try records("Root: alice, Bob <bob@x.y>\n")
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r[0].0, ":root@")
        XCTAssertEqual(r[0].1, "&bob@x.y\0&alice@example.com\0")
    }

    func testOwnerIncludeProgram() throws {
        let r = try records("owner-List: x, :include: lists/l, \"|prog a\"\n")
        XCTAssertEqual(r.map(\.0), ["?list@", ":owner-list@"])
        XCTAssertEqual(r[0].1, "owner-List@example.com")
        XCTAssertEqual(r[1].1, "!prog a\0./lists/l.bin\0&x@example.com\0")
    }

    func testQualification() throws {
        XCTAssertEqual(try records("a: b@host+\n")[0].1, "&b@host.plus.example\0")
        XCTAssertEqual(try records("a: b@host\n")[0].1, "&b@host.example.com\0")
        XCTAssertEqual(try records("a: b+\n")[0].1, "&b+@example.com\0")
    }

    func testRefusals() {
        let cases: [(String, MailFailure.Kind)] = [
            ("a:\n", .temporary), ("a: <>\n", .temporary), ("a: /file\n", .temporary), (": b\n", .temporary),
            ("a: " + String(repeating: "x", count: 801) + "@b.c\n", .permanent), ("a: b>\n", .temporary)]
        for (line, kind) in cases {
            XCTAssertThrowsError(try records(line), line) { e in
                XCTAssertEqual((e as? ForwardFatal)?.kind, kind, line)
            }
        }
        // ('#' comments are the line splitter's business, not the parser's.)
        XCTAssertEqual(try records("(just a comment)\n").count, 0)
    }

    func testLinesContinuationsAndMissingFinalNewline() throws {
        let text = "a: b\n\tc\n\n  d\n# x\n  y\ne: f\ng: h"
        var got: [(String, Int)] = []
        Array(text.utf8).withUnsafeBufferPointer { t in
            var lines = AliasLines(text: t)
            while let l = lines.next() { got.append((Array(l.line).string, l.number)) }
        }
        // The empty line inside the continuation stays as a bare newline: the tokenizer skips it.
        XCTAssertEqual(got.map(\.0), ["a: b\n\tc\n\n  d\n", "e: f\n"])
        XCTAssertEqual(got.map(\.1), [1, 7])
    }
}

final class TableTests: XCTestCase {
    func testSetForwardRecords() throws {
        var got: [(String, String)] = []
        try SetForward.records(Array("# c\nBoss@YP.to: god@heaven, ?owner@x, |prog, ./l.bin, &a\\,b@c;\n".utf8)) {
            got.append(($0.string, $1.string))
        }
        XCTAssertEqual(got.map(\.0), ["?boss@yp.to", ":boss@yp.to"])
        XCTAssertEqual(got[0].1, "owner@x")
        XCTAssertEqual(got[1].1, "&god@heaven\0|prog\0./l.bin\0&a,b@c\0")
    }

    func testSetForwardRefusals() {
        for s in ["a: b", "a: b: c;", "a, b: c;", "a: b\0;"] {
            XCTAssertThrowsError(try SetForward.records(Array(s.utf8)) { _, _ in }, s) { e in
                XCTAssertEqual((e as? ForwardFatal)?.kind, .permanent)
            }
        }
    }

    func testPrintForwardRoundTrip() throws {
        var cdbBytes: [UInt8] = []
        let path = "/tmp/qmailforward-unit-\(getpid()).cdb"
        defer { unlink(path) }
        try CdbWriter.create(path: path) { add in
            try SetForward.records(Array("a\\ b@: x@y, |p\\ q;\na\\ b@: ?o@w;\n".utf8), add)
        }
        cdbBytes = try XCTUnwrap(FileIO.read(path))
        let text = try cdbBytes.withUnsafeBytes { try PrintForward.render($0) }
        XCTAssertEqual(text.string, "a\\ b@:\n, &x@y\n, |p\\ q\n;\na\\ b@: ?o@w;\n")
    }

    func testMailingListRoundTrip() throws {
        let bin = try MailingList.set(Array("# c\n\nx@y.z  \n./l\n&w@v\n".utf8))
        XCTAssertEqual(bin.string, "&x@y.z\0./l\0&w@v\0")
        XCTAssertEqual(try MailingList.print(bin).string, "&x@y.z\n./l\n&w@v\n")
        XCTAssertThrowsError(try MailingList.set([0x61, 0, 0x62]))
        XCTAssertThrowsError(try MailingList.print(Array("zz\0".utf8)))
        XCTAssertThrowsError(try MailingList.print(Array("&x".utf8)))
    }
}

final class MigrationTests: XCTestCase {
    func testInstallCompilesAliasesAndIsIdempotent() throws {
        let dir = "/tmp/qmailforward-mig-\(getpid())"
        defer { ChildProcess.run(.init(["rm", "-rf", dir])) }
        for d in [dir, dir + "/alias", dir + "/control"] { try Sys.mkdir(d, 0o755) }
        try FileIO.writeAtomic(dir + "/control/me", Array("example.com\n".utf8))
        try FileIO.writeAtomic(dir + "/control/defaultdelivery", Array("./Maildir/\n".utf8))
        try FileIO.writeAtomic(dir + "/aliases", Array("root: alice\n".utf8))
        let home = QmailHome(path: dir)
        let first = try SendmailMigration.install(home: home, aliases: dir + "/aliases")
        XCTAssertEqual(first.count, 3, "\(first)")
        XCTAssertEqual(try FileIO.read(dir + "/control/defaultdelivery")?.string, "|dot-forward .forward\n./Maildir/\n")
        let dq = try XCTUnwrap(FileIO.read(dir + "/alias/.qmail-default")).string
        XCTAssertTrue(dq.hasSuffix("\n|fastforward -d \(dir)/aliases.cdb\n"), dq)
        let cdb = try XCTUnwrap(CdbReader.open(dir + "/aliases.cdb"))
        XCTAssertEqual(try cdb.find(Array(":root@".utf8))?.string, "&alice@example.com\0")
        let again = try SendmailMigration.install(home: home, aliases: dir + "/aliases")
        XCTAssertTrue(again.allSatisfy { $0.hasPrefix("kept") || $0.contains("already") }, "\(again)")
        XCTAssertEqual(try FileIO.read(dir + "/control/defaultdelivery")?.string, "|dot-forward .forward\n./Maildir/\n")
    }

    func testNoAliasesFileWritesNoQmailDefault() throws {
        let dir = "/tmp/qmailforward-mig2-\(getpid())"
        defer { ChildProcess.run(.init(["rm", "-rf", dir])) }
        for d in [dir, dir + "/alias", dir + "/control"] { try Sys.mkdir(d, 0o755) }
        _ = try SendmailMigration.install(home: QmailHome(path: dir), aliases: dir + "/none")
        XCTAssertFalse(Sys.exists(dir + "/alias/.qmail-default"))
        XCTAssertEqual(try FileIO.read(dir + "/control/defaultdelivery")?.string, "|dot-forward .forward\n./Maildir/\n")
    }
}

final class CdbToolTests: XCTestCase {
    /// The arena lookup fastforward uses finds what the array lookup finds,
    /// across records larger than the writer's 64 KiB buffer.
    func testArenaLookupAgreesWithArrayLookup() throws {
        var rng = SystemRandomNumberGenerator()
        var records: [([UInt8], [UInt8])] = []
        for i in 0..<3000 {
            let klen = Int.random(in: 0...12, using: &rng)
            var key = (0..<klen).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 7 == 0 { key = Array("dup".utf8) } // repeated keys: the first one wins
            records.append((key, (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8(i & 255) }))
        }
        // Records larger than the builder's 64 KiB buffer, and one that starts it off full.
        records.insert((Array("big".utf8), (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }), at: 1000)
        records.insert((Array(repeating: 7, count: 70_000), Array("k".utf8)), at: 2000)
        let a = "/tmp/qf-cdb-a-\(getpid())"
        defer { unlink(a) }
        try CdbWriter.create(path: a) { add in for r in records { try add(r.0, r.1) } }
        let core = try XCTUnwrap(CdbReader.open(a))
        let file = try XCTUnwrap(openCdbFile(a))
        var out = try ByteArena(capacity: 64)
        defer { out.free() }
        func find(_ key: [UInt8]) throws -> [UInt8]? {
            try key.withUnsafeBufferPointer { k in try file.find(k, into: &out).map { out.array($0) } }
        }
        for r in records.prefix(500) + records[998...1002] + records[1999...2001] {
            XCTAssertEqual(try find(r.0), try core.find(r.0))
        }
        XCTAssertEqual(try find(Array("big".utf8))?.count, 200_000)
        XCTAssertNil(try find(Array("not there at all".utf8)))
    }

    private func openCdbFile(_ path: String) -> CdbReader? {
        var e: Int32 = 0
        return CdbReader(path: path, errno: &e)
    }

    func testPreadReaderRefusesCorruptLengths() throws {
        let p = "/tmp/qf-cdb-c-\(getpid())"
        defer { unlink(p) }
        try CdbWriter.create(path: p, tmpPath: p + ".tmp", mode: 0o644) { add in try add(Array("k".utf8), Array("v".utf8)) }
        var bytes = try XCTUnwrap(FileIO.read(p))
        bytes[2048 + 4] = 0xff; bytes[2048 + 7] = 0x7f // data length of the record: 2 GiB
        try FileIO.writeAtomic(p, bytes)
        let file = try XCTUnwrap(openCdbFile(p))
        var out = try ByteArena(capacity: 64)
        defer { out.free() }
        XCTAssertThrowsError(try Array("k".utf8).withUnsafeBufferPointer { try file.find($0, into: &out) })
        var e: Int32 = 0
        XCTAssertNil(CdbReader(path: p + ".missing", errno: &e))
        XCTAssertEqual(e, ENOENT)
    }

    func testSpanSetAndArena() throws {
        var arena = try ByteArena(capacity: 8) // small: growth moves the bytes, spans must survive it
        var set = SpanSet()
        defer { arena.free(); set.free() }
        var spans: [Span] = []
        for i in 0..<1000 {
            let b = Array("x\(i)".utf8)
            spans.append(try b.withUnsafeBufferPointer { try arena.append($0.baseAddress!, $0.count) })
        }
        for s in spans { XCTAssertTrue(set.insert(s, in: arena)) }
        for i in 0..<1000 {
            let b = Array("x\(i)".utf8)
            let again = try b.withUnsafeBufferPointer { try arena.append($0.baseAddress!, $0.count) }
            XCTAssertFalse(set.insert(again, in: arena))
            XCTAssertEqual(arena.array(spans[i]), b)
        }
        let empty = try arena.append(Span(start: 0, count: 0))
        XCTAssertTrue(set.insert(empty, in: arena))
        XCTAssertFalse(set.insert(Span(start: 3, count: 0), in: arena))
        let y = try arena.append("x1@y")
        XCTAssertEqual(arena.lastIndex(of: UInt8(ascii: "@"), in: y), y.start + 2)
        XCTAssertNil(arena.lastIndex(of: UInt8(ascii: "#"), in: y))
        var list = SpanList(capacity: 1)
        defer { list.free() }
        for s in spans { list.append(s) }
        XCTAssertEqual(list.count, 1000)
        XCTAssertEqual(list.popLast(), spans[999])
        XCTAssertEqual(list[0], spans[0])
    }
}
