// qmailctl: one command to run and inspect a qmail installation.
//
// Runs as root (or as the owner of a single-user home). Trusts HOME (from
// QMAIL_HOME unless privileged: /var/qmail then), its qmailctl.conf, and
// the programs in HOME/bin; it never reads mail.
//
// Exit codes, for scripts:
//   0   ok (status: every known service is up; doctor: nothing found)
//   1   warnings (status: a service other than qmail-send is down)
//   2   problems (status: qmail-send is not running; doctor: a problem)
//   100 usage error
//   111 cannot tell (home unreadable, a program missing, a command failed)
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import QmailAdmin

public enum CtlExit {
    public static let ok: Int32 = 0
    public static let warning: Int32 = 1
    public static let problem: Int32 = 2
    public static let usage: Int32 = QmailExit.permanent
    public static let cannotTell: Int32 = QmailExit.temporary
}

public struct QmailCtl {
    let config: CtlConfig
    var out: (String) -> Void = { s in _ = try? Sys.writeAll(1, s + "\n") }

    public init(config: CtlConfig) { self.config = config }

    var home: QmailHome { config.home }
    var services: Services { Services(config: config) }

    public static let usage = """
    usage: qmailctl [-s svdir] [-c conf] command
      start | stop | restart [service...]   services: send smtpd pop3 pop3s
      status                                each service, how it is supervised, the queue
      queue                                 qmail-qstat summary
      list                                  qmail-qread listing
      flush                                 SIGALRM to qmail-send: retry deferred deliveries now
      reload                                SIGHUP to qmail-send: reread locals, virtualdomains, ...
      cdb                                   rebuild tcp rules, users/cdb, morercpthosts.cdb, aliases
      doctor [--no-dns]                     check the installation
    exit: 0 ok, 1 warnings, 2 problems, 100 usage, 111 cannot tell
    """

    /// Entry point of the program.
    public static func main(_ args: [String]) -> Int32 {
        var argv = Array(args.dropFirst())
        var svdir: String? = nil
        var conf: String? = Sys.getenv("QMAILCTL_CONF")
        while let a = argv.first, a.hasPrefix("-"), a.count > 1 {
            argv.removeFirst()
            if a == "--" { break }
            guard (a == "-s" || a == "-c"), let v = argv.first else {
                Sys.warn(usage); return CtlExit.usage
            }
            argv.removeFirst()
            if a == "-s" { svdir = v } else { conf = v }
        }
        guard let cmd = argv.first else { Sys.warn(usage); return CtlExit.usage }
        let rest = Array(argv.dropFirst())
        var config: CtlConfig
        do {
            config = try CtlConfig.load(home: QmailHome.current(), path: conf)
        } catch {
            Sys.warn("qmailctl: cannot read configuration: \(error)")
            return CtlExit.cannotTell
        }
        if let s = svdir { config.svdir = s; config.svdirGiven = true }
        let ctl = QmailCtl(config: config)
        guard Sys.isDirectory(config.home.path) else {
            Sys.warn("qmailctl: no qmail home at \(config.home.path) (set QMAIL_HOME)")
            return CtlExit.cannotTell
        }
        switch cmd {
        case "start": return ctl.start(try? ctl.names(rest))
        case "stop": return ctl.stop(try? ctl.names(rest))
        case "restart":
            let n = try? ctl.names(rest)
            let r = ctl.stop(n)
            if r == CtlExit.usage { return r }
            return ctl.start(n)
        case "status", "stat": return ctl.status()
        case "queue", "qstat": return ctl.queue()
        case "list", "qread": return ctl.list()
        case "flush", "alrm": return ctl.signalSend(SIGALRM, svc: "-a", what: "flush: qmail-send retries deferred deliveries now")
        case "reload", "hup": return ctl.signalSend(SIGHUP, svc: "-h", what: "reload: qmail-send rereads its control files")
        case "cdb": return ctl.cdb()
        case "doctor", "check":
            var d = Doctor(ctl: ctl)
            d.checkDNS = !rest.contains("--no-dns")
            return d.run()
        case "help", "-h", "--help": ctl.out(usage); return CtlExit.ok
        default:
            Sys.warn("qmailctl: unknown command \(cmd)\n" + usage)
            return CtlExit.usage
        }
    }

    struct BadName: Error {}

