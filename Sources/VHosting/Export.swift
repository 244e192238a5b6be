// vexport: the file backend as LDIF (for slapadd/ldapadd, schema in
// schemas/swift-qmail.schema) or SQL (for schemas/mysql.sql's tables), so a
// site moves its users into LDAP or MySQL with one command. Every value is
// written so that no byte of it can change the meaning of the output: LDIF
// values that are not plain safe strings are base64, SQL values that are not
// plain safe strings are hex literals.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

public enum Export {
    public static let usage = "usage: vexport --ldif BASEDN | vexport --sql"

    public static func main(argv: [String]) -> Int32 {
        let args = Array(argv.dropFirst())
        let text: [UInt8]
        do {
            let store = FileStore(home: QmailHome.current())
            if args.count == 2 && args[0] == "--ldif" {
                text = try ldif(store, base: args[1])
            } else if args.count == 1 && args[0] == "--sql" {
                text = try sql(store)
            } else {
                Sys.warn("vexport: \(usage)")
                return QmailExit.permanent
            }
        } catch {
            Sys.warn("vexport: \(error)")
            return QmailExit.temporary
        }
        let w = ByteWriter(fd: 1)
        do { try w.put(text); try w.flush() } catch {
            Sys.warn("vexport: unable to write: \(error)")
            return QmailExit.temporary
        }
        return 0
    }

    struct Domain {
        var real: VDomain
        var aliasNames: [[UInt8]]
        var users: [VUser]
        var aliases: [(name: [UInt8], targets: [[UInt8]])]
        /// Mailboxes' own filter policies (DIR/vfilter) by user name.
        var policies: [[UInt8]: [UInt8]]
    }

    /// Real domains with their alias domains, users and aliases. An alias
    /// named like a user is left out: the file backend never reaches it.
    static func load(_ store: FileStore) throws -> [Domain] {
        let all = try store.loadDomains()
        var out: [Domain] = []
        for d in all where !d.isAlias {
            let users = try store.loadUsers(d)
            let userNames = Set(users.map { $0.name })
            var aliases: [(name: [UInt8], targets: [[UInt8]])] = []
            for a in try store.loadAliases(d) where !userNames.contains(a.name) {
                if let i = aliases.firstIndex(where: { $0.name == a.name }) { aliases[i].targets.append(a.target) } else {
                    aliases.append((a.name, [a.target]))
                }
            }
            out.append(Domain(real: d, aliasNames: all.filter { $0.isAlias && $0.real == d.name }.map { $0.name },
                              users: users, aliases: aliases,
                              policies: Dictionary(try FileStore.loadFilterPolicies(d).map { ($0.user, $0.policy) },
                                                   uniquingKeysWith: { _, last in last })))
        }
        return out
    }

    static func status(_ u: VUser) -> String {
        let noPOP = u.flags & VUser.flagNoPOP != 0
        let bounce = u.flags & VUser.flagBounceMail != 0
        return noPOP && bounce ? "disabled" : noPOP ? "nologin" : bounce ? "bounce" : "active"
    }

    /// Only addresses travel: program and file targets cannot be directory
    /// forwards (the backends refuse them); they are reported, not dropped silently.
    static func forwards(_ targets: [[UInt8]], _ what: String) -> [[UInt8]] {
        let kept = RemoteDirectory.forwardAddresses(targets)
        if kept.count != targets.count { Sys.warn("vexport: \(what): program or file targets left out (addresses only)") }
        return kept
    }

    // MARK: LDIF

    public static func ldif(_ store: FileStore, base: String) throws -> [UInt8] {
        var out: [UInt8] = []
        func attr(_ name: String, _ value: [UInt8]) {
            out += Array(name.utf8)
            if ldifSafe(value) {
                out += Array(": ".utf8) + value
            } else {
                out += Array(":: ".utf8) + Base64.encode(value)
            }
            out.append(Ascii.lf)
        }
        func attr(_ name: String, _ value: String) { attr(name, Array(value.utf8)) }
        let baseDN = Array(base.utf8)
        for ou in ["domains", "users"] {
            attr("dn", Array("ou=\(ou),".utf8) + baseDN)
            attr("objectClass", "organizationalUnit")
            attr("ou", ou)
            out.append(Ascii.lf)
        }
        for d in try load(store) {
            attr("dn", Array("sqDomainName=".utf8) + dnValue(d.real.name) + Array(",ou=domains,".utf8) + baseDN)
            attr("objectClass", "sqMailDomain")
            attr("sqDomainName", d.real.name)
            for a in d.aliasNames { attr("sqDomainAlias", a) }
            attr("sqDomainDirectory", d.real.dir)
            attr("uidNumber", "\(d.real.uid)")
            attr("gidNumber", "\(d.real.gid)")
            if let h = d.real.homeHost { attr("sqMailHost", h) }
            out.append(Ascii.lf)
            for u in d.users {
                let address = u.name + [Ascii.at] + d.real.name
                attr("dn", Array("mail=".utf8) + dnValue(address) + Array(",ou=users,".utf8) + baseDN)
                attr("objectClass", "account")
                attr("objectClass", "sqMailAccount")
                attr("uid", address)
                attr("mail", address)
                attr("userPassword", Array("{CRYPT}".utf8) + u.hash)
                attr("homeDirectory", u.dir)
                attr("sqMailbox", u.maildir)
                if !u.quota.isUnlimited { attr("sqMailQuota", u.quota.text) }
                attr("sqAccountStatus", status(u))
                if !u.gecos.isEmpty { attr("description", u.gecos) }
                if let p = d.policies[u.name] { attr("sqFilterPolicy", p) }
                if let h = u.homeHost { attr("sqMailHost", h) }
                out.append(Ascii.lf)
            }
            for a in d.aliases {
                let address = a.name + [Ascii.at] + d.real.name
                let targets = forwards(a.targets, address.string)
                if targets.isEmpty { continue }
                attr("dn", Array("mail=".utf8) + dnValue(address) + Array(",ou=users,".utf8) + baseDN)
                attr("objectClass", "account")
                attr("objectClass", "sqMailAccount")
                attr("uid", address)
                attr("mail", address)
                for t in targets { attr("sqMailForward", t) }
                out.append(Ascii.lf)
            }
        }
        return out
    }

