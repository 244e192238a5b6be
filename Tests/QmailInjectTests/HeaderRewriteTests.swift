import XCTest
import QmailCore
@testable import QmailInject

/// Feeds lines from an array, like ByteReader.line does from a file.
final class ArrayLines: LineSource {
    var data: [UInt8]
    var pos = 0
    init(_ s: String) { data = Array(s.utf8) }
    init(bytes: [UInt8]) { data = bytes }
    func line(delimiter: UInt8, limit: Int) throws -> (bytes: [UInt8], overflow: Bool)? {
        if pos >= data.count { return nil }
        var end = pos
        while end < data.count && end - pos < limit && data[end] != delimiter { end += 1 }
        if end < data.count && end - pos < limit && data[end] == delimiter {
            defer { pos = end + 1 }
            return (Array(data[pos...end]), false)
        }
        defer { pos = end }
        return (Array(data[pos..<end]), end - pos >= limit)
    }
    var rest: [UInt8] { Array(data[pos...]) }
}

let domains = InjectDomains(defaultHost: Array("silverton".utf8), defaultDomain: Array("berkeley.edu".utf8),
                            plusDomain: Array("cs.berkeley.edu".utf8), idHost: Array("id.berkeley.edu".utf8))

func settings(_ f: (inout InjectSettings) -> Void = { _ in }) -> InjectSettings {
    var s = InjectSettings(mailUser: Array("djb".utf8))
    f(&s)
    return s
}

struct Result {
    var header: String
    var end: HeaderEnd
    var sender: String
    var recipients: [String]
}

func inject(_ input: String, args: [String] = [], settings s: InjectSettings = settings(),
            limit: Int = Injector.defaultHeaderLimit) throws -> Result {
    var o = try InjectOptions.parse(args)
    o.queue = true
    let inj = try Injector(settings: s, domains: domains, options: o, startTime: 0, pid: 42, headerLimit: limit)
    let src = ArrayLines(input)
    let end = try inj.readHeader(src)
    let h = try inj.finishHeader()
    return Result(header: h.string, end: end, sender: (inj.sender ?? []).string, recipients: inj.recipients.map { $0.string })
}

let fixed = "Date: 1 Jan 1970 00:00:00 -0000\nMessage-ID: <19700101000000.42.qmail@id.berkeley.edu>\n"

final class HeaderRewriteTests: XCTestCase {
    /// input field -> rewritten field (fields that are kept).
    let cases: [(String, String)] = [
        ("To: fred\n", "To: fred@silverton.berkeley.edu\n"),
        ("To: fred@mammoth\n", "To: fred@mammoth.berkeley.edu\n"),
        ("To: eric@mammoth.cs+\n", "To: eric@mammoth.cs.cs.berkeley.edu\n"),
        ("To: eric@mammoth+\n", "To: eric@mammoth.cs.berkeley.edu\n"),
        ("To: a@b.c\n", "To: a@b.c\n"),
        ("To: a@[1.2.3.4]\n", "To: a@[1.2.3.4]\n"),
        ("To: a@b (Somebody)\n", "To: a@b.berkeley.edu (Somebody)\n"),
        ("To: A Person <e@f>\n", "To: A Person <e@f.berkeley.edu>\n"),
        ("To: \"Quoted, Name\" <x@y.z>\n", "To: \"Quoted, Name\" <x@y.z>\n"),
        ("To: \"john smith\"@example.com\n", "To: \"john smith\"@example.com\n"),
        ("To: <@route.one,@route.two:user@host.dom>\n", "To: <user@host.dom>\n"),
        ("To: random group: g@h, i@j;, k@l\n",
         "To: random group: g@h.berkeley.edu, i@j.berkeley.edu;, k@l.berkeley.edu\n"),
        ("To: djb fred\n", "To: djb@silverton.berkeley.edu, fred@silverton.berkeley.edu\n"),
        ("To: a@b.c.\n", "To: a@b.c\n"),
        ("To: a@\n", "To: a@silverton.berkeley.edu\n"),
        ("To: <>\n", "To: <>\n"),
        ("To: a@[]\n", "To: a@[]\n"),
        ("Cc: x@y.z,\n  w@v.u\n", "Cc: x@y.z, w@v.u\n"),
        ("Cc:\tx@y.z ,w@v.u\r\n", "Cc: x@y.z, w@v.u\n"),
        // qmail moves a comment that precedes an address behind it.
        ("To: (comment (nested)) a@b.c\n", "To: a@b.c (comment nested)\n"),
        ("Reply-To: joe\n", "Reply-To: joe@silverton.berkeley.edu\n"),
        ("Sender: joe@host\n", "Sender: joe@host.berkeley.edu\n"),
        ("Subject: fred, djb\n", "Subject: fred, djb\n"),
        ("X-Other: a@b\n", "X-Other: a@b\n"),
    ]

