// valias: shows, adds and removes a domain's aliases.
import QmailCore
import UserDirectory

extension Admin {
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
                if let max = limits(d).maxAliases, !aliases.contains(where: { $0.name == name }),
                   Set(aliases.map { $0.name }).count >= max {
                    throw AdminError.refused("\(d.name.string) has its limit of \(max) aliases (\(DomainLimits.fileName))")
                }
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
}
