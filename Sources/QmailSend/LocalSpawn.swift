// qmail-lspawn's half of the spawn skeleton: finds the user for a local
// address (HOME/users/cdb as qmail-newu writes it, else HOME/bin/qmail-getpw)
// and runs HOME/bin/qmail-local as that user:
//   qmail-local -- user home local dash ext domain sender defaultdelivery
// Its exit code and output become the report (qmail's qlx codes).
//
// When users/cdb names the user, the delivery goes instead to a delivery
// worker for the user's uid and gid (qmail-local -W, started once as that
// user; see DeliveryWorkers), whose reused runner processes run it with
// the same descriptors and operands: this saves the fork of qmail-lspawn,
// the exec of qmail-local and, mostly, any fork at all per delivery. qmail-lspawn itself runs no delivery
// code. Other users (qmail-getpw) and any trouble with a worker take the
// fork and exec as before.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct UserEntry: Equatable {
    public var user: [UInt8]
    public var uid: uid_t
    public var gid: gid_t
    public var home: [UInt8]
    public var dash: [UInt8]
    public var ext: [UInt8]

    /// Parses "user\0uid\0gid\0home\0dash\0ext" with or without a final
    /// NUL (qmail-getpw's output; users/cdb's value, with the wildcard rest
    /// appended): ext runs to the next NUL or the end, and may be empty.
    public static func parse(_ b: [UInt8]) -> UserEntry? {
        let f = b.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
        guard f.count >= 6, let u = Decimal.parse(f[1]), let g = Decimal.parse(f[2]),
              u <= Int(UInt32.max), g <= Int(UInt32.max) else { return nil }
        return UserEntry(user: f[0], uid: uid_t(u), gid: gid_t(g), home: f[3], dash: f[4], ext: f[5])
    }
}

public struct LocalSpawn: SpawnDriver {
    public let home: QmailHome
    public let defaultDelivery: [UInt8]
    /// Switch to the user's uid/gid (root in a multi-user installation).
    public let switchUser: Bool
    let workers: DeliveryWorkers

    public init(home: QmailHome, defaultDelivery: [UInt8], ids: QmailIds) {
        self.home = home
        self.defaultDelivery = defaultDelivery
        self.switchUser = geteuid() == 0 && !ids.singleUser
        self.workers = DeliveryWorkers(program: home.bin("qmail-local"))
    }