    func testTable() throws {
        for (input, expected) in cases {
            let r = try inject("From: me@a.b\n" + input + "\nbody\n", args: ["-H", "x@y.z"])
            XCTAssertTrue(r.header.hasSuffix(expected), "\(input) -> \(r.header)")
        }
    }

    func testFolding() throws {
        let many = (1...12).map { "user\($0)@example.com" }.joined(separator: ", ")
        let r = try inject("From: me@a.b\nTo: \(many)\n\n")
        let to = r.header.components(after: "To: ")
        for line in to.split(separator: "\n") { XCTAssertLessThanOrEqual(line.count, 80, line.description) }
        XCTAssertTrue(to.contains(",\n  user"), to)
        XCTAssertEqual(r.recipients.count, 12)
        XCTAssertEqual(Set(r.recipients), Set((1...12).map { "user\($0)@example.com" }))
    }

    func testDefaultsAdded() throws {
        let r = try inject("To: fred\n\nhi\n")
        XCTAssertEqual(r.header, fixed + "From: djb@silverton.berkeley.edu\nTo: fred@silverton.berkeley.edu\n")
        XCTAssertEqual(r.end, .body([10]))
        XCTAssertEqual(r.sender, "djb@silverton.berkeley.edu")
        XCTAssertEqual(r.recipients, ["fred@silverton.berkeley.edu"])
    }

    func testFullNameStyles() throws {
        var r = try inject("To: x@y.z\n\n", settings: settings { $0.fullName = Array("D. J. Bernstein".utf8); $0.mailHost = Array("pobox.com".utf8) })
        XCTAssertTrue(r.header.contains("From: \"D. J. Bernstein\" <djb@pobox.com>\n"), r.header)
        r = try inject("To: x@y.z\n\n", settings: settings { $0.fullName = Array("Dan".utf8); $0.nameComment = true })
        XCTAssertTrue(r.header.contains("From: djb@silverton.berkeley.edu (Dan)\n"), r.header)
    }

    func testBccAndFriendsRemoved() throws {
        let r = try inject("To: a@b.c\nBcc: hidden@d.e\nReturn-Path: <rp@x.y>\nContent-Length: 99\n\n")
        XCTAssertFalse(r.header.contains("Bcc"))
        XCTAssertFalse(r.header.contains("Return-Path"))
        XCTAssertFalse(r.header.contains("Content-Length"))
        XCTAssertEqual(r.recipients, ["a@b.c", "hidden@d.e"])
        XCTAssertEqual(r.sender, "rp@x.y")  // Return-Path sets the envelope sender
    }

    func testNoToOrCc() throws {
        let r = try inject("Bcc: hidden@d.e\n\n")
        XCTAssertTrue(r.header.contains("Cc: recipient list not shown: ;\n"))
        XCTAssertEqual(r.recipients, ["hidden@d.e"])
    }

    func testResent() throws {
        let r = try inject("From: a@b.c\nTo: old@b.c\nResent-To: new@b.c\nResent-Bcc: secret@b.c\n\n")
        XCTAssertTrue(r.header.hasPrefix("Resent-Date: 1 Jan 1970 00:00:00 -0000\nResent-Message-ID: <19700101000000.42.qmail@id.berkeley.edu>\nResent-From: djb@silverton.berkeley.edu\n"), r.header)
        XCTAssertFalse(r.header.contains("\nDate:"))
        XCTAssertFalse(r.header.contains("Resent-Bcc"))
        XCTAssertEqual(r.recipients, ["new@b.c", "secret@b.c"])
    }

    func testRecipientStrategies() throws {
        let input = "To: hdr@b.c\n\n"
        XCTAssertEqual(try inject(input).recipients, ["hdr@b.c"])
        XCTAssertEqual(try inject(input, args: ["arg@b.c"]).recipients, ["arg@b.c"])
        XCTAssertEqual(try inject(input, args: ["-a", "arg@b.c"]).recipients, ["arg@b.c"])
        XCTAssertEqual(try inject(input, args: ["-h", "arg@b.c"]).recipients, ["hdr@b.c"])
        XCTAssertEqual(try inject(input, args: ["-H", "arg"]).recipients, ["arg@silverton.berkeley.edu", "hdr@b.c"])
        XCTAssertThrowsError(try inject(input, args: ["-a"]))  // no recipients
    }

