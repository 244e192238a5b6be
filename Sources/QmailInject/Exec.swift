// Replacing this process with another program, or running a child with a
// pipe on its stdin (predate).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum Exec {
    /// execv(path, argv); returns only on failure, with errno.
    public static func replace(_ path: String, _ argv: [String]) -> Int32 {
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for a in cargs { free(a) } }
        execv(path, cargs)
        return errno
    }

    /// Starts `argv[0]` (searched in PATH when it has no '/') with its
    /// standard input reading from `stdinFd`.
    public static func spawn(_ argv: [String], stdinFd: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinFd, 0)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for a in cargs { free(a) } }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The child gets default SIGPIPE handling even though we ignore it.
        var sigs = sigset_t()
        sigemptyset(&sigs)
        sigaddset(&sigs, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &sigs)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ)
        if rc != 0 { throw SysError("spawn", path: argv[0], errno: rc) }
        return pid
    }

    /// Waits for `pid`: its exit code, or nil when it was killed by a signal.
    public static func wait(_ pid: pid_t) throws -> Int32? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { throw SysError("waitpid") }
        }
        if (status & 0x7f) != 0 { return nil }
        return (status >> 8) & 0xff
    }
}
