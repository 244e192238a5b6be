// Byte-exact system-call helpers for delivery code: paths, arguments and
// environment values are bytes (an extension may hold any byte but NUL),
// so they never round-trip through String.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum BytePath {
    /// Calls `body` with a NUL-terminated copy of `path`.
    @inlinable
    public static func with<R>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var c = path.map { CChar(bitPattern: $0) }
        c.append(0)
        return try c.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// open(2) retrying EINTR; returns -1 with errno set on failure.
    public static func open(_ path: [UInt8], _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        with(path) { p in
            while true {
                let fd = Glibc.open(p, flags | O_CLOEXEC, mode)
                if fd >= 0 || errno != EINTR { return fd }
            }
        }
    }

    /// stat(2); nil with errno set on failure.
    public static func stat(_ path: [UInt8]) -> Glibc.stat? {
        var st = Glibc.stat()
        let rc = with(path) { cStatB($0, &st) }
        return rc == 0 ? st : nil
    }

    public static func display(_ path: [UInt8]) -> String { path.string }
}

/// qmail's error_temp: errno values that mean "try again later".
public func errnoIsTemporary(_ e: Int32) -> Bool {
    switch e {
    case EINTR, ENOMEM, ETXTBSY, EIO, ETIMEDOUT, EAGAIN, ENFILE, EMFILE, ENOSPC, EDQUOT,
         ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, ENETDOWN, ESTALE, ENOLCK, EBUSY:
        return true
    default:
        return false
    }
}

/// The program's arguments as raw bytes (CommandLine.arguments repairs invalid UTF-8).
public func rawArguments() -> [[UInt8]] {
    var out: [[UInt8]] = []
    let argv = CommandLine.unsafeArgv
    for i in 0..<Int(CommandLine.argc) {
        guard let p = argv[i] else { break }
        let n = strlen(p)
        out.append(Array(UnsafeRawBufferPointer(start: p, count: n)))
    }
    return out
}

/// The value of an environment variable as bytes.
public func environmentBytes(_ name: String) -> [UInt8]? {
    guard let p = Glibc.getenv(name) else { return nil }
    return Array(UnsafeRawBufferPointer(start: p, count: strlen(p)))
}

/// Sets an environment variable inherited by the programs we start.
public func setEnvironment(_ name: String, _ value: [UInt8]) {
    BytePath.with(value) { _ = Glibc.setenv(name, $0, 1) }
}

/// Writes to a descriptor, ignoring failure (used for reports: there is
/// nowhere else to say anything).
public func say(_ fd: Int32, _ bytes: [UInt8]) {
    _ = try? Sys.writeAll(fd, bytes)
}

public func say(_ fd: Int32, _ s: String) { say(fd, Array(s.utf8)) }

/// Rewinds standard input (the message); qmail-local's input must be seekable.
public func rewindInput(_ fd: Int32 = 0) -> Bool {
    lseek(fd, 0, SEEK_SET) == 0
}

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

@inline(__always) private func cStatB(_ p: UnsafePointer<CChar>, _ st: inout stat) -> Int32 { stat(p, &st) }
