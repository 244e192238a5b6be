// qmail-smtpd-auth: SMTP AUTH without giving qmail-smtpd the password
// database.
//
// qmail-smtpd runs as qmaild, but the checkpassword programs need root (the
// system one reads /etc/shadow; the file backend's vpasswd.cdb belongs to
// each domain's owner). qmail-smtpd-auth, started as root by tcpserver for
// each connection, keeps one end of a socket pair, starts qmail-smtpd on the
// other as the given uid and gid (SMTPAUTHFD names its descriptor), and
// answers its AUTH questions by running the checkpassword program, as root,
// with the login on descriptor 3, the way qmail-smtpd itself would.
//
// The privileged side trusts nothing qmail-smtpd says beyond one login per
// question, and keeps the limits itself, so a qmail-smtpd taken over by a
// client gains no more guesses than an honest one gives: it answers until
// the first good login or the SMTPAUTHFAILDELAY-delayed third refusal
// (MAXAUTHFAILURES), then stops; the checkpassword program is always the
// one on its own command line.
//
// Protocol on the socket: qmail-smtpd sends a netstring holding
// "user\0secret\0stamp\0"; the answer is one byte, '0' good login, '1'
// refused, '2' temporary failure, '3' refused unchecked by the failed-login
// limits (LoginLimit.swift, checked here on the root side). End of input
// means temporary failure.
#if canImport(Glibc)
import Glibc
#endif

public enum AuthSeparation {
    public static let usage = "qmail-smtpd-auth: usage: qmail-smtpd-auth -u uid -g gid checkpassword [args ...] -- qmail-smtpd [args ...]"
    static let requestLimit = 4096
    static let maxRequests = 10

    struct Options {
        var uid: uid_t
        var gid: gid_t
        var checkpassword: [String]
        var smtpd: [String]
    }

    static func parse(_ argv: [String]) -> Options? {
        var uid: uid_t?
        var gid: gid_t?
        var i = 1
        while i + 1 < argv.count, argv[i] == "-u" || argv[i] == "-g" {
            guard let n = Decimal.parse(Array(argv[i + 1].utf8)), n >= 0, n < Int(UInt32.max) else { return nil }
            if argv[i] == "-u" { uid = uid_t(n) } else { gid = gid_t(n) }
            i += 2
        }
        guard let uid, let gid, let sep = argv[i...].firstIndex(of: "--") else { return nil }
        let check = Array(argv[i..<sep])
        let smtpd = Array(argv[(sep + 1)...])
        guard !check.isEmpty, !smtpd.isEmpty, check[0].hasPrefix("/"), smtpd[0].hasPrefix("/") else { return nil }
        return Options(uid: uid, gid: gid, checkpassword: check, smtpd: smtpd)
    }

