// Byte-exact paths for delivery code: a path is bytes (an address
// extension may hold any byte but NUL), so it never round-trips through
// String.
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

@inline(__always) private func cStatB(_ p: UnsafePointer<CChar>, _ st: inout stat) -> Int32 { stat(p, &st) }
