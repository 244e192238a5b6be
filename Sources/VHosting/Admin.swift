// The admin commands, shaped like vpopmail's: the table of commands, the
// entry point and what the commands share; each command is in its own
// Admin+V<Command>.swift (vadddomain in Admin+VAddDomain.swift). Run as
// root (or as the owner of a single-user home). Every argument is checked
// before anything is written; every change holds the admin lock and
// replaces files atomically; a domain change reruns qmail-newu/qmail-newmrh
// and HUPs qmail-send.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory
import VDelivery

public struct Admin {
    public let home: QmailHome
    let store: FileStore
    let files: QmailFiles
    /// Mailboxes' filter policies in LDAP or MySQL: given by
    /// vfilterpolicy-ldap/-mysql (vfilterpolicy itself links neither).
    var policyStore: FilterPolicyStore? = nil
    /// Mailboxes' home hosts in LDAP or MySQL, for vmoveuser-ldap/-mysql:
    /// the directory as this host reads it (false) or its writer (true).
    var directory: ((Bool) -> HomeHostStore)? = nil

    public init(home: QmailHome) {
        self.home = home
        self.store = FileStore(home: home)
        self.files = QmailFiles(home: home)
    }

    public static let commands: [String: (Admin, [String]) throws -> [String]] = [
        "vadddomain": { try $0.addDomain($1) },
        "vdeldomain": { try $0.deleteDomain($1) },
        "vaddaliasdomain": { try $0.addAliasDomain($1) },
        "vadduser": { try $0.addUser($1) },
        "vdeluser": { try $0.deleteUser($1) },
        "vpasswd": { try $0.changePassword($1) },
        "vsetuserquota": { try $0.setQuota($1) },
        "valias": { try $0.alias($1) },
        "vuserinfo": { try $0.userInfo($1) },
        "vdominfo": { try $0.domainInfo($1) },
        "vmoddomlimits": { try $0.modifyDomainLimits($1) },
        "vmoddomain": { try $0.modifyDomain($1) },
        "vconvert": { try $0.convert($1) },
        "vmoduser": { try $0.modifyUserFlags($1) },
        "vmoveuser": { try $0.moveUser($1) },
        "vmkpasswd": { try $0.rebuildDomain($1) },
        "vdkim": { try $0.dkim($1) },
        "vfilterpolicy": { try $0.filterPolicy($1) },
        "vvacation": { try $0.vacationCommand($1) },
    ]

    /// Runs one command; returns its exit code (0 done, 1 refused, 111
    /// system failure). Notes go to stderr.
    public static func main(_ command: String, _ args: [String],
                            policyStore: ((QmailHome) -> FilterPolicyStore)? = nil,
                            directory: ((QmailHome, Bool) -> HomeHostStore)? = nil) -> Int32 {
        umask(0o022)
        guard let body = commands[command] else {
            Sys.warn("\(command): unknown command")
            return 1
        }
        do {
            var admin = Admin(home: QmailHome.current())
            admin.policyStore = policyStore?(admin.home)
            let home = admin.home
            admin.directory = directory.map { make in { make(home, $0) } }
            for note in try body(admin, args) { Sys.warn("\(command): \(note)") }
            return 0
        } catch {
            let e = AdminError.from(error)
            Sys.warn("\(command): \(e)")
            return e.exitCode
        }
    }

    // MARK: lookups shared by the commands

