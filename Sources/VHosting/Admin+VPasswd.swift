// vpasswd: changes a user's password.
import QmailCore
import UserDirectory

extension Admin {
    func changePassword(_ args: [String]) throws -> [String] {
        let usage = "vpasswd [-s scheme] [-C] [-r] user@domain [password|-]"
        let o = try Options(args, flags: "Cr", values: "s", usage: usage)
        guard (1...2).contains(o.operands.count) else { throw AdminError.usage(usage) }
        _ = try Names.address(Array(o.operands[0].utf8))
        let password = try PasswordInput.obtain(o.operands.count > 1 ? o.operands[1] : nil, random: o.flags.contains("r"))
        let h = try hash(password, o)
        try modifyUser(o.operands[0]) { u, _ in
            u.hash = h
            if u.clear != nil || o.flags.contains("C") { u.clear = try storableClear(password) }
        }
        if o.flags.contains("r") { print("\(o.operands[0]) password: \(password.string)") }
        return []
    }
}
