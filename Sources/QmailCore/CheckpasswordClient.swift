// Running a checkpassword program (and small lookup programs) the way the
// qmail-smtpd AUTH patch and qmail-popup do: the program reads
// "user\0password\0stamp\0" from descriptor 3 and exits 0 when the login is
// good. Exit 1 (and 100) means a bad login; 111, a crash or anything else
// is a temporary failure, never "wrong password".
#if canImport(Glibc)
import Glibc
#endif

/// `limited`: refused unchecked by the failed-login limits (LoginLimiter).
public enum CheckResult: Equatable { case ok, rejected, temporary, limited }

public enum CheckpasswordClient {
    /// How a run ended. `notStarted`: the program could not be run;
    /// `lost`: no verdict for another reason (no pipe, over `timeout`
    /// seconds and killed, not waitable).
    public enum Outcome: Equatable { case ended(ChildStatus), notStarted, lost }

    /// Runs `argv` with `fd3` written to its descriptor 3.
    /// With `quiet`, its standard input and output are /dev/null (or its
    /// output is `output`); else it shares ours (qmail-popup's
    /// checkpassword execs qmail-pop3d on them).
    public static func run(_ argv: [String], fd3: [UInt8]?, quiet: Bool = true, output: Int32? = nil, searchPath: Bool = false,
                           timeout: Double? = 60, defaultSignals: [Int32] = ChildProcess.Plan.resetSignals) -> Outcome {
        guard !argv.isEmpty else { return .notStarted }
        var pipeFds: (read: Int32, write: Int32)? = nil
        if fd3 != nil {
            guard let p = try? Sys.pipeCloexec() else { return .lost }
            pipeFds = p
        }
        var fds: [FdAction] = quiet ? [.open("/dev/null", flags: O_RDONLY, to: 0),
                                       output.map { .dup($0, to: 1) } ?? .open("/dev/null", flags: O_WRONLY, to: 1)] : []
        if let p = pipeFds { fds.append(.dup(p.read, to: 3)) }
        var plan = ChildProcess.Plan(program: argv[0], argv: argv.map { Array($0.utf8) }, searchPath: searchPath, fds: fds)
        plan.defaultSignals = defaultSignals
        let pid = try? ChildProcess.spawn(plan)
        if let p = pipeFds {
            close(p.read)
            if pid != nil, let data = fd3 {
                signal(SIGPIPE, SIG_IGN)
                _ = try? Sys.writeAll(p.write, data)
            }
            close(p.write)
        }
        guard let pid else { return .notStarted }
        let status = timeout.map { ChildProcess.wait(pid, timeout: $0) } ?? ChildProcess.wait(pid)
        return status.map { .ended($0) } ?? .lost
    }

    public static func checkpassword(_ argv: [String], user: [UInt8], secret: [UInt8], stamp: [UInt8]) -> CheckResult {
        switch run(argv, fd3: user + [0] + secret + [0] + stamp + [0]) {
        case .ended(.exited(0)): return .ok
        case .ended(.exited(1)), .ended(.exited(QmailExit.permanent)): return .rejected
        default: return .temporary
        }
    }

    /// A login that also reports what the program it runs prints (at most
    /// `limit` bytes): checkpassword-ldap/-mysql run `argv` as the mailbox,
    /// so a small program there tells the caller where the mailbox is.
    public static func checkpassword(_ argv: [String], user: [UInt8], secret: [UInt8], stamp: [UInt8],
                                     limit: Int) -> (CheckResult, [UInt8]) {
        guard let p = try? Sys.pipeCloexec() else { return (.temporary, []) }
        defer { close(p.read) }
        // the output stays small (under a pipe's buffer): read after the end
        let outcome = run(argv, fd3: user + [0] + secret + [0] + stamp + [0], output: p.write)
        close(p.write)
        guard case .ended(let status) = outcome else { return (.temporary, []) }
        switch status {
        case .exited(0): break
        case .exited(1), .exited(QmailExit.permanent): return (.rejected, [])
        default: return (.temporary, [])
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        _ = fcntl(p.read, F_SETFL, fcntl(p.read, F_GETFL) | O_NONBLOCK)
        while out.count < limit {
            let n = read(p.read, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return (.ok, Array(out.prefix(limit)))
    }
}
