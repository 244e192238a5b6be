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
        try Spawn.start(argv, stdinFd: stdinFd).get()
    }

    /// Waits for `pid`: its exit code, or nil when it was killed by a signal.
    public static func wait(_ pid: pid_t) -> Int32? { Spawn.exitCode(pid) }
}
