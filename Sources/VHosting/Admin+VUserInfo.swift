// vuserinfo: what is known about a user.
import QmailCore
import UserDirectory

extension Admin {
    func userInfo(_ args: [String]) throws -> [String] {
        let usage = "vuserinfo [-n | -d | -q | -c | -p] user@domain"
        let o = try Options(args, flags: "ndqcp", values: "", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        let d = try hostedDomain(domainName)
        guard let u = try store.loadUsers(d).first(where: { $0.name == user }) else {
            throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
        }
        if o.flags.contains("n") { print(u.name.string); return [] }
        if o.flags.contains("d") { print(u.dir); return [] }
        if o.flags.contains("q") { print(u.quota.text); return [] }
        if o.flags.contains("c") { print(u.gecos.string); return [] }
        if o.flags.contains("p") { print(u.hash.string); return [] }
        var usage_ = "unknown"
        if let used = try? MaildirSize.scan(u.maildir) {
            usage_ = "\(used.bytes) bytes in \(used.count) messages"
            if let b = u.quota.bytes, b > 0 { usage_ += " (\(used.bytes * 100 / b)%)" }
        }
        var host = u.homeHost ?? d.homeHost.map { "\($0) (the domain's)" } ?? "(every host its own)"
        if let to = u.movingTo { host += ", being moved to \(to) (vmoveuser)" }
        print("""
        name:    \(u.name.string)@\(d.name.string)
        passwd:  \(u.hash.string)
        clear:   \(u.clear == nil ? "(not stored)" : "(stored)")
        uid:     \(d.uid)
        gid:     \(d.gid)
        flags:   \(u.flags)\(u.flags & VUser.flagNoPOP != 0 ? " (login disabled)" : "")\(u.flags & VUser.flagBounceMail != 0 ? " (mail bounces)" : "")
        gecos:   \(u.gecos.string)
        dir:     \(u.dir)
        maildir: \(u.maildir)
        quota:   \(u.quota.text)
        host:    \(host)
        usage:   \(usage_)
        """)
        return []
    }
}
