// vdominfo: what is known about a hosted domain.
import QmailCore
import UserDirectory

extension Admin {
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
            if let h = real.homeHost { print("home:    \(h)") }
            if !d.isAlias, case let l = limits(d), !l.isEmpty { print("limits:  \(l.summary)") }
            if list.count > 1 { print("") }
        }
        return []
    }
}
