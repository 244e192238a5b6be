// vmoduser: a user's flags, comment and quota.
import QmailCore
import UserDirectory

extension Admin {
    /// vpopmail's vmoduser: -p refuses logins, -b bounces mail, -x clears
    /// every flag; -c comment, -q quota.
    func modifyUserFlags(_ args: [String]) throws -> [String] {
        let usage = "vmoduser [-x] [-p] [-b] [-c comment] [-q quota] user@domain"
        let o = try Options(args, flags: "xpb", values: "cq", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let gecos = try o.values["c"].map { try Names.gecos(Array($0.utf8)) }
        let quota = try o.values["q"].map { try parseQuota($0) }
        try modifyUser(o.operands[0]) { u, d in
            if o.flags.contains("x") { u.flags = 0 }
            if o.flags.contains("p") { u.flags |= VUser.flagNoPOP }
            if o.flags.contains("b") { u.flags |= VUser.flagBounceMail }
            if let g = gecos { u.gecos = g }
            if let q = quota { try setQuota(&u, d, q) }
        }
        return []
    }
}