    /// An LDIF SAFE-STRING (RFC 2849): ASCII without NUL, CR, LF; not
    /// starting with space, ':' or '<'; not ending with space.
    static func ldifSafe(_ v: [UInt8]) -> Bool {
        if let f = v.first, f == Ascii.space || f == Ascii.colon || f == 60 { return false }
        if v.last == Ascii.space { return false }
        return v.allSatisfy { $0 > 0 && $0 < 128 && $0 != Ascii.cr && $0 != Ascii.lf }
    }

    /// An RDN value (RFC 4514): , + " \ < > ; = and a leading # or space escaped.
    static func dnValue(_ v: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, c) in v.enumerated() {
            if Array(",+\"\\<>;=".utf8).contains(c) || (i == 0 && (c == Ascii.hash || c == Ascii.space)) { out.append(92) }
            out.append(c)
        }
        return out
    }

    // MARK: SQL

    public static func sql(_ store: FileStore) throws -> [UInt8] {
        var out = Array("-- vexport: the file backend for schemas/mysql.sql\nSTART TRANSACTION;\n".utf8)
        func row(_ table: String, _ columns: String, _ values: [[UInt8]?]) {
            out += Array("INSERT INTO \(table) (\(columns)) VALUES (".utf8)
            for (i, v) in values.enumerated() {
                if i > 0 { out += Array(", ".utf8) }
                out += v.map(sqlLiteral) ?? Array("NULL".utf8)
            }
            out += Array(");\n".utf8)
        }
        func s(_ t: String) -> [UInt8] { Array(t.utf8) }
        for d in try load(store) {
            let real = d.real
            // mail_host, like filter_policy, only where there is one.
            let host = real.homeHost.map { [s($0)] } ?? []
            let domainColumns = "name, real_domain, dir, uid, gid" + (host.isEmpty ? "" : ", mail_host")
            for name in [real.name] + d.aliasNames {
                row("domains", domainColumns, [name, real.name, s(real.dir), s("\(real.uid)"), s("\(real.gid)")] + host)
            }
            for u in d.users {
                // filter_policy only where there is one: the rest imports
                // into a table from before that column too.
                let p = d.policies[u.name]
                row("users", "domain, local_part, password_hash, home, maildir, quota, status, gecos"
                        + (p == nil ? "" : ", filter_policy") + (u.homeHost == nil ? "" : ", mail_host"),
                    [real.name, u.name, u.hash, s(u.dir), s(u.maildir), u.quota.isUnlimited ? nil : s(u.quota.text),
                     s(status(u)), u.gecos] + (p.map { [$0] } ?? []) + (u.homeHost.map { [s($0)] } ?? []))
            }
            for a in d.aliases {
                for t in forwards(a.targets, (a.name + [Ascii.at] + real.name).string) {
                    row("aliases", "domain, local_part, target", [real.name, a.name, t])
                }
            }
        }
        out += Array("COMMIT;\n".utf8)
        return out
    }

    /// 'text' when every byte is plainly safe, else a hex literal (valid
    /// whatever sql_mode says about backslashes).
    static func sqlLiteral(_ v: [UInt8]) -> [UInt8] {
        let safe = v.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || Array(" .@_+-=/$:,".utf8).contains(c)
        }
        if safe { return [39] + v + [39] }
        let hex = Array("0123456789abcdef".utf8)
        var out = Array("X'".utf8)
        for c in v { out.append(hex[Int(c >> 4)]); out.append(hex[Int(c & 15)]) }
        out.append(39)
        return out
    }
}
