// Running a checkpassword program (and small lookup programs) the way the
// qmail-smtpd AUTH patch does: the program reads "user\0password\0stamp\0"
// from descriptor 3 and exits 0 when the login is good. Exit 1 (and 100)
// means a bad login; 111, a crash or anything else is a temporary failure,
// never "wrong password".
#if canImport(Glibc)
import Glibc
#endif

/// `limited`: refused unchecked by the failed-login limits (LoginLimiter).
public enum CheckResult: Equatable { case ok, rejected, temporary, limited }

public enum ChildProgram {
    /// Runs argv with `fd3` written to its descriptor 3, stdout/stdin on /dev/null.
    public static func run(_ argv: [String], fd3: [UInt8]?, timeout: Int = 60) -> Int32? {
        var pipeFds: (read: Int32, write: Int32)? = nil
        if fd3 != nil {
            guard let p = try? Sys.pipeCloexec() else { return nil }
            pipeFds = p
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if let p = pipeFds { posix_spawn_file_actions_adddup2(&actions, p.read, 3) }
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, environ)
        if let p = pipeFds {
            close(p.read)
            if rc == 0, let data = fd3 {
                signal(SIGPIPE, SIG_IGN)
                _ = try? Sys.writeAll(p.write, data)
            }
            close(p.write)
        }
        guard rc == 0 else { return nil }
        return waitBounded(pid, timeout: timeout)
    }

    /// Waits at most `timeout` seconds; a child still running then is killed
    /// and reported as nil (a temporary failure for every caller).
    static func waitBounded(_ pid: pid_t, timeout: Int) -> Int32? {
        var status: Int32 = 0
        var waited = 0
        var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return Spawn.decode(status) }
            if r < 0 && errno != EINTR { return nil }
            if waited >= timeout * 500 {
                kill(pid, SIGKILL)
                _ = Spawn.wait(pid)
                return nil
            }
            nanosleep(&pause, nil)
            waited += 1
        }
    }

    public static func checkpassword(_ argv: [String], user: [UInt8], secret: [UInt8], stamp: [UInt8]) -> CheckResult {
        guard !argv.isEmpty else { return .temporary }
        let data = user + [0] + secret + [0] + stamp + [0]
        guard let code = run(argv, fd3: data) else { return .temporary }
        switch code {
        case 0: return .ok
        case 1, 100: return .rejected
        default: return .temporary
        }
    }
}
