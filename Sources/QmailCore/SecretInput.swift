// Reading a password handed on a descriptor (checkpassword's fd 3, and the
// login checkpassword hands qmail-pop3proxy the same way), never through
// argv or the environment: to end of file, bounded, with the buffer wiped.
#if canImport(Glibc)
import Glibc
#endif

public enum SecretInput {
    public enum Failure: Error, Equatable { case tooLong, unreadable(Int32) }

    /// What `fd` carries up to end of file, at most `limit` bytes.
    public static func read(fd: Int32, limit: Int) throws(Failure) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: limit + 1)
        defer { explicit_bzero(&buf, buf.count) }
        var n = 0
        while true {
            let r = buf.withUnsafeMutableBytes { p in Glibc.read(fd, p.baseAddress! + n, p.count - n) }
            if r < 0 {
                if errno == EINTR { continue }
                throw .unreadable(errno)
            }
            if r == 0 { break }
            n += r
            if n > limit { throw .tooLong }
        }
        return Array(buf[0..<n])
    }
}
