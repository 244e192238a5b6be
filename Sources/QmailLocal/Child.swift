// A child program started by a delivery program, and how it ended.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Outcome of a child process.
public enum ChildStatus: Equatable {
    case exited(Int32)
    case crashed(Int32)
}

public enum Child {
    /// Starts `argv` (argv[0] found through PATH when it has no slash) with
    /// the current descriptors and environment, SIGPIPE reset to default.
    /// `stdinFd`, when given, becomes the child's fd 0. Returns the pid, or
    /// the errno of the failure.
    public static func spawn(_ argv: [[UInt8]], stdinFd: Int32? = nil) -> Result<pid_t, SysError> {
        Spawn.start(argv, stdinFd: stdinFd, defaultSignals: [SIGPIPE, SIGALRM, SIGXFSZ])
    }

    /// Waits for `pid`.
    public static func wait(_ pid: pid_t) -> ChildStatus {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return .crashed(0) }
        }
        if (status & 0x7f) != 0 { return .crashed(status & 0x7f) }
        return .exited((status >> 8) & 0xff)
    }
}
