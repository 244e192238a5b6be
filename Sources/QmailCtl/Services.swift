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

    /// Does `p` run service `s` (for the /proc scan)?
    func matches(_ p: ProcEntry, _ s: ServiceName) -> Bool {
        switch s {
        case .send:
            return p.exe == home.bin("qmail-send")
        case .smtpd, .pop3, .pop3s:
            guard p.exe.hasSuffix("/tcpserver") || p.argv.first?.hasSuffix("tcpserver") == true else { return false }
            let prog = p.argv.dropFirst().map { FileIO.baseName($0) }
            switch s {
            case .smtpd: return prog.contains("qmail-smtpd")
            case .pop3: return prog.contains("qmail-popup") && !prog.contains("tlswrap")
            default: return prog.contains("qmail-popup") && prog.contains("tlswrap")
            }
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
