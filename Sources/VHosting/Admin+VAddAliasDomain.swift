// vaddaliasdomain: a second name for a hosted domain.
import QmailCore
import UserDirectory

extension Admin {
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
            let alias = VDomain(name: aliasName, real: real.name, dir: real.dir, uid: real.uid, gid: real.gid,
                                homeHost: real.homeHost)
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
}
