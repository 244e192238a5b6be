// Thin wrappers over the system calls qmail programs use. Each retries
// EINTR and reports failure as a SysError carrying errno, so callers decide
// whether a failure is temporary or permanent at the point it happens.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinux

public struct SysError: Error, CustomStringConvertible {
    public let errno: Int32
    public let op: String
    public let path: String?

    public init(_ op: String, path: String? = nil, errno e: Int32 = Glibc.errno) {
        self.op = op
        self.path = path
        self.errno = e
    }

    public var description: String {
        let reason = Sys.strerror(errno)
        if let path { return "\(op) \(path): \(reason)" }
        return "\(op): \(reason)"
    }

    public var isNotFound: Bool { errno == ENOENT }
}

public enum Sys {
    public static func strerror(_ e: Int32) -> String {
        guard let s = Glibc.strerror(e) else { return "error \(e)" }
        return String(cString: s)
    }

    @discardableResult
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw SysError("open", path: path)
        }
    }

    /// Reads up to `count` bytes; 0 means end of file.
    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        while true {
            let n = Glibc.read(fd, buf, count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw SysError("read")
        }
    }

    /// Writes every byte or throws.
    public static func writeAll(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, buf + done, count - done)
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw SysError("write")
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { p in
            guard let base = p.baseAddress else { return }
            try writeAll(fd, base, p.count)
        }
    }

    public static func writeAll(_ fd: Int32, _ s: String) throws {
        try writeAll(fd, Array(s.utf8))
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public static func fsync(_ fd: Int32) throws {
        while Glibc.fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw SysError("fsync")
        }
    }

    /// Asks the kernel to start writing a file's dirty data now, without
    /// waiting (Linux starts writeback on POSIX_FADV_DONTNEED). A hint
    /// only: fsync still decides durability.
    public static func startWriteback(_ fd: Int32) {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    /// Writes out the dirty data of `fds` and waits for it (their writes
    /// overlap), before the fsyncs that make them durable. On ext4 (as on
    /// XFS) a new file's size reaches the journal only when its data has
    /// been written: fsync'd one after another, a second file whose write
    /// ends during the first one's commit needs a commit of its own. With
    /// every write done first, the first fsync commits them all and the
    /// others find nothing left (measured here: 0.3-0.4 ms less per queued
    /// message). A hint only: the fsyncs still decide durability.
    public static func writeOut(_ fds: [Int32]) {
        for fd in fds { _ = sync_file_range(fd, 0, 0, UInt32(CLINUX_SYNC_FILE_RANGE_WRITE)) }
        let wait = UInt32(CLINUX_SYNC_FILE_RANGE_WAIT_BEFORE | CLINUX_SYNC_FILE_RANGE_WRITE
                          | CLINUX_SYNC_FILE_RANGE_WAIT_AFTER)
        for fd in fds { _ = sync_file_range(fd, 0, 0, wait) }
    }

    /// Sets a socket's receive and send timeouts (SO_RCVTIMEO, SO_SNDTIMEO):
    /// the limit of blocking I/O that poll cannot govern, such as OpenSSL's
    /// (decrypted bytes may already wait inside the session). nil leaves
    /// that direction as it is.
    public static func setSocketTimeouts(_ fd: Int32, receive: Int?, send: Int?) {
        for (option, seconds) in [(SO_RCVTIMEO, receive), (SO_SNDTIMEO, send)] {
            guard let seconds else { continue }
            var tv = timeval(tv_sec: seconds, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Runs `body` in a detached POSIX thread; false when none could start.
    /// `stackSize` (bytes) overrides the default, which glibc takes from
    /// RLIMIT_STACK: under softlimit -m (which sets it with the address
    /// space limit) a thread's default stack would be as large as the
    /// whole allowance, and the thread could not start.
    public static func detachThread(stackSize: Int? = nil, _ body: @escaping () -> Void) -> Bool {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attr, stackSize) }
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let r = pthread_create(&tid, &attr, { p in
            Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue().body()
            return nil
        }, arg)
        if r != 0 { Unmanaged<ThreadBody>.fromOpaque(arg).release() }
        return r == 0
    }

    /// fsyncs a directory so that entries created or removed in it are durable.
    public static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd)
    }

    public static func link(_ from: String, _ to: String) throws {
        if Glibc.link(from, to) != 0 { throw SysError("link", path: to) }
    }

    public static func unlink(_ path: String) throws {
        if Glibc.unlink(path) != 0 { throw SysError("unlink", path: path) }
    }

    public static func rename(_ from: String, _ to: String) throws {
        if Glibc.rename(from, to) != 0 { throw SysError("rename", path: to) }
    }

    public static func mkdir(_ path: String, _ mode: mode_t) throws {
        if Glibc.mkdir(path, mode) != 0 { throw SysError("mkdir", path: path) }
    }

    public static func chdir(_ path: String) throws {
        if Glibc.chdir(path) != 0 { throw SysError("chdir", path: path) }
    }

    public static func stat(_ path: String) throws -> stat {
        var st = Glibc.stat()
        if cStat(path, &st) != 0 { throw SysError("stat", path: path) }
        return st
    }

    public static func lstat(_ path: String) throws -> stat {
        var st = Glibc.stat()
        if cLstat(path, &st) != 0 { throw SysError("lstat", path: path) }
        return st
    }

    public static func fstat(_ fd: Int32) throws -> stat {
        var st = Glibc.stat()
        if Glibc.fstat(fd, &st) != 0 { throw SysError("fstat") }
        return st
    }

    public static func exists(_ path: String) -> Bool {
        var st = Glibc.stat()
        return cStat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = Glibc.stat()
        return cStat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func getenv(_ name: String) -> String? {
        guard let p = Glibc.getenv(name) else { return nil }
        return String(cString: p)
    }

    /// Seconds since the epoch.
    public static func now() -> Int {
        return Int(Glibc.time(nil))
    }

    /// Entries of a directory, without "." and "..".
    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw SysError("opendir", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names
    }

    /// A pipe whose both ends close on exec (dup2 onto 0/1/2 clears that).
    public static func pipeCloexec() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else { throw SysError("pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Writes to standard error; failures are ignored (there is nowhere to report them).
    public static func warn(_ s: String) {
        var b = Array(s.utf8)
        if b.last != 10 { b.append(10) }
        _ = try? writeAll(2, b)
    }
}

// Module-level so that the C functions, not the struct type, are found.
@inline(__always) private func cStat(_ p: String, _ st: inout stat) -> Int32 { stat(p, &st) }
@inline(__always) private func cLstat(_ p: String, _ st: inout stat) -> Int32 { lstat(p, &st) }

/// A thread's closure, carried through pthread_create's one pointer.
final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