    /// The uid/gid mailboxes of a new domain run as: -u user, or -i/-g,
    /// else control/vhostuser, else (in a single-user home) the home's
    /// owner named in HOME/ids, else the account "vpopmail", else the
    /// owner of the qmail home. Never root, and never a uid this process
    /// cannot give the domain's files to (only root can give them away).
    func hostIds(_ o: Options) throws -> (uid_t, gid_t) {
        var ids: (uid_t, gid_t)?
        if let u = o.values["u"] {
            guard let p = Admin.account(u) else { throw AdminError.refused("no such account: \(u)") }
            ids = p
        } else if let u = o.values["i"] {
            guard let uid = Decimal.parse(Array(u.utf8)), uid <= Int(UInt32.max) else { throw AdminError.refused("bad uid \(u)") }
            let g = o.values["g"] ?? u
            guard let gid = Decimal.parse(Array(g.utf8)), gid <= Int(UInt32.max) else { throw AdminError.refused("bad gid \(g)") }
            ids = (uid_t(uid), gid_t(gid))
        } else if let name = try Control(home: home).line("vhostuser"), !name.isEmpty {
            guard let p = Admin.account(name.string) else { throw AdminError.refused("control/vhostuser names no account: \(name.string)") }
            ids = p
        } else if let owner = singleUserOwner() {
            // every program of this home runs as its owner: a system account
            // named vpopmail has nothing to do with it
            ids = owner
        } else if let p = Admin.account("vpopmail") {
            ids = p
        } else if let st = try? Sys.stat(home.path) {
            ids = (st.st_uid, st.st_gid)
        }
        guard let r = ids, r.0 != 0 else {
            throw AdminError.refused("mailboxes never run as root: name their account with -u USER (or control/vhostuser)")
        }
        if geteuid() != 0 && r.0 != geteuid() {
            throw AdminError.refused("uid \(r.0) would own the domain's files, but only root can give files away: "
                                     + "run this as root, or as uid \(r.0)")
        }
        return r
    }

    /// The one account of a single-user home (HOME/ids mode=single), nil
    /// in a multi-user home, a home run by root (mailboxes never are), or
    /// when HOME/ids cannot be read.
    func singleUserOwner() -> (uid_t, gid_t)? {
        guard Sys.exists(home.path + "/ids"), let ids = try? QmailIds.load(home: home), ids.singleUser,
              let u = ids.uid("qmailq"), u != 0, let g = ids.gid("qmail") else { return nil }
        return (u, g)
    }

    static func account(_ name: String) -> (uid_t, gid_t)? {
        accountHome(name).map { ($0.uid, $0.gid) }
    }

