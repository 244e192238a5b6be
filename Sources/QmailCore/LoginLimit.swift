// Limits on failed logins, shared by every login program of one home
// (qmail-popup, qmail-smtpd-auth) and across their connections.
//
// Each connection is its own short-lived process, and a client that hangs
// up after one wrong password skips the per-try delay, so the count has to
// live on disk: HOME/authfail/failures, a RecordTable of (key hash,
// deadline, count) records that never grows past its slots.
//
// Policy, control/authfaillimit, lines "ip N S" and "user N S": after N
// failures within S seconds of the first, further logins from that address
// (IPv6: its /64) or for that account are refused, without a password
// check, until the S seconds are over. N = 0 turns that limit off.
// control/authfailexempt lists addresses (exact) or prefixes (ending in '.'
// or ':') that are neither limited nor counted.
//
// An attempt is counted when admitted and given back (settle) if it was
// not a wrong password; for POP3 that is when the session ends, since
// checkpassword runs qmail-pop3d: until then an open session from an
// address counts against it.
#if canImport(Glibc)
import Glibc
#endif

public struct LoginLimitPolicy: Equatable {
    public struct Rule: Equatable {
        public var count: Int
        public var seconds: Int
    }

    /// An address gets 10 wrong passwords per 10 minutes: a mistyped
    /// password or a client holding an old one stays far below it, and a
    /// guesser gets one try a minute instead of twenty a second.
    public var perIP = Rule(count: 10, seconds: 600)
    /// An account gets 30 per hour from all addresses together: above what
    /// one person's devices with a stale password do, and it caps guessing
    /// spread over many addresses. (It also lets anyone lock an account out
    /// for up to an hour; "user 0 0" turns it off.)
    public var perUser = Rule(count: 30, seconds: 3600)
    public var exempt: [[UInt8]] = []

    public init() {}

    static let maxSeconds = 7 * 86400

    /// Lines of authfaillimit; a malformed line is ignored.
    public mutating func apply(limits lines: [[UInt8]]) {
        for l in lines {
            let f = l.split(whereSeparator: { $0 == Ascii.space || $0 == Ascii.tab })
            guard f.count == 3, let n = Decimal.parse(Array(f[1])), let s = Decimal.parse(Array(f[2])),
                  n < 1_000_000, s <= LoginLimitPolicy.maxSeconds else { continue }
            switch String(decoding: f[0], as: UTF8.self) {
            case "ip": perIP = Rule(count: n, seconds: s)
            case "user": perUser = Rule(count: n, seconds: s)
            default: continue
            }
        }
    }

    public static func load(_ control: Control) -> LoginLimitPolicy {
        var p = LoginLimitPolicy()
        p.apply(limits: (try? control.list("authfaillimit")) ?? [])
        p.exempt = (try? control.list("authfailexempt")) ?? []
        return p
    }

    public func isExempt(_ ip: String) -> Bool {
        let a = Array(ip.utf8)
        return exempt.contains { e in
            a == e || ((e.last == Ascii.dot || e.last == Ascii.colon) && a.starts(with: e))
        }
    }
}

public final class LoginLimiter {
    let table: RecordTable
    let policy: LoginLimitPolicy
    let ipKey: UInt64?
    let exempt: Bool
    let now: () -> Int

    /// `remote` is TCPREMOTEIP; without one, only the account is limited.
    public init(home: QmailHome, remote: String?, policy: LoginLimitPolicy? = nil, now: @escaping () -> Int = Sys.now) {
        self.table = RecordTable(directory: home.path + "/authfail", file: "failures", slots: 4096,
                                 maxAhead: LoginLimitPolicy.maxSeconds)
        let p = policy ?? LoginLimitPolicy.load(Control(home: home))
        self.policy = p
        self.now = now
        let ip = remote ?? ""
        exempt = !ip.isEmpty && p.isExempt(ip)
        ipKey = ip.isEmpty || exempt ? nil : RecordTable.hash(Array("ip\0".utf8) + LoginLimiter.addressKey(ip))
    }

    /// The /64 of an IPv6 address (one subscriber's usual share), the
    /// address itself otherwise.
    static func addressKey(_ ip: String) -> [UInt8] {
        var v6 = in6_addr()
        if inet_pton(AF_INET6, ip, &v6) == 1 {
            let b = withUnsafeBytes(of: v6) { Array($0) }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
                return Array("\(b[12]).\(b[13]).\(b[14]).\(b[15])".utf8)
            }
            return Array(b[0..<8]) + [UInt8(ascii: "/")]
        }
        return Array(ip.utf8)
    }

    static func userKey(_ user: [UInt8]) -> UInt64 {
        RecordTable.hash(Array("user\0".utf8) + Array(user.prefix(1024)).lowercasedASCII())
    }

    /// Whether a login for `user` may be checked now: refused while its
    /// address or its account has its limit of recorded failures.
    ///
    /// Only refusals are counted, when they are known. Counting attempts
    /// in progress would also count good logins whose verdict is not known
    /// yet (a POP3 login's checkpassword runs qmail-pop3d, so its verdict
    /// comes at the end of the session): every address that holds several
    /// sessions at once (webmail, an office behind one address) would be
    /// refused. The price: a burst of parallel guesses from a fresh address
    /// is checked before its first refusal is recorded, so a burst gets up
    /// to the listener's concurrency (tcpserver -c) checks, once per window.
    public func admit(user: [UInt8]) -> Bool {
        if exempt { return true }
        return withTable { fd in
            let t = now()
            if let k = ipKey, policy.perIP.count > 0, let r = table.find(fd, k, now: t).record,
               r.value >= policy.perIP.count { return false }
            if policy.perUser.count > 0, let r = table.find(fd, LoginLimiter.userKey(user), now: t).record,
               r.value >= policy.perUser.count { return false }
            return true
        } ?? true
    }

    /// After the check of an admitted attempt: a refused password is
    /// counted against its address and its account; a good one clears its
    /// account's failures (never its address's: one good account must not
    /// buy more guesses at others); a temporary failure counts for nothing.
    public func settle(_ result: CheckResult, user: [UInt8]) {
        if exempt { return }
        let u = LoginLimiter.userKey(user)
        switch result {
        case .rejected:
            _ = withTable { fd -> Bool in
                let t = now()
                if let k = ipKey, policy.perIP.count > 0 { bump(fd, k, policy.perIP.seconds, t) }
                if policy.perUser.count > 0 { bump(fd, u, policy.perUser.seconds, t) }
                return true
            }
        case .ok:
            _ = withTable { fd -> Bool in
                let (slot, r) = table.find(fd, u, now: now())
                if r != nil { table.write(fd, slot, RecordTable.Record()) }
                return true
            }
        case .temporary, .limited:
            return
        }
    }

    private var warned = false

    /// Runs `body` with the table open and locked; nil (no limit) when the
    /// table cannot be used, with one warning in the log: a broken limiter
    /// must not lock everyone out.
    private func withTable<T>(_ body: (Int32) -> T) -> T? {
        table.withLocked(body) ?? complain()
    }

    private func complain<T>() -> T? {
        if !warned {
            warned = true
            Sys.warn("login limits: unable to use \(table.path): \(Sys.strerror(errno)); not limiting")
        }
        return nil
    }

    private func bump(_ fd: Int32, _ key: UInt64, _ seconds: Int, _ t: Int) {
        let (slot, found) = table.find(fd, key, now: t)
        var r = found ?? RecordTable.Record(key: key, deadline: t + seconds, value: 0)
        r.value = min(r.value + 1, Int(UInt32.max))
        table.write(fd, slot, r)
    }
}
