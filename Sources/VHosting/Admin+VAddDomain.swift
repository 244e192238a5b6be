// vadddomain: hosts a new domain (its directory, vpasswd, postmaster,
// .qmail-default, the qmail control files) and, if asked, its DKIM key.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

extension Admin {
    func addDomain(_ args: [String]) throws -> [String] {
        let usage = "vadddomain [-u user | -i uid [-g gid]] [-q quota] [-b | -x | -e catchall] [-s scheme] [-H host] [-r] [-K] domain [password|-]"
        let o = try Options(args, flags: "bxrK", values: "uigqesH", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        let name = try Names.domain(Array(o.operands[0].utf8))
        let quota = try parseQuota(o.values["q"])
        let action = try catchAll(o)
        let (uid, gid) = try hostIds(o)
        let homeHost = try o.values["H"].flatMap { try homeHostOption($0) }
        let password = try PasswordInput.obtain(o.operands.count > 1 ? o.operands[1] : nil, random: o.flags.contains("r"))
        let pwHash = try hash(password, o)
        var notes: [String] = []
        try store.withLock {
            let domains = try store.loadDomains()
            try refuseTaken(name, domains)
            let base = home.path + "/domains"
            try FileStore.makeDirectory(base, mode: 0o755, owner: (geteuid(), getegid()))
            let dom = VDomain(name: name, real: name, dir: base + "/" + name.string, uid: uid, gid: gid, homeHost: homeHost)
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
}