    func names(_ args: [String]) throws -> [ServiceName] {
        if args.isEmpty { return ServiceName.allCases }
        return try args.map { a in
            guard let s = ServiceName(rawValue: a) else {
                Sys.warn("qmailctl: unknown service \(a) (send smtpd pop3 pop3s)"); throw BadName()
            }
            return s
        }
    }

    func states() -> (states: [ServiceState], unreadable: Int) {
        let scan = ProcScan.all()
        return (ServiceName.allCases.map { services.state($0, procs: scan.entries) }, scan.unreadable)
    }

    // MARK: status

    func status() -> Int32 {
        let (states, unreadable) = states()
        var code = CtlExit.ok
        for s in states {
            let how: String
            switch s.how {
            case .daemontools: how = "daemontools \(s.directory!)"
            case .systemd: how = "systemd \(s.directory!)"
            case .process: how = "process scan of \(home.bin)"
            }
            let word: String
            if s.how != .process { word = s.up ? "up" : "DOWN" }
            else { word = s.up ? "up" : (s.name == .send ? "DOWN" : "not running") }
            out("\(s.name.rawValue.padding(6)) \(word.padding(12)) \(s.detail)  [\(how)]")
            if s.how == .daemontools, let d = s.directory, Sys.exists("\(d)/log/run") {
                let l = Run.capture(["svstat", "\(d)/log"]).output.split(separator: "\n").first.map(String.init) ?? ""
                out("       log: \(l)")
                if !l.contains(": up") { code = max(code, CtlExit.warning) }
            }
            if !s.up {
                if s.name == .send { code = CtlExit.problem }
                else if s.how != .process { code = max(code, CtlExit.warning) }
            }
        }
        if let q = try? QueueReport.stat(root: home.queue) {
            for l in q.split(separator: "\n") { out("queue: " + l) }
        } else {
            out("queue: cannot read \(home.queue)")
        }
        if unreadable > 0 && !states[0].up && states[0].how == .process {
            out("(\(unreadable) processes could not be inspected: run as root to be sure)")
            return CtlExit.cannotTell
        }
        return code
    }

    // MARK: start / stop

    func start(_ which: [ServiceName]?) -> Int32 {
        guard let which = which else { return CtlExit.usage }
        let (states, _) = states()
        var code = CtlExit.ok
        for s in states where which.contains(s.name) {
            if s.how == .daemontools {
                let r = ChildProcess.run(.init(["svc", "-u", s.directory!]))?.shellCode
                if let d = s.directory, Sys.exists("\(d)/log/run") { ChildProcess.run(.init(["svc", "-u", "\(d)/log"])) }
                out("\(s.name.rawValue): svc -u \(s.directory!)" + (r == 0 ? "" : " failed"))
                if r != 0 { code = CtlExit.cannotTell }
            } else if s.how == .systemd {
                let r = ChildProcess.run(.init(["systemctl", "start", s.directory!]))?.shellCode
                out("\(s.name.rawValue): systemctl start \(s.directory!)" + (r == 0 ? "" : " failed"))
                if r != 0 { code = CtlExit.cannotTell }
            } else if s.name == .send {
                if s.up { out("send: already running (pid \(s.pids.map(String.init).joined(separator: " ")))"); continue }
                let rc = "\(home.path)/rc"
                guard Sys.exists(rc) else { out("send: \(rc) missing (run qmail-setup)"); code = CtlExit.cannotTell; continue }
                let pid: pid_t?
                if let log = config.log {
                    pid = Run.detach([rc], log: log)
                } else if Sys.exists(home.bin("splogger")) {
                    pid = Run.detach(["/bin/sh", "-c", "exec \"$0\" 2>&1 | exec \"$1\" qmail", rc, home.bin("splogger")], log: nil)
                } else {
                    pid = Run.detach([rc], log: nil)
                }
                if let p = pid {
                    out("send: started \(rc) (pid \(p), log: \(config.log ?? "splogger/syslog"))")
                } else {
                    out("send: could not start \(rc)"); code = CtlExit.cannotTell
                }
            } else if which.count == 1 {
                out("\(s.name.rawValue): not supervised here; link contrib's service directory into \(config.svdir) or use its systemd unit")
                code = max(code, CtlExit.warning)
            }
        }
        return code
    }

