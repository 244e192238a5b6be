// qmail-popup's I/O: greets, reads commands, and on PASS/APOP/AUTH runs
// the checkpassword program with "user\0password\0timestamp\0" on fd 3.
// Unlike qmail's, it leaves fd 2 alone: under tcpserver that is the log, and
// what checkpassword or qmail-pop3d complain about there (a missing
// vpasswd.cdb, a database down) is for the administrator, not for a client
// that has not logged in. Exits 1 like qmail's. A cluster host (an address
// control/clusterhosts lists) may name the real client with XCLIENT before
// the login (XClient.swift); TCPREMOTEIP and TCPREMOTEPORT change to it.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailPOP3
import QmailTLS

public enum PopupServer {
    public static func main(_ args: [String]) -> Int32 {
        POP3Timeout.install(exitCode: 1)
        // A closed fd 2 would be taken by the next open file or pipe, and
        // the children's complaints would go there.
        if fcntl(2, F_GETFD) < 0 && open("/dev/null", O_WRONLY) != 2 { return 1 }
        let out = ReplyWriter(fd: 1)
        guard args.count >= 2, !args[0].isEmpty else {
            out.put(POP3Reply.usage)
            out.flush()
            return 1
        }
        let hostname = args[0]
        let child = Array(args[1...])
        let home = QmailHome.current()
        let env = { (n: String) -> String? in Sys.getenv(n).flatMap { $0.isEmpty ? nil : $0 } }
        let config = PopupConfig(
            timestamp: Array("<\(getpid()).\(Sys.now())@\(hostname)>".utf8),
            tlsAvailable: Sys.exists(home.control + "/servercert.pem"),
            tlsActive: env("SSL_PROTOCOL") != nil,
            plaintextNeedsTLS: env("TLSREQUIRED").map { $0 != "0" } ?? false,
            xclientTrusted: XClient.trusts(env("TCPREMOTEIP"), control: Control(home: home)))
        let failDelay = env("POP3FAILDELAY").flatMap { UInt32($0) } ?? 2
        let session = PopupSession(config: config)
        let input = CommandReader(fd: 0, exact: true)
        out.put(session.greeting)
        if !out.flush() { return 1 }
        while true {
            let actions: [PopupAction]
            switch input.next() {
            case .eof: return 1
            case .tooLong: actions = session.tooLong()
            case .line(let l): actions = session.handle(l)
            }
            for a in actions {
                switch a {
                case .reply(let r):
                    out.put(r)
                case .quit:
                    out.flush()
                    return 1
                case .startTLS:
                    let ctx: TLSContext?
                    do { ctx = try TLSContext.server(controlDir: home.control) } catch {
                        Sys.warn("qmail-popup: \(error)")
                        ctx = nil
                    }
                    guard let ctx else {
                        out.buffer = Array(POP3Reply.tlsUnavailable.utf8)
                        out.flush()
                        continue
                    }
                    if !out.flush() { return 1 }
                    do {
                        let tls = try TLSConnection(context: ctx, readFD: 0, writeFD: 1)
                        // The session goes on in the child, on plain fds 0/1.
                        if case .relayEnded(let code) = try tls.relayStdio() { return code }
                    } catch {
                        return 1
                    }
                    session.tlsStarted()
                case .xclient(let arg):
                    guard let client = XClient.parse(arg) else {
                        out.put(POP3Reply.xclientMalformed)
                        continue
                    }
                    Sys.warn("qmail-popup: XCLIENT from \(env("TCPREMOTEIP") ?? "unknown"): remote=\(client.address)"
                             + (client.port.map { " port=\($0)" } ?? ""))
                    XClient.apply(client)
                    session.clientChanged()
                    out.put(POP3Reply.xclientTaken)
                case .login(let user, let password):
                    if !out.flush() { return 1 }
                    let limiter = LoginLimiter(home: home, remote: env("TCPREMOTEIP"))
                    let verdict = !limiter.admit(user: user) ? .limited
                        : runCheckpassword(child, user: user, password: password, timestamp: config.timestamp)
                    LoginLog.write(fd: 2, program: "qmail-popup", result: verdict.logName, user: user)
                    limiter.settle(verdict.checkResult, user: user)
                    switch verdict {
                    case .limited:
                        out.put(POP3Reply.loginLimited)
                    case .crashed:
                        out.put(POP3Reply.childCrashed)
                    case .temporary:
                        out.put(POP3Reply.loginTemporary)
                    case .rejected:
                        sleep(failDelay)
                        out.put(POP3Reply.loginFailed)
                    case .done:
                        break
                    }
                    out.flush()
                    return 1
                }
            }
            if !out.flush() { return 1 }
        }
    }

    enum Verdict {
        case done, rejected, temporary, crashed, limited
        var logName: String {
            switch self {
            case .done: return "ok"
            case .rejected: return "failed"
            case .temporary: return "temporary"
            case .crashed: return "crashed"
            case .limited: return "limited"
            }
        }
        /// For the failed-login limits: a crash is no wrong password.
        var checkResult: CheckResult {
            switch self {
            case .done: return .ok
            case .rejected: return .rejected
            case .temporary, .crashed: return .temporary
            case .limited: return .limited
            }
        }
    }

    static func runCheckpassword(_ argv: [String], user: [UInt8], password: [UInt8], timestamp: [UInt8]) -> Verdict {
        alarm(0)
        // The checkpassword program (and the qmail-pop3d it runs) gets our
        // connection on 0 and 1, and no time limit from us.
        switch CheckpasswordClient.run(argv, fd3: user + [0] + password + [0] + timestamp + [0], quiet: false,
                                       searchPath: true, timeout: nil) {
        case .notStarted: return .rejected  // qmail-popup's child _exit(1)s when exec fails
        case .lost: return .temporary
        case .ended(.signaled): return .crashed
        case .ended(.exited(0)): return .done
        case .ended(.exited(QmailExit.temporary)): return .temporary
        case .ended(.exited): return .rejected
        }
    }
}
