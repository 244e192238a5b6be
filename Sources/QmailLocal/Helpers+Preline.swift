// preline: feeds a program the message with qmail-local's Mailbox-style
// lines (UFLINE, RPLINE, DTLINE) in front.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension Helpers {
    public static func preline(_ argv: [[UInt8]]) -> Int32 {
        let usage = "preline: usage: preline cmd [ arg ... ]"
        signal(SIGPIPE, SIG_IGN)
        guard let uf = environmentBytes("UFLINE"), let rp = environmentBytes("RPLINE"),
              let dt = environmentBytes("DTLINE") else { return fail(QmailExit.permanent, usage) }
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
                default: return fail(QmailExit.permanent, usage)
                }
            }
        }
        let cmd = Array(argv[i...])
        if cmd.isEmpty { return fail(QmailExit.permanent, usage) }
        guard let pipe = try? Sys.pipeCloexec() else { return fail(QmailExit.temporary, "preline: fatal: unable to create pipe") }
        let pid: pid_t
        do { pid = try ChildProcess.spawn(.init(cmd, fds: [.dup(pipe.read, to: 0)])) } catch {
            return fail(QmailExit.failure(temporary: errnoIsTemporary(error.errno)),
                        "preline: fatal: unable to run \(cmd[0].string): \(Sys.strerror(error.errno))")
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
            _ = ChildProcess.wait(pid)
            return fail(QmailExit.temporary, "preline: fatal: unable to copy input: \(Sys.strerror(e))")
        }
        Sys.close(pipe.write)
        switch ChildProcess.wait(pid) {
        case .exited(let c)?: return c
        case .signaled?, nil: return fail(QmailExit.temporary, "preline: fatal: child crashed")
        }
    }
}
