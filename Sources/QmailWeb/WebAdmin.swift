// qmail-webadmin: the web administration, over HTTPS with the certificate
// of POP3S and SMTPS (control/servercert.pem, control/serverkey.pem when
// present; TLS 1.2 at least), on 127.0.0.1 unless control/webadminlisten
// names another address. It runs as whoever runs the v* commands (root,
// or the owner of a single-user home), split in two like qmail-popup and
// qmail-pop3d: this process reads the settings and the key, then forks
// the network process (WebNetwork.swift: TLS and HTTP, as nobody when we
// are root, else as ourselves) and stays as its helper (WebHelper.swift:
// sessions, logins, scopes, and every change through the v* commands'
// library, VHosting's Admin), talking over a socketpair (WebFrame.swift).
//   qmail-webadmin [-l address] [-p port]
// Port: -p, else control/webadminport, else 8443.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailTLS

public enum WebAdmin {
    public static let defaultPort = 8443
    static let usage = "usage: qmail-webadmin [-l address] [-p port]"

    public struct Settings: Sendable {
        public var address = "127.0.0.1"
        public var port = WebAdmin.defaultPort
    }

    /// Options over control files over defaults.
    static func settings(_ args: [String], home: QmailHome) throws -> Settings {
        var s = Settings()
        let control = Control(home: home)
        if let l = try control.line("webadminlisten"), !l.isEmpty { s.address = l.string }
        if let p = try control.line("webadminport"), !p.isEmpty {
            guard let n = Decimal.parse(p), (1...65535).contains(n) else { throw SettingsError("control/webadminport: bad port \(p.string)") }
            s.port = n
        }
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a == "-l" || a == "-p", i + 1 < args.count else { throw SettingsError(usage) }
            let v = args[i + 1]
            if a == "-l" { s.address = v } else {
                guard let n = Decimal.parse(Array(v.utf8)), (0...65535).contains(n) else { throw SettingsError("bad port \(v)") }
                s.port = n
            }
            i += 2
        }
        return s
    }

    struct SettingsError: Error, CustomStringConvertible {
        let description: String
        init(_ s: String) { description = s }
    }

    /// The server's TLS settings from the qmail home's certificate files
    /// (control/tlsserverciphers too, as for qmail-smtpd and qmail-popup).
    static func tls(home: QmailHome) throws -> TLSContext {
        let cert = home.control("servercert.pem")
        do {
            guard let c = try TLSContext.server(controlDir: home.control) else {
                throw SettingsError("no \(cert): make one (contrib/pop3/make-servercert.sh) or install the host's certificate")
            }
            return c
        } catch let e as SettingsError {
            throw e
        } catch {
            throw SettingsError("unable to load \(cert): \(error)")
        }
    }

    /// The listening socket, made before the split (so a port below 1024
    /// works); the helper closes its copy.
    static func listen(_ s: Settings) throws -> Int32 {
        switch TCPServer.listener(host: s.address, port: String(s.port), backlog: 64) {
        case .success(let fd): return fd
        case .failure(let e): throw SettingsError("unable to listen on \(s.address) port \(s.port): \(e.text)")
        }
    }

    /// The account of the network process when we are root: it owns no
    /// file of the home (qmaild would reach its quarantine of mail).
    static let networkAccount = "nobody"

    /// Whom the network process runs as: ourselves, unless we are root.
    static func networkCredentials() throws -> Credentials {
        if geteuid() != 0 { return Credentials(uid: getuid(), gid: getgid(), groups: .unchanged) }
        guard let pw = getpwnam(networkAccount), pw.pointee.pw_uid != 0, pw.pointee.pw_gid != 0 else {
            throw SettingsError("no unprivileged account \(networkAccount) to run the network process as")
        }
        return Credentials(uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid)
    }

    /// What this process goes on to be once start() has forked.
    public enum Role: Sendable {
        case helper(WebHelper)
        case network(WebNetwork)
        case exit(Int32)

        public func run() -> Int32 {
            switch self {
            case .helper(let h): return h.run()
            case .network(let n): return n.run()
            case .exit(let code): return code
            }
        }
    }

    /// Everything up to the split; called while the program has one thread
    /// (fork copies only the caller's).
    /// In the child the privileges go before anything meets the network.
    public static func start(_ args: [String]) -> Role {
        umask(0o022)
        let home = QmailHome.current()
        let settings: Settings
        let tls: TLSContext
        let account: Credentials
        let listener: Int32
        do {
            settings = try WebAdmin.settings(args, home: home)
            tls = try WebAdmin.tls(home: home)
            account = try networkCredentials()
            listener = try WebAdmin.listen(settings)
        } catch let e as SettingsError {
            Sys.warn("qmail-webadmin: fatal: \(e)")
            return .exit(e.description == usage ? QmailExit.permanent : QmailExit.temporary)
        } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            return .exit(QmailExit.temporary)
        }
        guard threads() <= 1 else {
            Sys.warn("qmail-webadmin: fatal: threads started before the network process was forked")
            return .exit(QmailExit.temporary)
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            Sys.warn("qmail-webadmin: fatal: unable to make a socketpair (errno \(errno))")
            return .exit(QmailExit.temporary)
        }
        let root = getpid()
        let pid: pid_t
        do { pid = try ChildProcess.forkChild() } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            return .exit(QmailExit.temporary)
        }
        if pid == 0 {
            Sys.close(pair[0])
            if let e = Privileges.drop(to: account) {
                Sys.warn("qmail-webadmin: fatal: the network process cannot run as uid \(account.uid): \(e)")
                return .exit(QmailExit.temporary)
            }
            return .network(WebNetwork(helper: pair[1], parent: root, settings: settings, listener: listener, tls: tls))
        }
        Sys.close(pair[1])
        Sys.close(listener)
        let signals: Int32
        do { signals = try WebHelper.catchSignals() } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            kill(pid, SIGKILL)
            _ = ChildProcess.wait(pid)
            return .exit(QmailExit.temporary)
        }
        Sys.warn("qmail-webadmin: helper \(root) as uid \(getuid()), network process \(pid) as uid \(account.uid)")
        return .helper(WebHelper(web: WebApp(home: home), fd: pair[0], child: pid, signals: signals))
    }

    /// The threads of this process (/proc/self/task); 0 when unknown.
    static func threads() -> Int {
        guard let d = opendir("/proc/self/task") else { return 0 }
        defer { closedir(d) }
        var n = 0
        while let e = readdir(d) { if e.pointee.d_name.0 != 46 { n += 1 } }
        return n
    }
}