    func testSenderOptionAndVERP() throws {
        XCTAssertEqual(try inject("To: a@b.c\n\n", args: ["-fbounce@host"]).sender, "bounce@host.berkeley.edu")
        XCTAssertEqual(try inject("To: a@b.c\nReturn-Path: <x@y.z>\n\n", args: ["-f", "s@t.u"]).sender, "s@t.u")
        XCTAssertEqual(try inject("To: a@b.c\n\n", args: ["-f", ""]).sender, "")
        var s = settings { $0.verpRecipient = true }
        XCTAssertEqual(try inject("To: a@b.c\n\n", settings: s).sender, "djb-@silverton.berkeley.edu-@[]")
        s = settings { $0.verpMessage = true; $0.returnUser = Array("list".utf8); $0.returnHost = Array("l.org".utf8) }
        XCTAssertEqual(try inject("To: a@b.c\n\n", settings: s).sender, "list-0.42@l.org")
        s = settings { $0.deleteReturnPath = true }
        XCTAssertEqual(try inject("To: a@b.c\nReturn-Path: <x@y.z>\n\n", settings: s).sender, "djb@silverton.berkeley.edu")
    }

    func testDeleteFromAndMessageID() throws {
        let s = settings { $0.deleteFrom = true; $0.deleteMessageID = true }
        let r = try inject("From: forged@evil.com\nMessage-ID: <x@y>\nTo: a@b.c\n\n", settings: s)
        XCTAssertFalse(r.header.contains("forged"))
        XCTAssertFalse(r.header.contains("<x@y>"))
        XCTAssertTrue(r.header.contains("From: djb@silverton.berkeley.edu\n"))
    }

    func testMailFollowupTo() throws {
        let s = settings { $0.mailingLists = [Array("list@lists.org".utf8)] }
        let r = try inject("From: a@b.c\nTo: List@Lists.org\nCc: x@y.z\n\n", settings: s)
        XCTAssertTrue(r.header.contains("Mail-Followup-To: x@y.z,\n  List@Lists.org\n"), r.header)
        let r2 = try inject("From: a@b.c\nTo: other@lists.org\n\n", settings: s)
        XCTAssertFalse(r2.header.contains("Mail-Followup-To"))
    }

    func testHeaderBodyBoundary() throws {
        // A line that is not a field starts the body after an inserted blank line.
        var r = try inject("To: a@b.c\nthis is body\n")
        XCTAssertEqual(r.end, .body(Array("\nthis is body\n".utf8)))
        // End of input inside the header: no body at all.
        r = try inject("To: a@b.c")
        XCTAssertEqual(r.end, .endOfInput)
        XCTAssertTrue(r.header.hasSuffix("To: a@b.c\n"))
        // CRLF blank line ends the header.
        r = try inject("To: a@b.c\r\nSubject: x\r\n\r\nbody\r\n")
        XCTAssertEqual(r.end, .body([10]))
        XCTAssertTrue(r.header.hasSuffix("Subject: x\n"))
        // mbox From_ line is kept as a field.
        r = try inject("From djb Thu Jan  1 00:00:00 1970\nTo: a@b.c\n\n")
        XCTAssertTrue(r.header.contains("MBOX-Line: From djb Thu Jan  1 00:00:00 1970\n"))
    }

    func testUnparsableFields() throws {
        // A recipient field that does not parse is kept as it was.
        let r = try inject("To: \"unterminated\n\n", args: ["x@y.z"])
        XCTAssertTrue(r.header.contains("To: \"unterminated\n"))
        // A sender field that does not parse is fatal.
        XCTAssertThrowsError(try inject("From: (unterminated\nTo: a@b.c\n\n")) { e in
            XCTAssertEqual((e as? InjectFailure)?.exitCode, 100)
        }
    }

