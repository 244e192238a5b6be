// vmkpasswd: rebuilds a domain's vpasswd.cdb from its text files.
import QmailCore
import UserDirectory

extension Admin {
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
}
