// vdeluser: removes a mailbox and its aliases.
import QmailCore
import UserDirectory

extension Admin {
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
            try store.setFilterPolicy(d, user: user, policy: nil)
            // Only a directory inside the domain's tree is removed.
            if gone.dir.hasPrefix(d.dir + "/"), Sys.exists(gone.dir) { try FileStore.removeTree(gone.dir) }
        }
        return []
    }
}