    func testLimitsAndNul() throws {
        let big = String(repeating: "x", count: 5000)
        // Within the limit: a long field is fine.
        XCTAssertNoThrow(try inject("To: a@b.c\nSubject: \(big)\n\n", limit: 10000))
        // Beyond it: permanent failure.
        XCTAssertThrowsError(try inject("To: a@b.c\nSubject: \(big)\(big)\n\n", limit: 10000)) { e in
            XCTAssertEqual((e as? InjectFailure)?.exitCode, 100)
        }
        XCTAssertThrowsError(try inject("To: a@b.c\nSubject: x\n \(big)\n \(big)\n\n", limit: 10000))
        // A long line that cannot be a field is body.
        let r = try inject("To: a@b.c\nbody text \(big)\(big)\n", limit: 10000)
        if case .body(let b) = r.end { XCTAssertEqual(b.first, 10) } else { XCTFail("no body") }
        // NUL in a recipient address is refused; in a subject it passes.
        XCTAssertThrowsError(try inject("To: \"a\u{0}b\"@c.d\n\n")) { e in
            XCTAssertEqual((e as? InjectFailure)?.exitCode, 100)
        }
        XCTAssertNoThrow(try inject("To: a@b.c\nSubject: a\u{0}b\n\n"))
        // Found by Fuzz/inject.swift: a backslash before the field's LF put
        // the LF into an envelope address; it is refused like a NUL.
        XCTAssertThrowsError(try inject("To: \"x\"\\\n\n")) { e in
            XCTAssertEqual((e as? InjectFailure)?.exitCode, 100)
        }
    }

    func testNoRecipients() throws {
        XCTAssertThrowsError(try inject("Subject: x\n\n")) { e in
            XCTAssertEqual(e as? InjectFailure, .noRecipients)
        }
    }

    func testOptions() throws {
        XCTAssertThrowsError(try InjectOptions.parse(["-x"]))
        XCTAssertThrowsError(try InjectOptions.parse(["-f"]))
        let o = try InjectOptions.parse(["-nH", "-fa@b", "--", "-r"])
        XCTAssertEqual(o.queue, false)
        XCTAssertEqual(o.strategy, .argsAndHeader)
        XCTAssertEqual(o.sender, "a@b")
        XCTAssertEqual(o.recipients, ["-r"])
    }
}

final class TokenTests: XCTestCase {
    func testParseErrors() {
        XCTAssertNil(Token822Parser.parse(Array("To: )a".utf8)))
        XCTAssertEqual(Token822Parser.parse(Array("To: a)".utf8))?.last?.kind, .quote)
        XCTAssertNil(Token822Parser.parse(Array("To: [1.2".utf8)))
        XCTAssertNotNil(Token822Parser.parse(Array("To: a\\\"b".utf8)))
    }

    func testQuotingOnOutput() {
        let t = Token822Parser.parse(Array("To: \"a\\\"b\" <x@y>".utf8))!
        XCTAssertEqual(Token822Parser.unparse(t).string, "To: \"a\\\"b\" <x@y>\n")
    }
}

final class SendmailTests: XCTestCase {
    func testMapping() {
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-t", "-i"]), .inject(args: ["-H", "--"], environment: []))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-oi", "a@b"]), .inject(args: ["-a", "--", "a@b"], environment: []))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-f", "s@x", "-F", "Joe", "a@b"]),
                       .inject(args: ["-a", "-f", "s@x", "--", "a@b"], environment: [("MAILNAME", "Joe")] + fromSender("s", "x")))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-fsam", "a@b"]),
                       .inject(args: ["-a", "-f", "sam", "--", "a@b"], environment: fromSender("sam", nil)))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-F", "Joe", "a@b"]),
                       .inject(args: ["-a", "--", "a@b"], environment: [("MAILNAME", "Joe")]))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-rs@x", "-oem", "-B", "8BITMIME", "-h", "3", "-N", "never",
                                                              "-O", "x=y", "-U", "-L", "tag", "-v", "-m", "a@b"]),
                       .inject(args: ["-a", "-f", "s@x", "--", "a@b"], environment: fromSender("s", "x")))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-bp"]), .mailq)
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-bs"]), .smtpd)
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-bm", "a@b"]), .inject(args: ["-a", "--", "a@b"], environment: []))
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-bi"]), .usage)
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-Q"]), .usage)
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["-f"]), .usage)
        XCTAssertEqual(Sendmail.plan(programName: "mailq", []), .mailq)
        XCTAssertEqual(Sendmail.plan(programName: "newaliases", []), .newaliases)
        XCTAssertEqual(Sendmail.plan(programName: "sendmail", ["a@b", "-t"]), .inject(args: ["-a", "--", "a@b", "-t"], environment: []))
    }

    /// netqmail's do_sender(): no full name, no host from the environment,
    /// then the -f address's user and host.
    func fromSender(_ user: String, _ host: String?) -> [(String, String?)] {
        let unset: [(String, String?)] = ["QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"].map { ($0, nil) }
        return unset + (host.map { [("QMAILHOST", $0)] } ?? []) + [("QMAILUSER", user)]
    }
}