    func stop(_ which: [ServiceName]?) -> Int32 {
        guard let which = which else { return CtlExit.usage }
        let (states, _) = states()
        var code = CtlExit.ok
        for s in states where which.contains(s.name) {
            if s.how == .daemontools {
                let r = ChildProcess.run(.init(["svc", "-d", s.directory!]))?.shellCode
                out("\(s.name.rawValue): svc -d \(s.directory!)" + (r == 0 ? "" : " failed"))
                if r != 0 { code = CtlExit.cannotTell }
            } else if s.how == .systemd {
                let r = ChildProcess.run(.init(["systemctl", "stop", s.directory!]))?.shellCode
                out("\(s.name.rawValue): systemctl stop \(s.directory!)" + (r == 0 ? "" : " failed"))
                if r != 0 { code = CtlExit.cannotTell }
            } else if s.up {
                for p in s.pids { kill(p, SIGTERM) }
                out("\(s.name.rawValue): SIGTERM to pid \(s.pids.map(String.init).joined(separator: " "))")
                if s.name == .send { waitGone(s.pids, seconds: 60) }
            }
        }
        return code
    }

    /// qmail-send finishes its deliveries in progress before exiting.
    func waitGone(_ pids: [pid_t], seconds: Int) {
        for _ in 0..<(seconds * 10) {
            if pids.allSatisfy({ kill($0, 0) != 0 && errno == ESRCH }) { return }
            usleep(100_000)
        }
        out("send: still running after \(seconds) seconds (deliveries in progress)")
    }

    // MARK: signals

    func signalSend(_ sig: Int32, svc: String, what: String) -> Int32 {
        let (states, unreadable) = states()
        let s = states[0]
        if s.how == .daemontools {
            // svc signals the supervised process: qmail-start's exec'd qmail-send
            let r = ChildProcess.run(.init(["svc", svc, s.directory!]))?.shellCode
            out(r == 0 ? "\(what) (svc \(svc) \(s.directory!))" : "svc \(svc) \(s.directory!) failed")
            return r == 0 ? CtlExit.ok : CtlExit.cannotTell
        }
        guard s.up else {
            out("qmail-send is not running" + (unreadable > 0 ? " (or not visible: run as root)" : ""))
            return unreadable > 0 ? CtlExit.cannotTell : CtlExit.problem
        }
        for p in s.pids where kill(p, sig) != 0 {
            out("cannot signal pid \(p): \(Sys.strerror(errno))"); return CtlExit.cannotTell
        }
        out("\(what) (pid \(s.pids.map(String.init).joined(separator: " ")))")
        return CtlExit.ok
    }

    // MARK: queue

    func queue() -> Int32 {
        do { _ = try Sys.writeAll(1, QueueReport.stat(root: home.queue)); return CtlExit.ok }
        catch { Sys.warn("qmailctl: cannot read the queue: \(error)"); return CtlExit.cannotTell }
    }

    func list() -> Int32 {
        do { _ = try Sys.writeAll(1, QueueReport.read(root: home.queue)); return CtlExit.ok }
        catch { Sys.warn("qmailctl: cannot read the queue: \(error)"); return CtlExit.cannotTell }
    }

    // MARK: cdb

    func program(_ name: String) -> String {
        Sys.exists(home.bin(name)) ? home.bin(name) : name
    }

    func cdb() -> Int32 {
        var code = CtlExit.ok
        func step(_ what: String, _ argv: [String], stdin: String? = nil) {
            let r = Run.capture(argv, stdinPath: stdin)
            if r.status == 0 {
                out("\(what): ok")
            } else {
                out("\(what): FAILED (\(r.status.map { "exit \($0)" } ?? "cannot run \(argv[0])"))")
                for l in r.output.split(separator: "\n").prefix(5) { out("  " + l) }
                code = CtlExit.cannotTell
            }
        }
        var did = 0
        for f in config.smtpRules + config.pop3Rules + config.otherRules where Sys.exists(f) {
            step("\(f) -> \(f).cdb", [program("tcprules"), "\(f).cdb", "\(f).tmp"], stdin: f)
            did += 1
        }
        if Sys.exists("\(home.users)/assign") {
            step("users/assign -> users/cdb", [program("qmail-newu")]); did += 1
        }
        if Sys.exists(home.control("morercpthosts")) {
            step("control/morercpthosts -> morercpthosts.cdb", [program("qmail-newmrh")]); did += 1
        }
        if Sys.exists(config.aliases) {
            var argv = [program("newaliases")]
            if config.aliases != "/etc/aliases" { argv += ["-f", config.aliases] }
            step("\(config.aliases) -> \(config.aliases).cdb", argv); did += 1
        }
        if did == 0 { out("cdb: nothing to rebuild") }
        return code
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