    /// A system account's uid, gid and home directory (getpwnam).
    static func accountHome(_ name: String) -> (uid: uid_t, gid: gid_t, home: String)? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buf = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &pw, &buf, buf.count, &result) == 0, result != nil, let dir = pw.pw_dir else { return nil }
        return (pw.pw_uid, pw.pw_gid, String(cString: dir))
    }

    /// The hosted domain (an alias resolves to its real domain).
    func hostedDomain(_ name: [UInt8]) throws -> VDomain {
        let all = try store.loadDomains()
        guard let d = all.first(where: { $0.name == name }) else {
            throw AdminError.refused("domain \(name.string) is not hosted here")
        }
        if d.isAlias {
            guard let real = all.first(where: { $0.name == d.real }) else {
                throw AdminError.system("alias domain \(name.string) points at missing \(d.real.string)")
            }
            return real
        }
        return d
    }

    func parseQuota(_ text: String?) throws -> Quota {
        guard let t = text else { return .unlimited }
        guard let q = Quota.parse(Array(t.utf8)) else { throw AdminError.refused("bad quota \(t) (want bytes, NNNS,MMMC, 10M or NOQUOTA)") }
        return q
    }

    func hash(_ password: [UInt8], _ o: Options) throws -> [UInt8] {
        var scheme = PasswordHash.defaultScheme
        if let s = o.values["s"] {
            guard let sc = PasswordHash.Scheme(name: s) else { throw AdminError.refused("unknown hash scheme \(s) (yescrypt, sha512, sha256, bcrypt, md5)") }
            scheme = sc
        }
        do { return try PasswordHash.make(password, scheme: scheme) } catch { throw AdminError.system("\(error)") }
    }

    /// The .qmail-default that hands the domain to vdelivermail.
    func dotQmailDefault(_ action: [UInt8]) -> [UInt8] {
        Array("| \(home.bin("vdelivermail")) '' ".utf8) + action + [Ascii.lf]
    }

    /// The unknown-user action of a domain, read back from .qmail-default.
    func unknownAction(_ d: VDomain) -> String {
        guard let data = try? FileIO.read(d.dir + "/.qmail-default"), let line = Control.parseList(data).first else { return "(no .qmail-default)" }
        let s = line.string
        guard s.contains("vdelivermail"), let last = s.split(separator: " ").last else { return "(not vdelivermail: \(s))" }
        return last.replacingQuotes()
    }

    /// -b (bounce, the default), -x (delete), -e target (catch-all).
    func catchAll(_ o: Options) throws -> [UInt8] {
        if let e = o.values["e"] {
            let raw = Array(e.utf8)
            if raw.contains(39) || raw.contains(Ascii.space) { throw AdminError.refused("catch-all target may not contain quotes or spaces") }
            if raw.contains(Ascii.at) || raw.first == Ascii.slash { return try Names.forwardTarget(raw) }
            return try Names.user(raw)
        }
        if o.flags.contains("x") { return Array("delete".utf8) }
        return Array(VDeliver.noMailbox.utf8)
    }

    // MARK: shared by the domain commands

    func refuseTaken(_ name: [UInt8], _ domains: [VDomain]) throws {
        if domains.contains(where: { $0.name == name }) { throw AdminError.refused("domain \(name.string) is already hosted") }
        if try files.virtualDomainTarget(name) != nil {
            throw AdminError.refused("domain \(name.string) is already in control/virtualdomains")
        }
        if try Control(home: home).list("locals").contains(where: { $0.caseInsensitiveEquals(name) }) {
            throw AdminError.refused("domain \(name.string) is in control/locals")
        }
    }

    /// virtualdomains, rcpthosts, users/assign (for a real domain).
    func route(_ d: VDomain) throws -> [String] {
        var notes: [String] = []
        try files.addVirtualDomain(d.name, prefix: d.real)
        notes += try files.addRcptHost(d.name)
        if !d.isAlias { notes += try files.addAssign(d) }
        return notes
    }

    func unroute(_ name: [UInt8]) throws -> [String] {
        var notes: [String] = []
        try files.removeVirtualDomain(name)
        notes += try files.removeRcptHost(name)
        notes += try files.removeAssign(name)
        return notes
    }

    // MARK: shared by the user commands

    /// The user's directory and Maildir (and maildirsize under a quota).
    func makeMailbox(_ u: VUser, _ d: VDomain) throws {
        try FileStore.makeDirectory(u.dir, mode: 0o700, owner: (d.uid, d.gid))
        try FileStore.makeMaildir(u.maildir, owner: (d.uid, d.gid))
        if !u.quota.isUnlimited {
            try MaildirSize.rebuild(u.maildir, quota: u.quota)
            FileStore.chown(u.maildir + "/" + MaildirSize.fileName, d.uid, d.gid)
        }
    }

    /// A clear password must fit the vpasswd line (it is the last field,
    /// so ':' is fine; newlines were refused already).
    func storableClear(_ p: [UInt8]) throws -> [UInt8] { try Names.password(p) }

    /// Loads the domain and user, lets `change` edit the user, saves.
    func modifyUser(_ address: String, _ change: (inout VUser, VDomain) throws -> Void) throws {
        let (user, domainName) = try Names.address(Array(address.utf8))
        try store.withLock {
            let d = try hostedDomain(domainName)
            var users = try store.loadUsers(d)
            guard let i = users.firstIndex(where: { $0.name == user }) else {
                throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
            }
            try change(&users[i], d)
            try store.saveDomainData(d, users: users, aliases: try store.loadAliases(d))
        }
    }

    /// A new quota and the Maildir's maildirsize to match: rebuilt (and the
    /// domain's) for a limit, removed for none.
    func setQuota(_ u: inout VUser, _ d: VDomain, _ q: Quota) throws {
        u.quota = q
        guard Sys.isDirectory(u.maildir) else { return }
        if q.isUnlimited {
            _ = unlink(u.maildir + "/" + MaildirSize.fileName)
        } else {
            try MaildirSize.rebuild(u.maildir, quota: q)
            FileStore.chown(u.maildir + "/" + MaildirSize.fileName, d.uid, d.gid)
        }
    }
}

extension Substring {
    /// 'x' -> x, "x" -> x (for reading back .qmail-default).
    func replacingQuotes() -> String {
        var s = String(self)
        if s.count >= 2, let f = s.first, f == s.last, f == "'" || f == "\"" { s.removeFirst(); s.removeLast() }
        return s
    }
}