    public static func main(_ argv: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard let o = parse(argv) else {
            Sys.warn(usage)
            return QmailExit.permanent
        }
        if o.uid == 0 {
            Sys.warn("qmail-smtpd-auth: fatal: refusing to run qmail-smtpd as root")
            return QmailExit.permanent
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            Sys.warn("qmail-smtpd-auth: fatal: unable to create socket pair: \(Sys.strerror(errno))")
            return QmailExit.temporary
        }
        let (mine, theirs) = (pair[0], pair[1])
        let pid: pid_t
        do { pid = try startUnprivileged(o, fd: theirs) } catch {
            close(theirs)
            Sys.warn("qmail-smtpd-auth: fatal: \(error)")
            return QmailExit.temporary
        }
        close(theirs)
        // The connection is qmail-smtpd's alone: the root side lets go of it.
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            _ = dup2(null, 0)
            _ = dup2(null, 1)
            if null > 1 { close(null) }
        }
        var delay: UInt32 = 2
        if let v = Sys.getenv("SMTPAUTHFAILDELAY"), let n = Decimal.parse(Array(v.utf8)), n <= 60 { delay = UInt32(n) }
        var maxFailures = 3
        if let v = Sys.getenv("MAXAUTHFAILURES"), let n = Decimal.parse(Array(v.utf8)), n > 0, n <= 10 { maxFailures = n }
        let limiter = LoginLimiter(home: QmailHome.current(), remote: Sys.getenv("TCPREMOTEIP"))
        serve(fd: mine, maxFailures: maxFailures, delay: delay) {
            let r = !limiter.admit(user: $0) ? .limited
                : CheckpasswordClient.checkpassword(o.checkpassword, user: $0, secret: $1, stamp: $2)
            limiter.settle(r, user: $0)
            LoginLog.write(program: "qmail-smtpd-auth", result: LoginLog.result(r), user: $0)
            return r
        }
        close(mine)
        return ChildProcess.wait(pid)?.shellCode ?? QmailExit.temporary
    }

    /// Starts qmail-smtpd as o.uid/o.gid with `fd` open as SMTPAUTHFD.
    static func startUnprivileged(_ o: Options, fd: Int32) throws(ChildProcess.Failure) -> pid_t {
        try ChildProcess.spawn(.init(program: o.smtpd[0], argv: o.smtpd.map { Array($0.utf8) },
                                     environment: ChildProcess.environment(changing: ["SMTPAUTHFD": String(fd)]),
                                     fds: [.dup(fd, to: fd)], credentials: Credentials(uid: o.uid, gid: o.gid)))
    }

    /// Answers AUTH questions on `fd` until end of input, a malformed
    /// question, the first good login, `maxFailures` refusals or
    /// maxRequests questions. A refusal is answered after `delay` seconds.
    static func serve(fd: Int32, maxFailures: Int, delay: UInt32,
                      check: ([UInt8], [UInt8], [UInt8]) -> CheckResult) {
        let input = ByteReader(fd: fd, capacity: 1024)
        var failures = 0
        for _ in 0..<maxRequests {
            guard let q = readQuestion(input), let (user, secret, stamp) = fields(q) else { return }
            let r = check(user, secret, stamp)
            if r == .rejected {
                failures += 1
                if delay > 0 { sleep(delay) }
            }
            var answer: UInt8 = r == .ok ? 48 : r == .rejected ? 49 : r == .limited ? 51 : 50
            if write(fd, &answer, 1) != 1 { return }
            if r == .ok || failures >= maxFailures { return }
        }
    }

    /// One netstring of at most requestLimit bytes; nil on anything else.
    static func readQuestion(_ input: ByteReader) -> [UInt8]? {
        var n = 0
        var digits = 0
        while true {
            guard let c = try? input.byte() else { return nil }
            if c == Ascii.colon { if digits == 0 { return nil }; break }
            guard Ascii.isDigit(c), digits < 5 else { return nil }
            n = n * 10 + Int(c - 48)
            digits += 1
        }
        guard n <= requestLimit, let body = try? input.bytes(count: n), (try? input.byte()) == UInt8(ascii: ",") else { return nil }
        return body
    }

    /// "user\0secret\0stamp\0", exactly.
    static func fields(_ q: [UInt8]) -> ([UInt8], [UInt8], [UInt8])? {
        guard q.last == 0 else { return nil }
        let parts = q.dropLast().split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        return (Array(parts[0]), Array(parts[1]), Array(parts[2]))
    }

    /// qmail-smtpd's side: one question on SMTPAUTHFD.
    public static func ask(fd: Int32, user: [UInt8], secret: [UInt8], stamp: [UInt8]) -> CheckResult {
        let body = user + [0] + secret + [0] + stamp + [0]
        let q = Array("\(body.count):".utf8) + body + [UInt8(ascii: ",")]
        // (A longer login would only be refused as malformed.)
        guard body.count <= requestLimit, (try? Sys.writeAll(fd, q)) != nil else { return .temporary }
        var b: UInt8 = 0
        while true {
            let n = read(fd, &b, 1)
            if n == 1 { break }
            if n < 0 && errno == EINTR { continue }
            return .temporary
        }
        switch b {
        case 48: return .ok
        case 49: return .rejected
        case 51: return .limited
        default: return .temporary
        }
    }
}
