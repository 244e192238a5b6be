// The services qmailctl knows, and how it finds them: under daemontools
// (a service directory in svdir, queried with svstat, driven with svc), or
// else by scanning /proc for programs of HOME/bin.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum ServiceName: String, CaseIterable {
    case send, smtpd, pop3, pop3s

    /// Directory names tried in svdir, in order (contrib/ names first).
    var directoryNames: [String] {
        switch self {
        case .send: return ["qmail-send", "qmail", "send"]
        case .smtpd: return ["qmail-smtpd", "smtpd", "smtp"]
        case .pop3: return ["qmail-pop3d", "pop3d", "pop3"]
        case .pop3s: return ["qmail-pop3ds", "pop3ds", "pop3s"]
        }
    }
}

public struct ServiceState {
    public enum How: String { case daemontools, systemd, process }
    public let name: ServiceName
    public let how: How
    /// daemontools: the service directory.
    public let directory: String?
    public let up: Bool
    public let pids: [pid_t]
    public let detail: String
}

struct Services {
    let config: CtlConfig
    /// HOME/bin/ as /proc/PID/exe shows a program started from it: symlinks
    /// in HOME resolved. A hard-linked program shows the name it was started
    /// by, so two homes linked to one build still tell their processes apart.
    let bin: String

    init(config: CtlConfig) {
        self.config = config
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let real = realpath(config.home.path, &buf) != nil ? String(cString: buf) : config.home.path
        bin = (real == "/" ? "" : real) + "/bin/"
    }

    var home: QmailHome { config.home }

    /// The supervised directory of a service, if svdir holds one.
    func directory(_ s: ServiceName) -> String? {
        for n in s.directoryNames {
            let d = "\(config.svdir)/\(n)"
            if Sys.exists("\(d)/run") { return d }
        }
        return nil
    }

    /// The systemd unit of a service, when systemd runs this machine and
    /// the unit file (contrib's name) is installed.
    func systemdUnit(_ s: ServiceName) -> String? {
        guard !config.svdirGiven, Sys.isDirectory("/run/systemd/system") else { return nil }
        let unit = s.directoryNames[0] + ".service"
        for d in ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"] where Sys.exists("\(d)/\(unit)") {
            return unit
        }
        return nil
    }

    /// Is `path` a program of this home's bin/ (`name`, or any when nil)?
    func inBin(_ path: String, _ name: String? = nil) -> Bool {
        for dir in [bin, home.path + "/bin/"] where path.hasPrefix(dir) {
            let rest = path.dropFirst(dir.count)
            if !rest.isEmpty && !rest.contains("/") && (name == nil || rest == name!) { return true }
        }
        return false
    }

    /// Does `p` run service `s` (for the /proc scan)? Only processes whose
    /// program is in this home's bin/: another home's tcpserver or
    /// qmail-send has the same base name but is not ours to signal. A
    /// tcpserver from elsewhere (ucspi-tcp's) counts when it runs this
    /// home's server by its full path.
    func matches(_ p: ProcEntry, _ s: ServiceName) -> Bool {
        switch s {
        case .send:
            return inBin(p.exe, "qmail-send")
        case .smtpd, .pop3, .pop3s:
            let args = Array(p.argv.dropFirst())
            let server = s == .smtpd ? "qmail-smtpd" : "qmail-popup"
            if inBin(p.exe, "tcpserver") {
                guard args.contains(where: { FileIO.baseName($0) == server }) else { return false }
            } else {
                guard FileIO.baseName(p.exe) == "tcpserver", args.contains(where: { inBin($0, server) }) else { return false }
            }
            if s == .smtpd { return true }
            let tls = args.contains { FileIO.baseName($0) == "tlswrap" }
            return s == .pop3s ? tls : !tls
        }
    }

    /// Only tcpservers that are not children of another (the listener, not a connection).
    func state(_ s: ServiceName, procs: [ProcEntry]) -> ServiceState {
        if let d = directory(s) {
            let r = Run.capture(["svstat", d])
            let text = r.output.split(separator: "\n").first.map(String.init) ?? ""
            let up = r.status == 0 && text.contains(": up")
            var pids: [pid_t] = []
            if let range = text.firstRange(of: "(pid ") {
                let rest = text[range.upperBound...]
                if let pid = pid_t(rest.prefix { $0.isNumber }) { pids = [pid] }
            }
            let detail = r.status == nil ? "svstat not found" : (text.isEmpty ? "svstat failed" : text)
            return ServiceState(name: s, how: .daemontools, directory: d, up: up, pids: pids, detail: detail)
        }
        if let unit = systemdUnit(s) {
            let r = Run.capture(["systemctl", "is-active", unit])
            let word = r.output.split(separator: "\n").first.map(String.init) ?? "unknown"
            let pids = procs.filter { matches($0, s) }.map { $0.pid }
            return ServiceState(name: s, how: .systemd, directory: unit, up: word == "active", pids: pids,
                                detail: "\(unit) \(word)")
        }
        let mine = procs.filter { matches($0, s) }
        let pidset = Set(mine.map { $0.pid })
        // a connection's tcpserver child has its listener as parent
        let listeners = mine.filter { !pidset.contains(parentPid($0.pid)) }.map { $0.pid }.sorted()
        let detail = listeners.isEmpty ? "not running" : "running (pid \(listeners.map(String.init).joined(separator: " ")))"
        return ServiceState(name: s, how: .process, directory: nil, up: !listeners.isEmpty, pids: listeners, detail: detail)
    }

    func parentPid(_ pid: pid_t) -> pid_t {
        guard let b = try? FileIO.read("/proc/\(pid)/stat", limit: 4096), let close = b.lastIndex(of: 41) else { return 0 }
        let fields = b[(close + 2)...].split(separator: Ascii.space)
        guard fields.count > 1 else { return 0 }
        return pid_t(String(decoding: fields[1], as: UTF8.self)) ?? 0
    }
}
