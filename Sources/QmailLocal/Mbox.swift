// mbox delivery (mbox(5)): lock, append "From " line and the message with
// ">From " quoting, a blank line, fsync; on a write error after locking,
// truncate the file back so the mailbox is never left with half a message.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum Mbox {
    /// qmail's gfrom: a line that reads "From " after any number of '>'.
    public static func needsQuoting(_ line: some Collection<UInt8>) -> Bool {
        var i = line.startIndex
        while i != line.endIndex && line[i] == UInt8(ascii: ">") { i = line.index(after: i) }
        let from: [UInt8] = Array("From ".utf8)
        var k = 0
        while k < 5 {
            if i == line.endIndex || line[i] != from[k] { return false }
            i = line.index(after: i)
            k += 1
        }
        return true
    }

    /// qmail's myctime: "Sat Nov 21 05:55:28 2026\n" in UTC, day zero-padded.
    public static func ctime(_ t: Int) -> [UInt8] {
        var tt = time_t(t)
        var tm = Glibc.tm()
        gmtime_r(&tt, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return Array("\(days[Int(tm.tm_wday)]) \(months[Int(tm.tm_mon)]) \(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) \(Int(tm.tm_year) + 1900)\n".utf8)
    }

    /// The From_ line for `sender` at time `t`: blanks in the sender become
    /// '-', the empty sender is MAILER-DAEMON.
    public static func fromLine(sender: [UInt8], time t: Int) -> [UInt8] {
        var line = Array("From ".utf8)
        if sender.isEmpty {
            line += Array("MAILER-DAEMON".utf8)
        } else {
            line += sender.map { ($0 == Ascii.space || $0 == Ascii.tab || $0 == Ascii.lf) ? Ascii.minus : $0 }
        }
        line.append(Ascii.space)
        return line + ctime(t)
    }

    /// Takes an exclusive lock (flock and fcntl, so both kinds of reader
    /// agree), waiting at most `seconds`. Returns false when locking is not
    /// supported here; throws a temporary failure on timeout.
    static func lock(_ fd: Int32, seconds: UInt32) throws -> Bool {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0 // no SA_RESTART: the blocked lock call returns EINTR
        var old = sigaction()
        sigaction(SIGALRM, &sa, &old)
        defer { alarm(0); sigaction(SIGALRM, &old, nil) }
        alarm(seconds)
        if flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { throw MailFailure.temporary("File has been locked for 30 seconds straight.") }
            return false
        }
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        if fcntl(fd, F_SETLKW, &fl) != 0 {
            if errno == EINTR { throw MailFailure.temporary("File has been locked for 30 seconds straight.") }
        }
        return true
    }

    /// Appends the message on `input` to the mbox `path`.
    public static func deliver(path: [UInt8], fromLine: [UInt8], header: [UInt8], input: Int32,
                               lockSeconds: UInt32 = 30) throws {
        let fd = BytePath.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o600)
        if fd < 0 {
            throw MailFailure.temporary("Unable to open \(path.string): \(Sys.strerror(errno)).", "4.2.1")
        }
        defer { Sys.close(fd) }
        let locked = try lock(fd, seconds: lockSeconds)
        let start = lseek(fd, 0, SEEK_END)
        func undo() { if locked && start >= 0 { _ = ftruncate(fd, start) } }
        let out = ByteWriter(fd: fd, capacity: 65536)
        let reader = ByteReader(fd: input, capacity: 65536)
        var atLineStart = true
        do {
            try out.put(fromLine)
            try out.put(header)
            while true {
                let got: (bytes: [UInt8], overflow: Bool)?
                do { got = try reader.line(limit: 65536) } catch {
                    undo()
                    throw MailFailure.temporary("Unable to read message: \(Sys.strerror(errno)).")
                }
                guard let (line, _) = got else { break }
                // Only the start of a line can need quoting; a line cut by
                // the limit continues in the next piece, which is not a line start.
                if atLineStart && needsQuoting(line) { try out.put(byte: UInt8(ascii: ">")) }
                try out.put(line)
                atLineStart = line.last == Ascii.lf
            }
            if !atLineStart { try out.put(byte: Ascii.lf) }
            try out.put(byte: Ascii.lf)
            try out.flush()
            try Sys.fsync(fd)
        } catch let f as MailFailure {
            throw f
        } catch {
            let e = errno
            undo()
            throw MailFailure.temporary("Unable to write \(path.string): \(Sys.strerror(e)).")
        }
    }
}
