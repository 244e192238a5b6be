// Running a child program and waiting for it, without Foundation.
#if canImport(Glibc)
import Glibc
#endif

public enum Spawn {
    /// Runs argv[0] (searched in PATH when it has no slash) and returns its
    /// exit code, or 128+signal when it was killed, or nil when it could not start.
    @discardableResult
    public static func run(_ argv: [String], quiet: Bool = false) -> Int32? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if quiet {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ) == 0 else { return nil }
        return wait(pid)
    }

    /// Waits for `pid`: its exit code, or 128+signal.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return 111 }
        }
        return decode(status)
    }

    /// WIFEXITED/WEXITSTATUS/WTERMSIG, spelled out (the macros are not imported).
    public static func decode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig != 0 { return 128 + sig }
        return (status >> 8) & 0xff
    }

    /// True when the status means "killed by a signal".
    public static func crashed(_ status: Int32) -> Bool { (status & 0x7f) != 0 }

    /// Starts argv[0] (searched in PATH when it has no slash) with our
    /// environment and descriptors; `stdinFd`, when given, becomes its fd 0
    /// (and `stdoutFd` its fd 1).
    /// The child starts with an empty signal mask and `defaultSignals` at
    /// their default action, whatever we ignore or block. Returns the pid,
    /// or the errno of the failure.
    public static func start(_ argv: [[UInt8]], stdinFd: Int32? = nil, stdoutFd: Int32? = nil,
                             defaultSignals: [Int32] = [SIGPIPE]) -> Result<pid_t, SysError> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let fd = stdinFd, fd != 0 { posix_spawn_file_actions_adddup2(&actions, fd, 0) }
        if let fd = stdoutFd, fd != 1 { posix_spawn_file_actions_adddup2(&actions, fd, 1) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var sigs = sigset_t()
        sigemptyset(&sigs)
        for s in defaultSignals { sigaddset(&sigs, s) }
        posix_spawnattr_setsigdefault(&attr, &sigs)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { a in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: a.count + 1)
            for (i, b) in a.enumerated() { p[i] = CChar(bitPattern: b) }
            p[a.count] = 0
            return p
        }
        cargs.append(nil)
        defer { for p in cargs { p?.deallocate() } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, cargs[0]!, &actions, &attr, cargs, environ)
        if rc != 0 { return .failure(SysError("exec", path: String(decoding: argv[0], as: UTF8.self), errno: rc)) }
        return .success(pid)
    }

    /// `start` for arguments given as strings.
    public static func start(_ argv: [String], stdinFd: Int32? = nil, stdoutFd: Int32? = nil,
                             defaultSignals: [Int32] = [SIGPIPE]) -> Result<pid_t, SysError> {
        start(argv.map { Array($0.utf8) }, stdinFd: stdinFd, stdoutFd: stdoutFd, defaultSignals: defaultSignals)
    }

    /// Waits for `pid`: its exit code, or nil when a signal ended it (or
    /// it cannot be waited for).
    public static func exitCode(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return nil }
        }
        return crashed(status) ? nil : (status >> 8) & 0xff
    }
}
