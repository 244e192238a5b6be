// qmail-start: builds the pipes between qmail-send, qmail-lspawn,
// qmail-rspawn, qmail-clean and an optional logger, starts each under its
// own account (lspawn root, rspawn qmailr, clean qmailq, logger qmaill,
// send qmails; all in group qmail, the logger in nofiles), then becomes
// qmail-send. Run by root from HOME/rc, or by the owner of a single-user
// home, in which case nobody changes uid.
//
//   qmail-start defaultdelivery [ logger arg ... ]
//
// qmail-send's fds: 0 log, 1/2 to/from lspawn, 3/4 rspawn, 5/6 clean.
// Without a logger qmail-send logs to qmail-start's standard output.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum Start {
    public static func main(_ args: [[UInt8]]) -> Int32 {
        guard args.count >= 2 else { Sys.warn("usage: qmail-start defaultdelivery [ logger arg ... ]"); return QmailExit.permanent }
        umask(0o077)
        let home = QmailHome.current()
        let ids: QmailIds
        do { ids = try QmailIds.load(home: home) } catch {
            Sys.warn("qmail-start: fatal: \(error)"); return QmailExit.temporary
        }
        // Keep 0, 1, 2 occupied so that pipes never land on them.
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 { _ = open("/dev/null", O_RDWR) }
        let switchIds = geteuid() == 0 && !ids.singleUser
        func creds(_ user: String?, _ group: String) -> Credentials? {
            guard switchIds else { return nil }
            let g = ids.gid(group) ?? 0
            guard let user else { return Credentials(uid: 0, gid: g) }
            return Credentials(uid: ids.uid(user) ?? 0, gid: g)
        }
        if switchIds {
            for u in ["qmails", "qmailr", "qmailq", "qmaill"] where (ids.uid(u) ?? 0) == 0 {
                Sys.warn("qmail-start: fatal: no uid for \(u) in \(home.path)/ids"); return QmailExit.temporary
            }
        }
        do {
            let toL = try Sys.pipeCloexec(), fromL = try Sys.pipeCloexec()
            let toR = try Sys.pipeCloexec(), fromR = try Sys.pipeCloexec()
            let toC = try Sys.pipeCloexec(), fromC = try Sys.pipeCloexec()
            var logFd: Int32 = 1
            if args.count > 2 {
                let lp = try Sys.pipeCloexec()
                let prog = args[2].string
                let path = prog.contains("/") ? prog : (findInPath(prog) ?? prog)
                try ChildProcess.spawn(.init(program: path, argv: Array(args[2...]), fds: [.dup(lp.read, to: 0)],
                                             credentials: switchIds ? Credentials(uid: ids.uid("qmaill")!, gid: ids.gid("nofiles") ?? 0) : nil,
                                             directory: "/"))
                Sys.close(lp.read)
                logFd = lp.write
            }
            try ChildProcess.spawn(.init(program: home.bin("qmail-lspawn"), argv: [Array("qmail-lspawn".utf8), args[1]],
                                         fds: [.dup(toL.read, to: 0), .dup(fromL.write, to: 1)], credentials: creds(nil, "qmail")))
            try ChildProcess.spawn(.init(program: home.bin("qmail-rspawn"), argv: [Array("qmail-rspawn".utf8)],
                                         fds: [.dup(toR.read, to: 0), .dup(fromR.write, to: 1)], credentials: creds("qmailr", "qmail")))
            try ChildProcess.spawn(.init(program: home.bin("qmail-clean"), argv: [Array("qmail-clean".utf8)],
                                         fds: [.dup(toC.read, to: 0), .dup(fromC.write, to: 1)], credentials: creds("qmailq", "qmail")))
            for fd in [toL.read, fromL.write, toR.read, fromR.write, toC.read, fromC.write] { Sys.close(fd) }
            // Become qmail-send: this process keeps its pid, as qmail's does.
            let moves: [FdAction] = [.dup(logFd, to: 0), .dup(toL.write, to: 1), .dup(fromL.read, to: 2), .dup(toR.write, to: 3),
                                     .dup(fromR.read, to: 4), .dup(toC.write, to: 5), .dup(fromC.read, to: 6)]
            throw ChildProcess.exec(.init(program: home.bin("qmail-send"), argv: [Array("qmail-send".utf8)], fds: moves,
                                          credentials: creds("qmails", "qmail")))
        } catch {
            Sys.warn("qmail-start: fatal: \(error)")
            return QmailExit.temporary
        }
    }

    static func findInPath(_ prog: String) -> String? {
        let path = Sys.getenv("PATH") ?? "/bin:/usr/bin"
        for dir in path.split(separator: ":") {
            let p = "\(dir)/\(prog)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }
}
