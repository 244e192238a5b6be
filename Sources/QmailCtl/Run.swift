// Small process helpers for qmailctl: run a program and capture its output,
// scan /proc for running programs. Could move to QmailCore (Spawn) later.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct Captured {
    public let status: Int32?
    public let output: String
}

enum Run {
    /// Runs argv (PATH search) with stdin from /dev/null (or `stdinPath`),
    /// stdout and stderr captured together (at most 1 MiB kept).
    static func capture(_ argv: [String], stdinPath: String? = nil) -> Captured {
        guard let p = try? Sys.pipeCloexec() else { return Captured(status: nil, output: "") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, p.write, 1)
        posix_spawn_file_actions_adddup2(&actions, p.write, 2)
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ)
        Sys.close(p.write)
        guard rc == 0 else { Sys.close(p.read); return Captured(status: nil, output: "") }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = (try? buf.withUnsafeMutableBytes { try Sys.read(p.read, $0.baseAddress!, $0.count) }) ?? 0
            if n <= 0 { break }
            if out.count < 1 << 20 { out += buf[0..<n] }
        }
        Sys.close(p.read)
        return Captured(status: Spawn.wait(pid), output: String(decoding: out, as: UTF8.self))
    }

    /// Starts argv detached (new session, stdin /dev/null, output appended
    /// to `log` or to /dev/null); returns the pid.
    static func detach(_ argv: [String], log: String?) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(0x80))  // POSIX_SPAWN_SETSID
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ) == 0 else { return nil }
        return pid
    }
}

/// One process seen in /proc.
struct ProcEntry {
    let pid: pid_t
    let exe: String
    let argv: [String]
    let started: Int?
}

enum ProcScan {
    /// Every readable process; `unreadable` counts those whose exe we could not see.
    static func all() -> (entries: [ProcEntry], unreadable: Int) {
        var out: [ProcEntry] = []
        var unreadable = 0
        guard let names = try? Sys.listDirectory("/proc") else { return ([], 1) }
        for n in names {
            guard let pid = pid_t(n) else { continue }
            var buf = [CChar](repeating: 0, count: 4097)
            let len = readlink("/proc/\(n)/exe", &buf, 4096)
            let exe: String
            if len > 0 {
                exe = String(decoding: buf[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            } else {
                if errno == EACCES && geteuid() != 0 { unreadable += 1 }
                exe = ""
            }
            let cmd = (try? FileIO.read("/proc/\(n)/cmdline", limit: 65536)) ?? nil
            let argv = (cmd ?? []).split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
                String(decoding: $0, as: UTF8.self)
            }
            var st = stat()
            let started = stat("/proc/\(n)", &st) == 0 ? Int(st.st_mtim.tv_sec) : nil
            out.append(ProcEntry(pid: pid, exe: exe.hasSuffix(" (deleted)") ? String(exe.dropLast(10)) : exe,
                                 argv: argv, started: started))
        }
        return (out, unreadable)
    }
}
