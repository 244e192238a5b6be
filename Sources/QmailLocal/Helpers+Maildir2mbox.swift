// The small programs used from .qmail files: preline, condredirect,
// bouncesaying, except, forward, maildirmake, maildir2mbox, splogger.
// Each runs as the delivering user (or, splogger, as a logger); each main
// returns the exit code its man page documents.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public enum Helpers {
    /// Prints "prefix: fatal: text" (or the bare text) and returns `code`.
    static func fail(_ code: Int32, _ text: String) -> Int32 {
        say(2, text + "\n")
        return code
    }

    /// Runs argv with our stdin and waits. Exec failure: 111 when the
    /// error is temporary, else 100 (as the child's exit code).
    /// Nil when the child crashed (reported; the caller exits 111).
    static func runChild(_ argv: [[UInt8]], prog: String) -> Int32? {
        switch Child.spawn(argv) {
        case .failure(let e): return errnoIsTemporary(e.errno) ? 111 : 100
        case .success(let pid):
            switch Child.wait(pid) {
            case .crashed: _ = fail(111, "\(prog): fatal: child crashed"); return nil
            case .exited(let c): return c
            }
        }
    }

    /// Queues stdin, preceded by `prefix`, from `sender` to `recipients`.
    /// Returns qmail-queue's pid or the failure.
    static func queue(prefix: [UInt8], sender: [UInt8], recipients: [[UInt8]]) -> Result<Int32, MailFailure> {
        signal(SIGPIPE, SIG_IGN)
        let q: QueueClient
        do {
            q = try QueueClient(program: QueueClient.program(home: QmailHome.current(), honourEnvironment: true))
        } catch let f as MailFailure { return .failure(f) } catch { return .failure(.temporary("unable to fork")) }
        q.put(prefix)
        let r = ByteReader(fd: 0, capacity: 65536)
        do { try r.forEachChunk { q.put($0) } } catch {
            // Leave without the envelope: qmail-queue queues nothing.
            return .failure(.temporary("unable to read message: \(Sys.strerror(errno))"))
        }
        q.from(sender)
        for x in recipients { q.to(x) }
        let qp = q.queuePid
        if let f = q.close() { return .failure(f) }
        return .success(qp)
    }

    // MARK: preline

    public static func preline(_ argv: [[UInt8]]) -> Int32 {
        let usage = "preline: usage: preline cmd [ arg ... ]"
        signal(SIGPIPE, SIG_IGN)
        guard let uf = environmentBytes("UFLINE"), let rp = environmentBytes("RPLINE"),
              let dt = environmentBytes("DTLINE") else { return fail(100, usage) }
        var flags = (uf: true, rp: true, dt: true)
        var i = 1
        while i < argv.count, argv[i].count > 1, argv[i].first == Ascii.minus {
            let a = argv[i]; i += 1
            if a == Array("--".utf8) { break }
            for c in a.dropFirst() {
                switch c {
                case UInt8(ascii: "f"): flags.uf = false
                case UInt8(ascii: "r"): flags.rp = false
                case UInt8(ascii: "d"): flags.dt = false
                case UInt8(ascii: "F"): flags.uf = true
                case UInt8(ascii: "R"): flags.rp = true
                case UInt8(ascii: "D"): flags.dt = true
                default: return fail(100, usage)
                }
            }
        }
        let cmd = Array(argv[i...])
        if cmd.isEmpty { return fail(100, usage) }
        guard let pipe = try? Sys.pipeCloexec() else { return fail(111, "preline: fatal: unable to create pipe") }
        let pid: pid_t
        switch Child.spawn(cmd, stdinFd: pipe.read) {
        case .failure(let e):
            return fail(errnoIsTemporary(e.errno) ? 111 : 100,
                        "preline: fatal: unable to run \(cmd[0].string): \(Sys.strerror(e.errno))")
        case .success(let p): pid = p
        }
        Sys.close(pipe.read)
        let out = ByteWriter(fd: pipe.write, capacity: 65536)
        do {
            if flags.uf { try out.put(uf) }
            if flags.rp { try out.put(rp) }
            if flags.dt { try out.put(dt) }
            try ByteReader(fd: 0, capacity: 65536).forEachChunk { try out.put($0) }
            try out.flush()
        } catch {
            let e = errno
            Sys.close(pipe.write)
            _ = Child.wait(pid)
            return fail(111, "preline: fatal: unable to copy input: \(Sys.strerror(e))")
        }
        Sys.close(pipe.write)
        switch Child.wait(pid) {
        case .crashed: return fail(111, "preline: fatal: child crashed")
        case .exited(let c): return c
        }
    }

    // MARK: condredirect, bouncesaying, except

    public static func condredirect(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 3 else {
            return fail(100, "condredirect: usage: condredirect newaddress program [ arg ... ]")
        }
        guard let c = runChild(Array(argv[2...]), prog: "condredirect") else { return 111 }
        if c == 111 { return fail(111, "condredirect: fatal: temporary child error") }
        if c != 0 { return 0 }
        if !rewindInput() { return fail(111, "condredirect: fatal: unable to rewind: \(Sys.strerror(errno))") }
        guard let sender = environmentBytes("SENDER") else { return fail(100, "condredirect: fatal: SENDER not set") }
        guard let dtline = environmentBytes("DTLINE") else { return fail(100, "condredirect: fatal: DTLINE not set") }
        switch queue(prefix: dtline, sender: sender, recipients: [argv[1]]) {
        case .failure(let f): return fail(f.exitCode, "condredirect: fatal: \(f.description)")
        case .success(let qp): return fail(99, "condredirect: qp \(qp)")
        }
    }

    public static func bouncesaying(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else {
            return fail(100, "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]")
        }
        if argv.count >= 3 {
            guard let c = runChild(Array(argv[2...]), prog: "bouncesaying") else { return 111 }
            if c == 111 { return fail(111, "bouncesaying: fatal: temporary child error") }
            if c != 0 { return 0 }
        }
        say(2, argv[1] + [Ascii.lf])
        return 100
    }

    public static func except(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else { return fail(100, "except: usage: except program [ arg ... ]") }
        guard let c = runChild(Array(argv[1...]), prog: "except") else { return 111 }
        if c == 0 { return 100 }
        if c == 111 { return fail(111, "except: fatal: temporary child error") }
        return 0
    }

    // MARK: forward

    public static func forward(_ argv: [[UInt8]]) -> Int32 {
        guard let sender = environmentBytes("NEWSENDER") else { return fail(100, "forward: fatal: NEWSENDER not set") }
        guard let dtline = environmentBytes("DTLINE") else { return fail(100, "forward: fatal: DTLINE not set") }
        switch queue(prefix: dtline, sender: sender, recipients: Array(argv.dropFirst())) {
        case .failure(let f): return fail(f.exitCode, "forward: fatal: \(f.description)")
        case .success(let qp): return fail(0, "forward: qp \(qp)")
        }
    }

    // MARK: maildirmake

    public static func maildirmake(_ argv: [[UInt8]]) -> Int32 {
        umask(0o077)
        guard argv.count >= 2 else { return fail(100, "maildirmake: usage: maildirmake name") }
        let dir = argv[1]
        for (sub, what) in [([UInt8](), "mkdir "), (Array("/tmp".utf8), "mkdir "), (Array("/new".utf8), "mkdir "),
                            (Array("/cur".utf8), "mkdir ")] {
            let path = dir + sub
            if BytePath.with(path, { Glibc.mkdir($0, 0o700) }) != 0 {
                return fail(111, "maildirmake: fatal: unable to \(what)\(path.string): \(Sys.strerror(errno))")
            }
        }
        return 0
    }

    // MARK: maildir2mbox

    struct MaildirEntry { let path: [UInt8]; let mtime: Int }

    public static func maildir2mbox() -> Int32 {
        umask(0o077)
        let fatal = "maildir2mbox: fatal: "
        guard let mbox = environmentBytes("MAIL") else { return fail(111, fatal + "MAIL not set") }
        guard let mboxTmp = environmentBytes("MAILTMP") else { return fail(111, fatal + "MAILTMP not set") }
        guard let maildir = environmentBytes("MAILDIR") else { return fail(111, fatal + "MAILDIR not set") }
        if BytePath.with(maildir, { Glibc.chdir($0) }) != 0 {
            return fail(111, fatal + "unable to chdir to \(maildir.string): \(Sys.strerror(errno))")
        }
        cleanTmp()
        var entries: [MaildirEntry] = []
        for sub in ["new", "cur"] {
            guard let names = try? Sys.listDirectory(sub) else {
                return fail(111, fatal + "unable to scan $MAILDIR/\(sub)")
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
            return fail(111, fatal + "unable to lock \(mbox.string): \(Sys.strerror(errno))")
        }
        let oldFd = BytePath.open(mbox, O_RDONLY)
        if oldFd < 0 { return fail(111, fatal + "unable to read \(mbox.string): \(Sys.strerror(errno))") }
        let newFd = BytePath.open(mboxTmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if newFd < 0 { return fail(111, fatal + "unable to create \(mboxTmp.string): \(Sys.strerror(errno))") }
        let out = ByteWriter(fd: newFd, capacity: 65536)
        let writeError = { fail(111, fatal + "unable to write to \(mboxTmp.string): \(Sys.strerror(errno))") }
        do {
            try ByteReader(fd: oldFd, capacity: 65536).forEachChunk { try out.put($0) }
        } catch let e as SysError where e.op == "read" {
            return fail(111, fatal + "unable to read \(mbox.string): \(Sys.strerror(e.errno))")
        } catch { return writeError() }
        for e in entries {
            let fd = BytePath.open(e.path, O_RDONLY)
            if fd < 0 { return fail(111, fatal + "unable to read $MAILDIR/\(e.path.string): \(Sys.strerror(errno))") }
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
                return fail(111, fatal + "unable to read $MAILDIR/\(e.path.string): \(Sys.strerror(err.errno))")
            } catch { return writeError() }
        }
        do { try out.flush(); try Sys.fsync(newFd) } catch { return writeError() }
        if Glibc.close(newFd) != 0 { return writeError() }
        let renamed = BytePath.with(mboxTmp) { t in BytePath.with(mbox) { Glibc.rename(t, $0) } }
        if renamed != 0 {
            return fail(111, fatal + "unable to move \(mboxTmp.string) to \(mbox.string): \(Sys.strerror(errno))")
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

    // MARK: splogger

    /// splogger's line handling, apart from syslog so tests reach it:
    /// non-printable bytes become '?'; a line is sent in pieces of at most
    /// 799 bytes, the first as "STAMP text", the rest as "STAMP+text"; the
    /// priority is warning for "warning:", alert for "alert:", else info.
    public struct SploggerLines {
        var buf: [UInt8] = []
        var continuing = false
        var priority: Int32 = LOG_INFO
        var stamp = ""
        let makeStamp: () -> String
        let emit: (Int32, String) -> Void

        public init(stamp: @escaping () -> String, emit: @escaping (Int32, String) -> Void) {
            makeStamp = stamp
            self.emit = emit
        }

        mutating func flush() {
            guard !buf.isEmpty else { return }
            if continuing {
                emit(priority, stamp + "+" + buf.string)
            } else {
                stamp = makeStamp()
                priority = LOG_INFO
                if buf.hasPrefix(Array("warning:".utf8)) { priority = LOG_WARNING }
                if buf.hasPrefix(Array("alert:".utf8)) { priority = LOG_ALERT }
                emit(priority, stamp + " " + buf.string)
                continuing = true
            }
            buf.removeAll(keepingCapacity: true)
        }

        /// End of input: a last line without newline is still logged
        /// (qmail's splogger drops it).
        public mutating func finish() { flush() }

        public mutating func feed(_ c: UInt8) {
            if c == Ascii.lf { flush(); continuing = false; return }
            if buf.count == 799 { flush() }
            buf.append(c < 32 || c > 126 ? UInt8(ascii: "?") : c)
        }
    }

    /// "seconds.microseconds", as splogger stamps each line.
    static func sploggerStamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        let us = String(Int(tv.tv_usec))
        return "\(tv.tv_sec)." + String(repeating: "0", count: max(0, 6 - us.count)) + us
    }

    public static func splogger(_ argv: [[UInt8]]) -> Int32 {
        let tag = argv.count >= 2 ? argv[1].string : "splogger"
        var facility = LOG_MAIL
        if argv.count >= 3 { facility = Int32(Decimal.scanPrefix(argv[2]) ?? 0) << 3 }
        // openlog keeps the pointer: the tag must outlive the program.
        openlog(strdup(tag), 0, facility)
        var lines = SploggerLines(stamp: sploggerStamp, emit: sysLog)
        let r = ByteReader(fd: 0, capacity: 8192)
        while let c = try? r.byte() { lines.feed(c) }
        lines.finish()
        return 0
    }

    static func sysLog(_ priority: Int32, _ s: String) {
        s.withCString { msg in
            "%s".withCString { fmt in
                withVaList([OpaquePointer(msg)]) { vsyslog(priority, fmt, $0) }
            }
        }
    }
}
