// maildir2mbox: moves the messages of $MAILDIR to the end of the mbox
// $MAIL, oldest first, through $MAILTMP.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension Helpers {
    struct MaildirEntry { let path: [UInt8]; let mtime: Int }

    public static func maildir2mbox() -> Int32 {
        umask(0o077)
        let fatal = "maildir2mbox: fatal: "
        guard let mbox = environmentBytes("MAIL") else { return fail(QmailExit.temporary, fatal + "MAIL not set") }
        guard let mboxTmp = environmentBytes("MAILTMP") else { return fail(QmailExit.temporary, fatal + "MAILTMP not set") }
        guard let maildir = environmentBytes("MAILDIR") else { return fail(QmailExit.temporary, fatal + "MAILDIR not set") }
        if BytePath.with(maildir, { Glibc.chdir($0) }) != 0 {
            return fail(QmailExit.temporary, fatal + "unable to chdir to \(maildir.string): \(Sys.strerror(errno))")
        }
        cleanTmp()
        var entries: [MaildirEntry] = []
        for sub in ["new", "cur"] {
            guard let names = try? Sys.listDirectory(sub) else {
                return fail(QmailExit.temporary, fatal + "unable to scan $MAILDIR/\(sub)")
            }
            for n in names where !n.hasPrefix(".") {
                let p = Array("\(sub)/\(n)".utf8)
                if let st = BytePath.stat(p) { entries.append(MaildirEntry(path: p, mtime: Int(st.st_mtim.tv_sec))) }
            }
        }
        if entries.isEmpty { return 0 }
        entries.sort { $0.mtime < $1.mtime }

        let lockFd = BytePath.open(mbox, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o600)
        if lockFd < 0 || flock(lockFd, LOCK_EX) != 0 {
            return fail(QmailExit.temporary, fatal + "unable to lock \(mbox.string): \(Sys.strerror(errno))")
        }
        let oldFd = BytePath.open(mbox, O_RDONLY)
        if oldFd < 0 { return fail(QmailExit.temporary, fatal + "unable to read \(mbox.string): \(Sys.strerror(errno))") }
        let newFd = BytePath.open(mboxTmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if newFd < 0 { return fail(QmailExit.temporary, fatal + "unable to create \(mboxTmp.string): \(Sys.strerror(errno))") }
        let out = ByteWriter(fd: newFd, capacity: 65536)
        let writeError = { fail(QmailExit.temporary, fatal + "unable to write to \(mboxTmp.string): \(Sys.strerror(errno))") }
        do {
            try ByteReader(fd: oldFd, capacity: 65536).forEachChunk { try out.put($0) }
        } catch let e as SysError where e.op == "read" {
            return fail(QmailExit.temporary, fatal + "unable to read \(mbox.string): \(Sys.strerror(e.errno))")
        } catch { return writeError() }
        for e in entries {
            let fd = BytePath.open(e.path, O_RDONLY)
            if fd < 0 { return fail(QmailExit.temporary, fatal + "unable to read $MAILDIR/\(e.path.string): \(Sys.strerror(errno))") }
            defer { Sys.close(fd) }
            let r = ByteReader(fd: fd, capacity: 65536)
            do {
                var first = try r.line(limit: 1 << 20)?.bytes
                var from = Array("From XXX ".utf8)
                let rp = Array("Return-Path: <".utf8)
                if let f = first, f.last == Ascii.lf, f.hasPrefix(rp) {
                    if f.count > 14 && f[14] == UInt8(ascii: ">") {
                        from = Array("From MAILER-DAEMON ".utf8)
                    } else {
                        from = Array("From ".utf8)
                        for c in f[14..<max(14, f.count - 2)] {
                            from.append(c == Ascii.space || c == Ascii.tab ? Ascii.minus : c)
                        }
                        from.append(Ascii.space)
                    }
                }
                try out.put(from + Mbox.ctime(e.mtime))
                var atStart = true
                while let line = first {
                    if atStart && Mbox.needsQuoting(line) { try out.put(byte: UInt8(ascii: ">")) }
                    try out.put(line)
                    atStart = line.last == Ascii.lf
                    first = try r.line(limit: 1 << 20)?.bytes
                }
                if !atStart { try out.put(byte: Ascii.lf) }
                try out.put(byte: Ascii.lf)
            } catch let err as SysError where err.op == "read" {
                return fail(QmailExit.temporary, fatal + "unable to read $MAILDIR/\(e.path.string): \(Sys.strerror(err.errno))")
            } catch { return writeError() }
        }
        do { try out.flush(); try Sys.fsync(newFd) } catch { return writeError() }
        if Glibc.close(newFd) != 0 { return writeError() }
        let renamed = BytePath.with(mboxTmp) { t in BytePath.with(mbox) { Glibc.rename(t, $0) } }
        if renamed != 0 {
            return fail(QmailExit.temporary, fatal + "unable to move \(mboxTmp.string) to \(mbox.string): \(Sys.strerror(errno))")
        }
        for e in entries {
            if BytePath.with(e.path, { Glibc.unlink($0) }) != 0 {
                say(2, "maildir2mbox: warning: $MAILDIR/\(e.path.string) will be delivered twice; unable to unlink: \(Sys.strerror(errno))\n")
            }
        }
        return 0
    }

    /// Removes files in tmp/ untouched for 36 hours (maildir(5)).
    static func cleanTmp() {
        guard let names = try? Sys.listDirectory("tmp") else { return }
        let now = Sys.now()
        for n in names {
            if let st = try? Sys.stat("tmp/" + n), now > Int(st.st_atim.tv_sec) + 129600 {
                _ = Glibc.unlink("tmp/" + n)
            }
        }
    }
}
