// vconvert: adopts an existing vpopmail tree (VPOPMAIL/domains/*/vpasswd
// and the Maildirs it names) into the file backend, in place: mail stays
// where it is. Each domain gets its vdomains entry, a vpasswd.cdb in our
// format (vpopmail's old one is kept as vpasswd.cdb.vpopmail), a
// .qmail-default calling our vdelivermail with the same unknown-user
// action, and whatever virtualdomains/rcpthosts/assign lines it lacks.
// vpopmail's .qmail-alias files keep working (qmail-local reads them);
// alias domains (symlinks in domains/) become alias domains.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory
import VDelivery

extension Admin {
    struct Found {
        var name: [UInt8]
        var dir: String
        var users: [VUser]
        var action: [UInt8]
        var ids: (uid_t, gid_t)
    }

    func convert(_ args: [String]) throws -> [String] {
        let usage = "vconvert [-n] [-u user | -i uid [-g gid]] vpopmail-home"
        let o = try Options(args, flags: "n", values: "uig", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let base = o.operands[0] + "/domains"
        guard Sys.isDirectory(base) else { throw AdminError.refused("\(base) is not a directory") }
        var notes: [String] = []
        var found: [Found] = []
        var aliasLinks: [(alias: [UInt8], target: [UInt8])] = []

        // Read and check everything before writing anything.
        var candidates: [String] = []
        for e in try Sys.listDirectory(base).sorted() {
            let p = base + "/" + e
            let st = try Sys.lstat(p)
            if (st.st_mode & S_IFMT) == S_IFLNK {
                var buf = [CChar](repeating: 0, count: 4096)
                let n = readlink(p, &buf, buf.count - 1)
                if n > 0, let a = try? Names.domain(Array(e.utf8)) {
                    let t = FileIO.baseName(String(cString: buf))
                    if let tn = try? Names.domain(Array(t.utf8)) { aliasLinks.append((a, tn)) }
                }
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            if Sys.exists(p + "/vpasswd") { candidates.append(p); continue }
            // vpopmail hashes many domains into one-character directories.
            if e.count == 1 {
                for sub in (try? Sys.listDirectory(p))?.sorted() ?? [] where Sys.exists(p + "/" + sub + "/vpasswd") {
                    candidates.append(p + "/" + sub)
                }
            }
        }
        for dir in candidates {
            let name = try Names.domain(Array(FileIO.baseName(dir).utf8))
            guard let data = try FileIO.read(dir + "/vpasswd") else { continue }
            var users: [VUser] = []
            var n = 0
            for line in data.split(separator: Ascii.lf, omittingEmptySubsequences: true) {
                n += 1
                guard let u = VUser.parse(line: Array(line)), (try? Names.user(u.name)) == u.name else {
                    throw AdminError.refused("\(dir)/vpasswd line \(n) is not a vpasswd entry; nothing imported")
                }
                if !Sys.isDirectory(u.maildir) { notes.append("note: \(u.name.string)@\(name.string): \(u.maildir) is missing") }
                users.append(u)
            }
            var ids: (uid_t, gid_t)
            if o.values["u"] != nil || o.values["i"] != nil { ids = try hostIds(o) } else {
                let st = try Sys.stat(dir)
                ids = (st.st_uid, st.st_gid)
            }
            if ids.0 == 0 { throw AdminError.refused("\(dir) belongs to root; name the mailbox account with -u USER") }
            var action = Array(VDeliver.noMailbox.utf8)
            if let q = try FileIO.read(dir + "/.qmail-default"), let line = Control.parseList(q).first,
               line.string.contains("vdelivermail"), let last = line.string.split(separator: " ").last {
                action = Array(last.replacingQuotes().utf8)
            }
            found.append(Found(name: name, dir: dir, users: users, action: action, ids: ids))
        }
        if found.isEmpty { throw AdminError.refused("no domains with a vpasswd under \(base)") }
        if o.flags.contains("n") {
            for f in found { print("\(f.name.string): \(f.users.count) users, uid \(f.ids.0), unknown users: \(f.action.string), dir \(f.dir)") }
            for a in aliasLinks { print("\(a.alias.string): alias of \(a.target.string)") }
            return notes
        }
        try store.withLock {
            var domains = try store.loadDomains()
            for f in found {
                if domains.contains(where: { $0.name == f.name }) { notes.append("note: \(f.name.string) is already hosted; skipped"); continue }
                let dom = VDomain(name: f.name, real: f.name, dir: f.dir, uid: f.ids.0, gid: f.ids.1)
                if let old = try FileIO.read(f.dir + "/vpasswd.cdb"), !Sys.exists(f.dir + "/vpasswd.cdb.vpopmail") {
                    try FileStore.writeAtomic(f.dir + "/vpasswd.cdb.vpopmail", old, mode: 0o600, owner: f.ids)
                }
                if let old = try FileIO.read(f.dir + "/.qmail-default"), !Sys.exists(f.dir + "/.qmail-default.vpopmail") {
                    try FileStore.writeAtomic(f.dir + "/.qmail-default.vpopmail", old, mode: 0o600, owner: f.ids)
                }
                try store.saveDomainData(dom, users: f.users, aliases: try store.loadAliases(dom))
                try FileStore.writeAtomic(f.dir + "/.qmail-default", dotQmailDefault(f.action), mode: 0o600, owner: f.ids)
                domains.append(dom)
                try store.saveDomains(domains)
                if try files.virtualDomainTarget(f.name) == nil { try files.addVirtualDomain(f.name, prefix: f.name) }
                notes += try files.addRcptHost(f.name)
                if try !files.hasAssign(f.name) { notes += try files.addAssign(dom) }
                print("imported \(f.name.string): \(f.users.count) users")
            }
            for a in aliasLinks {
                guard !domains.contains(where: { $0.name == a.alias }),
                      let real = domains.first(where: { $0.name == a.target && !$0.isAlias }) else { continue }
                let alias = VDomain(name: a.alias, real: real.name, dir: real.dir, uid: real.uid, gid: real.gid)
                domains.append(alias)
                try store.saveDomains(domains)
                if try files.virtualDomainTarget(a.alias) == nil { try files.addVirtualDomain(a.alias, prefix: real.name) }
                notes += try files.addRcptHost(a.alias)
                print("imported \(a.alias.string): alias of \(real.name.string)")
            }
            notes += files.hupSend()
        }
        return notes
    }
}
