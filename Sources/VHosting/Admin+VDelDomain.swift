// vdeldomain: stops hosting a domain and its alias domains.
import QmailCore
import UserDirectory

extension Admin {
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
}
