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
}
