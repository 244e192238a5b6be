// Small process helpers for qmailctl: run a program and capture its output,
// scan /proc for running programs.
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
        let plan = ChildProcess.Plan(argv, fds: [.open(stdinPath ?? "/dev/null", flags: O_RDONLY, to: 0)])
        guard let (status, out) = try? ChildProcess.capture(plan, limit: 1 << 20, stderrToo: true) else {
            return Captured(status: nil, output: "")
        }
        return Captured(status: status.shellCode, output: String(decoding: out, as: UTF8.self))
    }

    /// Starts argv detached (new session, stdin /dev/null, output appended
    /// to `log` or to /dev/null); returns the pid.
    static func detach(_ argv: [String], log: String?) -> pid_t? {
        // Both opens append, so the two descriptors share the end of the log.
        let output = { (fd: Int32) in FdAction.open(log ?? "/dev/null", flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o640, to: fd) }
        var plan = ChildProcess.Plan(argv, fds: [.open("/dev/null", flags: O_RDONLY, to: 0), output(1), output(2)])
        plan.newSession = true
        return try? ChildProcess.spawn(plan)
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
