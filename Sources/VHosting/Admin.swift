// The admin commands, shaped like vpopmail's: vadddomain, vdeldomain,
// vadduser, vdeluser, vpasswd, vsetuserquota, valias, vuserinfo, vdominfo,
// vconvert. Run as root (or as the owner of a single-user home). Every
// argument is checked before anything is written; every change holds the
// admin lock and replaces files atomically; a domain change reruns
// qmail-newu/qmail-newmrh and HUPs qmail-send.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

public struct Admin {
    public let home: QmailHome
    let store: FileStore
    let files: QmailFiles

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
        "vconvert": { try $0.convert($1) },
        "vmoduser": { try $0.modifyUserFlags($1) },
        "vmkpasswd": { try $0.rebuildDomain($1) },
        "vdkim": { try $0.dkim($1) },
    ]

    /// Runs one command; returns its exit code (0 done, 1 refused, 111
    /// system failure). Notes go to stderr.
    public static func main(_ command: String, _ args: [String]) -> Int32 {
        umask(0o022)
        guard let body = commands[command] else {
            Sys.warn("\(command): unknown command")
            return 1
        }
        do {
            for note in try body(Admin(home: QmailHome.current()), args) { Sys.warn("\(command): \(note)") }
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
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buf = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &pw, &buf, buf.count, &result) == 0, result != nil else { return nil }
        return (pw.pw_uid, pw.pw_gid)
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

    // MARK: domains

    func addDomain(_ args: [String]) throws -> [String] {
        let usage = "vadddomain [-u user | -i uid [-g gid]] [-q quota] [-b | -x | -e catchall] [-s scheme] [-r] [-K] domain [password|-]"
        let o = try Options(args, flags: "bxrK", values: "uigqes", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        let name = try Names.domain(Array(o.operands[0].utf8))
        let quota = try parseQuota(o.values["q"])
        let action = try catchAll(o)
        let (uid, gid) = try hostIds(o)
        let password = try PasswordInput.obtain(o.operands.count > 1 ? o.operands[1] : nil, random: o.flags.contains("r"))
        let pwHash = try hash(password, o)
        var notes: [String] = []
        try store.withLock {
            let domains = try store.loadDomains()
            try refuseTaken(name, domains)
            let base = home.path + "/domains"
            try FileStore.makeDirectory(base, mode: 0o755, owner: (geteuid(), getegid()))
            let dom = VDomain(name: name, real: name, dir: base + "/" + name.string, uid: uid, gid: gid)
            if Sys.exists(dom.dir) { throw AdminError.refused("\(dom.dir) already exists") }
            do {
                try FileStore.makeDirectory(dom.dir, mode: 0o700, owner: (uid, gid))
                try FileStore.writeAtomic(dom.dir + "/.qmail-default", dotQmailDefault(action), mode: 0o600, owner: (uid, gid))
                let pm = VUser(name: Array("postmaster".utf8), hash: pwHash, gecos: Array("Postmaster".utf8),
                               dir: dom.dir + "/postmaster", quota: quota)
                try makeMailbox(pm, dom)
                try store.saveDomainData(dom, users: [pm], aliases: [])
                try store.saveDomains(domains + [dom])
            } catch {
                try? FileStore.removeTree(dom.dir)
                throw error
            }
            do {
                notes += try route(dom)
            } catch {
                _ = try? unroute(name)
                try? store.saveDomains(domains)
                try? FileStore.removeTree(dom.dir)
                throw error
            }
            notes += files.hupSend()
        }
        if o.flags.contains("r") { print("postmaster@\(name.string) password: \(password.string)") }
        // The domain is there; a key that cannot be made is the admin's to retry (vdkim create).
        if !o.flags.contains("K") {
            do { notes += try dkimNewDomain(name) } catch { notes.append("no DKIM key made: \(AdminError.from(error))") }
        }
        return notes
    }

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

    func addAliasDomain(_ args: [String]) throws -> [String] {
        let usage = "vaddaliasdomain realdomain aliasdomain"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 2 else { throw AdminError.usage(usage) }
        let realName = try Names.domain(Array(o.operands[0].utf8))
        let aliasName = try Names.domain(Array(o.operands[1].utf8))
        var notes: [String] = []
        try store.withLock {
            let domains = try store.loadDomains()
            guard let real = domains.first(where: { $0.name == realName && !$0.isAlias }) else {
                throw AdminError.refused("domain \(realName.string) is not hosted here")
            }
            try refuseTaken(aliasName, domains)
            let alias = VDomain(name: aliasName, real: real.name, dir: real.dir, uid: real.uid, gid: real.gid)
            try store.saveDomains(domains + [alias])
            do { notes += try route(alias) } catch {
                _ = try? unroute(aliasName)
                try? store.saveDomains(domains)
                throw error
            }
            notes += files.hupSend()
        }
        return notes
    }

    func deleteDomain(_ args: [String]) throws -> [String] {
        let usage = "vdeldomain domain"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let name = try Names.domain(Array(o.operands[0].utf8))
        var notes: [String] = []
        try store.withLock {
            let domains = try store.loadDomains()
            guard let d = domains.first(where: { $0.name == name }) else { throw AdminError.refused("domain \(name.string) is not hosted here") }
            // Deleting a real domain takes its alias domains with it.
            let gone = d.isAlias ? [d] : domains.filter { $0.real == d.name }
            for g in gone { notes += try unroute(g.name) }
            try store.saveDomains(domains.filter { dom in !gone.contains(where: { $0.name == dom.name }) })
            if !d.isAlias, Sys.exists(d.dir) { try FileStore.removeTree(d.dir) }
            // Its DKIM keys go too (their DNS records are the admin's to remove).
            for g in gone where Sys.isDirectory(dkimStore.domainDirectory(g.name.string)) {
                try FileStore.removeTree(dkimStore.domainDirectory(g.name.string))
            }
            notes += files.hupSend()
        }
        return notes
    }

    // MARK: users

    /// The user's directory and Maildir (and maildirsize under a quota).
    func makeMailbox(_ u: VUser, _ d: VDomain) throws {
        try FileStore.makeDirectory(u.dir, mode: 0o700, owner: (d.uid, d.gid))
        try FileStore.makeMaildir(u.maildir, owner: (d.uid, d.gid))
        if !u.quota.isUnlimited {
            try MaildirSize.rebuild(u.maildir, quota: u.quota)
            FileStore.chown(u.maildir + "/" + MaildirSize.fileName, d.uid, d.gid)
        }
    }

    func addUser(_ args: [String]) throws -> [String] {
        let usage = "vadduser [-q quota] [-c comment] [-s scheme] [-e crypted] [-C] [-r] user@domain [password|-]"
        let o = try Options(args, flags: "Cr", values: "qcse", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        let quota = try parseQuota(o.values["q"])
        let gecos = try Names.gecos(Array((o.values["c"] ?? "").utf8))
        var pwHash: [UInt8]
        var clear: [UInt8]? = nil
        var shown: [UInt8]? = nil
        if let e = o.values["e"] {
            pwHash = Array(e.utf8)
            guard PasswordHash.scheme(of: pwHash) != nil, !pwHash.contains(Ascii.colon), !pwHash.contains(Ascii.lf) else {
                throw AdminError.refused("-e wants a yescrypt, sha512, sha256, bcrypt or md5 crypt hash")
            }
        } else {
            let password = try PasswordInput.obtain(o.operands.count > 1 ? o.operands[1] : nil, random: o.flags.contains("r"))
            pwHash = try hash(password, o)
            if o.flags.contains("C") { clear = try storableClear(password) }
            if o.flags.contains("r") { shown = password }
        }
        try store.withLock {
            let d = try hostedDomain(domainName)
            var users = try store.loadUsers(d)
            let aliases = try store.loadAliases(d)
            if users.contains(where: { $0.name == user }) { throw AdminError.refused("user \(user.string)@\(d.name.string) already exists") }
            if aliases.contains(where: { $0.name == user }) { throw AdminError.refused("\(user.string)@\(d.name.string) is an alias") }
            let u = VUser(name: user, hash: pwHash, gecos: gecos, dir: d.dir + "/" + user.string, quota: quota, clear: clear)
            if Sys.exists(u.dir) { throw AdminError.refused("\(u.dir) already exists") }
            do {
                try makeMailbox(u, d)
                users.append(u)
                try store.saveDomainData(d, users: users, aliases: aliases)
            } catch {
                try? FileStore.removeTree(u.dir)
                throw error
            }
        }
        if let p = shown { print("\(user.string)@\(domainName.string) password: \(p.string)") }
        return []
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

    func deleteUser(_ args: [String]) throws -> [String] {
        let usage = "vdeluser user@domain"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        try store.withLock {
            let d = try hostedDomain(domainName)
            var users = try store.loadUsers(d)
            guard let i = users.firstIndex(where: { $0.name == user }) else {
                throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
            }
            let gone = users.remove(at: i)
            try store.saveDomainData(d, users: users, aliases: try store.loadAliases(d))
            // Only a directory inside the domain's tree is removed.
            if gone.dir.hasPrefix(d.dir + "/"), Sys.exists(gone.dir) { try FileStore.removeTree(gone.dir) }
        }
        return []
    }

    func changePassword(_ args: [String]) throws -> [String] {
        let usage = "vpasswd [-s scheme] [-C] [-r] user@domain [password|-]"
        let o = try Options(args, flags: "Cr", values: "s", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let password = try PasswordInput.obtain(o.operands.count > 1 ? o.operands[1] : nil, random: o.flags.contains("r"))
        let h = try hash(password, o)
        try modifyUser(o.operands[0]) { u, _ in
            u.hash = h
            if u.clear != nil || o.flags.contains("C") { u.clear = try storableClear(password) }
        }
        if o.flags.contains("r") { print("\(o.operands[0]) password: \(password.string)") }
        return []
    }

    func setQuota(_ args: [String]) throws -> [String] {
        let usage = "vsetuserquota user@domain quota"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 2 else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let q = try parseQuota(o.operands[1])
        try modifyUser(o.operands[0]) { u, d in try setQuota(&u, d, q) }
        return []
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

    /// vpopmail's vmoduser: -p refuses logins, -b bounces mail, -x clears
    /// every flag; -c comment, -q quota.
    func modifyUserFlags(_ args: [String]) throws -> [String] {
        let usage = "vmoduser [-x] [-p] [-b] [-c comment] [-q quota] user@domain"
        let o = try Options(args, flags: "xpb", values: "cq", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let gecos = try o.values["c"].map { try Names.gecos(Array($0.utf8)) }
        let quota = try o.values["q"].map { try parseQuota($0) }
        try modifyUser(o.operands[0]) { u, d in
            if o.flags.contains("x") { u.flags = 0 }
            if o.flags.contains("p") { u.flags |= VUser.flagNoPOP }
            if o.flags.contains("b") { u.flags |= VUser.flagBounceMail }
            if let g = gecos { u.gecos = g }
            if let q = quota { try setQuota(&u, d, q) }
        }
        return []
    }

    /// vpopmail's vmkpasswd: rebuilds a domain's vpasswd.cdb from its
    /// vpasswd and valias text (after editing them by hand).
    func rebuildDomain(_ args: [String]) throws -> [String] {
        let usage = "vmkpasswd domain"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let name = try Names.domain(Array(o.operands[0].utf8))
        try store.withLock {
            let d = try hostedDomain(name)
            let users = try store.loadUsers(d)
            for u in users { _ = try Names.user(u.name) }
            try store.saveDomainData(d, users: users, aliases: try store.loadAliases(d))
        }
        return []
    }

    // MARK: aliases

    func alias(_ args: [String]) throws -> [String] {
        let usage = "valias [-s domain] | [-d] alias@domain | -i target alias@domain"
        let o = try Options(args, flags: "d", values: "is", usage: usage)
        if let s = o.values["s"] {
            guard o.operands.isEmpty else { throw AdminError.usage(usage) }
            let d = try hostedDomain(try Names.domain(Array(s.utf8)))
            for a in try store.loadAliases(d) { print("\(a.name.string)@\(d.name.string) -> \(a.target.string)") }
            return []
        }
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let (name, domainName) = try Names.address(Array(o.operands[0].utf8))
        let target = try o.values["i"].map { try Names.forwardTarget(Array($0.utf8)) }
        if target == nil && !o.flags.contains("d") {
            let d = try hostedDomain(domainName)
            let mine = try store.loadAliases(d).filter { $0.name == name }
            if mine.isEmpty { throw AdminError.refused("no alias \(name.string)@\(d.name.string)") }
            for a in mine { print("\(name.string)@\(d.name.string) -> \(a.target.string)") }
            return []
        }
        try store.withLock {
            let d = try hostedDomain(domainName)
            let users = try store.loadUsers(d)
            var aliases = try store.loadAliases(d)
            if let t = target {
                if users.contains(where: { $0.name == name }) { throw AdminError.refused("\(name.string)@\(d.name.string) is a mailbox") }
                if t == name + [Ascii.at] + d.name { throw AdminError.refused("an alias may not point at itself") }
                if !aliases.contains(where: { $0.name == name && $0.target == t }) { aliases.append((name, t)) }
            } else {
                let before = aliases.count
                aliases.removeAll { $0.name == name }
                if aliases.count == before { throw AdminError.refused("no alias \(name.string)@\(d.name.string)") }
            }
            try store.saveDomainData(d, users: users, aliases: aliases)
        }
        return []
    }

    // MARK: information

    func userInfo(_ args: [String]) throws -> [String] {
        let usage = "vuserinfo [-n | -d | -q | -c | -p] user@domain"
        let o = try Options(args, flags: "ndqcp", values: "", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        let d = try hostedDomain(domainName)
        guard let u = try store.loadUsers(d).first(where: { $0.name == user }) else {
            throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
        }
        if o.flags.contains("n") { print(u.name.string); return [] }
        if o.flags.contains("d") { print(u.dir); return [] }
        if o.flags.contains("q") { print(u.quota.text); return [] }
        if o.flags.contains("c") { print(u.gecos.string); return [] }
        if o.flags.contains("p") { print(u.hash.string); return [] }
        var usage_ = "unknown"
        if let used = try? MaildirSize.scan(u.maildir) {
            usage_ = "\(used.bytes) bytes in \(used.count) messages"
            if let b = u.quota.bytes, b > 0 { usage_ += " (\(used.bytes * 100 / b)%)" }
        }
        print("""
        name:    \(u.name.string)@\(d.name.string)
        passwd:  \(u.hash.string)
        clear:   \(u.clear == nil ? "(not stored)" : "(stored)")
        uid:     \(d.uid)
        gid:     \(d.gid)
        flags:   \(u.flags)\(u.flags & VUser.flagNoPOP != 0 ? " (login disabled)" : "")\(u.flags & VUser.flagBounceMail != 0 ? " (mail bounces)" : "")
        gecos:   \(u.gecos.string)
        dir:     \(u.dir)
        maildir: \(u.maildir)
        quota:   \(u.quota.text)
        usage:   \(usage_)
        """)
        return []
    }

    func domainInfo(_ args: [String]) throws -> [String] {
        let usage = "vdominfo [-n | -d | -t] [domain]"
        let o = try Options(args, flags: "ndt", values: "", usage: usage)
        guard o.operands.count <= 1 else { throw AdminError.usage(usage) }
        let all = try store.loadDomains()
        var list = all
        if let one = o.operands.first {
            let n = try Names.domain(Array(one.utf8))
            guard let d = all.first(where: { $0.name == n }) else { throw AdminError.refused("domain \(n.string) is not hosted here") }
            list = [d]
        }
        for d in list {
            if o.flags.contains("n") { print(d.name.string); continue }
            if o.flags.contains("d") { print(d.dir); continue }
            let real = d.isAlias ? (all.first { $0.name == d.real } ?? d) : d
            let users = (try? store.loadUsers(real).count) ?? 0
            if o.flags.contains("t") { print("\(d.name.string) \(users)"); continue }
            let aliases = all.filter { $0.isAlias && $0.real == d.name }.map { $0.name.string }
            print("""
            domain:  \(d.name.string)\(d.isAlias ? " (alias of \(d.real.string))" : "")
            uid:     \(d.uid)
            gid:     \(d.gid)
            dir:     \(d.dir)
            users:   \(users)
            unknown: \(unknownAction(real))
            """)
            if !aliases.isEmpty { print("aliases: \(aliases.joined(separator: " "))") }
            if list.count > 1 { print("") }
        }
        return []
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
