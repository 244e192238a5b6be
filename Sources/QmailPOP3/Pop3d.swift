// qmail-pop3d's TRANSACTION state (qmail-pop3d(8), RFC 1939) over a Maildir
// (the current directory). Replies are qmail-pop3d's; sizes are file sizes
// as qmail reports them; deletions happen only at QUIT.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public final class Pop3dSession {
    public private(set) var messages: [MaildirMessage]
    public private(set) var last = 0
    let out: ReplyWriter

    public init(messages: [MaildirMessage], out: ReplyWriter) {
        self.messages = messages
        self.out = out
    }

    func send(_ reply: String) { out.put(reply) }

    /// Handles one command line; returns false when the session is over.
    public func handle(_ line: [UInt8]) -> Bool {
        if line.contains(0) { send(POP3Reply.syntaxError); return true }
        let c = POP3Command(line)
        switch c.verb.string {
        case "quit": return quit()
        case "stat": stat()
        case "list": listing(c.arg, uidl: false)
        case "uidl": listing(c.arg, uidl: true)
        case "dele":
            if let i = msgno(c.arg) {
                messages[i].deleted = true
                if i + 1 > last { last = i + 1 }
                send(POP3Reply.ok)
            }
        case "retr", "top": top(c.arg)
        case "rset":
            for i in messages.indices { messages[i].deleted = false }
            last = 0
            send(POP3Reply.ok)
        case "last": send(POP3Reply.ok("\(last)"))
        case "noop": send(POP3Reply.ok)
        case "capa":
            send(POP3Reply.pop3dCapabilities)
        default: send(POP3Reply.unimplemented)
        }
        return true
    }

    func quit() -> Bool {
        let r = MaildirBox.commit(messages)
        if r.failed > 0 { send(POP3Reply.unlinkFailed) } else { send(POP3Reply.ok) }
        return false
    }

    func stat() {
        var n = 0
        var total = 0
        for m in messages where !m.deleted { n += 1; total += m.size }
        send(POP3Reply.ok("\(n) \(total)"))
    }

    /// qmail's msgno: leading digits, counted from 1, not deleted.
    func msgno(_ arg: [UInt8]) -> Int? {
        var v = 0
        var digits = 0
        for c in arg {
            guard Ascii.isDigit(c) else { break }
            if v < Int.max / 100 { v = v * 10 + Int(c - 48) }
            digits += 1
        }
        if digits == 0 { send(POP3Reply.syntaxError); return nil }
        if v == 0 { send(POP3Reply.countedFromOne); return nil }
        if v > messages.count { send(POP3Reply.notThatMany); return nil }
        if messages[v - 1].deleted { send(POP3Reply.alreadyDeleted); return nil }
        return v - 1
    }

    func listing(_ arg: [UInt8], uidl: Bool) {
        func line(_ i: Int) {
            out.put(String(i + 1))
            out.put(" ")
            if uidl { out.buffer.append(contentsOf: messages[i].uniqueName) } else { out.put(String(messages[i].size)) }
            out.put("\r\n")
        }
        if !arg.isEmpty {
            guard let i = msgno(arg) else { return }
            out.put(POP3Reply.okPrefix)
            line(i)
            return
        }
        send(POP3Reply.ok)
        for i in messages.indices where !messages[i].deleted { line(i) }
        out.put(POP3Reply.end)
    }

    /// RETR n, or TOP n lines: the message with CRLF line ends and leading
    /// dots doubled, then ".".
    func top(_ arg: [UInt8]) {
        guard let i = msgno(arg) else { return }
        // As in qmail, RETR is TOP: a second number limits the body lines.
        let rest = arg.drop(while: Ascii.isDigit).drop(while: { $0 == Ascii.space })
        let limit = Decimal.scanPrefix(rest) ?? -1  // body lines; -1: all
        var fd = Glibc.open(messages[i].path.string, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT, let moved = MaildirBox.locate(messages[i]) {
            // Another session moved it from new/ to cur/ (or changed its flags).
            messages[i].path = moved
            fd = Glibc.open(moved.string, O_RDONLY | O_CLOEXEC)
        }
        if fd < 0 { send(POP3Reply.openFailed); return }
        defer { close(fd) }
        send(POP3Reply.ok)
        var blaster = Blaster(out: out, bodyLines: limit)
        let chunk = 65536
        var buf = [UInt8](repeating: 0, count: chunk)
        while !blaster.done {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, chunk) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buf.withUnsafeBufferPointer { blaster.feed(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            // Stream big messages; small ones go out with the +OK in one write.
            if out.buffer.count >= 1 << 18 && !out.flush() { return }
        }
        blaster.finish()
    }
}

/// LF -> CRLF, dot-stuffing, TOP's body-line limit, final ".".
struct Blaster {
    let out: ReplyWriter
    var bodyLines: Int
    var inHeaders = true
    var atLineStart = true
    var lineBytes = 0
    var firstByte: UInt8 = 0
    var lastWasCR = false
    var done = false

    init(out: ReplyWriter, bodyLines: Int) {
        self.out = out
        self.bodyLines = bodyLines
        out.buffer.reserveCapacity(out.buffer.count + 8192)
    }

    mutating func feed(_ data: UnsafeBufferPointer<UInt8>) {
        var i = 0
        let n = data.count
        while i < n && !done {
            if atLineStart {
                if !inHeaders && bodyLines >= 0 {
                    if bodyLines == 0 { done = true; return }
                    bodyLines -= 1
                }
                if data[i] == Ascii.dot { out.buffer.append(Ascii.dot) }
                atLineStart = false
                lineBytes = 0
                firstByte = data[i]
            }
            // Copy up to the end of this line in one go.
            var j = i
            while j < n && data[j] != Ascii.lf { j += 1 }
            if j > i {
                lineBytes += j - i
                out.buffer.append(contentsOf: UnsafeBufferPointer(rebasing: data[i..<j]))
                lastWasCR = data[j - 1] == Ascii.cr
            }
            if j < n {
                // End of line: CRLF (a stored CRLF stays one CRLF).
                if lastWasCR { out.buffer.append(Ascii.lf) } else { out.buffer.append(contentsOf: [Ascii.cr, Ascii.lf]) }
                // The header ends at an empty line ("\r" alone counts as empty).
                if inHeaders && (lineBytes == 0 || (lineBytes == 1 && firstByte == Ascii.cr)) { inHeaders = false }
                atLineStart = true
                lastWasCR = false
                j += 1
            }
            i = j
        }
    }

    mutating func finish() {
        if !atLineStart && !done {
            if lastWasCR { out.buffer.append(Ascii.lf) } else { out.buffer.append(contentsOf: [Ascii.cr, Ascii.lf]) }
        }
        out.put(POP3Reply.end)
    }
}

public enum Pop3dServer {
    /// Exit code when asked to serve a mailbox as root: qmail's "temporary",
    /// which qmail-popup turns into "-ERR [SYS/TEMP]"; 1 would read there
    /// as a wrong password.
    static let refusedAsRoot: Int32 = QmailExit.temporary

    public static func main(_ args: [String]) -> Int32 {
        // A checkpassword program that did not switch users (most do not
        // refuse uid 0 themselves) must not hand a client root's view of
        // the disk. The reason goes to the log; qmail-popup answers the client.
        if getuid() == 0 || geteuid() == 0 {
            Sys.warn("qmail-pop3d: refusing to serve a mailbox as root (uid 0); the checkpassword program must switch to the mailbox owner")
            return refusedAsRoot
        }
        POP3Timeout.install(exitCode: 0)
        let out = ReplyWriter(fd: 1)
        guard let dir = args.first, !dir.isEmpty, chdir(dir) == 0 else {
            out.put(POP3Reply.noMaildir)
            out.flush()
            return 0
        }
        MaildirBox.cleanTmp()
        let messages: [MaildirMessage]
        do { messages = try MaildirBox.scan() } catch {
            out.put(POP3Reply.scanFailed)
            out.flush()
            return 0
        }
        let session = Pop3dSession(messages: messages, out: out)
        out.put(POP3Reply.ok)
        let input = CommandReader(fd: 0, exact: false)
        while true {
            // Pipelined commands: answer all that have arrived, then write once.
            if input.buffered == 0 && !out.flush() { return 0 }
            switch input.next() {
            case .eof:
                return 0  // dropped connection: nothing is deleted
            case .tooLong:
                out.put(POP3Reply.lineTooLong)
            case .line(let l):
                if !session.handle(l) {
                    out.flush()
                    return 0
                }
            }
        }
    }
}
