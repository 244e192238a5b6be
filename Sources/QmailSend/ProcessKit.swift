// fork/exec with descriptor shuffling and optional uid/gid change, the few
// process primitives qmail-start and the spawn programs need. Everything a
// child needs is prepared before fork, so the child only calls dup2,
// setgid/setgroups/setuid, chdir and execv.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// NUL-terminated C strings owned until `free()`.
public final class CStringArray {
    public private(set) var pointers: [UnsafeMutablePointer<CChar>?]

    public init(_ items: [[UInt8]]) {
        pointers = items.map { item in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: item.count + 1)
            for (i, c) in item.enumerated() { p[i] = CChar(bitPattern: c) }
            p[item.count] = 0
            return p
        }
        pointers.append(nil)
    }

    public convenience init(strings: [String]) { self.init(strings.map { Array($0.utf8) }) }

    deinit { for p in pointers { p?.deallocate() } }
}

public enum ChildStatus: Equatable {
    case exited(Int32)
    case crashed(Int32)

    public init(raw: Int32) {
        if (raw & 0x7f) == 0 { self = .exited((raw >> 8) & 0xff) } else { self = .crashed(raw & 0x7f) }
    }
}

public struct Credentials {
    public var uid: uid_t
    public var gid: gid_t
    public init(uid: uid_t, gid: gid_t) { self.uid = uid; self.gid = gid }
}

public enum ProcessKit {
    /// Forks and runs `path` with `argv`. `fds` maps source descriptors to
    /// the numbers the child sees them as; all other descriptors the parent
    /// opened close-on-exec vanish at exec. With `credentials`, the child
    /// drops to that uid/gid first. `execFailed` is the exit code when exec
    /// fails (a function of errno). Returns the child's pid.
    public static func spawn(path: String, argv: [[UInt8]], fds: [(Int32, Int32)],
                             credentials: Credentials? = nil, directory: String? = nil,
                             execFailed: (Int32) -> Int32 = { _ in 111 }) throws -> pid_t {
        let cpath = CStringArray(strings: [path])
        let cargv = CStringArray(argv)
        let cdir = directory.map { CStringArray(strings: [$0]) }
        let codeTemp = execFailed(EAGAIN), codeHard = execFailed(ENOENT)
        let pid = fork()
        if pid < 0 { throw SysError("fork") }
        if pid == 0 {
            if !moveDescriptors(fds) { _exit(111) }
            execChild(cpath, cargv, credentials: credentials, directory: cdir, temporary: codeTemp, hard: codeHard)
        }
        return pid
    }

    /// In a child: puts each source descriptor on its target number (not
    /// close-on-exec). Sources are first copied above 200 so that no dup2
    /// clobbers a later source.
    public static func moveDescriptors(_ fds: [(Int32, Int32)]) -> Bool {
        var high: [Int32] = []
        for (i, m) in fds.enumerated() {
            let h = fcntl(m.0, F_DUPFD, 200 + Int32(i))
            if h < 0 { return false }
            high.append(h)
        }
        for (i, m) in fds.enumerated() {
            if dup2(high[i], m.1) < 0 { return false }
            _ = fcntl(m.1, F_SETFD, 0)
        }
        for h in high { close(h) }
        return true
    }

    /// In a child: drops to `credentials`, changes directory, execs. Exits
    /// with `hard` when the program cannot be found or run, else `temporary`.
    public static func execChild(_ path: CStringArray, _ argv: CStringArray, credentials: Credentials?,
                                 directory: CStringArray?, temporary: Int32, hard: Int32) -> Never {
        if let c = credentials {
            var g = c.gid
            if setgroups(1, &g) != 0 || setgid(c.gid) != 0 { _exit(111) }
            if setuid(c.uid) != 0 { _exit(111) }
        }
        if let d = directory, chdir(d.pointers[0]!) != 0 { _exit(111) }
        execv(path.pointers[0]!, argv.pointers)
        let e = errno
        _exit(e == ENOENT || e == EACCES || e == ENOEXEC || e == ENOTDIR ? hard : temporary)
    }

    /// Waits for one child; nil when it is not ours or already reaped.
    public static func wait(_ pid: pid_t) -> ChildStatus? {
        var st: Int32 = 0
        while true {
            let r = waitpid(pid, &st, 0)
            if r == pid { return ChildStatus(raw: st) }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// Runs a program to completion, collecting at most `limit` bytes of its standard output.
    public static func run(path: String, argv: [[UInt8]], stdin: Int32? = nil, limit: Int = 65536,
                           execFailed: @escaping (Int32) -> Int32 = { _ in 111 }) throws -> (ChildStatus, [UInt8]) {
        let p = try Sys.pipeCloexec()
        var fds: [(Int32, Int32)] = [(p.write, 1)]
        if let i = stdin { fds.append((i, 0)) }
        let pid: pid_t
        do { pid = try spawn(path: path, argv: argv, fds: fds, execFailed: execFailed) } catch {
            Sys.close(p.read); Sys.close(p.write); throw error
        }
        Sys.close(p.write)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = (try? buf.withUnsafeMutableBytes { try Sys.read(p.read, $0.baseAddress!, $0.count) }) ?? 0
            if n <= 0 { break }
            if out.count < limit { out += buf[0..<min(n, limit - out.count)] }
        }
        Sys.close(p.read)
        guard let st = wait(pid) else { throw SysError("waitpid") }
        return (st, out)
    }
}
