// vsetuserquota: changes a user's quota.
import QmailCore
import UserDirectory

extension Admin {
    func setQuota(_ args: [String]) throws -> [String] {
        let usage = "vsetuserquota user@domain quota"
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count == 2 else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let q = try parseQuota(o.operands[1])
        try modifyUser(o.operands[0]) { u, d in try setQuota(&u, d, q) }
        return []
    }
}