    /// The user for `local`, or a qlx-style exit code.
    func lookup(_ local: [UInt8]) -> Result<UserEntry, ExitCode> {
        do {
            if let v = try UsersCdb.lookup(path: home.users + "/cdb", local: local) {
                guard let e = UserEntry.parse(v) else { return .failure(ExitCode(QLX.cdb)) }
                return .success(e)
            }
        } catch { return .failure(ExitCode(QLX.cdb)) }
        let getpw = home.bin("qmail-getpw")
        let null = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { Glibc.close(null) } }
        guard null >= 0, let (st, out) = try? ChildProcess.capture(.init(program: getpw, argv: [Array("qmail-getpw".utf8), local],
                                                                         fds: [.dup(null, to: 0)]), limit: 8192) else {
            return .failure(ExitCode(QLX.execPw))
        }
        switch st {
        case .signaled: return .failure(ExitCode(QLX.sys))
        case .exited(0):
            guard let e = UserEntry.parse(out) else { return .failure(ExitCode(QLX.sys)) }
            return .success(e)
        case .exited(let c): return .failure(ExitCode(c))
        }
    }

    public struct ExitCode: Error { public let code: Int32; init(_ c: Int32) { code = c } }

    /// Forks the delivery child, which (as in qmail) looks the user up
    /// itself, so that a slow passwd lookup holds up only its own delivery.
    public func start(message: Int32, output: Int32, sender: [UInt8], recipient: [UInt8]) -> Result<pid_t, SpawnReport> {
        let at = recipient.lastIndex(of: Ascii.at) ?? recipient.count
        let local = Array(recipient[0..<at])
        let domain = at < recipient.count ? Array(recipient[(at + 1)...]) : []
        if let id = startInWorker(message: message, output: output, local: local, domain: domain, sender: sender) { return id }
        let path = home.bin("qmail-local")
        guard let pid = try? ChildProcess.forkRunning({
            deliveryChild(path: path, message: message, output: output, local: local, domain: domain, sender: sender)
        }) else { return .failure(SpawnReport("ZUnable to fork qmail-local. (#4.3.0)\n")) }
        return .success(pid)
    }

    /// Hands the delivery to the worker for the user's ids when users/cdb
    /// names the user; nil when it takes the fork and exec instead.
    func startInWorker(message: Int32, output: Int32, local: [UInt8], domain: [UInt8], sender: [UInt8]) -> Result<pid_t, SpawnReport>? {
        guard let v = try? UsersCdb.lookup(path: home.users + "/cdb", local: local), let entry = UserEntry.parse(v) else { return nil }
        var creds: Credentials? = nil
        if switchUser {
            if entry.uid == 0 { return .failure(Self.report(status: .exited(QLX.root), output: [])) }
            creds = Credentials(uid: entry.uid, gid: entry.gid)
        }
        let operands = [entry.user, entry.home, local, entry.dash, entry.ext, domain, sender, defaultDelivery]
        return workers.start(credentials: creds, operands: operands, message: message, output: output).map { .success($0) }
    }

    public func watched() -> [Int32] { workers.statusPipes }
    public func finished() -> [HelperEnd] { workers.collect() }

    /// The forked child: message on 0, report pipe on 1 and 2 (so that
    /// qmail-getpw's complaints reach the report), user lookup, then
    /// qmail-local as that user. Returns only on failure, the child's exit
    /// code (qlx).
    func deliveryChild(path: String, message: Int32, output: Int32, local: [UInt8], domain: [UInt8], sender: [UInt8]) -> Int32 {
        signal(SIGCHLD, SIG_DFL)
        if ChildProcess.arrange([.dup(message, to: 0), .dup(output, to: 1), .dup(output, to: 2)]) != nil { return QLX.sys }
        let entry: UserEntry
        switch lookup(local) {
        case .success(let e): entry = e
        case .failure(let c): return c.code
        }
        var creds: Credentials? = nil
        if switchUser {
            if entry.uid == 0 { return QLX.root }
            creds = Credentials(uid: entry.uid, gid: entry.gid)
        }
        let argv = [Array("qmail-local".utf8), Array("--".utf8), entry.user, entry.home, local,
                    entry.dash, entry.ext, domain, sender, defaultDelivery]
        let failed = ChildProcess.exec(.init(program: path, argv: argv, credentials: creds))
        // A qmail-local that will not run is an installation problem, never
        // the recipient's: defer, do not bounce.
        return failed.step == .credentials ? QmailExit.temporary : QLX.execSoft
    }

    public func report(status: ChildStatus, output: [UInt8]) -> SpawnReport {
        Self.report(status: status, output: output)
    }

    public static func report(status: ChildStatus, output: [UInt8]) -> SpawnReport {
        guard case .exited(let code) = status else { return SpawnReport("Zqmail-local crashed.\n") }
        let fixed: String?
        switch code {
        case QLX.cdb: fixed = "ZTrouble reading users/cdb in qmail-lspawn.\n"
        case QLX.noMem: fixed = "ZOut of memory in qmail-lspawn.\n"
        case QLX.sys: fixed = "ZTemporary failure in qmail-lspawn.\n"
        case QLX.noAlias: fixed = "ZUnable to find alias user!\n"
        case QLX.root: fixed = "ZNot allowed to perform deliveries as root.\n"
        case QLX.usage: fixed = "ZInternal qmail-lspawn bug.\n"
        case QLX.bug: fixed = "ZInternal qmail-lspawn bug.\n"
        case QLX.nfs: fixed = "ZNFS failure in qmail-local.\n"
        case QLX.execHard: fixed = "DUnable to run qmail-local.\n"
        case QLX.execSoft: fixed = "ZUnable to run qmail-local.\n"
        case QLX.execPw: fixed = "ZUnable to run qmail-getpw.\n"
        default: fixed = nil
        }
        if let f = fixed { return SpawnReport(f) }
        let letter: UInt8
        switch code {
        case 0: letter = UInt8(ascii: "K")
        case QmailExit.temporary, 71, 74, 75: letter = UInt8(ascii: "Z")
        default: letter = UInt8(ascii: "D")
        }
        var text = Array(output.prefix { $0 != 0 })
        if text.isEmpty && code == QmailExit.permanent { text = Array("Sorry, no mailbox here by that name. (#5.1.1)\n".utf8) }
        return SpawnReport([letter] + text)
    }
}

public enum LocalSpawnMain {
    /// qmail-lspawn defaultdelivery
    public static func main(_ args: [[UInt8]]) -> Int32 {
        guard args.count >= 2 else { Sys.warn("usage: qmail-lspawn defaultdelivery"); return QmailExit.permanent }
        let home = QmailHome.current()
        guard chdir(home.path) == 0 else { return QmailExit.temporary }
        let ids: QmailIds
        do { ids = try QmailIds.load(home: home) } catch {
            Sys.warn("qmail-lspawn: fatal: \(error)"); return QmailExit.temporary
        }
        let d = LocalSpawn(home: home, defaultDelivery: args[1], ids: ids)
        return SpawnServer.main(driver: d, messageDirectory: home.queue + "/mess")
    }
}
