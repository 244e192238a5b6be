// vmoduser: a user's flags, comment, quota and cluster home host.
import QmailCore
import UserDirectory

extension Admin {
    /// vpopmail's vmoduser: -p refuses logins, -b bounces mail, -x clears
    /// every flag; -c comment, -q quota; -H the cluster host holding the
    /// mailbox ("" for the domain's default).
    func modifyUserFlags(_ args: [String]) throws -> [String] {
        let usage = "vmoduser [-x] [-p] [-b] [-c comment] [-q quota] [-H host] user@domain"
        let o = try Options(args, flags: "xpb", values: "cqH", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let gecos = try o.values["c"].map { try Names.gecos(Array($0.utf8)) }
        let quota = try o.values["q"].map { try parseQuota($0) }
        let host = try o.values["H"].map { try homeHostOption($0) }
        try modifyUser(o.operands[0]) { u, d in
            if let h = host { u.homeHost = h }
            if o.flags.contains("x") { u.flags = 0 }
            if o.flags.contains("p") { u.flags |= VUser.flagNoPOP }
            if o.flags.contains("b") { u.flags |= VUser.flagBounceMail }
            if let g = gecos { u.gecos = g }
            if let q = quota { try setQuota(&u, d, q) }
        }
        return []
    }

    /// -H's value: a host name, or "" for none (nil).
    func homeHostOption(_ value: String) throws -> String? {
        if value.isEmpty { return nil }
        guard let h = HomeHost.parse(Array(value.utf8)) else { throw AdminError.refused("-H wants a host name") }
        return h
    }

    /// Sets the home host of a hosted domain's mailboxes that name none of
    /// their own ("" for none), as vadddomain -H does at the start; its
    /// alias domains keep the same. Maildirs are not moved.
    public func setDomainHomeHost(_ domain: String, _ host: String) throws {
        let h = try homeHostOption(host)
        try store.withLock {
            let d = try hostedDomain(try Names.domain(Array(domain.utf8)))
            var all = try store.loadDomains()
            for i in all.indices where all[i].real == d.name { all[i].homeHost = h }
            try store.saveDomains(all)
        }
    }
}
