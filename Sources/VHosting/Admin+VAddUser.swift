// vadduser: a new mailbox in a hosted domain.
import QmailCore
import UserDirectory

extension Admin {
    func addUser(_ args: [String]) throws -> [String] {
        let usage = "vadduser [-q quota] [-c comment] [-s scheme] [-e crypted] [-H host] [-C] [-r] user@domain [password|-]"
        let o = try Options(args, flags: "Cr", values: "qcseH", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        let givenQuota = try o.values["q"].map { try parseQuota($0) }
        let gecos = try Names.gecos(Array((o.values["c"] ?? "").utf8))
        let host = try o.values["H"].flatMap { try homeHostOption($0) }
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
            let limits = limits(d)
            if let max = limits.maxMailboxes, users.count >= max {
                throw AdminError.refused("\(d.name.string) has its limit of \(max) mailboxes (\(DomainLimits.fileName))")
            }
            let quota = givenQuota ?? limits.defaultQuota ?? .unlimited
            let u = VUser(name: user, hash: pwHash, gecos: gecos, dir: d.dir + "/" + user.string, quota: quota, clear: clear,
                          homeHost: host)
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
}
