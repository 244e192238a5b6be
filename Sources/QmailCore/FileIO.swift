// Whole-file reads and crash-safe whole-file replacement.
#if canImport(Glibc)
import Glibc
#endif

public enum FileIO {
    /// The contents of `path`, or nil when it does not exist. Any other
    /// failure (permissions, I/O) throws: a missing file and an unreadable
    /// file mean different things to qmail.
    public static func read(_ path: String, limit: Int = 64 << 20) throws -> [UInt8]? {
        let fd: Int32
        do {
            fd = try Sys.open(path, O_RDONLY)
        } catch let e as SysError where e.errno == ENOENT {
            return nil
        }
        defer { Sys.close(fd) }
        let r = ByteReader(fd: fd, capacity: 65536)
        guard let all = try r.readAll(limit: limit) else {
            throw SysError("read", path: path, errno: EFBIG)
        }
        return all
    }

    /// Replaces `path` atomically: writes a temporary file beside it, fsyncs
    /// it, renames it over the target and fsyncs the directory. A crash
    /// leaves either the old or the new contents, never a mix.
    public static func writeAtomic(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let tmp = "\(path).tmp.\(getpid())"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        do {
            try Sys.writeAll(fd, bytes)
            try Sys.fsync(fd)
            if fchmod(fd, mode) != 0 { throw SysError("chmod", path: tmp) }
            Sys.close(fd)
            try Sys.rename(tmp, path)
        } catch {
            Sys.close(fd)
            _ = Glibc.unlink(tmp)
            throw error
        }
        try Sys.fsyncDirectory(directoryOf(path))
    }

    public static func directoryOf(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        if i == path.startIndex { return "/" }
        return String(path[..<i])
    }

    public static func baseName(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }
}
