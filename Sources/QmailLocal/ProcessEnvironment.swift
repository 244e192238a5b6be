// Byte-exact access to what a delivery program is started with: its
// arguments and environment as bytes (an extension may hold any byte but
// NUL), its standard input rewound, reports to a descriptor, and which
// errno values are temporary.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

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