extension String {
    /// The header field starting at `marker`, with its continuation lines.
    func components(after marker: String) -> String {
        let b = Array(utf8), m = Array(marker.utf8)
        guard b.count >= m.count, let start = (0...(b.count - m.count)).first(where: { Array(b[$0..<($0 + m.count)]) == m }) else { return "" }
        var end = start
        while end < b.count {
            if b[end] == 10 && (end + 1 >= b.count || (b[end + 1] != 32 && b[end + 1] != 9)) { end += 1; break }
            end += 1
        }
        return String(decoding: b[start..<end], as: UTF8.self)
    }
}

/// qmail's folding done the direct way (tentative "\n " after each comma,
/// removed again when the line still fits), to check the linear version.
func referenceFold(_ flat: [UInt8], lineLength: Int) -> [UInt8] {
    var out: [UInt8] = []
    var lineStart = 0
    var pending: Int? = nil
    func nsuw() {
        if let p = pending, out.count - lineStart <= lineLength {
            out.removeSubrange(p..<(p + 2))
        } else if let p = pending {
            lineStart = p + 1
        }
        pending = out.count
        out += [10, 32]
    }
    for c in flat {
        out.append(c)
        if c == 44 { nsuw() }
    }
    nsuw()
    out.removeLast()
    return out
}

final class FoldingTests: XCTestCase {
    func testMatchesReference() {
        var seed: UInt64 = 12345
        func next(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        for round in 0..<300 {
            let count = 1 + next(15)
            var addrs: [String] = []
            for _ in 0..<count {
                addrs.append(String(repeating: "a", count: 1 + next(30)) + "@" + String(repeating: "b", count: 1 + next(40)) + ".org")
            }
            let field = "To: " + addrs.joined(separator: ", ") + "\n"
            let tokens = Token822Parser.parse(Array(field.utf8))!
            // The unbroken text qmail writes: ", " between addresses.
            let flat = Array(("To: " + addrs.joined(separator: ", ")).utf8)
            let expected = referenceFold(flat, lineLength: 80)
            XCTAssertEqual(Token822Parser.unparse(tokens).string, expected.string, "round \(round)")
        }
    }
}

final class SettingsTests: XCTestCase {
    func testEnvironmentOrder() throws {
        let env: [String: String] = ["MAILUSER": "mu", "USER": "u", "LOGNAME": "l", "MAILHOST": "mh.example",
                                     "MAILNAME": "Mail Name", "NAME": "Name", "QMAILINJECT": "csfirmx"]
        let s = try InjectSettings.from { env[$0] }
        XCTAssertEqual(s.mailUser.string, "mu")
        XCTAssertEqual(s.returnUser.string, "mu")
        XCTAssertEqual(s.mailHost?.string, "mh.example")
        XCTAssertEqual(s.returnHost?.string, "mh.example")
        XCTAssertEqual(s.fullName?.string, "Mail Name")
        XCTAssertTrue(s.nameComment && s.deleteReturnPath && s.deleteFrom && s.deleteMessageID && s.verpRecipient && s.verpMessage)
        let t = try InjectSettings.from { ["QMAILUSER": "q", "USER": "u", "QMAILSUSER": "s", "QMAILSHOST": "sh"][$0] }
        XCTAssertEqual(t.mailUser.string, "q")
        XCTAssertEqual(t.returnUser.string, "s")
        XCTAssertNil(t.mailHost)
        XCTAssertEqual(t.returnHost?.string, "sh")
        XCTAssertEqual(try InjectSettings.from { _ in nil }.mailUser.string, "anonymous")
        XCTAssertThrowsError(try InjectSettings.from { $0 == "QMAILMFTFILE" ? "/" : nil })  // a directory: read error
        XCTAssertNil(try InjectSettings.from { $0 == "QMAILMFTFILE" ? "/nonexistent/file" : nil }.mailingLists)
    }

    func testQuotedUserInFrom() throws {
        let r = try inject("To: a@b.c\n\n", settings: settings { $0.mailUser = Array("john smith".utf8) })
        XCTAssertTrue(r.header.contains("From: \"john smith\"@silverton.berkeley.edu\n"), r.header)
    }

    func testPredateLine() {
        let line = Predate.dateLine(0).string
        XCTAssertTrue(line.hasPrefix("Date: "))
        XCTAssertTrue(line.hasSuffix("\n"))
        let parts = line.dropFirst(6).dropLast().split(separator: " ")
        XCTAssertEqual(parts.count, 5, line)
        XCTAssertTrue(parts[4].first == "+" || parts[4].first == "-")
        XCTAssertEqual(parts[4].count, 5)
    }
}
