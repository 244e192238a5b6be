// modules: QmailCore QmailPOP3
// Fuzz target: qmail-pop3d's TRANSACTION state: CommandReader (buffered
// mode) and Pop3dSession (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, LAST,
// QUIT) over a small Maildir made once in /tmp and restored after a QUIT.
// The input is what the client sends.
//
// Checked: every response starts with "+OK" or "-ERR" and every LF sent is
// part of a CRLF; multi-line responses end with CRLF.CRLF and every line in
// them that starts with '.' is dot-stuffed; RETR n gives back exactly the
// file (line ends as CRLF); STAT agrees with the deletions made.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var maildir = ""
nonisolated(unsafe) var devNull: Int32 = -1
nonisolated(unsafe) var startDir: Int32 = -1  // libFuzzer's corpus paths are relative to it

let fixture: [(String, [UInt8])] = [
    ("new/1700000001.1.pop.example.com", Array("From: a@example.org\nSubject: hi\n\nbody\n.leading dot\n..two dots\n.\nend\n".utf8)),
    ("cur/1700000002.2.pop.example.com:2,S", Array("no newline at end".utf8)),
    ("cur/1700000003.3.pop.example.com:2,", []),
    ("new/1700000004.4.pop.example.com", Array("Header: crlf\r\n\r\nbody\r\n.\r\nlone\rcr\r".utf8)),
    ("cur/1700000005.5.pop.example.com:2,", Array(repeating: Array("a line of some length, repeated\n".utf8), count: 40).flatMap { $0 }),
]

/// Makes (or remakes after a QUIT) the Maildir and enters it.
func setUpMaildir() {
    if maildir.isEmpty {
        var t = Array("/tmp/fuzz-pop3d-XXXXXX".utf8CString)
        guard mkdtemp(&t) != nil else { fatalError("mkdtemp") }
        maildir = String(cString: t)
        for d in ["tmp", "new", "cur"] { mkdir(maildir + "/" + d, 0o700) }
        devNull = open("/dev/null", O_WRONLY)
    }
    for sub in ["new", "cur"] {
        if let names = try? Sys.listDirectory(maildir + "/" + sub) {
            for n in names { unlink(maildir + "/" + sub + "/" + n) }
        }
    }
    for (i, (name, content)) in fixture.enumerated() {
        let fd = open(maildir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var times = [timespec(tv_sec: 1_700_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_700_000_000 + i, tv_nsec: 0)]
        futimens(fd, &times)
        close(fd)
    }
    chdir(maildir)
}


func lines(_ b: [UInt8]) -> [ArraySlice<UInt8>] {
    var out: [ArraySlice<UInt8>] = []
    var s = 0
    var i = 0
    while i + 1 < b.count {
        if b[i] == 13 && b[i + 1] == 10 { out.append(b[s..<i]); s = i + 2; i += 2 } else { i += 1 }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPop3d(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if startDir < 0 { startDir = open(".", O_RDONLY | O_DIRECTORY) }
    defer { fchdir(startDir) }
    if maildir.isEmpty { setUpMaildir() } else { chdir(maildir) }
    guard let messages = try? MaildirBox.scan() else { fatalError("scan") }
    check(messages.count == fixture.count, "scan found \(messages.count) messages")
    let out = ReplyWriter(fd: devNull, timeout: 0)
    let session = Pop3dSession(messages: messages, out: out)
    let reader = CommandReader(fd: scratchHolding(bytes), exact: false, timeout: 0)
    var quit = false
    loop: while true {
        let line: [UInt8]
        switch reader.next() {
        case .eof: break loop
        case .tooLong: continue
        case .line(let l): line = l
        }
        let cmd = POP3Command(line)
        let more = session.handle(line)
        let r = out.buffer
        out.buffer.removeAll(keepingCapacity: true)
        check(r.starts(with: Array("+OK".utf8)) || r.starts(with: Array("-ERR ".utf8)), "response not +OK/-ERR")
        for (k, c) in r.enumerated() where c == 10 { check(k > 0 && r[k - 1] == 13, "bare LF sent") }
        check(r.last == 10, "response not ended by CRLF")
        let ls = lines(r)
        let multi = r.starts(with: Array("+OK".utf8)) && !line.contains(0)
            && (cmd.isVerb("capa") || ((cmd.isVerb("list") || cmd.isVerb("uidl")) && cmd.arg.isEmpty)
                || cmd.isVerb("retr") || cmd.isVerb("top"))
        if multi {
            check(ls.last?.elementsEqual([46]) ?? false, "multi-line response not ended by .")
            for l in ls.dropFirst().dropLast() where l.first == 46 { check(l.count >= 2 && l[l.startIndex + 1] == 46, "line not dot-stuffed") }
        } else {
            check(ls.count == 1, "single-line response with \(ls.count) lines")
        }
        if multi && cmd.isVerb("retr"), let n = Decimal.parse(cmd.arg), n >= 1, n <= fixture.count {
            // Undo the transfer encoding and compare with the file.
            var got: [UInt8] = []
            for l in ls.dropFirst().dropLast() { got += (l.first == 46 ? l.dropFirst() : l); got.append(10) }
            let name = session.messages[n - 1].path.string
            var want = fixture.first { $0.0 == name }!.1
            if !want.isEmpty && want.last != 10 { want.append(10) }
            var norm: [UInt8] = []
            for (k, c) in want.enumerated() where !(c == 13 && k + 1 < want.count && want[k + 1] == 10) { norm.append(c) }
            check(got == norm, "RETR \(n) differs from the file")
        }
        if cmd.isVerb("stat") && r.starts(with: Array("+OK".utf8)) {
            let live = session.messages.filter { !$0.deleted }
            check(r == Array("+OK \(live.count) \(live.reduce(0) { $0 + $1.size })\r\n".utf8), "STAT disagrees")
        }
        if !more { quit = true; break }
    }
    if quit { setUpMaildir() }
    return 0
}
